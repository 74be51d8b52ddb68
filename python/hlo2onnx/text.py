"""MLIR text in, ONNX out: the C core without JAX.

:func:`mlir_to_onnx` converts StableHLO MLIR text that was saved earlier
(``jax.jit(f).lower(...).as_text()``, ``jax.export``'s ``mlir_module()``,
or a file the ``hlo2onnx`` command would read).  It is what the command does,
from Python: the same options, the same diagnostics, and the same exceptions
as :func:`hlo2onnx.to_onnx`.  The entry function's arguments all become graph
inputs (there are no weights to bind here).

Text or a file, without guessing: a ``str`` (or ``bytes``) is always the
text of the module; a file is read when it is named by ``input_path=`` or
given as an ``os.PathLike`` (``pathlib.Path``).  A str is never tried as a
file name, so the same call does not change meaning with the working
directory; a str that cannot be a module (no ``{``: a module always has a
body) is refused with a message that says it was read as text, and whether
it names a file that ``input_path=`` would read.
"""

from __future__ import annotations

import os
from typing import Sequence

__all__ = ["mlir_to_onnx"]


def mlir_to_onnx(text: str | bytes | os.PathLike | None = None,
                 path: str | os.PathLike | None = None, *,
                 input_path: str | os.PathLike | None = None, opset: int | None = None,
                 shape_info: bool = False, optimize: bool = True,
                 external_threshold: int | None = None, external_data: str | None = None,
                 source_name: str | None = None, graph_name: str | None = None,
                 input_names: Sequence[str] | None = None,
                 output_names: Sequence[str] | None = None,
                 dims: Sequence[tuple[int, int, str]] = (), return_bytes: bool = False):
    """Converts the MLIR text of a StableHLO module into an ONNX model.

    Args:
        text: the module as ``str`` or UTF-8 ``bytes`` (always text, never
            a file name); or an ``os.PathLike`` naming a file to read
            (messages then name that file).
        path: where to write the model (atomically: a temporary name renamed
            into place when complete; on any error no file is left and an
            existing file at ``path`` is untouched).  ``None``: in memory.
        opset, shape_info, optimize, external_threshold, external_data,
            graph_name, input_names, output_names: as for ``to_onnx`` and the
            ``hlo2onnx`` command.
        input_path: the file to read the module from (str or PathLike),
            instead of ``text``; messages name it.
        source_name: the file name shown in messages (default ``<input>``,
            or the file read).
        dims: ``(argument index, axis, name)`` triples naming dynamic
            dimensions of the inputs, like the command's ``--dim ARG:AXIS=NAME``.
        return_bytes: return the serialized model instead of an
            ``onnx.ModelProto`` (only without ``path``).

    Returns:
        The ``onnx.ModelProto`` (read back without external data when
        written to ``path``), or its bytes with ``return_bytes=True``.

    Raises:
        hlo2onnx.ConversionError: ``InputError`` (malformed text, status 2),
            ``UnsupportedOpError`` (3), ``ConversionIOError`` (4), ... with
            ``.status``, ``.messages`` (``file:line:col: error: ...`` lines,
            each with its source line and a caret) and ``.errors``.
    """
    from . import _core
    from ._options import core_options
    from .errors import UsageError
    from .exported import sniff

    if input_path is not None and text is not None:
        raise TypeError("mlir_to_onnx: give the module either as text or as input_path=, "
                        "not both")
    if input_path is None and text is None:
        raise TypeError("mlir_to_onnx: no module: pass its text, or input_path= to read a file")
    file = None
    if input_path is not None:
        if not isinstance(input_path, (str, os.PathLike)):
            raise TypeError(f"input_path must be a str or a path, not {type(input_path).__name__}")
        file = os.fsdecode(os.fspath(input_path))
    elif isinstance(text, os.PathLike):
        file = os.fsdecode(os.fspath(text))
    if file is not None:
        with open(file, "rb") as f:
            data: str | bytes = f.read()
        if source_name is None:
            source_name = file
    else:
        data = text  # type: ignore[assignment]  # checked just below
    if not isinstance(data, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"text must be str, bytes or a path, not {type(data).__name__}")
    if isinstance(data, str) and "{" not in data:
        # A module has a body in braces: this str cannot be one.  Say how it
        # was read, and what to pass if it was meant as a file name.
        shown = data if len(data) <= 200 else data[:200] + "..."
        exists = len(data) < 4096 and "\n" not in data and os.path.isfile(data)
        raise UsageError(
            f"mlir_to_onnx: the str {shown!r} was read as MLIR text (a str always is) and "
            "holds no module; " + (
                f"it names a file: to read it, pass input_path={data!r} "
                f"(or pathlib.Path({data!r}))\n" if exists else
                "to read a file, pass input_path= (or a pathlib.Path)\n"))
    if not isinstance(data, str) and sniff(data) == "exported":
        where = f"{file} is" if file else "the bytes are"
        raise UsageError(f"mlir_to_onnx: {where} a serialized jax.export.Exported, not MLIR "
                         f"text: convert it with hlo2onnx.to_onnx("
                         f"{repr(file) if file else 'data'}) or python -m hlo2onnx\n")
    options = core_options(
        opset=opset, shape_info=shape_info, optimize=optimize,
        external_threshold=external_threshold, external_data=external_data,
        source_name=source_name, graph_name=graph_name,
        input_names=None if input_names is None else list(input_names),
        output_names=None if output_names is None else list(output_names),
        input_dims=[(int(i), int(a), str(n)) for i, a, n in dims])
    if path is not None:
        if return_bytes:
            raise ValueError("return_bytes=True needs path=None")
        out = os.fspath(path)
        _core.convert(data, [], out, options)
        import onnx

        return onnx.load(out, load_external_data=False)
    blob = _core.convert(data, [], None, options)
    if return_bytes:
        return blob
    import onnx

    return onnx.load_from_string(blob)
