# Type stubs of the C extension (python/hlo2onnx/_core.c), for type checkers
# of hlo2onnx and of its users; shipped beside the module.  A "buffer" is any
# object exporting the buffer protocol (bytes, a NumPy array, ...): typed Any,
# since collections.abc.Buffer exists only from Python 3.12.
import os
from collections.abc import Sequence
from typing import Any, overload

VERSION: str
DEFAULT_OPSET: int
OK: int
EUSAGE: int
EINPUT: int
EUNSUPPORTED: int
EIO: int
EINTERNAL: int
ENOMEM: int

# convert(text, params, out_path, options): the model's bytes, or None when
# it was written to out_path.
@overload
def convert(text: str | Any, params: Sequence[tuple[int, Any, str | None]], out_path: None,
            options: dict[str, Any] | None) -> bytes: ...
@overload
def convert(text: str | Any, params: Sequence[tuple[int, Any, str | None]],
            out_path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
            options: dict[str, Any] | None) -> None: ...
def _buffer_info(obj: Any) -> tuple[int, int]: ...
