"""Every converter's ops on every element type JAX arrays can have: the
converted model loads in onnxruntime's CPU provider (each node has a kernel
for its type: src/onnx/ort_kernels.def, passes/kernels.c) and computes what
JAX computes.

The ops are grouped in families; a family's ops that apply to a dtype are
batched into one model per (family, dtype), whose outputs are the ops'
results.  When such a model fails, each op is converted alone to name the
failing ones.

Tolerances, per output type: integers and bools exactly; floats rtol = atol
= 2 ulp of the type at 1 (bf16 2**-6, f16 2**-9), f32 1e-5 (the suite's),
f64 1e-9.  Two ulp: one for the rounding of the result to the narrow type,
and one for transcendental functions, which XLA and onnxruntime approximate
differently in f32 before rounding (a value near a rounding boundary of the
narrow type can round either way).  TOL_EXTRA names the ops computed in
a narrower type than JAX's, and why.  Coverage: 13 element types (bool,
i8..i64, u8..u64, f16, bf16, f32, f64) x the families below: 58 (family, type)
models, 1148 (op, type) pairs (40 ops on bool, 78-81 on each integer type,
118 on each float type), and again unoptimized for bool, i16, u16, f16 and
bf16 (21 models, 435 pairs).
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import onnxruntime as ort
import pytest
from jax import lax

import hlo2onnx
from util import check_model

ROOT = pathlib.Path(__file__).resolve().parents[2]

BF16 = np.dtype(ml_dtypes.bfloat16)
FLOATS = [np.dtype(np.float16), BF16, np.dtype(np.float32), np.dtype(np.float64)]
SIGNED = [np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64)]
UNSIGNED = [np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64)]
INTS = SIGNED + UNSIGNED
BOOL = np.dtype(np.bool_)
ALL = [BOOL] + INTS + FLOATS
SHAPE = (3, 4)

TOL = {np.dtype(np.float16): 2.0**-9, BF16: 2.0**-6, np.dtype(np.float32): 1e-5,
       np.dtype(np.float64): 1e-9}


# Where the converter computes in a narrower type than JAX: onnxruntime has
# no f64 Erf, so f64 erf and erfc compute in f32 (lower/elementwise.c).
TOL_EXTRA = {("erf", np.dtype(np.float64)): 1e-6, ("erfc", np.dtype(np.float64)): 1e-6}
# What the converter refuses, with an error, for a type - checked to raise.
# ONNX Conv and ConvTranspose take floats only, and an integer convolution
# in f64 could round: refused.  (u64 max/min/argmax/argmin, which no
# onnxruntime kernel takes, compare in i64 through an order-preserving map.)
REFUSED = {(op, dt) for op in ("conv", "conv_same_strided", "conv_transposed") for dt in INTS}
# Converted, checked, and not run by onnxruntime's CPU provider, which has
# no kernel for them: none now (f64 convolutions, which have none, become
# Slices and an f64 MatMul, passes/conv_matmul.c).  Checked to fail as
# NOT_IMPLEMENTED, so that a new onnxruntime with those kernels shows here.
NO_KERNEL: set = set()


def lowest(dt):
    return -np.inf if jnp.issubdtype(dt, jnp.floating) else jnp.iinfo(dt).min


def is_float(dt):
    return dt in FLOATS


def is_int(dt):
    return dt in INTS


def numeric(dt):
    return dt != BOOL


def any_dt(dt):
    return True


def draw(rng, dt, shape, positive=False):
    """Values every op of the families accepts: floats in [-0.9, 0.9] (or
    (0.5, 1.5) where positive), integers small enough that products of two
    stay in range of int8 wrap-free... and varied signs."""
    if dt == BOOL:
        return rng.random(shape) < 0.5
    if is_float(dt):
        v = rng.uniform(0.5, 1.5, shape) if positive else rng.uniform(-0.9, 0.9, shape)
        return v.astype(dt)
    if dt in UNSIGNED or positive:
        return rng.integers(1, 12, shape).astype(dt)
    return rng.integers(-11, 12, shape).astype(dt)


# ---- the families: (name, fn(x, y, p), applies to dtype) -------------------
# x, y: arrays of SHAPE; p: of SHAPE, positive (divisors, logs, shifts).

UNARY_FLOAT = [
    ("abs", lambda x, y, p: jnp.abs(x)), ("ceil", lambda x, y, p: jnp.ceil(x * 4)),
    ("floor", lambda x, y, p: jnp.floor(x * 4)), ("cos", lambda x, y, p: jnp.cos(x)),
    ("sin", lambda x, y, p: jnp.sin(x)), ("tan", lambda x, y, p: jnp.tan(x)),
    ("exp", lambda x, y, p: jnp.exp(x)), ("log", lambda x, y, p: jnp.log(p)),
    ("neg", lambda x, y, p: -x), ("sqrt", lambda x, y, p: jnp.sqrt(p)),
    ("tanh", lambda x, y, p: jnp.tanh(x)), ("sigmoid", lambda x, y, p: jax.nn.sigmoid(x)),
    ("rsqrt", lambda x, y, p: lax.rsqrt(p)), ("cbrt", lambda x, y, p: jnp.cbrt(x)),
    ("expm1", lambda x, y, p: jnp.expm1(x)), ("log1p", lambda x, y, p: jnp.log1p(p)),
    ("sign", lambda x, y, p: jnp.sign(x)), ("round", lambda x, y, p: jnp.round(x * 4)),
    ("round_afz", lambda x, y, p: lax.round(x * 4)),
    ("isfinite", lambda x, y, p: jnp.isfinite(x / x)), ("isinf", lambda x, y, p: jnp.isinf(p / x)),
    ("erf", lambda x, y, p: lax.erf(x)), ("erfc", lambda x, y, p: lax.erfc(x)),
    ("square", lambda x, y, p: jnp.square(x)), ("sinh", lambda x, y, p: jnp.sinh(x)),
    ("cosh", lambda x, y, p: jnp.cosh(x)), ("asin", lambda x, y, p: jnp.arcsin(x)),
    ("acos", lambda x, y, p: jnp.arccos(x)), ("atan", lambda x, y, p: jnp.arctan(x)),
    ("asinh", lambda x, y, p: jnp.arcsinh(x)), ("acosh", lambda x, y, p: jnp.arccosh(p + 1)),
    ("atanh", lambda x, y, p: jnp.arctanh(x)),
    ("lgamma", lambda x, y, p: lax.lgamma(p)), ("digamma", lambda x, y, p: lax.digamma(p)),
    ("erf_inv", lambda x, y, p: lax.erf_inv(x)),
    ("bessel_i1e", lambda x, y, p: lax.bessel_i1e(x)),
    ("clip_scalars", lambda x, y, p: jnp.clip(x, -0.5, 0.5)),
    ("clip_arrays", lambda x, y, p: jnp.clip(x, y[0], p[0])),
    ("relu", lambda x, y, p: jax.nn.relu(x)), ("gelu", lambda x, y, p: jax.nn.gelu(x)),
    ("softmax", lambda x, y, p: jax.nn.softmax(x, axis=-1)),
    ("logsumexp", lambda x, y, p: jax.nn.logsumexp(x, axis=-1)),
    ("div", lambda x, y, p: x / p), ("pow", lambda x, y, p: p ** y),
    ("atan2", lambda x, y, p: jnp.arctan2(x, y)), ("rem", lambda x, y, p: jnp.fmod(x, p)),
    ("reduce_precision", lambda x, y, p: lax.reduce_precision(x, 5, 10)),
    ("to_i32", lambda x, y, p: (x * 8).astype(jnp.int32)),
    ("mean", lambda x, y, p: jnp.mean(x, axis=0)), ("var", lambda x, y, p: jnp.var(x, axis=1)),
    ("logistic_scalar", lambda x, y, p: jax.nn.sigmoid(x + y[0, 0])),
]

ARITH = [
    ("add", lambda x, y, p: x + y), ("sub", lambda x, y, p: x - y),
    ("mul", lambda x, y, p: x * y), ("max", lambda x, y, p: jnp.maximum(x, y)),
    ("min", lambda x, y, p: jnp.minimum(x, y)),
    ("add_scalar", lambda x, y, p: x + y[0, 0]),
    ("clamp", lambda x, y, p: lax.clamp(y[0, 0], x, p[0, 0] + y[0, 0])),
    ("sum", lambda x, y, p: jnp.sum(x, axis=1)), ("prod", lambda x, y, p: jnp.prod(p, axis=0)),
    ("rmax", lambda x, y, p: jnp.max(x, axis=1)), ("rmin", lambda x, y, p: jnp.min(x, axis=0)),
    ("argmax", lambda x, y, p: jnp.argmax(x, axis=1)),
    ("argmin", lambda x, y, p: jnp.argmin(x, axis=0)),
    ("cumsum", lambda x, y, p: jnp.cumsum(x, axis=1)),
    ("cumprod", lambda x, y, p: jnp.cumprod(p, axis=0)),
    ("cummax", lambda x, y, p: lax.cummax(x, axis=1)),
    ("cummin", lambda x, y, p: lax.cummin(x, axis=0)),
    ("sort", lambda x, y, p: jnp.sort(x, axis=1)),
    ("argsort", lambda x, y, p: jnp.argsort(x, axis=1, stable=True)),
    ("top_k", lambda x, y, p: lax.top_k(x, 2)[0]),
    ("lt", lambda x, y, p: x < y), ("eq", lambda x, y, p: x == y),
    ("ge", lambda x, y, p: x >= y),
    ("matmul", lambda x, y, p: x @ y.T), ("einsum", lambda x, y, p: jnp.einsum("ij,ij->i", x, y)),
    ("window_max", lambda x, y, p: lax.reduce_window(x, jnp.array(lowest(x.dtype), x.dtype), lax.max,
                                                      (2, 2), (1, 1), "VALID")),
    ("window_sum", lambda x, y, p: lax.reduce_window(x, jnp.array(0, x.dtype), lax.add,
                                                      (2, 2), (1, 1), "SAME")),
    ("scatter_add", lambda x, y, p: x.at[jnp.array([0, 2, 0])].add(y[:3])),
    ("to_f32", lambda x, y, p: x.astype(jnp.float32)),
    ("where_scalar", lambda x, y, p: jnp.where(x > y, x, y[0, 0])),
]

INT_ONLY = [
    ("div_int", lambda x, y, p: lax.div(x, p)), ("rem_int", lambda x, y, p: lax.rem(x, p)),
    ("floor_div", lambda x, y, p: x // p),
    ("shl", lambda x, y, p: lax.shift_left(x, p % 5)),
    ("shr_a", lambda x, y, p: lax.shift_right_arithmetic(x, p % 5)),
    ("shr_l", lambda x, y, p: lax.shift_right_logical(x, p % 5)),
    ("and", lambda x, y, p: x & y), ("or", lambda x, y, p: x | y), ("xor", lambda x, y, p: x ^ y),
    ("not", lambda x, y, p: ~x), ("popcnt", lambda x, y, p: lax.population_count(x)),
    ("clz", lambda x, y, p: lax.clz(x)), ("pow_int", lambda x, y, p: lax.integer_pow(x, 3)),
]

SIGNED_ONLY = [
    ("neg_int", lambda x, y, p: -x), ("abs_int", lambda x, y, p: jnp.abs(x)),
    ("sign_int", lambda x, y, p: jnp.sign(x)),
]

BOOL_ONLY = [
    ("and_b", lambda x, y, p: x & y), ("or_b", lambda x, y, p: x | y),
    ("xor_b", lambda x, y, p: x ^ y), ("not_b", lambda x, y, p: ~x),
    ("any", lambda x, y, p: jnp.any(x, axis=1)), ("all", lambda x, y, p: jnp.all(x, axis=0)),
    ("ne_b", lambda x, y, p: x != y), ("max_b", lambda x, y, p: jnp.maximum(x, y)),
    ("to_i32_b", lambda x, y, p: x.astype(jnp.int32)),
    ("sum_b", lambda x, y, p: jnp.sum(x, axis=1)),
]

# Data movement, selection and control flow: every type.
MOVE = [
    ("broadcast", lambda x, y, p: jnp.broadcast_to(x[:, None, :], (3, 2, 4))),
    ("broadcast_scalar", lambda x, y, p: jnp.broadcast_to(y[0, 0], (2, 3))),
    ("reshape", lambda x, y, p: x.reshape(4, 3)), ("transpose", lambda x, y, p: x.T),
    ("slice", lambda x, y, p: x[1:, ::2]), ("reverse", lambda x, y, p: x[::-1]),
    ("dynamic_slice", lambda x, y, p: lax.dynamic_slice(x, (p[0, 0].astype(jnp.int32) % 2, jnp.int32(1)),
                                                         (2, 2))),
    ("dynamic_update_slice", lambda x, y, p: lax.dynamic_update_slice(
        x, y[:2, :2], (p[0, 0].astype(jnp.int32) % 2, jnp.int32(1)))),
    ("concat", lambda x, y, p: jnp.concatenate([x, y], axis=0)),
    ("pad", lambda x, y, p: jnp.pad(x, ((1, 0), (0, 2)))),
    ("pad_value", lambda x, y, p: lax.pad(x, y[0, 0], ((1, -1, 1), (0, 2, 0)))),
    ("gather", lambda x, y, p: x[jnp.array([2, 0, 1, 2])]),
    ("gather_2d", lambda x, y, p: x[jnp.array([2, 0]), jnp.array([1, 3])]),
    ("take_along", lambda x, y, p: jnp.take_along_axis(
        x, (p.astype(jnp.int32) % 4)[:, :2], axis=1)),
    ("scatter_set", lambda x, y, p: x.at[jnp.array([2, 0])].set(y[:2])),
    ("scatter_point", lambda x, y, p: x.at[1, 2].set(y[0, 0])),
    ("select", lambda x, y, p: jnp.where(jnp.arange(4) % 2 == 0, x, y)),
    ("tril", lambda x, y, p: jnp.tril(x)),
    ("eq_any", lambda x, y, p: x == y),
    ("iota", lambda x, y, p: jnp.arange(5, dtype=x.dtype) if x.dtype != jnp.bool_ else x),
    ("cond", lambda x, y, p: lax.cond(jnp.sum(p.astype(jnp.int32)) > 3, lambda a: a,
                                      lambda a: a[::-1], x)),
    ("fori", lambda x, y, p: lax.fori_loop(0, 3, lambda i, a: jnp.roll(a, 1, axis=1), x)),
    ("scan_rows", lambda x, y, p: lax.scan(lambda c, r: (r, c), x[0], x)[1]),
    ("expand_dims", lambda x, y, p: jnp.expand_dims(x, 0)[:, :, None]),
    ("tile", lambda x, y, p: jnp.tile(x, (2, 1))),
    ("repeat", lambda x, y, p: jnp.repeat(x, 2, axis=0)),
    ("switch", lambda x, y, p: lax.switch(jnp.sum(p.astype(jnp.int32)) % 3,
                                          [lambda a: a, lambda a: a[::-1], lambda a: a[:, ::-1]],
                                          x)),
    ("sort_pairs", lambda x, y, p: lax.sort((p, x), num_keys=1)[1]),
    ("while", lambda x, y, p: lax.while_loop(lambda c: c[0] < 3,
                                             lambda c: (c[0] + 1, jnp.roll(c[1], 1, axis=0)),
                                             (jnp.int32(0), x))[1]),
    ("bitcast_same_size", lambda x, y, p: x if x.dtype == jnp.bool_ else lax.bitcast_convert_type(
        x, x.dtype)),
]

# Convolutions, pooling and their gradients: floats and integers.
CONV = [
    ("conv", lambda x, y, p: lax.conv_general_dilated(
        x[None, None], y[None, None, :2, :2], (1, 1), "VALID")),
    ("conv_same_strided", lambda x, y, p: lax.conv_general_dilated(
        x[None, None], y[None, None, :3, :3], (2, 1), "SAME")),
    ("conv_transposed", lambda x, y, p: lax.conv_transpose(
        x[None, None], y[None, None, :2, :2], (2, 2), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))),
    ("avg_window", lambda x, y, p: lax.reduce_window(x, jnp.array(0, x.dtype), lax.add,
                                                      (2, 2), (2, 2), "VALID")),
    ("dot_preferred", lambda x, y, p: lax.dot(
        x, y.T, preferred_element_type=jnp.float32 if jnp.issubdtype(x.dtype, jnp.floating)
        else None)),
]

FLOAT_GRAD = [
    ("max_pool_grad", lambda x, y, p: jax.grad(lambda a: jnp.sum(lax.reduce_window(
        a, -jnp.inf, lax.max, (2, 2), (1, 1), "VALID") * y[:2, :3]))(x)),
    ("logsumexp_grad", lambda x, y, p: jax.grad(lambda a: jax.nn.logsumexp(a))(x)),
]

FAMILIES = [
    ("unary_float", UNARY_FLOAT, is_float),
    ("arith", ARITH, numeric),
    ("int_only", INT_ONLY, is_int),
    ("signed_only", SIGNED_ONLY, lambda dt: dt in SIGNED),
    ("bool_only", BOOL_ONLY, lambda dt: dt == BOOL),
    ("move", MOVE, any_dt),
    ("conv", CONV, numeric),
    ("float_grad", FLOAT_GRAD, is_float),
]
# With optimize=False the graph keeps the Expands, Wheres and Casts that
# simplify would remove (jnp.clip of a bf16 array and a scalar expands the
# scalar): run again for the types onnxruntime lacks most kernels for.
UNOPTIMIZED = [BOOL, np.dtype(np.int16), np.dtype(np.uint16), np.dtype(np.float16), BF16]
CASES = [(fam, ops, dt, True) for fam, ops, applies in FAMILIES for dt in ALL if applies(dt)]
CASES += [(fam, ops, dt, False) for fam, ops, applies in FAMILIES for dt in UNOPTIMIZED
          if applies(dt)]


def _batched(ops):
    def fn(x, y, p):
        return tuple(f(x, y, p) for _, f in ops)
    return fn


def _bf16_outside(fn):
    """onnxruntime's Python API takes and returns no bfloat16 arrays: the
    model's inputs and bf16 outputs are f32 (exact), its ops bf16."""
    def wrapped(*xs):
        out = fn(*(x.astype(jnp.bfloat16) for x in xs))
        return tuple(o.astype(jnp.float32) if o.dtype == jnp.bfloat16 else o for o in out)
    return wrapped


