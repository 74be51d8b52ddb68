"""Bad inputs and output safety, through the CLI and the Python API.

Each row of BAD is an input, the status it must give (the CLI's exit code,
the exception's ``.status``), a substring of the message and the line:col it
must point at.  Every row runs twice:

* the ``hlo2onnx`` command, writing over an existing model: the exit code,
  ``file:line:col: error: message`` on stderr with the source line and a
  caret, the previous model untouched and no temporary file left;
* :func:`hlo2onnx.mlir_to_onnx`: the exception class of that status, carrying
  the same message; the previous file untouched; the same in memory.

Then: all unsupported ops of a module in one report; byte-identical output
run after run; a failed write (file size limit, full disk) and a killed
process leave the previous model and its external data in place.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hlo2onnx
from util import cli_path, run_cli

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PREVIOUS = b"the previous model: must survive every failed conversion\n"


def main(body: str, args: str = "%arg0: tensor<2x3xf32>", result: str = "tensor<2x3xf32>") -> str:
    """A module whose @main has `args` and `body` (lines start at line 3)."""
    return (f"module @m {{\n  func.func public @main({args}) -> {result} {{\n{body}"
            "  }\n}\n")


ADD = "    %0 = stablehlo.add %arg0, %arg0 : tensor<2x3xf32>\n    return %0 : tensor<2x3xf32>\n"
GOOD = main(ADD)


def call_chain(n: int, calls_per_level: int) -> str:
    """@main -> @f0 -> ... -> @f{n-1}, each level calling the next
    `calls_per_level` times (2: 2^n ops once inlined)."""
    t = "tensor<2xf32>"
    out = ["module @m {", f"  func.func public @main(%arg0: {t}) -> {t} {{",
           f"    %0 = call @f0(%arg0) : ({t}) -> {t}", f"    return %0 : {t}", "  }"]
    for i in range(n):
        out.append(f"  func.func private @f{i}(%arg0: {t}) -> {t} {{")
        prev = "%arg0"
        for k in range(calls_per_level if i < n - 1 else 1):
            op = f"call @f{i + 1}({prev}) : ({t}) -> {t}" if i < n - 1 else \
                f"stablehlo.sine {prev} : {t}"
            out.append(f"    %{k} = {op}")
            prev = f"%{k}"
        out.append(f"    return {prev} : {t}")
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def nested_ifs(n: int) -> str:
    """@main with n stablehlo.if nested in each other's then-branches; the
    innermost (%r0) is on line n + 2."""
    inner = "stablehlo.return %arg1 : tensor<f32>"
    for i in range(n):
        inner = (f'%r{i} = "stablehlo.if"(%arg0) ({{\n {inner}\n }}, {{\n'
                 f' stablehlo.return %arg1 : tensor<f32>\n }}) : (tensor<i1>) -> tensor<f32>\n'
                 f' stablehlo.return %r{i} : tensor<f32>')
    inner = inner.rsplit("stablehlo.return", 1)[0] + f"return %r{n - 1} : tensor<f32>"
    return ("module @m {\n func.func public @main(%arg0: tensor<i1>, %arg1: tensor<f32>)"
            f" -> tensor<f32> {{\n {inner}\n }}\n}}\n")


@dataclasses.dataclass
class Bad:
    name: str
    text: bytes | str
    status: int
    message: str
    line: int | None  # None: any line
    col: int

    @property
    def data(self) -> bytes:
        return self.text.encode() if isinstance(self.text, str) else self.text


EXC = {2: hlo2onnx.InputError, 3: hlo2onnx.UnsupportedOpError}

BAD = [
    # the list of the issue
    Bad("empty file", "", 2, "the input is empty: expected a module", 1, 1),
    Bad("binary garbage", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00", 2,
        "unexpected byte 0x89", 1, 1),
    Bad("truncated module", GOOD[:GOOD.index("    return")], 2,
        "expected '}' to close the region opened at 2:", 4, 1),
    Bad("unbalanced braces", GOOD + "}\n", 2, "unexpected '}' after the module", 7, 1),
    Bad("unknown dialect", main(ADD.replace("stablehlo.add", "foo.add")), 3,
        "unknown op 'foo.add' (1 use in the module; first one here)", 3, 10),
    Bad("unknown op", main(ADD.replace("stablehlo.add", "stablehlo.frobnicate")), 3,
        "unknown op 'stablehlo.frobnicate'", 3, 10),
    Bad("unknown element type", main(ADD, args="%arg0: tensor<2x3xf31>"), 2,
        "unknown element type 'f31'", 2, 44),
    Bad("dense literal with the wrong element count",
        main("    %c = stablehlo.constant dense<[1.0, 2.0]> : tensor<3xf32>\n"
             "    return %c : tensor<3xf32>\n", result="tensor<3xf32>"), 2,
        "dense literal has 2 elements, tensor<3xf32> needs 3", 3, 29),
    Bad("hex blob of the wrong length",
        main("    %c = stablehlo.constant dense<\"0x0000803F000000\"> : tensor<2xf32>\n"
             "    return %c : tensor<2xf32>\n", result="tensor<2xf32>"), 2,
        "hex dense literal has 7 bytes, tensor<2xf32> needs 8 (or 4 for a splat)", 3, 35),
    Bad("huge dimension", main(ADD, args="%arg0: tensor<99999999999999999999x3xf32>"), 2,
        "dimension is too large", 2, 40),
    Bad("negative dimension", main(ADD, args="%arg0: tensor<-2x3xf32>"), 2,
        "negative dimension in tensor type", 2, 40),
    Bad("mismatched operand types",
        main("    %0 = stablehlo.add %arg0, %arg1 : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>\n"
             "    return %0 : tensor<2x3xf32>\n", args="%arg0: tensor<2x3xf32>, %arg1: tensor<2x3xi32>"),
        2, "operand 1 of stablehlo.add has type tensor<2x3xi32>, expected tensor<2x3xf32>", 3, 31),
    Bad("use of an undefined value", main(ADD.replace("%arg0, %arg0", "%arg0, %arg7")), 2,
        "use of undefined value %arg7", 3, 31),
    Bad("duplicate definition",
        main("    %0 = stablehlo.add %arg0, %arg0 : tensor<2x3xf32>\n"
             "    %0 = stablehlo.multiply %arg0, %arg0 : tensor<2x3xf32>\n"
             "    return %0 : tensor<2x3xf32>\n"), 2,
        "redefinition of %0 (first defined at 3:5)", 4, 5),
    Bad("call to a missing function",
        main("    %0 = call @nowhere(%arg0) : (tensor<2x3xf32>) -> tensor<2x3xf32>\n"
             "    return %0 : tensor<2x3xf32>\n"), 2, "call to undefined function @nowhere", 3, 10),
    Bad("recursion",
        main("    %0 = call @f(%arg0) : (tensor<2x3xf32>) -> tensor<2x3xf32>\n"
             "    return %0 : tensor<2x3xf32>\n")[:-2] +
        "  func.func private @f(%arg0: tensor<2x3xf32>) -> tensor<2x3xf32> {\n"
        "    %0 = call @f(%arg0) : (tensor<2x3xf32>) -> tensor<2x3xf32>\n"
        "    return %0 : tensor<2x3xf32>\n  }\n}\n", 3,
        "recursive call to @f: recursion cannot be inlined", 7, 10),
    Bad("invalid UTF-8 in a name", GOOD.replace("@m", "@m\xff").encode("latin-1"), 2,
        "unexpected byte 0xFF (non-ASCII text is only allowed in string literals)", 1, 10),
    Bad("invalid UTF-8 in an escaped name", GOOD.replace("@m", '@"m\\FF"'), 2,
        "name is not valid UTF-8 once its escapes are decoded", 1, 8),
    Bad("invalid UTF-8 in a string",
        GOOD.replace("@m {", '@m attributes {doc = "a\xc3(b"} {').encode("latin-1"), 2,
        "invalid UTF-8 in string literal", 1, 31),
    Bad("invalid UTF-8 in a location",
        main(ADD.replace("tensor<2x3xf32>\n", 'tensor<2x3xf32> loc("jit(f)/\xed\xa0\x80")\n', 1))
        .encode("latin-1"), 2, "invalid UTF-8 in string literal", 3, 67),
    # types that do not fit the op: errors, not models that compute something else
    Bad("elementwise operands of different shapes",
        main('    %0 = "stablehlo.add"(%arg0, %arg1) : (tensor<2x3xf32>, tensor<3x2xf32>) -> tensor<2x3xf32>\n'
             "    return %0 : tensor<2x3xf32>\n", args="%arg0: tensor<2x3xf32>, %arg1: tensor<3x2xf32>"),
        2, "stablehlo.add: operand 1 has type tensor<3x2xf32>, which does not have the shape of "
           "the result type tensor<2x3xf32>", 3, 10),
    Bad("reshape to another element count",
        main("    %0 = stablehlo.reshape %arg0 : (tensor<2x3xf32>) -> tensor<7xf32>\n"
             "    return %0 : tensor<7xf32>\n", result="tensor<7xf32>"), 2,
        "stablehlo.reshape: the operand has 6 elements, the result type 7", 3, 10),
    Bad("transpose with a wrong result type",
        main("    %0 = stablehlo.transpose %arg0, dims = [1, 0] : (tensor<2x3xf32>) -> tensor<2x3xf32>\n"
             "    return %0 : tensor<2x3xf32>\n"), 2,
        "stablehlo.transpose: result 0 has type tensor<2x3xf32>, but its operands and attributes "
        "make axis 0 3 long", 3, 10),
    Bad("pad amounts near 2^63",
        main("    %z = stablehlo.constant dense<0.0> : tensor<f32>\n"
             "    %0 = stablehlo.pad %arg0, %z, low = [9223372036854775807, 0], high = [0, 0], "
             "interior = [0, 0] : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>\n"
             "    return %0 : tensor<2x3xf32>\n"), 2, "stablehlo.pad: padding amounts beyond 2^62", 4, 10),
    Bad("pad with a wrong result type",
        main("    %z = stablehlo.constant dense<0.0> : tensor<f32>\n"
             "    %0 = stablehlo.pad %arg0, %z, low = [1, 0], high = [0, 0], "
             "interior = [0, 0] : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>\n"
             "    return %0 : tensor<2x3xf32>\n"), 2,
        "stablehlo.pad: axis 0 of the result type is 2, the padding makes it 3", 4, 10),
    Bad("window attributes near 2^63",
        main("    %z = stablehlo.constant dense<0.0> : tensor<f32>\n"
             '    %0 = "stablehlo.reduce_window"(%arg0, %z) ({\n'
             "    ^bb0(%a: tensor<f32>, %b: tensor<f32>):\n"
             "      %s = stablehlo.add %a, %b : tensor<f32>\n"
             "      stablehlo.return %s : tensor<f32>\n"
             "    }) {window_dimensions = array<i64: 1, 9223372036854775807>} : "
             "(tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>\n"
             "    return %0 : tensor<2x3xf32>\n"), 3,
        "attribute 'window_dimensions': 9223372036854775807 is beyond 2^31-1", 4, 10),
    Bad("gather with a wrong result type",
        main("    %i = stablehlo.constant dense<[[0], [1], [1]]> : tensor<3x1xi32>\n"
             '    %0 = "stablehlo.gather"(%arg0, %i) {dimension_numbers = #stablehlo.gather<'
             "offset_dims = [1], collapsed_slice_dims = [0], start_index_map = [0], "
             "index_vector_dim = 1>, slice_sizes = array<i64: 1, 3>} : "
             "(tensor<2x3xf32>, tensor<3x1xi32>) -> tensor<7x3xf32>\n"
             "    return %0 : tensor<7x3xf32>\n", result="tensor<7x3xf32>"), 2,
        "stablehlo.gather: the result type does not match the start indices' batch dimensions",
        4, 10),
    Bad("op without its result (a fuzzer finding)",
        main("    stablehlo.iota dim = 0 : () -> ()\n    return %arg0 : tensor<2x3xf32>\n"), 2,
        "stablehlo.iota: expects one result", 3, 5),
    # valid StableHLO that ONNX Runtime cannot compute with: unsupported (3),
    # naming the type and the op; a malformed literal of such a type is an input error (2)
    Bad("complex logistic",
        main("    %c = stablehlo.constant dense<[(1.0,2.0), (0.0,-1.0)]> : tensor<2xcomplex<f32>>\n"
             "    %a = stablehlo.logistic %c : tensor<2xcomplex<f32>>\n"
             "    %r = stablehlo.real %a : (tensor<2xcomplex<f32>>) -> tensor<2xf32>\n"
             "    return %r : tensor<2xf32>\n", result="tensor<2xf32>"), 3,
        "cannot convert stablehlo.logistic: no lowering of this op for complex tensors "
        "(tensor<2xcomplex<f32>>)", 4, 10),
    Bad("int4 constant",
        main("    %c = stablehlo.constant dense<[1, -2, 7]> : tensor<3xi4>\n"
             "    %0 = stablehlo.convert %c : (tensor<3xi4>) -> tensor<3xf32>\n"
             "    return %0 : tensor<3xf32>\n", result="tensor<3xf32>"), 3,
        "cannot convert stablehlo.constant: i4 tensors (ONNX INT4): onnxruntime has no kernels "
        "for this type outside of quantization ops", 3, 10),
    Bad("uint4 constant (hex)",
        main('    %c = stablehlo.constant dense<"0x00010F"> : tensor<3xui4>\n'
             "    return %arg0 : tensor<2x3xf32>\n"), 3,
        "cannot convert stablehlo.constant: ui4 tensors (ONNX UINT4)", 3, 10),
    Bad("int2 constant",
        main("    %c = stablehlo.constant dense<-1> : tensor<4xi2>\n"
             "    return %arg0 : tensor<2x3xf32>\n"), 3,
        "cannot convert stablehlo.constant: i2 tensors (ONNX INT2)", 3, 10),
    Bad("uint2 constant",
        main("    %c = stablehlo.constant dense<[0, 3]> : tensor<2xui2>\n"
             "    return %arg0 : tensor<2x3xf32>\n"), 3,
        "cannot convert stablehlo.constant: ui2 tensors (ONNX UINT2)", 3, 10),
    Bad("int4 constant out of range",
        main("    %c = stablehlo.constant dense<[1, 16]> : tensor<2xi4>\n"
             "    return %arg0 : tensor<2x3xf32>\n"), 2, "value 16 does not fit in i4", 3, 39),
    Bad("complex literal without a pair",
        main("    %c = stablehlo.constant dense<1.0> : tensor<complex<f32>>\n"
             "    return %arg0 : tensor<2x3xf32>\n"), 2,
        "expected a (real, imaginary) pair for a complex<f32> element", 3, 35),
    # limits: errors, not crashes
    Bad("nesting too deep", "module @m attributes {a = " + "[" * 300 + "]" * 300 + "} {\n}\n", 2,
        "nesting is deeper than 256 levels", 1, 282),
    Bad("name too long", GOOD.replace("@m", "@" + "n" * 5000), 2,
        "name is longer than 4096 bytes", 1, 8),
    Bad("rank above 64", main(ADD, args="%arg0: tensor<2x3xf32>, %arg1: tensor<" + "1x" * 65 + "f32>"),
        2, "tensor type has more than 64 dimensions", 2, 57),
    Bad("element count overflow",
        main(ADD, args="%arg0: tensor<2x3xf32>, %arg1: tensor<4294967296x4294967296xf32>"), 2,
        "tensor type has more than 2^63-1 elements", 2, 57),
    Bad("byte size overflow",
        main("    %c = stablehlo.constant dense<1.0> : tensor<2305843009213693952xf64>\n"
             "    return %c : tensor<2305843009213693952xf64>\n",
             result="tensor<2305843009213693952xf64>"), 2,
        "tensor type has more than 2^63-1 bytes", 2, 53),
    Bad("control flow nested too deep", nested_ifs(32), 3,
        "control flow nested more than 31 deep: ONNX readers cannot load", 34, 8),
    Bad("calls nested too deep", call_chain(70, 1), 3, "calls nested more than 64 deep", 255, 10),
    Bad("call expansion", call_chain(30, 2), 3,
        "the module expands to more than 2097152 ops once its calls are inlined", 3, 10),
]


def _check_message(text: str, source: str, bad: Bad) -> None:
    line = r"\d+" if bad.line is None else str(bad.line)
    head = re.escape(source) + rf":{line}:{bad.col}: error: "
    m = re.search(head + r".*" + re.escape(bad.message), text)
    assert m, f"expected {source}:{bad.line}:{bad.col}: error: ...{bad.message}... in:\n{text}"
    # the source line (at most 400 bytes of it) and a caret under the column
    rest = text[m.end():].split("\n")
    assert len(rest) >= 3 and rest[1].startswith("  "), text
    shown = rest[1][2:]
    assert rest[2] == "  " + " " * min(bad.col - 1, len(shown)) + "^", text


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
def test_bad_input_cli(tmp_path, bad):
    src = tmp_path / "in.mlir"
    src.write_bytes(bad.data)
    out = tmp_path / "model.onnx"
    out.write_bytes(PREVIOUS)
    proc = run_cli(src, "-o", out, "-q")
    assert proc.returncode == bad.status, (proc.returncode, proc.stderr)
    if bad.name == "binary garbage":
        # The command refuses a file that is not text before parsing it
        # (cli/main.c, check_text; more in test_cli_safety.py).
        assert f"hlo2onnx: {src} is not text (byte 0x1A at offset 6)" in proc.stderr, proc.stderr
    else:
        _check_message(proc.stderr, str(src), bad)
    assert "Sanitizer" not in proc.stderr and "Traceback" not in proc.stderr
    assert out.read_bytes() == PREVIOUS, "the previous model was changed"
    assert _listing(tmp_path) == ["in.mlir", "model.onnx"], "a temporary file was left"
    # without a previous file, none appears
    out.unlink()
    proc = run_cli(src, "-o", out, "-q")
    assert proc.returncode == bad.status
    assert _listing(tmp_path) == ["in.mlir"]


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
def test_bad_input_python(tmp_path, bad):
    out = tmp_path / "model.onnx"
    out.write_bytes(PREVIOUS)
    with pytest.raises(hlo2onnx.ConversionError) as info:
        hlo2onnx.mlir_to_onnx(bad.data, out, source_name="bad.mlir")
    err = info.value
    assert type(err) is EXC[bad.status] and err.status == bad.status, (type(err), err)
    assert isinstance(err, ValueError)
    _check_message(err.messages, "bad.mlir", bad)
    assert err.errors and err.errors[0].startswith("bad.mlir:")
    assert str(err).startswith(f"{err.kind} (status {bad.status}")
    assert out.read_bytes() == PREVIOUS
    assert _listing(tmp_path) == ["model.onnx"]
    # in memory: the same error
    with pytest.raises(EXC[bad.status]) as info2:
        hlo2onnx.mlir_to_onnx(bad.data)
    assert info2.value.messages == err.messages.replace("bad.mlir", "<input>")


def test_deepest_control_flow_loads(tmp_path):
    """31 nested Ifs: the deepest model protobuf readers accept (their limit
    of 100 nested messages); 32 is refused above."""
    import onnx

    out = tmp_path / "deep.onnx"
    hlo2onnx.mlir_to_onnx(nested_ifs(31), out)
    onnx.checker.check_model(onnx.load(out))


def test_text_api_reads_files_and_names_them(tmp_path):
    src = tmp_path / "typo.mlir"
    src.write_text(main(ADD, args="%arg0: tensor<2x3xf31>"))
    with pytest.raises(hlo2onnx.InputError) as info:
        hlo2onnx.mlir_to_onnx(src)
    assert info.value.messages.startswith(f"{src}:2:44: error: unknown element type 'f31'")
    model = hlo2onnx.mlir_to_onnx(FIXTURES / "mlp_static.mlir")
    assert [n.op_type for n in model.graph.node]


def test_python_str_with_surrogates_is_a_unicode_error():
    with pytest.raises(UnicodeEncodeError):
        hlo2onnx.mlir_to_onnx(GOOD.replace("@m", "@m\udcff"))


def test_all_unsupported_ops_in_one_report(tmp_path):
    body = ("    %0 = foo.bar %arg0 : tensor<2x3xf32>\n"
            "    %1 = foo.bar %0 : tensor<2x3xf32>\n"
            "    %2 = stablehlo.frob %1 : tensor<2x3xf32>\n"
            "    %3 = foo.bar %2 : tensor<2x3xf32>\n"
            "    %4 = foo.baz %3 : tensor<2x3xf32>\n"
            "    return %4 : tensor<2x3xf32>\n")
    with pytest.raises(hlo2onnx.UnsupportedOpError) as info:
        hlo2onnx.mlir_to_onnx(main(body), source_name="u.mlir")
    err = info.value
    assert err.n_errors == 3 and len(err.errors) == 3, err.messages
    assert err.errors[0] == ("u.mlir:3:10: error: unknown op 'foo.bar' "
                             "(3 uses in the module; first one here)")
    assert err.errors[1].startswith("u.mlir:5:10: error: unknown op 'stablehlo.frob' (1 use")
    assert err.errors[2].startswith("u.mlir:7:10: error: unknown op 'foo.baz' (1 use")
    assert err.ops == ["foo.bar", "stablehlo.frob", "foo.baz"]
    src = tmp_path / "u.mlir"
    src.write_text(main(body))
    proc = run_cli(src, "-o", tmp_path / "u.onnx", "-q")
    assert proc.returncode == 3
    assert proc.stderr.count(": error: ") == 3, proc.stderr


# ---------------------------------------------------------------------------
# Determinism: the same input, the same bytes.

GOOD_FIXTURES = sorted(p for p in FIXTURES.glob("*.mlir") if not p.name.startswith("bad_"))


@pytest.mark.parametrize("fixture", GOOD_FIXTURES, ids=[p.stem for p in GOOD_FIXTURES])
def test_output_is_byte_identical(tmp_path, fixture):
    outs = []
    for i in range(3):
        out = tmp_path / f"run{i}.onnx"
        proc = run_cli(fixture, "-o", out, "-q")
        assert proc.returncode == 0, proc.stderr
        outs.append(out.read_bytes())
    mem = [hlo2onnx.mlir_to_onnx(fixture, return_bytes=True) for _ in range(3)]
    assert outs[0] == outs[1] == outs[2], "the CLI wrote different bytes for the same input"
    assert mem[0] == mem[1] == mem[2], "the Python API returned different bytes"
    assert mem[0] == outs[0], "the CLI and the Python API disagree"


def test_parallel_conversions_match_serial_ones():
    """The core releases the GIL: conversions in 8 threads at once (good and
    bad inputs mixed) give the same bytes and the same messages as one at a
    time, so no state is shared between conversions."""
    from concurrent.futures import ThreadPoolExecutor

    inputs = [p.read_bytes() for p in GOOD_FIXTURES] + [b.data for b in BAD[:12]]

    def run(data):
        try:
            return hlo2onnx.mlir_to_onnx(data, return_bytes=True)
        except hlo2onnx.ConversionError as e:
            return (e.status, e.messages)

    serial = [run(d) for d in inputs]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            assert list(pool.map(run, inputs)) == serial


def test_output_is_byte_identical_with_external_data(tmp_path):
    text = big_constant_module(1 << 16)
    src = tmp_path / "big.mlir"
    src.write_text(text)
    blobs = []
    for i in range(3):
        d = tmp_path / f"run{i}"
        d.mkdir()
        proc = run_cli(src, "-o", d / "m.onnx", "-q", "--external-threshold", "1024")
        assert proc.returncode == 0, proc.stderr
        assert _listing(d) == ["m.onnx", "m.onnx.data"]
        blobs.append(((d / "m.onnx").read_bytes(), (d / "m.onnx.data").read_bytes()))
    assert blobs[0] == blobs[1] == blobs[2]


# ---------------------------------------------------------------------------
# Output safety: a failed or killed write leaves the previous files alone.

def big_constant_module(n_floats: int, n_small: int = 0, tail: str = "") -> str:
    """@main(x) = x + a constant of n_floats f32 (a hex blob), then + each of
    n_small constants of 2048 f32 (8 KB each, kept inside the model by a
    threshold above that); `tail` goes before the return (e.g. a bad op)."""
    t = f"tensor<{n_floats}xf32>"
    lines = [f"    %c = stablehlo.constant dense<\"0x{'0000803F' * n_floats}\"> : {t}",
             f"    %0 = stablehlo.add %arg0, %c : {t}"]
    st = "tensor<2048xf32>"
    for i in range(n_small):
        word = f"{0x3F800000 + i + 1:08X}"
        word = "".join(reversed([word[k:k + 2] for k in range(0, 8, 2)]))  # little-endian
        lines.append(f"    %s{i} = stablehlo.constant dense<\"0x{word * 2048}\"> : {st}")
        lines.append(f"    %a{i} = stablehlo.add %arg1, %s{i} : {st}" if i == 0 else
                     f"    %a{i} = stablehlo.add %a{i - 1}, %s{i} : {st}")
    results = f"{t}, {st}" if n_small else t
    rets = f"%0, %a{n_small - 1} : {t}, {st}" if n_small else f"%0 : {t}"
    return (f"module @m {{\n  func.func public @main(%arg0: {t}, %arg1: {st}) -> ({results}) {{\n"
            + "\n".join(lines) + f"\n{tail}    return {rets}\n  }}\n}}\n")


def _previous_pair(d: Path) -> tuple[Path, Path]:
    out, data = d / "m.onnx", d / "m.onnx.data"
    out.write_bytes(PREVIOUS)
    data.write_bytes(PREVIOUS + b"(data)")
    return out, data


def _unchanged(d: Path, out: Path, data: Path, extra=("in.mlir",)) -> None:
    assert out.read_bytes() == PREVIOUS
    assert data.read_bytes() == PREVIOUS + b"(data)"
    assert _listing(d) == sorted(["m.onnx", "m.onnx.data", *extra])


def test_error_found_late_keeps_previous_files(tmp_path):
    """The bad op comes after a 4 MB constant: parsing, lowering and the
    constant are done when the error is found; nothing is written."""
    src = tmp_path / "in.mlir"
    src.write_text(big_constant_module(1 << 20, tail="    %9 = foo.late %0 : tensor<1048576xf32>\n"))
    out, data = _previous_pair(tmp_path)
    proc = run_cli(src, "-o", out, "-q", "--external-threshold", "1024")
    assert proc.returncode == 3 and "unknown op 'foo.late'" in proc.stderr, proc.stderr
    _unchanged(tmp_path, out, data)


# Runs argv with resource limits set by a small Python launcher that then
# exec()s it (no preexec_fn: forking a process that runs JAX's threads is
# unsafe).  SIGXFSZ is ignored, so that a write past RLIMIT_FSIZE fails with
# EFBIG as on a full disk, instead of killing the process.
_LAUNCH = ("import os, resource, signal, sys\n"
           "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
           "fsize, vm = int(sys.argv[1]), int(sys.argv[2])\n"
           "if fsize: resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))\n"
           "if vm: resource.setrlimit(resource.RLIMIT_AS, (vm, vm))\n"
           "os.execv(sys.argv[3], sys.argv[3:])\n")


def run_limited(argv, *, fsize: int = 0, vm: int = 0, timeout: float = 300):
    return subprocess.run([sys.executable, "-c", _LAUNCH, str(fsize), str(vm), *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout)


# (n_floats of the big constant, 8 KB constants, --external-threshold, file size limit):
# the data file is written first, then the model, then both are renamed.
WRITE_FAILURES = {
    "data_file_first_write": (1 << 20, 0, 1024, 100),
    "data_file_midway": (1 << 20, 0, 1024, 3 << 20),
    "model_file_midway": (1 << 20, 0, 0, 1 << 20),
    "model_after_data_done": (1 << 14, 64, 65536, 256 << 10),
}


@pytest.mark.parametrize("case", sorted(WRITE_FAILURES))
def test_write_failure_keeps_previous_files(tmp_path, case):
    """A file size limit (RLIMIT_FSIZE) makes write(2) fail part way, as a
    full disk does: in the data file, in the model, or in the model after
    the data file was complete (its temporary must go too)."""
    n, n_small, threshold, limit = WRITE_FAILURES[case]
    src = tmp_path / "in.mlir"
    src.write_text(big_constant_module(n, n_small))
    out, data = _previous_pair(tmp_path)
    proc = run_limited([cli_path(), src, "-o", out, "-q", "--external-threshold", threshold],
                       fsize=limit)
    assert proc.returncode == 4, (proc.returncode, proc.stderr)
    which = r"m\.onnx" if case.startswith("model") else r"m\.onnx\.data"
    assert re.search(rf"error: cannot write \S*{which}: File too large", proc.stderr), \
        proc.stderr
    _unchanged(tmp_path, out, data)


def test_write_failure_python_api(tmp_path):
    """The same through mlir_to_onnx, in a child process with the limit."""
    src = tmp_path / "in.mlir"
    src.write_text(big_constant_module(1 << 18))
    out, data = _previous_pair(tmp_path)
    code = (
        "import resource, signal, sys, hlo2onnx\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "try:\n"
        f"    hlo2onnx.mlir_to_onnx(open({str(src)!r}).read(), {str(out)!r}, external_threshold=1024)\n"
        "except hlo2onnx.ConversionIOError as e:\n"
        "    print(e.status, e.errors[0]); sys.exit(0)\n"
        "sys.exit(1)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("4 ") and "File too large" in proc.stdout, proc.stdout
    _unchanged(tmp_path, out, data)


def many_ops_module(n: int) -> str:
    lines = ["module @m {", "  func.func public @main(%arg0: tensor<2xf32>) -> tensor<2xf32> {"]
    prev = "%arg0"
    for i in range(n):
        lines.append(f"    %{i} = stablehlo.sine {prev} : tensor<2xf32>")
        prev = f"%{i}"
    lines.append(f"    return {prev} : tensor<2xf32>\n  }}\n}}\n")
    return "\n".join(lines)


def test_out_of_memory_is_status_6(tmp_path):
    """300,000 ops need more than 150 MB of address space: the arena's
    longjmp becomes exit code 6 with a message, and no file is written."""
    src = tmp_path / "in.mlir"
    src.write_text(many_ops_module(300_000))
    out, data = _previous_pair(tmp_path)

    proc = run_limited([cli_path(), src, "-o", out, "-q"], vm=150 << 20)
    if "Sanitizer" in proc.stderr:
        pytest.skip("a sanitized CLI cannot run with a small address space")
    assert proc.returncode == 6, (proc.returncode, proc.stderr)
    assert re.search(r"error: out of memory \(\d+ bytes in use by the conversion\)", proc.stderr)
    _unchanged(tmp_path, out, data)


def test_out_of_memory_python_api(tmp_path):
    """The same in a Python process: ConversionMemoryError, and the process
    lives on."""
    if "asan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("a sanitized extension cannot run with a small address space")
    src = tmp_path / "in.mlir"
    src.write_text(many_ops_module(300_000))
    code = (
        "import re, resource, sys, hlo2onnx\n"
        "vm = int(re.search(r'VmSize:\\s+(\\d+)', open('/proc/self/status').read())[1]) * 1024\n"
        "text = open(sys.argv[1]).read()\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm + (200 << 20), resource.RLIM_INFINITY))\n"
        "try:\n"
        "    hlo2onnx.mlir_to_onnx(text, sys.argv[2])\n"
        "except hlo2onnx.ConversionMemoryError as e:\n"
        "    assert isinstance(e, MemoryError) and e.status == 6\n"
        "    print('status', e.status); sys.exit(0)\n"
        "sys.exit(1)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "m.onnx")],
                          capture_output=True, text=True, timeout=300)
    if "Sanitizer" in proc.stderr:
        pytest.skip("a sanitized extension cannot run with a small address space")
    assert proc.returncode == 0 and "status 6" in proc.stdout, proc.stdout + proc.stderr
    assert _listing(tmp_path) == ["in.mlir"]


def test_full_disk_keeps_previous_files(tmp_path):
    """ENOSPC on a 1 MB tmpfs (needs root to mount; skipped otherwise)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        src = tmp_path / "in.mlir"
        src.write_text(big_constant_module(1 << 18))  # 1 MB of data: does not fit
        out, data = _previous_pair(mnt)
        proc = run_cli(src, "-o", out, "-q", "--external-threshold", "1024")
        assert proc.returncode == 4, proc.stderr
        assert "No space left on device" in proc.stderr, proc.stderr
        _unchanged(mnt, out, data, extra=())
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_killed_process_keeps_previous_files(tmp_path):
    """SIGKILL while the model is being written: the previous model and
    data are intact.  The killed process cannot remove its temporary
    (`<name>.tmp.<pid>`); nothing else is left, and a later run is not
    disturbed by it."""
    src = tmp_path / "in.mlir"
    out, data = _previous_pair(tmp_path)
    n = 1 << 23  # 32 MB of tensor data, 64 MB of hex text
    for _attempt in range(4):
        src.write_text(big_constant_module(n))
        proc = subprocess.Popen([cli_path(), str(src), "-o", str(out), "-q",
                                 "--external-threshold", "1024"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tmp_names = {f"m.onnx.tmp.{proc.pid}", f"m.onnx.data.tmp.{proc.pid}"}
        deadline = time.monotonic() + 120
        seen = False
        while proc.poll() is None and time.monotonic() < deadline:
            if tmp_names & set(os.listdir(tmp_path)):
                seen = True
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait()
        if seen and proc.returncode == -signal.SIGKILL:
            break
        # it finished first: restore the previous files and try a bigger input
        for leftover in set(os.listdir(tmp_path)) - {"in.mlir"}:
            (tmp_path / leftover).unlink()
        out, data = _previous_pair(tmp_path)
        n *= 2
    else:
        pytest.skip("the conversion was always faster than the kill")
    left = set(_listing(tmp_path)) - {"in.mlir", "m.onnx", "m.onnx.data"}
    assert left and left <= tmp_names, left
    assert out.read_bytes() == PREVIOUS
    assert data.read_bytes() == PREVIOUS + b"(data)"
    # the next run replaces both and is not confused by the stale temporary
    src.write_text(big_constant_module(1 << 10))
    proc2 = run_cli(src, "-o", out, "-q", "--external-threshold", "1024")
    assert proc2.returncode == 0, proc2.stderr
    assert out.read_bytes() != PREVIOUS and data.read_bytes() != PREVIOUS + b"(data)"
