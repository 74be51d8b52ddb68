"""Which ops of the StableHLO and CHLO dialects hlo2onnx refuses, and why.

The dialects' ops are read from the bindings of the installed jaxlib
(jaxlib.mlir.dialects.stablehlo / chlo: every op class's OPERATION_NAME),
the ops hlo2onnx knows from src/ir/ops.def.  An op is

  converted  a row of ops.def with a converter (some forms may still be
             refused: PARTIAL says which);
  refused    a row whose converter is lower_unsupported_* (reported by name);
  unknown    no row: the parser reports "unknown op".

REASONS says why each refused or unknown op stays so.  Run from the
repository root:

    python tools/refused_ops.py            # a markdown table
    python tools/refused_ops.py --check    # exit 1 when an op lacks a reason
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OP_ROW = re.compile(r'^OP\(\s*(\w+),\s*"([^"]+)",\s*(\w+)')

_NO_DEVICES = ("a collective or device/host communication: an ONNX model is one "
               "computation on one device, without replicas, channels or tokens")
_NOT_EMITTED = ("JAX 0.10 does not emit it (it writes the computation with other ops): a "
                "legacy or internal op of the dialect")
REASONS = {
    # communication and the runtime
    **dict.fromkeys((
        "stablehlo.after_all", "stablehlo.all_gather", "stablehlo.all_reduce",
        "stablehlo.all_to_all", "stablehlo.async_done", "stablehlo.async_start",
        "stablehlo.collective_broadcast", "stablehlo.collective_permute",
        "stablehlo.create_token", "stablehlo.cross-replica-sum", "stablehlo.infeed",
        "stablehlo.outfeed", "stablehlo.partition_id", "stablehlo.recv",
        "stablehlo.reduce_scatter", "stablehlo.replica_id", "stablehlo.send"), _NO_DEVICES),
    # ops JAX never writes (it expands them itself, or they are legacy forms)
    **dict.fromkeys((
        "stablehlo.batch_norm_grad", "stablehlo.batch_norm_inference",
        "stablehlo.batch_norm_training", "stablehlo.einsum", "stablehlo.unary_einsum",
        "stablehlo.torch_index_select", "stablehlo.map", "stablehlo.set_dimension_size",
        "chlo._asin_acos_kernel", "chlo.constant", "chlo.constant_like", "chlo.conj",
        "chlo.is_neg_inf", "chlo.is_pos_inf", "chlo.mulhi", "chlo.ragged_dot",
        "chlo.scan"), _NOT_EMITTED),
    **dict.fromkeys((
        "chlo.broadcast_add", "chlo.broadcast_and", "chlo.broadcast_atan2",
        "chlo.broadcast_compare", "chlo.broadcast_complex", "chlo.broadcast_divide",
        "chlo.broadcast_maximum", "chlo.broadcast_minimum", "chlo.broadcast_multiply",
        "chlo.broadcast_next_after", "chlo.broadcast_or", "chlo.broadcast_polygamma",
        "chlo.broadcast_power", "chlo.broadcast_remainder", "chlo.broadcast_select",
        "chlo.broadcast_shift_left", "chlo.broadcast_shift_right_arithmetic",
        "chlo.broadcast_shift_right_logical", "chlo.broadcast_subtract",
        "chlo.broadcast_xor", "chlo.broadcast_zeta"),
        "JAX writes the op without implicit broadcasting (which converts), never this form"),
    "stablehlo.uniform_quantize": ("quantized tensor types (!quant.uniform) have no "
                                   "parser or lowering yet; JAX does not emit them"),
    "stablehlo.uniform_dequantize": ("quantized tensor types (!quant.uniform) have no "
                                     "parser or lowering yet; JAX does not emit them"),
    "stablehlo.rng": ("its numbers come from the compiled program's hidden generator state; "
                      "ONNX RandomUniform would draw other numbers without saying so "
                      "(jax.random converts, with every PRNG implementation)"),
}

# Converted ops that refuse some forms, with the forms.
PARTIAL = {
    "stablehlo.reduce": "bodies not known to be associative (XLA's in-order fold); "
                        "the generic path over dynamic reduced dimensions",
    "stablehlo.reduce_window": "bodies not known to be associative; the generic path "
                               "over dynamic windowed axes",
    "stablehlo.select_and_scatter": "select other than compare GE/GT/LE/LT, scatter other "
                                    "than add/mul/max/min; u64 max/min scatters; dynamic "
                                    "windowed axes",
    "stablehlo.custom_call": "targets without an ONNX form (LAPACK, ...); "
                             "@stablehlo.dynamic_reduce_window with a body not known to be "
                             "associative, run-time strides or dilations, or a product, xor or "
                             "logaddexp whose init is not its identity",
    "stablehlo.bitcast_convert": "float <-> integer bits (the bitcast task)",
}


def ops_def(root: Path = ROOT) -> dict[str, str]:
    """MLIR name -> converter, from src/ir/ops.def."""
    rows = {}
    for line in (root / "src/ir/ops.def").read_text().splitlines():
        m = OP_ROW.match(line)
        if m:
            rows[m.group(2)] = m.group(3)
    return rows


def dialect_ops() -> list[str]:
    from jaxlib.mlir.dialects import chlo, stablehlo

    names = set()
    for mod in (stablehlo, chlo):
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            name = getattr(cls, "OPERATION_NAME", None)
            if isinstance(name, str):
                names.add(name)
    return sorted(names)


def classify(root: Path = ROOT) -> list[tuple[str, str, str]]:
    """(op, status, reason) per dialect op; status converted/refused/unknown."""
    known = ops_def(root)
    out = []
    for op in dialect_ops():
        conv = known.get(op)
        if conv is None:
            out.append((op, "unknown", REASONS.get(op, "")))
        elif conv.startswith("lower_unsupported"):
            out.append((op, "refused", REASONS.get(op, "")))
        else:
            out.append((op, "converted", PARTIAL.get(op, "")))
    return out


def main(argv: list[str]) -> int:
    rows = classify()
    missing = [op for op, status, why in rows if status != "converted" and not why]
    if "--check" in argv:
        for op in missing:
            print(f"{op}: refused without a reason in tools/refused_ops.py")
        return 1 if missing else 0
    counts = {}
    for _, status, _ in rows:
        counts[status] = counts.get(status, 0) + 1
    print("| op | status | why / what still refuses |")
    print("|---|---|---|")
    for op, status, why in rows:
        print(f"| {op} | {status} | {why} |")
    print()
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f" of {len(rows)} ops")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
