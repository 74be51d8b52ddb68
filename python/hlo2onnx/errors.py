"""Exceptions of hlo2onnx.

Every failure of the C core is raised as a :class:`ConversionError`, with the
status code of ``hlo2onnx.h`` in ``.status`` and the core's full diagnostic
text (``file:line:col: error: ...`` lines, each with its source line and a
caret) in ``.messages``.  Each status has its own subclass, so callers can
catch exactly what they expect::

    try:
        hlo2onnx.to_onnx(f, [(3, 4)])
    except hlo2onnx.UnsupportedOpError as e:
        print(e.ops)        # the StableHLO op names reported
"""

from __future__ import annotations

import re

__all__ = [
    "ConversionError",
    "UsageError",
    "InputError",
    "UnsupportedOpError",
    "ConversionIOError",
    "InternalError",
    "ConversionMemoryError",
    "ConversionWarning",
    "VerificationError",
]

# The H2O_* status codes of hlo2onnx.h (also the CLI's exit codes).
OK, EUSAGE, EINPUT, EUNSUPPORTED, EIO, EINTERNAL, ENOMEM = range(7)


class ConversionError(ValueError):
    """The C core could not convert the module.

    Attributes:
        status: the H2O_* status code (1 usage, 2 malformed input,
            3 unsupported, 4 I/O, 5 internal error, 6 out of memory).
        messages: every diagnostic the core produced, one
            ``file:line:col: error: ...`` entry per problem.
        n_errors: how many errors the core counted.
    """

    status = 0
    kind = "conversion failed"

    def __init__(self, messages: str = "", status: int | None = None, n_errors: int = 0):
        self.messages = messages or ""
        if status is not None:
            self.status = status
        self.n_errors = n_errors
        super().__init__(self.messages)

    @property
    def errors(self) -> list[str]:
        """The ``error:`` lines of ``messages`` (without source lines and carets)."""
        return [line for line in self.messages.splitlines() if ": error: " in line]

    def __str__(self) -> str:
        head = f"{self.kind} (status {self.status}"
        if self.n_errors > 1:
            head += f", {self.n_errors} errors"
        head += ")"
        body = self.messages.rstrip()
        return f"{head}:\n{body}" if body else head


class UsageError(ConversionError):
    """Bad options (status 1)."""

    status = EUSAGE
    kind = "bad options"


class InputError(ConversionError):
    """The MLIR text is malformed (status 2)."""

    status = EINPUT
    kind = "malformed input"


class UnsupportedOpError(ConversionError):
    """Valid StableHLO that hlo2onnx cannot express in ONNX yet (status 3)."""

    status = EUNSUPPORTED
    kind = "unsupported"

    @property
    def ops(self) -> list[str]:
        """The op names the core reported as unsupported, in order, without repeats."""
        seen: dict[str, None] = {}
        for line in self.errors:
            # "unknown op 'foo.bar'" names ops of any dialect
            quoted = re.findall(r"\bop '([A-Za-z_][\w.$-]*)'", line)
            for op in quoted or re.findall(
                    r"\b((?:stablehlo|chlo|mhlo|func|sdy|shardy)\.[A-Za-z_][\w.]*)", line):
                seen.setdefault(op, None)
        return list(seen)


class ConversionIOError(ConversionError):
    """Reading or writing a file failed (status 4)."""

    status = EIO
    kind = "I/O error"


class InternalError(ConversionError):
    """A broken invariant inside hlo2onnx: a bug, please report it (status 5)."""

    status = EINTERNAL
    kind = "internal error"


class ConversionMemoryError(ConversionError, MemoryError):
    """The core ran out of memory (status 6)."""

    status = ENOMEM
    kind = "out of memory"


class ConversionWarning(UserWarning):
    """Something about a conversion that succeeded that you should know: the
    core's notes, or an input or parameter that JAX computes in a narrower
    dtype than it was given in (float64 as float32 while ``jax_enable_x64``
    is off), so the model does too.  Filter it with the ``warnings`` module."""


class VerificationError(AssertionError):
    """``to_onnx(..., verify=True)``: the model converted, but onnxruntime's
    outputs differ from JAX's.  ``.result`` is the
    :class:`hlo2onnx.VerifyResult` (its ``str()`` is the report); the
    model is left at ``.path`` (when written to a file) so you can look
    at it."""

    def __init__(self, result, path=None):
        self.result = result
        self.path = path
        where = f"; the model is kept at {path}" if path is not None else ""
        super().__init__(f"the converted model does not match JAX{where}:\n{result}")


_BY_STATUS = {
    cls.status: cls
    for cls in (UsageError, InputError, UnsupportedOpError, ConversionIOError,
                InternalError, ConversionMemoryError)
}


def _from_result(status: int, messages: str, n_errors: int = 0) -> ConversionError:
    """Called by the C extension: the exception for a failed h2o_convert."""
    cls = _BY_STATUS.get(status, ConversionError)
    return cls(messages, status, n_errors)
