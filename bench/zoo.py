"""The model zoo: onnxruntime against jax.jit, node counts, memory, the CLI.

    python bench/zoo.py                      # everything, ~10 minutes on 2 cores
    python bench/zoo.py --only kh_bert,nnx_gpt --parts zoo
    python bench/zoo.py --parts memory,cli   # parts: zoo, memory, cli
    python bench/zoo.py --no-jax2onnx --profile

Parts (each step in a fresh process, so one model's memory or crash does
not touch the next):

* ``zoo``: for each model of zoo_models.py (keras-hub, transformers' Flax,
  Haiku, Equinox, Linen, NNX), ``worker hlo2onnx`` builds it (weights
  computed: ``jax.block_until_ready``), converts it with a dynamic batch "B"
  and with a static batch of 8, and in the same process times
  ``jax.jit(f)(params, *x)`` and onnxruntime on the dynamic-B graph at batch
  1 and 8 (and the static graph at 8): onnxruntime with 2 intra-op threads
  (``intra_op_num_threads=2``, the machine's cores; XLA's CPU client uses
  them too), timings interleaved over 5 rounds and reported as medians of
  all runs.  It counts nodes by type in our graphs and in the graph
  onnxruntime keeps after its own optimisations (``optimized_model_filepath``)
  and checks the outputs against JAX.  A model with a sequence axis is
  also converted with "B" and "T" symbolic and timed at batch 8 in the same
  rounds (a dynamic sequence length).  ``--profile`` adds onnxruntime's
  profiler (time per op type, dynamic and static graph).  ``worker
  jax2onnx`` converts the same model with jax2onnx (dynamic "B") where it
  can and measures its graph the same way.
* ``memory``: ``to_onnx`` of a 512 MiB model (two 8192×8192 layers, issue
  12's Equinox case) written with each binding path: NNX, Linen, Equinox,
  Haiku (``params=``) and Keras (``params=``).  Added memory = peak RSS
  during the call (VmHWM, reset through ``/proc/self/clear_refs``) minus RSS
  before, and the anonymous memory (RssAnon, sampled every millisecond)
  likewise: the call itself, after the model's arrays are computed.
* ``cli``: the ``hlo2onnx`` command on gen_mlir.py's module (256 MiB of
  weights as hex text by default), to a file and to /dev/null, against a
  memcpy of as many bytes in the same run; and the hex decoder alone
  (hexbench.c, when a build tree with libh2o.a is found) against memcpy.

Results go to bench/out/zoo.json and between the ZOO markers of
bench/README.md.  It is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from common import fmt_num, log, machine, reset_peak, settle, status_mb, update_readme  # noqa: E402
README = os.path.join(HERE, "README.md")
MARK_START = "<!-- ZOO RESULTS START -->"
MARK_END = "<!-- ZOO RESULTS END -->"
BATCHES = (1, 8)
STATIC_B = 8
ORT_THREADS = 2
MEM_KINDS = ("nnx", "linen", "equinox", "haiku", "keras", "equinox_nowait")


# ---------------------------------------------------------------------------
# Measuring


def timed_rounds(fns: dict, rounds: int = 5, per_round_s: float = 0.1) -> dict:
    """Runs each callable of ``fns`` (already warmed up) in ``rounds``
    interleaved rounds of about ``per_round_s`` each, the order rotated every
    round, each stretch after a pause and an unmeasured call; returns the median wall time of one call in ms, the median CPU
    time of the process (all threads, spinning included) during one call,
    and the number of calls."""
    per_call = {}
    for k, f in fns.items():  # calibrate: calls per round
        t0 = time.perf_counter()
        f()
        per_call[k] = max(time.perf_counter() - t0, 1e-6)
    samples, cpu = collections.defaultdict(list), collections.defaultdict(list)
    keys = list(fns)
    for r in range(rounds):  # a different order each round: no fixed neighbour
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            f = fns[k]
            n = max(2, min(200, int(per_round_s / per_call[k])))
            # onnxruntime's pool threads spin for a while after a run: let the
            # previous session's threads go to sleep, then one unmeasured call
            time.sleep(0.02)
            f()
            for _ in range(n):
                t0, c0 = time.perf_counter(), time.process_time()
                f()
                samples[k].append(time.perf_counter() - t0)
                cpu[k].append(time.process_time() - c0)
    return {k: {"ms": 1e3 * statistics.median(v), "cpu_ms": 1e3 * statistics.median(cpu[k]),
                "n": len(v)} for k, v in samples.items()}


def op_counts(model) -> dict:
    """Node count per op type, subgraphs and local functions included."""
    c = collections.Counter()

    def walk(g):
        for n in g.node:
            c[n.op_type] += 1
            for a in n.attribute:
                if a.g is not None and a.g.node:
                    walk(a.g)
                for sg in a.graphs:
                    walk(sg)

    walk(model.graph)
    for f in model.functions:
        for n in f.node:
            c[n.op_type] += 1
    return dict(c.most_common())


def ort_session(path: str, optimized_path: str | None = None, profile_prefix: str | None = None,
                spinning: bool = True):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = ORT_THREADS
    o.inter_op_num_threads = 1
    o.log_severity_level = 3
    if not spinning:  # pool threads sleep between kernels instead of spinning
        o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_path:
        o.optimized_model_filepath = optimized_path
    if profile_prefix:
        o.enable_profiling = True
        o.profile_file_prefix = profile_prefix
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def ort_profile(path: str, feeds: dict, prefix: str, runs: int = 20) -> dict:
    """Time per op type (µs per run) from onnxruntime's profiler."""
    s = ort_session(path, profile_prefix=prefix)
    for _ in range(3):
        s.run(None, feeds)
    prof = s.end_profiling()  # the warm-up runs: discarded
    os.unlink(prof)
    s = ort_session(path, profile_prefix=prefix)
    s.run(None, feeds)
    for _ in range(runs):
        s.run(None, feeds)
    prof = s.end_profiling()
    with open(prof) as f:
        events = json.load(f)
    os.unlink(prof)
    by_op = collections.Counter()
    nodes = collections.Counter()
    total = 0.0
    model_run = []
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            by_op[op] += e["dur"]
            nodes[op] += 1
            total += e["dur"]
        elif e.get("cat") == "Session" and e.get("name") == "model_run":
            model_run.append(e["dur"])
    n = runs + 1
    return {"kernel_us": total / n, "run_us": statistics.median(model_run) if model_run else None,
            "by_op_us": {k: v / n for k, v in by_op.most_common()},
            "calls_per_run": {k: v / n for k, v in nodes.most_common()}}


