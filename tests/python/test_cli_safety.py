"""The command line cannot hurt the user: the C command (cli/main.c) and
``python -m hlo2onnx`` (hlo2onnx/__main__.py), case by case.

* an output (or its external data file) that is the input, also through a
  symbolic or hard link or standard input, is refused and the input kept;
* ``-o -`` writes the model to standard output, never to a terminal and
  never with an external data file;
* an input that is not text (a serialized jax.export.Exported, MLIR
  bytecode, any binary) is named for what it is, and no byte of it reaches
  the terminal;
* ``mlir_to_onnx`` reads a file only when told to (``input_path=`` or a
  ``pathlib.Path``) and says how it read a str.
"""

from __future__ import annotations

import os
import pathlib
import pty
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest
from util import check_model, cli_path, run_ort

import hlo2onnx

COMMANDS = {"c": lambda: [cli_path()], "python": lambda: [sys.executable, "-m", "hlo2onnx"]}


def _f(x):
    return jnp.tanh(x) * 2.0


@pytest.fixture(scope="module")
def mlir_text():
    return jax.jit(_f).lower(jax.ShapeDtypeStruct((4, 8), jnp.float32)).as_text()


def run(which, *args, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMANDS[which](), *map(str, args)], capture_output=True,
                          timeout=300, stdin=stdin)


def _check_runs(model_or_path):
    check_model(model_or_path)
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    (got,) = run_ort(model_or_path, x)
    np.testing.assert_allclose(got, np.asarray(_f(x)), rtol=1e-5, atol=1e-5)


def _printable(data: bytes) -> bool:
    return all(b in (9, 10, 13) or 32 <= b < 127 for b in data)


@pytest.mark.parametrize("which", COMMANDS)
@pytest.mark.parametrize("how", ["same name", "symlink", "hard link", "relative path",
                                 "standard input", "external data"])
def test_output_that_is_the_input_is_refused(tmp_path, mlir_text, which, how):
    src = tmp_path / "model.mlir"
    src.write_text(mlir_text)
    args, stdin = [src], subprocess.DEVNULL
    if how == "same name":
        out = src
    elif how == "symlink":
        out = tmp_path / "link.onnx"
        out.symlink_to(src)
    elif how == "hard link":
        out = tmp_path / "hard.onnx"
        os.link(src, out)
    elif how == "relative path":
        out = pathlib.Path(os.path.relpath(tmp_path, os.getcwd())) / "." / "model.mlir"
    elif how == "standard input":
        out, args, stdin = src, ["-"], open(src, "rb")
    extra = []
    if how == "external data":
        out = tmp_path / "model.onnx"
        extra = ["--external-data", "model.mlir"]
    try:
        proc = run(which, *args, "-o", out, *extra, stdin=stdin)
    finally:
        if stdin is not subprocess.DEVNULL:
            stdin.close()
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    what = "external data file" if how == "external data" else "output"
    shown = "standard input" if how == "standard input" else str(src)
    assert f"hlo2onnx: the {what} " in err and f"is the input ({shown}): refusing" in err, err
    assert src.read_text() == mlir_text
    assert proc.stdout == b""


