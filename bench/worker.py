"""One measured step of the benchmark, run by bench/run.py in a fresh process.

    python worker.py convert --tool hlo2onnx|jax2onnx --model NAME --out FILE.onnx --result R.json
    python worker.py verify --model NAME --onnx FILE.onnx --result R.json
    python worker.py verify-cli --onnx FILE.onnx --width W --layers L --result R.json

``convert`` builds the model (bench/models.py), then measures the converter's
``to_onnx`` call alone: its wall time, and the memory it adds, as the peak
resident set during the call minus the resident set just before it.  The
peak is the kernel's high-water mark (VmHWM), which ``/proc/self/clear_refs``
resets right before the call, so the model's own construction does not
count.  The whole process's peak and wall time are measured by run.py from
outside.  It runs in the project's environment for hlo2onnx and in
bench/.venv-jax2onnx for jax2onnx; the models are the same on both sides.

``verify`` runs the converted model in onnxruntime and compares it with the
JAX model on the same input.  ``verify-cli`` checks the model that the
``hlo2onnx`` command made from gen_mlir.py's module against NumPy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import reset_peak, settle, status_mb


def _write(path: str, result: dict) -> None:
    with open(path, "w") as f:
        json.dump(result, f, indent=1)


def cmd_convert(a) -> None:
    import jax

    import models

    res = {"tool": a.tool, "model": a.model}
    t0 = time.perf_counter()
    model = models.build(a.model)
    x = models.example_input(a.model)
    spec = jax.ShapeDtypeStruct(x.shape, x.dtype)
    res["params"], res["weight_bytes"] = models.n_params(model)
    res["build_s"] = time.perf_counter() - t0

    if a.tool == "hlo2onnx":
        import hlo2onnx

        res["version"] = hlo2onnx.__version__

        def convert():
            hlo2onnx.to_onnx(model, [spec], a.out, input_names=["x"], progress=False)
    else:
        import importlib.metadata

        from jax2onnx import to_onnx

        res["version"] = importlib.metadata.version("jax2onnx")

        def convert():
            to_onnx(model, [spec], return_mode="file", output_path=a.out, input_names=["x"])

    settle()
    res["peak_reset"] = reset_peak()
    res["rss_before_mb"] = status_mb("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    convert()
    res["convert_s"] = time.perf_counter() - t0
    res["convert_cpu_s"] = time.process_time() - c0  # all threads, user + system
    res["hwm_mb"] = status_mb("VmHWM")
    res["added_mb"] = res["hwm_mb"] - res["rss_before_mb"] if res["peak_reset"] else None
    res["onnx_bytes"] = os.path.getsize(a.out)
    data = [f for f in os.listdir(os.path.dirname(os.path.abspath(a.out)))
            if f.startswith(os.path.basename(a.out)) and f != os.path.basename(a.out)
            and not f.endswith(".json")]
    res["data_files"] = {f: os.path.getsize(os.path.join(os.path.dirname(os.path.abspath(a.out)), f))
                         for f in data}
    _write(a.result, res)


def cmd_verify(a) -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort

    import models

    res = {"model": a.model, "onnx": a.onnx}
    model = models.build(a.model)
    x = models.example_input(a.model)
    ref = np.asarray(model(x))
    del model
    settle()
    # onnx.checker by path: the only way for models past 2 GB.
    try:
        onnx.checker.check_model(a.onnx)
        res["checker"] = "ok"
    except Exception as e:  # noqa: BLE001 - reported, not raised
        res["checker"] = f"{type(e).__name__}: {str(e)[:300]}"
    t0 = time.perf_counter()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(a.onnx, opts, providers=["CPUExecutionProvider"])
    res["ort_load_s"] = time.perf_counter() - t0
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    res["max_abs_diff"] = float(diff.max())
    res["max_rel_diff"] = float((diff / (np.abs(ref) + 1e-6)).max())
    res["ref_max_abs"] = float(np.abs(ref).max())
    res["ok"] = bool(np.allclose(got, ref, rtol=a.rtol, atol=a.atol))
    _write(a.result, res)


def cmd_verify_cli(a) -> None:
    import numpy as np
    import onnxruntime as ort

    import gen_mlir

    res = {"onnx": a.onnx}
    x = np.random.default_rng(1).standard_normal((1, a.width), dtype=np.float32)
    ref = gen_mlir.reference(x, a.width, a.layers)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(a.onnx, opts, providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    diff = np.abs(got - ref)
    res["max_abs_diff"] = float(diff.max())
    res["ok"] = bool(np.allclose(got, ref, rtol=1e-4, atol=1e-4))
    _write(a.result, res)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("--tool", choices=["hlo2onnx", "jax2onnx"], required=True)
    c.add_argument("--model", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--result", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--model", required=True)
    v.add_argument("--onnx", required=True)
    v.add_argument("--result", required=True)
    v.add_argument("--rtol", type=float, default=1e-4)
    v.add_argument("--atol", type=float, default=1e-4)
    w = sub.add_parser("verify-cli")
    w.add_argument("--onnx", required=True)
    w.add_argument("--width", type=int, required=True)
    w.add_argument("--layers", type=int, required=True)
    w.add_argument("--result", required=True)
    a = ap.parse_args()
    {"convert": cmd_convert, "verify": cmd_verify, "verify-cli": cmd_verify_cli}[a.cmd](a)


if __name__ == "__main__":
    main()
