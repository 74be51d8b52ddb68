"""A ``jax.export.Exported`` as the thing to convert: the object, the bytes
of ``Exported.serialize()``, or the file a user saved them in.

An ``Exported`` already holds everything ``to_onnx`` would otherwise get by
lowering a function: the StableHLO module (``mlir_module()``, with its
symbolic shapes), the input and output pytrees (``in_tree``, ``out_tree``)
and the abstract values of their leaves.  So this module does not lower
anything; it reads the artifact as it was saved, binds the arguments that
are weights, names the rest, and hands the text to the C core like
:meth:`hlo2onnx.convert.Lowered.convert`.

Weights.  ``jax.export`` stores only the weights a function closed over (they
are constants of the module and become initializers like any constant).  A
function that took its weights as an argument, ``f(params, *inputs)``, was
exported with their shapes only: pass their values with ``params=`` (the
same pytree as that first argument) and they become initializers named by
their paths (``layers.0.kernel``), exactly as ``to_onnx(f, ..., params=)``
names them.  Without ``params=`` every argument is a graph input.

Names (from the pytrees, not from the module's debug locations, which a
saved artifact may lack):

* a positional argument that is one array: ``input_0``, ``input_1``, ...
  (counted over the graph inputs, so the ``params`` argument takes no
  number); a pytree argument: ``input_0.image``, ``input_0.mask``;
* a keyword argument: its name, and the path inside it (``mask``,
  ``batch.image``);
* outputs: ``output_0`` for a single array, ``output_0``, ``output_1`` for
  a tuple or list, the paths for a dict or dataclass (``logits``,
  ``aux.loss``).

Arguments that are not in the module (those ``module_kept_var_idx`` leaves
out) are not graph inputs either; weights among them are not written.

Which source is which, with no guessing: an ``Exported`` instance; ``bytes``,
``bytearray`` or ``memoryview`` (the serialized form); an ``os.PathLike`` or
a ``str`` (``to_onnx`` never takes text, so a str is always a path) naming a
file that holds the serialized form.  Text or MLIR bytecode in that place is
an error that says which function reads it.
"""

from __future__ import annotations

import os
import re
from typing import Any, Sequence

import numpy as np

from ._options import core_options

__all__ = ["load_exported", "lower_exported", "is_exported_source", "sniff"]

# The magic number of MLIR bytecode ("ML\xefR"), which starts the
# ``mlir_module_serialized`` that a serialized Exported embeds.
MLIR_BYTECODE_MAGIC = b"ML\xefR"


def sniff(data: bytes | bytearray | memoryview) -> str:
    """What a file's first bytes say it is: ``"exported"`` (a serialized
    ``jax.export.Exported``: a flatbuffer, so binary from its first bytes,
    that embeds MLIR bytecode), ``"bytecode"`` (MLIR bytecode on its own),
    ``"text"`` (no control bytes other than tab, newline and carriage
    return in the first 64 KiB) or ``"binary"``.

    The same test as the ``hlo2onnx`` command's (cli/main.c).
    """
    head = bytes(memoryview(data)[:65536])
    if head.startswith(MLIR_BYTECODE_MAGIC):
        return "bytecode"
    if not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", head):
        return "text"
    # A flatbuffer starts with the little-endian offset of its root table.
    if len(head) >= 8 and int.from_bytes(head[:4], "little") < len(data) and \
            MLIR_BYTECODE_MAGIC in bytes(data):
        return "exported"
    return "binary"


def is_exported_source(obj) -> bool:
    """True when ``to_onnx`` should read ``obj`` as an Exported: an
    ``Exported``, serialized bytes, or a path (``str`` or ``os.PathLike``).
    Functions and modules are never any of these."""
    if isinstance(obj, (bytes, bytearray, memoryview, str, os.PathLike)):
        return True
    import sys

    export = sys.modules.get("jax.export")
    return export is not None and isinstance(obj, export.Exported)


