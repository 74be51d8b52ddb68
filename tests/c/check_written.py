#!/usr/bin/env python3
"""check_written.py - the onnx side of test_write.

test_write (tests/c/test_write.c) writes ONNX files with the C writer and a
manifest.json that says, straight from the OModel it built, what each file
must contain.  This script parses every file with the `onnx` package and
compares each field: model header, opset imports, IR version, graph and
node names, inputs and outputs with their types and dims (values, params,
unknown), attributes of every kind (float bits, int64 extremes, bytes),
initializers and tensor attributes (dims, types, raw bytes), value_info,
and the external data: which tensors moved out, 4096-byte aligned offsets,
lengths, tight layout with zero padding, the bytes at each offset.  It also
checks that nothing unexpected is set in any message, runs onnx.checker,
loads external data with onnx's own loader, and runs the runnable model in
onnxruntime.

Usage: check_written.py DIR      Exit: 0 ok, 1 failures, 77 onnx missing.
"""
import json
import os
import sys

try:
    import numpy as np
    import onnx
    from onnx import AttributeProto, TensorProto
    from onnx.external_data_helper import _get_all_tensors
except ImportError:
    print("check_written.py: onnx or numpy not installed", file=sys.stderr)
    sys.exit(77)

ALIGN = 4096
errors = []


def expect(cond, where, what):
    if not cond:
        errors.append(f"{where}: {what}")
    return cond


def fields(msg):
    return {f.name for f, _ in msg.ListFields()}


def only_fields(msg, allowed, where):
    extra = fields(msg) - set(allowed)
    expect(not extra, where, f"unexpected fields {sorted(extra)}")


def f32_bits(x):
    return int(np.array([x], dtype=np.float64).astype(np.float32).view(np.uint32)[0])


def default_domain(d):
    return d in (None, "", "ai.onnx")


# ---- IR versions ------------------------------------------------------------

def introduced_by(opset):
    """The VERSION_TABLE row of the release that introduced an ai.onnx opset."""
    for row in onnx.helper.VERSION_TABLE:
        if row[2] == opset:
            return row
    return None


def check_ir_table(table):
    newest = max(onnx.helper.VERSION_TABLE, key=lambda r: r[2])
    for opset, ir, ml in table:
        row = introduced_by(opset)
        where = f"ir table opset {opset}"
        if row is None and opset < newest[2]:
            continue  # opsets 2-4 were never released
        if row is None:
            row = newest
        else:
            want = onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
            expect(ir == want, where, f"ir_version {ir}, find_min_ir_version_for says {want}")
        expect(ir == row[1], where, f"ir_version {ir}, VERSION_TABLE says {row[1]}")
        expect(ml == row[3], where, f"ai.onnx.ml opset {ml}, VERSION_TABLE says {row[3]}")


# ---- one written file -------------------------------------------------------