def _inputs(dt, seed=0):
    rng = np.random.default_rng(seed)
    return (draw(rng, dt, SHAPE), draw(rng, dt, SHAPE), draw(rng, dt, SHAPE, positive=True))


def _run(ops, dt, optimize=True):
    """Converts and runs ops batched; returns a list of (op name, message)
    for the results that differ from JAX (raises when the model fails)."""
    fn = _batched(ops)
    xs = _inputs(dt)
    specs = [jax.ShapeDtypeStruct(SHAPE, dt)] * 3
    if dt == BF16:
        fn = _bf16_outside(fn)
        xs = tuple(x.astype(np.float32) for x in xs)
        specs = [jax.ShapeDtypeStruct(SHAPE, np.float32)] * 3
    model = hlo2onnx.to_onnx(fn, specs, optimize=optimize)
    check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    got = sess.run(None, dict(zip(names, xs)))
    want = jax.jit(fn)(*xs)
    bad = []
    for (name, _), g, w in zip(ops, got, want):
        w = np.asarray(w)
        if g.dtype != w.dtype or g.shape != w.shape:
            bad.append((name, f"{g.dtype}{g.shape} where JAX has {w.dtype}{w.shape}"))
            continue
        if w.dtype in TOL:
            tol = TOL_EXTRA.get((name, dt), max(TOL.get(dt, 0.0), TOL[w.dtype]))
            ok = np.allclose(g.astype(np.float64), w.astype(np.float64), rtol=tol, atol=tol,
                             equal_nan=True)
        else:
            ok = np.array_equal(g, w)
        if not ok:
            bad.append((name, f"onnxruntime {g.ravel()[:6]} JAX {w.ravel()[:6]}"))
    return bad


