"""From a JAX function or a model to an ONNX model: ``to_onnx`` and its options.

The Python side does three things and leaves the rest to the C core:

1. *Bind*: turn what the user gave (a function, a function plus a ``params``
   pytree, a model of Flax NNX or Linen, Equinox, Keras or Haiku) into
   ``apply(param_leaves, *inputs)`` and the list of concrete parameter
   arrays, each with a name from its path in the model ("layers.0.kernel").
   One adapter per library; :func:`register_adapter` adds kinds.  The
   inputs may be pytrees: they are flattened into the graph inputs
   (:class:`InputTree`) and rebuilt before the call.
2. *Lower*: ``jax.jit(apply).lower(abstract_params, *abstract_inputs)``.
   Parameters are lowered as *arguments* (only their shapes and dtypes are
   known at this point), so no weight is ever printed into the MLIR text.  We
   use ``jit(...).lower`` and not ``jax.export``: ``lower`` keeps CHLO ops
   such as ``chlo.erfc`` (exact GELU), which the core maps back to single ONNX
   ops, where ``jax.export`` expands them into polynomials.
3. *Convert*: hand the text, the parameter buffers bound to their argument
   indices, names and symbolic dimension names to ``_core.convert``, which
   streams the weights from the arrays' own memory into the ONNX file.

Around them: the options are keyword parameters, and a misspelt one or
jax2onnx's spelling is refused with what to write (:func:`check_options`);
the errors a first try meets (static arguments, a module closed over, no
outputs) are re-raised with what to do (:func:`_user_hints`); progress goes
to ``sys.stderr`` (:class:`Progress`) and what was done to the ``hlo2onnx``
logger.

Symbolic dimensions ("B") are JAX shape-polymorphism symbols, all created in
one scope so that "B" in two inputs is the same dimension.  ``lower`` then
prepends one ``tensor<i32> {jax.global_constant = "B"}`` argument per symbol
to the entry function; the core computes them from the input dimensions we
name, so they never become graph inputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import logging
import os
import re
import sys
import time
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from ._options import core_options

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
# Pytrees of inputs: a dict of keyword arguments, or an input that is itself a
# dict / tuple / list of arrays.  They are flattened into the graph inputs
# (one per leaf, in JAX's flattening order) and rebuilt before the call.


@dataclasses.dataclass
class InputTree:
    """How the flat graph inputs make up the function's arguments.

    ``treedef`` is the tree of ``(args, kwargs)`` with one leaf per graph
    input; ``paths[i]`` is the path of leaf ``i`` in it: ``(position,
    *keys)`` for a positional argument, ``(name, *keys)`` for a keyword
    argument.  ``flat`` is True when the inputs were a plain list (one
    positional argument per graph input)."""

    treedef: Any
    paths: list[tuple]
    flat: bool

    def call(self, apply: Callable) -> Callable:
        """``apply(params, *args, **kwargs)`` as a function of the flat inputs."""
        if self.flat:
            return apply
        import jax

        treedef = self.treedef

        def flat_apply(params, *leaves):
            args, kwargs = jax.tree_util.tree_unflatten(treedef, list(leaves))
            return apply(params, *args, **kwargs)

        flat_apply.__name__ = flat_apply.__qualname__ = getattr(apply, "__name__", "f")
        return flat_apply

    def default_names(self, positional: Sequence[str] = ()) -> list[str]:
        """The leaves' paths: a keyword argument's name (``image``,
        ``batch.mask``), or the positional argument's name (``positional``,
        by default ``input_<position>``) followed by the keys inside it."""
        names = []
        for path in self.paths:
            head = path[0]
            if not isinstance(head, str):
                head = positional[head] if head < len(positional) else f"input_{head}"
            names.append(".".join([head, *(str(k) for k in path[1:])]))
        return names


_STATIC_HINT = ("a static argument of the function (a size, a flag, a string) is not an input: "
                "bind it with functools.partial, e.g. "
                "to_onnx(functools.partial(f, training=False), inputs)")


def _is_input_leaf(x) -> bool:
    import jax

    return (x is None or isinstance(x, (bool, int, float, complex, str, np.generic)) or
            _is_shape(x) or isinstance(x, jax.ShapeDtypeStruct) or
            (hasattr(x, "shape") and hasattr(x, "dtype")))


def flatten_inputs(inputs) -> tuple[list, InputTree]:
    """The leaves of ``inputs`` (a list with one entry per positional
    argument, or a dict of keyword arguments; an entry may be a pytree of
    shapes or arrays) and the :class:`InputTree` that rebuilds them."""
    import jax

    if isinstance(inputs, dict):
        args, kwargs = (), dict(inputs)
        bad = [k for k in kwargs if not isinstance(k, str)]
        if bad:
            raise TypeError(f"a dict of inputs gives keyword arguments: its keys must be str, "
                            f"got {bad[0]!r}")
    elif isinstance(inputs, (list, tuple)) and not (inputs and _is_shape(inputs)):
        args, kwargs = tuple(inputs), {}
    else:
        what = repr(inputs) if _is_shape(inputs) else type(inputs).__name__
        raise TypeError(
            "inputs must be a list with one entry per input (a shape tuple such as "
            "(5, 30) or ('B', 30), a jax.ShapeDtypeStruct, or an example array), or a dict "
            f"of keyword arguments; got {what}" +
            (f": for one input, write [{inputs!r}]" if _is_shape(inputs) or
             hasattr(inputs, "shape") else ""))
    args = list(args)
    # the two containers are never leaves (an empty list would pass for a
    # scalar's shape, ())
    flat, treedef = jax.tree_util.tree_flatten_with_path(
        (args, kwargs), is_leaf=lambda x: x is not args and x is not kwargs and _is_input_leaf(x))
    paths, leaves = [], []
    for path, leaf in flat:
        keys = tuple(_key_name(k) for k in path)
        # keys[0] is 0 (args) or 1 (kwargs); keys[1] the position or the name
        pos = int(keys[1]) if keys[0] == "0" else keys[1]
        paths.append((pos, *keys[2:]))
        leaves.append(leaf)
    for path, leaf in zip(paths, leaves):
        if leaf is None or (isinstance(leaf, (bool, int, float, complex, str)) and
                            not hasattr(leaf, "shape")):
            where = ".".join(str(k) for k in path) if len(path) > 1 or isinstance(path[0], str) \
                else str(path[0])
            raise TypeError(
                f"input {where} is the Python {type(leaf).__name__} {leaf!r}, not an array. An "
                "input is given as a shape tuple ((5,) for a vector of 5), a "
                "jax.ShapeDtypeStruct or an example array; " + _STATIC_HINT)
    flat_list = not kwargs and all(len(p) == 1 for p in paths) and len(paths) == len(args)
    return leaves, InputTree(treedef, paths, flat_list)


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

    def apply(param_leaves, *inputs, **kwargs):
        vals = [jax.random.wrap_key_data(v, impl=impls[i]) if i in impls else v
                for i, v in enumerate(param_leaves)]
        return fn(jax.tree_util.tree_unflatten(treedef, vals), *inputs, **kwargs)

    return Bound(apply, names, values, "params", label)


def _bind_nnx(obj, params) -> Bound | None:
    """An ``nnx.Module``, or a bound method of one (``model.encode``): the
    module's variables are the parameters, and it runs in inference mode."""
    nnx = sys.modules.get("flax.nnx")
    if nnx is None:
        return None
    method = None
    if inspect.ismethod(obj) and isinstance(obj.__self__, nnx.Module):
        obj, method = obj.__self__, obj.__func__.__name__
    elif not isinstance(obj, nnx.Module):
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

    def apply(param_leaves, *inputs, **kwargs):
        full = list(leaves)
        for i, v in zip(arg_pos, param_leaves):
            full[i] = jax.random.wrap_key_data(v, impl=impls[i]) if i in impls else v
        m = nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, full))
        return (m if method is None else getattr(m, method))(*inputs, **kwargs)

    label = type(obj).__name__ if method in (None, "__call__") else f"{type(obj).__name__}.{method}"
    return Bound(apply, [names[i] for i in arg_pos], values, "nnx", label)


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
    return _bind_pytree(lambda p, *inputs, **kw: eqx.combine(p, static)(*inputs, **kw), arrays,
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
    return _bind_pytree(lambda v, *inputs, **kw: obj.apply(v, *inputs, **kw), params,
                        type(obj).__name__)


def _bind_keras(obj: Any, params) -> Bound | None:
    """A ``keras.Model`` (or layer) on the JAX backend, through
    ``stateless_call(trainable, non_trainable, *inputs, training=False)``:
    every variable is a parameter named by its path (``dense.kernel``;
    Keras's ``/`` becomes ``.``), and the model runs in inference mode
    (Dropout off, BatchNormalization on its moving statistics)."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    layer_type: Any = getattr(keras, "Layer", ())
    if not isinstance(obj, layer_type):
        return None
    if params is not None:
        raise TypeError("params= is for plain functions; a Keras model carries its own variables")
    if keras.backend.backend() != "jax":
        raise TypeError(f"a Keras model converts on the JAX backend, and Keras runs on "
                        f"{keras.backend.backend()!r}: set KERAS_BACKEND=jax before importing "
                        "keras")
    if not obj.built:
        raise TypeError(f"the Keras {type(obj).__name__} is not built: call it once on an "
                        "example input (or model.build(shape)) so that its weights exist")
    trainable, non_trainable = list(obj.trainable_variables), list(obj.non_trainable_variables)
    n_tr = len(trainable)
    variables = trainable + non_trainable
    names = [v.path.replace("/", ".") for v in variables]
    values = [v.value for v in variables]

    def apply(param_leaves, *inputs, **kwargs):
        kwargs.setdefault("training", False)
        out, _ = obj.stateless_call(list(param_leaves[:n_tr]), list(param_leaves[n_tr:]),
                                    *inputs, **kwargs)
        return out

    return Bound(apply, names, values, "keras", obj.name or type(obj).__name__)


def _haiku_function_name(apply) -> str:
    """The name of the user's function inside Haiku's ``apply_fn`` wrappers
    (found in their closures), for the graph name; "haiku" if none is."""
    todo, seen = [apply], set()
    while todo:
        fn = todo.pop()
        if id(fn) in seen or not inspect.isfunction(fn):
            continue
        seen.add(id(fn))
        if not (fn.__module__ or "").startswith("haiku"):
            return fn.__name__
        for v in inspect.getclosurevars(fn).nonlocals.values():
            todo.append(getattr(v, "apply", v))
    return "haiku"


@dataclasses.dataclass
class WithState:
    """``params=`` and ``state=`` together, as the adapters receive them
    when ``state=`` is given (Haiku's ``transform_with_state``)."""

    params: Any
    state: Any


def with_state(params, state):
    """What the adapters get for ``params=`` and ``state=``."""
    return params if state is None else WithState(params, state)


def _bind_haiku(obj, params) -> Bound | None:
    """Haiku's ``hk.transform`` / ``hk.transform_with_state`` result with
    ``params=`` (and ``state=`` for the latter, which arrives here as a
    :class:`WithState`): ``apply`` with the params' leaves named by their
    paths (``mlp/~/linear_0.w``) and the state's as
    ``state.<path>``; the apply RNG is None (a model that draws random
    numbers at inference needs a function of your own), and the new state
    of ``transform_with_state`` is dropped."""
    hk = sys.modules.get("haiku")
    if hk is None or not isinstance(obj, (hk.Transformed, hk.TransformedWithState)):
        return None
    with_state = isinstance(obj, hk.TransformedWithState)
    kind = "hk.transform_with_state" if with_state else "hk.transform"
    if params is None:
        raise TypeError(f"a Haiku {kind} result needs its parameters: "
                        "to_onnx(model, inputs, params=params" +
                        (", state=state)" if with_state else ")"))
    if not with_state and isinstance(params, WithState):
        raise TypeError("state= is for hk.transform_with_state; this is an hk.transform result")
    takes_rng = "rng" in inspect.signature(obj.apply).parameters
    label = _haiku_function_name(obj.apply)
    if not with_state:
        def call(p, *inputs, **kw):
            return obj.apply(p, None, *inputs, **kw) if takes_rng else obj.apply(p, *inputs, **kw)

        return _bind_pytree(call, params, label)
    if not isinstance(params, WithState):
        raise TypeError("a Haiku hk.transform_with_state result needs its params and its state: "
                        "to_onnx(model, inputs, params=params, state=state)")
    params, state = params.params, params.state

    def call_with_state(ps, *inputs, **kw):
        p, st = ps["params"], ps["state"]
        out, _new_state = (obj.apply(p, st, None, *inputs, **kw) if takes_rng
                           else obj.apply(p, st, *inputs, **kw))
        return out

    bound = _bind_pytree(call_with_state, {"params": params, "state": state}, label)
    # "params.linear.w" -> "linear.w"; the state keeps its "state." prefix
    bound.names = [n[len("params."):] if n.startswith("params.") else n for n in bound.names]
    return bound


register_adapter(_bind_equinox)
register_adapter(_bind_linen)
register_adapter(_bind_keras)
register_adapter(_bind_haiku)


def bind(fn_or_module, params=None) -> Bound:
    """The :class:`Bound` form of a function, ``(fn, params)``, or a module."""
    b = None
    for adapter in _ADAPTERS:
        b = adapter(fn_or_module, params)
        if b is not None:
            break
    else:
        if not callable(fn_or_module):
            raise TypeError("expected a function or a model (a Flax NNX or Linen module, an "
                            "Equinox module, a Keras model, a Haiku transform), got "
                            f"{type(fn_or_module).__name__}")
        if isinstance(params, WithState):
            raise TypeError("state= is for Haiku's hk.transform_with_state; give a function "
                            "its whole parameter pytree as params=")
        label = getattr(fn_or_module, "__name__", type(fn_or_module).__name__)
        if params is not None:
            b = _bind_pytree(fn_or_module, params, label)
        else:
            f = fn_or_module
            b = Bound(lambda _params, *inputs, **kw: f(*inputs, **kw), [], [], "function", label)
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
        from .naming import output_names as default_output_names

        result = apply(params, *inputs)
        leaves, tree = jax.tree_util.tree_flatten(result)
        names = list(output_names) if output_names is not None else \
            default_output_names(result)
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
    # the path of each graph input in the (args, kwargs) the function gets:
    # (position, *keys) or (keyword, *keys); see InputTree
    input_paths: list = dataclasses.field(default_factory=list)

    def convert(self, path: str | os.PathLike | None = None):
        """Runs the C core; returns an ``onnx.ModelProto``."""
        import onnx

        from . import _core

        from .errors import ConversionError
        from .naming import point_at_user_lines

        try:
            if path is None:
                return onnx.load_from_string(
                    _core.convert(self.text, self.params, None, self.options))
            path = os.fspath(path)
            _core.convert(self.text, self.params, path, self.options)
        except ConversionError as e:
            point_at_user_lines(e)  # JAX wrote the text: point at the user's lines
            raise
        return onnx.load(path, load_external_data=False)


@dataclasses.dataclass
class Prepared:
    """The inputs flattened and normalized, and the model bound: what both
    :func:`lower_to_text` and :func:`hlo2onnx.verify` start from."""

    specs: list[InputSpec]
    tree: InputTree
    bound: Bound
    leaves: list  # the user's input leaves (shapes, ShapeDtypeStructs or arrays)

    @property
    def apply(self) -> Callable:
        """``apply(param_leaves, *flat_inputs)``."""
        return self.tree.call(self.bound.apply)


def prepare(fn_or_module, inputs, *, params=None, state=None, dtype=None, input_dtypes=None,
            shape_constraints: Sequence[str] = (), warn: bool = False) -> Prepared:
    """Flattens and normalizes ``inputs`` and binds the model.  With
    ``warn``, a dtype JAX computes in another one (float64 as float32 while
    ``jax_enable_x64`` is off) is reported as a :class:`ConversionWarning`."""
    leaves, tree = flatten_inputs(inputs)
    specs = normalize_inputs(leaves, dtype=dtype, input_dtypes=input_dtypes,
                             shape_constraints=shape_constraints)
    bound = bind(fn_or_module, with_state(params, state))
    if warn:
        _warn_narrowed_dtypes(leaves, specs, bound, dtype, input_dtypes)
    return Prepared(specs, tree, bound, leaves)


def _user_stacklevel() -> int:
    """The ``stacklevel`` of warnings.warn that names the first frame
    outside this package: the user's call, however deep we are."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _warn_narrowed_dtypes(leaves, specs, bound: Bound, dtype, input_dtypes) -> None:
    """A ConversionWarning for each input / parameter dtype that JAX
    narrows (float64 -> float32, int64 -> int32 without x64): the model
    computes in the narrower type, which a user rarely expects."""
    from .errors import ConversionWarning

    fix = "jax.config.update('jax_enable_x64', True) before converting keeps it"
    for i, (leaf, spec) in enumerate(zip(leaves, specs)):
        asked = (input_dtypes[i] if input_dtypes is not None else None) or \
            (getattr(leaf, "dtype", None) if not _is_shape(leaf) else None) or dtype
        if asked is not None and np.dtype(asked) != spec.dtype:
            warnings.warn(f"input {i} is {np.dtype(asked)}, which JAX computes as {spec.dtype} "
                          f"(jax_enable_x64 is off): the ONNX input is {spec.dtype}; {fix}",
                          ConversionWarning, stacklevel=_user_stacklevel())
    narrowed = [(n, np.dtype(v.dtype)) for n, v in zip(bound.names, bound.values)
                if hasattr(v, "dtype") and np.dtype(_leaf_dtype(v)) != np.dtype(v.dtype)]
    if narrowed:
        shown = ", ".join(f"{n} ({d})" for n, d in narrowed[:5])
        more = f" and {len(narrowed) - 5} more" if len(narrowed) > 5 else ""
        warnings.warn(f"{len(narrowed)} parameter(s) are computed by JAX in a narrower dtype "
                      f"(jax_enable_x64 is off) and written so: {shown}{more}; {fix}",
                      ConversionWarning, stacklevel=_user_stacklevel())


def lower_to_text(fn_or_module, inputs, *, params=None, state=None, dtype=None,
                  input_dtypes: Sequence | None = None,
                  input_names: Sequence[str] | None = None,
                  output_names: Sequence[str] | None = None,
                  shape_constraints: Sequence[str] = (), debug_info: bool = True,
                  opset: int | None = None, shape_info: bool = True, optimize: bool = True,
                  external_threshold: int | None = None, external_data: str | None = None,
                  graph_name: str | None = None, progress: bool | None = None,
                  dump_after: str | None = None, save_mlir: str | os.PathLike | None = None,
                  source_name: str | None = None, inputs_as_nchw=None,
                  outputs_as_nchw=None, local_functions: bool | int = False,
                  model_version: int | None = None, **unknown) -> Lowered:
    """Lowers like :func:`to_onnx` and returns what would be handed to the
    C core, without converting.  Useful to look at the MLIR text."""
    import jax

    from . import naming

    check_options(unknown, lower_to_text)
    prep = prepare(fn_or_module, inputs, params=params, state=state, dtype=dtype,
                   input_dtypes=input_dtypes, shape_constraints=shape_constraints, warn=True)
    specs, bound = prep.specs, prep.bound
    buffers = [param_buffer(v) for v in bound.values]
    abstract_params = [jax.ShapeDtypeStruct(np.shape(v), _leaf_dtype(v)) for v in bound.values]
    # positional arguments named after the function's parameters (naming.py),
    # the leaves of a pytree argument after their paths in it
    n_positional = 1 + max((p[0] for p in prep.tree.paths if isinstance(p[0], int)), default=-1)
    default_in_names = prep.tree.default_names(
        naming.input_names(fn_or_module, params, n_positional))

    apply = prep.apply
    if inputs_as_nchw not in (None, False) or outputs_as_nchw not in (None, False):
        names = list(input_names) if input_names is not None else default_in_names
        in_pos = layout_positions(inputs_as_nchw, [len(s.dims) for s in specs], names, "input")
        # From here on the specs describe the graph inputs: channels first.
        specs = [_channels_first_spec(s) if i in in_pos else s for i, s in enumerate(specs)]
        apply = _nchw_boundary(apply, in_pos, outputs_as_nchw, output_names)

    # keep_unused: every input stays an argument (and a graph input) even when
    # the function ignores it, so argument indices follow the flattening order.
    with _user_hints(bound, prep.tree, len(specs)), naming.library_frames_hidden():
        # library_frames_hidden: the ops' Python lines are the user's
        lowered = jax.jit(apply, keep_unused=True).lower(abstract_params,
                                                         *[s.aval for s in specs])
    text = lowered.as_text(debug_info=debug_info)
    _check_has_outputs(lowered.out_info, bound)

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
    in_names = list(input_names) if input_names is not None else default_in_names
    if len(in_names) != n_in:
        raise ValueError(f"input_names has {len(in_names)} names for {n_in} inputs")
    out_avals = jax.tree_util.tree_leaves(lowered.out_info)
    n_out = len(out_avals)
    out_names = list(output_names) if output_names is not None else \
        naming.output_names(lowered.out_info, in_names)
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
    options = core_options(
        opset=opset, shape_info=shape_info, optimize=optimize,
        external_threshold=external_threshold, external_data=external_data,
        source_name=source_name or f"<{mod.group(1) if mod else 'module'}>",
        graph_name=graph_name or bound.label, input_names=in_names, output_names=out_names,
        input_dims=input_dims, output_dims=output_dims, progress=_progress(progress),
        dump_after=dump_after, local_functions=_local_functions(local_functions),
        **naming.model_metadata(fn_or_module, specs, model_version=model_version,
                                shape_constraints=shape_constraints))
    return Lowered(text, params_arg, options, specs, in_names, out_names, n_dim, bound,
                   lowered.out_info, list(prep.tree.paths))


# ---------------------------------------------------------------------------
# What a user tries first: misspelt options, jax2onnx's spellings, static
# arguments, modules closed over, functions without outputs.

# jax2onnx's names for things hlo2onnx does otherwise, and what to write instead
_FOREIGN_OPTIONS = {
    "input_params": "hlo2onnx has no input_params: bind the function's non-array arguments "
                    "with functools.partial, e.g. to_onnx(functools.partial(f, "
                    "deterministic=True), inputs); arrays are inputs",
    "model_name": "the graph's name is graph_name=; the file is the third argument (path)",
    "enable_double_precision": "float64 follows JAX: jax.config.update('jax_enable_x64', True) "
                               "before converting",
    "record_primitive_calls_file": "hlo2onnx converts the lowered StableHLO; look at it with "
                                   "save_mlir= or hlo2onnx.lower_to_text",
    "input_shapes": "the shapes are the second argument, inputs",
}


def check_options(unknown: dict, fn: Callable) -> None:
    """Raises a TypeError naming the first of ``unknown`` (keyword
    arguments ``fn`` does not take) with what to write instead: the option
    it most resembles, or, for a jax2onnx spelling, hlo2onnx's way."""
    if not unknown:
        return
    known = [p.name for p in inspect.signature(fn).parameters.values()
             if p.kind == inspect.Parameter.KEYWORD_ONLY]
    name = next(iter(unknown))
    where = f"{fn.__name__}()"
    if name in _FOREIGN_OPTIONS:
        raise TypeError(f"{where}: {name}= is jax2onnx's option; {_FOREIGN_OPTIONS[name]}")
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    raise TypeError(f"{where}: unknown option {name!r}" +
                    (f" (did you mean {close[0]!r}?)" if close else "") +
                    f"; the options are {', '.join(known)}")


def _flax_trace_context_error():
    errors = sys.modules.get("flax.errors")
    return getattr(errors, "TraceContextError", None) if errors else None


@contextlib.contextmanager
def _user_hints(bound: Bound, tree: InputTree, n_inputs: int):
    """Re-raises the errors a first try typically meets while JAX traces
    the function with what to do about them (the original is chained)."""
    import jax

    trace_context = _flax_trace_context_error()
    try:
        yield
    # JAX's tracer errors are TypeErrors too: first
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
            jax.errors.TracerIntegerConversionError) as e:
        raise TypeError(
            f"{bound.label}: an input is used as a Python value (in an if, a range, a shape): "
            "inputs are traced, their values are unknown while converting. If it is a static "
            f"argument, {_STATIC_HINT[_STATIC_HINT.index('bind'):]}. The error was: "
            f"{str(e).splitlines()[0]}") from e
    except TypeError as e:
        msg = str(e)
        missing = re.search(r"missing \d+ required (positional|keyword)", msg)
        if bound.kind in ("function", "params") and missing:
            raise TypeError(
                f"{bound.label}() was called with the {n_inputs} input(s) given and says: {msg}. "
                "Every entry of inputs is one array argument; " + _STATIC_HINT) from e
        raise
    except Exception as e:
        if trace_context is None or not isinstance(e, trace_context):
            raise
        raise TypeError(
            f"{bound.label}: the function changes the state of a Flax NNX module it closes "
            "over (Dropout's RNG, BatchNorm's statistics in training mode), which JAX cannot "
            "trace. Give the module itself, or a bound method of it: to_onnx(model, inputs) "
            "or to_onnx(model.method, inputs) converts in inference mode with its variables "
            "as named initializers (or call model.eval() before converting a function "
            f"over it). Flax said: {str(e).splitlines()[0]}") from e


def _check_has_outputs(out_info, bound: Bound) -> None:
    """A model without outputs passes onnx.checker and then fails in every
    runtime: refuse it here."""
    import jax

    if jax.tree_util.tree_leaves(out_info):
        return
    got = "None" if out_info is None else f"an empty {type(out_info).__name__}"
    raise ValueError(f"{bound.label} returns no array (it returned {got}): an ONNX model needs "
                     "at least one output; return the values you want the model to compute")


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


def _progress(progress: bool | None) -> bool:
    """None: on when stderr is a terminal (the core also checks that fd 2 is
    one, and shows nothing for models under 64 MB of tensors)."""
    return _stderr_is_tty() if progress is None else bool(progress)


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def _leaf_dtype(v):
    import jax

    return jax.dtypes.canonicalize_dtype(np.result_type(v) if not hasattr(v, "dtype") else v.dtype)


# ---------------------------------------------------------------------------
# Progress and logging.

log = logging.getLogger("hlo2onnx")
log.addHandler(logging.NullHandler())  # silent unless the application configures logging

_PROGRESS_MIN_BYTES = 64 << 20  # the core's threshold for the byte count


class Progress:
    """What ``progress=True`` shows on ``sys.stderr`` (so in Jupyter too):
    on a terminal one line that is rewritten in place; elsewhere (a
    notebook, a log file) one line per stage and the tensor bytes at
    quarters of the total."""

    def __init__(self, enabled: bool, stream=None):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _stderr_is_tty() if stream is None else bool(getattr(stream, "isatty",
                                                                         lambda: False)())
        self.quarter = -1
        self.width = 0

    def _show(self, text: str, final: bool = False) -> None:
        if not self.enabled or self.stream is None:
            return
        if self.tty:
            pad = " " * max(0, self.width - len(text))
            self.width = 0 if final else len(text)
            self.stream.write(f"\r{text}{pad}" + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def stage(self, text: str) -> None:
        """A stage begins: a terminal shows it until the next line; elsewhere
        only what :meth:`done` reports is printed, with its time."""
        if self.tty:
            self._show(f"hlo2onnx: {text}")

    def done(self, text: str) -> None:
        self._show(f"hlo2onnx: {text}")

    def tensors(self, done: int, total: int) -> None:
        """The core's callback while it writes tensors."""
        if total < _PROGRESS_MIN_BYTES:
            return
        text = f"hlo2onnx: writing tensors: {done // 1000000}/{total // 1000000} MB"
        if self.tty:
            self._show(text)
            return
        quarter = 4 * done // total if total else 4
        if quarter > self.quarter:
            self.quarter = quarter
            self._show(text)

    def finish(self, text: str) -> None:
        self._show(f"hlo2onnx: {text}", final=True)


def _written_text(path, options: dict, model) -> str:
    """"wrote PATH (SIZE)", with the external data file's size when the
    model has one."""
    import onnx

    path = os.fspath(path)
    data = os.path.join(os.path.dirname(path), options.get("external_data") or
                        os.path.basename(path) + ".data")
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    extra = f" + {_size_text(os.path.getsize(data))} of external data in {os.path.basename(data)}" \
        if external and os.path.isfile(data) else ""
    return f"wrote {path} ({_size_text(os.path.getsize(path))}{extra})"


def _size_text(n: int) -> str:
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


# The ops that only a fusion pass writes (StableHLO has no such op).
_FUSED_OPS = ("Gemm", "LayerNormalization", "RMSNormalization", "Gelu", "Softmax",
              "LogSoftmax", "BatchNormalization", "Relu", "LeakyRelu", "Elu", "Softplus",
              "AveragePool")


def _log_model(model, lowered: Lowered, path, seconds: dict) -> None:
    """INFO lines on what the conversion did; DEBUG adds the op counts."""
    if not log.isEnabledFor(logging.INFO):
        return
    import collections

    ops = collections.Counter(n.op_type for n in model.graph.node)
    fused = {op: ops[op] for op in _FUSED_OPS if ops.get(op)}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    n_bytes = sum(b.nbytes for _, b, _ in lowered.params)
    log.info("lowered %s with JAX in %.2f s: %d chars of StableHLO, %d parameters (%s)",
             lowered.bound.label, seconds["lower"], len(lowered.text), len(lowered.params),
             _size_text(n_bytes))
    where = _written_text(path, lowered.options, model) if path is not None else "built in memory"
    log.info("converted in %.2f s: %d nodes, opset %s, %s", seconds["convert"],
             len(model.graph.node), opset, where)
    if lowered.options.get("optimize"):
        log.info("fused ops in the model: %s",
                 ", ".join(f"{k} {v}" for k, v in fused.items()) or "none")
    else:
        log.info("optimize=False: no fusion passes ran")
    log.debug("ops: %s", ", ".join(f"{k} {v}" for k, v in ops.most_common()))


def to_onnx(fn_or_module, inputs=None, path: str | os.PathLike | None = None, *,
            params=None, state=None,
            opset: int | None = None,
            input_names: Sequence[str] | None = None,
            output_names: Sequence[str] | None = None,
            dtype=None, input_dtypes: Sequence | None = None,
            shape_constraints: Sequence[str] = (),
            shape_info: bool = True,
            optimize: bool = True,
            external_threshold: int | None = None,
            external_data: str | None = None,
            graph_name: str | None = None,
            local_functions: bool | int = False,
            inputs_as_nchw=None, outputs_as_nchw=None,
            debug_info: bool = True,
            save_mlir: str | os.PathLike | None = None,
            source_name: str | None = None,
            dump_after: str | None = None,
            progress: bool | None = None,
            model_version: int | None = None,
            verify: bool | dict = False,
            **unknown):
    """Converts a JAX function or a model into an ONNX model.

    Every option is explained once, in docs/options.md.

    Args:
        fn_or_module: a function of the inputs; with ``params``, a function
            ``fn(params, *inputs)``; or a model: an ``nnx.Module`` or a bound
            method of one, an ``equinox.Module``, a Keras model (JAX
            backend), a Flax Linen module (``(module, variables)`` or with
            ``params=``), a Haiku ``hk.transform`` result (with ``params=``,
            and ``state=`` for ``hk.transform_with_state``).  Models convert
            in inference mode, their weights as initializers named by their
            paths; :func:`register_adapter` adds kinds.  Or a
            ``jax.export.Exported``, its ``serialize()`` bytes, or the path
            (str or PathLike) of a file holding them, without ``inputs``
            (see :mod:`hlo2onnx.exported`).
        inputs: a list with one entry per positional argument, or a dict of
            keyword arguments.  An entry is a shape tuple (a str is a
            symbolic dimension: ``("B", 30)``), a ``jax.ShapeDtypeStruct``,
            an example array, or a pytree (dict, tuple, list) of those.
        path: where to write the model; without it the model is built in
            memory (limited to 2 GB by protobuf).
        params, state, opset, input_names, output_names, dtype,
        input_dtypes, shape_constraints, shape_info, optimize,
        external_threshold, external_data, graph_name, local_functions,
        inputs_as_nchw, outputs_as_nchw, debug_info, save_mlir, source_name,
        dump_after, progress, model_version: see docs/options.md.
        verify: True (or a dict of :func:`hlo2onnx.verify` options such as
            ``{"rtol": 1e-4}``): compare the model with JAX right after
            converting and raise :class:`hlo2onnx.VerificationError`, with
            the report, on a mismatch.

    Returns:
        The ``onnx.ModelProto``; when written to ``path``, loaded without its
        external data.

    Raises:
        hlo2onnx.ConversionError (``UnsupportedOpError``, ``InputError``, ...)
        with the core's ``file:line:col`` diagnostics.  No file is left at
        ``path`` after a conversion error.  TypeError for an unknown option
        or inputs that are not arrays, with what to write instead.
    """
    check_options(unknown, to_onnx)
    from .exported import exported_to_onnx, is_exported_source

    if is_exported_source(fn_or_module):  # an Exported, its bytes or its file: exported.py
        if state is not None or verify is not False:
            raise TypeError("hlo2onnx.to_onnx: state= and verify= do not apply to a "
                            "jax.export.Exported")
        return exported_to_onnx(
            fn_or_module, inputs, path, params=params, opset=opset, input_names=input_names,
            output_names=output_names, dtype=dtype, input_dtypes=input_dtypes,
            shape_constraints=shape_constraints, shape_info=shape_info, optimize=optimize,
            external_threshold=external_threshold, external_data=external_data,
            graph_name=graph_name, local_functions=local_functions,
            inputs_as_nchw=inputs_as_nchw, outputs_as_nchw=outputs_as_nchw,
            debug_info=debug_info, save_mlir=save_mlir, source_name=source_name,
            dump_after=dump_after, progress=progress)
    if inputs is None:
        raise TypeError("hlo2onnx.to_onnx(fn, inputs): inputs is required: one shape, "
                        "jax.ShapeDtypeStruct or example array per argument")
    if isinstance(path, dict):
        raise TypeError("to_onnx(fn, inputs, path): the third argument is the output path, "
                        "and a dict was given. " + _FOREIGN_OPTIONS["input_params"] +
                        " (jax2onnx's input_params)")
    if path is not None and not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a file name (str or os.PathLike), not "
                        f"{type(path).__name__}")
    if not isinstance(verify, (bool, dict)):
        raise TypeError(f"verify must be True, False or a dict of verify() options, "
                        f"not {verify!r}")
    shown = Progress(bool(progress))
    t0 = time.perf_counter()
    shown.stage("lowering with JAX")
    lowered = lower_to_text(
        fn_or_module, inputs, params=params, state=state, opset=opset, input_names=input_names,
        output_names=output_names, dtype=dtype, input_dtypes=input_dtypes,
        shape_constraints=shape_constraints, shape_info=shape_info, optimize=optimize,
        external_threshold=external_threshold, external_data=external_data,
        graph_name=graph_name, local_functions=local_functions, inputs_as_nchw=inputs_as_nchw,
        outputs_as_nchw=outputs_as_nchw, debug_info=debug_info, save_mlir=save_mlir,
        source_name=source_name, dump_after=dump_after, progress=progress,
        model_version=model_version)
    t1 = time.perf_counter()
    shown.done(f"lowered {lowered.bound.label} with JAX ({t1 - t0:.2f} s)")
    shown.stage("converting")
    if progress:
        lowered.options["progress_callback"] = shown.tensors
    model = lowered.convert(path)
    t2 = time.perf_counter()
    seconds = {"lower": t1 - t0, "convert": t2 - t1}
    _log_model(model, lowered, path, seconds)
    where = _written_text(path, lowered.options, model) if path is not None \
        else "built the model in memory"
    n_nodes = len(model.graph.node)
    shown.finish(f"{where}: {n_nodes} node{'s' * (n_nodes != 1)} ({t2 - t0:.2f} s)")
    if verify is not False:
        from .errors import VerificationError
        from .verify import verify as run_verify

        opts = dict(verify) if isinstance(verify, dict) else {}
        report = run_verify(fn_or_module, path if path is not None else model, inputs,
                            params=params, state=state, dtype=dtype, input_dtypes=input_dtypes,
                            shape_constraints=shape_constraints, inputs_as_nchw=inputs_as_nchw,
                            outputs_as_nchw=outputs_as_nchw, **opts)
        log.info("verify: %s", str(report).splitlines()[0])
        if not report:
            raise VerificationError(report, path)
    return model
