"""``python -m hlo2onnx``: the ``hlo2onnx`` command from Python.

The same options, messages, safety checks and exit codes as the C command
(cli/main.c): MLIR text goes to the C core as the command sends it; a
serialized ``jax.export.Exported`` (a file saved from
``Exported.serialize()``), which the C command cannot read, is deserialized
with ``jax.export.deserialize`` and converted as ``hlo2onnx.to_onnx`` converts
an Exported (:mod:`hlo2onnx.exported`: names from its pytrees, its symbolic
dimensions; arguments that were weights become graph inputs, as there are
no values for them here).

The checks that keep the user's files safe, before anything is converted:
the output (and its external data file) must not be the input, also through
a link (compared by device and inode); ``-o -`` writes the model to standard
output, which must not be a terminal, and then has no external data file;
an input that is not text is named for what it is and never echoed.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys

from . import errors
from .exported import sniff

USAGE = """\
usage: python -m hlo2onnx INPUT -o OUTPUT.onnx [options]

Converts the MLIR text of a StableHLO module (jax.jit(f).lower(*args).as_text()
or Exported.mlir_module()), or a serialized jax.export.Exported
(Exported.serialize()), into an ONNX model.  INPUT may be '-' for standard input.

options:
  -o, --output FILE          the ONNX file to write (required); written to a
                             temporary name and renamed when complete; never
                             the input file; '-' for standard output (not a
                             terminal; the model then has no external data)
  --opset N                  ai.onnx opset to target, 17..23 (default 20; 0 = default)
  --shape-info               write value_info (shapes) for intermediate tensors
  --no-optimize              skip the fusion passes (Gemm, LayerNormalization,
                             Gelu, Softmax, ...); the graph stays op-for-op
  --local-functions[=N]      a function called from N or more places (default
                             2) becomes an ONNX local function, lowered once,
                             that each call site invokes; 0 inlines every call
                             (the default without the option)
  --external-threshold BYTES tensors of at least BYTES go to the external data
                             file (default 1048576; 0 = only when the model
                             would pass the 2 GB protobuf limit)
  --external-data NAME       name of the external data file, relative to the
                             model (default OUTPUT.data)
  --dim ARG:AXIS=NAME        name the dynamic dimension AXIS of entry argument
                             ARG (e.g. --dim 0:0=B); repeatable; MLIR text only
                             (an Exported names its dimensions itself)
  --input-name NAME          name the next graph input; repeatable
  --output-name NAME         name the next graph output; repeatable
  --dump-after STAGE         print the graph after STAGE (parse, lower, or a
                             pass name; an unknown name lists them) to stderr
  -q, --quiet                no progress output
  -h, --help                 this help
  --version                  print the version

