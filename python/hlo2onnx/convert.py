"""From a JAX function or a Flax NNX module to an ONNX model.

The Python side does three things and leaves the rest to the C core:

1. *Bind*: turn what the user gave (a function, a function plus a ``params``
   pytree, an ``nnx.Module``) into ``apply(param_leaves, *inputs)`` and the
   list of concrete parameter arrays, each with a name from its pytree path
   ("layers.0.kernel").  See :func:`register_adapter` for adding kinds.
2. *Lower*: ``jax.jit(apply).lower(abstract_params, *abstract_inputs)``.
   Parameters are lowered as *arguments* (only their shapes and dtypes are
   known at this point), so no weight is ever printed into the MLIR text.  We
   use ``jit(...).lower`` and not ``jax.export``: ``lower`` keeps CHLO ops
   such as ``chlo.erfc`` (exact GELU), which the core maps back to single ONNX
   ops, where ``jax.export`` expands them into polynomials.
3. *Convert*: hand the text, the parameter buffers bound to their argument
   indices, names and symbolic dimension names to ``_core.convert``, which
   streams the weights from the arrays' own memory into the ONNX file.

Symbolic dimensions ("B") are JAX shape-polymorphism symbols, all created in
one scope so that "B" in two inputs is the same dimension.  ``lower`` then
prepends one ``tensor<i32> {jax.global_constant = "B"}`` argument per symbol
to the entry function; the core computes them from the input dimensions we
name, so they never become graph inputs.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["to_onnx", "lower_to_text", "Lowered", "InputSpec", "register_adapter"]

DEFAULT_OPSET = 20  # H2O_DEFAULT_OPSET of hlo2onnx.h (also _core.DEFAULT_OPSET)


# ---------------------------------------------------------------------------
# Inputs: shape tuples with symbolic dims, ShapeDtypeStructs, example arrays.


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One input of the converted function.

    ``dims`` has an int per static axis and a str (a symbol such as "B", or
    an expression such as "2*B") per symbolic axis; ``aval`` is the
    ``jax.ShapeDtypeStruct`` used for lowering.
    """

    dims: tuple
    dtype: np.dtype
    aval: Any

    @property
    def symbolic(self) -> bool:
        return any(isinstance(d, str) for d in self.dims)

    def concrete_shape(self, sizes: dict[str, int]) -> tuple[int, ...]:
        """The shape with every symbol replaced by its size in ``sizes``."""
        return tuple(d if isinstance(d, int) else _eval_dim(d, sizes) for d in self.dims)


# JAX prints sizes with floordiv(a, b), mod(a, b), max, min and B^2 (a power)
_DIM_EXPR = re.compile(r"^[\w\s+\-*/%(),^]+$")
_SYMBOL = re.compile(r"[A-Za-z_]\w*")


