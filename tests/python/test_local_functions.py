"""ONNX model-local functions (``to_onnx(..., local_functions=True)``, the
CLI's ``--local-functions``): a function JAX calls from several places is
lowered once into a FunctionProto, and each call is one node of domain
``hlo2onnx.fn``.  Every model is checked with onnx.checker (full_check) and
against JAX on random inputs; with the option off, calls stay inlined and the
model does not change."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest
from jax import lax

import hlo2onnx
from util import check_model, convert_and_check, run_cli, run_ort

DOMAIN = "hlo2onnx.fn"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def functions(model) -> list[str]:
    return [f.name for f in model.functions]


def calls(graph) -> list[str]:
    """The functions called by the nodes of a graph and its subgraphs."""
    out = []
    for n in graph.node:
        if n.domain == DOMAIN:
            out.append(n.op_type)
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                out += calls(a.g)
    return out


def function(model, name) -> onnx.FunctionProto:
    return next(f for f in model.functions if f.name == name)


def imports(model) -> dict:
    return {o.domain: o.version for o in model.opset_import}


def all_op_types(model) -> list[str]:
    out = []

    def walk(nodes):
        for n in nodes:
            out.append(n.op_type)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g.node)

    walk(model.graph.node)
    for f in model.functions:
        walk(f.node)
    return out


@jax.jit
def layer(x, w):
    return jnp.tanh(x @ w) + 1.0


def three_layers(x, w1, w2, w3):
    return layer(layer(layer(x, w1), w2), w3)


def test_function_called_three_times():
    inputs = [("B", 4), (4, 4), (4, 4), (4, 4)]
    model = convert_and_check(three_layers, inputs, local_functions=True)
    assert functions(model) == ["layer"]
    assert calls(model.graph) == ["layer"] * 3
    assert imports(model) == {"": 20, DOMAIN: 1}
    f = function(model, "layer")
    assert f.domain == DOMAIN
    assert {o.domain: o.version for o in f.opset_import}[""] == 20
    assert [n.op_type for n in f.node if n.op_type != "Constant"] == ["MatMul", "Tanh", "Add"]
    # JAX passes the symbolic batch B to @layer as an argument, which nothing
    # in it reads: dropped, with the Shape/Cast/Reshape computing it
    assert "jax.global_constant" in hlo2onnx.lower_to_text(three_layers, inputs).text
    assert len(f.input) == 2 and len(f.output) == 1
    assert [n.op_type for n in model.graph.node] == ["layer"] * 3
    assert all(len(n.input) == 2 for n in model.graph.node)


@pytest.mark.parametrize("opset", [17, 23])
def test_opsets(opset):
    model = convert_and_check(three_layers, [(2, 4), (4, 4), (4, 4), (4, 4)],
                              local_functions=True, opset=opset, batch_sizes=(1,))
    assert functions(model) == ["layer"]
    assert {o.domain: o.version for o in function(model, "layer").opset_import}[""] == opset


def test_option_off_inlines_and_changes_nothing(tmp_path):
    inputs = [(3, 4), (4, 4), (4, 4), (4, 4)]
    default = convert_and_check(three_layers, inputs, path=tmp_path / "default.onnx")
    assert not default.functions and not calls(default.graph)
    assert DOMAIN not in imports(default)
    assert [n.op_type for n in default.graph.node].count("Tanh") == 3
    off = hlo2onnx.to_onnx(three_layers, inputs, tmp_path / "off.onnx", local_functions=False)
    zero = hlo2onnx.to_onnx(three_layers, inputs, tmp_path / "zero.onnx", local_functions=0)
    assert not off.functions and not zero.functions
    data = (tmp_path / "default.onnx").read_bytes()
    assert (tmp_path / "off.onnx").read_bytes() == data
    assert (tmp_path / "zero.onnx").read_bytes() == data


def test_threshold():
    inputs = [(3, 4), (4, 4), (4, 4), (4, 4)]
    # three call sites: functions from 3 up, inlined from 4
    assert functions(hlo2onnx.to_onnx(three_layers, inputs, local_functions=3)) == ["layer"]
    assert not hlo2onnx.to_onnx(three_layers, inputs, local_functions=4).functions

    def once(x, w):
        return layer(x, w) * 2.0

    assert not hlo2onnx.to_onnx(once, [(3, 4), (4, 4)], local_functions=True).functions
    model = convert_and_check(once, [(3, 4), (4, 4)], local_functions=1, batch_sizes=(1,))
    assert functions(model) == ["layer"] and calls(model.graph) == ["layer"]
    with pytest.raises(ValueError):
        hlo2onnx.to_onnx(once, [(3, 4), (4, 4)], local_functions=-1)


def test_different_types_are_different_functions():
    # JAX lowers one jitted function per signature: @layer for (3,4)x(4,4)
    # called twice, @layer_0 for (5,3)x(3,3) called twice, @layer_1 once
    def f(x, w, v, u):
        a = layer(layer(x, w), w)
        b = layer(layer(v, u), u)
        c = layer(x[:, :3], u)
        return a, b, c

    inputs = [(3, 4), (4, 4), (5, 3), (3, 3)]
    text = hlo2onnx.lower_to_text(f, inputs).text
    assert "call @layer_0" in text and "call @layer_1" in text
    model = convert_and_check(f, inputs, local_functions=True, batch_sizes=(1,))
    assert sorted(functions(model)) == ["layer", "layer_0"]
    assert sorted(calls(model.graph)) == ["layer"] * 2 + ["layer_0"] * 2
    # the function called once is inlined
    assert [n.op_type for n in model.graph.node].count("Tanh") == 1
    # each function keeps its own shapes
    check_model(model)


@jax.jit
def block(x, w):
    return layer(layer(x, w), w.T) * 0.5


def test_nested_functions():
    def f(x, w1, w2):
        return block(block(x, w1), w2)

    model = convert_and_check(f, [("B", 4), (4, 4), (4, 4)], local_functions=True)
    assert set(functions(model)) == {"block", "layer"}
    assert calls(model.graph) == ["block", "block"]
    body = function(model, "block")
    assert [n.op_type for n in body.node if n.domain == DOMAIN] == ["layer", "layer"]
    assert {o.domain for o in body.opset_import} == {"", DOMAIN}
    # the dimension variable B: read by neither function, passed by no call
    assert len(body.input) == 2 and len(function(model, "layer").input) == 2
    assert [n.op_type for n in model.graph.node] == ["block", "block"]
    assert not [n for n in function(model, "layer").node if n.domain == DOMAIN]


@jax.jit
def stats(x):
    return jnp.sin(x), x * 2.0, jnp.sum(x, axis=-1)


def test_several_results():
    def f(x, y):
        a, b, c = stats(x)
        d, e, g = stats(y)
        return a + e, b - d, c * g

    model = convert_and_check(f, [("B", 5), ("B", 5)], local_functions=True)
    assert functions(model) == ["stats"]
    assert len(function(model, "stats").output) == 3
    assert calls(model.graph) == ["stats", "stats"]


@jax.jit
def three(x, y):
    return jnp.sin(x), jnp.cos(x) * y, x + 1.0


def test_unused_results_and_arguments_are_dropped():
    # no call uses the second result, the only one that reads y
    def f(x, y):
        a1, _, c1 = three(x, y)
        a2, _, c2 = three(y, x)
        return a1 + c2, c1 * a2

    inputs = [("B", 3), ("B", 3)]
    assert hlo2onnx.lower_to_text(f, inputs).text.count("-> (tensor<?x3xf32>, tensor<?x3xf32>, "
                                                        "tensor<?x3xf32>)") >= 2
    model = convert_and_check(f, inputs, local_functions=True)
    fn = function(model, "three")
    assert len(fn.input) == 1 and len(fn.output) == 2
    assert "Cos" not in [n.op_type for n in fn.node]
    assert all(len(n.input) == 1 and len(n.output) == 2 for n in model.graph.node
               if n.domain == DOMAIN)


def test_nnx_jit_blocks():
    from flax import nnx

    class Block(nnx.Module):
        def __init__(self, d, rngs):
            self.lin = nnx.Linear(d, d, rngs=rngs)
            self.ln = nnx.LayerNorm(d, rngs=rngs)

        def __call__(self, x):
            return x + nnx.gelu(self.lin(self.ln(x)))

    @nnx.jit
    def apply_block(block, x):
        return block(x)

    class Net(nnx.Module):
        def __init__(self, d, n, rngs):
            self.blocks = nnx.List([Block(d, rngs) for _ in range(n)])

        def __call__(self, x):
            for b in self.blocks:
                x = apply_block(b, x)
            return x

    net = Net(8, 3, nnx.Rngs(0))
    model = convert_and_check(net, [("B", 8)], local_functions=True)
    assert functions(model) == ["apply_block"]
    assert calls(model.graph) == ["apply_block"] * 3
    # nnx.jit also returns the block's state, which no call uses
    assert len(function(model, "apply_block").output) == 1
    # the weights stay initializers of the main graph, passed to each call
    assert {i.name for i in model.graph.initializer} >= {
        f"blocks.{k}.lin.kernel" for k in range(3)}
    plain = convert_and_check(net, [("B", 8)])
    assert not plain.functions and "LayerNormalization" in [n.op_type for n in plain.graph.node]


def test_calls_inside_loop_and_cond():
    def f(x, w, p):
        y = layer(x, w)
        y = lax.fori_loop(0, 3, lambda i, v: layer(v, w), y)
        return lax.cond(p[0] > 0, lambda v: layer(v, w), lambda v: v - 1.0, y)

    inputs = [(3, 4), (4, 4), (1,)]
    model = convert_and_check(f, inputs, local_functions=True, batch_sizes=(1,), n=6)
    assert functions(model) == ["layer"]
    assert calls(model.graph) == ["layer"] * 3  # main, Loop body, If branch
    assert "Loop" in all_op_types(model) and "If" in all_op_types(model)


def test_argmax_and_nn_functions_of_jax():
    # jnp.argmax and jax.nn.relu are jitted functions: private funcs in the text
    def f(x, y):
        return (jnp.argmax(x, axis=1), jnp.argmax(y, axis=1),
                jax.nn.relu(x) + jax.nn.relu(y))

    model = convert_and_check(f, [("B", 6), ("B", 6)], local_functions=True)
    assert {"argmax", "relu"} <= set(functions(model))
    plain = convert_and_check(f, [("B", 6), ("B", 6)])
    assert not plain.functions


def test_determinism(tmp_path):
    def f(x, w1, w2):
        a, b, c = stats(block(x, w1))
        return a + block(b, w2), c

    inputs = [("B", 4), (4, 4), (4, 4)]
    hlo2onnx.to_onnx(f, inputs, tmp_path / "a.onnx", local_functions=True)
    hlo2onnx.to_onnx(f, inputs, tmp_path / "b.onnx", local_functions=True)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    m = onnx.load(tmp_path / "a.onnx")
    check_model(m)
    assert set(functions(m)) == {"block", "layer"}


def test_shape_info_and_no_optimize():
    inputs = [(3, 4), (4, 4), (4, 4), (4, 4)]
    for opts in ({"shape_info": True}, {"shape_info": True, "opset": 23}, {"optimize": False}):
        model = convert_and_check(three_layers, inputs, local_functions=True, batch_sizes=(1,),
                                  **opts)
        assert functions(model) == ["layer"]


def _cli_convert(tmp_path, fixture, *args):
    out = tmp_path / (fixture + "".join(a.strip("-") for a in args) + ".onnx")
    proc = run_cli(FIXTURES / (fixture + ".mlir"), "-o", out, "-q", *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    model = onnx.load(out)
    check_model(model)
    return out, model


def _random_inputs(model, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in model.graph.input:
        dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
        out.append(rng.standard_normal(dims).astype(np.float32))
    return out


def test_fixture_calls_shared(tmp_path):
    # @Identity is named like an ONNX op; @pair returns its argument, a
    # constant and one value twice; @twice calls @Identity and is called in
    # a while body; @pool takes its init as an argument
    inlined, m0 = _cli_convert(tmp_path, "calls_shared")
    shared, m1 = _cli_convert(tmp_path, "calls_shared", "--local-functions")
    assert not m0.functions
    assert functions(m1) == ["Identity", "pair", "twice", "pool"]
    assert sorted(calls(m1.graph)) == sorted(["Identity"] * 2 + ["pair"] * 2 + ["twice"] * 2 +
                                             ["pool"] * 2)
    assert [n.op_type for n in function(m1, "twice").node] == ["Identity", "Identity"]
    assert all(n.domain == DOMAIN for n in function(m1, "twice").node)
    assert len(function(m1, "pair").output) == 4
    xs = _random_inputs(m0)
    for a, b in zip(run_ort(inlined, *xs), run_ort(shared, *xs)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    y = xs[1]
    np.testing.assert_allclose(run_ort(shared, *xs)[0], y + y, rtol=1e-5, atol=1e-5)


def test_fixture_fallback_to_inlining(tmp_path):
    inlined, m0 = _cli_convert(tmp_path, "calls_fallback")
    shared, m1 = _cli_convert(tmp_path, "calls_fallback", "--local-functions")
    # argmax needs its init values as constants: inlined, without a message
    assert functions(m1) == ["scale"]
    assert calls(m1.graph) == ["scale", "scale"]
    assert [n.op_type for n in m1.graph.node].count("ArgMax") == 4
    xs = _random_inputs(m0, seed=3)
    got, want = run_ort(shared, *xs), run_ort(inlined, *xs)
    for a, b in zip(want, got):
        np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(got[0], np.argmax(xs[0], axis=1))
    np.testing.assert_allclose(got[2], 9 * xs[0], rtol=1e-5, atol=1e-5)


def test_cli_option_values(tmp_path):
    src = FIXTURES / "calls_fallback.mlir"
    for bad in ("--local-functions=", "--local-functions=x", "--local-functions=-1"):
        proc = run_cli(src, "-o", tmp_path / "x.onnx", bad)
        assert proc.returncode == 1 and "local-functions" in proc.stderr
    _, m = _cli_convert(tmp_path, "calls_fallback", "--local-functions=3")
    assert not m.functions
    _, m = _cli_convert(tmp_path, "calls_fallback", "--local-functions=0")
    assert not m.functions
    assert "--local-functions" in run_cli("--help").stdout