def max_diff(got, want) -> float:
    import numpy as np

    d = 0.0
    for g, w in zip(got, want):
        w = np.asarray(w)
        if g.shape != w.shape:
            return float("inf")
        if g.size:
            d = max(d, float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64)))))
    return d


def ref_scale(want) -> float:
    import numpy as np

    return max((float(np.max(np.abs(np.asarray(w)))) for w in want if np.asarray(w).size),
               default=0.0)


# ---------------------------------------------------------------------------
# Workers (fresh processes)


def _specs(case, b=None):
    return [tuple(b if (d == "B" and b is not None) else d for d in shape) for shape, _ in
            case.specs]


def _dtypes(case):
    return [dt for _, dt in case.specs]


def _seq_specs(case, seq_len):
    """The specs with the sequence axis (axis 1 of length seq_len, not of an
    image) symbolic "T" too; None for a model without one."""
    specs = [tuple("T" if (i == 1 and d == seq_len and len(shape) <= 3) else d
                   for i, d in enumerate(shape)) for shape, _ in case.specs]
    return specs if any("T" in s for s in specs) else None


def worker(name: str, out_dir: str, profile: bool, jax2onnx: bool) -> dict:
    """hlo2onnx (and jax2onnx) on one zoo model: conversions, node counts,
    latencies of JAX and of each graph in onnxruntime, interleaved."""
    import jax
    import numpy as np
    import onnx

    import hlo2onnx
    import zoo_models
    from hlo2onnx import convert

    res = {"model": name, "tool": "hlo2onnx", "version": hlo2onnx.__version__}
    t0 = time.perf_counter()
    case = zoo_models.build(name)
    res.update(library=case.library, what=case.what, build_s=time.perf_counter() - t0)
    bound = convert.bind(case.obj, case.params)
    res["params"] = int(sum(np.size(v) for v in bound.values))
    res["weight_bytes"] = int(sum(np.asarray(v).nbytes for v in bound.values))

    names = case.input_names or [f"x{i}" for i in range(len(case.specs))]
    paths = {"dyn": os.path.join(out_dir, f"{name}.onnx"),
             "static": os.path.join(out_dir, f"{name}_b{STATIC_B}.onnx")}
    t0 = time.perf_counter()
    hlo2onnx.to_onnx(case.obj, _specs(case), paths["dyn"], params=case.params,
                     input_dtypes=_dtypes(case), input_names=names, progress=False)
    res["convert_s"] = time.perf_counter() - t0
    hlo2onnx.to_onnx(case.obj, _specs(case, STATIC_B), paths["static"], params=case.params,
                     input_dtypes=_dtypes(case), input_names=names, progress=False)
    seq = _seq_specs(case, zoo_models.T)
    if seq:  # a dynamic sequence length too (a table of its own)
        paths["seq"] = os.path.join(out_dir, f"{name}_seq.onnx")
        try:
            hlo2onnx.to_onnx(case.obj, seq, paths["seq"], params=case.params,
                             input_dtypes=_dtypes(case), input_names=names, progress=False,
                             shape_constraints=[f"T <= {zoo_models.T}"])
        except Exception as e:  # noqa: BLE001 - reported in the table
            res["seq_error"] = f"{type(e).__name__}: {str(e)[:160]}"
            del paths["seq"]
    if jax2onnx:
        j = res["jax2onnx"] = convert_jax2onnx(case, bound, names,
                                               os.path.join(out_dir, f"{name}_jax2onnx.onnx"), 120)
        if not j.get("error"):
            paths["j2o"] = os.path.join(out_dir, f"{name}_jax2onnx.onnx")
    sess = {}
    for k, p in list(paths.items()):
        try:
            res[f"nodes_{k}"] = op_counts(onnx.load(p, load_external_data=False))
            opt = p[:-5] + ".ort.onnx"
            ort_session(p, optimized_path=opt)
            res[f"nodes_{k}_ort"] = op_counts(onnx.load(opt, load_external_data=False))
            sess[k] = ort_session(p)
            if k == "dyn":
                sess["nospin"] = ort_session(p, spinning=False)
        except Exception as e:
            if k != "j2o":
                raise
            res["jax2onnx"]["error"] = f"onnxruntime: {type(e).__name__}: {str(e)[:160]}"
            del paths[k]

    jitted = jax.jit(bound.apply)
    fns, diffs, scale = {}, {}, {}
    for b in BATCHES:
        xs = case.inputs(b)
        want = jax.block_until_ready(jitted(bound.values, *xs))
        want = [np.asarray(w) for w in jax.tree_util.tree_leaves(want)]
        feeds = dict(zip(names, xs))
        keys = [("dyn", b), ("nospin", b)] + ([("static", b)] if b == STATIC_B else []) + \
            ([("seq", b)] if b == STATIC_B and "seq" in sess else []) + \
            ([("j2o", b)] if "j2o" in sess else [])
        for k, bb in keys:
            try:
                got = sess[k].run(None, feeds)
            except Exception as e:
                if k != "j2o":
                    raise
                res["jax2onnx"]["error"] = f"onnxruntime at B={b}: {str(e)[:160]}"
                del sess[k]
                fns = {n: f for n, f in fns.items() if "j2o" not in n}
                diffs = {n: d for n, d in diffs.items() if "j2o" not in n}
                continue
            diffs[f"{k}_b{bb}"] = max_diff(got, want)
            fns[f"ort_{k}_b{bb}"] = (lambda s=sess[k], f=feeds: s.run(None, f))
        scale[f"b{b}"] = ref_scale(want)
        fns[f"jax_b{b}"] = (lambda xs=xs: jax.block_until_ready(jitted(bound.values, *xs)))
        for f in fns.values():  # warm up
            f()
    res["max_abs_diff"], res["ref_max_abs"] = diffs, scale
    res["latency"] = timed_rounds(fns)
    if profile:
        xs = case.inputs(STATIC_B)
        feeds = dict(zip(names, xs))
        res["profile"] = {k: ort_profile(p, feeds, os.path.join(out_dir, f"prof_{name}_{k}"))
                          for k, p in paths.items() if k in sess and k != "seq"}
    return res


