"""Sort, top_k, jax.random, special functions and the max-pool gradient
(src/lower/sort.c, special.c, pool_grad.c, tuple.c; the reported ops of
random.c), through the whole pipeline.

Each table case is a JAX function converted with hlo2onnx.to_onnx, checked
with onnx.checker (full_check) and against JAX with onnxruntime.  Sorts and
top_k move elements without computing them, so they are compared exactly
(rtol = atol = 0: values, indices, NaN positions, infinities); the sign of
zeros, which that comparison cannot see, is checked on its own.  Sort inputs
are small integers (many ties: stability is the point) with NaN, -0.0, +0.0
and +-inf sprinkled in (``ties``).  Inputs with a symbolic dimension "B" run
at B = 1, 3 and 8.

jax.random is converted with the key data (uint32[2], jax.random.key_data)
as the graph input: the threefry2x32 bits, uniform, bernoulli, categorical,
randint and permutations match JAX exactly; normal goes through erf_inv,
whose polynomial onnxruntime evaluates in another order than XLA's fused
code, so it matches to a few ulp (rtol = atol = 1e-6).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import numpy as np
import onnx
import pytest
from jax import lax

import hlo2onnx
from hlo2onnx import _core
from util import Case, assert_op_counts, check_model, convert_and_check, op_counts, run_ort

F32, I32 = jnp.float32, jnp.int32

# verify() computes atol + rtol * |expected|; with rtol = 0 and an infinite
# expected value numpy warns about 0 * inf (the comparison itself is right).
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in multiply")


def of(dtype, *shape):
    return jax.ShapeDtypeStruct(shape, dtype)


# ---- input generators ---------------------------------------------------------

SPECIALS = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf])


def ties(rng, shape, dtype):
    """Integers in [-3, 3] (ties everywhere); floats get NaN, +-0.0 and
    +-inf in about a third of the places."""
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dt, np.unsignedinteger):  # the top of the range sorts last
        x = rng.integers(0, 4, size=shape).astype(dt)
        x[rng.random(shape) < 0.2] = np.iinfo(dt).max
        return x
    x = rng.integers(-3, 4, size=shape).astype(np.float64)
    if not np.issubdtype(dt, np.integer):
        mask = rng.random(shape) < 0.35
        x[mask] = rng.choice(SPECIALS, size=int(mask.sum()))
    return x.astype(dt)


def ties_no_nan(rng, shape, dtype):
    x = ties(rng, shape, dtype)
    return np.where(np.isnan(x), 2, x).astype(dtype)


def gen_all(fn):
    return lambda rng, shape, dtype, i: fn(rng, shape, dtype)


def key_data(rng, shape, dtype, i):
    """Full-range uint32 key data for input 0, normal floats for the rest."""
    if i == 0:
        return rng.integers(0, 2**32, size=shape, dtype=np.uint64).astype(np.uint32)
    return rng.standard_normal(shape).astype(dtype)


# ---- table ---------------------------------------------------------------------


def sort_cases():
    cases = []
    for axis in (0, 1, -1):
        cases += [
            Case(f"sort_axis{axis}", lambda x, a=axis: jnp.sort(x, axis=a), [(6, 7)]),
            Case(f"argsort_axis{axis}", lambda x, a=axis: jnp.argsort(x, axis=a), [(6, 7)],
                 ops={"TopK": 1, "GatherElements": 0}),
            Case(f"sort_descending_axis{axis}",
                 lambda x, a=axis: jnp.sort(x, axis=a, descending=True), [(6, 7)]),
            Case(f"argsort_descending_axis{axis}",
                 lambda x, a=axis: jnp.argsort(x, axis=a, descending=True), [(6, 7)]),
        ]
    cases += [
        Case("sort_3d_middle", lambda x: jnp.sort(x, axis=1), [(3, 9, 4)]),
        Case("argsort_unstable", lambda x: jnp.argsort(x, stable=False), [(5, 8)]),
        Case("lax_sort_unstable", lambda x: lax.sort(x, is_stable=False), [(5, 8)]),
        Case("sort_negated_desc", lambda x: -jnp.sort(-x, axis=0), [(6, 7)]),
        Case("argsort_long_row", lambda x: jnp.argsort(x), [(2, 1000)]),
        # ("B", 7): static sort axis, dynamic batch; ("B",): the sort axis itself
        Case("sort_dynamic_batch", lambda x: jnp.sort(x, axis=1), [("B", 7)]),
        Case("argsort_dynamic_axis", lambda x: jnp.argsort(x), [("B",)]),
        Case("sort_length_1", lambda x: jnp.sort(x, axis=1), [(4, 1)], ops={"TopK": 0}),
        # element types: TopK has kernels for f32/f64/i32/i64 and few others
        Case("sort_int32", lambda x: jnp.sort(x), [of(I32, 5, 9)],
             ops={"TopK": 1, "GatherElements": 0, "Cast": 0}),
        Case("argsort_int32", lambda x: jnp.argsort(x), [of(I32, 5, 9)]),
        Case("sort_f16", lambda x: jnp.sort(x), [of(jnp.float16, 5, 9)]),
        Case("argsort_f16", lambda x: jnp.argsort(x), [of(jnp.float16, 5, 9)]),
        # bf16 cannot cross onnxruntime's Python API: cast inside the function
        Case("sort_bf16", lambda x: jnp.sort(x.astype(jnp.bfloat16)).astype(F32), [(5, 9)]),
        Case("sort_int8", lambda x: jnp.sort(x), [of(jnp.int8, 5, 9)]),
        Case("sort_uint8", lambda x: jnp.sort(x), [of(jnp.uint8, 5, 9)]),
        Case("sort_int16", lambda x: jnp.sort(x), [of(jnp.int16, 5, 9)]),
        Case("sort_uint16", lambda x: jnp.sort(x), [of(jnp.uint16, 5, 9)]),
        Case("sort_uint32", lambda x: jnp.sort(x), [of(jnp.uint32, 5, 9)]),
        Case("argsort_bool", lambda x: jnp.argsort(x), [of(jnp.bool_, 5, 9)]),
        Case("sort_int64", lambda x: jnp.sort(x), [of(jnp.int64, 5, 9)], x64=True),
        Case("sort_uint64", lambda x: jnp.sort(x), [of(jnp.uint64, 5, 9)], x64=True),
        Case("sort_f64", lambda x: jnp.sort(x), [of(jnp.float64, 5, 9)], x64=True),
        Case("argsort_f64_desc", lambda x: jnp.argsort(x, descending=True),
             [of(jnp.float64, 5, 9)], x64=True),
        # several operands: keys first, the rest carried
        Case("lax_sort_carry", lambda k, v: lax.sort((k, v), dimension=0, num_keys=1),
             [(6, 5), of(I32, 6, 5)], ops={"TopK": 1}),
        Case("lax_sort_two_keys", lambda k, v: lax.sort((k, v), dimension=1, num_keys=2),
             [(4, 12), of(I32, 4, 12)], ops={"TopK": 2}),
        Case("lax_sort_three_keys",
             lambda a, b, c: lax.sort((a, b, c), dimension=1, num_keys=3),
             [of(I32, 3, 20), (3, 20), of(jnp.uint8, 3, 20)], ops={"TopK": 3}),
        Case("lax_sort_two_keys_carry_two",
             lambda a, b, c, d: lax.sort((a, b, c, d), dimension=0, num_keys=2),
             [(10, 2), (10, 2), of(I32, 10, 2), of(jnp.float16, 10, 2)]),
        Case("argsort_vmapped", jax.vmap(jnp.argsort), [("B", 6)]),
        Case("sort_opset17", lambda x: jnp.sort(x), [(4, 6)], kw={"opset": 17}),
        # jnp functions built on sort
        Case("lexsort", lambda a, b: jnp.lexsort((a, b)), [(12,), (12,)]),
        Case("sort_key_val", lambda k, v: lax.sort_key_val(k, v), [(6, 5), (6, 5)]),
        # top_k of -x: a NaN of x becomes a -NaN (see test_top_k_negative_nan)
        Case("partition", lambda x: jnp.partition(x, 3, axis=1), [(5, 8)], gen=ties_no_nan),
        Case("unique_sized", lambda x: jnp.unique(x, size=8, fill_value=0), [(12,)]),
        Case("sort_flattened", lambda x: jnp.sort(x, axis=None), [(3, 4)]),
        Case("median", lambda x: jnp.median(x, axis=1), [(5, 8)], tol=1e-6),
        Case("quantile", lambda x: jnp.quantile(x, 0.3, axis=0), [(7, 3)], tol=1e-6),
    ]
    return cases


def topk_finite(rng, shape, dtype):
    """ties() without -NaN (JAX's top_k puts a -NaN last; ONNX cannot read
    the sign of a NaN: see test_top_k_negative_nan)."""
    return ties(rng, shape, dtype)


def top_k_cases():
    return [
        Case("top_k_2", lambda x: lax.top_k(x, 2), [(6, 7)], ops={"TopK": 1}),
        Case("top_k_all", lambda x: lax.top_k(x, 7), [(6, 7)]),
        Case("top_k_1", lambda x: lax.top_k(x, 1), [(9,)]),
        Case("top_k_3d", lambda x: lax.top_k(x, 3), [(2, 3, 8)]),
        Case("top_k_dynamic_batch", lambda x: lax.top_k(x, 3), [("B", 10)]),
        Case("top_k_int32", lambda x: lax.top_k(x, 4), [of(I32, 5, 9)],
             ops={"TopK": 1, "GatherElements": 0}),
        Case("top_k_uint8", lambda x: lax.top_k(x, 4), [of(jnp.uint8, 5, 9)]),
        Case("top_k_f16", lambda x: lax.top_k(x, 4), [of(jnp.float16, 5, 9)]),
        Case("top_k_f64", lambda x: lax.top_k(x, 4), [of(jnp.float64, 5, 9)], x64=True),
        Case("top_k_of_argsort", lambda x: lax.top_k(jnp.argsort(x), 3), [(4, 6)]),
    ]


W = jax.random.wrap_key_data
KEY = [of(jnp.uint32, 2)]


def _sampling_loop(k):
    """A fori_loop drawing fresh normals each step from a split key."""

    def body(i, carry):
        key, acc = carry
        key, sub = jax.random.split(key)
        return key, acc.at[i].set(jax.random.normal(sub, (3,)))

    return lax.fori_loop(0, 6, body, (W(k), jnp.zeros((6, 3))))[1]


def _scan_uniform(k):
    def body(key, _):
        key, sub = jax.random.split(key)
        return key, jax.random.uniform(sub, (2,))

    return lax.scan(body, W(k), None, length=5)[1]


def random_cases():
    exact = [
        Case("bits", lambda k: jax.random.bits(W(k), (4, 5)), KEY),
        Case("uniform", lambda k: jax.random.uniform(W(k), (4, 5)), KEY),

        Case("bernoulli", lambda k: jax.random.bernoulli(W(k), 0.3, (64,)), KEY),
        Case("categorical", lambda k, logits: jax.random.categorical(W(k), logits, axis=-1),
             KEY + [(8, 5)]),
        Case("categorical_shape",
             lambda k: jax.random.categorical(W(k), jnp.log(jnp.array([.1, .2, .7])), shape=(50,)),
             KEY),
        Case("randint", lambda k: jax.random.randint(W(k), (20,), -5, 10), KEY),
        Case("permutation", lambda k: jax.random.permutation(W(k), 10), KEY),
        Case("choice_no_replace", lambda k: jax.random.choice(W(k), 10, (4,), replace=False), KEY),
        Case("split", lambda k: jax.random.key_data(jax.random.split(W(k), 3)), KEY),
        Case("fold_in", lambda k: jax.random.key_data(jax.random.fold_in(W(k), 5)), KEY),
        Case("scan_uniform", _scan_uniform, KEY),
    ]
    close = [
        Case("normal", lambda k: jax.random.normal(W(k), (4, 5)), KEY, tol=1e-6),
        Case("fori_loop_normal", _sampling_loop, KEY, tol=1e-6),
        Case("gumbel", lambda k: jax.random.gumbel(W(k), (10,)), KEY, tol=1e-6),
        # u * (hi - lo) + lo: XLA on the CPU fuses it into one FMA (1 ulp)
        Case("uniform_range", lambda k: jax.random.uniform(W(k), (7,), minval=-2., maxval=3.),
             KEY, tol=1e-6),
        Case("normal_f64", lambda k: jax.random.normal(W(k), (10,), dtype=jnp.float64), KEY,
             x64=True, tol=1e-13),
    ]
    return exact + close


def _case_id(c):
    return c.name


def _run(case: Case, generator):
    if case.gen is not None:
        generator = gen_all(case.gen)
    kw = dict(case.kw)
    tol = 0.0 if case.tol is None else case.tol  # exact unless the case says
    kw.setdefault("rtol", tol)
    kw.setdefault("atol", tol)
    with jax.enable_x64(case.x64):
        model = convert_and_check(case.fn, case.inputs, input_generator=generator, **kw)
        if case.ops is not None:
            assert_op_counts(hlo2onnx.to_onnx(case.fn, case.inputs, optimize=False), case.ops)
    return model


@pytest.mark.parametrize("case", sort_cases(), ids=_case_id)
def test_sort(case):
    _run(case, gen_all(ties))


@pytest.mark.parametrize("case", top_k_cases(), ids=_case_id)
def test_top_k(case):
    _run(case, gen_all(topk_finite))


@pytest.mark.parametrize("case", random_cases(), ids=_case_id)
def test_random(case):
    _run(case, key_data)


# ---- zeros, NaN and ties in detail -------------------------------------------


def test_sort_keeps_zero_signs_in_order():
    """JAX's comparator makes -0.0 and +0.0 equal, so a stable sort keeps
    their order; the values are moved, never recomputed, so signs survive."""
    x = np.array([0.0, -0.0, 1.0, -0.0, np.nan, 0.0, -1.0, -np.inf], np.float32)
    model = hlo2onnx.to_onnx(jnp.sort, [(8,)])
    (got,) = run_ort(model, x)
    want = np.asarray(jnp.sort(x))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_top_k_orders_zeros():
    """top_k compares in TOTALORDER: +0.0 above -0.0 whatever their order."""
    x = np.array([[-0.0, 0.0, -0.0, 0.0, np.nan, -1.0]], np.float32)
    model = hlo2onnx.to_onnx(lambda x: lax.top_k(x, 6), [(1, 6)])
    got_v, got_i = run_ort(model, x)
    want_v, want_i = lax.top_k(x, 6)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_array_equal(np.signbit(got_v), np.signbit(np.asarray(want_v)))


def test_top_k_negative_nan():
    """Documented difference: ONNX has no op that reads a NaN's sign, so a
    -NaN counts as +NaN (largest); JAX's top_k puts it last.  Only the NaN
    moves: the other elements keep JAX's order."""
    x = np.array([[1.0, -np.nan, 3.0, 2.0]], np.float32)
    assert np.signbit(x[0, 1])
    model = hlo2onnx.to_onnx(lambda x: lax.top_k(x, 4), [(1, 4)])
    _, got_i = run_ort(model, x)
    np.testing.assert_array_equal(got_i, [[1, 2, 3, 0]])
    np.testing.assert_array_equal(lax.top_k(x, 4)[1], [[2, 3, 0, 1]])