class FileCheck:
    def __init__(self, root, case, spec, ir_table):
        self.root = root
        self.case = case
        self.spec = spec
        self.ext_min = case["external_min"]
        self.data_file = case["data_file"]
        self.data = None
        if self.data_file:
            path = os.path.join(root, self.data_file)
            self.data_size = os.path.getsize(path)
            if "nodata" not in case["checks"]:
                with open(path, "rb") as f:
                    self.data = f.read()
        self.layout = {}  # (offset, length)
        self.ml = {o: ml for o, _, ml in ir_table}
        self.n_external = 0

    def is_external(self, t):
        return self.ext_min > 0 and t["nbytes"] > 0 and t["nbytes"] >= self.ext_min

    def tensor(self, T, t, where):
        where = f"{where} tensor {T['name']!r}"
        expect(t.name == T["name"], where, f"name {t.name!r}")
        expect(t.data_type == T["data_type"], where, f"data_type {t.data_type}")
        expect(list(t.dims) == T["dims"], where, f"dims {list(t.dims)} != {T['dims']}")
        if self.is_external(T):
            self.n_external += 1
            only_fields(t, ["dims", "data_type", "name", "external_data", "data_location"], where)
            expect(t.data_location == TensorProto.EXTERNAL, where, "not external")
            kv = [(e.key, e.value) for e in t.external_data]
            keys = [k for k, _ in kv]
            if not expect(keys == ["location", "offset", "length"], where, f"external keys {keys}"):
                return
            loc, off, length = kv[0][1], int(kv[1][1]), int(kv[2][1])
            expect(loc == self.data_file, where, f"location {loc!r}")
            expect(off % ALIGN == 0, where, f"offset {off} not aligned")
            expect(length == T["nbytes"], where, f"length {length}")
            expect(kv[1][1] == str(off) and kv[2][1] == str(length), where, "non-canonical numbers")
            self.layout[off] = length
            if self.data is not None and T["data"] is not None:
                got = self.data[off:off + length].hex()
                expect(got == T["data"], where, "external bytes differ")
        else:
            only_fields(t, ["dims", "data_type", "name", "raw_data"], where)
            if T["nbytes"] == 0:
                expect(not t.HasField("raw_data"), where, "empty tensor with raw_data")
            elif T["data"] is not None:
                expect(t.raw_data.hex() == T["data"], where, "raw_data differs")
            else:
                expect(len(t.raw_data) == T["nbytes"], where, "raw_data length")

    def value_info(self, V, v, where):
        where = f"{where} value {V['name']!r}"
        expect(v.name == V["name"], where, f"name {v.name!r}")
        only_fields(v, ["name", "type"], where)
        if V["elem_type"] == 0 and V["shape"] is None:
            expect(not v.HasField("type"), where, "unknown type written")
            return
        only_fields(v.type, ["tensor_type"], where)
        tt = v.type.tensor_type
        if V["elem_type"]:
            expect(tt.elem_type == V["elem_type"], where, f"elem_type {tt.elem_type}")
        else:
            expect(not tt.HasField("elem_type"), where, "elem_type written")
        if V["shape"] is None:
            expect(not tt.HasField("shape"), where, "shape of unknown rank written")
            return
        if not expect(tt.HasField("shape"), where, "no shape"):
            return
        dims = tt.shape.dim
        if not expect(len(dims) == len(V["shape"]), where, f"rank {len(dims)}"):
            return
        for i, (D, d) in enumerate(zip(V["shape"], dims)):
            w = f"{where} dim {i}"
            if isinstance(D, int):
                expect(d.WhichOneof("value") == "dim_value" and d.dim_value == D, w, str(d))
            elif isinstance(D, str):
                expect(d.WhichOneof("value") == "dim_param" and d.dim_param == D, w, str(d))
            else:
                expect(d.WhichOneof("value") is None, w, f"unknown dim written: {d}")
            only_fields(d, ["dim_value", "dim_param"], w)

    def attr(self, A, a, where):
        where = f"{where} attr {A['name']!r}"
        expect(a.name == A["name"], where, f"name {a.name!r}")
        expect(a.type == A["type"], where, f"type {a.type}")
        val = A["value"]
        kind = A["type"]
        field = {AttributeProto.FLOAT: "f", AttributeProto.INT: "i", AttributeProto.STRING: "s",
                 AttributeProto.TENSOR: "t", AttributeProto.GRAPH: "g",
                 AttributeProto.FLOATS: "floats", AttributeProto.INTS: "ints",
                 AttributeProto.STRINGS: "strings"}[kind]
        if kind == AttributeProto.FLOAT:
            expect(a.HasField("f") and f32_bits(a.f) == val, where, f"f {a.f}")
        elif kind == AttributeProto.INT:
            expect(a.HasField("i") and a.i == val, where, f"i {a.i}")
        elif kind == AttributeProto.STRING:
            expect(a.HasField("s") and a.s.hex() == val, where, f"s {a.s!r}")
        elif kind == AttributeProto.TENSOR:
            self.tensor(val, a.t, where)
        elif kind == AttributeProto.GRAPH:
            self.graph(val, a.g, where)
        elif kind == AttributeProto.FLOATS:
            expect([f32_bits(x) for x in a.floats] == val, where, f"floats {list(a.floats)}")
        elif kind == AttributeProto.INTS:
            expect(list(a.ints) == val, where, f"ints {list(a.ints)}")
        else:
            expect([s.hex() for s in a.strings] == val, where, f"strings {list(a.strings)}")
        only_fields(a, ["name", "type", field], where)

    def graph(self, G, g, where):
        where = f"{where}/{G['name']}"
        expect(g.name == G["name"], where, f"graph name {g.name!r}")
        only_fields(g, ["node", "name", "initializer", "input", "output", "value_info"], where)
        if expect(len(g.node) == len(G["nodes"]), where, f"{len(g.node)} nodes"):
            for i, (N, n) in enumerate(zip(G["nodes"], g.node)):
                w = f"{where} node {i} ({N['op_type']})"
                expect(n.op_type == N["op_type"], w, f"op_type {n.op_type!r}")
                if default_domain(N["domain"]):
                    expect(not n.HasField("domain"), w, f"domain {n.domain!r}")
                else:
                    expect(n.domain == N["domain"], w, f"domain {n.domain!r}")
                if N["name"] is None:
                    expect(not n.HasField("name"), w, "name written")
                else:
                    expect(n.name == N["name"], w, f"name {n.name!r}")
                expect(list(n.input) == N["inputs"], w, f"inputs {list(n.input)}")
                expect(list(n.output) == N["outputs"], w, f"outputs {list(n.output)}")
                only_fields(n, ["input", "output", "name", "op_type", "attribute", "domain"], w)
                if expect(len(n.attribute) == len(N["attrs"]), w, "attribute count"):
                    for A, a in zip(N["attrs"], n.attribute):
                        self.attr(A, a, w)
        for key, got, check in (("inits", g.initializer, self.tensor),
                                ("inputs", g.input, self.value_info),
                                ("outputs", g.output, self.value_info),
                                ("value_info", g.value_info, self.value_info)):
            want = G[key]
            if expect(len(got) == len(want), where, f"{len(got)} {key}, want {len(want)}"):
                for W, x in zip(want, got):
                    check(W, x, f"{where} {key}")

    def domains(self, G, out):
        for N in G["nodes"]:
            if not default_domain(N["domain"]) and N["domain"] not in out:
                out.append(N["domain"])
            for A in N["attrs"]:
                if A["type"] == AttributeProto.GRAPH:
                    self.domains(A["value"], out)
        return out

    def model(self, m):
        S = self.spec
        where = self.case["file"]
        only_fields(m, ["ir_version", "producer_name", "producer_version", "doc_string", "graph",
                        "opset_import"], where)
        expect(m.producer_name == S["producer_name"], where, f"producer_name {m.producer_name!r}")
        expect(m.producer_version == S["producer_version"], where, "producer_version")
        if S["doc"] is None:
            expect(not m.HasField("doc_string"), where, "doc_string written")
        else:
            expect(m.doc_string == S["doc"], where, "doc_string")
        want = [("", S["opset"])]
        for d in self.domains(S["graph"], []):
            want.append((d, self.ml[S["opset"]] if d == "ai.onnx.ml" else 1))
        got = [(o.domain, o.version) for o in m.opset_import]
        expect(got == want, where, f"opset_import {got} != {want}")
        min_ir = onnx.helper.find_min_ir_version_for(list(m.opset_import), ignore_unknown=True)
        expect(m.ir_version == min_ir, where, f"ir_version {m.ir_version}, want {min_ir}")
        self.graph(S["graph"], m.graph, where)

    def external_layout(self):
        where = f"{self.case['file']} external data"
        if not self.data_file:
            expect(self.n_external == 0, where, "external tensors without a data file")
            return
        end = 0
        for off in sorted(self.layout):
            want = (end + ALIGN - 1) // ALIGN * ALIGN
            expect(off == want, where, f"tensor at {off}, expected the next boundary {want}")
            if self.data is not None:
                expect(self.data[end:off] == bytes(off - end), where, "padding not zero")
            end = off + self.layout[off]
        expect(self.data_size == end, where, f"file is {self.data_size} bytes, layout ends at {end}")
        expect(self.n_external > 0, where, "no tensor went external")


