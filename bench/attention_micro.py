"""Which form of scaled dot-product attention onnxruntime's CPU provider runs
fastest (issue 12; passes/fuse_attention.c chose from these numbers).

One attention block of 4 heads of 64 over q, k, v of [B, S, 256] (the
projections' output) with a padding mask [B, S], at S = 64 and 256, B = 1
and 8, in the forms a converter can emit:

* ``where2``: MatMul/Softmax/MatMul with the mask applied by Where before
  the Softmax and the probabilities zeroed by Where after it (what Keras
  writes, lowered as is);
* ``add_mul``, ``add_where``, ``add_nopost``: the mask additive (Add), the
  zeroing a Mul by the float mask, a Where, or none;
* ``att23_4d_bool``, ``att23_4d_add``: opset-23 ``Attention`` on
  [B, H, S, D] (after the Transposes) with a boolean or additive mask;
* ``att23_3d_add``: opset-23 ``Attention`` on the packed [B, S, H*D]
  tensors (``q_num_heads``), no Transpose at all.

onnxruntime's Attention kernel wants the mask's query axis in full
([B, 1, S, S]), so the Attention forms get it expanded (once per model in
a real graph, not timed here).

    python bench/attention_micro.py [rounds]

Prints the median ms per call of each form; 2 intra-op threads, interleaved
rounds (the machine may be shared: compare numbers of one run).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h

H, D = 4, 64
HD = H * D


def _session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _model(nodes, inputs, opset, inits):
    g = h.make_graph(nodes, "attention", inputs, [h.make_tensor_value_info("y", T.FLOAT, None)],
                     list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def _const(name, arr, t=T.FLOAT):
    arr = np.asarray(arr)
    return h.make_tensor(name, t, list(arr.shape), arr.ravel().tolist())


def forms(S):
    vi = h.make_tensor_value_info
    ins = [vi("q", T.FLOAT, ["B", S, HD]), vi("k", T.FLOAT, ["B", S, HD]),
           vi("v", T.FLOAT, ["B", S, HD]), vi("m", T.BOOL, ["B", S]),
           vi("mA", T.FLOAT, ["B", 1, S, S]), vi("mB", T.BOOL, ["B", 1, S, S])]
    inits = [_const("sh4", [0, 0, H, D], T.INT64), _const("sh3", [0, 0, HD], T.INT64),
             _const("ax12", [1, 2], T.INT64), _const("sc", np.float32(1 / np.sqrt(D))),
             _const("neg", np.float32(-1e9)), _const("zero", np.float32(0))]
    n = h.make_node
    pre = [n("Reshape", ["q", "sh4"], ["q4"]), n("Reshape", ["k", "sh4"], ["k4"]),
           n("Reshape", ["v", "sh4"], ["v4"]), n("Mul", ["q4", "sc"], ["q4s"]),
           n("Transpose", ["q4s"], ["qt"], perm=[0, 2, 1, 3]),
           n("Transpose", ["v4"], ["vt"], perm=[0, 2, 1, 3]),
           n("Unsqueeze", ["m", "ax12"], ["m4"])]
    scores = [n("Transpose", ["k4"], ["kt"], perm=[0, 2, 3, 1]), n("MatMul", ["qt", "kt"], ["s"])]
    post = [n("MatMul", ["p2", "vt"], ["o"]), n("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
            n("Reshape", ["ot", "sh3"], ["y"])]
    additive = n("Where", ["m4", "zero", "neg"], ["am"])
    out = {
        "where2": pre + scores + [
            n("Where", ["m4", "s", "neg"], ["s2"]), n("Softmax", ["s2"], ["p"], axis=-1),
            n("Where", ["m4", "p", "zero"], ["p2"])] + post,
        "add_mul": pre + scores + [
            additive, n("Cast", ["m4"], ["mf"], to=1), n("Add", ["s", "am"], ["s2"]),
            n("Softmax", ["s2"], ["p"], axis=-1), n("Mul", ["p", "mf"], ["p2"])] + post,
        "add_where": pre + scores + [
            additive, n("Add", ["s", "am"], ["s2"]), n("Softmax", ["s2"], ["p"], axis=-1),
            n("Where", ["m4", "p", "zero"], ["p2"])] + post,
        "add_nopost": pre + scores + [
            additive, n("Add", ["s", "am"], ["s2"]), n("Softmax", ["s2"], ["p2"], axis=-1)] + post,
        "att23_4d_bool": pre + [
            n("Transpose", ["k4"], ["kt"], perm=[0, 2, 1, 3]),
            n("Attention", ["qt", "kt", "vt", "mB"], ["o"], scale=1.0)] + post[1:],
        "att23_4d_add": pre + [
            n("Transpose", ["k4"], ["kt"], perm=[0, 2, 1, 3]),
            n("Attention", ["qt", "kt", "vt", "mA"], ["o"], scale=1.0)] + post[1:],
        "att23_3d_add": [n("Attention", ["q", "k", "v", "mA"], ["y"], q_num_heads=H,
                           kv_num_heads=H, scale=float(1 / np.sqrt(D)))],
    }
    return {name: _session(_model(nodes, ins, 23 if name.startswith("att") else 20, inits))
            for name, nodes in out.items()}


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    rng = np.random.default_rng(0)
    for S in (64, 256):
        sessions = forms(S)
        for B in (1, 8):
            q, k, v = (rng.standard_normal((B, S, HD), dtype=np.float32) for _ in range(3))
            pm = np.ones((B, S), bool)
            pm[1::2, 3 * S // 4:] = False
            feeds = {"q": q, "k": k, "v": v, "m": pm,
                     "mA": np.broadcast_to(np.where(pm, 0, -1e9).astype(np.float32)[:, None, None, :],
                                           (B, 1, S, S)).copy(),
                     "mB": np.broadcast_to(pm[:, None, None, :], (B, 1, S, S)).copy()}
            times = {name: [] for name in sessions}
            for r in range(rounds):
                for name, s in (list(sessions.items()) if r % 2 else list(sessions.items())[::-1]):
                    f = {i.name: feeds[i.name] for i in s.get_inputs()}
                    s.run(None, f)
                    time.sleep(0.01)
                    s.run(None, f)
                    t0, calls = time.perf_counter(), 0
                    while calls < 5 or time.perf_counter() - t0 < 0.05:
                        t = time.perf_counter()
                        s.run(None, f)
                        times[name].append(time.perf_counter() - t)
                        calls += 1
            print(f"S={S} B={B} " + " ".join(f"{k}={np.median(t) * 1e3:.3f}"
                                            for k, t in times.items()), flush=True)


if __name__ == "__main__":
    main()