def test_top_k_ties_take_lower_index():
    x = np.array([[5, 1, 5, 3, 5, 1]], np.int32)
    model = hlo2onnx.to_onnx(lambda x: lax.top_k(x, 5), [of(I32, 1, 6)])
    _got_v, got_i = run_ort(model, x)
    np.testing.assert_array_equal(got_i, [[0, 2, 4, 3, 1]])
    np.testing.assert_array_equal(got_i, lax.top_k(x, 5)[1])


def test_exported_top_k_composite():
    """jax.export wraps top_k in a composite whose decomposition is a GT
    TOTALORDER sort and a slice; the composite is inlined and the sort
    converted (with -0.0 below +0.0, as TOTALORDER says)."""
    from jax import export

    exp = export.export(jax.jit(lambda x: lax.top_k(x, 3)))(of(F32, 4, 9))
    model = onnx.load_from_string(_core.convert(exp.mlir_module(), [], None, {}))
    check_model(model)
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = ties(rng, (4, 9), np.float32)
        got = run_ort(model, x)
        for g, w in zip(got, lax.top_k(x, 3)):
            np.testing.assert_array_equal(g, w)
            np.testing.assert_array_equal(np.signbit(g), np.signbit(np.asarray(w)))


# ---- special functions ---------------------------------------------------------------