def convert_jax2onnx(case, bound, names, path: str, time_cap: int) -> dict:
    """jax2onnx's to_onnx of the same model with a dynamic "B" (the NNX
    module itself; otherwise the bound function with the weights closed
    over), stopped by SIGALRM after ``time_cap`` s (it is pure Python)."""
    import importlib.metadata
    import signal

    import jax

    res = {"tool": "jax2onnx"}
    try:
        from jax2onnx import to_onnx

        res["version"] = importlib.metadata.version("jax2onnx")
    except ImportError as e:
        return {"error": f"not installed ({e})"}
    fn = case.j2o
    if fn is None:
        values = bound.values

        def fn(*xs):
            return bound.apply(values, *xs)

    scope = jax.export.SymbolicScope()
    specs = [jax.ShapeDtypeStruct(jax.export.symbolic_shape(
        ", ".join(str(d) for d in shape), scope=scope), dt) for shape, dt in case.specs]

    def alarm(signum, frame):
        raise TimeoutError(f"time cap ({time_cap} s)")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(time_cap)
    t0 = time.perf_counter()
    try:
        to_onnx(fn, specs, return_mode="file", output_path=path, input_names=names)
        res["convert_s"] = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - reported in the table
        msg = str(e).strip().splitlines()
        res["error"] = f"{type(e).__name__}: {msg[0][:160] if msg else ''}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return res


class AnonSampler:
    """The peak of RssAnon, read every millisecond from a thread (the C core
    and XLA release the GIL; Python-heavy tracing hands it over every 5 ms)."""

    def __init__(self):
        self.peak = status_mb("RssAnon")
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, status_mb("RssAnon"))
            time.sleep(0.001)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, status_mb("RssAnon"))


