"""The example models, NCHW at the graph boundary, and the main job.

* Every example of jax2onnx v0.1.0's Examples table is registered with its
  four variants (``hlo2onnx/components/examples.py``); each variant is a
  case of ``test_components.py`` there (convert, onnx.checker full check,
  expected high-level ops, value_info true at run time, onnxruntime against
  JAX at float32 rtol = atol = 1e-5, "B" at 1, 3 and 8).  Here: the
  registrations themselves, the number of Transposes left in each converted
  model, and the ONNX files in docs/onnx that the README links to.
* ``inputs_as_nchw`` / ``outputs_as_nchw``: what the graph's inputs and
  outputs look like, and that the boundary Transposes cancel against those
  around Conv and pools, through elementwise ops, LayerNorm and softmax.
* ``python -m hlo2onnx.examples``, the README's first command.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import hlo2onnx
from hlo2onnx import registry
from hlo2onnx.components import examples as ex
from util import check_model, convert_and_check, dims_of, op_types

pytest.importorskip("flax")
pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]

# The test cases of the seed's Examples table.
SEED_EXAMPLES = ["mnist_cnn_1", "mnist_cnn_2", "mnist_conv_embedding", "mlp", "mlp_block",
                 "patch_embedding", "transformer_block", "mnist_vit_conv", "mnist_vit_patch"]

# The most Transposes each converted example may keep, whatever the variant:
# what its layout changes need once the boundary Transposes and those around
# each Conv and pool have cancelled.
ATTENTION = 4  # per attention: q, k and v to heads-first, the result back
TRANSPOSE_BUDGET = {
    # none: Flax flattens in NHWC order, and the NCHW -> NHWC Transpose before
    # the flatten is folded into the rows of the next Dense's weight
    # (passes/matmul_layout.c)
    "mnist_cnn_1": 0,
    "mnist_cnn_2": 0,  # the same; the NHWC LayerNorms need none of their own
    "mnist_conv_embedding": 1,  # once, for the NHWC tokens
    "mlp": 0,
    "mlp_block": 0,
    # The patch transpose only: NCHW -> NHWC of a 1-channel image moves a
    # unit axis, a reshape.
    "patch_embedding": 1,
    "transformer_block": ATTENTION,
    "mnist_vit_conv": 1 + 2 * ATTENTION,
    "mnist_vit_patch": 1 + 2 * ATTENTION,
}

# Transposes the converter leaves beyond the budget, known and not yet
# removed (none today).  The test fails when a change adds a Transpose, and
# asks for this table to shrink when one goes away.
KNOWN_EXTRA: dict[str, int] = {}


def _example_cases():
    return [(c, k) for c, k in registry.all_cases("example")]


def _result(name):
    comp, case = registry.find_case(name)
    return registry.run_case(comp, case)


def _transpose_report(model) -> str:
    """Each Transpose with its producer, perm and consumers."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers = collections.defaultdict(list)
    for n in model.graph.node:
        for i in n.input:
            consumers[i].append(n.op_type)
    lines = []
    for n in model.graph.node:
        if n.op_type == "Transpose":
            src = producer.get(n.input[0])
            perm = list(onnx.helper.get_attribute_value(n.attribute[0]))
            lines.append(f"  {src.op_type if src else n.input[0]} -> Transpose {perm} -> "
                         f"{', '.join(consumers[n.output[0]]) or 'graph output'}")
    return "\n".join(lines)


# ---- the registrations -------------------------------------------------------


def test_every_seed_example_has_four_variants():
    names = collections.defaultdict(set)
    for _comp, case in _example_cases():
        base, variant = ex.split_case_name(case.name)
        assert variant is not None, f"{case.name}: not a variant name"
        names[base].add(variant.code)
        assert case.options.get("shape_info") == variant.shape_info, case.name
        assert case.dynamic == variant.dynamic, case.name
    assert sorted(names) == sorted(SEED_EXAMPLES)
    for base, codes in names.items():
        assert codes == {"00", "10", "01", "11"}, base