def _eval_dim(expr: str, sizes: dict[str, int]) -> int:
    """Evaluates a dimension expression such as "2*B", "B + T", "B^2" or
    "floordiv(B + 1, 2)", as JAX prints them."""
    expr = expr.strip()
    if expr in sizes:
        return int(sizes[expr])
    if not _DIM_EXPR.match(expr):
        raise ValueError(f"cannot evaluate the dimension expression {expr!r}")
    missing = set(_SYMBOL.findall(expr)) - set(sizes) - {"floordiv", "mod", "max", "min"}
    if missing:
        raise ValueError(f"no size given for {', '.join(sorted(missing))} in {expr!r}")
    env = dict(sizes, floordiv=lambda a, b: a // b, mod=lambda a, b: a % b, max=max, min=min)
    return int(eval(expr.replace("^", "**"), {"__builtins__": {}}, env))  # noqa: S307 - checked above


def symbols_of(specs: Sequence[InputSpec]) -> list[str]:
    """The symbol names used by ``specs``, in order of first appearance."""
    seen: dict[str, None] = {}
    for spec in specs:
        for d in spec.dims:
            if isinstance(d, str):
                for s in _SYMBOL.findall(d):
                    if s not in ("floordiv", "mod", "max", "min"):
                        seen.setdefault(s, None)
    return list(seen)


def _is_shape(x) -> bool:
    return isinstance(x, (tuple, list)) and all(
        isinstance(d, (int, np.integer, str)) and not isinstance(d, bool) for d in x)


def normalize_inputs(inputs, *, dtype=None, input_dtypes=None,
                     shape_constraints: Sequence[str] = ()) -> list[InputSpec]:
    """Turns the user's ``inputs`` list into :class:`InputSpec` objects.

    Each item is a shape tuple (ints, and strs for symbolic dims; dtype
    ``input_dtypes[i]``, else ``dtype``, else float32), a
    ``jax.ShapeDtypeStruct``, or an example array whose shape and dtype are
    used.  All symbols share one ``jax.export.SymbolicScope``.
    """
    import jax
    import jax.export  # JAX < 0.8 does not import it with jax

    if not isinstance(inputs, (list, tuple)) or (inputs and _is_shape(inputs)):
        raise TypeError(
            "inputs must be a list with one entry per input (a shape tuple such as "
            f"(5, 30) or ('B', 30), a jax.ShapeDtypeStruct, or an example array); got {inputs!r}")
    if input_dtypes is not None and len(input_dtypes) != len(inputs):
        raise ValueError(f"input_dtypes has {len(input_dtypes)} entries for {len(inputs)} inputs")

    # One scope for every symbol: reuse the scope of a ShapeDtypeStruct the
    # user built with symbolic dims, or make one.
    scope = None
    for x in inputs:
        if isinstance(x, jax.ShapeDtypeStruct):
            for d in x.shape:
                if not isinstance(d, (int, np.integer)) and getattr(d, "scope", None) is not None:
                    scope = d.scope
    if scope is None:
        scope = jax.export.SymbolicScope(list(shape_constraints))
    elif shape_constraints:
        raise ValueError("shape_constraints cannot be combined with ShapeDtypeStructs that "
                         "already carry symbolic dims (put the constraints in their scope)")

    specs = []
    for i, x in enumerate(inputs):
        want = input_dtypes[i] if input_dtypes is not None else None
        if isinstance(x, jax.ShapeDtypeStruct):
            dims = tuple(int(d) if isinstance(d, (int, np.integer)) else str(d) for d in x.shape)
            dt = np.dtype(want) if want is not None else np.dtype(x.dtype)
            aval = x if want is None else jax.ShapeDtypeStruct(x.shape, dt)
        elif _is_shape(x):
            dims = tuple(d.strip() if isinstance(d, str) else int(d) for d in x)
            for d in dims:
                if isinstance(d, int) and d < 0:
                    raise ValueError(f"input {i}: negative dimension in {x!r}")
                if isinstance(d, str) and not d:
                    raise ValueError(f"input {i}: empty dimension name in {x!r}")
            dt = np.dtype(want or dtype or np.float32)
            if any(isinstance(d, str) for d in dims):
                shape = jax.export.symbolic_shape(
                    ", ".join(str(d) for d in dims) if dims else "", scope=scope)
            else:
                shape = dims
            aval = jax.ShapeDtypeStruct(shape, dt)
        elif hasattr(x, "shape") and hasattr(x, "dtype"):
            dims = tuple(int(d) for d in x.shape)
            dt = np.dtype(want or x.dtype)
            aval = jax.ShapeDtypeStruct(dims, dt)
        else:
            raise TypeError(
                f"input {i}: expected a shape tuple, a jax.ShapeDtypeStruct or an array, "
                f"got {type(x).__name__}")
        canon = np.dtype(jax.dtypes.canonicalize_dtype(dt))
        if canon != dt:
            aval = jax.ShapeDtypeStruct(aval.shape, canon)
            dt = canon
        specs.append(InputSpec(dims, dt, aval))
    return specs


# ---------------------------------------------------------------------------
# Binding: what the user gave -> apply(param_leaves, *inputs) + named arrays.


@dataclasses.dataclass
class Bound:
    """A function of (param_leaves, *inputs) and its concrete parameters."""

    apply: Callable
    names: list[str]
    values: list[Any]  # concrete arrays (jax or numpy), one per param leaf
    kind: str = "function"
    label: str = "f"  # for messages and the default graph name


_ADAPTERS: list[Callable[[Any, Any], Bound | None]] = []


def register_adapter(adapter: Callable[[Any, Any], Bound | None]) -> Callable:
    """Registers ``adapter(obj, params) -> Bound | None`` for a kind of model.

    Adapters are tried newest first; the first that returns a :class:`Bound`
    wins.  This is how Flax NNX modules are handled, and the place for
    equinox modules or other frameworks.  Usable as a decorator.
    """
    _ADAPTERS.insert(0, adapter)
    return adapter


def _key_name(k) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k).strip(".[]'\"")