def load_exported(source) -> tuple[Any, str]:
    """``(exported, source_name)`` from an ``Exported``, its serialized
    bytes, or the path of a file holding them."""
    import jax

    if isinstance(source, jax.export.Exported):
        return source, f"<{source.fun_name}: jax.export.Exported>"
    if isinstance(source, (str, os.PathLike)):
        file = os.fspath(source)
        if isinstance(file, bytes):
            file = os.fsdecode(file)
        if not os.path.isfile(file):
            raise FileNotFoundError(
                f"hlo2onnx.to_onnx({file!r}): a str or a path is read as the file of a "
                f"serialized jax.export.Exported (Exported.serialize()), and there is no "
                f"such file")
        with open(file, "rb") as f:
            data = f.read()
        what = sniff(data)
        if what != "exported":
            raise ValueError(f"hlo2onnx.to_onnx: {file} is not a serialized jax.export.Exported "
                             f"but {_describe(what, 'hlo2onnx.mlir_to_onnx(input_path=...)')}")
        return _deserialize(data, file), file
    if isinstance(source, (bytes, bytearray, memoryview)):
        what = sniff(source)
        if what != "exported":
            raise ValueError("hlo2onnx.to_onnx: the bytes are not a serialized "
                             f"jax.export.Exported but {_describe(what, 'hlo2onnx.mlir_to_onnx')}")
        exp = _deserialize(bytes(source), "the bytes")
        return exp, f"<{exp.fun_name}: serialized jax.export.Exported>"
    raise TypeError(f"expected a jax.export.Exported, its serialized bytes or a path, "
                    f"not {type(source).__name__}")


def _describe(what: str, text_reader: str) -> str:
    if what == "text":
        return f"text (MLIR text of a StableHLO module is converted by {text_reader})"
    if what == "bytecode":
        return ("MLIR bytecode (hlo2onnx reads MLIR text: save Exported.serialize(), or "
                "the text of Exported.mlir_module())")
    return "binary data of another kind"


def _deserialize(data: bytes, where: str):
    import jax

    try:
        return jax.export.deserialize(bytearray(data))
    except Exception as e:  # flatbuffers raises whatever a bad offset causes
        raise ValueError(f"hlo2onnx: cannot deserialize {where} as a jax.export.Exported "
                         f"(with jax {jax.__version__}): {type(e).__name__}: {e}") from e


# ---------------------------------------------------------------------------
# Names from the pytrees.


def _leaf_paths(tree) -> list[tuple]:
    import jax

    n = tree.num_leaves
    flat, _ = jax.tree_util.tree_flatten_with_path(jax.tree_util.tree_unflatten(tree, range(n)))
    return [path for path, _ in flat]


def _is_index(key) -> bool:
    return type(key).__name__ in ("SequenceKey", "FlattenedIndexKey")


def _output_names(out_tree) -> list[str]:
    from .convert import path_name

    names = []
    for i, path in enumerate(_leaf_paths(out_tree)):
        if not path:
            names.append(f"output_{i}")
        elif _is_index(path[0]):
            rest = path_name(path[1:])
            names.append(f"output_{path[0].idx}" + (f".{rest}" if rest else ""))
        else:
            names.append(path_name(path))
    return names


# ---------------------------------------------------------------------------
# Exported -> what the C core receives.