def test_variants_of_one_example_are_the_same_model():
    """The four variants of an example build the same weights (fixed seeds),
    so its four ONNX files differ only in their shapes."""
    import jax

    from flax import nnx

    for name in ("mlp", "mnist_vit_conv"):
        states = []
        for v in ex.VARIANTS:
            _, case = registry.find_case(f"{name}_{v.code}")
            states.append(jax.tree_util.tree_leaves(nnx.state(case.factory(), nnx.Param)))
        for other in states[1:]:
            assert len(other) == len(states[0])
            for a, b in zip(states[0], other):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name", SEED_EXAMPLES)
def test_transposes_left(name):
    """The boundary Transposes (inputs_as_nchw) and the ones around each Conv
    and pool cancel or move through elementwise ops: what remains is what
    the model's own layout changes need (TRANSPOSE_BUDGET)."""
    for code in ("00", "01"):
        res = _result(f"{name}_{code}")
        assert res.model is not None, res.report()
        n = op_types(res.model).count("Transpose")
        allowed = TRANSPOSE_BUDGET[name] + KNOWN_EXTRA.get(name, 0)
        assert n <= allowed, (
            f"{name}_{code}: {n} Transposes, at most {TRANSPOSE_BUDGET[name]} needed "
            f"(+{KNOWN_EXTRA.get(name, 0)} known extra):\n" + _transpose_report(res.model))
        assert n == allowed, (
            f"{name}_{code}: {n} Transposes, fewer than the {allowed} expected: "
            "lower KNOWN_EXTRA")


# ---- value_info checks catch what they should ------------------------------------


def _conv_relu():
    from flax import nnx

    return ex.materialize(lambda: nnx.Sequential(
        nnx.Conv(1, 4, (3, 3), rngs=nnx.Rngs(0)), nnx.relu,
        nnx.Conv(4, 2, (3, 3), strides=(2, 2), rngs=nnx.Rngs(1))))


def test_value_info_check_catches_a_wrong_dimension():
    model = hlo2onnx.to_onnx(_conv_relu(), [("B", 8, 8, 1)], shape_info=True,
                             inputs_as_nchw=True)
    check = ex.value_info_true()
    assert check(model) == []
    assert len(model.graph.value_info) > 0
    bad = onnx.ModelProto()
    bad.CopyFrom(model)
    vi = bad.graph.value_info[0]
    dim = vi.type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_value = 3  # the batch: right only at B = 3
    problems = check(bad)
    assert any(vi.name in p and "says 3, is 1" in p for p in problems), problems
    assert any(vi.name in p and "says 3, is 8" in p for p in problems), problems
    assert not any("B=3" in p for p in problems), problems


def test_value_info_check_catches_a_wrong_symbol():
    model = hlo2onnx.to_onnx(_conv_relu(), [("B", 8, 8, 1)], shape_info=True,
                             inputs_as_nchw=True)
    bad = onnx.ModelProto()
    bad.CopyFrom(model)
    dim = bad.graph.value_info[0].type.tensor_type.shape.dim[2]  # H = 8, not B
    dim.Clear()
    dim.dim_param = "B"
    assert ex.value_info_true()(bad)
    # An unknown dimension is never wrong; a named one must stay one size.
    dim.Clear()
    assert ex.value_info_true()(bad) == []


# ---- NCHW at the graph boundary -------------------------------------------------


def _nnx():
    from flax import nnx

    return nnx


def _count(model, op):
    return op_types(model).count(op)


def test_nchw_input_and_output_shapes():
    nnx = _nnx()
    conv = ex.materialize(lambda: nnx.Conv(3, 5, (3, 3), strides=(2, 2), rngs=nnx.Rngs(0)))
    model = convert_and_check(conv, [("B", 9, 9, 3)], inputs_as_nchw=True, outputs_as_nchw=True)
    assert dims_of(model.graph.input[0]) == ["B", 3, 9, 9]
    assert dims_of(model.graph.output[0]) == ["B", 5, 5, 5]
    assert op_types(model) == ["Conv"]


