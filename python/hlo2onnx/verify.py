"""Checking a converted model against JAX with onnxruntime.

:func:`verify` draws random inputs of the given shapes (symbolic dimensions
replaced by concrete sizes, by default 1, 3 and 8), runs the JAX function
(jitted, in the same inference mode the conversion used) and the ONNX model,
and compares every output: shapes exactly, integers and booleans exactly,
floats with ``|onnx - jax| <= atol + rtol * |jax|`` and NaN/inf at the same
places.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Callable, Sequence, Union

import numpy as np

if TYPE_CHECKING:
    import onnx

from .convert import (bind, channels_first_perm, layout_positions, normalize_inputs,
                      symbols_of)

# What verify() and allclose() compare against: a model, its bytes or its path.
ModelOrPath = Union["onnx.ModelProto", bytes, bytearray, str, "os.PathLike[str]"]

__all__ = ["verify", "allclose", "VerifyResult", "random_inputs"]

DEFAULT_SIZES = (1, 3, 8)


@dataclasses.dataclass
class VerifyResult:
    """What :func:`verify` found.  True in a boolean context when ``ok``.

    ``max_abs_diff`` is the largest ``|onnx - jax|`` over all outputs and
    runs; ``max_rel_diff`` the largest ``|onnx - jax| / |jax|`` over the
    elements with ``|jax| > atol`` (near zero the absolute bound decides, so
    it may exceed ``rtol`` while ``ok``).  ``failures`` describes each output
    that failed, with its first bad element.
    """

    ok: bool
    max_abs_diff: float
    max_rel_diff: float
    runs: int
    sizes: list[dict[str, int]]
    rtol: float
    atol: float
    failures: list[str] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.sizes and self.sizes[0]:
            at = "; ".join(", ".join(f"{k}={v}" for k, v in s.items()) for s in self.sizes)
            at = f" at {at}"
        else:
            at = ""
        head = (f"{'OK' if self.ok else 'MISMATCH'}: {self.runs} run{'s' * (self.runs != 1)}{at}; "
                f"max abs diff {self.max_abs_diff:.3g}, max rel diff {self.max_rel_diff:.3g} "
                f"where |expected| > atol (passing: |diff| <= atol + rtol*|expected|, "
                f"rtol {self.rtol:g}, atol {self.atol:g})")
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


def random_inputs(specs, sizes: dict[str, int], rng: np.random.Generator,
                  input_generator: Callable | None = None) -> list[np.ndarray]:
    out = []
    for i, spec in enumerate(specs):
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


def compare(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float):
    """Returns (ok, max_abs_diff, max_rel_diff, why) for one output.

    The relative difference is taken only over elements whose expected
    magnitude exceeds ``atol`` (elsewhere the absolute bound decides)."""
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
        differ_at = np.flatnonzero(diff)
        mad = float(diff.max())
        mrd = float(np.max(diff / np.maximum(np.abs(e64), 1)))
        if differ_at.size:
            i = np.unravel_index(differ_at[0], expected.shape)
            return False, mad, mrd, (f"{differ_at.size} of {expected.size} elements differ, first at "
                                     f"{tuple(map(int, i))}: {actual[i]!r} != {expected[i]!r}")
        return True, mad, mrd, ""
    cplx = np.iscomplexobj(actual) or np.iscomplexobj(expected)
    ct = np.complex128 if cplx else np.float64
    a = actual.astype(ct)
    e = expected.astype(ct)
    a_nan, e_nan = np.isnan(a), np.isnan(e)
    finite = np.isfinite(a) & np.isfinite(e)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf where not finite
        diff = np.where(finite, np.abs(a - e), 0.0)
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
                                 f"{tuple(map(int, i))}: {actual[i]!r} != {expected[i]!r}")
    return True, mad, mrd, ""


def verify(fn_or_module: Callable[..., Any], model_or_path: ModelOrPath, inputs: Sequence[Any], *,
           n: int = 3, rtol: float = 1e-5,
           atol: float = 1e-5, seed: int = 0, batch_sizes: Sequence[int] | None = None,
           params=None, dtype=None, input_dtypes=None, shape_constraints: Sequence[str] = (),
           input_generator: Callable | None = None, check_dtype: bool = True,
           inputs_as_nchw=None, outputs_as_nchw=None) -> VerifyResult:
    """Compares the ONNX model with the JAX function on random inputs.

    ``fn_or_module``, ``inputs``, ``params``, ``dtype`` and ``input_dtypes``
    are as for :func:`hlo2onnx.to_onnx`.  For every size set (symbolic
    dimensions take the values of ``batch_sizes``, default 1, 3, 8; a
    model without symbols is run at its static shapes) ``n`` random input
    draws are compared.  ``input_generator(rng, shape, dtype, index)`` may
    replace the default random values (e.g. for valid indices).
    ``inputs_as_nchw`` and ``outputs_as_nchw`` are the options the model was
    converted with: the function's (NHWC) inputs are drawn, and given to
    onnxruntime transposed to NCHW; its outputs are compared after JAX's are
    transposed the same way.
    """
    import jax

    specs = normalize_inputs(inputs, dtype=dtype, input_dtypes=input_dtypes,
                             shape_constraints=shape_constraints)
    bound = bind(fn_or_module, params)
    jitted = jax.jit(bound.apply)
    sess = _session(model_or_path)
    feeds = [i.name for i in sess.get_inputs()]
    if len(feeds) != len(specs):
        raise ValueError(f"the ONNX model has {len(feeds)} inputs, the function {len(specs)}")
    in_nchw = layout_positions(inputs_as_nchw, [len(s.dims) for s in specs], feeds, "input")
    out_names = [o.name for o in sess.get_outputs()]
    rng = np.random.default_rng(seed)
    size_sets = _size_sets(symbols_of(specs), batch_sizes)
    result = VerifyResult(True, 0.0, 0.0, 0, size_sets, rtol, atol)
    for sizes in size_sets:
        for _ in range(max(1, n)):
            xs = random_inputs(specs, sizes, rng, input_generator)
            expected = [np.asarray(y) for y in jax.tree_util.tree_leaves(jitted(bound.values, *xs))]
            out_nchw = layout_positions(outputs_as_nchw, [y.ndim for y in expected], out_names,
                                        "output")
            expected = [y.transpose(channels_first_perm(y.ndim)) if k in out_nchw else y
                        for k, y in enumerate(expected)]
            onnx_xs = [x.transpose(channels_first_perm(x.ndim)) if k in in_nchw else x
                       for k, x in enumerate(xs)]
            actual = sess.run(None, dict(zip(feeds, onnx_xs)))
            result.runs += 1
            where = ", ".join(f"{k}={v}" for k, v in sizes.items())
            where = f" ({where})" if where else ""
            if len(actual) != len(expected):
                result.ok = False
                result.failures.append(f"{len(actual)} ONNX outputs, {len(expected)} JAX outputs{where}")
                continue
            for k, (a, e) in enumerate(zip(actual, expected)):
                ok, mad, mrd, why = compare(a, e, rtol, atol)
                if check_dtype and ok and np.asarray(a).dtype != e.dtype:
                    ok, why = False, f"dtype {np.asarray(a).dtype} != expected {e.dtype}"
                result.max_abs_diff = max(result.max_abs_diff, mad)
                result.max_rel_diff = max(result.max_rel_diff, mrd)
                if not ok:
                    result.ok = False
                    result.failures.append(f"output {k}{where}: {why}")
    return result


def allclose(fn_or_module: Callable[..., Any], model_or_path: ModelOrPath, inputs: Sequence[Any],
             **kw: Any) -> bool:
    """``verify(...).ok``: True when the model matches JAX on random inputs."""
    return verify(fn_or_module, model_or_path, inputs, **kw).ok
