"""Checking a converted model against JAX with onnxruntime.

:func:`verify` runs the JAX function (jitted, in the same inference mode the
conversion used) and the ONNX model on the same inputs and compares every
output: shapes exactly, integers and booleans exactly, floats with
``|onnx - jax| <= atol + rtol * |jax|`` and NaN/inf at the same places.
Inputs given as arrays are run as they are; inputs given as shapes are
drawn at random (symbolic dimensions replaced by concrete sizes, by
default 1, 3 and 8).  Complex inputs and outputs are real pairs in the
model (a complex64 array of shape S is float32 of shape S + (2,), see
:func:`as_pairs`): complex inputs are given to onnxruntime that way, and
complex JAX outputs are compared that way, each part against the bounds.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Callable, Sequence, Union

import numpy as np

if TYPE_CHECKING:
    import onnx

from .convert import (channels_first_perm, check_options, layout_positions, prepare,
                      symbols_of)

# What verify() and allclose() compare against: a model, its bytes or its path.
ModelOrPath = Union["onnx.ModelProto", bytes, bytearray, str, "os.PathLike[str]"]

__all__ = ["verify", "allclose", "VerifyResult", "random_inputs", "as_pairs"]

DEFAULT_SIZES = (1, 3, 8)


@dataclasses.dataclass
class VerifyResult:
    """What :func:`verify` found.  True in a boolean context when ``ok``;
    ``str()`` is the report, which says why when it fails.

    ``max_abs_diff`` is the largest ``|onnx - jax|`` over all outputs and
    runs, and ``worst`` says where it is (output, element, both values);
    ``max_rel_diff`` the largest ``|onnx - jax| / |jax|`` over the elements
    with ``|jax| > atol`` (near zero the absolute bound decides, so it may
    exceed ``rtol`` while ``ok``).  ``failures`` describes each output that
    failed, with its first bad element.  ``given_inputs`` is True when the
    inputs were arrays, run as given (one run); otherwise they were drawn.

    ``ok, message = result`` unpacks it as jax2onnx's ``allclose`` pair.
    """

    ok: bool
    max_abs_diff: float
    max_rel_diff: float
    runs: int
    sizes: list[dict[str, int]]
    rtol: float
    atol: float
    failures: list[str] = dataclasses.field(default_factory=list)
    worst: str = ""
    given_inputs: bool = False

    def __bool__(self) -> bool:
        return self.ok

    def __iter__(self):
        return iter((self.ok, str(self)))

    def __str__(self) -> str:
        if self.given_inputs:
            at = " on the given inputs"
        elif self.sizes and self.sizes[0]:
            at = "; ".join(", ".join(f"{k}={v}" for k, v in s.items()) for s in self.sizes)
            at = f" on random inputs at {at}"
        else:
            at = " on random inputs"
        # where the largest difference is: only worth reading on a failure
        worst = f" ({self.worst})" if not self.ok and self.worst and self.max_abs_diff > 0 else ""
        head = (f"{'OK' if self.ok else 'MISMATCH'}: {self.runs} run{'s' * (self.runs != 1)}{at}; "
                f"max abs diff {self.max_abs_diff:.3g}{worst}, max rel diff "
                f"{self.max_rel_diff:.3g} where |expected| > atol (passing: |diff| <= atol + "
                f"rtol*|expected|, rtol {self.rtol:g}, atol {self.atol:g})")
        if self.failures:
            shown = self.failures[:10]
            more = len(self.failures) - len(shown)
            head += "\n  " + "\n  ".join(shown) + (f"\n  ... and {more} more" if more > 0 else "")
        return head


def random_array(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    """Random values of a dtype: floats normal, ints in [-10, 10) (unsigned
    [0, 10)), booleans half true."""
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dt, np.complexfloating):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    if np.issubdtype(dt, np.unsignedinteger):
        return rng.integers(0, 10, size=shape).astype(dt)
    if np.issubdtype(dt, np.integer):
        return rng.integers(-10, 10, size=shape).astype(dt)
    # floats, including ml_dtypes (bfloat16, float8) that numpy does not
    # classify as floating
    return rng.standard_normal(shape).astype(np.float32).astype(dt)


def as_pairs(x) -> np.ndarray:
    """A complex array as the model holds it: real pairs, shape + (2,)
    (complex64 -> float32, complex128 -> float64), (real, imaginary) in
    the last axis; any other array as it is."""
    x = np.asarray(x)
    if not np.iscomplexobj(x):
        return x
    part = np.float32 if x.dtype == np.complex64 else np.float64
    return np.ascontiguousarray(x).view(part).reshape(x.shape + (2,))


def random_inputs(specs, sizes: dict[str, int], rng: np.random.Generator,
                  input_generator: Callable | None = None,
                  given: dict[int, np.ndarray] | None = None) -> list[np.ndarray]:
    """One array per spec: ``given[i]`` where there is one, else drawn."""
    out = []
    for i, spec in enumerate(specs):
        if given and i in given:
            out.append(given[i])
            continue
        shape = spec.concrete_shape(sizes)
        if input_generator is not None:
            x = input_generator(rng, shape, spec.dtype, i)
        else:
            x = random_array(rng, shape, spec.dtype)
        out.append(np.asarray(x))
    return out


def _size_sets(symbols: list[str], batch_sizes) -> list[dict[str, int]]:
    """One dict of sizes per trial; symbol j takes sizes[(i + j) % len] in
    trial i, so that two symbols rarely share a size (which would hide a
    mix-up between them)."""
    if not symbols:
        return [{}]
    sizes = list(batch_sizes) if batch_sizes is not None else list(DEFAULT_SIZES)
    if not sizes:
        raise ValueError("batch_sizes is empty")
    return [{s: int(sizes[(i + j) % len(sizes)]) for j, s in enumerate(symbols)}
            for i in range(len(sizes))]


def _session(model_or_path: ModelOrPath):
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("hlo2onnx.verify needs onnxruntime: pip install 'hlo2onnx[verify]'") from e
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if isinstance(model_or_path, (str, os.PathLike)):
        return ort.InferenceSession(os.fspath(model_or_path), opts,
                                    providers=["CPUExecutionProvider"])
    if isinstance(model_or_path, (bytes, bytearray)):
        return ort.InferenceSession(bytes(model_or_path), opts,
                                    providers=["CPUExecutionProvider"])
    import onnx

    if isinstance(model_or_path, onnx.ModelProto):
        for t in model_or_path.graph.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                raise ValueError(
                    "this ModelProto keeps its weights in an external data file it was loaded "
                    "without; pass the model's path to verify() instead")
        return ort.InferenceSession(model_or_path.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
    raise TypeError(f"expected an onnx.ModelProto, bytes or a path, got {type(model_or_path).__name__}")


def _largest_diff(actual: np.ndarray, expected: np.ndarray, diff: np.ndarray) -> str:
    """Where ``diff`` (the absolute differences) is largest: the element and
    both values."""
    if diff.size == 0:
        return ""
    i = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return f"at {tuple(map(int, i))}: onnx {_fmt(actual[i])}, jax {_fmt(expected[i])}"


def _fmt(v) -> str:
    """A value without NumPy 2's type in its repr (6.003, not np.float32(6.003))."""
    return repr(v.item()) if hasattr(v, "item") else repr(v)