def path_name(path) -> str:
    """("layers", 0, "kernel") or a jax key path -> "layers.0.kernel"."""
    return ".".join(_key_name(k) if not isinstance(k, (str, int)) else str(k) for k in path)


def _unique(names: list[str], taken: set[str]) -> list[str]:
    out = []
    for n in names:
        n = n or "param"
        base, i = n, 1
        while n in taken:
            n = f"{base}_{i}"
            i += 1
        taken.add(n)
        out.append(n)
    return out


def _is_key_array(x) -> bool:
    import jax

    dt = getattr(x, "dtype", None)
    return dt is not None and jax.dtypes.issubdtype(dt, jax.dtypes.prng_key)


def _bind_pytree(fn: Callable, params, label: str) -> Bound:
    """fn(params, *inputs) with the leaves of ``params`` as parameters."""
    import jax

    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    names = [path_name(p) for p, _ in flat]
    leaves = [v for _, v in flat]
    impls = {i: jax.random.key_impl(v) for i, v in enumerate(leaves) if _is_key_array(v)}
    values = [jax.random.key_data(v) if i in impls else v for i, v in enumerate(leaves)]

    def apply(param_leaves, *inputs):
        vals = [jax.random.wrap_key_data(v, impl=impls[i]) if i in impls else v
                for i, v in enumerate(param_leaves)]
        return fn(jax.tree_util.tree_unflatten(treedef, vals), *inputs)

    return Bound(apply, names, values, "params", label)


def _bind_nnx(obj, params) -> Bound | None:
    nnx = sys.modules.get("flax.nnx")
    if nnx is None or not isinstance(obj, nnx.Module):
        return None
    if params is not None:
        raise TypeError("params= is for plain functions; an nnx.Module carries its own state")
    import jax

    # Inference mode on a copy: merge(split(m)) is a new module object tree
    # (sharing the arrays), so .eval() does not touch the user's module.
    graphdef, state = nnx.split(obj)
    model = nnx.merge(graphdef, state)
    model.eval()
    graphdef, state = nnx.split(model)

    # The variables with their paths, then each variable's own leaves (a
    # Variable is a pytree node whose leaf is its value); the concatenation is
    # exactly the order of tree_flatten(state).
    variables = nnx.to_flat_state(state) if hasattr(nnx, "to_flat_state") else state.flat_state()
    names, leaves, is_rng = [], [], []
    for path, var in variables:
        sub = jax.tree_util.tree_flatten_with_path(var)[0]
        for subpath, leaf in sub:
            extra = [k for k in (_key_name(s) for s in subpath) if k not in ("value", "raw_value")]
            names.append(".".join([path_name(path)] + extra))
            leaves.append(leaf)
            is_rng.append(isinstance(var, nnx.RngState))
    all_leaves, treedef = jax.tree_util.tree_flatten(state)
    if len(all_leaves) != len(leaves):
        raise RuntimeError("hlo2onnx: unexpected layout of the nnx state "
                           f"({len(all_leaves)} leaves, {len(leaves)} from its variables)")
    leaves = all_leaves

    # RNG state (dropout keys and counters) is not a weight: it stays a
    # closed-over constant, which JAX drops when unused (always, in eval
    # mode).  Every other leaf is a parameter; a typed PRNG key among them is
    # passed as its uint32 key data.
    arg_pos = [i for i, r in enumerate(is_rng) if not r]
    impls = {i: jax.random.key_impl(leaves[i]) for i in arg_pos if _is_key_array(leaves[i])}
    values = [jax.random.key_data(leaves[i]) if i in impls else leaves[i] for i in arg_pos]

    def apply(param_leaves, *inputs):
        full = list(leaves)
        for i, v in zip(arg_pos, param_leaves):
            full[i] = jax.random.wrap_key_data(v, impl=impls[i]) if i in impls else v
        m = nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, full))
        return m(*inputs)

    return Bound(apply, [names[i] for i in arg_pos], values, "nnx", type(obj).__name__)


