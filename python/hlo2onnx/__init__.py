"""hlo2onnx: JAX functions and models (Flax NNX and Linen, Equinox, Keras,
Haiku) to ONNX, through StableHLO.

JAX lowers the function to StableHLO MLIR text; a C core parses it, maps
each op to ONNX, simplifies the graph and writes the model, streaming the
weights from the arrays' own memory.

    import hlo2onnx
    model = hlo2onnx.to_onnx(mlp, [("B", 30)], "mlp.onnx")
    print(hlo2onnx.verify(mlp, "mlp.onnx", [("B", 30)]))

The logger ``hlo2onnx`` reports what a conversion did (time per stage,
nodes, fused ops, bytes written) at INFO level.
"""

from .convert import (DEFAULT_OPSET, InputSpec, Lowered, lower_to_text, register_adapter,
                      to_onnx)
from .errors import (ConversionError, ConversionIOError, ConversionMemoryError,
                     ConversionWarning, InputError, InternalError, UnsupportedOpError,
                     UsageError, VerificationError)
from .text import mlir_to_onnx
from .verify import VerifyResult, allclose, verify

__version__ = "0.1.0"

__all__ = [
    "to_onnx",
    "mlir_to_onnx",
    "verify",
    "allclose",
    "lower_to_text",
    "Lowered",
    "InputSpec",
    "VerifyResult",
    "register_adapter",
    "DEFAULT_OPSET",
    "ConversionError",
    "UsageError",
    "InputError",
    "UnsupportedOpError",
    "ConversionIOError",
    "InternalError",
    "ConversionMemoryError",
    "ConversionWarning",
    "VerificationError",
    "__version__",
]