def test_nchw_by_index_and_name():
    nnx = _nnx()
    conv = ex.materialize(lambda: nnx.Conv(2, 4, (3, 3), rngs=nnx.Rngs(0)))

    def f(x, scale, y):
        return conv(x) * scale, y + 1.0

    inputs = [("B", 6, 6, 2), (4,), ("B", 3, 2)]
    for kw in ({"inputs_as_nchw": [0], "outputs_as_nchw": [0]},
               {"inputs_as_nchw": ["image"], "outputs_as_nchw": ["features"]},
               {"inputs_as_nchw": True, "outputs_as_nchw": True}):
        model = hlo2onnx.to_onnx(f, inputs, input_names=["image", "scale", "y"],
                                 output_names=["features", "y1"], **kw)
        check_model(model)
        # True means every input and output of rank >= 3: y too.
        want_y = ["B", 2, 3] if kw["inputs_as_nchw"] is True else ["B", 3, 2]
        assert [dims_of(i) for i in model.graph.input] == [["B", 2, 6, 6], [4], want_y]
        assert dims_of(model.graph.output[0]) == ["B", 4, 6, 6]
        result = hlo2onnx.verify(f, model, inputs, **kw)
        assert result.ok, str(result)


@pytest.mark.parametrize("option,message", [
    ({"inputs_as_nchw": [1]}, "input 1 has rank 2"),
    ({"inputs_as_nchw": ["nope"]}, "no input named 'nope'"),
    ({"inputs_as_nchw": [2]}, "input 2 does not exist"),
    ({"outputs_as_nchw": [0]}, "output 0 has rank 2"),
])
def test_nchw_option_errors(option, message):
    with pytest.raises(ValueError, match=message):
        hlo2onnx.to_onnx(lambda x, y: (x + 1.0)[:, 0, 0, :] * y, [(2, 4, 4, 3), (2, 3)],
                         **option)


def test_nchw_transposes_cancel_through_pools_and_activations():
    """NCHW in and out: Conv -> relu -> max_pool -> Conv -> gelu -> avg_pool
    keeps no Transpose at all."""
    nnx = _nnx()

    def make():
        class Net(nnx.Module):
            def __init__(self):
                self.c1 = nnx.Conv(3, 8, (3, 3), rngs=nnx.Rngs(0))
                self.c2 = nnx.Conv(8, 4, (3, 3), rngs=nnx.Rngs(1))

            def __call__(self, x):
                x = nnx.max_pool(nnx.relu(self.c1(x)), (2, 2), strides=(2, 2))
                return nnx.avg_pool(nnx.gelu(self.c2(x)), (2, 2), strides=(2, 2))

        return Net()

    model = convert_and_check(ex.materialize(make), [("B", 8, 8, 3)], inputs_as_nchw=True,
                              outputs_as_nchw=True)
    assert _count(model, "Transpose") == 0, _transpose_report(model)
    assert {"Conv", "MaxPool", "AveragePool", "Relu", "Gelu"} <= set(op_types(model))


def test_nchw_transposes_move_through_layernorm():
    """A LayerNorm over each whole (H, W, C) map, as in the seed's CNN,
    between two NCHW Convs: normalised in NCHW, with Scale and B
    transposed; no Transpose remains."""
    nnx = _nnx()

    def make():
        class Net(nnx.Module):
            def __init__(self):
                self.c1 = nnx.Conv(1, 4, (3, 3), rngs=nnx.Rngs(0))
                self.norm = nnx.LayerNorm(6 * 6 * 4, reduction_axes=(1, 2, 3),
                                          feature_axes=(1, 2, 3), rngs=nnx.Rngs(0))
                self.c2 = nnx.Conv(4, 2, (3, 3), rngs=nnx.Rngs(1))

            def __call__(self, x):
                return self.c2(nnx.relu(self.norm(self.c1(x))))

        return Net()

    model = convert_and_check(ex.materialize(make), [("B", 6, 6, 1)], inputs_as_nchw=True,
                              outputs_as_nchw=True)
    assert _count(model, "Transpose") == 0, _transpose_report(model)
    assert _count(model, "LayerNormalization") == 1


