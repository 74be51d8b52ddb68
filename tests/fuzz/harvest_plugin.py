"""A pytest plugin that saves every MLIR module the Python tests convert, to
seed the fuzzers with the ops JAX really emits (tests/fuzz/seeds.tar.xz).

    H2O_HARVEST=/tmp/harvest PYTHONPATH=tests/fuzz \\
        python -m pytest -q -p harvest_plugin tests/python
    build-fuzz/fuzz_convert -merge=1 /tmp/seeds /tmp/harvest    # keep what adds coverage
    tar -C /tmp/seeds -cJf tests/fuzz/seeds.tar.xz .
"""

import hashlib
import os

import hlo2onnx.convert as _convert

_OUT = os.environ.get("H2O_HARVEST", "harvest")
_original = _convert.Lowered.convert


def _saving_convert(self, path=None):
    data = self.text.encode()
    os.makedirs(_OUT, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16] + ".mlir"
    with open(os.path.join(_OUT, name), "wb") as f:
        f.write(data)
    return _original(self, path)


_convert.Lowered.convert = _saving_convert
