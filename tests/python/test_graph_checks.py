"""The named graph checks of hlo2onnx.checks, on small hand-built graphs: the
component tests rely on them to say which fusion is missing, so they must
flag exactly the patterns they name."""

from __future__ import annotations

from onnx import TensorProto, helper

from hlo2onnx import checks

NCHW, NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


def _model(nodes, inputs=("x",), outputs=("y",), initializers=()):
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["B", 8, 8, 3]) for n in inputs]
    vo = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["B", 8, 8, 3]) for n in outputs]
    inits = [helper.make_tensor(n, TensorProto.FLOAT, [3], [0.0, 1.0, 2.0]) for n in initializers]
    return helper.make_model(helper.make_graph(nodes, "g", vi, vo, inits))


def _t(name, src, dst, perm):
    return helper.make_node("Transpose", [src], [dst], name=name, perm=perm)


def _conv(name, src, dst):
    return helper.make_node("Conv", [src, "w"], [dst], name=name)


def test_one_transpose_each_side_of_a_conv_passes():
    m = _model([_t("t0", "x", "a", NCHW), _conv("c", "a", "b"), _t("t1", "b", "y", NHWC)])
    assert checks.no_cancelling_transposes()(m) == []
    assert checks.transposes_at_boundary()(m) == []


def test_a_transpose_pair_between_two_convs_is_flagged():
    m = _model([_t("t0", "x", "a", NCHW), _conv("c1", "a", "b"), _t("t1", "b", "c", NHWC),
                helper.make_node("Relu", ["c"], ["d"], name="r"),
                _t("t2", "d", "e", NCHW), _conv("c2", "e", "f"), _t("t3", "f", "y", NHWC)])
    problems = checks.no_cancelling_transposes()(m)
    assert len(problems) == 1 and "t1" in problems[0] and "t2" in problems[0]
    assert checks.transposes_at_boundary()(m)


def test_transposes_that_do_not_cancel_pass():
    m = _model([_t("t0", "x", "a", NCHW), helper.make_node("Relu", ["a"], ["b"], name="r"),
                _t("t1", "b", "y", NCHW)])
    assert checks.no_cancelling_transposes()(m) == []


def test_two_transposes_in_a_row_are_flagged():
    m = _model([_t("t0", "x", "a", NCHW), _t("t1", "a", "y", [0, 1, 3, 2])])
    assert checks.no_cancelling_transposes()(m)


def test_bias_added_after_conv_is_flagged():
    m = _model([_t("t0", "x", "a", NCHW), _conv("c", "a", "b"), _t("t1", "b", "c", NHWC),
                helper.make_node("Add", ["c", "bias"], ["y"], name="add")],
               initializers=("bias",))
    assert checks.bias_folded_into("Conv")(m)
    folded = _model([_t("t0", "x", "a", NCHW),
                     helper.make_node("Conv", ["a", "w", "bias"], ["b"], name="c"),
                     _t("t1", "b", "y", NHWC)], initializers=("bias",))
    assert checks.bias_folded_into("Conv")(folded) == []


def test_op_presence_checks():
    m = _model([helper.make_node("Identity", ["x"], ["y"])])
    assert checks.only_ops("Identity")(m) == []
    assert checks.has_op("Gemm", "MatMul")(m)
    assert checks.no_ops("Identity")(m) == ["found Identity x1"]
    assert checks.no_ops("Dropout")(m) == []