def worker_memory(kind: str, out_dir: str, width: int) -> dict:
    import hlo2onnx
    import zoo_models

    obj, params, spec, weight_bytes = zoo_models.build_memory(kind, width)
    path = os.path.join(out_dir, f"mem_{kind}.onnx")

    settle()
    if not reset_peak():
        raise OSError("cannot reset VmHWM through /proc/self/clear_refs")
    rss0, anon0 = status_mb("VmRSS"), status_mb("RssAnon")
    t0 = time.perf_counter()
    with AnonSampler() as s:
        hlo2onnx.to_onnx(obj, spec, path, params=params, progress=False)
    res = {"kind": kind, "weight_bytes": weight_bytes, "convert_s": time.perf_counter() - t0,
           "rss_before_mb": rss0, "added_peak_mb": status_mb("VmHWM") - rss0,
           "anon_before_mb": anon0, "anon_added_peak_mb": s.peak - anon0,
           "anon_added_after_mb": status_mb("RssAnon") - anon0,
           "file_bytes": os.path.getsize(path) + (os.path.getsize(path + ".data")
                                                  if os.path.exists(path + ".data") else 0)}
    for p in (path, path + ".data"):
        if os.path.exists(p):
            os.unlink(p)
    return res


# ---------------------------------------------------------------------------
# The runner


def run_worker(args: list[str], timeout: float, log_path: str) -> dict | None:
    result = log_path[:-4] + ".json"
    if os.path.exists(result):
        os.unlink(result)
    env = dict(os.environ, JAX_PLATFORMS="cpu", KERAS_BACKEND="jax", PYTHONUNBUFFERED="1",
               TF_CPP_MIN_LOG_LEVEL="3")
    t0 = time.perf_counter()
    with open(log_path, "w") as out:
        try:
            p = subprocess.run([sys.executable, os.path.abspath(__file__), "worker", *args,
                                "--result", result], stdout=out, stderr=subprocess.STDOUT,
                               env=env, timeout=timeout)
            ended = "ok" if p.returncode == 0 else f"failed (exit {p.returncode})"
        except subprocess.TimeoutExpired:
            ended = f"time cap ({timeout:.0f} s)"
    wall = time.perf_counter() - t0
    if ended == "ok" and os.path.exists(result):
        with open(result) as f:
            r = json.load(f)
        r["process_s"] = wall
        return r
    tail = open(log_path).read().strip().splitlines()[-1:] if os.path.exists(log_path) else []
    return {"error": ended + (": " + tail[0][:200] if tail else ""), "process_s": wall}


def run_cli_part(out_dir: str, width: int, layers: int, repeats: int) -> dict:
    import numpy as np

    import gen_mlir

    exe = os.environ.get("H2O_CLI") or shutil.which("hlo2onnx")
    mlir = os.path.join(out_dir, f"mlp_{width}x{layers}.mlir")
    if not os.path.exists(mlir):
        log(f"[cli] writing {mlir} ...")
        gen_mlir.write_module(mlir + ".part", width, layers)
        os.replace(mlir + ".part", mlir)
    weight_bytes = layers * (width * width + width) * 4
    subprocess.run(["cat", mlir], stdout=subprocess.DEVNULL, check=True)  # page cache
    onnx_path = os.path.join(out_dir, "cli.onnx")
    res = {"exe": exe, "weight_bytes": weight_bytes, "text_bytes": os.path.getsize(mlir),
           "file": [], "devnull": []}
    for _ in range(repeats):
        for key, target in (("file", onnx_path), ("devnull", os.devnull)):
            t0 = time.perf_counter()
            r0 = os.times()
            subprocess.run([exe, "-q", mlir, "-o", target], check=True)
            r1 = os.times()
            res[key].append({"wall_s": time.perf_counter() - t0,
                             "cpu_s": (r1.children_user - r0.children_user) +
                                      (r1.children_system - r0.children_system)})
            for p in (onnx_path, onnx_path + ".data"):
                if os.path.exists(p):
                    os.unlink(p)
    # memcpy of as many bytes, in this run: a copy between two buffers
    # already touched (np.copyto is a memcpy for contiguous arrays).
    src = np.ones(weight_bytes, np.uint8)
    dst = np.zeros(weight_bytes, np.uint8)
    times = []
    for _ in range(max(3, repeats)):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
    res["memcpy_s"] = statistics.median(times)
    del src, dst
    for key in ("file", "devnull"):
        res[key + "_wall_s"] = statistics.median(r["wall_s"] for r in res[key])
        res[key + "_cpu_s"] = statistics.median(r["cpu_s"] for r in res[key])
    hb = hexbench(out_dir)
    if hb:
        res["hexbench"] = hb
    return res