register_adapter(_bind_nnx)


def _bind_equinox(obj, params) -> Bound | None:
    """An ``equinox.Module``: its array leaves are the parameters (named by
    their paths, "layers.0.weight"), the rest of the module is static.  Like
    NNX modules it is converted in inference mode
    (``eqx.nn.inference_mode``: Dropout off), on a copy.

    Only the module's tree is copied: its arrays are passed as they are and
    :func:`param_buffer` views their memory (tests/python/test_big_models.py
    checks the pointers and the memory to_onnx adds).  A module that was
    just built may still be computing its arrays (JAX dispatches
    asynchronously; ``eqx.nn.Linear`` draws its weights with temporaries
    about twice their size): the first read of the arrays waits for that
    work, so its peak falls inside ``to_onnx`` unless the caller waits first
    (``jax.block_until_ready``).  That, not a copy, was the "101 % added"
    of issue 12."""
    eqx = sys.modules.get("equinox")
    if eqx is None or not isinstance(obj, eqx.Module):
        return None
    if params is not None:
        raise TypeError("params= is for plain functions; an equinox Module carries its own arrays")
    arrays, static = eqx.partition(eqx.nn.inference_mode(obj), eqx.is_array)
    return _bind_pytree(lambda p, *inputs: eqx.combine(p, static)(*inputs), arrays,
                        type(obj).__name__)


def _bind_linen(obj, params) -> Bound | None:
    """A Flax Linen module with its variables, given as ``(module,
    variables)`` or as ``module, params=variables``: ``module.apply`` with
    the variables' leaves as parameters ("params.Dense_0.kernel")."""
    linen = sys.modules.get("flax.linen")
    if linen is None:
        return None
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], linen.Module):
        if params is not None:
            raise TypeError("give the variables either in the (module, variables) pair or "
                            "as params=, not both")
        obj, params = obj
    elif not isinstance(obj, linen.Module):
        return None
    if params is None:
        raise TypeError("a Flax Linen module needs its variables: to_onnx((module, variables), "
                        "inputs) or to_onnx(module, inputs, params=variables)")
    return _bind_pytree(lambda v, *inputs: obj.apply(v, *inputs), params, type(obj).__name__)


register_adapter(_bind_equinox)
register_adapter(_bind_linen)


def bind(fn_or_module, params=None) -> Bound:
    """The :class:`Bound` form of a function, ``(fn, params)``, or a module."""
    b = None
    for adapter in _ADAPTERS:
        b = adapter(fn_or_module, params)
        if b is not None:
            break
    else:
        if not callable(fn_or_module):
            raise TypeError("expected a function or a Flax NNX module, got "
                            f"{type(fn_or_module).__name__}")
        label = getattr(fn_or_module, "__name__", type(fn_or_module).__name__)
        if params is not None:
            b = _bind_pytree(fn_or_module, params, label)
        else:
            f = fn_or_module
            b = Bound(lambda _params, *inputs: f(*inputs), [], [], "function", label)
    # JAX names the module after the function (@jit_<name>): use the user's.
    name = re.sub(r"\W", "_", b.label or "f") or "f"
    try:
        b.apply.__name__ = b.apply.__qualname__ = name
    except (AttributeError, TypeError):
        pass
    return b


