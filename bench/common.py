"""What the benchmark scripts (run.py, worker.py, zoo.py) share: logging,
the process's memory as Linux reports it, the machine's description, the
number formats of the tables, and writing the tables into README.md.

Standard library only: worker.py imports it in bench/.venv-jax2onnx too.
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import sys
import time


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Memory of this process (Linux)


def status_mb(key: str) -> float:
    """A size field of /proc/self/status (VmRSS, VmHWM, RssAnon, ...) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak() -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def settle() -> None:
    """Returns freed heap memory to the OS, so that the baseline is honest."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# ---------------------------------------------------------------------------
# The tables


def machine() -> dict:
    """The CPU, cores, memory, kernel, Python and the date, for the tables."""
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem / (1 << 30), 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def fmt_num(x, unit: str = "") -> str:
    """x with 2, 1 or 0 decimals (below 10, below 100, above), "—" for None."""
    if x is None:
        return "—"
    return f"{x:.2f}{unit}" if x < 10 else f"{x:.1f}{unit}" if x < 100 else f"{x:.0f}{unit}"


def update_readme(path: str, start: str, end: str, body: str) -> None:
    """Puts body between the marker lines start and end of the file at path
    (appended with its markers when they are not there yet)."""
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    block = f"{start}\n\n{body}\n\n{end}"
    if start in text and end in text:
        a, b = text.index(start), text.index(end) + len(end)
        text = text[:a] + block + text[b:]
    else:
        text += "\n" + block + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