def all_tensor_bytes(model):
    return {t.name: t.raw_data.hex() for t in _get_all_tensors(model)}


def spec_tensors(G, out):
    for T in G["inits"]:
        out[T["name"]] = T
    for N in G["nodes"]:
        for A in N["attrs"]:
            if A["type"] == AttributeProto.TENSOR:
                out[A["value"]["name"]] = A["value"]
            elif A["type"] == AttributeProto.GRAPH:
                spec_tensors(A["value"], out)
    return out


def run_model(path, io, where):
    try:
        import onnxruntime as ort
    except ImportError:
        print(f"check_written: {where}: onnxruntime not installed, not run", file=sys.stderr)
        return
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {}
    for name, F in io["feeds"].items():
        dtype = np.dtype(F.get("dtype", "float32"))
        feeds[name] = np.frombuffer(bytes.fromhex(F["hex"]), dtype=dtype).reshape(F["shape"])
    outs = sess.run(None, feeds)
    names = [o.name for o in sess.get_outputs()]
    for name, got in zip(names, outs):
        E = io["expect"][name]
        want = np.frombuffer(bytes.fromhex(E["hex"]), dtype=np.float32).reshape(E["shape"])
        expect(got.shape == want.shape and np.array_equal(got, want), f"{where} run {name}",
               f"got {got.ravel()[:8]}, want {want.ravel()[:8]}")