@pytest.mark.parametrize("which", COMMANDS)
def test_output_to_stdout(tmp_path, mlir_text, which):
    src = tmp_path / "f.mlir"
    src.write_text(mlir_text)
    proc = run(which, src, "-o", "-", "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    _check_runs(onnx.load_from_string(proc.stdout))
    # stdin to stdout
    with open(src, "rb") as f:
        piped = run(which, "-", "-o", "-", "-q", stdin=f)
    assert piped.returncode == 0 and piped.stdout == proc.stdout
    assert sorted(os.listdir(tmp_path)) == ["f.mlir"]


@pytest.mark.parametrize("which", COMMANDS)
@pytest.mark.parametrize("option", [["--external-data", "w.bin"], ["--external-threshold", "0"]])
def test_stdout_cannot_have_external_data(tmp_path, mlir_text, which, option):
    src = tmp_path / "f.mlir"
    src.write_text(mlir_text)
    proc = run(which, src, "-o", "-", *option)
    assert proc.returncode == 1
    assert "-o - writes the whole model to standard output: it cannot have an external data " \
           "file" in proc.stderr.decode()
    assert proc.stdout == b""
    assert sorted(os.listdir(tmp_path)) == ["f.mlir"]


@pytest.mark.parametrize("which", COMMANDS)
def test_stdout_that_is_a_terminal_is_refused(tmp_path, mlir_text, which):
    src = tmp_path / "f.mlir"
    src.write_text(mlir_text)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([*COMMANDS[which](), str(src), "-o", "-"], stdout=follower,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=300)
        os.close(follower)
        follower = -1
        shown = b""
        try:
            while chunk := os.read(leader, 4096):
                shown += chunk
        except OSError:  # EIO: the terminal has no writer left
            pass
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert proc.returncode == 1
    assert "standard output is a terminal, and an ONNX model is binary" in proc.stderr.decode()
    assert shown == b""


@pytest.fixture(scope="module")
def exported_file(tmp_path_factory):
    B, = jax.export.symbolic_shape("B")
    exp = jax.export.export(jax.jit(_f))(jax.ShapeDtypeStruct((B, 8), jnp.float32))
    path = tmp_path_factory.mktemp("exp") / "f.exported"
    path.write_bytes(exp.serialize())
    return path


def test_c_command_names_a_serialized_exported_and_how_to_convert_it(tmp_path, exported_file):
    proc = run("c", exported_file, "-o", tmp_path / "f.onnx")
    err = proc.stderr.decode()
    assert proc.returncode == 2
    assert err == (f"hlo2onnx: {exported_file} is a serialized jax.export.Exported "
                   "(Exported.serialize()),\nnot MLIR text.  Convert it with the Python "
                   "package, which reads it with\njax.export.deserialize and takes the same "
                   f"options:\n  python -m hlo2onnx {exported_file} -o OUT.onnx\n")
    assert proc.stdout == b"" and not (tmp_path / "f.onnx").exists()
    # ... and that command converts it
    out = tmp_path / "f.onnx"
    proc = run("python", exported_file, "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    model = onnx.load(out)
    check_model(out)
    for b in (1, 3, 8):
        x = np.random.default_rng(b).standard_normal((b, 8)).astype(np.float32)
        (got,) = run_ort(model, x)
        np.testing.assert_allclose(got, np.asarray(_f(x)), rtol=1e-5, atol=1e-5)


BINARIES = {
    "MLIR bytecode": (b"ML\xefR\x0dStableHLO_v1.0\x00\x01\x02", "is MLIR bytecode, not MLIR text"),
    "PNG": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00", "is not text"),
    "terminal escapes": (b"module @m {\x1b[2J\x1b]0;pwned\x07}", "is not text"),
    "ONNX model": (b"\x08\x09\x12\x08hlo2onnx\x1a\x050.1.0", "is not text"),
}


@pytest.mark.parametrize("which", COMMANDS)
@pytest.mark.parametrize("kind", BINARIES)
def test_binary_input_is_named_and_never_echoed(tmp_path, which, kind):
    data, message = BINARIES[kind]
    src = tmp_path / "in.mlir"
    src.write_bytes(data)
    proc = run(which, src, "-o", tmp_path / "out.onnx")
    assert proc.returncode == 2
    assert message in proc.stderr.decode()
    assert _printable(proc.stderr) and proc.stdout == b""
    assert sorted(os.listdir(tmp_path)) == ["in.mlir"]


@pytest.mark.parametrize("which", COMMANDS)
def test_binary_on_stdin_is_named_too(tmp_path, which, exported_file):
    with open(exported_file, "rb") as f:
        proc = run(which, "-", "-o", tmp_path / "out.onnx", "-q", stdin=f)
    if which == "c":
        assert proc.returncode == 2
        assert "hlo2onnx: <stdin> is a serialized jax.export.Exported" in proc.stderr.decode()
    else:
        assert proc.returncode == 0, proc.stderr.decode()
        check_model(tmp_path / "out.onnx")
    assert _printable(proc.stderr)


# ---------------------------------------------------------------------------
# mlir_to_onnx: text or a file, never a guess.


def test_mlir_to_onnx_reads_files_when_told(tmp_path, mlir_text, monkeypatch):
    src = tmp_path / "model.mlir"
    src.write_text(mlir_text)
    _check_runs(hlo2onnx.mlir_to_onnx(input_path=src))
    _check_runs(hlo2onnx.mlir_to_onnx(input_path=str(src)))
    _check_runs(hlo2onnx.mlir_to_onnx(src))  # a pathlib.Path is a file
    _check_runs(hlo2onnx.mlir_to_onnx(mlir_text))  # a str is text
    monkeypatch.chdir(tmp_path)
    with pytest.raises(hlo2onnx.UsageError) as info:
        hlo2onnx.mlir_to_onnx("model.mlir")
    assert info.value.messages == (
        "mlir_to_onnx: the str 'model.mlir' was read as MLIR text (a str always is) and holds "
        "no module; it names a file: to read it, pass input_path='model.mlir' "
        "(or pathlib.Path('model.mlir'))\n")
    with pytest.raises(hlo2onnx.UsageError, match="holds no module; to read a file, pass "
                                                  r"input_path= \(or a pathlib.Path\)"):
        hlo2onnx.mlir_to_onnx("other.mlir")
    with pytest.raises(TypeError, match="either as text or as input_path="):
        hlo2onnx.mlir_to_onnx(mlir_text, input_path=src)
    with pytest.raises(TypeError, match="no module"):
        hlo2onnx.mlir_to_onnx()


def test_mlir_to_onnx_names_the_file_in_messages(tmp_path, mlir_text):
    src = tmp_path / "bad.mlir"
    src.write_text(mlir_text.replace("stablehlo.tanh", "stablehlo.frobnicate"))
    with pytest.raises(hlo2onnx.UnsupportedOpError) as info:
        hlo2onnx.mlir_to_onnx(input_path=src)
    assert info.value.errors[0].startswith(f"{src}:")


def test_mlir_to_onnx_refuses_a_serialized_exported(exported_file):
    with pytest.raises(hlo2onnx.UsageError, match=r"is a serialized jax.export.Exported, not "
                                                  r"MLIR text: convert it with "
                                                  r"hlo2onnx.to_onnx\("):
        hlo2onnx.mlir_to_onnx(input_path=exported_file)
    with pytest.raises(hlo2onnx.UsageError, match="the bytes are a serialized"):
        hlo2onnx.mlir_to_onnx(exported_file.read_bytes())


def test_python_m_hlo2onnx_has_the_commands_options():
    """python -m hlo2onnx takes the options of the C command, no more, no
    fewer (their --help texts list them)."""
    import re

    options = {}
    for which in COMMANDS:
        proc = run(which, "--help")
        assert proc.returncode == 0
        options[which] = set(re.findall(r"^\s+(-\w|--[\w-]+)", proc.stdout.decode(), re.M)) | \
            set(re.findall(r"^\s+-\w, (--[\w-]+)", proc.stdout.decode(), re.M))
    assert options["c"] == options["python"]
    assert {"-o", "--output", "--opset", "--dim", "--local-functions", "-q"} <= options["c"]
    versions = {which: run(which, "--version").stdout.decode() for which in COMMANDS}
    assert versions["c"] == versions["python"] == f"hlo2onnx {hlo2onnx.__version__}\n"