def hexbench(out_dir: str) -> dict | None:
    """The decoder alone: bench/hexbench.c linked with a build tree's
    libh2o.a (H2O_BUILD, else build/dev or build); None when there is none."""
    cands = [os.environ.get("H2O_BUILD", "")] + [os.path.join(ROOT, d) for d in
                                                  ("build/dev", "build")]
    lib = next((os.path.join(d, "libh2o.a") for d in cands
                if d and os.path.exists(os.path.join(d, "libh2o.a"))), None)
    cc = shutil.which("cc") or shutil.which("gcc")
    if not lib or not cc:
        return None
    exe = os.path.join(out_dir, "hexbench")
    subprocess.run([cc, "-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L",
                    "-I" + os.path.join(ROOT, "src"), os.path.join(HERE, "hexbench.c"), lib,
                    "-lm", "-o", exe], check=True)
    out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def versions() -> dict:
    import importlib.metadata as m

    out = {}
    for p in ("jax", "flax", "onnx", "onnxruntime", "numpy", "keras", "keras-hub",
              "transformers", "dm-haiku", "equinox", "jax2onnx"):
        try:
            out[p] = m.version(p)
        except m.PackageNotFoundError:
            pass
    return out


# ---------------------------------------------------------------------------
# Tables


def _lat(r, key, what="ms"):
    return (r.get("latency") or {}).get(key, {}).get(what)


def _ratio(a, b) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def _n(counts) -> str:
    return "—" if not counts else str(sum(counts.values()))


def _ok(r, graph=("dyn", "static")) -> str:
    """✅ and the largest abs diff from JAX over the graphs' outputs (tolerance
    1e-4 + 1e-3 × the largest |JAX output| at that batch size)."""
    d = {k: v for k, v in (r.get("max_abs_diff") or {}).items() if k.split("_")[0] in graph}
    if not d:
        return "—"
    scale = r.get("ref_max_abs") or {}
    ok = all(v <= 1e-4 + 1e-3 * scale.get(k.rsplit("_", 1)[1], 1.0) for k, v in d.items())
    return ("✅" if ok else "❌") + f" {max(d.values()):.0e}"


KINDS = {
    "compute": {"MatMul", "Gemm", "Conv", "FusedMatMul", "FusedGemm", "FusedConv", "MatMulNBits",
                "QLinearMatMul", "NhwcConv", "Attention", "MultiHeadAttention", "Einsum",
                "ConvTranspose", "MatMulInteger"},
    "moves": {"Transpose", "Reshape", "Expand", "Concat", "Cast", "Shape", "Unsqueeze", "Squeeze",
              "Slice", "Gather", "Where", "Range", "Identity", "ReorderInput", "ReorderOutput",
              "Tile", "Pad", "GatherElements", "ScatterND", "Split", "ConstantOfShape"},
    "norm": {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSumSquare", "Sqrt",
             "Reciprocal", "Pow", "Div", "LayerNormalization", "SimplifiedLayerNormalization",
             "SkipLayerNormalization", "BatchNormalization", "Softmax"},
}


def _shares(p: dict) -> dict:
    tot = p["kernel_us"] or 1.0
    out = dict.fromkeys(("compute", "moves", "norm", "elementwise"), 0.0)
    for op, us in p["by_op_us"].items():
        kind = next((k for k, ops in KINDS.items() if op in ops), "elementwise")
        out[kind] += 100 * us / tot
    return out


def zoo_models_T() -> int:
    import zoo_models
    return zoo_models.T