def lower_exported(source, *, params=None, input_names: Sequence[str] | None = None,
                   output_names: Sequence[str] | None = None, opset: int | None = None,
                   shape_info: bool = False, optimize: bool = True,
                   external_threshold: int | None = None, external_data: str | None = None,
                   graph_name: str | None = None, progress: bool | None = None,
                   dump_after: str | None = None, save_mlir: str | os.PathLike | None = None,
                   source_name: str | None = None, local_functions: bool | int = False):
    """The :class:`hlo2onnx.Lowered` of an Exported (see the module
    docstring): its module text, ``params`` bound to the arguments of its
    first positional parameter, names from its pytrees."""
    import jax

    from . import convert

    exp, default_source = load_exported(source)
    if exp.ordered_effects:
        raise ValueError(f"hlo2onnx: {exp.fun_name} was exported with ordered effects "
                         f"({exp.ordered_effects}); ONNX has no tokens to order them")
    text = exp.mlir_module()

    paths = _leaf_paths(exp.in_tree)
    avals = list(exp.in_avals)
    # The @main of an Exported takes: a platform index when it was exported
    # for several platforms, then one token per ordered effect (none here),
    # then the array arguments it kept.
    n_lead = 1 if len(exp.platforms) > 1 else 0
    kept = list(exp.module_kept_var_idx)
    arg_index = {leaf: n_lead + k for k, leaf in enumerate(kept)}
    sig = convert.entry_signature(text)
    if len(sig) != n_lead + len(kept) or any(a["global_constant"] for a in sig[n_lead:]):
        raise RuntimeError(f"hlo2onnx: the @main of {exp.fun_name} has {len(sig)} arguments; "
                           f"expected {n_lead} platform index + {len(kept)} arrays "
                           f"(calling convention {exp.calling_convention_version})")

    # params: the leaves of the first positional argument.
    n_param = 0
    param_triples = []
    param_names_all: list[str] = []
    if params is not None:
        args_tree = exp.in_tree.children()[0]
        if args_tree.num_nodes == 1 or not args_tree.children():
            raise TypeError(f"params=: {exp.fun_name} takes no positional argument to bind")
        want_tree = args_tree.children()[0]
        flat, got_tree = jax.tree_util.tree_flatten_with_path(params)
        if got_tree != want_tree:
            raise TypeError(f"params= has the structure {got_tree}, but the first argument "
                            f"of {exp.fun_name} was exported as {want_tree}")
        n_param = len(flat)
        for i, (path, value) in enumerate(flat):
            aval = avals[i]
            name = convert.path_name(path) or "params"
            shape = tuple(np.shape(value))
            if shape != tuple(aval.shape) or np.dtype(convert._leaf_dtype(value)) != aval.dtype:
                raise TypeError(f"params= leaf {name!r} is {np.dtype(convert._leaf_dtype(value))}"
                                f"{list(shape)}, but {exp.fun_name} was exported with "
                                f"{aval.dtype}{list(aval.shape)}")
            param_names_all.append(name)
            if i in arg_index:  # unused weights are not in the module
                param_triples.append((arg_index[i], convert.param_buffer(value), name))

    # Graph inputs: the kept leaves after the params, named by their paths.
    positional = exp.in_tree.children()[0].num_leaves if exp.in_tree.children() else 0
    first_arg = 1 if params is not None else 0
    default_in, graph_leaves = [], []
    for i in range(n_param, len(avals)):
        path = paths[i]
        if i < positional:  # (args, kwargs)[0][k]...
            k = path[1].idx - first_arg
            rest = convert.path_name(path[2:])
            name = f"input_{k}" + (f".{rest}" if rest else "")
        else:  # (args, kwargs)[1][name]...
            name = convert.path_name(path[1:])
        if i in arg_index:
            default_in.append(name)
            graph_leaves.append(i)
    in_names = list(input_names) if input_names is not None else default_in
    if len(in_names) != len(graph_leaves):
        raise ValueError(f"input_names has {len(in_names)} names for {len(graph_leaves)} inputs "
                         f"({', '.join(default_in)})")
    out_names = list(output_names) if output_names is not None else _output_names(exp.out_tree)
    if len(out_names) != len(exp.out_avals):
        raise ValueError(f"output_names has {len(out_names)} names for "
                         f"{len(exp.out_avals)} outputs")
    taken = set(in_names) | set(out_names)
    unique = convert._unique([t[2] for t in param_triples], taken)
    param_triples = [(a, b, n) for (a, b, _), n in zip(param_triples, unique)]

    if n_lead:
        # Several platforms: the module switches on a platform index, an
        # argument marked as a global constant, which the core would take
        # for a dimension variable.  ONNX runs anywhere, so bind CPU's
        # index (or the first platform's) as a weight of its own.
        text, n = re.subn(r'(@main\(\s*%[\w#]+\s*:\s*tensor<i32>)\s*'
                          r'\{\s*jax\.global_constant\s*=\s*"_platform_index"\s*\}', r"\1", text,
                          count=1)
        if n != 1:
            raise RuntimeError(f"hlo2onnx: no platform index argument in the @main of "
                               f"{exp.fun_name}, exported for {', '.join(exp.platforms)}")
        platform = "cpu" if "cpu" in exp.platforms else exp.platforms[0]
        index = np.array(exp.platforms.index(platform), np.int32)
        param_triples.insert(0, (0, index.reshape(-1).view(np.uint8), "platform_index"))

    input_dims = [(arg_index[i], axis, str(d)) for i in graph_leaves
                  for axis, d in enumerate(avals[i].shape) if not isinstance(d, (int, np.integer))]
    output_dims = [(r, axis, str(d)) for r, aval in enumerate(exp.out_avals)
                   for axis, d in enumerate(aval.shape) if not isinstance(d, (int, np.integer))]

    if save_mlir is not None:
        with open(save_mlir, "w", encoding="utf-8") as f:
            f.write(text)
        source_name = source_name or os.fspath(save_mlir)
    options = core_options(
        opset=opset, shape_info=shape_info, optimize=optimize,
        external_threshold=external_threshold, external_data=external_data,
        source_name=source_name or default_source,
        graph_name=graph_name or re.sub(r"\W", "_", exp.fun_name) or "f",
        input_names=in_names, output_names=out_names, input_dims=input_dims,
        output_dims=output_dims, progress=convert._progress(progress), dump_after=dump_after,
        local_functions=convert._local_functions(local_functions))
    specs = []
    for i in graph_leaves:
        aval = avals[i]
        dims = tuple(int(d) if isinstance(d, (int, np.integer)) else str(d) for d in aval.shape)
        specs.append(convert.InputSpec(dims, np.dtype(aval.dtype),
                                       jax.ShapeDtypeStruct(aval.shape, aval.dtype)))

    def apply(param_leaves, *inputs):
        args, kwargs = jax.tree_util.tree_unflatten(exp.in_tree, [*param_leaves, *inputs])
        return exp.call(*args, **kwargs)

    bound = convert.Bound(apply, param_names_all, [], "exported", exp.fun_name)
    return convert.Lowered(text, param_triples, options, specs, in_names, out_names, 0, bound,
                           None)


def exported_to_onnx(source, inputs=None, path: str | os.PathLike | None = None, **options):
    """``to_onnx`` of an Exported (see the module docstring).  ``inputs``
    must be None: the Exported carries its input shapes."""
    if inputs is not None:
        hint = (f" (to write the model to {os.fspath(inputs)!r}, pass path=)"
                if isinstance(inputs, (str, os.PathLike)) else "")
        raise TypeError("hlo2onnx.to_onnx: a jax.export.Exported carries its input shapes "
                        f"and dtypes; call to_onnx(exported, path=...) without inputs{hint}")
    if options.pop("debug_info", True) is not True:
        raise TypeError("hlo2onnx.to_onnx: debug_info= does not apply to a jax.export.Exported: "
                        "its text keeps the locations it was exported with")
    for name in ("dtype", "input_dtypes", "shape_constraints", "inputs_as_nchw",
                 "outputs_as_nchw"):
        if options.get(name) not in (None, False, ()):
            raise TypeError(f"hlo2onnx.to_onnx: {name}= does not apply to a jax.export.Exported: "
                            "its function, shapes and text were fixed when it was exported")
        options.pop(name, None)
    return lower_exported(source, **options).convert(path)