def param_buffer(value) -> np.ndarray:
    """A flat uint8 view of a parameter's bytes, without copying when possible.

    A JAX array on the CPU gives a NumPy view of its own memory
    (``np.asarray``); reshaping and viewing a C-contiguous little-endian
    array as bytes are views too.  The byte view also lets dtypes that NumPy
    cannot export through the buffer protocol (bfloat16, float8) pass.
    Copies happen only when they must: a non-contiguous or big-endian array,
    an array on an accelerator, or a dtype JAX would canonicalize (float64
    with x64 disabled).
    """
    import jax

    a = np.asarray(value)
    canon = np.dtype(jax.dtypes.canonicalize_dtype(a.dtype))
    if canon != a.dtype:
        a = a.astype(canon)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    return a.reshape(-1).view(np.uint8)


# ---------------------------------------------------------------------------
# The entry function's signature, read from the text.


def _split_top(s: str) -> list[str]:
    """Splits an argument list at commas outside (), [], {}, <> and quotes."""
    parts, depth, start, i, n = [], 0, 0, 0, len(s)
    while i < n:
        c = s[i]
        if c == '"':
            i += 1
            while i < n and s[i] != '"':
                i += 2 if s[i] == "\\" else 1
        elif c in "([{<":
            depth += 1
        elif c in ")]}>":
            if not (c == ">" and i > 0 and s[i - 1] == "-"):  # "->" is no bracket
                depth -= 1
        elif c == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
        i += 1
    if s[start:].strip():
        parts.append(s[start:])
    return parts


def entry_signature(text: str, name: str = "main") -> list[dict]:
    """The arguments of ``func.func public @main``: one dict per argument with
    its ``type`` text and ``global_constant`` (the symbol name, or None)."""
    m = re.search(r"func\.func\s+public\s+@" + re.escape(name) + r"\s*\(", text)
    if not m:
        raise ValueError(f"no public function @{name} in the lowered module")
    i, depth = m.end(), 1
    start = i
    while i < len(text) and depth:
        c = text[i]
        if c == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        i += 1
    args = []
    for part in _split_top(text[start:i - 1]):
        part = part.strip()
        am = re.match(r"%[\w#]+\s*:\s*(tensor<[^>]*>|[^\s{]+)", part)
        gm = re.search(r'jax\.global_constant\s*=\s*"([^"]*)"', part)
        args.append({"type": am.group(1) if am else part,
                     "global_constant": gm.group(1) if gm else None})
    return args


# ---------------------------------------------------------------------------
# NCHW at the graph boundary (inputs_as_nchw= / outputs_as_nchw=).
#
# Flax's Conv and pools are NHWC, ONNX's are NCHW; the core converts each
# NHWC convolution into Transpose -> Conv -> Transpose.  With these options
# the traced function itself starts with NCHW -> NHWC on the chosen inputs
# and ends with NHWC -> NCHW on the chosen outputs, so the model file takes
# and returns NCHW tensors, and the core's transpose pass cancels the
# boundary Transposes against the ones around the first and last Conv.


def channels_last_perm(rank: int) -> tuple[int, ...]:
    """NCHW -> NHWC for any rank >= 3 (NCW -> NWC, NCDHW -> NDHWC)."""
    return (0, *range(2, rank), 1)


def channels_first_perm(rank: int) -> tuple[int, ...]:
    """NHWC -> NCHW for any rank >= 3."""
    return (0, rank - 1, *range(1, rank - 1))


def layout_positions(option, ranks: Sequence[int], names: Sequence[str],
                     what: str) -> list[int]:
    """The positions that ``inputs_as_nchw=`` / ``outputs_as_nchw=`` select.

    ``option`` is None/False (none), True (every one of rank >= 3), or an
    index, a name, or a list of them; a selected tensor must have rank >= 3.
    """
    if option is None or option is False:
        return []
    if option is True:
        return [i for i, r in enumerate(ranks) if r >= 3]
    items = [option] if isinstance(option, (int, str)) else list(option)
    out = []
    for item in items:
        if isinstance(item, bool):
            raise TypeError(f"{what}s_as_nchw: expected True, indices or names, got {option!r}")
        if isinstance(item, str):
            if item not in names:
                raise ValueError(f"{what}s_as_nchw: no {what} named {item!r} "
                                 f"(the {what}s are {', '.join(names)})")
            i = list(names).index(item)
        else:
            i = int(item)
            if not -len(ranks) <= i < len(ranks):
                raise ValueError(f"{what}s_as_nchw: {what} {i} does not exist "
                                 f"(there are {len(ranks)})")
            i %= len(ranks)
        if ranks[i] < 3:
            raise ValueError(f"{what}s_as_nchw: {what} {i} has rank {ranks[i]}; "
                             "channels-first needs rank >= 3")
        out.append(i)
    return sorted(set(out))