def _grid(dtype, lo, hi, n=20001, extra=()):
    return np.concatenate([np.linspace(lo, hi, n), np.asarray(extra, np.float64)]).astype(dtype)


ERFINV_EXTRA = [1.0, -1.0, 1.5, -1.5, np.nan, np.inf, -0.0, 1e-30, 0.9999999, -0.99999994,
                0.996, 0.9966, 0.9967]
# lgamma/digamma: poles, the zeros of lgamma (1, 2) and of digamma (1.4616...),
# huge and tiny arguments; no denormals (XLA on the CPU flushes them to zero).
GAMMA_EXTRA = [0.0, -0.0, -1.0, -2.0, -3.0, 1.0, 2.0, 0.5, 1.4616321, 1e-30, -1e-30, 1e30,
               -2.5, 1e6 + 0.5, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("fn,dtype,tol,lo,hi,extra", [
    (jss.erfinv, np.float32, 1e-6, -1, 1, ERFINV_EXTRA),
    (jss.erfinv, np.float16, 1e-3, -1, 1, ERFINV_EXTRA),
    (jss.erfinv, np.float64, 1e-13, -1, 1, ERFINV_EXTRA + [1 - 1e-15, -1 + 1e-16]),
    # f32 lgamma near its poles is ill-conditioned: JAX's own result moves by
    # ~2e-6 there, hence 1e-5
    (jss.gammaln, np.float32, 1e-5, -20, 20, GAMMA_EXTRA),
    (jss.gammaln, np.float64, 1e-12, -20, 20, GAMMA_EXTRA),
    (jss.digamma, np.float32, 1e-5, -20, 20, GAMMA_EXTRA),
    (jss.digamma, np.float64, 1e-12, -20, 20, GAMMA_EXTRA),
], ids=["erfinv_f32", "erfinv_f16", "erfinv_f64", "lgamma_f32", "lgamma_f64",
        "digamma_f32", "digamma_f64"])
def test_special_function(fn, dtype, tol, lo, hi, extra):
    """On a dense grid plus the corner cases: relative error tol (absolute
    below 1), and the same NaN/inf."""
    x = _grid(dtype, lo, hi, extra=extra)
    with jax.enable_x64(dtype == np.float64):
        model = hlo2onnx.to_onnx(fn, [of(dtype, x.size)])
        check_model(model)
        (got,) = run_ort(model, x)
        want = np.asarray(jax.jit(fn)(x))
    assert got.dtype == want.dtype
    g, w = got.astype(np.float64), want.astype(np.float64)
    fin = np.isfinite(w)
    np.testing.assert_array_equal(g[~fin], w[~fin])  # NaN where NaN, inf of the right sign
    err = np.abs(g[fin] - w[fin]) / np.maximum(np.abs(w[fin]), 1.0)
    assert err.max() <= tol, f"max error {err.max():.3g} at x = {x[fin][err.argmax()]}"


def test_erf_inv_in_graph():
    model = convert_and_check(lambda x: jax.lax.erf_inv(jnp.tanh(x)) * 2.0, [("B", 16)],
                              rtol=1e-5, atol=1e-5)
    assert op_counts(model)["Log"] >= 1


def test_erf_inv_bf16():
    """bf16 computes in f32 and rounds back, as XLA does (bf16 cannot cross
    onnxruntime's Python API, hence the casts in the function)."""
    fn = lambda x: jax.lax.erf_inv(x.astype(jnp.bfloat16)).astype(F32)  # noqa: E731
    convert_and_check(fn, [(64,)], rtol=1e-2, atol=1e-2,
                      input_generator=lambda rng, s, dt, i: rng.uniform(-1, 1, s).astype(dt))


# ---- the max-pool gradient (select_and_scatter) ---------------------------------


def _pool_grad(pool):
    return lambda x: jax.grad(lambda x: (pool(x) ** 2).sum())(x)


def _max_pool(window, strides, padding="VALID"):
    from flax import nnx

    return lambda x: nnx.max_pool(x, window, strides=strides, padding=padding)


POOL_CASES = [
    ("2x2_s2_valid", _max_pool((2, 2), (2, 2)), (2, 6, 6, 3)),
    ("2x2_s2_same_odd", _max_pool((2, 2), (2, 2), "SAME"), (2, 7, 5, 3)),
    ("3x3_s1_same_overlapping", _max_pool((3, 3), (1, 1), "SAME"), (1, 6, 6, 2)),
    ("3x2_s21", _max_pool((3, 2), (2, 1)), (2, 7, 6, 1)),
    ("1d", _max_pool((3,), (2,)), (2, 9, 4)),
    ("reduce_window_padded",
     lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1),
                                 ((0, 0), (1, 1), (1, 1), (0, 0))), (2, 6, 6, 3)),
    ("batch_window", lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (2, 2), (1, 2)), (5, 6)),
    ("dynamic_batch", _max_pool((2, 2), (2, 2), "SAME"), ("B", 5, 5, 2)),
]


