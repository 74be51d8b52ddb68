"""The options dict of ``_core.convert``, as every entry point fills it.

``to_onnx`` of a function or module (convert.py), of a ``jax.export.Exported``
(exported.py) and ``mlir_to_onnx`` of MLIR text (text.py) all hand the C core
the same keys; the core reads a missing key as its default (hlo2onnx.h).
"""

from __future__ import annotations

from typing import Any


def core_options(*, opset: int | None, shape_info: bool, optimize: bool,
                 external_threshold: int | None, external_data: str | None,
                 source_name: str | None, graph_name: str | None,
                 input_names: list[str] | None, output_names: list[str] | None,
                 input_dims: list[tuple[int, int, str]], **more: Any) -> dict[str, Any]:
    """The keys every entry point sets, normalised once (opset None: the
    core's default, H2O_DEFAULT_OPSET); ``more`` adds those only some set
    (output_dims, progress, dump_after, local_functions, model metadata)."""
    return {
        "opset": opset,
        "shape_info": bool(shape_info),
        "optimize": bool(optimize),
        "external_threshold": None if external_threshold is None else int(external_threshold),
        "external_data": external_data,
        "source_name": source_name,
        "graph_name": graph_name,
        "input_names": input_names,
        "output_names": output_names,
        "input_dims": input_dims,
        **more,
    }