def _channels_first_spec(spec: InputSpec) -> InputSpec:
    import jax

    perm = channels_first_perm(len(spec.dims))
    shape = tuple(spec.aval.shape[p] for p in perm)
    return InputSpec(tuple(spec.dims[p] for p in perm), spec.dtype,
                     jax.ShapeDtypeStruct(shape, spec.aval.dtype))


def _nchw_boundary(apply: Callable, in_pos: Sequence[int], outputs_as_nchw,
                   output_names: Sequence[str] | None) -> Callable:
    """``apply`` with NCHW -> NHWC on the inputs at ``in_pos`` and NHWC ->
    NCHW on the outputs ``outputs_as_nchw`` selects (decided when traced,
    from the outputs' ranks)."""
    import jax
    import jax.numpy as jnp

    def wrapped(params, *inputs):
        inputs = [jnp.transpose(x, channels_last_perm(x.ndim)) if i in in_pos else x
                  for i, x in enumerate(inputs)]
        leaves, tree = jax.tree_util.tree_flatten(apply(params, *inputs))
        names = list(output_names) if output_names is not None else \
            [f"output_{i}" for i in range(len(leaves))]
        pos = layout_positions(outputs_as_nchw, [jnp.ndim(y) for y in leaves], names, "output")
        leaves = [jnp.transpose(y, channels_first_perm(y.ndim)) if i in pos else y
                  for i, y in enumerate(leaves)]
        return jax.tree_util.tree_unflatten(tree, leaves)

    wrapped.__name__ = wrapped.__qualname__ = getattr(apply, "__name__", "f")
    return wrapped


# ---------------------------------------------------------------------------
# Lowering.


@dataclasses.dataclass
class Lowered:
    """Everything ``_core.convert`` receives, before it is called.

    ``text`` is the MLIR module (weights are arguments, not literals);
    ``params`` are ``(arg_index, buffer, name)`` triples whose buffers are
    views of the parameters' memory; ``options`` is the h2o_options dict.
    """

    text: str
    params: list[tuple[int, np.ndarray, str]]
    options: dict
    input_specs: list[InputSpec]
    input_names: list[str]
    output_names: list[str]
    n_dim_args: int
    bound: Bound
    out_info: Any = None

    def convert(self, path: str | os.PathLike | None = None):
        """Runs the C core; returns an ``onnx.ModelProto``."""
        import onnx

        from . import _core

        if path is None:
            data = _core.convert(self.text, self.params, None, self.options)
            return onnx.load_from_string(data)
        path = os.fspath(path)
        _core.convert(self.text, self.params, path, self.options)
        return onnx.load(path, load_external_data=False)