def check_functions(root, spec):
    """The model with local functions (test_functions in test_write.c)."""
    dom = "hlo2onnx.fn"
    for name in spec["files"]:
        where = name
        path = os.path.join(root, name)
        m = onnx.load(path, load_external_data=False)
        expect([(o.domain, o.version) for o in m.opset_import] == [("", 20), (dom, 1)], where,
               f"opset_import {m.opset_import}")
        # only the functions a node calls, in the order of their first call
        expect([f.name for f in m.functions] == ["twice", "scale_add"], where,
               f"functions {[f.name for f in m.functions]}")
        expect([(n.op_type, n.domain) for n in m.graph.node] ==
               [("twice", dom), ("scale_add", dom)], where, "call nodes")
        for f in m.functions:
            w = f"{where} function {f.name}"
            only_fields(f, ["name", "input", "output", "node", "opset_import", "domain"], w)
            expect(f.domain == dom, w, f"domain {f.domain!r}")
            expect([(o.domain, o.version) for o in f.opset_import] == [("", 20), (dom, 1)], w,
                   "opset_import")
            expect(list(f.input) == ["a", "b"], w, f"inputs {list(f.input)}")
        twice, scale_add = m.functions
        expect(list(twice.output) == ["o1", "o2"], where, "outputs of twice")
        expect([n.op_type for n in twice.node] == ["scale_add", "scale_add", "Neg"], where,
               "nodes of twice")
        expect([n.op_type for n in scale_add.node] == ["Constant", "Mul", "Add"], where,
               "nodes of scale_add")
        k = scale_add.node[0]
        expect(list(k.output) == ["k"] and k.attribute[0].name == "value" and
               k.attribute[0].type == AttributeProto.TENSOR, where, "Constant k")
        # inside the model even when the initializers go to the data file
        expect(len(k.attribute[0].t.raw_data) == 24 and not k.attribute[0].t.external_data,
               where, "k not inline")
        ext = bool(m.graph.initializer[0].external_data)
        expect(ext == (name == "fn_ext.onnx"), where, f"w external: {ext}")
        try:
            onnx.checker.check_model(path, full_check=True)
        except Exception as e:  # noqa: BLE001 - report any checker failure
            expect(False, where, f"onnx.checker: {e}")
        run_model(path, spec, where)


def check_case(root, manifest, case):
    path = os.path.join(root, case["file"])
    spec = manifest[case["model"]]
    checks = case["checks"].split()
    fc = FileCheck(root, case, spec, manifest["ir_versions"])
    m = onnx.load(path, load_external_data=False)
    fc.model(m)
    fc.external_layout()
    where = case["file"]
    if "checker" in checks:
        try:
            onnx.checker.check_model(path, full_check="full" in checks)
        except Exception as e:  # noqa: BLE001 - report any checker failure
            expect(False, where, f"onnx.checker: {e}")
    if fc.data_file and "nodata" not in checks:
        # onnx's own loader must find each tensor's bytes where we said.
        loaded = all_tensor_bytes(onnx.load(path))
        for name, T in spec_tensors(spec["graph"], {}).items():
            expect(loaded.get(name) == (T["data"] if T["nbytes"] else ""),
                   f"{where} onnx.load tensor {name!r}", "bytes differ after loading")
    if "run" in checks:
        run_model(path, manifest["run_io"], where)


def main():
    root = sys.argv[1]
    with open(os.path.join(root, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    check_ir_table(manifest["ir_versions"])
    before = len(errors)
    check_functions(root, manifest["functions"])
    print(f"check_written: functions: {'ok' if len(errors) == before else 'problems'}")
    for case in manifest["cases"]:
        before = len(errors)
        try:
            check_case(root, manifest, case)
        except Exception as e:  # noqa: BLE001 - a parse failure is a finding
            errors.append(f"{case['file']}: {type(e).__name__}: {e}")
        status = "ok" if len(errors) == before else f"{len(errors) - before} problems"
        print(f"check_written: {case['file']}: {status}")
    for e in errors[:200]:
        print("  " + e, file=sys.stderr)
    if errors:
        print(f"check_written: {len(errors)} problems", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