def test_nchw_transposes_move_through_softmax():
    """softmax over the channels of an NHWC map is Softmax(axis=1) in NCHW."""
    nnx = _nnx()
    conv = ex.materialize(lambda: nnx.Conv(3, 6, (1, 1), rngs=nnx.Rngs(0)))
    model = convert_and_check(lambda x: nnx.softmax(conv(x), axis=-1), [("B", 5, 5, 3)],
                              inputs_as_nchw=True, outputs_as_nchw=True)
    assert _count(model, "Transpose") == 0, _transpose_report(model)
    softmax = [n for n in model.graph.node if n.op_type == "Softmax"]
    assert len(softmax) == 1
    assert onnx.helper.get_attribute_value(softmax[0].attribute[0]) == 1


# ---- the ONNX files the examples table (docs/components.md) links to -------------------


def _readme_examples_table() -> str:
    text = (ROOT / "docs" / "components.md").read_text(encoding="utf-8")
    start, end = "<!-- EXAMPLES TABLE START -->", "<!-- EXAMPLES TABLE END -->"
    return text[text.index(start):text.index(end)]


def test_readme_links_every_passing_variant_to_its_file():
    table = _readme_examples_table()
    links = {name: rel for rel, name in re.findall(r"\]\((onnx/(\w+)\.onnx) \"", table)}
    for comp, case in _example_cases():
        res = registry.run_case(comp, case)
        if res.ok:
            assert case.name in links, f"{case.name} passes but docs/components.md does not link it"
    for rel in links.values():
        assert (ROOT / "docs" / rel).is_file(), f"docs/components.md links {rel}, which does not exist"


def test_onnx_files_are_current():
    """docs/onnx holds what ``python -m hlo2onnx.tables`` writes: each
    passing variant's model, with the nodes and signature of today's
    conversion, and nothing else."""
    folder = ROOT / ex.ONNX_DIR
    expected = set()
    stale = []
    for comp, case in _example_cases():
        res = registry.run_case(comp, case)
        if not res.ok:
            continue
        path = ROOT / ex.onnx_file(case.name)
        expected.add(path.name)
        if not path.is_file():
            stale.append(f"{path.name}: missing")
            continue
        saved = onnx.load(str(path))
        check_model(str(path))
        if op_types(saved) != op_types(res.model) or \
                [dims_of(v) for v in [*saved.graph.input, *saved.graph.output]] != \
                [dims_of(v) for v in [*res.model.graph.input, *res.model.graph.output]] or \
                len(saved.graph.value_info) != len(res.model.graph.value_info):
            stale.append(f"{path.name}: differs from today's conversion")
    extra = sorted(p.name for p in folder.glob("*.onnx") if p.name not in expected)
    stale += [f"{name}: not a passing variant" for name in extra]
    assert not stale, ("docs/onnx is out of date; run `python -m hlo2onnx.tables`:\n  "
                       + "\n  ".join(stale))
    total = sum(p.stat().st_size for p in folder.glob("*.onnx"))
    assert total < 4 << 20, f"docs/onnx holds {total} bytes; keep the examples small"


# ---- the main job ---------------------------------------------------------------------


def test_main_job():
    """The README's first command: train on scikit-learn's digits, convert,
    verify, and report both accuracies."""
    pytest.importorskip("sklearn")
    pytest.importorskip("optax")
    proc = subprocess.run([sys.executable, "-m", "hlo2onnx.examples"], capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "verified    OK" in out, out
    m = re.search(r"accuracy\s+([\d.]+)%\s+([\d.]+)%", out)
    assert m, out
    jax_acc, ort_acc = float(m.group(1)), float(m.group(2))
    assert jax_acc == ort_acc and jax_acc >= 90.0, out
    m = re.search(r"same class as JAX\s+(\d+) of (\d+)", out)
    assert m and m.group(1) == m.group(2), out
    assert re.search(r"nodes\s+\d+: .*Conv 2", out), out
    assert re.search(r"\d+(\.\d+)? KiB", out), out