def lower_to_text(fn_or_module, inputs, *, params=None, dtype=None, input_dtypes=None,
                  input_names: Sequence[str] | None = None,
                  output_names: Sequence[str] | None = None,
                  shape_constraints: Sequence[str] = (), debug_info: bool = True,
                  opset: int | None = None, shape_info: bool = False, optimize: bool = True,
                  external_threshold: int | None = None, external_data: str | None = None,
                  graph_name: str | None = None, progress: bool | None = None,
                  dump_after: str | None = None, save_mlir: str | os.PathLike | None = None,
                  source_name: str | None = None, inputs_as_nchw=None,
                  outputs_as_nchw=None, local_functions: bool | int = False) -> Lowered:
    """Lowers like :func:`to_onnx` and returns what would be handed to the
    C core, without converting.  Useful to look at the MLIR text."""
    import jax

    specs = normalize_inputs(inputs, dtype=dtype, input_dtypes=input_dtypes,
                             shape_constraints=shape_constraints)
    bound = bind(fn_or_module, params)
    buffers = [param_buffer(v) for v in bound.values]
    abstract_params = [jax.ShapeDtypeStruct(np.shape(v), _leaf_dtype(v)) for v in bound.values]

    apply = bound.apply
    if inputs_as_nchw not in (None, False) or outputs_as_nchw not in (None, False):
        names = list(input_names) if input_names is not None else \
            [f"input_{i}" for i in range(len(specs))]
        in_pos = layout_positions(inputs_as_nchw, [len(s.dims) for s in specs], names, "input")
        # From here on the specs describe the graph inputs: channels first.
        specs = [_channels_first_spec(s) if i in in_pos else s for i, s in enumerate(specs)]
        apply = _nchw_boundary(apply, in_pos, outputs_as_nchw, output_names)

    # keep_unused: every input stays an argument (and a graph input) even when
    # the function ignores it, so argument indices follow the flattening order.
    lowered = jax.jit(apply, keep_unused=True).lower(abstract_params, *[s.aval for s in specs])
    text = lowered.as_text(debug_info=debug_info)

    sig = entry_signature(text)
    n_dim = 0
    while n_dim < len(sig) and sig[n_dim]["global_constant"] is not None:
        n_dim += 1
    if any(a["global_constant"] is not None for a in sig[n_dim:]) or \
            len(sig) != n_dim + len(buffers) + len(specs):
        raise RuntimeError(
            f"hlo2onnx: the lowered @main has {len(sig)} arguments, expected {n_dim} dimension "
            f"variables + {len(buffers)} parameters + {len(specs)} inputs; "
            "(ordered effects or tokens are not supported)")

    n_in = len(specs)
    in_names = list(input_names) if input_names is not None else [f"input_{i}" for i in range(n_in)]
    if len(in_names) != n_in:
        raise ValueError(f"input_names has {len(in_names)} names for {n_in} inputs")
    out_avals = jax.tree_util.tree_leaves(lowered.out_info)
    n_out = len(out_avals)
    out_names = list(output_names) if output_names is not None else [f"output_{i}" for i in range(n_out)]
    if len(out_names) != n_out:
        raise ValueError(f"output_names has {len(out_names)} names for {n_out} outputs")
    param_names = _unique(bound.names, set(in_names) | set(out_names))

    first_param = n_dim
    first_input = n_dim + len(buffers)
    params_arg = [(first_param + j, buf, name) for j, (buf, name) in
                  enumerate(zip(buffers, param_names))]
    # dim_params as JAX prints the symbolic dims ("B+1" -> "B + 1"): the
    # spelling of the output dims below, so one size has one name.
    input_dims = [(first_input + k, axis, str(s.aval.shape[axis])) for k, s in enumerate(specs)
                  for axis, d in enumerate(s.dims) if isinstance(d, str)]
    output_dims = [(r, axis, str(d)) for r, aval in enumerate(out_avals)
                   for axis, d in enumerate(aval.shape) if not isinstance(d, (int, np.integer))]

    if save_mlir is not None:
        with open(save_mlir, "w", encoding="utf-8") as f:
            f.write(text)
        source_name = source_name or os.fspath(save_mlir)
    mod = re.search(r"^module\s+@([\w.$-]+)", text, re.M)
    options = {
        "opset": opset,  # None: the core's default (H2O_DEFAULT_OPSET)
        "shape_info": bool(shape_info),
        "optimize": bool(optimize),
        "external_threshold": None if external_threshold is None else int(external_threshold),
        "external_data": external_data,
        "source_name": source_name or f"<{mod.group(1) if mod else 'module'}>",
        "graph_name": graph_name or bound.label,
        "input_names": in_names,
        "output_names": out_names,
        "input_dims": input_dims,
        "output_dims": output_dims,
        # None: on when stderr is a terminal (the core also checks that fd 2
        # is one, and shows nothing for models under 64 MB of tensors).
        "progress": _stderr_is_tty() if progress is None else bool(progress),
        "dump_after": dump_after,
        "local_functions": _local_functions(local_functions),
    }
    return Lowered(text, params_arg, options, specs, in_names, out_names, n_dim, bound,
                   lowered.out_info)


