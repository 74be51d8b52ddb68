"""Generates src/onnx/ort_kernels.def: which element types onnxruntime's CPU
execution provider has a kernel for, per ONNX op of src/onnx/onnx_ops.def and
per opset the converter writes (17..23).

    python tools/ort_kernels.py            # rewrites src/onnx/ort_kernels.def
    python tools/ort_kernels.py --check    # exit 1 when its rows are out of date

It probes the installed onnxruntime instead of reading its
docs/OperatorKernels.md: for every (op, opset, element type) it builds a
model of one node whose inputs are graph inputs (so nothing can be folded
away), with graph optimisations off, and records whether a CPU session can
be created.  onnxruntime looks the kernel of each node up when it creates a
session ("Could not find an implementation for Pad(19) node"), so this is
exactly the check a converted model goes through; it is re-run when
onnxruntime is upgraded.  Kernels that are registered for a type and then
refuse it when they run are not seen here: tests/python/test_kernels.py runs
every converter's ops on every element type JAX has.

The element type tested is the one of the op's first type constraint with a
choice of types (T of Pad's data, T of Where's X and Y, T1 of Cast); its
other inputs get that type where their schema allows it, else int64 or float.
The rows also say which input and output slots carry that constraint, which
is what the pass that moves an unsupported node to a wider type
(passes/kernels.c) casts.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

import onnx
import onnx.defs
import onnxruntime as ort
from onnx import TensorProto, helper

ROOT = pathlib.Path(__file__).resolve().parent.parent
OPS_DEF = ROOT / "src" / "onnx" / "onnx_ops.def"
OUT = ROOT / "src" / "onnx" / "ort_kernels.def"
OPSETS = range(17, 24)

# The element types JAX arrays can have that ONNX can hold (short name as in
# base/types.c's et_mlir_name, TensorProto number = ElemType).
TYPES = {
    "bool": TensorProto.BOOL, "i8": TensorProto.INT8, "i16": TensorProto.INT16,
    "i32": TensorProto.INT32, "i64": TensorProto.INT64, "u8": TensorProto.UINT8,
    "u16": TensorProto.UINT16, "u32": TensorProto.UINT32, "u64": TensorProto.UINT64,
    "f16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16, "f32": TensorProto.FLOAT,
    "f64": TensorProto.DOUBLE,
}
TYPE_OF_STR = {
    "tensor(bool)": TensorProto.BOOL, "tensor(int8)": TensorProto.INT8,
    "tensor(int16)": TensorProto.INT16, "tensor(int32)": TensorProto.INT32,
    "tensor(int64)": TensorProto.INT64, "tensor(uint8)": TensorProto.UINT8,
    "tensor(uint16)": TensorProto.UINT16, "tensor(uint32)": TensorProto.UINT32,
    "tensor(uint64)": TensorProto.UINT64, "tensor(float16)": TensorProto.FLOAT16,
    "tensor(bfloat16)": TensorProto.BFLOAT16, "tensor(float)": TensorProto.FLOAT,
    "tensor(double)": TensorProto.DOUBLE,
}
# Ops whose kernel takes any type (their bodies are graphs): not probed.
ANY_TYPE = {"If", "Loop"}
# Required attributes whose default (default_attr) a probe would not accept.
REQUIRED_ATTRS = {"Cast": {"to": TensorProto.FLOAT}, "Concat": {"axis": 0},
                  "BitShift": {"direction": "LEFT"}}
VARIADIC_COPIES = 2
LAST_SLOT = 15  # the masks' bit for "this slot and every later one" (variadic)


def onnx_ops() -> list[str]:
    return re.findall(r"^ONNX_OP\((\w+),", OPS_DEF.read_text(), re.M)


def schema(op: str, opset: int):
    try:
        return onnx.defs.get_schema(op, opset, "")
    except onnx.defs.SchemaError:
        return None


def constraints(s) -> dict[str, list[int]]:
    return {t.type_param_str: [TYPE_OF_STR[x] for x in t.allowed_type_strs if x in TYPE_OF_STR]
            for t in s.type_constraints}


def key_constraint(s) -> str | None:
    """The type parameter whose element type selects the kernel."""
    cons = constraints(s)
    for formal in list(s.inputs) + list(s.outputs):
        if formal.type_str in cons and len(cons[formal.type_str]) > 1:
            return formal.type_str
    # one type only (And's bool): probed, for the table's sake; nothing to move
    return next((f.type_str for f in s.inputs if f.type_str in cons), None)


def slot_mask(formals, key: str) -> int:
    mask = 0
    for i, f in enumerate(formals):
        if f.type_str != key:
            continue
        variadic = f.option == onnx.defs.OpSchema.FormalParameterOption.Variadic
        mask |= ((1 << (LAST_SLOT + 1)) - (1 << i)) if variadic else 1 << i
    return mask


def fixed_type(s, type_str: str, et: int) -> int:
    if type_str in TYPE_OF_STR:
        return TYPE_OF_STR[type_str]
    allowed = constraints(s)[type_str]
    if et in allowed:  # a second float type (RMSNormalization's scale) as the first
        return et
    for pref in (TensorProto.INT64, TensorProto.FLOAT, TensorProto.BOOL):
        if pref in allowed:
            return pref
    return allowed[0]


def probe(op: str, opset: int, s, key: str, et: int) -> bool:
    inputs, names = [], []
    for i, f in enumerate(s.inputs):
        if f.option == onnx.defs.OpSchema.FormalParameterOption.Optional:
            continue
        copies = VARIADIC_COPIES if f.option == onnx.defs.OpSchema.FormalParameterOption.Variadic else 1
        for k in range(copies):
            name = f"in{i}_{k}"
            t = et if f.type_str == key else fixed_type(s, f.type_str, et)
            inputs.append(helper.make_tensor_value_info(name, t, None))
            names.append(name)
    outputs = [onnx.ValueInfoProto(name=f"out{i}") for i in range(len(s.outputs))
               if s.outputs[i].option != onnx.defs.OpSchema.FormalParameterOption.Optional
               or i == 0]
    attrs = {name: default_attr(a) for name, a in s.attributes.items() if a.required}
    attrs.update(REQUIRED_ATTRS.get(op, {}))
    node = helper.make_node(op, names, [o.name for o in outputs], **attrs)
    graph = helper.make_graph([node], "probe", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return True
    except Exception as e:
        msg = str(e)
        if "Could not find an implementation" in msg or "NOT_IMPLEMENTED" in msg:
            return False
        if "Type Error" in msg:
            return False  # an op without a kernel whose function body refuses the type
        if "Exception during initialization" in msg:
            return True  # the kernel exists; its constructor wants other attributes
        raise RuntimeError(f"probe of {op}({opset}) on {et} failed otherwise: {msg}") from e


def default_attr(a):
    kind = onnx.defs.OpSchema.AttrType
    return {kind.INT: 0, kind.INTS: [1], kind.FLOAT: 0.0, kind.FLOATS: [0.0],
            kind.STRING: ""}[a.type]


def type_mask(types) -> int:
    return sum(1 << t for t in types)


def names_of(mask: int) -> str:
    return " ".join(n for n, t in TYPES.items() if mask >> t & 1)


def generate() -> str:
    all_types = type_mask(TYPES.values())
    rows = []
    for op in onnx_ops():
        latest = next((schema(op, o) for o in reversed(OPSETS) if schema(op, o)), None)
        key = key_constraint(latest) if latest is not None and op not in ANY_TYPE else None
        masks = []
        for opset in OPSETS:
            s = schema(op, opset)
            if s is None:
                masks.append(0)
            elif op in ANY_TYPE or key is None:
                masks.append(all_types)
            else:
                k = key_constraint(s)
                allowed = constraints(s)[k]  # a type the schema refuses has no kernel either
                masks.append(type_mask(t for t in TYPES.values()
                                       if t in allowed and probe(op, opset, s, k, t)))
        movable = key is not None and len(constraints(latest)[key]) > 1
        in_mask = slot_mask(latest.inputs, key) if movable else 0
        out_mask = slot_mask(latest.outputs, key) if movable else 0
        missing = names_of(all_types & ~masks[-1]) if masks[-1] else "(no schema at 23)"
        rows.append(f"ORT_KERNEL({op + ',':22}0x{in_mask:04x}, 0x{out_mask:04x}, "
                    + ", ".join(f"0x{m:05x}" for m in masks)
                    + f")  /* 23 lacks: {missing or '-'} */")
    header = f"""/* ort_kernels.def - GENERATED by tools/ort_kernels.py from onnxruntime {ort.__version__}
 * (do not edit: re-run the generator after an onnxruntime upgrade).
 *
 * Which element types onnxruntime's CPU execution provider has a kernel
 * for, per op of onnx_ops.def (same rows, same order) and per opset:
 *
 *   ORT_KERNEL(Name, type inputs, type outputs, opset 17, 18, ..., 23)
 *
 * The opset columns are masks over ElemType numbers (bit ET_F32 = 1 << 1,
 * ...) of the types with a kernel, probed for the element types JAX arrays
 * can have ({" ".join(TYPES)}); 0 where the op does not exist at that opset.
 * The element type is the one of the op's first type constraint with a
 * choice (Pad's T, Where's T, Cast's T1); "type inputs" and "type outputs"
 * are the slots of that constraint (bit i = slot i; bit {LAST_SLOT} = slot {LAST_SLOT}
 * and every later one of a variadic op), 0 when the op allows one type only
 * (And: bool) or any (If, Loop).
 * Included by onnx/ops.c (onnx_has_kernel); passes/kernels.c reads it.
 */
"""
    return header + "\n".join(rows) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args()
    text = generate()
    if args.check:  # the rows, not the header naming the onnxruntime version
        def rows(t):
            return [line for line in t.splitlines() if line.startswith("ORT_KERNEL(")]
        if rows(OUT.read_text()) != rows(text):
            print(f"{OUT} is out of date: run python tools/ort_kernels.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
