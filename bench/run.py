"""hlo2onnx against jax2onnx on big models: one command, results in README.md.

    python bench/run.py                 # everything (about half an hour)
    python bench/run.py --only vit,cli  # a subset: vit, gpt2, big, cli
    python bench/run.py --repeats 5

What it does, in order:

1. Makes ``bench/.venv-jax2onnx`` (once) with the latest jax2onnx from PyPI
   and onnxruntime, so jax2onnx's pinned dependencies never touch the
   project's environment.
2. For each model of bench/models.py (MNIST ViT, GPT-2 small, a 1 B
   decoder) and each tool, runs ``worker.py convert`` in a fresh process:
   hlo2onnx in this interpreter's environment, jax2onnx in the venv.  The
   process's wall time and peak resident set come from the OS (``wait4``);
   the worker reports the ``to_onnx`` call's own time and the memory the
   call adds on top of the built model.  Each run has a time cap and a
   memory cap; a run that hits one is reported as such.  Short runs are
   repeated (``--repeats``) and the medians reported.
3. Checks each converted model in onnxruntime against JAX (``worker.py
   verify``, in this environment: both tools' files are checked the same way).
4. The C core alone: the ``hlo2onnx`` command on a module with 1 GiB of
   hex-encoded weights (gen_mlir.py), its MB/s of weight bytes and peak
   memory, checked against NumPy.
5. Writes bench/out/results.json and the tables of bench/README.md (between
   the RESULTS markers).

Only one measured process runs at a time.  The machine's load average is
recorded before each run: other work on the machine slows both tools alike,
and the README says how loaded the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

from common import fmt_num, log, machine, update_readme

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".venv-jax2onnx")
VENV_PY = os.path.join(VENV, "bin", "python")
README = os.path.join(HERE, "README.md")
MARK_START = "<!-- RESULTS START -->"
MARK_END = "<!-- RESULTS END -->"

GIB = 1 << 30
MODELS = {  # name: (label, repeats scale, time caps per tool in s)
    "vit": ("MNIST ViT", True, {"hlo2onnx": 600, "jax2onnx": 600}),
    "gpt2": ("GPT-2 small", True, {"hlo2onnx": 600, "jax2onnx": 600}),
    "big": ("1 B decoder", False, {"hlo2onnx": 900, "jax2onnx": 1200}),
}
TOLERANCE = {"vit": 1e-4, "gpt2": 1e-4, "big": 1e-3}


# ---------------------------------------------------------------------------
# Running one process, measured by the OS


def _rss_of(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024.0
    except OSError:
        pass
    return 0.0


def measure(cmd: list[str], *, time_cap: float, mem_cap: float, env=None, log_path=None) -> dict:
    """Runs cmd; returns wall time, peak RSS (ru_maxrss via wait4) and how it
    ended: "ok", "failed" (non-zero exit), "time cap" or "memory cap"."""
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True)
    ended = None
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - t0 > time_cap:
            ended = "time cap"
        elif _rss_of(p.pid) > mem_cap:
            ended = "memory cap"
        if ended:
            os.killpg(p.pid, signal.SIGKILL)
            pid, status, ru = os.wait4(p.pid, 0)
            break
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if log_path:
        out.close()
    if ended is None:
        ended = "ok" if p.returncode == 0 else f"failed (exit {p.returncode})"
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "maxrss_mb": ru.ru_maxrss / 1024.0,
            "ended": ended}


def load_avg() -> float:
    return os.getloadavg()[0]


def wait_for_quiet(limit: float, max_wait: float) -> float:
    """Waits (up to max_wait s) for the 1-minute load to drop under limit."""
    t0 = time.time()
    while load_avg() > limit and time.time() - t0 < max_wait:
        time.sleep(10)
    return load_avg()


def clean(path: str) -> None:
    d, base = os.path.split(path)
    if not os.path.isdir(d):
        return
    for f in os.listdir(d):
        if f == base or f.startswith(base + "."):
            try:
                os.unlink(os.path.join(d, f))
            except OSError:
                pass


# ---------------------------------------------------------------------------
# Environment


def ensure_venv(upgrade: bool) -> str:
    if not os.path.exists(VENV_PY):
        log(f"creating {VENV}")
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        upgrade = True
    if upgrade:
        log("installing the latest jax2onnx and onnxruntime into the venv")
        subprocess.run([VENV_PY, "-m", "pip", "install", "-q", "--upgrade", "jax2onnx",
                        "onnxruntime"], check=True)
    return subprocess.run([VENV_PY, "-c", "import importlib.metadata as m; "
                           "print(m.version('jax2onnx'))"],
                          capture_output=True, text=True, check=True).stdout.strip()


def versions(py: str) -> dict:
    code = ("import importlib.metadata as m, json\n"
            "out = {}\n"
            "for p in ('jax', 'jaxlib', 'flax', 'onnx', 'onnxruntime', 'numpy', 'onnx-ir'):\n"
            "    try: out[p] = m.version(p)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))")
    return json.loads(subprocess.run([py, "-c", code], capture_output=True, text=True,
                                     check=True).stdout)


# ---------------------------------------------------------------------------
# The runs


def run_model(name: str, tool: str, repeats: int, out_dir: str, mem_cap: float) -> dict:
    _label, repeat, caps = MODELS[name]
    n = repeats if repeat else 1
    py = sys.executable if tool == "hlo2onnx" else VENV_PY
    onnx_path = os.path.join(out_dir, f"{name}_{tool}.onnx")
    runs = []
    for i in range(n):
        clean(onnx_path)
        result = os.path.join(out_dir, f"{name}_{tool}_{i}.json")
        if os.path.exists(result):
            os.unlink(result)
        load = load_avg()
        log(f"[{name} / {tool}] run {i + 1}/{n} (load {load:.1f}) ...")
        env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
        m = measure([py, os.path.join(HERE, "worker.py"), "convert", "--tool", tool,
                     "--model", name, "--out", onnx_path, "--result", result],
                    time_cap=caps[tool], mem_cap=mem_cap, env=env,
                    log_path=os.path.join(out_dir, f"{name}_{tool}_{i}.log"))
        m["load"] = load
        if m["ended"] == "ok" and os.path.exists(result):
            with open(result) as f:
                m.update(json.load(f))
        log(f"    {m['ended']}: wall {m['wall_s']:.1f} s, to_onnx "
            f"{m.get('convert_s', float('nan')):.2f} s, peak {m['maxrss_mb']:.0f} MB, "
            f"added {m.get('added_mb') or float('nan'):.0f} MB")
        runs.append(m)
        if m["ended"] != "ok":
            break
    out = {"model": name, "tool": tool, "runs": runs}
    ok = [r for r in runs if r["ended"] == "ok"]
    if ok and len(ok) == len(runs):
        for k in ("wall_s", "cpu_s", "maxrss_mb", "convert_s", "convert_cpu_s", "added_mb",
                  "build_s", "rss_before_mb"):
            vals = [r[k] for r in ok if r.get(k) is not None]
            out[k] = statistics.median(vals) if vals else None
        for k in ("weight_bytes", "params", "version", "onnx_bytes", "data_files"):
            out[k] = ok[-1].get(k)
        # the last file is still there: check it
        vres = os.path.join(out_dir, f"{name}_{tool}_verify.json")
        log(f"[{name} / {tool}] onnxruntime against JAX ...")
        v = measure([sys.executable, os.path.join(HERE, "worker.py"), "verify", "--model", name,
                     "--onnx", onnx_path, "--result", vres, "--rtol", str(TOLERANCE[name]),
                     "--atol", str(TOLERANCE[name])],
                    time_cap=1200, mem_cap=mem_cap, env=dict(os.environ, JAX_PLATFORMS="cpu"),
                    log_path=os.path.join(out_dir, f"{name}_{tool}_verify.log"))
        if v["ended"] == "ok" and os.path.exists(vres):
            with open(vres) as f:
                v.update(json.load(f))
        out["verify"] = v
        log(f"    {v['ended']}: ok={v.get('ok')} max abs diff {v.get('max_abs_diff')} "
            f"checker {v.get('checker')}")
    else:
        out["ended"] = runs[-1]["ended"] if runs else "not run"
        out["wall_s"] = runs[-1]["wall_s"] if runs else None
        out["maxrss_mb"] = runs[-1]["maxrss_mb"] if runs else None
    clean(onnx_path)
    return out


def run_cli(repeats: int, out_dir: str, mem_cap: float, width: int, layers: int) -> dict:
    exe = shutil.which("hlo2onnx")
    mlir = os.path.join(out_dir, f"mlp_{width}x{layers}.mlir")
    if not os.path.exists(mlir):
        log(f"[cli] writing {mlir} ...")
        sys.path.insert(0, HERE)
        import gen_mlir

        gen_mlir.write_module(mlir + ".part", width, layers)
        os.replace(mlir + ".part", mlir)
    weight_bytes = layers * (width * width + width) * 4
    onnx_path = os.path.join(out_dir, "mlp_cli.onnx")
    runs = []
    # A first, unmeasured pass reads the text into the page cache, as it
    # would be after JAX wrote it.
    subprocess.run(["cat", mlir], stdout=subprocess.DEVNULL, check=True)
    for i in range(repeats):
        clean(onnx_path)
        load = load_avg()
        log(f"[cli] run {i + 1}/{repeats} (load {load:.1f}) ...")
        m = measure([exe, "-q", mlir, "-o", onnx_path], time_cap=600, mem_cap=mem_cap,
                    log_path=os.path.join(out_dir, f"cli_{i}.log"))
        m["load"] = load
        m["mb_per_s"] = weight_bytes / 1e6 / m["wall_s"]
        log(f"    {m['ended']}: {m['wall_s']:.2f} s, {m['mb_per_s']:.0f} MB/s, "
            f"peak {m['maxrss_mb']:.0f} MB")
        runs.append(m)
        if m["ended"] != "ok":
            break
    out = {"runs": runs, "weight_bytes": weight_bytes, "text_bytes": os.path.getsize(mlir),
           "width": width, "layers": layers}
    # Where the time goes: the same conversion written to /dev/null (parse,
    # hex decode and protobuf encoding, no file system), and the machine's
    # own rate for writing 1 GiB to a file and fsync-ing it (dd).
    nul = [measure([exe, "-q", mlir, "-o", os.devnull], time_cap=600, mem_cap=mem_cap)
           for _ in range(repeats)]
    if all(r["ended"] == "ok" for r in nul):
        out["devnull_wall_s"] = statistics.median(r["wall_s"] for r in nul)
        out["devnull_cpu_s"] = statistics.median(r["cpu_s"] for r in nul)
        log(f"    to /dev/null: {out['devnull_wall_s']:.2f} s, "
            f"{weight_bytes / 1e6 / out['devnull_wall_s']:.0f} MB/s")
    dd_path = os.path.join(out_dir, "dd.bin")
    dd = []
    for _ in range(repeats):
        clean(dd_path)
        dd.append(measure(["dd", "if=/dev/zero", f"of={dd_path}", "bs=1M", "count=1024",
                           "conv=fsync"], time_cap=600, mem_cap=mem_cap))
    clean(dd_path)
    if all(r["ended"] == "ok" for r in dd):
        out["dd_wall_s"] = statistics.median(r["wall_s"] for r in dd)
        log(f"    dd 1 GiB + fsync: {out['dd_wall_s']:.2f} s")
    if all(r["ended"] == "ok" for r in runs):
        for k in ("wall_s", "cpu_s", "maxrss_mb", "mb_per_s"):
            out[k] = statistics.median(r[k] for r in runs)
        vres = os.path.join(out_dir, "cli_verify.json")
        v = measure([sys.executable, os.path.join(HERE, "worker.py"), "verify-cli", "--onnx",
                     onnx_path, "--width", str(width), "--layers", str(layers),
                     "--result", vres], time_cap=600, mem_cap=mem_cap)
        if v["ended"] == "ok":
            with open(vres) as f:
                v.update(json.load(f))
        out["verify"] = v
        log(f"    onnxruntime against NumPy: ok={v.get('ok')} max abs diff {v.get('max_abs_diff')}")
    clean(onnx_path)
    return out


# ---------------------------------------------------------------------------
# The README tables


def _fmt_s(x) -> str:
    return fmt_num(x, " s")


def _fmt_mb(x) -> str:
    if x is None:
        return "—"
    return f"{x / 1024:.2f} GiB" if x >= 1024 else f"{x:.0f} MiB"


def _ratio(a, b) -> str:
    if a is None or b is None or b == 0:
        return "—"
    r = a / b
    return f"{r:.3f}" if r < 0.1 else f"{r:.2f}"


def _verdict(r: dict) -> str:
    if r.get("ended"):
        return f"**{r['ended']}**"
    v = r.get("verify", {})
    if v.get("ended") != "ok":
        return f"verify {v.get('ended')}"
    ok = "✅" if v.get("ok") else "❌"
    chk = "" if v.get("checker") == "ok" else " (checker: " + str(v.get("checker"))[:60] + ")"
    return f"{ok} {v.get('max_abs_diff', float('nan')):.1e}{chk}"


def tables(res: dict) -> str:
    m, v = res["machine"], res["versions"]
    lines = [
        f"Run on {m['date']}: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB RAM, "
        f"Linux {m['kernel']}, Python {m['python']}.  "
        f"hlo2onnx {res.get('hlo2onnx_version', '?')} with jax {v['ours'].get('jax')}, "
        f"flax {v['ours'].get('flax')}, onnx {v['ours'].get('onnx')}, onnxruntime "
        f"{v['ours'].get('onnxruntime')}; jax2onnx {res['jax2onnx_version']} (latest on PyPI) "
        f"with jax {v['venv'].get('jax')}, flax {v['venv'].get('flax')}, onnx "
        f"{v['venv'].get('onnx')}, onnx-ir {v['venv'].get('onnx-ir')}.  "
        f"Load average (1 min) before the runs: {res['load_min']:.1f} to {res['load_max']:.1f} "
        f"on {m['cores']} cores.  Medians of {res['repeats']} runs where a row says so.",
        "",
        "**End to end** (`to_onnx(model, inputs, path)` of the same Flax NNX model object; "
        "*to_onnx* is the call alone, *process* the whole fresh Python process: imports, model "
        "construction, conversion; peak RSS of the whole process from the OS; *added* = peak "
        "RSS during `to_onnx` minus RSS just before it, with the model already in memory):",
        "",
        "| model | params (weights) | tool | runs | to_onnx | to_onnx CPU | process | peak RSS "
        "| added (% of weights) | output | ORT vs JAX (max abs diff) |",
        "|:--|--:|:--|--:|--:|--:|--:|--:|--:|--:|:--|",
    ]
    ratios = []
    for name in ("vit", "gpt2", "big"):
        rows = {t: res["models"].get(f"{name}/{t}") for t in ("hlo2onnx", "jax2onnx")}
        if not any(rows.values()):
            continue
        for tool, r in rows.items():
            if r is None:
                continue
            w = r.get("weight_bytes") or (rows["hlo2onnx"] or {}).get("weight_bytes")
            p = r.get("params") or (rows["hlo2onnx"] or {}).get("params")
            added = r.get("added_mb")
            pct = f" ({100 * added * 2**20 / w:.0f} %)" if added is not None and w else ""
            size = None
            if r.get("onnx_bytes") is not None:
                size = (r["onnx_bytes"] + sum((r.get("data_files") or {}).values())) / 2**20
            lines.append(
                f"| {MODELS[name][0]} | {p / 1e6:.1f} M ({w / 2**20:.0f} MiB) | {tool} | "
                f"{len(r['runs'])} | {_fmt_s(r.get('convert_s'))} | "
                f"{_fmt_s(r.get('convert_cpu_s'))} | {_fmt_s(r.get('wall_s'))} | "
                f"{_fmt_mb(r.get('maxrss_mb'))} | {_fmt_mb(added)}{pct} | {_fmt_mb(size)} | "
                f"{_verdict(r)} |" if p and w else
                f"| {MODELS[name][0]} | — | {tool} | {len(r['runs'])} | — | — | "
                f"{_fmt_s(r.get('wall_s'))} | {_fmt_mb(r.get('maxrss_mb'))} | — | — | "
                f"{_verdict(r)} |")
        h, j = rows["hlo2onnx"], rows["jax2onnx"]
        if h and j:
            ratios.append(
                f"| {MODELS[name][0]} | {_ratio(h.get('convert_s'), j.get('convert_s') if not j.get('ended') else None)} | "
                f"{_ratio(h.get('convert_cpu_s'), j.get('convert_cpu_s') if not j.get('ended') else None)} | "
                f"{_ratio(h.get('wall_s'), j.get('wall_s') if not j.get('ended') else None)} | "
                f"{_ratio(h.get('maxrss_mb'), j.get('maxrss_mb') if not j.get('ended') else None)} | "
                f"{_ratio(h.get('added_mb'), j.get('added_mb') if not j.get('ended') else None)} |")
    if ratios:
        lines += ["", "Ratios hlo2onnx / jax2onnx (lower is better for hlo2onnx):", "",
                  "| model | to_onnx time | to_onnx CPU | process time | peak RSS | added memory |",
                  "|:--|--:|--:|--:|--:|--:|"] + ratios
    c = res.get("cli")
    if c:
        lines += ["", f"**The C core alone** (`hlo2onnx -q in.mlir -o out.onnx`, a module of "
                  f"{c['layers']} dense layers {c['width']}×{c['width']} whose weights are "
                  f"`dense<\"0x...\">` constants: {c['weight_bytes'] / 2**30:.2f} GiB of weights, "
                  f"{c['text_bytes'] / 2**30:.2f} GiB of text, read from the page cache):", "",
                  "| runs | wall | CPU (user + sys) | weight bytes / s of wall | weight bytes / s "
                  "of CPU | peak RSS (the input is mapped) | ORT vs NumPy |",
                  "|--:|--:|--:|--:|--:|--:|:--|"]
        v = c.get("verify", {})
        ok = ("✅" if v.get("ok") else "❌") + f" {v.get('max_abs_diff', float('nan')):.1e}" \
            if v.get("ended") == "ok" else str(v.get("ended"))
        cpu = c.get("cpu_s")
        per_cpu = f"{c['weight_bytes'] / 1e6 / cpu:.0f} MB/s" if cpu else "—"
        lines.append(f"| {len(c['runs'])} | {_fmt_s(c.get('wall_s'))} | {_fmt_s(cpu)} | "
                     f"{(c.get('mb_per_s') or 0):.0f} MB/s | {per_cpu} | "
                     f"{_fmt_mb(c.get('maxrss_mb'))} | {ok} |")
        extra = []
        if c.get("devnull_wall_s"):
            extra.append(f"the same conversion written to `/dev/null` (parsing, hex decoding, "
                         f"protobuf encoding; no file system): {_fmt_s(c['devnull_wall_s'])}, "
                         f"{c['weight_bytes'] / 1e6 / c['devnull_wall_s']:.0f} MB/s of wall, "
                         f"{_fmt_s(c.get('devnull_cpu_s'))} of CPU")
        if c.get("dd_wall_s"):
            extra.append(f"`dd` writing 1 GiB of zeros to a file with `fsync` on this machine: "
                         f"{_fmt_s(c['dd_wall_s'])}, {1024 / c['dd_wall_s'] * 1.048576:.0f} MB/s")
        if extra:
            lines += ["", "For comparison (medians): " + "; ".join(extra) + "."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------


def save(res: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(res, f, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description="hlo2onnx against jax2onnx on big models")
    ap.add_argument("--only", default="vit,gpt2,big,cli",
                    help="comma-separated subset of vit, gpt2, big, cli")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each short case")
    ap.add_argument("--out", default=os.path.join(HERE, "out"), help="scratch directory")
    ap.add_argument("--mem-cap-gib", type=float, default=16.0,
                    help="a run whose RSS passes this is stopped and reported")
    ap.add_argument("--cli-width", type=int, default=4096)
    ap.add_argument("--cli-layers", type=int, default=16)
    ap.add_argument("--quiet-load", type=float, default=3.0,
                    help="wait (up to 2 min) for the load average to drop under this before "
                         "each model")
    ap.add_argument("--upgrade", action="store_true", help="reinstall jax2onnx in the venv")
    ap.add_argument("--no-readme", action="store_true", help="only write out/results.json")
    a = ap.parse_args()
    only = a.only.split(",")
    os.makedirs(a.out, exist_ok=True)
    mem_cap = a.mem_cap_gib * GIB

    import hlo2onnx

    j2o = ensure_venv(a.upgrade)
    res_path = os.path.join(a.out, "results.json")
    res = {"machine": machine(), "jax2onnx_version": j2o, "hlo2onnx_version": hlo2onnx.__version__,
           "versions": {"ours": versions(sys.executable), "venv": versions(VENV_PY)},
           "repeats": a.repeats, "models": {}}
    loads = []
    for name in ("vit", "gpt2", "big"):
        if name not in only:
            continue
        for tool in ("hlo2onnx", "jax2onnx"):
            loads.append(wait_for_quiet(a.quiet_load, 120))
            res["models"][f"{name}/{tool}"] = run_model(name, tool, a.repeats, a.out, mem_cap)
            save(res, res_path)
    if "cli" in only:
        loads.append(wait_for_quiet(a.quiet_load, 120))
        res["cli"] = run_cli(a.repeats, a.out, mem_cap, a.cli_width, a.cli_layers)
    loads += [r["load"] for k, m in res["models"].items() for r in m["runs"]]
    loads += [r["load"] for r in res.get("cli", {}).get("runs", [])]
    res["load_min"], res["load_max"] = (min(loads), max(loads)) if loads else (0, 0)
    save(res, res_path)
    print(tables(res))
    if not a.no_readme:
        update_readme(README, MARK_START, MARK_END, tables(res))
        log(f"wrote the tables into {README}")


if __name__ == "__main__":
    main()
