"""Golden models: proof that a refactor of the C core changes no output byte.

Two halves:

* record (``H2O_RECORD_DIR=dir pytest tests/python``): tests/python/conftest.py
  wraps ``hlo2onnx._core.convert`` so that every conversion the test suite
  makes saves what the core received (MLIR text, parameter bytes, options)
  as ``dir/NNNNN.pkl``.  Conversions with more than 64 MiB of parameters
  are not recorded (test_big_models), nor are calls that fail in argument
  checking before they reach the core.
* replay (``python tests/golden.py replay dir out.json [_core.so]``): converts every
  recorded input, and every ``tests/fixtures/*.mlir`` with and without local
  functions, with the ``hlo2onnx._core`` that Python imports (or the
  extension module given), and writes the
  SHA-256 of each model (or the error it raised) to out.json.
  ``python tests/golden.py diff a.json b.json`` lists what differs.

Record once, replay with the build before and the build after a change,
and diff.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import os
import pickle
import sys

import numpy as np

RECORD_LIMIT = 64 << 20
_counter = itertools.count()


def install_recorder(directory: str) -> None:
    """Wraps hlo2onnx._core.convert to save each call's inputs to directory."""
    from hlo2onnx import _core

    os.makedirs(directory, exist_ok=True)
    original = _core.convert

    def recording_convert(text, params, path, options):
        try:
            size = sum(memoryview(b).nbytes for _, b, _ in params)
            arrays = None
            if size <= RECORD_LIMIT:
                arrays = [(i, np.array(memoryview(b), copy=True), name) for i, b, name in params]
        except (TypeError, ValueError):
            arrays = None
        if arrays is not None:
            record = {"text": text, "params": arrays, "options": dict(options or {})}
            name = f"{os.getpid()}-{next(_counter):05d}.pkl"
            with open(os.path.join(directory, name), "wb") as f:
                pickle.dump(record, f)
        return original(text, params, path, options)

    _core.convert = recording_convert


def _digest(convert, text, params, options) -> str:
    try:
        data = convert(text, params, None, options)
    except Exception as e:  # noqa: BLE001 - the error is part of the output too
        return f"error {type(e).__name__}: {e}"
    return hashlib.sha256(data).hexdigest()


def _load_core(path: str | None):
    """hlo2onnx._core, or the extension module at path (another build).  The
    errors it raises are hlo2onnx.errors classes: the package must import
    (from this checkout when it is not installed)."""
    try:
        import hlo2onnx  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    if path is None:
        from hlo2onnx import _core
        return _core
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.ExtensionFileLoader("hlo2onnx._core", path)
    spec = importlib.util.spec_from_file_location("hlo2onnx._core", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def replay(directory: str, out: str, core: str | None = None) -> None:
    _core = _load_core(core)

    results = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.pkl"))):
        with open(path, "rb") as f:
            rec = pickle.load(f)
        results[os.path.basename(path)] = _digest(
            _core.convert, rec["text"], rec["params"], rec["options"])
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, "fixtures", "*.mlir"))):
        with open(path, "rb") as f:
            text = f.read()
        for local in (0, 1):
            key = f"fixture {os.path.basename(path)} local_functions={local}"
            results[key] = _digest(_core.convert, text, [], {"local_functions": local})
    with open(out, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    print(f"{len(results)} conversions replayed into {out}")


def diff(a: str, b: str) -> int:
    with open(a) as f:
        left = json.load(f)
    with open(b) as f:
        right = json.load(f)
    changed = [k for k in sorted(set(left) | set(right)) if left.get(k) != right.get(k)]
    for k in changed:
        print(f"{k}:\n  - {left.get(k)}\n  + {right.get(k)}")
    print(f"{len(changed)} of {len(set(left) | set(right))} differ")
    return 1 if changed else 0


if __name__ == "__main__":
    if len(sys.argv) in (4, 5) and sys.argv[1] == "replay":
        replay(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) == 5 else None)
    elif len(sys.argv) == 4 and sys.argv[1] == "diff":
        sys.exit(diff(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
