"""MLIR text in, ONNX out: the C core without JAX.

:func:`mlir_to_onnx` converts StableHLO MLIR text that was saved earlier
(``jax.jit(f).lower(...).as_text()``, ``jax.export``'s ``mlir_module()``,
or a file the ``hlo2onnx`` command would read).  It is what the command does,
from Python: the same options, the same diagnostics, and the same exceptions
as :func:`hlo2onnx.to_onnx`.  The entry function's arguments all become graph
inputs (there are no weights to bind here).
"""

from __future__ import annotations

import os
from typing import Sequence

__all__ = ["mlir_to_onnx"]


def mlir_to_onnx(text: str | bytes | os.PathLike, path: str | os.PathLike | None = None, *,
                 opset: int | None = None, shape_info: bool = False, optimize: bool = True,
                 external_threshold: int | None = None, external_data: str | None = None,
                 source_name: str | None = None, graph_name: str | None = None,
                 input_names: Sequence[str] | None = None,
                 output_names: Sequence[str] | None = None,
                 dims: Sequence[tuple[int, int, str]] = (), return_bytes: bool = False):
    """Converts the MLIR text of a StableHLO module into an ONNX model.

    Args:
        text: the module as ``str`` or UTF-8 ``bytes``; or an ``os.PathLike``
            naming a file to read (messages then name that file).
        path: where to write the model (atomically: a temporary name renamed
            into place when complete; on any error no file is left and an
            existing file at ``path`` is untouched).  ``None``: in memory.
        opset, shape_info, optimize, external_threshold, external_data,
            graph_name, input_names, output_names: as for ``to_onnx`` and the
            ``hlo2onnx`` command.
        source_name: the file name shown in messages (default ``<input>``).
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

    if isinstance(text, os.PathLike):
        file = os.fspath(text)
        with open(file, "rb") as f:
            data: str | bytes = f.read()
        if source_name is None:
            source_name = os.fsdecode(file)
    else:
        data = text
    if not isinstance(data, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"text must be str, bytes or a path, not {type(data).__name__}")
    options = {
        "opset": opset,
        "shape_info": bool(shape_info),
        "optimize": bool(optimize),
        "external_threshold": None if external_threshold is None else int(external_threshold),
        "external_data": external_data,
        "source_name": source_name,
        "graph_name": graph_name,
        "input_names": None if input_names is None else list(input_names),
        "output_names": None if output_names is None else list(output_names),
        "input_dims": [(int(i), int(a), str(n)) for i, a, n in dims],
    }
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