@pytest.mark.parametrize("family,ops,dt,optimize", CASES,
                         ids=[f"{fam}-{dt.name}" + ("" if opt else "-unoptimized")
                              for fam, _, dt, opt in CASES])
def test_kernels(family, ops, dt, optimize):
    refused = [op for op in ops if (op[0], dt) in REFUSED]
    no_kernel = [op for op in ops if (op[0], dt) in NO_KERNEL]
    ops = [op for op in ops if (op[0], dt) not in REFUSED | NO_KERNEL]
    with jax.enable_x64(True):
        for name, f in refused:
            with pytest.raises(hlo2onnx.UnsupportedOpError):
                _run([(name, f)], dt, optimize)
        for name, f in no_kernel:
            with pytest.raises(Exception, match="NOT_IMPLEMENTED"):
                _run([(name, f)], dt, optimize)
        try:
            bad = _run(ops, dt, optimize)
        except Exception:  # noqa: BLE001 - locate the op(s) that fail alone
            bad = []
            for op in ops:
                try:
                    bad += _run([op], dt, optimize)
                except Exception as e:  # noqa: BLE001
                    bad.append((op[0], " ".join(str(e).split())[:300]))
    assert not bad, "\n".join(f"{family}/{dt.name}/{n}: {m}" for n, m in bad)


def test_kernel_table_is_current():
    """src/onnx/ort_kernels.def is what tools/ort_kernels.py finds in the
    installed onnxruntime (re-run the generator after an upgrade)."""
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "ort_kernels.py"), "--check"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