exit codes: 0 ok, 1 usage error, 2 malformed input, 3 unsupported op or
type, 4 I/O error, 5 internal error, 6 out of memory
"""


class _Usage(Exception):
    """A usage error: the message, then "(see ... --help)", exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _Usage(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m hlo2onnx", add_help=False, allow_abbrev=False)
    p.add_argument("input", nargs="*")
    p.add_argument("-o", "--output")
    p.add_argument("--opset", type=str)
    p.add_argument("--shape-info", action="store_true")
    p.add_argument("--no-optimize", action="store_true")
    p.add_argument("--local-functions", type=str)
    p.add_argument("--external-threshold", type=str)
    p.add_argument("--external-data")
    p.add_argument("--dim", action="append", default=[])
    p.add_argument("--input-name", action="append")
    p.add_argument("--output-name", action="append")
    p.add_argument("--dump-after")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("--version", action="store_true")
    return p


def _int(text: str, what: str, low: int, high: int) -> int:
    try:
        v = int(text, 10)
    except ValueError:
        v = None
    if v is None or not low <= v <= high or text.strip() != text:
        raise _Usage(f"bad {what} '{text}'")
    return v


def _dim(spec: str) -> tuple[int, int, str]:
    arg, _, rest = spec.partition(":")
    axis, eq, name = rest.partition("=")
    if not (arg.isdigit() and axis.isdigit() and eq and name):
        raise _Usage(f"bad --dim '{spec}': expected ARG:AXIS=NAME, e.g. 0:0=B")
    if int(arg) > 2**31 - 1 or int(axis) > 2**31 - 1:
        raise _Usage(f"bad --dim '{spec}': ARG and AXIS must be at most {2**31 - 1}")
    return int(arg), int(axis), name


def _stat_input(in_path: str):
    try:
        if in_path == "-":
            st = os.fstat(0)
            return st if stat.S_ISREG(st.st_mode) else None
        return os.stat(in_path)
    except OSError:
        return None


def _same_file(st, path: str) -> bool:
    try:
        other = os.stat(path)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


def check_not_input(in_path: str, out_path: str, external_data: str | None) -> str | None:
    """The message refusing ``out_path`` (or its external data file) when it
    is the input file, also through a link; None when it is not."""
    st = _stat_input(in_path)
    if st is None:
        return None
    shown = "standard input" if in_path == "-" else in_path
    if _same_file(st, out_path):
        return (f"the output {out_path} is the input ({shown}): refusing to overwrite\n"
                "the input; choose another -o")
    data = (os.path.join(os.path.dirname(out_path), external_data) if external_data
            else out_path + ".data")
    if _same_file(st, data):
        return (f"the external data file {data} is the input ({shown}): refusing to\n"
                "overwrite the input; choose another --external-data or -o")
    return None


def not_text_message(name: str, what: str) -> str:
    """The command's message for an input that is not MLIR text."""
    if what == "exported":
        return ""  # converted, not refused
    if what == "bytecode":
        return (f"{name} is MLIR bytecode, not MLIR text; hlo2onnx reads the text\n"
                "(jax.jit(f).lower(...).as_text(), or Exported.mlir_module()); save the\n"
                "Exported itself with Exported.serialize() and convert that file")
    return (f"{name} is not text; hlo2onnx reads the MLIR text of a StableHLO module\n"
            "(jax.jit(f).lower(...).as_text()) or a serialized jax.export.Exported")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # "--local-functions" alone means 2, as in cli/main.c; "-" is an input.
    argv = ["--local-functions=2" if a == "--local-functions" else a for a in argv]
    try:
        return _run(argv)
    except _Usage as e:
        print(f"hlo2onnx: {e}\n(see python -m hlo2onnx --help)", file=sys.stderr)
        return errors.EUSAGE


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.help:
        sys.stdout.write(USAGE)
        return 0
    if args.version:
        from . import __version__

        print(f"hlo2onnx {__version__}")
        return 0
    if not args.input:
        raise _Usage("no input file")
    if len(args.input) > 1:
        raise _Usage(f"more than one input file ('{args.input[1]}')")
    in_path = args.input[0]
    out_path = args.output
    if not out_path:
        raise _Usage("no output file: use -o OUTPUT.onnx")
    external_option = args.external_data is not None or args.external_threshold is not None
    to_stdout = out_path == "-"
    if to_stdout and external_option:
        raise _Usage("-o - writes the whole model to standard output: it cannot have an "
                     "external data file\n(--external-data, --external-threshold); write to "
                     "a file with -o FILE")
    if to_stdout and os.isatty(1):
        raise _Usage("-o -: standard output is a terminal, and an ONNX model is binary; "
                     "redirect it\n(python -m hlo2onnx IN -o - > OUT.onnx) or write to a file "
                     "with -o FILE")
    options = {
        "opset": None if args.opset is None else _int(args.opset, "--opset value", 0, 1000),
        "shape_info": args.shape_info,
        "optimize": not args.no_optimize,
        "external_threshold": None if args.external_threshold is None else
        _int(args.external_threshold, "--external-threshold", 0, 2**64 - 1),
        "external_data": args.external_data,
        "input_names": args.input_name,
        "output_names": args.output_name,
        "dump_after": args.dump_after,
        "progress": not args.quiet,
        "local_functions": 0 if args.local_functions is None else
        _int(args.local_functions, "--local-functions value", 0, 1000000),
    }
    dims = [_dim(d) for d in args.dim]
    if not to_stdout:
        refused = check_not_input(in_path, out_path, args.external_data)
        if refused:
            print(f"hlo2onnx: {refused}", file=sys.stderr)
            return errors.EUSAGE

    name = "<stdin>" if in_path == "-" else in_path
    try:
        if in_path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(in_path, "rb") as f:
                data = f.read()
    except OSError as e:
        print(f"hlo2onnx: cannot open {in_path}: {e.strerror}", file=sys.stderr)
        return errors.EIO
    what = sniff(data)
    if what not in ("text", "exported"):
        print(f"hlo2onnx: {not_text_message(name, what)}", file=sys.stderr)
        return errors.EINPUT

    from . import _core

    try:
        if what == "exported":
            if dims:
                raise _Usage("--dim is for MLIR text; a jax.export.Exported names its "
                             "dimensions itself")
            from .exported import lower_exported

            lowered = lower_exported(data, source_name=name, opset=options["opset"],
                                     shape_info=options["shape_info"],
                                     optimize=options["optimize"],
                                     external_threshold=options["external_threshold"],
                                     external_data=options["external_data"],
                                     input_names=options["input_names"],
                                     output_names=options["output_names"],
                                     dump_after=options["dump_after"],
                                     progress=options["progress"],
                                     local_functions=options["local_functions"])
            text, params, core_options = lowered.text, lowered.params, lowered.options
        else:
            text, params = data, []
            core_options = dict(options, source_name=name, input_dims=dims)
        blob = _core.convert(text, params, None if to_stdout else out_path, core_options)
    except errors.ConversionError as e:
        sys.stderr.write(e.messages)
        return e.status
    except (ValueError, TypeError) as e:  # an Exported we cannot take (names, effects)
        print(f"hlo2onnx: {e}", file=sys.stderr)
        return errors.EINPUT
    if to_stdout:
        try:
            sys.stdout.buffer.write(blob)
            sys.stdout.buffer.flush()
        except OSError as e:
            print(f"hlo2onnx: cannot write the model to standard output: {e.strerror}",
                  file=sys.stderr)
            return errors.EIO
    return 0


if __name__ == "__main__":
    sys.exit(main())
