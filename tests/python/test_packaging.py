"""The package as a user gets it: what `import hlo2onnx` needs, and the built
wheel in a fresh virtual environment.

* ``import hlo2onnx`` and the ``.mlir`` path (``mlir_to_onnx``) import no JAX:
  run in a subprocess where ``import jax`` fails.
* The wheel (``pip wheel .``; ``$H2O_WHEEL`` names one already built, as
  .ci/run does, else it is built here once) is a single ``abi3`` wheel whose
  extension uses only the stable ABI, ships ``py.typed``, ``_core.pyi`` and
  the LICENSE, installs into a fresh virtual environment with no compiler on PATH and
  converts the seed's MLP there (``python -m hlo2onnx.examples.mlp``: Flax
  NNX -> ONNX with a symbolic batch, checked against JAX by onnxruntime at
  rtol = atol = 1e-5), and its ``hlo2onnx`` command converts a fixture.  The
  venv sees this interpreter's site-packages for JAX, Flax and onnxruntime
  (downloading them again is .ci/run's JAX-version step's business), but its
  own hlo2onnx comes first.
* The extension of that wheel loads and converts under every other CPython
  >= 3.11 found on PATH (python3.12, python3.13, ...): that is what abi3
  promises.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import onnx
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "mlp_export.mlir"
COMPILERS = ("cc", "gcc", "clang", "c99", "cl")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def test_import_and_mlir_path_need_no_jax(tmp_path):
    out = tmp_path / "mlp.onnx"
    code = textwrap.dedent(f"""
        import sys
        sys.modules["jax"] = None  # `import jax` now raises ImportError
        import hlo2onnx
        text = open({str(FIXTURE)!r}).read()
        hlo2onnx.mlir_to_onnx(text, {str(out)!r})
        assert "jax" not in sys.modules or sys.modules["jax"] is None
        print("ok")
    """)
    r = _run([sys.executable, "-c", code], cwd=tmp_path)
    assert r.stdout.strip() == "ok"
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input], "the model has no inputs"
    assert any(n.op_type in ("Gemm", "MatMul") for n in model.graph.node)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    given = os.environ.get("H2O_WHEEL")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(ROOT)])
    (found,) = out.glob("hlo2onnx-*.whl")
    return found


def test_wheel_is_one_abi3_wheel(wheel):
    # name-version-python-abi-platform.whl
    _, _, python_tag, abi_tag, _platform = wheel.name[: -len(".whl")].split("-")
    assert (python_tag, abi_tag) == ("cp311", "abi3"), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    extensions = [n for n in names if n.startswith("hlo2onnx/_core") and n.endswith((".so", ".pyd"))]
    assert extensions in (["hlo2onnx/_core.abi3.so"], ["hlo2onnx/_core.pyd"]), extensions
    assert "hlo2onnx/py.typed" in names and "hlo2onnx/_core.pyi" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert not any(n.endswith(".c") for n in names), "C sources are not shipped"
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert b"License-Expression: Apache-2.0" in metadata


def _no_compiler_env(bin_dir: Path) -> dict[str, str]:
    """The environment of a user without a compiler: PATH is the venv's bin
    directory only, and no CC/CFLAGS point anywhere."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CC", "CXX", "CFLAGS", "LDFLAGS", "PYTHONPATH", "H2O_CLI", "VIRTUAL_ENV")}
    env["PATH"] = str(bin_dir)
    for compiler in COMPILERS:
        assert shutil.which(compiler, path=env["PATH"]) is None, compiler
    return env


def test_wheel_converts_the_mlp_in_a_fresh_venv(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # pip from this interpreter installs into the venv (--prefix), nothing fetched.
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile",
          "--ignore-installed", "--prefix", str(env_dir), str(wheel)])
    env = _no_compiler_env(env_dir / "bin")

    where = _run([str(py), "-c", "import hlo2onnx, hlo2onnx._core as c; print(c.__file__)"],
                 env=env, cwd=tmp_path).stdout.strip()
    assert where.startswith(str(env_dir)) and where.endswith("_core.abi3.so"), where

    out = tmp_path / "mlp.onnx"
    r = _run([str(py), "-m", "hlo2onnx.examples.mlp", "-o", str(out)], env=env, cwd=tmp_path)
    assert "verified: " in r.stdout, r.stdout
    onnx.checker.check_model(onnx.load(out), full_check=True)

    cli_out = tmp_path / "cli.onnx"
    _run([str(env_dir / "bin" / "hlo2onnx"), str(FIXTURE), "-o", str(cli_out)], env=env, cwd=tmp_path)
    onnx.checker.check_model(onnx.load(cli_out), full_check=True)


def _other_pythons() -> list[str]:
    """Working CPython >= 3.12 interpreters: python3.N on PATH, and pyenv's
    versions (whose shims on PATH only run the selected one)."""
    candidates = [shutil.which(f"python3.{minor}") for minor in range(12, 20)]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", "3.*", "bin", "python3")))
    found: dict[str, str] = {}
    for exe in filter(None, candidates):
        r = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, timeout=60)
        version = r.stdout.strip()
        if r.returncode == 0 and tuple(map(int, version.split("."))) >= (3, 12):
            found.setdefault(version, exe)
    return list(found.values())


def test_wheel_extension_loads_under_every_other_python(wheel, tmp_path):
    pythons = _other_pythons()
    if not pythons:
        pytest.skip("no CPython other than this one on PATH")
    zipfile.ZipFile(wheel).extractall(tmp_path / "unpacked")
    so = [p for p in glob.glob(str(tmp_path / "unpacked" / "hlo2onnx" / "_core.*"))
          if p.endswith((".so", ".pyd"))]
    assert len(so) == 1, so
    # The extension alone (no numpy, no onnx under that interpreter): loaded
    # from its file and asked to convert the fixture to bytes.
    code = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("hlo2onnx._core", {so[0]!r})
        core = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(core)
        data = core.convert(open({str(FIXTURE)!r}).read(), [], None, None)
        print(sys.version_info[:2], len(data))
    """)
    for exe in pythons:
        r = _run([exe, "-c", code], cwd=tmp_path)
        assert int(r.stdout.split()[-1]) > 1000, (exe, r.stdout)