def compare(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float,
            where: list | None = None):
    """Returns (ok, max_abs_diff, max_rel_diff, why) for one output.

    The relative difference is taken only over elements whose expected
    magnitude exceeds ``atol`` (elsewhere the absolute bound decides).
    ``where``, a list, receives the description of the largest difference."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        return False, np.inf, np.inf, f"shape {actual.shape} != expected {expected.shape}"
    if actual.size == 0:
        return True, 0.0, 0.0, ""
    exp_kind = expected.dtype.kind
    if exp_kind in "biu" and actual.dtype.kind in "biu":
        a64, e64 = actual.astype(np.int64), expected.astype(np.int64)
        diff = np.abs(a64 - e64)
        if where is not None:
            where.append(_largest_diff(actual, expected, diff))
        differ_at = np.flatnonzero(diff)
        mad = float(diff.max())
        mrd = float(np.max(diff / np.maximum(np.abs(e64), 1)))
        if differ_at.size:
            i = np.unravel_index(differ_at[0], expected.shape)
            return False, mad, mrd, (f"{differ_at.size} of {expected.size} elements differ, first at "
                                     f"{tuple(map(int, i))}: {_fmt(actual[i])} != "
                                     f"{_fmt(expected[i])}")
        return True, mad, mrd, ""
    cplx = np.iscomplexobj(actual) or np.iscomplexobj(expected)
    ct = np.complex128 if cplx else np.float64
    a = actual.astype(ct)
    e = expected.astype(ct)
    a_nan, e_nan = np.isnan(a), np.isnan(e)
    finite = np.isfinite(a) & np.isfinite(e)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf where not finite
        diff = np.where(finite, np.abs(a - e), 0.0)
    if where is not None:
        where.append(_largest_diff(actual, expected, diff))
    bound = atol + rtol * np.abs(e)
    bad = (diff > bound) & finite
    bad |= a_nan != e_nan
    nonfinite = ~finite & ~(a_nan & e_nan)
    bad |= nonfinite & (a != e)  # inf of the right sign only
    mad = float(diff.max())
    big = finite & (np.abs(e) > atol)
    mrd = float(np.max(diff[big] / np.abs(e[big]))) if big.any() else 0.0
    if bad.any():
        if (bad & ~finite).any():
            mad = np.inf
        idx = np.flatnonzero(bad)
        i = np.unravel_index(idx[0], expected.shape)
        return False, mad, mrd, (f"{idx.size} of {expected.size} elements differ, first at "
                                 f"{tuple(map(int, i))}: {_fmt(actual[i])} != {_fmt(expected[i])}")
    return True, mad, mrd, ""


# onnxruntime's input type names
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
              "tensor(float16)": np.float16, "tensor(int8)": np.int8, "tensor(int16)": np.int16,
              "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(uint8)": np.uint8,
              "tensor(uint16)": np.uint16, "tensor(uint32)": np.uint32,
              "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_}


def _is_concrete(x) -> bool:
    """An array given as an input (run as it is), not a shape to draw."""
    import jax

    return not isinstance(x, jax.ShapeDtypeStruct) and hasattr(x, "shape") and \
        hasattr(x, "dtype") and not isinstance(x, (tuple, list))


def verify(fn_or_module: Callable[..., Any], model_or_path: ModelOrPath, inputs: Any, *,
           n: int = 3, rtol: float = 1e-5,
           atol: float = 1e-5, seed: int = 0, batch_sizes: Sequence[int] | None = None,
           params=None, state=None, dtype=None, input_dtypes: Sequence | None = None,
           shape_constraints: Sequence[str] = (), input_generator: Callable | None = None,
           check_dtype: bool = True, inputs_as_nchw=None, outputs_as_nchw=None,
           **unknown) -> VerifyResult:
    """Compares the ONNX model with the JAX function.

    ``fn_or_module``, ``inputs``, ``params``, ``state``, ``dtype`` and
    ``input_dtypes`` are as for :func:`hlo2onnx.to_onnx`.  An input given
    as an array (NumPy or JAX) is run as it is: with every input an array,
    that is one run on exactly those values.  An input given as a shape
    (or a ``jax.ShapeDtypeStruct``) is drawn at random: for every size set
    (symbolic dimensions take the values of ``batch_sizes``, default 1, 3,
    8; without symbols, the static shapes) ``n`` draws are compared.
    ``input_generator(rng, shape, dtype, index)`` may replace the default
    random values (e.g. for valid indices).  ``inputs_as_nchw`` and
    ``outputs_as_nchw`` are the options the model was converted with: the
    function's (NHWC) inputs are given to onnxruntime transposed to NCHW,
    and JAX's outputs are transposed the same way before comparing.
    """
    import jax

    check_options(unknown, verify)
    prep = prepare(fn_or_module, inputs, params=params, state=state, dtype=dtype,
                   input_dtypes=input_dtypes, shape_constraints=shape_constraints)
    specs, bound = prep.specs, prep.bound
    given = {i: np.asarray(x).astype(specs[i].dtype) for i, x in enumerate(prep.leaves)
             if _is_concrete(x)}
    all_given = len(given) == len(specs)
    jitted = jax.jit(prep.apply)
    sess = _session(model_or_path)
    feeds = [i.name for i in sess.get_inputs()]
    if len(feeds) != len(specs):
        raise ValueError(f"the ONNX model has {len(feeds)} inputs, the function {len(specs)}")
    for i, x in given.items():
        want = _ORT_TYPES.get(sess.get_inputs()[i].type)
        if want is not None and np.dtype(want) != as_pairs(np.empty(0, x.dtype)).dtype:  # complex: pairs
            raise TypeError(f"input {i} is given as {x.dtype}, but the model's input "
                            f"{feeds[i]!r} is {np.dtype(want)}: give the array in that dtype "
                            "(or convert the model from an array of this dtype)")
    in_nchw = layout_positions(inputs_as_nchw, [len(s.dims) for s in specs], feeds, "input")
    out_names = [o.name for o in sess.get_outputs()]
    rng = np.random.default_rng(seed)
    drawn = [s for i, s in enumerate(specs) if i not in given]
    size_sets = [{}] if all_given else _size_sets(symbols_of(drawn), batch_sizes)
    result = VerifyResult(True, 0.0, 0.0, 0, size_sets, rtol, atol, given_inputs=all_given)
    for sizes in size_sets:
        for _ in range(1 if all_given else max(1, n)):
            xs = random_inputs(specs, sizes, rng, input_generator, given)
            expected = [np.asarray(y) for y in jax.tree_util.tree_leaves(jitted(bound.values, *xs))]
            out_nchw = layout_positions(outputs_as_nchw, [y.ndim for y in expected], out_names,
                                        "output")
            expected = [y.transpose(channels_first_perm(y.ndim)) if k in out_nchw else y
                        for k, y in enumerate(expected)]
            onnx_xs = [x.transpose(channels_first_perm(x.ndim)) if k in in_nchw else x
                       for k, x in enumerate(xs)]
            # complex inputs and outputs are real pairs in the model
            onnx_xs = [as_pairs(x) for x in onnx_xs]
            expected = [as_pairs(y) for y in expected]
            actual = sess.run(None, dict(zip(feeds, onnx_xs)))
            result.runs += 1
            at = ", ".join(f"{k}={v}" for k, v in sizes.items())
            at = f" ({at})" if at else ""
            if len(actual) != len(expected):
                result.ok = False
                result.failures.append(
                    f"{len(actual)} ONNX outputs, {len(expected)} JAX outputs{at}")
                continue
            for k, (a, e) in enumerate(zip(actual, expected)):
                name = f"output {k} {out_names[k]!r}" if k < len(out_names) else f"output {k}"
                where: list[str] = []
                ok, mad, mrd, why = compare(a, e, rtol, atol, where)
                if check_dtype and ok and np.asarray(a).dtype != e.dtype:
                    ok, why = False, f"dtype {np.asarray(a).dtype} != expected {e.dtype}"
                if mad > result.max_abs_diff or (not result.worst and where and where[0]):
                    result.worst = f"{name}{at} {where[0]}" if where and where[0] else name
                result.max_abs_diff = max(result.max_abs_diff, mad)
                result.max_rel_diff = max(result.max_rel_diff, mrd)
                if not ok:
                    result.ok = False
                    result.failures.append(f"{name}{at}: {why}")
    return result


def allclose(fn_or_module: Callable[..., Any], model_or_path: ModelOrPath, inputs: Any,
             **kw: Any) -> VerifyResult:
    """:func:`verify`, for jax2onnx's spelling: the result is true when the
    model matches JAX, its ``str()`` says why when it does not, and it
    unpacks as ``ok, message = allclose(...)``."""
    return verify(fn_or_module, model_or_path, inputs, **kw)
