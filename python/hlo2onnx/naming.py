"""Names a person can read, and errors at the user's line.

What a user sees of a converted model besides its numbers is decided here,
on the Python side; the C core does the rest (it names every node after the
JAX name scope of its op and writes that scope and the op's Python line into
the node's ``metadata_props``):

- graph inputs are named after the function's parameters (``x``,
  ``tokens``; a leaf of a pytree argument after its path, ``batch.image``),
  outputs after the result pytree's paths (``output_sum`` for
  ``{"sum": ...}``, as the ``hlo2onnx`` command names them from JAX's
  ``jax.result_info``);
- the model's ``doc_string`` says what was converted (the function's or the
  module class's qualified name) and its ``metadata_props`` the versions
  and the symbolic dimensions;
- the Python lines JAX writes into the MLIR locations are the user's own:
  while lowering, the frames of hlo2onnx and of the model libraries
  (Flax, Keras, Haiku, Equinox) are hidden, as JAX hides its own, so an op
  points at the line of the user's code that made it (the layer's call in
  the user's model, or the ``to_onnx`` call for a library model);
- an error the core reports about an op is rewritten to lead with that
  Python line and its code, the lowered MLIR position following as a note:
  the user never saw that text.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import linecache
import os
import re
import sys
import threading
from typing import Sequence

__all__ = ["input_names", "output_names", "leaf_name", "model_metadata",
           "library_frames_hidden", "point_at_user_lines"]


# ---------------------------------------------------------------------------
# Graph inputs and outputs.


def _key_text(k) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k).strip(".[]'\"")


def leaf_name(arg_name: str, path: Sequence = ()) -> str:
    """The name of one leaf of a pytree argument: ``batch.image`` for the
    key path ``(DictKey('image'),)`` of the argument ``batch``."""
    return ".".join([arg_name] + [_key_text(k) for k in path])


def _signature_target(obj, params):
    """The callable whose parameters name the inputs, and how many leading
    parameters are not inputs (a plain function given ``params=`` takes
    them first)."""
    linen = sys.modules.get("flax.linen")
    if isinstance(obj, tuple) and len(obj) == 2:  # (linen module, variables)
        obj = obj[0]
    keras_layer = getattr(sys.modules.get("keras"), "Layer", None)
    if keras_layer is not None and isinstance(obj, keras_layer):
        return obj.call, 0
    if linen is not None and isinstance(obj, linen.Module):
        return obj.__call__, 0
    plain = inspect.isfunction(obj) or inspect.ismethod(obj) or \
        isinstance(obj, functools.partial)
    return obj, 1 if (plain and params is not None) else 0


def input_names(obj, params, n_inputs: int) -> list[str]:
    """``n_inputs`` graph input names from the parameters of ``obj``: its
    positional parameters in order (``x``, ``mask``), ``args_0``, ``args_1``
    for a ``*args``, and ``input_<i>`` where the signature says nothing
    (no signature, fewer parameters than inputs)."""
    fn, skip = _signature_target(obj, params)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    names: list[str] = []
    if sig is not None:
        positional = [p for p in sig.parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
        for p in positional[skip:]:
            if p.kind == p.VAR_POSITIONAL:
                names += [f"{p.name}_{k}" for k in range(n_inputs - len(names))]
                break
            names.append(p.name)
    names = names[:n_inputs]
    names += [f"input_{i}" for i in range(len(names), n_inputs)]
    return _distinct(names)


def _distinct(names: list[str], taken: Sequence[str] = ()) -> list[str]:
    """names made distinct from each other and from taken (``x``, ``x_1``)."""
    from .convert import _unique  # the one renaming rule, shared with the weights

    return _unique(names, set(taken))


def output_name(path: Sequence, n_outputs: int) -> str:
    """``output_sum`` for the result path ``['sum']``, ``output_1_logits``
    for ``[1]['logits']``: "output" and each word of the path, as the C core
    names outputs from ``jax.result_info``; ``output_0`` for a bare array."""
    words = [w for k in path for w in re.findall(r"\w+", _key_text(k))]
    return "_".join(["output"] + words) if words else "output_0"


def output_names(out_info, taken: Sequence[str] = ()) -> list[str]:
    """The graph output names for the result pytree ``out_info`` (the
    ``Lowered.out_info`` of JAX: a pytree of ShapeDtypeStructs), distinct
    from each other and from ``taken`` (the input names)."""
    import jax

    flat = jax.tree_util.tree_flatten_with_path(out_info)[0]
    names = [output_name(path, len(flat)) for path, _ in flat]
    return _distinct(names, taken)


# ---------------------------------------------------------------------------
# Model metadata.


def _qualified_name(obj) -> str:
    if isinstance(obj, tuple) and len(obj) == 2:
        obj = obj[0]
    f = obj
    while isinstance(f, functools.partial):
        f = f.func
    if not (inspect.isfunction(f) or inspect.ismethod(f) or inspect.isclass(f)) and \
            not hasattr(f, "__qualname__"):
        f = type(f)
    module = getattr(f, "__module__", None) or ""
    qual = getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or type(f).__name__
    return f"{module}.{qual}" if module else qual


_LIBRARIES = ("flax", "keras", "haiku", "equinox")


def model_metadata(obj, specs, *, model_version: int | None = None,
                   shape_constraints: Sequence[str] = ()) -> dict:
    """The options of the C core for the model's ``doc_string``,
    ``model_version`` and ``metadata_props``: what was converted, the
    versions of hlo2onnx, JAX and the model's library, and the symbolic
    dimensions of the inputs (with their constraints)."""
    import jax

    from . import __version__
    from .convert import symbols_of

    if isinstance(model_version, bool) or \
            (model_version is not None and not isinstance(model_version, int)):
        raise TypeError(f"model_version must be an int, not {type(model_version).__name__}")
    meta = [("hlo2onnx.version", __version__), ("jax.version", jax.__version__)]
    owner = obj[0] if isinstance(obj, tuple) and len(obj) == 2 else obj
    # the library of a model object: that of the first of its classes from one
    tops = [(getattr(cls, "__module__", "") or "").split(".")[0] for cls in type(owner).__mro__]
    top = next((t for t in tops if t in _LIBRARIES and t in sys.modules), None)
    if top:
        meta.append((f"{top}.version", str(getattr(sys.modules[top], "__version__", "unknown"))))
    symbols = symbols_of(specs)
    if symbols:
        meta.append(("symbolic_dims", ", ".join(symbols)))
    if shape_constraints:
        meta.append(("shape_constraints", "; ".join(shape_constraints)))
    return {"doc_string": _qualified_name(obj), "model_version": model_version,
            "metadata": meta}


# ---------------------------------------------------------------------------
# The user's Python lines in the MLIR locations.


def _library_dirs() -> list[str]:
    """The directories whose frames are not the user's: hlo2onnx's own and
    those of the model libraries that are loaded; and Python's frozen
    modules ("<frozen runpy>"), which are no file a user can open."""
    dirs = [os.path.dirname(os.path.abspath(__file__)) + os.sep, "<frozen "]
    for name in _LIBRARIES:
        mod = sys.modules.get(name)
        f = getattr(mod, "__file__", None) if mod else None
        if f:
            dirs.append(os.path.dirname(os.path.abspath(f)) + os.sep)
    return dirs


_hidden_lock = threading.Lock()
_hidden_depth = 0  # conversions lowering now (threads): the last one restores
_hidden_added: list[str] = []


@contextlib.contextmanager
def library_frames_hidden():
    """While lowering, JAX writes into each op's location the Python frames
    outside its own code (``source_info_util``'s exclusions).  Hiding
    hlo2onnx's frames and the model libraries' too makes the innermost frame
    the user's line.  The exclusions are JAX's global state: they are added
    when the first of the conversions running at once (threads) starts
    lowering and removed when the last one is done.  When JAX's internals
    differ from what this expects, nothing is changed."""
    global _hidden_depth
    try:
        from jax._src import source_info_util as siu
        paths = siu._exclude_paths
        clear = [siu._exclude_path_regex.cache_clear, siu.is_user_filename.cache_clear]
    except (ImportError, AttributeError):
        yield
        return
    with _hidden_lock:
        if _hidden_depth == 0:
            _hidden_added[:] = [d for d in _library_dirs() if d not in paths]
            paths.extend(_hidden_added)
            for f in clear:
                f()
        _hidden_depth += 1
    try:
        yield
    finally:
        with _hidden_lock:
            _hidden_depth -= 1
            if _hidden_depth == 0:
                for d in _hidden_added:
                    if d in paths:
                        paths.remove(d)
                _hidden_added.clear()
                for f in clear:
                    f()


# ---------------------------------------------------------------------------
# Errors at the user's line.

# "<jit_f>:4:10: error: text (JAX scope: s)" then the MLIR line, a caret, and
# "  from Python: file.py:12" (src/base/diag.c)
_HEAD = re.compile(r"^(?P<pos>.+?:\d+:\d+): error: (?P<text>.*)$")
_FROM = re.compile(r"^  from Python: (?P<file>.+):(?P<line>\d+)$")


def _rewrite_block(block: list[str]) -> list[str]:
    head = _HEAD.match(block[0])
    src = next((_FROM.match(line) for line in block[1:] if _FROM.match(line)), None)
    if not head or not src:
        return block
    file, line = src.group("file"), int(src.group("line"))
    out = [f"{file}:{line}: error: {head.group('text')}"]
    code = linecache.getline(file, line).strip()
    if code:
        out.append(f"    {code}")
    rest = [b for b in block[1:] if not _FROM.match(b)]
    out.append(f"  {head.group('pos')}: the op in the lowered MLIR text:" if rest else
               f"  {head.group('pos')}: the op in the lowered MLIR text")
    return out + rest


def point_at_user_lines(err) -> None:
    """Rewrites a :class:`~hlo2onnx.ConversionError` raised for text JAX
    lowered (which the user never saw) in place: each error the core
    reported about an op whose location names a Python line now starts with
    that line (``model.py:12: error: ...``, the code of the line below it),
    followed by the op's position in the lowered text as a note."""
    lines = (err.messages or "").splitlines()
    blocks: list[list[str]] = []
    for line in lines:
        if not blocks or (not line.startswith(" ") and line):
            blocks.append([line])
        else:
            blocks[-1].append(line)
    rewritten = [line for b in blocks for line in _rewrite_block(b)]
    messages = "\n".join(rewritten) + ("\n" if err.messages.endswith("\n") else "")
    if messages != err.messages:
        err.messages = messages
        err.args = (messages,)
