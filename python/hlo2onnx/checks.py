"""Named checks of a converted graph's structure, for the component registry.

Internal: development tooling of the test suite and of the README, shipped
with the package (the tests run against the installed wheel) but not part
of hlo2onnx's API (not in ``hlo2onnx.__all__``): it may change in any release.

A :class:`GraphCheck` is a name and a function ``model -> [problem, ...]``
(an empty list: the check passes).  Components and cases list them next to
their expected and forbidden ops; a failing check reports its name and what
it found, so a failure says which fusion or pass is missing.

Only the main graph is inspected (the registry's components have no control
flow).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Callable

__all__ = ["GraphCheck", "has_op", "no_ops", "only_ops", "no_cancelling_transposes",
           "transposes_at_boundary", "bias_folded_into", "LAYOUT_AGNOSTIC"]


@dataclasses.dataclass(frozen=True)
class GraphCheck:
    """A named structural check; ``check(model)`` lists what is wrong."""

    name: str
    fn: Callable[[object], list[str]]

    def __call__(self, model) -> list[str]:
        return list(self.fn(model))


def _ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


def has_op(*alternatives: str) -> GraphCheck:
    """At least one node of one of ``alternatives``."""
    label = alternatives[0] if len(alternatives) == 1 else " or ".join(alternatives)

    def fn(model):
        present = set(_ops(model))
        if present.isdisjoint(alternatives):
            return [f"no {label} node (nodes: {' '.join(_ops(model)) or 'none'})"]
        return []

    return GraphCheck(f"uses {label}", fn)


def no_ops(*forbidden: str) -> GraphCheck:
    """No node of any of ``forbidden``."""

    def fn(model):
        counts = collections.Counter(_ops(model))
        found = [f"{op} x{counts[op]}" for op in forbidden if counts[op]]
        return [f"found {', '.join(found)}"] if found else []

    return GraphCheck(f"no {'/'.join(forbidden)}", fn)


def only_ops(*allowed: str) -> GraphCheck:
    """Nothing but ``allowed`` ops (e.g. only Identity for an inference-mode
    Dropout, which must vanish)."""

    def fn(model):
        extra = sorted({op for op in _ops(model) if op not in allowed})
        return [f"found {', '.join(extra)}"] if extra else []

    return GraphCheck(f"only {'/'.join(allowed) or 'no'} nodes", fn)


# Ops through which a Transpose can be moved without changing the result:
# elementwise with one data input (other inputs constant; a constant operand
# can be transposed at conversion time).
LAYOUT_AGNOSTIC = frozenset({
    "Identity", "Cast", "Relu", "LeakyRelu", "Elu", "Selu", "Sigmoid", "HardSigmoid", "Tanh",
    "Softplus", "Gelu", "Erf", "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Clip",
    "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Not",
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu", "Where",
})


class _Graph:
    """Producers, consumers and constants of a graph."""

    def __init__(self, model):
        g = model.graph
        self.nodes = list(g.node)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers = collections.defaultdict(list)
        for n in self.nodes:
            for i in n.input:
                if i:
                    self.consumers[i].append(n)
        self.constants = {t.name for t in g.initializer}
        self.constants |= {o for n in self.nodes if n.op_type == "Constant" for o in n.output}
        self.inputs = {i.name for i in g.input} - self.constants
        self.outputs = {o.name for o in g.output}

    def data_inputs(self, node) -> list[str]:
        return [i for i in node.input if i and i not in self.constants]


def _perm(node) -> tuple[int, ...] | None:
    for a in node.attribute:
        if a.name == "perm":
            return tuple(a.ints)
    return None


def _compose(first, second) -> tuple[int, ...]:
    """The permutation of Transpose(second) applied after Transpose(first)."""
    return tuple(first[p] for p in second)


def no_cancelling_transposes() -> GraphCheck:
    """No Transpose whose effect a later Transpose undoes, with only
    layout-agnostic elementwise ops between them (NCHW -> NHWC -> ... ->
    NCHW between two Convs), and no two Transposes in a row (they should be
    one)."""

    def fn(model):
        g = _Graph(model)
        problems = []
        for t1 in g.nodes:
            if t1.op_type != "Transpose":
                continue
            p1 = _perm(t1)
            # Walk forward through single-data-input, layout-agnostic ops.
            frontier, seen = [(t1.output[0], 0)], set()
            while frontier:
                value, depth = frontier.pop()
                if value in seen or depth > 8:
                    continue
                seen.add(value)
                for c in g.consumers.get(value, []):
                    if c.op_type == "Transpose":
                        p2 = _perm(c)
                        if depth == 0:
                            problems.append(f"{t1.name} feeds {c.name} directly")
                        elif p1 is not None and p2 is not None and \
                                _compose(p1, p2) == tuple(range(len(p1))):
                            problems.append(f"{t1.name} and {c.name} cancel "
                                            f"(perm {list(p1)} then {list(p2)})")
                    elif c.op_type in LAYOUT_AGNOSTIC and len(g.data_inputs(c)) == 1:
                        frontier.append((c.output[0], depth + 1))
        return problems

    return GraphCheck("no cancelling Transpose pairs", fn)


def transposes_at_boundary() -> GraphCheck:
    """At most one Transpose per graph input and output of rank >= 3: the
    layout change NHWC <-> NCHW happens once where data enters and once where
    it leaves, not around every Conv or pool."""

    def fn(model):
        g = model.graph

        def rank(vi):
            return len(vi.type.tensor_type.shape.dim)

        init = {t.name for t in g.initializer}
        budget = sum(1 for vi in g.input if vi.name not in init and rank(vi) >= 3)
        budget += sum(1 for vi in g.output if rank(vi) >= 3)
        n = sum(1 for op in _ops(model) if op == "Transpose")
        if n > budget:
            return [f"{n} Transposes for {budget} graph inputs/outputs of rank >= 3"]
        return []

    return GraphCheck("Transposes only at the graph boundary", fn)


def bias_folded_into(op_type: str = "Conv") -> GraphCheck:
    """No Add of a constant to the output of ``op_type`` (directly or through
    one Transpose): the bias belongs in the op's own bias input (Conv's B,
    Gemm's C)."""

    def fn(model):
        g = _Graph(model)
        problems = []
        for n in g.nodes:
            if n.op_type != op_type:
                continue
            values = [n.output[0]]
            values += [c.output[0] for c in g.consumers.get(n.output[0], [])
                       if c.op_type == "Transpose"]
            for v in values:
                for c in g.consumers.get(v, []):
                    if c.op_type == "Add" and any(i in g.constants for i in c.input):
                        problems.append(f"{c.name} adds a constant to the output of {n.name}")
        return problems

    return GraphCheck(f"bias folded into {op_type}", fn)