def tables(res: dict) -> str:
    m, v = res["machine"], res["versions"]
    lines = [f"Run on {m['date']}: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python "
             f"{m['python']}; " + ", ".join(f"{k} {x}" for k, x in v.items()) + ". "
             f"Load average (1 min) during the run: {res['load_min']:.1f} to "
             f"{res['load_max']:.1f} on {m['cores']} cores"
             + (" (the machine was shared with other work)" if res["load_max"] > 1.5 else "")
             + "."]
    zoo = res.get("zoo")
    if zoo:
        # One row per model in each table: latency (errors too), then graphs.
        latency, graphs = [], []
        for name, h in zoo.items():
            if h.get("error"):
                latency.append(f"| `{name}` | {h.get('library', '')} | — | — | "
                               f"**{h['error'][:80]}** | | | | | | | | | | | | |")
                continue
            j = h.get("jax2onnx") or {}
            j_ok = not j.get("error")
            jb1, jb8 = _lat(h, "jax_b1"), _lat(h, "jax_b8")
            ob1, ob8 = _lat(h, "ort_dyn_b1"), _lat(h, "ort_dyn_b8")
            j1 = fmt_num(_lat(h, "ort_j2o_b1")) if j_ok else "fails"
            j8 = fmt_num(_lat(h, "ort_j2o_b8")) if j_ok else "fails"
            if j_ok and _ok(h, ("j2o",)).startswith("❌"):
                j8 += f" ({_ok(h, ('j2o',))})"
            latency.append(
                f"| `{name}` | {h['library']} | {h['params'] / 1e6:.1f} M | {fmt_num(jb1)} | "
                f"{fmt_num(ob1)} | {_ratio(ob1, jb1)} | {fmt_num(jb8)} | {fmt_num(ob8)} | "
                f"{_ratio(ob8, jb8)} | "
                f"{_ratio(_lat(h, 'ort_dyn_b1', 'cpu_ms'), _lat(h, 'jax_b1', 'cpu_ms'))} | "
                f"{_ratio(_lat(h, 'ort_dyn_b8', 'cpu_ms'), _lat(h, 'jax_b8', 'cpu_ms'))} | "
                f"{fmt_num(_lat(h, 'ort_nospin_b1'))} | {fmt_num(_lat(h, 'ort_nospin_b8'))} | "
                f"{fmt_num(_lat(h, 'ort_static_b8'))} | {j1} | {j8} | {_ok(h)} |")
            jn = _n(h.get("nodes_j2o")) if j_ok else \
                "fails: " + j["error"][:70].replace("|", "/")
            graphs.append(
                f"| `{name}` | {h['what']} | {_n(h.get('nodes_dyn'))} | "
                f"{_n(h.get('nodes_static'))} | {_n(h.get('nodes_dyn_ort'))} | "
                f"{_n(h.get('nodes_static_ort'))} | {jn} | {_n(h.get('nodes_j2o_ort'))} | "
                f"{fmt_num(h.get('convert_s'))} s | "
                f"{fmt_num(j.get('convert_s')) + ' s' if j.get('convert_s') else '—'} |")
        lines += [
            "", "**Latency** (ms per call, median over 5 interleaved rounds; onnxruntime "
            f"{ORT_THREADS} intra-op threads, `jax.jit` on the same 2 cores, same process, "
            "same inputs; *ratio* = onnxruntime / JAX, under 1 = onnxruntime faster; *CPU ratio*: "
            "the same for the process's CPU time during a call (all threads; onnxruntime's "
            "spinning threads count), steadier than wall time on a loaded machine; *no spin*: "
            "onnxruntime with `session.intra_op.allow_spinning = 0`; the ONNX "
            f"graph has a dynamic batch \"B\"; *static* is the graph converted at B = {STATIC_B}):",
            "", "| model | library | params | JAX B=1 | ORT B=1 | ratio | JAX B=8 | ORT B=8 | "
            "ratio | CPU ratio B=1 | CPU ratio B=8 | ORT no spin B=1 | ORT no spin B=8 | "
            "ORT static B=8 | jax2onnx ORT B=1 | jax2onnx ORT B=8 | ORT vs JAX |",
            "|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|:--|"]
        lines += latency
        lines += [
            "", "**Graphs** (node counts: ours with dynamic \"B\" and with B = 8; what "
            "onnxruntime keeps after its optimisations (`optimized_model_filepath`); "
            "jax2onnx's with dynamic \"B\"; conversion time of the dynamic graph):", "",
            "| model | what | nodes (B) | nodes (B=8) | after ORT (B) | after ORT (B=8) | "
            "jax2onnx nodes | jax2onnx after ORT | to_onnx | jax2onnx to_onnx |",
            "|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|"]
        lines += graphs
        seq_rows = []
        for name, h in zoo.items():
            if h.get("error") or not (h.get("nodes_seq") or h.get("seq_error")):
                continue
            if h.get("seq_error"):
                seq_rows.append(f"| `{name}` | {_n(h.get('nodes_static'))} | "
                                f"{_n(h.get('nodes_dyn'))} | **{h['seq_error'][:80]}** | | | | |")
                continue
            nb, ns = sum(h["nodes_dyn"].values()), sum(h["nodes_seq"].values())
            ob8, os8 = _lat(h, "ort_dyn_b8"), _lat(h, "ort_seq_b8")
            seq_rows.append(
                f"| `{name}` | {_n(h.get('nodes_static'))} | {nb} | {ns} "
                f"({100 * (ns - nb) / nb:+.0f} %) | {fmt_num(ob8)} | {fmt_num(os8)} | "
                f"{_ratio(os8, ob8)} | {_ratio(os8, _lat(h, 'jax_b8'))} |")
        if seq_rows:
            lines += [
                "", "**A dynamic sequence length** (the models with one: the graph converted "
                f"with \"B\" and \"T\" symbolic, `shape_constraints=[\"T <= {zoo_models_T()}\"]` "
                "for the position tables; nodes against the static and the dynamic-batch "
                f"graph; onnxruntime at B = {STATIC_B}, T = {zoo_models_T()}, in the same rounds "
                "as the latency table):", "",
                "| model | nodes (static) | nodes (B) | nodes (B, T) | ORT B=8 (B) | "
                "ORT B=8 (B, T) | (B, T) / (B) | (B, T) / JAX |",
                "|:--|--:|--:|--:|--:|--:|--:|--:|"]
            lines += seq_rows
    prof = {n: h["profile"] for n, h in (zoo or {}).items() if h.get("profile")}
    if prof:
        lines += ["", f"**onnxruntime's profile** (`enable_profiling`, B = {STATIC_B}, 20 runs; "
                  "share of the kernel time per kind of op; *compute*: MatMul, Gemm, Conv and "
                  "their fused forms; *moves*: Transpose, Reshape, Expand, Concat, Cast, Shape, "
                  "(Un)Squeeze, Slice, Gather, Where, Range; *norm*: reductions, Sqrt, "
                  "Reciprocal, Pow, Div; the rest is *elementwise*; *compute ÷ JAX*: the "
                  "compute kernels' time per run over `jax.jit`'s latency at the same batch, "
                  "the ratio the graph would reach if everything else took no time):", "",
                  "| model | graph | kernel time / run | compute | moves | norm | elementwise | "
                  "compute ÷ JAX | top op types (share, nodes run) |",
                  "|:--|:--|--:|--:|--:|--:|--:|--:|:--|"]
        for name, pr in prof.items():
            jax_b8 = _lat(zoo[name], "jax_b8")
            for g, p in pr.items():
                sh = _shares(p)
                floor = _ratio(sh["compute"] * p["kernel_us"] / 1e5, jax_b8)
                top = ", ".join(f"{op} {100 * us / p['kernel_us']:.0f} % ({p['calls_per_run'][op]:.0f})"
                                for op, us in list(p["by_op_us"].items())[:4])
                label = {"dyn": "ours, B", "static": f"ours, B={STATIC_B}",
                         "j2o": "jax2onnx"}.get(g, g)
                lines.append(f"| `{name}` | {label} | {p['kernel_us'] / 1e3:.1f} ms | "
                             f"{sh['compute']:.0f} % | {sh['moves']:.0f} % | {sh['norm']:.0f} % | "
                             f"{sh['elementwise']:.0f} % | {floor} | {top} |")
    mem = res.get("memory")
    if mem:
        w = next((r["weight_bytes"] for r in mem.values() if r.get("weight_bytes")), 0)
        lines += ["", f"**Memory added by `to_onnx`** (a two-layer MLP of width "
                  f"{res.get('mem_width')}: {w / 2**20:.0f} MiB of float32 weights, each "
                  "library's own layers; fresh process; the model's arrays computed before the "
                  "call; *peak RSS* from VmHWM, *RssAnon* sampled every ms):", "",
                  "| binding | to_onnx | added peak RSS | % of weights | added peak RssAnon | "
                  "% of weights | RssAnon after |",
                  "|:--|--:|--:|--:|--:|--:|--:|"]
        for k, r in mem.items():
            if r.get("error"):
                lines.append(f"| {k} | **{r['error'][:80]}** | | | | | |")
                continue
            wb = r["weight_bytes"] / 2**20
            label = {"equinox_nowait": "equinox, called right after construction (no "
                     "`block_until_ready`: Equinox's initialisers still running)"}.get(k, k)
            lines.append(f"| {label} | {r['convert_s']:.2f} s | {r['added_peak_mb']:.0f} MiB | "
                         f"{100 * r['added_peak_mb'] / wb:.1f} % | "
                         f"{r['anon_added_peak_mb']:.0f} MiB | "
                         f"{100 * r['anon_added_peak_mb'] / wb:.1f} % | "
                         f"{r['anon_added_after_mb']:+.0f} MiB |")
    c = res.get("cli")
    if c:
        wb = c["weight_bytes"]
        rate = lambda s: f"{wb / 1e9 / s:.2f} GB/s"  # noqa: E731
        lines += ["", f"**The CLI path** (`hlo2onnx -q in.mlir -o out`, gen_mlir.py's module: "
                  f"{wb / 2**20:.0f} MiB of weights as {c['text_bytes'] / 2**20:.0f} MiB of hex "
                  "text, from the page cache; weight bytes per second of wall time, medians):", "",
                  "| to | wall | CPU | weight bytes / s | memcpy of as many bytes | "
                  "CLI / memcpy time |", "|:--|--:|--:|--:|--:|--:|"]
        for key, label in (("file", "a file (+ `fsync`)"), ("devnull", "`/dev/null`")):
            lines.append(f"| {label} | {c[key + '_wall_s']:.3f} s | {c[key + '_cpu_s']:.3f} s | "
                         f"{rate(c[key + '_wall_s'])} | {rate(c['memcpy_s'])} | "
                         f"{c[key + '_wall_s'] / c['memcpy_s']:.1f}× |")
        hb = c.get("hexbench")
        if hb:
            lines += ["", f"The decoder alone (`hexbench.c`: `hex_decode` from libh2o.a, "
                      f"{hb['bytes'] / 2**20:.0f} MiB of output per call, medians of "
                      f"{hb['runs']}): " + "; ".join(
                          f"{k} {x['hex_gbs']:.1f} GB/s against memcpy {x['memcpy_gbs']:.1f} GB/s "
                          f"({x['memcpy_gbs'] / x['hex_gbs']:.2f}× memcpy's time)"
                          for k, x in hb["cases"].items()) + "."]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        ap = argparse.ArgumentParser()
        ap.add_argument("worker")
        ap.add_argument("kind", choices=["zoo", "memory"])
        ap.add_argument("name")
        ap.add_argument("--out", required=True)
        ap.add_argument("--result", required=True)
        ap.add_argument("--profile", action="store_true")
        ap.add_argument("--no-jax2onnx", action="store_true")
        ap.add_argument("--width", type=int, default=8192)
        a = ap.parse_args()
        if a.kind == "zoo":
            r = worker(a.name, a.out, a.profile, not a.no_jax2onnx)
        else:
            r = worker_memory(a.name, a.out, a.width)
        with open(a.result, "w") as f:
            json.dump(r, f, indent=1)
        return

    import zoo_models

    ap = argparse.ArgumentParser(description="hlo2onnx's model zoo: ORT against jax.jit")
    ap.add_argument("--parts", default="zoo,memory,cli")
    ap.add_argument("--only", default=None, help="comma-separated zoo models (default: all)")
    ap.add_argument("--no-jax2onnx", action="store_true")
    ap.add_argument("--profile", action="store_true", help="onnxruntime's profiler per op type")
    ap.add_argument("--mem-width", type=int, default=zoo_models.MEM_WIDTH)
    ap.add_argument("--cli-width", type=int, default=4096)
    ap.add_argument("--cli-layers", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5, help="CLI runs")
    ap.add_argument("--out", default=os.path.join(HERE, "out", "zoo"))
    ap.add_argument("--no-readme", action="store_true")
    a = ap.parse_args()
    parts = a.parts.split(",")
    os.makedirs(a.out, exist_ok=True)
    res_path = os.path.join(a.out, "zoo.json")
    res = {"machine": machine(), "versions": versions(), "mem_width": a.mem_width}
    loads = [os.getloadavg()[0]]

    def save():
        res["load_min"], res["load_max"] = min(loads), max(loads)
        with open(res_path, "w") as f:
            json.dump(res, f, indent=1)

    t_start = time.perf_counter()
    if "zoo" in parts:
        res["zoo"] = {}
        names = a.only.split(",") if a.only else list(zoo_models.ZOO)
        for name in names:
            loads.append(os.getloadavg()[0])
            log(f"[{name}] (load {loads[-1]:.1f}) ...")
            args = ["zoo", name, "--out", a.out] + (["--profile"] if a.profile else []) + \
                (["--no-jax2onnx"] if a.no_jax2onnx else [])
            r = res["zoo"][name] = run_worker(args, 420, os.path.join(a.out, f"{name}.log"))
            log("    " + (r.get("error") or
                         f"{r['process_s']:.0f} s; " + ", ".join(
                             f"{k} {v['ms']:.2f} ms" for k, v in r["latency"].items()) +
                         ("; jax2onnx: " + r["jax2onnx"]["error"]
                          if r.get("jax2onnx", {}).get("error") else "")))
            save()
    if "memory" in parts:
        res["memory"] = {}
        for kind in MEM_KINDS:
            loads.append(os.getloadavg()[0])
            log(f"[memory / {kind}] (load {loads[-1]:.1f}) ...")
            r = res["memory"][kind] = run_worker(
                ["memory", kind, "--out", a.out, "--width", str(a.mem_width)], 300,
                os.path.join(a.out, f"mem_{kind}.log"))
            log("    " + (r.get("error") or f"added peak {r['added_peak_mb']:.0f} MiB, RssAnon "
                                            f"{r['anon_added_peak_mb']:.0f} MiB"))
            save()
    if "cli" in parts:
        loads.append(os.getloadavg()[0])
        log("[cli] ...")
        res["cli"] = run_cli_part(a.out, a.cli_width, a.cli_layers, a.repeats)
        loads.append(os.getloadavg()[0])
        save()
    res["total_s"] = time.perf_counter() - t_start
    save()
    print(tables(res))
    log(f"total {res['total_s']:.0f} s")
    if not a.no_readme:
        update_readme(README, MARK_START, MARK_END, tables(res))
        log(f"wrote the tables into {README}")


if __name__ == "__main__":
    main()
