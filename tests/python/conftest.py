"""pytest setup for the Python tests: CPU-only JAX, and the tests directory
on sys.path so that test modules can `from util import ...`."""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras 3 models in the tests run on JAX (its default backend is TensorFlow)
os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(__file__))

# The tests write `with jax.enable_x64(...)`, which JAX has had since 0.8; the
# oldest JAX we support (pyproject.toml, .ci/run) has it as
# jax.experimental.enable_x64.
import jax

if not hasattr(jax, "enable_x64"):
    from jax.experimental import enable_x64 as _enable_x64

    jax.enable_x64 = _enable_x64

# H2O_RECORD_DIR=dir: save the input of every conversion for tests/golden.py.
if os.environ.get("H2O_RECORD_DIR"):
    sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
    import golden

    golden.install_recorder(os.environ["H2O_RECORD_DIR"])