def _local_functions(value) -> int:
    """The core's call-site threshold: False/None = 0 (inline every call),
    True = 2 (functions called from two places or more), an int as given."""
    if value is None or value is False:
        return 0
    if value is True:
        return 2
    if isinstance(value, (int, np.integer)) and value >= 0:
        return int(value)
    raise ValueError(f"local_functions must be a bool or an int >= 0, not {value!r}")


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def _leaf_dtype(v):
    import jax

    return jax.dtypes.canonicalize_dtype(np.result_type(v) if not hasattr(v, "dtype") else v.dtype)


def to_onnx(fn_or_module, inputs, path: str | os.PathLike | None = None, *,
            opset: int | None = None, input_names: Sequence[str] | None = None,
            output_names: Sequence[str] | None = None, shape_info: bool = False,
            external_threshold: int | None = None, params=None, **kw):
    """Converts a JAX function or a Flax NNX module into an ONNX model.

    Args:
        fn_or_module: a function of the inputs; or, with ``params``, a function
            ``fn(params, *inputs)``; or an ``nnx.Module`` (converted in
            inference mode: Dropout off, BatchNorm on its running averages,
            without changing the module you pass); or an ``equinox.Module``
            (its arrays become initializers; inference mode too); or a Flax
            Linen module with its variables, ``(module, variables)`` (or the
            module with ``params=variables``).
        inputs: one entry per input: a shape tuple, where a str is a symbolic
            dimension (``("B", 30)``; the same name in several inputs is the
            same dimension) and the dtype is ``dtype=``/``input_dtypes=`` or
            float32; a ``jax.ShapeDtypeStruct``; or an example array.
        path: where to write the model; tensors of at least
            ``external_threshold`` bytes go to ``<path>.data`` beside it (or
            ``external_data=``).  Without ``path`` the model is built in
            memory (limited to 2 GB by protobuf).
        opset: the ai.onnx opset (default 20).
        input_names, output_names: graph input/output names (default
            ``input_0``..., ``output_0``...; outputs in pytree-flattening order).
        shape_info: write shapes of intermediate values (value_info).
        external_threshold: bytes; None = the core's default (1 MiB); 0 =
            keep everything inside the model unless it would pass 2 GB.
        params: a pytree of arrays passed as the first argument of
            ``fn_or_module``; its leaves become initializers named by their
            paths (e.g. for a Flax Linen model: ``to_onnx(model.apply,
            inputs, params=variables)``).
        inputs_as_nchw, outputs_as_nchw: graph inputs / outputs that are
            channels-first (NCHW) while the function's are channels-last
            (NHWC, as Flax's Conv): True for all of rank >= 3, or indices or
            names.  ``inputs`` still gives the function's (NHWC) shapes; the
            graph input gets the NCHW shape, and the boundary Transposes
            cancel against the ones the core puts around Conv and pools.
        **kw: ``dtype``, ``input_dtypes``, ``optimize`` (fusion passes, default
            True), ``external_data``, ``graph_name``, ``shape_constraints``
            (jax.export constraints such as ``"B >= 2"``), ``debug_info``
            (locations and JAX name scopes in the text, default True),
            ``progress`` (tensor bytes written / total on stderr; default:
            when stderr is a terminal and the tensors pass 64 MB; False
            silences it), ``dump_after``, ``save_mlir`` (write the MLIR text
            there; messages then point into it), ``source_name``,
            ``local_functions`` (True: a function JAX calls from two places
            or more - an inner ``jax.jit`` applied per layer - becomes an
            ONNX local function that each call invokes, instead of being
            inlined at every call; an int N: from N places or more; default
            False).

    Returns:
        The ``onnx.ModelProto``; when written to ``path``, loaded without its
        external data.

    Raises:
        hlo2onnx.ConversionError (``UnsupportedOpError``, ``InputError``, ...)
        with the core's ``file:line:col`` diagnostics.  No file is left at
        ``path`` after an error.
    """
    lowered = lower_to_text(fn_or_module, inputs, opset=opset, input_names=input_names,
                            output_names=output_names, shape_info=shape_info,
                            external_threshold=external_threshold, params=params, **kw)
    return lowered.convert(path)