@pytest.mark.parametrize("pool,shape", [c[1:] for c in POOL_CASES], ids=[c[0] for c in POOL_CASES])
@pytest.mark.parametrize("data", ["normal", "ties"])
def test_max_pool_gradient(pool, shape, data):
    """Each window's source goes to its first maximum (ties: the first in
    row-major window order, as XLA's GE select); overlapping windows add."""
    gen = None if data == "normal" else (lambda rng, s, dt, i: rng.integers(0, 3, s).astype(dt))
    model = convert_and_check(_pool_grad(pool), [shape], input_generator=gen)
    # one MaxPool for the forward pool (conv.c), one for its gradient
    assert op_counts(model)["MaxPool"] == 2 and op_counts(model)["ScatterElements"] == 1


def test_max_pool_gradient_f16():
    convert_and_check(_pool_grad(_max_pool((2, 2), (2, 2))), [of(jnp.float16, 2, 6, 6, 3)],
                      rtol=1e-3, atol=1e-3)


def test_cnn_training_step():
    """The gradient of a small conv + max-pool + dense loss with respect to
    its weights: what an exported training step computes."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3, 2, 4)).astype(np.float32) * 0.3
    v = rng.standard_normal((4 * 3 * 3, 1)).astype(np.float32) * 0.3

    def loss(params, x):
        w, v = params
        y = lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y = lax.reduce_window(jax.nn.relu(y), -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1),
                              "VALID")
        return jnp.mean((y.reshape(y.shape[0], -1) @ v) ** 2)

    step = lambda params, x: jax.grad(loss)(params, x)  # noqa: E731
    convert_and_check(step, [("B", 6, 6, 2)], params=(w, v), rtol=1e-4, atol=1e-5)


# ---- tuples (legacy form: JAX no longer emits them) -----------------------------------

TUPLE_TEXT = """
module @m {
  func.func public @main(%arg0: tensor<2xf32>, %arg1: tensor<3xi32>) -> (tensor<3xi32>, tensor<2xf32>) {
    %0 = stablehlo.tuple %arg0, %arg1 : tuple<tensor<2xf32>, tensor<3xi32>>
    %1 = stablehlo.tuple %0, %arg0 : tuple<tuple<tensor<2xf32>, tensor<3xi32>>, tensor<2xf32>>
    %2 = stablehlo.get_tuple_element %0[1] : (tuple<tensor<2xf32>, tensor<3xi32>>) -> tensor<3xi32>
    %3 = call @first(%1) : (tuple<tuple<tensor<2xf32>, tensor<3xi32>>, tensor<2xf32>>) -> tensor<2xf32>
    %4 = stablehlo.add %3, %arg0 : tensor<2xf32>
    return %2, %4 : tensor<3xi32>, tensor<2xf32>
  }
  func.func private @first(%t: tuple<tuple<tensor<2xf32>, tensor<3xi32>>, tensor<2xf32>>) -> tensor<2xf32> {
    %0 = "stablehlo.get_tuple_element"(%t) {index = 0 : i32} : (tuple<tuple<tensor<2xf32>, tensor<3xi32>>, tensor<2xf32>>) -> tuple<tensor<2xf32>, tensor<3xi32>>
    %1 = stablehlo.get_tuple_element %0[0] : (tuple<tensor<2xf32>, tensor<3xi32>>) -> tensor<2xf32>
    return %1 : tensor<2xf32>
  }
}
"""


def test_tuple_elements_through_a_call():
    model = onnx.load_from_string(_core.convert(TUPLE_TEXT, [], None, {}))
    check_model(model)
    a, b = np.array([1.5, -2.0], np.float32), np.array([3, 4, 5], np.int32)
    got_b, got_sum = run_ort(model, a, b)
    np.testing.assert_array_equal(got_b, b)
    np.testing.assert_array_equal(got_sum, a + a)


def test_tuple_from_outside():
    text = """
    func.func public @main(%t: tuple<tensor<2xf32>>) -> tensor<2xf32> {
      %0 = stablehlo.get_tuple_element %t[0] : (tuple<tensor<2xf32>>) -> tensor<2xf32>
      return %0 : tensor<2xf32>
    }"""
    with pytest.raises(hlo2onnx.ConversionError):
        _core.convert(text, [], None, {})


# ---- what cannot be converted: clear errors --------------------------------------------


def test_legacy_rng_is_reported():
    with pytest.raises(hlo2onnx.UnsupportedOpError, match=r"stablehlo.rng: .*jax.random"):
        hlo2onnx.to_onnx(lambda x: x + lax.rng_uniform(0.0, 1.0, (3,)), [(3,)])


CUSTOM_SORT_TEXT = """
func.func public @main(%x: tensor<5xf32>) -> tensor<5xf32> {
  %0 = "stablehlo.sort"(%x) ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    %1 = stablehlo.abs %a : tensor<f32>
    %2 = stablehlo.abs %b : tensor<f32>
    %3 = stablehlo.compare LT, %1, %2, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
    stablehlo.return %3 : tensor<i1>
  }) {dimension = 0 : i64, is_stable = true} : (tensor<5xf32>) -> tensor<5xf32>
  return %0 : tensor<5xf32>
}"""


def test_unknown_comparator_is_reported():
    """A comparator that is not a (lexicographic) less/greater-than over the
    operands - here |a| < |b|, which lax.sort cannot express - is named in
    the error with the ops of its body."""
    with pytest.raises(hlo2onnx.UnsupportedOpError, match=r"comparator.*stablehlo.abs"):
        _core.convert(CUSTOM_SORT_TEXT, [], None, {})


def test_u64_sort_at_opset_17():
    # the u64 key's order map is a wrapping Add and a Cast: no opset 18 op
    def wide(rng, shape, dtype, i):
        x = rng.integers(0, 2**63, size=shape, dtype=np.uint64)
        return x | (rng.integers(0, 2, size=shape, dtype=np.uint64) << np.uint64(63))

    with jax.enable_x64(True):
        convert_and_check(jnp.sort, [of(jnp.uint64, 9)], opset=17, input_generator=wide)
        convert_and_check(lambda x: lax.top_k(x, 3), [of(jnp.uint64, 2, 9)], opset=17,
                          input_generator=wide)
