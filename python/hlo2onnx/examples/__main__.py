"""``python -m hlo2onnx.examples``: the README's main job (train a CNN on
scikit-learn's digits, convert, check; see :mod:`hlo2onnx.examples.digits`)."""

import sys

from .digits import main

sys.exit(main())
