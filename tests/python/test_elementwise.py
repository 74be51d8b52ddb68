"""Elementwise ops (src/lower/elementwise.c): every op with every element type
it takes, converted, checked with the ONNX checker and compared with JAX on
edge values (±0, ±inf, NaN, halfway points, integer extremes, shift amounts
past the width) as well as random ones.

Each case is one row of a table: (name, JAX function, dtypes, arity, input
kind, tolerance note).  Inputs are 1-D; binary ops get the cross product of
the edge values, so that every pair of specials meets.  bf16 tensors cannot
cross the onnxruntime Python API, so for bf16 the model is wrapped in Casts
from and to f32 at its boundary (the converted graph itself is unchanged).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import onnx
import pytest
from jax import lax
from onnx import helper

import hlo2onnx
from util import check_model, op_types

BF16 = np.dtype(ml_dtypes.bfloat16)
FLOATS = ["f16", "bf16", "f32", "f64"]
SINTS = ["i8", "i16", "i32", "i64"]
UINTS = ["u8", "u16", "u32", "u64"]
INTS = SINTS + UINTS
DTYPES = {"bool": np.dtype(np.bool_), "i8": np.dtype(np.int8), "i16": np.dtype(np.int16),
          "i32": np.dtype(np.int32), "i64": np.dtype(np.int64), "u8": np.dtype(np.uint8),
          "u16": np.dtype(np.uint16), "u32": np.dtype(np.uint32), "u64": np.dtype(np.uint64),
          "f16": np.dtype(np.float16), "bf16": BF16, "f32": np.dtype(np.float32),
          "f64": np.dtype(np.float64)}
# Relative tolerance per float type: a few units in the last place of the
# type (JAX and onnxruntime use different libm approximations); f32 as the
# project's default 1e-5.  f64 is tight: its formulas compute in f64 too.
RTOL = {"f16": 2e-3, "bf16": 1.6e-2, "f32": 1e-5, "f64": 1e-12}


# ---------------------------------------------------------------------------
# Inputs


def float_edges(dt: np.dtype) -> np.ndarray:
    """Specials of a float type.  Subnormals only for f16: XLA on CPU flushes
    f32 and f64 subnormals to zero (FTZ/DAZ; f16 is computed in f32, where
    its subnormals are normal) and onnxruntime keeps them - a difference of
    the runtimes, not of the conversion."""
    fi = ml_dtypes.finfo(dt)
    sub = [float(fi.smallest_subnormal)] if dt == np.float16 else []
    vals = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 3.5, 0.49999997, -0.49999997,
            0.25, 3.0, -7.25, 1e-3, -1e-3, 0.999, -0.999, 2.0, 10.0, -10.0, 100.0, -100.0,
            np.inf, -np.inf, np.nan, float(fi.max), -float(fi.max), float(fi.tiny),
            -float(fi.tiny), *sub, 1e10, -1e10, 8388609.0, 1e30]
    with np.errstate(over="ignore"):
        return np.array(vals, np.float64).astype(dt)


def int_edges(dt: np.dtype) -> np.ndarray:
    ii = np.iinfo(dt)
    vals = [0, 1, 2, 3, 7, 8, 31, 32, 63, 64, -1, -2, -7, -8, ii.min, ii.max, ii.min + 1,
            ii.max - 1, ii.max // 2, ii.min // 2]
    return np.array([v for v in vals if ii.min <= v <= ii.max], dtype=dt)


def edges(dt: np.dtype) -> np.ndarray:
    if dt == np.bool_:
        return np.array([False, True])
    if np.issubdtype(dt, np.integer):
        return int_edges(dt)
    return float_edges(dt)


def randoms(rng: np.random.Generator, dt: np.dtype, n: int) -> np.ndarray:
    if dt == np.bool_:
        return rng.random(n) < 0.5
    if np.issubdtype(dt, np.integer):
        ii = np.iinfo(dt)
        small = rng.integers(-100 if ii.min < 0 else 0, 100, n)
        full = rng.integers(ii.min, ii.max, n, dtype=dt, endpoint=True)
        return np.where(rng.random(n) < 0.5, small, full).astype(dt)
    x = rng.standard_normal(n) * 10.0 ** rng.uniform(-4, 4, n)
    with np.errstate(over="ignore"):
        return x.astype(np.float32).astype(dt)


def gen_inputs(dts: list[np.dtype], kind: str, seed: int = 0) -> list[np.ndarray]:
    """Arrays for the operands: `dts` their dtypes; kind 'grid' crosses the
    edge values of operand 0 and 1 (the others random); 'unit' draws floats
    from [-1.2, 1.2] (the inverse trig domains and their borders)."""
    rng = np.random.default_rng(seed)
    if kind == "unit":
        x = np.concatenate([rng.uniform(-1.2, 1.2, 200), [0.0, -0.0, 1.0, -1.0, 0.5, np.nan,
                                                          np.inf, 1e-4, -1e-4]])
        return [x.astype(dts[0])]
    if len(dts) == 1:
        return [np.concatenate([edges(dts[0]), randoms(rng, dts[0], 200)])]
    a, b = edges(dts[0]), edges(dts[1])
    ga = np.repeat(a, len(b))
    gb = np.tile(b, len(a))
    n = len(ga) + 200
    out = [np.concatenate([ga, randoms(rng, dts[0], 200)]),
           np.concatenate([gb, randoms(rng, dts[1], 200)])]
    for dt in dts[2:]:
        out.append(randoms(rng, dt, n))
    return out


# ---------------------------------------------------------------------------
# Running the model (bf16 through f32 Casts) and comparing


def _wrap_bf16(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with bf16 graph inputs/outputs replaced by f32 ones plus a Cast."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    BF, F = onnx.TensorProto.BFLOAT16, onnx.TensorProto.FLOAT
    casts_in = []
    for vi in g.input:
        if vi.type.tensor_type.elem_type == BF:
            inner = vi.name + "__bf16"
            for node in g.node:
                node.input[:] = [inner if i == vi.name else i for i in node.input]
            for out in g.output:
                if out.name == vi.name:
                    raise AssertionError("bf16 input passed through to an output")
            casts_in.append(helper.make_node("Cast", [vi.name], [inner], to=BF))
            vi.type.tensor_type.elem_type = F
    casts_out = []
    for vo in g.output:
        if vo.type.tensor_type.elem_type == BF:
            inner = vo.name + "__bf16"
            for node in g.node:
                node.output[:] = [inner if o == vo.name else o for o in node.output]
                node.input[:] = [inner if i == vo.name else i for i in node.input]
            casts_out.append(helper.make_node("Cast", [inner], [vo.name], to=F))
            vo.type.tensor_type.elem_type = F
    nodes = casts_in + list(g.node) + casts_out
    del g.node[:]
    g.node.extend(nodes)
    return m


def run_onnx(model: onnx.ModelProto, xs: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    m = _wrap_bf16(model)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = {i.name: (x.astype(np.float32) if x.dtype == BF16 else x)
             for i, x in zip(sess.get_inputs(), xs)}
    return sess.run(None, feeds)


def assert_same(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float,
                inputs: list[np.ndarray], signed_zeros: bool = False) -> None:
    expected = np.asarray(expected)
    if expected.dtype == BF16:
        expected = expected.astype(np.float32)
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape

    def where(mask, what):
        i = int(np.flatnonzero(mask)[0])
        ins = ", ".join(repr(x[i]) for x in inputs)
        return (f"{int(mask.sum())} of {mask.size} elements: {what}; first at inputs ({ins}): "
                f"onnx {actual[i]!r}, jax {expected[i]!r}")

    if expected.dtype.kind in "biu":
        bad = actual != expected
        assert not bad.any(), where(bad, "differ")
        return
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    bad = np.isnan(a) != np.isnan(e)
    assert not bad.any(), where(bad, "NaN in one only")
    fin = np.isfinite(e)
    bad = ~fin & ~np.isnan(e) & (a != e)
    assert not bad.any(), where(bad, "infinities differ")
    with np.errstate(invalid="ignore"):  # inf - inf where both are inf (masked by fin)
        bad = fin & ~(np.abs(a - e) <= atol + rtol * np.abs(e))
    assert not bad.any(), where(bad, f"beyond rtol={rtol} atol={atol}")
    if signed_zeros:
        bad = (e == 0) & (a == 0) & (np.signbit(a) != np.signbit(e))
        assert not bad.any(), where(bad, "signs of zero differ")


def convert(fn: Callable, dts: list[np.dtype], **opts) -> onnx.ModelProto:
    specs = [jax.ShapeDtypeStruct((n,), dt) for n, dt in dts]
    model = hlo2onnx.to_onnx(fn, specs, **opts)
    check_model(model)
    return model


def check_case(fn: Callable, xs: list[np.ndarray], rtol: float, atol: float,
               signed_zeros: bool = False, **opts) -> onnx.ModelProto:
    with jax.enable_x64(True):
        model = convert(fn, [(x.shape[0], x.dtype) for x in xs], **opts)
        expected = jax.tree_util.tree_leaves(jax.jit(fn)(*xs))
    actual = run_onnx(model, xs)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert_same(a, np.asarray(e), rtol, atol, xs, signed_zeros)
    return model


# ---------------------------------------------------------------------------
# The table


@dataclasses.dataclass
class Case:
    name: str
    fn: Callable
    dtypes: list[str]
    arity: int = 1
    kind: str = "grid"      # input kind, see gen_inputs
    rtol: float | None = None  # None: RTOL of the dtype
    atol: float = 1e-5
    signed_zeros: bool = True
    f64_rtol: float | None = None  # f64 ops computed in f32 (no f64 Erf in onnxruntime)


def rne(x):
    return lax.round(x, lax.RoundingMethod.TO_NEAREST_EVEN)


CASES = [
    # unary, floats
    Case("neg", lax.neg, FLOATS + INTS),
    Case("abs", lax.abs, FLOATS + SINTS),
    Case("ceil", lax.ceil, FLOATS),
    Case("floor", lax.floor, FLOATS),
    # trigonometry of huge arguments depends on the range reduction of each
    # libm: |x| <= 1e4 via the 'trig' kind keeps the comparison meaningful
    Case("cos", lax.cos, FLOATS, kind="trig"),
    Case("sin", lax.sin, FLOATS, kind="trig"),
    Case("tan", lax.tan, FLOATS, kind="trig"),
    Case("exp", lax.exp, FLOATS),
    Case("log", lax.log, FLOATS),
    Case("sqrt", lax.sqrt, FLOATS),
    Case("tanh", lax.tanh, FLOATS),
    Case("rsqrt", lax.rsqrt, FLOATS),
    Case("cbrt", lax.cbrt, FLOATS),
    Case("expm1", lax.expm1, FLOATS),
    Case("log1p", lax.log1p, FLOATS),
    Case("sign", lax.sign, FLOATS + SINTS),
    Case("round_afz", lax.round, FLOATS),
    Case("round_even", rne, FLOATS),
    Case("is_finite", lax.is_finite, FLOATS),
    Case("isinf", jnp.isinf, FLOATS),
    Case("isnan", jnp.isnan, FLOATS),
    Case("erf", lax.erf, FLOATS, f64_rtol=1e-6),
    Case("erfc", lax.erfc, FLOATS, atol=1e-6, f64_rtol=1e-5),
    Case("square", lax.square, FLOATS + INTS),
    Case("sinh", jnp.sinh, FLOATS),
    Case("cosh", jnp.cosh, FLOATS),
    Case("asin", lax.asin, FLOATS, kind="unit"),
    Case("acos", lax.acos, FLOATS, kind="unit"),
    Case("atan", lax.atan, FLOATS),
    Case("asinh", lax.asinh, FLOATS),
    Case("acosh", lax.acosh, FLOATS),
    Case("atanh", lax.atanh, FLOATS, kind="unit"),
    Case("bessel_i1e", lax.bessel_i1e, FLOATS),  # chlo.bessel_i1e: lower/special.c
    Case("not", lax.bitwise_not, ["bool"] + INTS),
    # binary
    Case("add", lax.add, FLOATS + INTS, 2),
    Case("sub", lax.sub, FLOATS + INTS, 2),
    Case("mul", lax.mul, FLOATS + INTS, 2),
    Case("div", lax.div, FLOATS + INTS, 2),
    Case("rem", lax.rem, FLOATS + INTS, 2),
    Case("max", lax.max, FLOATS + INTS + ["bool"], 2, signed_zeros=False),  # see elementwise.c
    Case("min", lax.min, FLOATS + INTS + ["bool"], 2, signed_zeros=False),
    Case("pow", lax.pow, FLOATS, 2),
    Case("jnp_power_int", jnp.power, INTS, 2),  # JAX unrolls: and, shift_right_logical, mul
    Case("atan2", lax.atan2, FLOATS, 2),
    Case("and", lax.bitwise_and, ["bool"] + INTS, 2),
    Case("or", lax.bitwise_or, ["bool"] + INTS, 2),
    Case("xor", lax.bitwise_xor, ["bool"] + INTS, 2),
    Case("eq", lax.eq, FLOATS + INTS + ["bool"], 2),
    Case("ne", lax.ne, FLOATS + INTS + ["bool"], 2),
    Case("lt", lax.lt, FLOATS + INTS + ["bool"], 2),
    Case("le", lax.le, FLOATS + INTS + ["bool"], 2),
    Case("gt", lax.gt, FLOATS + INTS + ["bool"], 2),
    Case("ge", lax.ge, FLOATS + INTS + ["bool"], 2),
    # ternary
    # onnxruntime's Where turns a -0.0 picked from its true input into +0.0
    # (a kernel quirk), and Max/Min pick either of two equal zeros
    Case("select", lambda p, a, b: lax.select(p, a, b), FLOATS + INTS + ["bool"], 3,
         signed_zeros=False),
    Case("clamp", lambda lo, x, hi: lax.clamp(lo, x, hi), FLOATS + INTS, 3, signed_zeros=False),
]

BITS = [
    Case("shift_left", lax.shift_left, INTS, 2),
    Case("shift_right_logical", lax.shift_right_logical, INTS, 2),
    Case("shift_right_arithmetic", lax.shift_right_arithmetic, INTS, 2),
    Case("popcnt", lax.population_count, INTS),
    Case("clz", lax.clz, INTS),
]


def _params(cases):
    for c in cases:
        for d in c.dtypes:
            yield pytest.param(c, d, id=f"{c.name}-{d}")


def _inputs(case: Case, dname: str) -> list[np.ndarray]:
    dt = DTYPES[dname]
    if case.name == "select":
        xs = gen_inputs([dt, dt], "grid")
        n = len(xs[0])
        pred = np.random.default_rng(1).random(n) < 0.5
        return [pred, xs[0], xs[1]]
    if case.name == "clamp":
        x, lo = gen_inputs([dt, dt], "grid")
        hi = np.random.default_rng(2).permutation(lo)
        return [lo, x, hi]
    if case.kind == "trig":
        x = gen_inputs([dt], "grid")[0]
        with np.errstate(invalid="ignore"):
            keep = ~(np.abs(x.astype(np.float64)) > 1e4) | ~np.isfinite(x.astype(np.float64))
        return [x[keep]]
    if case.name.startswith("shift"):
        x, s = gen_inputs([dt, dt], "grid")
        return [x, s]
    return gen_inputs([dt] * case.arity, case.kind)


@pytest.mark.parametrize("case,dname", list(_params(CASES + BITS)))
def test_elementwise(case: Case, dname: str):
    xs = _inputs(case, dname)
    rtol = case.rtol if case.rtol is not None else RTOL.get(dname, 0.0)
    if dname == "f64" and case.f64_rtol is not None:
        rtol = case.f64_rtol
    if dname in ("f16", "bf16"):
        rtol = max(rtol, RTOL[dname])
    atol = case.atol if dname not in ("f16", "bf16") else max(case.atol, RTOL[dname] * 1e-3)
    if dname == "f64" and case.f64_rtol is None:
        atol = min(atol, 1e-12)
    check_case(case.fn, xs, rtol, atol, signed_zeros=case.signed_zeros)


# ---------------------------------------------------------------------------
# Conversions between every pair of element types


@pytest.mark.parametrize("src,dst", [pytest.param(s, d, id=f"{s}-{d}")
                                     for s, d in itertools.product(DTYPES, DTYPES)])
def test_convert(src: str, dst: str):
    xs = gen_inputs([DTYPES[src]], "grid")
    fn = lambda x: lax.convert_element_type(x, DTYPES[dst])  # noqa: E731
    rtol = RTOL.get(dst, 0.0) if dst in ("f16", "bf16") else 0.0
    # int -> float rounds once, exactly: compare bit for bit (rtol 0)
    check_case(fn, xs, rtol, 0.0, signed_zeros=True)


# ---------------------------------------------------------------------------
# Details: op sequences, opset limits, messages


def test_clamp_with_scalar_bounds():
    fn = lambda x: lax.clamp(np.float32(-1.5), x, np.float32(2.0))  # noqa: E731
    xs = gen_inputs([np.dtype(np.float32)], "grid")
    model = check_case(fn, xs, 0.0, 0.0)
    assert op_types(model).count("Max") == 1 and op_types(model).count("Min") == 1


def test_simple_ops_are_single_nodes():
    f32 = [(4, np.float32)]
    for fn, onnx_op in [(lax.exp, "Exp"), (lax.tanh, "Tanh"), (lax.erf, "Erf"),
                        (lambda x: x + x, "Add"), (lax.floor, "Floor")]:
        with jax.enable_x64(True):
            assert op_types(convert(fn, f32)) == [onnx_op]


def test_bitwise_on_ints_needs_opset_18():
    with jax.enable_x64(True), pytest.raises(hlo2onnx.UnsupportedOpError, match="opset 18"):
        convert(lax.bitwise_and, [(4, np.int32), (4, np.int32)], opset=17)


def test_opset_17_float_ops():
    xs = gen_inputs([np.dtype(np.float32)] * 2, "grid")
    for fn in (lax.div, lax.rem, lax.atan2, lax.max, lax.lt):
        check_case(fn, xs, 1e-5, 1e-5, opset=17)


# ---------------------------------------------------------------------------
# Ops JAX does not emit from jax.numpy/lax: hand-written StableHLO, with XLA
# itself (compiling the same text) as the reference.


def _xla_run(text: str, args: list[np.ndarray]) -> list[np.ndarray]:
    try:
        from jax._src import compiler, xla_bridge
        from jax._src.interpreters import mlir as jmlir
        from jax._src.lib import xla_client as xc
        from jax._src.lib.mlir import ir
    except ImportError:  # pragma: no cover - JAX internals moved
        pytest.skip("cannot compile StableHLO text with this JAX")
    backend = xla_bridge.get_backend("cpu")
    with jmlir.make_ir_context():
        mod = ir.Module.parse(text)
        opts = compiler.get_compile_options(num_replicas=1, num_partitions=1)
        try:
            devices = xc.DeviceList(tuple(backend.local_devices()[:1]))
            exe = backend.compile_and_load(mod, devices, opts)
        except (AttributeError, TypeError) as e:  # pragma: no cover - JAX internals moved
            pytest.skip(f"cannot compile StableHLO text with this JAX: {e}")
    with jax.enable_x64(True):
        return [np.asarray(o) for o in exe.execute([jax.device_put(a) for a in args])]


def _text_case(body: str, args: list[np.ndarray], result: str, rtol=0.0, atol=0.0):
    from hlo2onnx import _core

    sig = ", ".join(f"%a{i}: tensor<{len(a)}x{_mlir(a.dtype)}>" for i, a in enumerate(args))
    text = (f"module @m {{\n  func.func public @main({sig}) -> {result} {{\n{body}\n  }}\n}}\n")
    model = onnx.load_from_string(_core.convert(text, [], None, {}))
    check_model(model)
    expected = _xla_run(text, args)
    actual = run_onnx(model, args)
    for a, e in zip(actual, expected):
        assert_same(a, e, rtol, atol, args, signed_zeros=True)
    return model


def _mlir(dt: np.dtype) -> str:
    return {"bool": "i1", "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64",
            "uint8": "ui8", "uint16": "ui16", "uint32": "ui32", "uint64": "ui64",
            "float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}[dt.name]


@pytest.mark.parametrize("direction", ["EQ", "NE", "LT", "LE", "GT", "GE"])
@pytest.mark.parametrize("dname", ["f32", "f16", "f64"])
def test_compare_totalorder(direction: str, dname: str):
    dt = DTYPES[dname]
    e = edges(dt)
    e = e[~np.isnan(e.astype(np.float64))]  # NaN signs cannot be read without a bitcast
    a = np.repeat(e, len(e))
    b = np.tile(e, len(e))
    a = np.concatenate([a, [np.nan, np.nan, 1.0]]).astype(dt)  # +NaN: the largest
    b = np.concatenate([b, [np.nan, 1.0, np.nan]]).astype(dt)
    n, t = len(a), _mlir(dt)
    body = (f"    %0 = stablehlo.compare {direction}, %a0, %a1, TOTALORDER : "
            f"(tensor<{n}x{t}>, tensor<{n}x{t}>) -> tensor<{n}xi1>\n"
            f"    return %0 : tensor<{n}xi1>")
    _text_case(body, [a, b], f"tensor<{n}xi1>")


@pytest.mark.parametrize("dname", INTS)
def test_integer_power(dname: str):
    dt = DTYPES[dname]
    ii = np.iinfo(dt)
    base = np.array([2, -3, 2, 0, 1, -1, -1, 0, 5, 7, 3, -2], np.int64)
    expo = np.array([10, 3, -1, -1, -5, -3, 4, 0, 3, 2, 0, 5], np.int64)
    keep = (base >= ii.min) & (expo >= ii.min) & (base <= ii.max)
    base, expo = base[keep].astype(dt), expo[keep].astype(dt)
    n, t = len(base), _mlir(dt)
    body = (f"    %0 = stablehlo.power %a0, %a1 : tensor<{n}x{t}>\n"
            f"    return %0 : tensor<{n}x{t}>")
    _text_case(body, [base, expo], f"tensor<{n}x{t}>")


# ---------------------------------------------------------------------------
# bitcast_convert and reduce_precision

_BITCASTS = [("i8", "u8"), ("u8", "i8"), ("i16", "u16"), ("u32", "i32"), ("i64", "u64"),
             ("u64", "i64"), ("u16", "f16"), ("i16", "f16"), ("u16", "bf16"), ("u32", "f32"),
             ("i32", "f32"), ("u64", "f64"), ("i64", "f64")]


@pytest.mark.parametrize("src,dst", [pytest.param(s, d, id=f"{s}-{d}") for s, d in _BITCASTS])
def test_bitcast_convert(src: str, dst: str):
    sdt, ddt = DTYPES[src], DTYPES[dst]
    x = gen_inputs([sdt], "grid")[0]
    if ddt.kind == "f" or ddt == BF16:
        # the bit patterns of the specials of the float type, and every
        # exponent with a random mantissa (subnormals, inf and NaN included)
        specials = edges(ddt).view(sdt)
        nbits = 8 * sdt.itemsize
        rng = np.random.default_rng(3)
        pat = rng.integers(0, 2 ** min(nbits, 63), 300, dtype=np.uint64).astype(
            np.dtype(f"u{sdt.itemsize}")).view(sdt)
        x = np.concatenate([x, specials, pat])
    check_case(lambda v: lax.bitcast_convert_type(v, ddt), [x], 0.0, 0.0, signed_zeros=True)


@pytest.mark.parametrize("dname", ["f32", "f64"])
@pytest.mark.parametrize("bits", [(5, 10), (8, 7), (8, 23), (11, 52)], ids=str)
def test_reduce_precision(dname: str, bits):
    dt = DTYPES[dname]
    x = gen_inputs([dt], "grid")[0]
    # around the smallest normal and the largest finite value of f16
    near = np.array([2.0 ** -14, 2.0 ** -14 * (1 - 2.0 ** -12), 2.0 ** -14 - 2.0 ** -26,
                     2.0 ** -14 - 2.0 ** -25, 6e-5, 1e-5, 6e-8, 65504.0, 65519.0, 65520.0,
                     1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11])
    x = np.concatenate([x, near, -near]).astype(dt)
    fn = lambda v: lax.reduce_precision(v, *bits)  # noqa: E731
    check_case(fn, [x], 0.0, 0.0, signed_zeros=True)
