"""Differential fuzzer: random JAX programs, converted with hlo2onnx.to_onnx,
run in onnxruntime and compared with JAX (issue 14, part 4).

A program is a straight-line list of steps over a pool of values: the
inputs (random shapes with size-1 dims, a symbolic dim "B" in the symbolic
mode, size-0 dims only in the zero mode) and every step's result.  Each step
is one call of ``jax.numpy`` / ``jax.lax`` written as Python source
(``v3 = jnp.take(v1, x2, axis=0, mode='clip')``), drawn from the op families
of src/ir/ops.def: elementwise ops of every dtype JAX has, casts and bitcasts,
broadcasting, shape ops, reductions and windows, dot_general and
convolutions with random dimension numbers, gathers and scatters with random
dimension numbers and modes, sort and top_k, and cond / switch / fori_loop /
while_loop / scan.  Every step is typed with ``jax.eval_shape`` as it is
drawn, so a program is valid by construction.  The draws come from
``hypothesis``, which shrinks a failing program to a minimal one.

How a program is judged (``check_program``):

* to_onnx refuses it (``UnsupportedOpError``): a refusal, counted per op,
  not a finding.  Any other conversion error, an ONNX checker error, or a
  model onnxruntime cannot load or run is a finding.
* Otherwise every output must have JAX's shape and dtype; integer and
  boolean outputs must be equal; float outputs must satisfy
  ``|onnx - jax| <= atol + rtol * |jax| + 4 * spread`` elementwise, NaN and
  inf at the same places, where

  - rtol = atol is the tolerance of the coarsest float type the value went
    through (``TOL``): float64 1e-9, float32 1e-5 (the project's standard,
    ~80 ulps: transcendental kernels of XLA and onnxruntime differ by a few
    ulps, and sums are added in different orders), float16 1e-2 (~10 ulps of
    its 2^-10 spacing), bfloat16 5e-2 (~6 ulps of its 2^-7 spacing: JAX
    computes bfloat16 chains in float32 and rounds once, ONNX rounds after
    each op);
  - ``spread`` is how far JAX's own output moves when every float input is
    perturbed by a few units of that coarsest type: the conditioning of the
    program at that point.  ``exp(exp(x))`` or ``x - y`` with x ~ y turn
    ulp-level differences into large ones; they are not conversion bugs.

* Each program runs once more on edge values (NaN, +-inf, +-0, +-max,
  the smallest normal, the ends of the integer ranges), except where the
  result depends on the runtime's order or quirks (NO_EDGE_VALUES,
  FLOAT_SUMS).
* A missing (ONNX op, type) kernel in onnxruntime and a failure where JAX's
  StableHLO has a zero-size tensor are issue 14 parts 1 and 2: counted with
  an example, not shrunk.
* Discontinuous ops (compare, floor/round/sign, float -> int casts, argmax,
  argsort and top_k indices, bitcasts, float remainder, predicates of
  control flow, gather/scatter indices) are only applied to values that are
  bit-exact in both runtimes: inputs, values moved by data-movement ops,
  and one correctly rounded op (+ - * / sqrt) of those, except in float16:
  onnxruntime computes float16 arithmetic in float32 and removes the casts
  between such nodes, so x * x reaches an argmin unrounded.  An ulp of
  difference elsewhere could flip them, which says nothing about the
  converter.

CLI (prints one line per finding and the totals, writes JSON stats)::

    python tests/fuzz/differential.py --seed 1 --seconds 600 [--mode symbolic|zero|static|mixed]
    python tests/fuzz/differential.py --seed 1 --programs 500 --stats out.json
    python tests/fuzz/differential.py --seed 1 --cpu-seconds 1200   # a loaded machine
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import math
import os
import re
import sys
import time
import traceback
from typing import Callable

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import seed as hyp_seed
from hypothesis import strategies as st
from jax import lax

import hlo2onnx

# ---------------------------------------------------------------------------
# dtypes and tolerances

FLOATS = ["float32", "float16", "bfloat16", "float64"]
SINTS = ["int8", "int16", "int32", "int64"]
UINTS = ["uint8", "uint16", "uint32", "uint64"]
INTS = SINTS + UINTS
ALL_DTYPES = FLOATS + INTS + ["bool"]
WIDE = {"float64", "int64", "uint64"}  # need jax_enable_x64

# rtol = atol per float type (see the module docstring for why)
TOL = {"float64": 1e-9, "float32": 1e-5, "float16": 1e-2, "bfloat16": 5e-2}
# unit roundoff, for the perturbation that measures conditioning
EPS = {"float64": 2.0 ** -52, "float32": 2.0 ** -23, "float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}


def kind(dtype) -> str:
    n = np.dtype(dtype).name
    if n in FLOATS:
        return "f"
    if n in SINTS:
        return "i"
    if n in UINTS:
        return "u"
    if n == "bool":
        return "b"
    return "?"


def np_dtype(name: str):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


NS = {"jax": jax, "jnp": jnp, "lax": lax, "np": np}

# ---------------------------------------------------------------------------
# programs


@dataclasses.dataclass
class Val:
    name: str
    aval: jax.ShapeDtypeStruct
    exact: bool  # bit-identical in JAX and onnxruntime
    pure: bool  # only data movement since the inputs
    coarse: str | None  # coarsest float type in its history

    @property
    def shape(self):
        return tuple(self.aval.shape)

    @property
    def dtype(self) -> str:
        return np.dtype(self.aval.dtype).name

    @property
    def rank(self) -> int:
        return len(self.aval.shape)

    @property
    def k(self) -> str:
        return kind(self.aval.dtype)

    def static(self, axis=None) -> bool:
        dims = self.shape if axis is None else [self.shape[axis]]
        return all(isinstance(d, int) for d in dims)

    def size_hint(self) -> int:
        return math.prod(d if isinstance(d, int) else 5 for d in self.shape)


@dataclasses.dataclass
class Program:
    inputs: list  # (shape with "B" strings, dtype name)
    steps: list  # (result name, source expression, op label)
    outputs: list  # names
    x64: bool
    ops: list  # (op label, dtype) of each step, for coverage
    coarse: str | None  # coarsest float type of the program
    out_coarse: list  # per output
    out_dtypes: list

    def source(self) -> str:
        """The program as a Python function.  onnxruntime's Python API takes
        and returns no bfloat16 arrays: bfloat16 inputs arrive as float32
        (holding bfloat16 values, so the cast is exact) and bfloat16 outputs
        leave as float32."""
        args = ", ".join(f"x{i}" for i in range(len(self.inputs)))
        lines = [f"def f({args}):"]
        lines += [f"    x{i} = x{i}.astype(jnp.bfloat16)" for i, (_, dt) in enumerate(self.inputs)
                  if dt == "bfloat16"]
        lines += [f"    {name} = {src}" for name, src, _ in self.steps]
        outs = [f"{o}.astype(jnp.float32)" if dt == "bfloat16" else o
                for o, dt in zip(self.outputs, self.out_dtypes)]
        lines.append(f"    return ({', '.join(outs)},)")
        return "\n".join(lines)

    def function(self) -> Callable:
        ns = dict(NS)
        exec(self.source(), ns)
        return ns["f"]

    def input_specs(self):
        return [tuple(shape) for shape, _ in self.inputs]

    def input_dtypes(self):
        return [np.dtype(np.float32) if dt == "bfloat16" else np_dtype(dt) for _, dt in self.inputs]

    def __str__(self) -> str:
        return (f"# inputs: {self.inputs}  x64={self.x64}\n" + self.source())


class Reject(Exception):
    """This step cannot be built on the values drawn; skip it."""


class Ctx:
    """The state of one program being drawn: the pool of values and the
    steps so far.  ``d`` draws from hypothesis."""

    def __init__(self, draw, cfg):
        self.draw = draw
        self.cfg = cfg
        self.pool: list[Val] = []
        self.inputs: list = []
        self.steps: list = []
        self.ops: list = []
        self.scope = jax.export.SymbolicScope()
        self.B = jax.export.symbolic_shape("B", scope=self.scope)[0]

    # -- drawing helpers
    def int(self, lo, hi):
        return self.draw(st.integers(lo, hi))

    def choice(self, seq):
        seq = list(seq)
        return seq[self.draw(st.integers(0, len(seq) - 1))]

    def bool(self, p_true=None):
        return self.draw(st.booleans())

    def perm(self, n):
        return list(self.draw(st.permutations(list(range(n)))))

    def subset(self, seq, min_size=0, max_size=None):
        seq = list(seq)
        if max_size is None:
            max_size = len(seq)
        picked = self.draw(st.lists(st.sampled_from(seq), min_size=min(min_size, len(seq)),
                                    max_size=max_size, unique=True)) if seq else []
        return picked

    def dim(self):
        lo = 0 if self.cfg.zero else 1
        return self.draw(st.sampled_from([1, 2, 3, 4, 5, 1, 2, 6][:8] if lo else [0, 1, 2, 3, 0, 4]))

    # -- values
    def pick(self, pred=lambda v: True, exact=False):
        cands = [i for i, v in enumerate(self.pool) if pred(v) and (v.exact or not exact)]
        if not cands:
            raise Reject
        # prefer recent values so that programs compose
        return cands[-1 - self.draw(st.integers(0, len(cands) - 1))]

    def new_input(self, shape, dtype) -> int:
        i = len(self.inputs)
        spec = tuple("B" if not isinstance(d, int) else d for d in shape)
        self.inputs.append((spec, dtype))
        dims = tuple(self.B if not isinstance(d, int) else d for d in shape)
        with jax.export.SymbolicScope() if False else _nullctx():
            aval = jax.ShapeDtypeStruct(dims, np_dtype(dtype))
        coarse = dtype if dtype in FLOATS else None
        self.pool.append(Val(f"x{i}", aval, True, True, coarse))
        return len(self.pool) - 1

    def random_shape(self, rank=None, allow_sym=True):
        if rank is None:
            rank = self.int(0, 4)
        shape = [self.dim() for _ in range(rank)]
        if allow_sym and self.cfg.symbolic and rank and self.bool():
            shape[self.int(0, rank - 1)] = "B"
        return tuple(self.B if d == "B" else d for d in shape)

    def random_dtype(self):
        return self.choice(self.cfg.dtypes)

    def step(self, template: str, operands: list[int], label: str, op_kind: str):
        """Adds ``template.format(*operand names)`` as a step, typed with
        eval_shape.  op_kind: move | cr | disc | inexact (see the module
        docstring)."""
        vals = [self.pool[i] for i in operands]
        params = [f"a{j}" for j in range(len(vals))]
        src_fn = f"lambda {', '.join(params)}: {template.format(*params)}"
        try:
            fn = eval(src_fn, dict(NS))  # noqa: S307 - our own generated text
            out = jax.eval_shape(fn, *[v.aval for v in vals])
        except Exception as e:  # noqa: BLE001  # an invalid combination: not a program
            if self.cfg.debug:
                print("eval_shape:", src_fn, [v.aval for v in vals], type(e).__name__, str(e)[:200])
            raise Reject from None
        if not isinstance(out, jax.ShapeDtypeStruct):
            raise Reject
        if any(isinstance(d, int) and d == 0 for d in out.shape) and not self.cfg.zero:
            raise Reject
        size = math.prod(d if isinstance(d, int) else 8 for d in out.shape)
        if size > 20000:
            raise Reject
        out_kind = kind(out.dtype)
        if out_kind == "?":
            raise Reject
        if out_kind != "f":
            exact, pure = all(v.exact for v in vals), False
        elif op_kind == "move":
            exact, pure = all(v.exact for v in vals), all(v.pure for v in vals)
        elif op_kind == "cr":
            # onnxruntime's CPU provider runs float16 arithmetic in float32
            # and drops the casts between such nodes (its "precision free"
            # casts), so a float16 product reaches the next op unrounded
            exact, pure = all(v.pure for v in vals) and np.dtype(out.dtype).name != "float16", False
        elif op_kind == "disc":
            exact, pure = all(v.exact for v in vals), False
        else:
            exact, pure = False, False
        coarse = coarsest([v.coarse for v in vals] + [np.dtype(out.dtype).name])
        if coarse == "float64" and label in F64_IN_F32:
            coarse = "float32"
        name = f"v{len(self.pool)}"
        self.pool.append(Val(name, out, exact, pure, coarse))
        self.steps.append((name, template.format(*[v.name for v in vals]), label))
        self.ops.append((label, vals[0].dtype if vals else np.dtype(out.dtype).name))
        return len(self.pool) - 1


# Ops whose float64 the converter computes in float32, as documented in
# src/lower/elementwise.c (onnxruntime has no float64 Erf): float64 values
# that went through them are compared at float32's tolerance.
F64_IN_F32 = {"erf", "erfc", "gelu_exact", "gelu_erf"}


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def coarsest(names):
    floats = [n for n in names if n in EPS]
    return max(floats, key=lambda n: EPS[n]) if floats else None


def lit(dtype_kind: str, ctx: Ctx):
    """A Python scalar literal for a value of this kind."""
    if dtype_kind == "f":
        return ctx.choice(["0.5", "2.0", "-1.5", "3.0", "0.0", "1e-3"])
    if dtype_kind == "b":
        return ctx.choice(["True", "False"])
    if dtype_kind == "u":
        return ctx.choice(["1", "2", "3", "7"])
    return ctx.choice(["1", "-2", "3", "7", "-1"])


def broadcastable(a, b) -> bool:
    for x, y in zip(reversed(a), reversed(b)):
        if isinstance(x, int) and isinstance(y, int):
            if x != y and x != 1 and y != 1:
                return False
        elif not (x is y or (isinstance(x, int) and x == 1) or (isinstance(y, int) and y == 1)):
            if str(x) != str(y):
                return False
    return True


# ---------------------------------------------------------------------------
# op families: each draws one step (or raises Reject)

UNARY_FLOAT_INEXACT = {
    "sin": "jnp.sin({0})", "cos": "jnp.cos({0})", "tan": "jnp.tan({0})", "exp": "jnp.exp({0})",
    "log": "jnp.log({0})", "rsqrt": "lax.rsqrt({0})", "tanh": "jnp.tanh({0})",
    "logistic": "jax.nn.sigmoid({0})", "expm1": "jnp.expm1({0})", "log1p": "jnp.log1p({0})",
    "cbrt": "jnp.cbrt({0})", "erf": "lax.erf({0})", "erfc": "lax.erfc({0})",
    "lgamma": "lax.lgamma({0})", "digamma": "lax.digamma({0})", "erf_inv": "lax.erf_inv({0})",
    "sinh": "jnp.sinh({0})", "cosh": "jnp.cosh({0})", "arcsin": "jnp.arcsin({0})",
    "arccos": "jnp.arccos({0})", "arctan": "jnp.arctan({0})", "arcsinh": "jnp.arcsinh({0})",
    "arccosh": "jnp.arccosh({0})", "arctanh": "jnp.arctanh({0})", "gelu": "jax.nn.gelu({0})",
    "gelu_exact": "jax.nn.gelu({0}, approximate=False)", "softplus": "jax.nn.softplus({0})",
    "silu": "jax.nn.silu({0})", "exp2": "jnp.exp2({0})", "log2": "jnp.log2({0})",
    "i1e": "lax.bessel_i1e({0})", "power_half": "lax.pow({0}, 0.5)",
    "integer_pow3": "lax.integer_pow({0}, 3)", "logaddexp_self": "jnp.logaddexp({0}, 0.5)",
    "clip_sin": "jnp.clip(jnp.sin({0}), -0.5, 0.5)",
}
UNARY_FLOAT_CR = {"sqrt": "jnp.sqrt({0})", "square": "jnp.square({0})",
                  "reciprocal": "jnp.reciprocal({0})", "half": "{0} * 0.5"}
UNARY_FLOAT_DISC = {"floor": "jnp.floor({0})", "ceil": "jnp.ceil({0})", "round": "jnp.round({0})",
                    "round_afz": "lax.round({0}, lax.RoundingMethod.AWAY_FROM_ZERO)",
                    "sign": "jnp.sign({0})", "isfinite": "jnp.isfinite({0})",
                    "isinf": "jnp.isinf({0})", "trunc": "jnp.trunc({0})",
                    "signbit": "jnp.signbit({0})", "is_pos": "{0} > 0"}
UNARY_MOVE = {"neg": "-{0}", "abs": "jnp.abs({0})", "relu": "jax.nn.relu({0})",
              "clip": "jnp.clip({0}, -1, 2)", "max0": "jnp.maximum({0}, 0)",
              "reduce_precision": "lax.reduce_precision({0}, 5, 10)"}
UNARY_INT = {"neg": "-{0}", "abs": "jnp.abs({0})", "sign": "jnp.sign({0})", "invert": "~{0}",
             "popcount": "lax.population_count({0})", "clz": "lax.clz({0})",
             "square": "jnp.square({0})", "clip": "jnp.clip({0}, 1, 6)"}


def op_unary(ctx: Ctx):
    i = ctx.pick()
    v = ctx.pool[i]
    if v.k == "f":
        table = ctx.choice(["inexact", "inexact", "cr", "disc", "move"])
        if table == "inexact":
            name = ctx.choice(sorted(UNARY_FLOAT_INEXACT))
            return ctx.step(UNARY_FLOAT_INEXACT[name], [i], name, "inexact")
        if table == "cr":
            name = ctx.choice(sorted(UNARY_FLOAT_CR))
            return ctx.step(UNARY_FLOAT_CR[name], [i], name, "cr")
        if table == "disc":
            i = ctx.pick(lambda v: v.k == "f", exact=True)
            name = ctx.choice(sorted(UNARY_FLOAT_DISC))
            return ctx.step(UNARY_FLOAT_DISC[name], [i], name, "disc")
        name = ctx.choice(sorted(UNARY_MOVE))
        if name == "reduce_precision" and v.dtype not in ("float32", "float64"):
            raise Reject
        return ctx.step(UNARY_MOVE[name], [i], name, "move")
    if v.k == "b":
        return ctx.step("~{0}", [i], "not", "move")
    name = ctx.choice(sorted(UNARY_INT))
    if name in ("neg", "abs", "sign") and v.k == "u":
        name = "invert"
    return ctx.step(UNARY_INT[name], [i], name, "move")


BINARY_FLOAT_CR = {"add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / {1}"}
BINARY_FLOAT_INEXACT = {"pow": "jnp.power(jnp.abs({0}), {1})", "atan2": "jnp.arctan2({0}, {1})",
                        "logaddexp": "jnp.logaddexp({0}, {1})", "hypot": "jnp.hypot({0}, {1})",
                        "lax_pow": "lax.pow({0}, {1})"}
BINARY_MOVE = {"max": "jnp.maximum({0}, {1})", "min": "jnp.minimum({0}, {1})"}
BINARY_DISC = {"lt": "{0} < {1}", "le": "{0} <= {1}", "eq": "{0} == {1}", "ne": "{0} != {1}",
               "ge": "{0} >= {1}", "gt": "{0} > {1}", "fmod": "jnp.fmod({0}, {1})",
               "remainder": "jnp.remainder({0}, {1})", "floor_divide": "jnp.floor_divide({0}, {1})",
               "copysign": "jnp.copysign({0}, {1})"}
BINARY_INT = {"add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}",
              "floor_divide": "{0} // {1}", "remainder": "{0} % {1}", "lax_div": "lax.div({0}, {1})",
              "lax_rem": "lax.rem({0}, {1})", "and": "{0} & {1}", "or": "{0} | {1}",
              "xor": "{0} ^ {1}", "shl": "lax.shift_left({0}, {1})",
              "shr_a": "lax.shift_right_arithmetic({0}, {1})",
              "shr_l": "lax.shift_right_logical({0}, {1})", "max": "jnp.maximum({0}, {1})",
              "min": "jnp.minimum({0}, {1})", "lt": "{0} < {1}", "eq": "{0} == {1}",
              "ge": "{0} >= {1}", "int_pow": "lax.integer_pow({0}, 2) + {1}"}
BINARY_BOOL = {"and": "{0} & {1}", "or": "{0} | {1}", "xor": "{0} ^ {1}", "eq": "{0} == {1}",
               "lt": "{0} < {1}", "max": "jnp.maximum({0}, {1})"}


def op_binary(ctx: Ctx):
    i = ctx.pick()
    a = ctx.pool[i]
    # the other operand: a broadcast-compatible value (same kind mostly), a
    # Python scalar, or a fresh input of a compatible shape
    how = ctx.choice(["pool", "pool", "scalar", "input"])
    if how == "pool":
        j = ctx.pick(lambda v: broadcastable(v.shape, a.shape)
                     and (v.k == a.k or ctx.cfg.mix))
        operands, second = [i, j], "{1}"
    elif how == "input":
        shape = list(a.shape)
        for ax in range(len(shape)):
            if ctx.bool() and ctx.bool():
                shape[ax] = 1
        if shape and ctx.bool():
            shape = shape[ctx.int(0, len(shape)):]
        dt = a.dtype if not ctx.cfg.mix or ctx.bool() else ctx.random_dtype()
        j = ctx.new_input(tuple(shape), dt)
        operands, second = [i, j], "{1}"
    else:
        operands, second = [i], lit(a.k, ctx)
    b = ctx.pool[operands[-1]]
    k = a.k if a.k == b.k or how == "scalar" else ("f" if "f" in (a.k, b.k) else a.k)
    if k == "f":
        table = ctx.choice(["cr", "cr", "inexact", "move", "disc"])
        if table == "disc" and not (a.exact and b.exact):
            table = "move"
        tab = {"cr": BINARY_FLOAT_CR, "inexact": BINARY_FLOAT_INEXACT, "move": BINARY_MOVE,
               "disc": BINARY_DISC}[table]
        name = ctx.choice(sorted(tab))
        op_kind = table
        if name == "div" and len(operands) == 1:
            # XLA divides by a constant as a product with its reciprocal,
            # which is not the correctly rounded quotient
            op_kind = "inexact"
    elif k == "b":
        name = ctx.choice(sorted(BINARY_BOOL))
        tab, op_kind = BINARY_BOOL, "move"
    else:
        name = ctx.choice(sorted(BINARY_INT))
        tab, op_kind = BINARY_INT, "move"
        if name.startswith("sh") and not how == "pool" and a.k == "u" and second.startswith("-"):
            second = "2"
    tmpl = tab[name].replace("{1}", second)
    return ctx.step(tmpl, operands, name, op_kind)


def op_where(ctx: Ctx):
    c = ctx.pick(lambda v: v.k == "b", exact=True)
    cv = ctx.pool[c]
    a = ctx.pick(lambda v: broadcastable(v.shape, cv.shape))
    av = ctx.pool[a]
    if ctx.bool():
        b = ctx.pick(lambda v: broadcastable(v.shape, cv.shape) and broadcastable(v.shape, av.shape)
                     and v.k == av.k)
        return ctx.step("jnp.where({0}, {1}, {2})", [c, a, b], "select", "move")
    return ctx.step("jnp.where({0}, {1}, " + lit(av.k, ctx) + ")", [c, a], "select", "move")


def op_clamp(ctx: Ctx):
    i = ctx.pick(lambda v: v.k in "fiu")
    v = ctx.pool[i]
    lo, hi = ("-0.5", "0.7") if v.k == "f" else ("1", "4")
    if ctx.bool():
        return ctx.step(f"lax.clamp(jnp.asarray({lo}, {{0}}.dtype), {{0}}, jnp.asarray({hi}, {{0}}.dtype))",
                        [i], "clamp", "move")
    j = ctx.pick(lambda w: w.shape == v.shape and w.dtype == v.dtype)
    return ctx.step("lax.clamp(jnp.minimum({0}, {1}), {0}, jnp.maximum({0}, {1}))", [i, j],
                    "clamp_tensor", "move")


def op_convert(ctx: Ctx):
    i = ctx.pick()
    v = ctx.pool[i]
    to = ctx.random_dtype()
    if to == v.dtype:
        raise Reject
    tk = kind(to)
    if v.k == "f" and tk in "iu":
        if not v.exact:
            raise Reject
        # in range of every integer type: out-of-range float -> int is
        # implementation-defined in StableHLO
        lo = "0" if tk == "u" else "-100"
        # (NaN -> int too: nan_to_num first)
        return ctx.step(f"jnp.clip(jnp.nan_to_num({{0}}), {lo}, 100).astype(jnp.{to})", [i],
                        "convert_f2i", "disc")
    if v.k == "f" and tk == "b":
        if not v.exact:
            raise Reject
        return ctx.step("{0}.astype(jnp.bool_)", [i], "convert_f2b", "disc")
    if v.k == "i" and tk == "u":
        # negative to unsigned wraps modulo 2^n in both (two's complement)
        return ctx.step(f"{{0}}.astype(jnp.{to})", [i], "convert_i2u", "move")
    label = f"convert_{v.k}2{tk}"
    return ctx.step(f"{{0}}.astype(jnp.{to})", [i], label, "cr" if tk == "f" else "move")


def op_bitcast(ctx: Ctx):
    i = ctx.pick(lambda v: v.k != "b", exact=True)
    v = ctx.pool[i]
    width = np.dtype(v.aval.dtype).itemsize
    same = [d for d in ctx.cfg.dtypes if d != "bool" and np_dtype(d).itemsize == width
            and d != v.dtype]
    if not same:
        raise Reject
    to = ctx.choice(same)
    # integers -> float: keep to finite, normal-ish bit patterns by going
    # through the float's own bits (float -> int -> float round trip)
    return ctx.step(f"lax.bitcast_convert_type({{0}}, jnp.{to})", [i], "bitcast", "disc")


def op_reshape(ctx: Ctx):
    i = ctx.pick()
    v = ctx.pool[i]
    if v.static():
        n = v.size_hint()
        dims = []
        rest = n
        for _ in range(ctx.int(0, 3)):
            divs = [d for d in range(1, rest + 1) if rest % d == 0]
            d = ctx.choice(divs)
            dims.append(d)
            rest //= d
        dims.append(rest)
        if ctx.bool():
            dims[ctx.int(0, len(dims) - 1)] = -1
        return ctx.step(f"jnp.reshape({{0}}, {tuple(dims)})", [i], "reshape", "move")
    # a symbolic dim: keep the first dims, merge the rest
    sym = [ax for ax, d in enumerate(v.shape) if not isinstance(d, int)]
    ax = sym[0]
    if ctx.bool():
        return ctx.step(f"{{0}}.reshape({{0}}.shape[:{ax + 1}] + (-1,))", [i], "reshape_sym", "move")
    return ctx.step("{0}.reshape((-1,))", [i], "reshape_sym", "move")


def op_transpose(ctx: Ctx):
    i = ctx.pick(lambda v: v.rank >= 2)
    p = ctx.perm(ctx.pool[i].rank)
    return ctx.step(f"jnp.transpose({{0}}, {tuple(p)})", [i], "transpose", "move")


def op_expand_squeeze(ctx: Ctx):
    i = ctx.pick()
    v = ctx.pool[i]
    ones = [ax for ax, d in enumerate(v.shape) if isinstance(d, int) and d == 1]
    if ones and ctx.bool():
        return ctx.step(f"jnp.squeeze({{0}}, {ctx.choice(ones)})", [i], "squeeze", "move")
    ax = ctx.int(0, v.rank)
    return ctx.step(f"jnp.expand_dims({{0}}, {ax})", [i], "expand_dims", "move")


def op_broadcast(ctx: Ctx):
    i = ctx.pick(lambda v: v.rank <= 3)
    v = ctx.pool[i]
    shape = [d if not (isinstance(d, int) and d == 1) or not ctx.bool() else ctx.dim()
             for d in v.shape]
    lead = [ctx.dim() for _ in range(ctx.int(0, 1 if v.rank else 2))]
    target = "(" + "".join(f"{d}, " for d in lead) + "".join(
        f"{d}, " if isinstance(d, int) else f"{{0}}.shape[{ax}], " for ax, d in enumerate(shape)) + ")"
    return ctx.step(f"jnp.broadcast_to({{0}}, {target})", [i], "broadcast", "move")


def op_slice(ctx: Ctx):
    i = ctx.pick(lambda v: v.rank >= 1)
    v = ctx.pool[i]
    parts = []
    for d in v.shape:
        if not isinstance(d, int) or ctx.bool():
            parts.append(ctx.choice([":", "::-1", "1:", ":-1"]) if not isinstance(d, int) else ":")
            continue
        a = ctx.int(-d, d)
        b = ctx.int(-d, d + 1)
        s = ctx.choice([1, 1, 2, 3, -1])
        parts.append(f"{a}:{b}:{s}")
    return ctx.step("{0}[" + ", ".join(parts) + "]", [i], "slice", "move")


def op_lax_slice(ctx: Ctx):
    i = ctx.pick(lambda v: v.rank >= 1 and v.static())
    v = ctx.pool[i]
    start = [ctx.int(0, d - 1) if d else 0 for d in v.shape]
    limit = [ctx.int(s + 1, d) if d else 0 for s, d in zip(start, v.shape)]
    strides = [ctx.int(1, 3) for _ in v.shape]
    return ctx.step(f"lax.slice({{0}}, {tuple(start)}, {tuple(limit)}, {tuple(strides)})", [i],
                    "lax_slice", "move")


def op_dynamic_slice(ctx: Ctx):
    i = ctx.pick(lambda v: v.rank >= 1)
    v = ctx.pool[i]
    sizes = [ctx.int(1, d) if isinstance(d, int) and d else 1
             for d in v.shape]
    # start indices: constants (possibly out of range: clamped) or int scalars of the pool
    starts = []
    operands = [i]
    for _ in v.shape:
        if ctx.bool():
            starts.append(str(ctx.int(-3, 7)))
        else:
            j = ctx.pick(lambda w: w.k in "iu" and w.rank == 0)
            operands.append(j)
            starts.append(f"{{{len(operands) - 1}}}")
    tmpl = f"lax.dynamic_slice({{0}}, ({', '.join(starts)},), {tuple(sizes)})"
    return ctx.step(tmpl, operands, "dynamic_slice", "move")


def op_dynamic_update_slice(ctx: Ctx):
    i = ctx.pick(lambda v: v.rank >= 1)
    v = ctx.pool[i]
    sizes = [ctx.int(1, d) if isinstance(d, int) and d else 1 for d in v.shape]
    u = ctx.pick(lambda w: w.shape == tuple(sizes))
    starts = [str(ctx.int(-2, 6)) for _ in v.shape]
    tmpl = f"lax.dynamic_update_slice({{0}}, {{1}}.astype({{0}}.dtype), ({', '.join(starts)},))"
    return ctx.step(tmpl, [i, u], "dynamic_update_slice", "move")


def op_scalar_index(ctx: Ctx):
    """An int scalar for dynamic_slice & co: an element of an int value."""
    i = ctx.pick(lambda v: v.k in "iu" and v.rank >= 1)
    return ctx.step("{0}.ravel()[0]", [i], "index_scalar", "move")


def op_pad(ctx: Ctx):
    i = ctx.pick(lambda v: v.rank >= 1)
    v = ctx.pool[i]
    if ctx.bool():
        cfg = tuple((ctx.int(-1, 2) if isinstance(d, int) and d > 1 else ctx.int(0, 2),
                     ctx.int(-1, 2) if isinstance(d, int) and d > 1 else ctx.int(0, 2),
                     ctx.int(0, 2) if isinstance(d, int) else 0) for d in v.shape)
        pv = lit(v.k, ctx)
        return ctx.step(f"lax.pad({{0}}, jnp.asarray({pv}, {{0}}.dtype), {cfg})", [i], "lax_pad",
                        "move")
    mode = ctx.choice(["constant", "edge", "reflect", "wrap", "symmetric"])
    cfg = tuple((ctx.int(0, 2), ctx.int(0, 2)) for _ in v.shape)
    if mode in ("reflect", "symmetric", "wrap") and not v.static():
        mode = "constant"
    return ctx.step(f"jnp.pad({{0}}, {cfg}, mode={mode!r})", [i], f"pad_{mode}", "move")


def op_concat(ctx: Ctx):
    i = ctx.pick(lambda v: v.rank >= 1)
    v = ctx.pool[i]
    ax = ctx.int(0, v.rank - 1)

    def fits(w):
        return (w.rank == v.rank and w.dtype == v.dtype
                and all(str(a) == str(b) for k, (a, b) in enumerate(zip(w.shape, v.shape)) if k != ax))
    j = ctx.pick(fits)
    if ctx.bool():
        return ctx.step(f"jnp.concatenate([{{0}}, {{1}}, {{0}}], axis={ax})", [i, j], "concatenate",
                        "move")
    return ctx.step(f"jnp.stack([{{0}}, {{0}}], axis={ctx.int(0, v.rank)})", [i], "stack", "move")


def op_flip_roll(ctx: Ctx):
    i = ctx.pick(lambda v: v.rank >= 1)
    v = ctx.pool[i]
    ax = ctx.int(0, v.rank - 1)
    which = ctx.choice(["flip", "roll", "repeat", "tile", "tril", "rot90"])
    if which == "flip":
        return ctx.step(f"jnp.flip({{0}}, {ax})", [i], "reverse", "move")
    if which == "roll":
        return ctx.step(f"jnp.roll({{0}}, {ctx.int(-3, 3)}, axis={ax})", [i], "roll", "move")
    if which == "repeat" and isinstance(v.shape[ax], int):
        return ctx.step(f"jnp.repeat({{0}}, {ctx.int(1, 3)}, axis={ax})", [i], "repeat", "move")
    if which == "tile":
        reps = tuple(ctx.int(1, 2) for _ in v.shape)
        return ctx.step(f"jnp.tile({{0}}, {reps})", [i], "tile", "move")
    if which == "tril" and v.rank >= 2:
        return ctx.step(f"jnp.tril({{0}}, {ctx.int(-1, 1)})", [i], "tril", "move")
    if which == "rot90" and v.rank >= 2:
        return ctx.step("jnp.rot90({0})", [i], "rot90", "move")
    raise Reject


def op_iota(ctx: Ctx):
    i = ctx.pick(lambda v: v.rank >= 1)
    v = ctx.pool[i]
    ax = ctx.int(0, v.rank - 1)
    dt = ctx.choice([d for d in ctx.cfg.dtypes if d != "bool"])
    return ctx.step(f"lax.broadcasted_iota(jnp.{dt}, {{0}}.shape, {ax}) + {{0}}.astype(jnp.{dt})",
                    [i], "iota", "cr")


REDUCE = {"sum": ("jnp.sum", "inexact"), "prod": ("jnp.prod", "inexact"), "max": ("jnp.max", "move"),
          "min": ("jnp.min", "move"), "mean": ("jnp.mean", "inexact"), "any": ("jnp.any", "move"),
          "all": ("jnp.all", "move"), "argmax": ("jnp.argmax", "disc"),
          "argmin": ("jnp.argmin", "disc"), "var": ("jnp.var", "inexact"),
          "logsumexp": ("jax.nn.logsumexp", "inexact"), "softmax": ("jax.nn.softmax", "inexact"),
          "log_softmax": ("jax.nn.log_softmax", "inexact"), "cumsum": ("jnp.cumsum", "inexact"),
          "cumprod": ("jnp.cumprod", "inexact"), "cummax": ("lax.cummax", "move"),
          "cummin": ("lax.cummin", "move"), "count_nonzero": ("jnp.count_nonzero", "move"),
          "norm": ("jnp.linalg.norm", "inexact")}


def op_reduce(ctx: Ctx):
    name = ctx.choice(sorted(REDUCE))
    fn, op_kind = REDUCE[name]
    i = ctx.pick(lambda v: v.rank >= 1, exact=op_kind == "disc")
    v = ctx.pool[i]
    if name in ("any", "all") and v.k != "b":
        return ctx.step(f"{fn}({{0}} > 0, axis={ctx.int(0, v.rank - 1)})", [i], name,
                        "disc" if v.k == "f" else "move") if v.exact else _reject()
    if name in ("cummax", "cummin") and v.k == "f" and not v.exact:
        raise Reject  # NaN into MaxPool: see NO_EDGE_VALUES
    if name in ("argmax", "argmin", "cumsum", "cumprod", "cummax", "cummin", "softmax",
                "log_softmax"):
        ax = ctx.int(0, v.rank - 1)
        if name.startswith("cum") and ctx.bool():
            rev = ctx.bool()
            if name in ("cummax", "cummin") or ctx.bool():
                return ctx.step(f"lax.{name}({{0}}, axis={ax}, reverse={rev})", [i], name, op_kind)
        if name in ("softmax", "log_softmax", "logsumexp") and v.k != "f":
            raise Reject
        return ctx.step(f"{fn}({{0}}, axis={ax})", [i], name, op_kind)
    axes = tuple(sorted(ctx.subset(range(v.rank), 1)))
    keep = ctx.bool()
    if name in ("logsumexp", "var", "norm") and v.k != "f":
        raise Reject
    if name == "norm":
        return ctx.step(f"{fn}({{0}}, axis={axes[-1]}, keepdims={keep})", [i], name, op_kind)
    return ctx.step(f"{fn}({{0}}, axis={axes}, keepdims={keep})", [i], name, op_kind)


def _reject():
    raise Reject


def op_reduce_window(ctx: Ctx):
    i = ctx.pick(lambda v: v.rank >= 1 and v.k in "fiu")
    v = ctx.pool[i]
    win, strides, pads, bdil, wdil = [], [], [], [], []
    for d in v.shape:
        if not isinstance(d, int) or ctx.bool():
            win.append(1), strides.append(1), pads.append((0, 0)), bdil.append(1), wdil.append(1)
            continue
        win.append(ctx.int(1, max(1, min(d, 3))))
        strides.append(ctx.int(1, 2))
        pads.append((ctx.int(0, 1), ctx.int(0, 1)))
        bdil.append(ctx.choice([1, 1, 2]))
        wdil.append(ctx.choice([1, 1, 2]))
    which = ctx.choice(["add", "max", "min"])
    if which != "add" and v.k == "f" and not v.exact:
        raise Reject  # NaN into MaxPool: see NO_EDGE_VALUES
    init = {"add": "0", "max": "-jnp.inf" if v.k == "f" else "jnp.iinfo({0}.dtype).min",
            "min": "jnp.inf" if v.k == "f" else "jnp.iinfo({0}.dtype).max"}[which]
    tmpl = (f"lax.reduce_window({{0}}, jnp.asarray({init}, {{0}}.dtype), lax.{which}, {tuple(win)}, "
            f"{tuple(strides)}, {tuple(pads)}, base_dilation={tuple(bdil)}, "
            f"window_dilation={tuple(wdil)})")
    return ctx.step(tmpl, [i], f"reduce_window_{which}", "inexact" if which == "add" else "move")


def op_dot_general(ctx: Ctx):
    """dot_general with random batch / contracting dims: the lhs from the
    pool, the rhs a new input whose axes are shuffled."""
    i = ctx.pick(lambda v: v.rank >= 1 and v.k in "fiu")
    v = ctx.pool[i]
    axes = list(range(v.rank))
    static_axes = [a for a in axes if isinstance(v.shape[a], int)]
    nb = ctx.int(0, min(1, len(axes)))
    batch = ctx.subset(axes, nb, nb)
    contract = ctx.subset([a for a in static_axes if a not in batch], 0, 2)
    rhs_free = [ctx.dim() for _ in range(ctx.int(0, 2))]
    rhs_axes = [("b", a) for a in batch] + [("c", a) for a in contract] + [("f", d) for d in rhs_free]
    order = ctx.perm(len(rhs_axes))
    rhs_axes = [rhs_axes[o] for o in order]
    rhs_shape = tuple(v.shape[a] if t in "bc" else a for t, a in rhs_axes)
    rhs_b = tuple(k for k, (t, a) in enumerate(rhs_axes) if t == "b")
    rhs_c = tuple(k for k, (t, a) in enumerate(rhs_axes) if t == "c")
    lhs_b = tuple(a for t, a in rhs_axes if t == "b")
    lhs_c = tuple(a for t, a in rhs_axes if t == "c")
    dt = v.dtype if not ctx.cfg.mix or ctx.bool() else ctx.choice(
        [d for d in ctx.cfg.dtypes if kind(d) == v.k])
    j = ctx.new_input(rhs_shape, dt)
    pref = ctx.choice(["", "", ", preferred_element_type=jnp.float32"]) if v.k == "f" else ""
    tmpl = f"lax.dot_general({{0}}, {{1}}, (({lhs_c}, {rhs_c}), ({lhs_b}, {rhs_b})){pref})"
    return ctx.step(tmpl, [i, j], "dot_general", "inexact")


def op_matmul(ctx: Ctx):
    i = ctx.pick(lambda v: v.rank >= 1 and v.k == "f")
    v = ctx.pool[i]
    if not isinstance(v.shape[-1], int):
        raise Reject
    n = ctx.dim()
    if ctx.bool():
        j = ctx.new_input((v.shape[-1], n), v.dtype)
        return ctx.step("{0} @ {1}", [i, j], "matmul", "inexact")
    j = ctx.new_input((v.shape[-1],), v.dtype)
    return ctx.step("jnp.einsum('...i,i->...', {0}, {1})", [i, j], "einsum", "inexact")


def op_conv(ctx: Ctx):
    nsp = ctx.int(1, 2)
    dt = ctx.choice([d for d in ctx.cfg.dtypes if kind(d) == "f"] or ["float32"])
    groups = ctx.choice([1, 1, 2])
    batch_groups = ctx.choice([1, 1, 1, 2]) if groups == 1 else 1
    cin = groups * ctx.int(1, 2)
    cout = groups * batch_groups * ctx.int(1, 2)
    n = "B" if ctx.cfg.symbolic and ctx.bool() and batch_groups == 1 else ctx.int(1, 2) * batch_groups
    spatial = [ctx.int(1, 6) for _ in range(nsp)]
    kernel = [ctx.int(1, 3) for _ in range(nsp)]
    strides = tuple(ctx.int(1, 2) for _ in range(nsp))
    lhs_dil = tuple(ctx.choice([1, 1, 2]) for _ in range(nsp))
    rhs_dil = tuple(ctx.choice([1, 1, 2]) for _ in range(nsp))
    if ctx.bool():
        padding = repr(ctx.choice(["SAME", "VALID"])) if lhs_dil == (1,) * nsp else "'VALID'"
    else:
        padding = str(tuple((ctx.int(-1, 2), ctx.int(-1, 2)) for _ in range(nsp)))
    sp = "HW"[:nsp] if nsp == 2 else "W"
    lhs_spec = ctx.choice(["N" + "C" + sp, "N" + sp + "C", "C" + "N" + sp])
    rhs_spec = ctx.choice(["OI" + sp, sp + "IO", "I" + "O" + sp])
    out_spec = ctx.choice(["N" + "C" + sp, "N" + sp + "C"])
    dims_l = {"N": n, "C": cin}
    dims_l.update(dict(zip(sp, spatial)))
    dims_r = {"O": cout, "I": cin // groups}
    dims_r.update(dict(zip(sp, kernel)))
    lhs_shape = tuple(ctx.B if dims_l[c] == "B" else dims_l[c] for c in lhs_spec)
    rhs_shape = tuple(dims_r[c] for c in rhs_spec)
    i = ctx.new_input(lhs_shape, dt)
    j = ctx.new_input(rhs_shape, dt)
    tmpl = (f"lax.conv_general_dilated({{0}}, {{1}}, {strides}, {padding}, lhs_dilation={lhs_dil}, "
            f"rhs_dilation={rhs_dil}, dimension_numbers=({lhs_spec!r}, {rhs_spec!r}, {out_spec!r}), "
            f"feature_group_count={groups}, batch_group_count={batch_groups})")
    return ctx.step(tmpl, [i, j], "conv", "inexact")


def op_take(ctx: Ctx):
    i = ctx.pick(lambda v: v.rank >= 1)
    v = ctx.pool[i]
    ax = ctx.int(0, v.rank - 1)
    mode = ctx.choice(["clip", "fill", "wrap", None])
    if ctx.bool():
        idx = ctx.pick(lambda w: w.k in "iu" and w.rank <= 2)
        m = "" if mode is None else f", mode={mode!r}"
        if mode is None:  # jnp's default: out of range is NaN/fill for gathers
            m = ", mode='fill'"
        return ctx.step(f"jnp.take({{0}}, {{1}}, axis={ax}{m})", [i, idx], "take", "move")
    d = v.shape[ax]
    hi = d + 2 if isinstance(d, int) else 6
    idxs = [ctx.int(-hi, hi) for _ in range(ctx.int(1, 4))]
    m = f", mode={mode!r}" if mode else ""
    return ctx.step(f"jnp.take({{0}}, np.array({idxs}, np.int32), axis={ax}{m})", [i], "take_const",
                    "move")


def op_index(ctx: Ctx):
    """NumPy indexing: an int array, a boolean-free mix of slices and ints."""
    i = ctx.pick(lambda v: v.rank >= 1)
    v = ctx.pool[i]
    parts = []
    operands = [i]
    for ax, d in enumerate(v.shape):
        c = ctx.choice(["slice", "int", "array", "none"])
        if c == "int" and isinstance(d, int):
            parts.append(str(ctx.int(-d, d - 1)))
        elif c == "array":
            j = ctx.pick(lambda w: w.k in "iu" and w.rank == 1)
            operands.append(j)
            parts.append(f"jnp.clip({{{len(operands) - 1}}}, 0, {{0}}.shape[{ax}] - 1)")
        elif c == "none":
            parts.append("None")
            parts.append(":")
        else:
            parts.append(":")
    return ctx.step("{0}[" + ", ".join(parts) + "]", operands, "index", "move")


def op_gather(ctx: Ctx):
    """lax.gather with random dimension numbers, constant indices (some out of
    range) and a random mode."""
    i = ctx.pick(lambda v: v.rank >= 1 and v.static())
    v = ctx.pool[i]
    r = v.rank
    k = ctx.int(1, r)
    start_index_map = ctx.subset(range(r), k, k)
    collapsed = sorted(ctx.subset(start_index_map))
    # operand batching dims (need matching indices batch dims): sometimes one
    batching = []
    if ctx.cfg.batching and ctx.bool():
        free = [a for a in range(r) if a not in start_index_map]
        if free:
            batching = [ctx.choice(free)]
    slice_sizes = tuple(1 if a in collapsed or a in batching else ctx.int(1, v.shape[a])
                        for a in range(r))
    batch_shape = [ctx.int(1, 3) for _ in range(ctx.int(0, 2))]
    ivd = len(batch_shape)
    idx_batching = []
    if batching:
        # the indices' batch dim must have the operand's batching dim's size
        if not batch_shape:
            batch_shape = [v.shape[batching[0]]]
            ivd = 1
        else:
            pos = ctx.int(0, len(batch_shape) - 1)
            batch_shape[pos] = v.shape[batching[0]]
        idx_batching = [next(p for p, s in enumerate(batch_shape) if s == v.shape[batching[0]])]
    idx_shape = batch_shape + [k]
    mode = ctx.choice(["CLIP", "FILL_OR_DROP", "PROMISE_IN_BOUNDS"])
    his = [v.shape[a] for a in start_index_map]
    vals = np.zeros(idx_shape, np.int64)
    for pos in np.ndindex(*idx_shape):
        hi = his[pos[-1]]
        vals[pos] = ctx.int(0, hi - 1) if mode == "PROMISE_IN_BOUNDS" else ctx.int(-2, hi + 1)
    # indices in their own batch positions must be valid for batching
    offset_count = r - len(collapsed) - len(batching)
    out_rank = len(batch_shape) + offset_count
    offset_dims = tuple(sorted(ctx.subset(range(out_rank), offset_count, offset_count)))
    dn = (f"lax.GatherDimensionNumbers(offset_dims={offset_dims}, "
          f"collapsed_slice_dims={tuple(collapsed)}, start_index_map={tuple(start_index_map)}, "
          f"operand_batching_dims={tuple(batching)}, start_indices_batching_dims={tuple(idx_batching)})")
    tmpl = (f"lax.gather({{0}}, np.array({vals.tolist()}, np.int32).reshape({tuple(idx_shape)}), {dn}, "
            f"{slice_sizes}, mode=lax.GatherScatterMode.{mode}"
            + (", fill_value=0" if mode == "FILL_OR_DROP" and ctx.bool() else "") + ")")
    del ivd
    return ctx.step(tmpl, [i], "gather", "move")


def op_scatter(ctx: Ctx):
    """lax.scatter{,_add,_mul,_min,_max} with random dimension numbers."""
    i = ctx.pick(lambda v: v.rank >= 1 and v.static())
    v = ctx.pool[i]
    r = v.rank
    k = ctx.int(1, r)
    sdims = ctx.subset(range(r), k, k)
    inserted = sorted(ctx.subset(sdims))
    window = [1 if a in inserted else ctx.int(1, v.shape[a]) for a in range(r)]
    kind_ = ctx.choice(["add", "add", "mul", "min", "max", "set"])
    batch_shape = [ctx.int(1, 3) for _ in range(ctx.int(0, 2))]
    idx_shape = batch_shape + [k]
    mode = ctx.choice(["CLIP", "FILL_OR_DROP", "PROMISE_IN_BOUNDS"])
    if kind_ == "set":
        # replacing with overlapping windows is order-dependent: one window
        batch_shape, idx_shape = [], [k]
        mode = ctx.choice(["CLIP", "FILL_OR_DROP"])
    his = [v.shape[a] - window[a] for a in sdims]
    vals = np.zeros(idx_shape, np.int64)
    for pos in np.ndindex(*idx_shape):
        hi = his[pos[-1]]
        vals[pos] = ctx.int(0, hi) if mode == "PROMISE_IN_BOUNDS" else ctx.int(-2, hi + 2)
    win_dims = [w for a, w in enumerate(window) if a not in inserted]
    upd_rank = len(batch_shape) + len(win_dims)
    uwd = sorted(ctx.subset(range(upd_rank), len(win_dims), len(win_dims)))
    upd_shape = [0] * upd_rank
    it_w = iter(win_dims)
    it_b = iter(batch_shape)
    for p in range(upd_rank):
        upd_shape[p] = next(it_w) if p in uwd else next(it_b)
    u = ctx.new_input(tuple(upd_shape), v.dtype)
    dn = (f"lax.ScatterDimensionNumbers(update_window_dims={tuple(uwd)}, "
          f"inserted_window_dims={tuple(inserted)}, scatter_dims_to_operand_dims={tuple(sdims)})")
    fn = "lax.scatter" if kind_ == "set" else f"lax.scatter_{kind_}"
    tmpl = (f"{fn}({{0}}, np.array({vals.tolist()}, np.int32).reshape({tuple(idx_shape)}), {{1}}, {dn}, "
            f"mode=lax.GatherScatterMode.{mode})")
    return ctx.step(tmpl, [i, u], f"scatter_{kind_}",
                    "inexact" if kind_ in ("add", "mul") else "move")


def op_at(ctx: Ctx):
    """x.at[idx].op(y): NumPy-style scatters (negative indices wrap, out of
    range dropped or clipped)."""
    i = ctx.pick(lambda v: v.rank >= 1)
    v = ctx.pool[i]
    d = v.shape[0]
    hi = d + 2 if isinstance(d, int) else 6
    n = ctx.int(1, 4)
    what = ctx.choice(["set", "add", "mul", "min", "max", "get"])
    mode = ctx.choice(["drop", "clip", "promise_in_bounds", None])
    if mode == "promise_in_bounds" or (what == "set"):
        lo = -d if isinstance(d, int) else -1
        top = d - 1 if isinstance(d, int) else 0
        idxs = [ctx.int(lo, top) for _ in range(n)]
        if what == "set":
            # distinct positions: replacing twice is order-dependent
            pos = {(x % d if isinstance(d, int) else x) for x in idxs}
            if len(pos) != len(idxs):
                raise Reject
            if mode in ("clip", "drop", None):
                mode = "promise_in_bounds"
    else:
        idxs = [ctx.int(-hi, hi) for _ in range(n)]
    m = f", mode={mode!r}" if mode else ""
    if what == "get":
        return ctx.step(f"{{0}}.at[np.array({idxs}, np.int32)].get({m[2:]})", [i], "at_get", "move")
    if ctx.bool():
        y = lit(v.k, ctx)
        return ctx.step(f"{{0}}.at[np.array({idxs}, np.int32)].{what}({y}{m})", [i], f"at_{what}",
                        "inexact" if what in ("add", "mul") else "move")
    j = ctx.new_input((n,) + tuple(v.shape[1:]), v.dtype)
    return ctx.step(f"{{0}}.at[np.array({idxs}, np.int32)].{what}({{1}}{m})", [i, j], f"at_{what}",
                    "inexact" if what in ("add", "mul") else "move")


def op_take_along(ctx: Ctx):
    i = ctx.pick(lambda v: v.rank >= 1 and v.k in "fiu", exact=True)
    v = ctx.pool[i]
    ax = ctx.int(0, v.rank - 1)
    return ctx.step(f"jnp.take_along_axis({{0}}, jnp.argsort({{0}}, axis={ax}), axis={ax})", [i],
                    "take_along_axis", "move")


def op_sort(ctx: Ctx):
    which = ctx.choice(["sort", "sort_desc", "argsort", "top_k", "top_k_idx", "sort_kv", "median"])
    if which in ("argsort", "top_k_idx", "sort_kv"):
        i = ctx.pick(lambda v: v.rank >= 1 and v.k != "b", exact=True)
    else:
        i = ctx.pick(lambda v: v.rank >= 1 and v.k != "b")
    v = ctx.pool[i]
    ax = ctx.int(0, v.rank - 1)
    if which == "sort":
        return ctx.step(f"jnp.sort({{0}}, axis={ax})", [i], "sort", "move")
    if which == "sort_desc":
        return ctx.step(f"jnp.sort({{0}}, axis={ax}, descending=True)", [i], "sort", "move")
    if which == "argsort":
        stable = ctx.bool()
        return ctx.step(f"jnp.argsort({{0}}, axis={ax}, stable={stable})", [i], "argsort", "disc")
    if which == "median":
        if v.k != "f":
            raise Reject
        return ctx.step(f"jnp.median({{0}}, axis={ax})", [i], "median", "inexact")
    last = v.shape[-1]
    if which in ("top_k", "top_k_idx"):
        if not isinstance(last, int):
            raise Reject
        kk = ctx.int(1, last)
        return ctx.step(f"lax.top_k({{0}}, {kk})[{0 if which == 'top_k' else 1}]", [i], which,
                        "move" if which == "top_k" else "disc")
    j = ctx.pick(lambda w: w.shape == v.shape)
    return ctx.step(f"lax.sort(({{0}}, {{1}}), dimension={ax}, num_keys=1)[1]", [i, j], "sort_kv",
                    "move")


FLOAT_BODIES = ["jnp.sin({c})", "{c} * 0.5 + 1.0", "-{c}", "jnp.tanh({c}) + {c}", "{c} * {c}",
                "jnp.maximum({c}, 0.25)", "jnp.flip({c}, -1) if {c}.ndim else {c}"]
INT_BODIES = ["{c} + 1", "-{c}", "{c} * 3", "{c} // 2", "jnp.maximum({c}, 2)", "{c} ^ 5"]
UINT_BODIES = ["{c} + 1", "{c} * 3", "{c} // 2", "jnp.maximum({c}, 2)", "{c} ^ 5"]
BOOL_BODIES = ["~{c}", "{c}", "{c} ^ True"]


def body(ctx: Ctx, v: Val, c: str) -> str:
    tab = {"f": FLOAT_BODIES, "i": INT_BODIES, "u": UINT_BODIES, "b": BOOL_BODIES}[v.k]
    return f"({ctx.choice(tab).format(c=c)}).astype({c}.dtype)"


def op_control(ctx: Ctx):
    which = ctx.choice(["cond", "switch", "fori", "fori_dyn", "while", "scan", "scan_rev", "map"])
    i = ctx.pick()
    v = ctx.pool[i]
    kind_ = "move" if v.k != "f" else "inexact"
    if which == "cond":
        p = ctx.pick(lambda w: w.k in "fiub", exact=True)
        pred = "{1}.ravel()[0] > 0" if ctx.pool[p].k != "b" else "{1}.ravel()[0]"
        if ctx.pool[p].size_hint() == 0:
            raise Reject
        tmpl = (f"lax.cond({pred}, lambda a: {body(ctx, v, 'a')}, "
                f"lambda a: {body(ctx, v, 'a')}, {{0}})")
        return ctx.step(tmpl, [i, p], "cond", kind_)
    if which == "switch":
        p = ctx.pick(lambda w: w.k in "iu" and w.rank == 0, exact=True)
        fns = ", ".join(f"lambda a: {body(ctx, v, 'a')}" for _ in range(ctx.int(2, 3)))
        return ctx.step(f"lax.switch({{1}}, [{fns}], {{0}})", [i, p], "switch", kind_)
    if which in ("fori", "fori_dyn"):
        n = ctx.int(0, 4)
        hi = str(n)
        operands = [i]
        if which == "fori_dyn":
            sym = [w for w in range(len(ctx.pool)) if not ctx.pool[w].static()]
            if sym:
                j = ctx.pick(lambda w: not w.static())
                operands.append(j)
                ax = next(a for a, d in enumerate(ctx.pool[j].shape) if not isinstance(d, int))
                hi = f"{{1}}.shape[{ax}]"
            else:
                j = ctx.pick(lambda w: w.k in "iu" and w.rank == 0, exact=True)
                operands.append(j)
                hi = "jnp.clip({1}, 0, 5)"
        b = body(ctx, v, "c")
        if v.k in "iu" and ctx.bool():
            b = "(c + i).astype(c.dtype)"
        return ctx.step(f"lax.fori_loop(0, {hi}, lambda i, c: {b}, {{0}})", operands, "fori_loop",
                        kind_)
    if which == "while":
        n = ctx.int(0, 4)
        tmpl = (f"lax.while_loop(lambda s: s[0] < {n}, lambda s: (s[0] + 1, {body(ctx, v, 's[1]')}), "
                f"(0, {{0}}))[1]")
        return ctx.step(tmpl, [i], "while_loop", kind_)
    if which in ("scan", "scan_rev"):
        i = ctx.pick(lambda w: w.rank >= 1 and w.k in "fiu" and isinstance(w.shape[0], int)
                     and w.shape[0] > 0)
        v = ctx.pool[i]
        rev = which == "scan_rev"
        out = ctx.choice([0, 1])
        cbody = ("(c * 0.5 + x).astype(c.dtype)" if v.k == "f" else "(c + x).astype(c.dtype)")
        ybody = ("jnp.tanh(c) * x" if v.k == "f" else "c * x")
        unroll = ctx.choice([1, 1, 2])
        tmpl = (f"lax.scan(lambda c, x: ({cbody}, {ybody}), {{0}}[0], {{0}}, reverse={rev}, "
                f"unroll={unroll})[{out}]")
        return ctx.step(tmpl, [i], "scan", kind_)
    i = ctx.pick(lambda w: w.rank >= 1)
    v = ctx.pool[i]
    return ctx.step(f"lax.map(lambda a: {body(ctx, v, 'a')}, {{0}})", [i], "map", kind_)


def op_special(ctx: Ctx):
    """Compositions as libraries write them: one_hot, layer norm, clip by
    norm, where-masked softmax, argmax of one_hot."""
    which = ctx.choice(["one_hot", "layernorm", "masked_softmax", "nan_to_num", "isclose",
                        "einsum_outer", "triu_mask"])
    if which == "one_hot":
        i = ctx.pick(lambda v: v.k in "iu" and v.rank <= 2)
        return ctx.step(f"jax.nn.one_hot({{0}}, {ctx.int(1, 6)})", [i], "one_hot", "move")
    if which == "layernorm":
        i = ctx.pick(lambda v: v.k == "f" and v.rank >= 1)
        return ctx.step("({0} - {0}.mean(-1, keepdims=True)) * lax.rsqrt({0}.var(-1, keepdims=True) "
                        "+ 1e-5)", [i], "layernorm", "inexact")
    if which == "masked_softmax":
        i = ctx.pick(lambda v: v.k == "f" and v.rank >= 1)
        m = ctx.pick(lambda v: v.k == "b" and broadcastable(v.shape, ctx.pool[i].shape), exact=True)
        return ctx.step("jax.nn.softmax(jnp.where({1}, {0}, -1e9), axis=-1)", [i, m],
                        "masked_softmax", "inexact")
    if which == "nan_to_num":
        i = ctx.pick(lambda v: v.k == "f")
        return ctx.step("jnp.nan_to_num({0}, nan=0.5, posinf=2.0, neginf=-2.0)", [i], "nan_to_num",
                        "move")
    if which == "isclose":
        i = ctx.pick(lambda v: v.k == "f", exact=True)
        return ctx.step("jnp.isclose({0}, 0.5, atol=0.5)", [i], "isclose", "disc")
    if which == "einsum_outer":
        i = ctx.pick(lambda v: v.k == "f" and v.rank == 1)
        return ctx.step("jnp.einsum('i,j->ij', {0}, {0})", [i], "einsum_outer", "inexact")
    i = ctx.pick(lambda v: v.rank >= 2)
    return ctx.step("jnp.where(jnp.triu(jnp.ones({0}.shape[-2:], bool)), {0}, 0)", [i],
                    "triu_mask", "move")


def op_pattern(ctx: Ctx):
    """The shapes the fusion passes look for (Gemm, Gelu, LayerNormalization,
    RMS norm, Softmax, BatchNormalization, Conv bias, average pools), each
    with random variations that must or must not fuse: other axes, biases
    broadcast along another axis, constants a little off, intermediates that
    are also outputs."""
    which = ctx.choice(["gemm", "gelu_tanh", "gelu_erf", "layernorm", "rmsnorm", "softmax",
                        "batchnorm", "conv_bias", "avg_pool", "transpose_chain"])
    if which == "gemm":
        try:
            i = ctx.pick(lambda v: v.k == "f" and v.rank == 2 and v.static(1))
        except Reject:
            i = ctx.new_input(ctx.random_shape(2), ctx.choice(
                [d for d in ctx.cfg.dtypes if kind(d) == "f"] or ["float32"]))
        v = ctx.pool[i]
        k, n = v.shape[1], ctx.dim()
        tw = ctx.bool()
        w = ctx.new_input((n, k) if tw else (k, n), v.dtype)
        bshape = ctx.choice([(n,), (1, n), (v.shape[0], 1) if isinstance(v.shape[0], int) else (1,),
                             (), (1,)])
        b = ctx.new_input(bshape, v.dtype)
        alpha = ctx.choice(["", " * 0.5", " * 2.0"])
        mm = "{0} @ {1}.T" if tw else "{0} @ {1}"
        order = ctx.choice(["({mm}){alpha} + {{2}}", "{{2}} + ({mm}){alpha}", "({mm} + {{2}}){alpha}"])
        return ctx.step(order.format(mm=mm, alpha=alpha).replace("{{2}}", "{2}"), [i, w, b], "gemm",
                        "inexact")
    if which in ("gelu_tanh", "gelu_erf"):
        i = ctx.pick(lambda v: v.k == "f")
        c1 = ctx.choice(["0.044715", "0.044715", "0.05"])
        c2 = ctx.choice(["0.7978845608", "0.7978845608", "0.8"])
        half = ctx.choice(["0.5", "0.5", "0.6"])
        if which == "gelu_tanh":
            tmpl = f"{half} * {{0}} * (1 + jnp.tanh({c2} * ({{0}} + {c1} * {{0}} ** 3)))"
        else:
            r2 = ctx.choice(["1.4142135623730951", "1.4142135623730951", "1.5"])
            tmpl = f"{{0}} * {half} * (1 + lax.erf({{0}} / {r2}))"
        return ctx.step(tmpl, [i], which, "inexact")
    if which in ("layernorm", "rmsnorm"):
        i = ctx.pick(lambda v: v.k == "f" and v.rank >= 1)
        v = ctx.pool[i]
        ax = ctx.choice([-1, -1, 0, v.rank - 1] if v.rank > 1 else [-1])
        eps = ctx.choice(["1e-5", "1e-6", "0.1"])
        g = ctx.new_input(tuple(d if isinstance(d, int) else 1 for d in v.shape[-1:]), v.dtype)
        if which == "rmsnorm":
            tmpl = (f"{{0}} * lax.rsqrt(jnp.mean(jnp.square({{0}}), axis={ax}, keepdims=True) + {eps})"
                    f" * {{1}}")
        else:
            var = ctx.choice(["jnp.var({x}, axis={ax}, keepdims=True)",
                              "jnp.mean(jnp.square({x} - jnp.mean({x}, axis={ax}, keepdims=True)), "
                              "axis={ax}, keepdims=True)"]).format(x="{0}", ax=ax)
            tmpl = (f"({{0}} - jnp.mean({{0}}, axis={ax}, keepdims=True)) / jnp.sqrt({var} + {eps})"
                    f" * {{1}} + 0.5")
        return ctx.step(tmpl, [i, g], which, "inexact")
    if which == "softmax":
        i = ctx.pick(lambda v: v.k == "f" and v.rank >= 1)
        v = ctx.pool[i]
        a1 = ctx.int(0, v.rank - 1)
        a2 = a1 if ctx.bool() or v.rank == 1 else ctx.int(0, v.rank - 1)
        tmpl = (f"jnp.exp({{0}} - jnp.max({{0}}, axis={a1}, keepdims=True)) / "
                f"jnp.sum(jnp.exp({{0}} - jnp.max({{0}}, axis={a1}, keepdims=True)), axis={a2}, "
                f"keepdims=True)")
        return ctx.step(tmpl, [i], "softmax_manual", "inexact")
    if which == "batchnorm":
        i = ctx.pick(lambda v: v.k == "f" and v.rank >= 2 and v.static(1))
        v = ctx.pool[i]
        c = v.shape[1]
        shape = ctx.choice([(c,) + (1,) * (v.rank - 2), (1, c) + (1,) * (v.rank - 2)])
        m = ctx.new_input(shape, v.dtype)
        var = ctx.new_input(shape, v.dtype)
        tmpl = "({0} - {1}) * lax.rsqrt(jnp.abs({2}) + 1e-3) * 1.5 + 0.25"
        return ctx.step(tmpl, [i, m, var], "batchnorm", "inexact")
    if which == "conv_bias":
        nsp = ctx.int(1, 2)
        dt = ctx.choice([d for d in ctx.cfg.dtypes if d in ("float32", "float16", "bfloat16")] or
                        ["float32"])
        cin, cout = ctx.int(1, 3), ctx.int(1, 3)
        sp = tuple(ctx.int(2, 5) for _ in range(nsp))
        nhwc = ctx.bool()
        x = ctx.new_input((ctx.int(1, 2),) + ((sp + (cin,)) if nhwc else ((cin,) + sp)), dt)
        w = ctx.new_input(((1,) * nsp + (cin, cout)) if nhwc else ((cout, cin) + (1,) * nsp), dt)
        dn = ("NWC", "WIO", "NWC") if nhwc and nsp == 1 else ("NHWC", "HWIO", "NHWC") if nhwc \
            else None
        bshape = ctx.choice([(cout,), (1, cout) + (1,) * nsp, (cout,) + (1,) * nsp, sp[-1:]]) \
            if not nhwc else ctx.choice([(cout,), (1,) * (nsp + 1) + (cout,), sp[-1:] + (1,)])
        b = ctx.new_input(bshape, dt)
        tmpl = (f"lax.conv_general_dilated({{0}}, {{1}}, {(1,) * nsp}, 'SAME', "
                f"dimension_numbers={dn!r}) + {{2}}")
        return ctx.step(tmpl, [x, w, b], "conv_bias", "inexact")
    if which == "avg_pool":
        i = ctx.pick(lambda v: v.k == "f" and v.rank >= 3 and v.static())
        v = ctx.pool[i]
        win = tuple([1] + [ctx.int(1, min(3, d)) for d in v.shape[1:-1]] + [1])
        strides = tuple([1] + [ctx.int(1, 2) for _ in v.shape[1:-1]] + [1])
        pad = ctx.choice(["'VALID'", "'SAME'"])
        div = ctx.choice(["float(np.prod({win}))", "float(np.prod({win})) + 1"]).format(win=win)
        tmpl = f"lax.reduce_window({{0}}, 0.0, lax.add, {win}, {strides}, {pad}) / {div}"
        return ctx.step(tmpl.replace("0.0", "jnp.asarray(0, {0}.dtype)"), [i], "avg_pool",
                        "inexact")
    # transposes around elementwise ops with broadcast operands
    i = ctx.pick(lambda v: v.rank >= 2)
    v = ctx.pool[i]
    p1 = ctx.perm(v.rank)
    p2 = ctx.perm(v.rank)
    bshape = [1] * v.rank
    bshape[ctx.int(0, v.rank - 1)] = -1
    tshape = [v.shape[p1[a]] for a in range(v.rank)]
    bsh = tuple(d if b == -1 and isinstance(d, int) else 1 for d, b in zip(tshape, bshape))
    b = ctx.new_input(bsh, v.dtype)
    op = "+" if v.k != "b" else "&"
    tmpl = f"jnp.transpose(jnp.transpose({{0}}, {tuple(p1)}) {op} {{1}}, {tuple(p2)})"
    return ctx.step(tmpl, [i, b], "transpose_chain", "move" if v.k != "f" else "cr")


OPS: dict[str, tuple[Callable, int]] = {  # name -> (generator, weight)
    "pattern": (op_pattern, 5),
    "unary": (op_unary, 8), "binary": (op_binary, 8), "where": (op_where, 2),
    "clamp": (op_clamp, 1), "convert": (op_convert, 3), "bitcast": (op_bitcast, 1),
    "reshape": (op_reshape, 2), "transpose": (op_transpose, 2), "expand_squeeze": (op_expand_squeeze, 1),
    "broadcast": (op_broadcast, 2), "slice": (op_slice, 2), "lax_slice": (op_lax_slice, 1),
    "dynamic_slice": (op_dynamic_slice, 2), "dynamic_update_slice": (op_dynamic_update_slice, 1),
    "index_scalar": (op_scalar_index, 1), "pad": (op_pad, 2), "concat": (op_concat, 2),
    "flip_roll": (op_flip_roll, 2), "iota": (op_iota, 1), "reduce": (op_reduce, 5),
    "reduce_window": (op_reduce_window, 2), "dot_general": (op_dot_general, 3),
    "matmul": (op_matmul, 1), "conv": (op_conv, 2), "take": (op_take, 2), "index": (op_index, 2),
    "gather": (op_gather, 3), "scatter": (op_scatter, 3), "at": (op_at, 2),
    "take_along": (op_take_along, 1), "sort": (op_sort, 3), "control": (op_control, 4),
    "special": (op_special, 2),
}


@dataclasses.dataclass
class Config:
    dtypes: list = dataclasses.field(default_factory=lambda: list(ALL_DTYPES))
    symbolic: bool = False
    zero: bool = False
    mix: bool = True  # operands of different dtypes (jnp promotion)
    batching: bool = True  # gather batching dims
    max_steps: int = 6
    ops: list = dataclasses.field(default_factory=lambda: sorted(OPS))
    specials: bool = True  # one more run with NaN, inf, -0, extreme integers
    debug: bool = False


@st.composite
def programs(draw, cfg: Config):
    x64 = draw(st.booleans()) if any(d in WIDE for d in cfg.dtypes) else False
    dts = [d for d in cfg.dtypes if x64 or d not in WIDE]
    main = draw(st.sampled_from(dts))
    sub = dataclasses.replace(cfg, dtypes=dts)
    with jax.enable_x64(x64):
        ctx = Ctx(draw, sub)
        for _ in range(draw(st.integers(1, 2))):
            dt = main if draw(st.booleans()) or not cfg.mix else draw(st.sampled_from(dts))
            shape = ctx.random_shape()
            ctx.new_input(shape, dt)
        weights = [OPS[n][1] for n in cfg.ops]
        names = [n for n in cfg.ops for _ in range(OPS[n][1])]
        del weights
        n_steps = draw(st.integers(1, cfg.max_steps))
        for _ in range(n_steps):
            op = draw(st.sampled_from(names))
            try:
                OPS[op][0](ctx)
            except Reject:
                pass
        assume(ctx.steps)
        # outputs: the last step, and sometimes an earlier value
        outs = [ctx.pool[-1]]
        if len(ctx.steps) > 1 and draw(st.booleans()):
            k = draw(st.integers(0, len(ctx.steps) - 2))
            name = ctx.steps[k][0]
            outs.append(next(v for v in ctx.pool if v.name == name))
    all_coarse = coarsest([v.coarse for v in ctx.pool])
    return Program(ctx.inputs, ctx.steps, [v.name for v in outs], x64, ctx.ops, all_coarse,
                   [v.coarse for v in outs], [v.dtype for v in outs])


# ---------------------------------------------------------------------------
# checking one program


class Finding(AssertionError):
    """onnxruntime and JAX disagree, or a valid program did not convert or run."""

    def __init__(self, category: str, detail: str, program: Program):
        self.category = category
        self.detail = detail
        self.program = program
        super().__init__(f"[{category}] {detail}\n{program}")


@dataclasses.dataclass
class Stats:
    programs: int = 0
    converted: int = 0
    refused: int = 0
    findings: int = 0
    runs: int = 0
    refused_by_op: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    ops: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    op_dtypes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    findings_by_category: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    kernel_missing: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    kernel_missing_examples: dict = dataclasses.field(default_factory=dict)
    zero_size: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    zero_size_examples: dict = dataclasses.field(default_factory=dict)
    refusal_examples: dict = dataclasses.field(default_factory=dict)
    invalid: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def to_json(self):
        return {"programs": self.programs, "converted": self.converted, "refused": self.refused,
                "findings": self.findings, "runs": self.runs,
                "refused_by_op": dict(self.refused_by_op.most_common()),
                "ops": dict(self.ops.most_common()),
                "op_dtypes": {f"{a}:{b}": n for (a, b), n in self.op_dtypes.most_common()},
                "findings_by_category": dict(self.findings_by_category),
                "kernel_missing": dict(self.kernel_missing.most_common()),
                "kernel_missing_examples": self.kernel_missing_examples,
                "zero_size": dict(self.zero_size), "zero_size_examples": self.zero_size_examples,
                "refusal_examples": self.refusal_examples, "invalid": dict(self.invalid)}


def random_input(rng, shape, dtype: str):
    """Floats normal (bfloat16 values passed as float32), integers in
    [-10, 10) (unsigned [0, 10)), booleans half true."""
    k = kind(dtype)
    if k == "b":
        return np.asarray(rng.random(shape) < 0.5)
    if k == "u":
        return np.asarray(rng.integers(0, 10, size=shape).astype(np_dtype(dtype)))
    if k == "i":
        return np.asarray(rng.integers(-10, 10, size=shape).astype(np_dtype(dtype)))
    x = rng.standard_normal(shape).astype(np.float32).astype(np_dtype(dtype))
    return np.asarray(x.astype(np.float32) if dtype == "bfloat16" else x)


def special_input(rng, shape, dtype: str):
    """Like random_input, with about a quarter of the elements replaced by
    edge values: NaN, +-inf, +-0, the largest and smallest normal floats;
    the smallest and largest integers."""
    x = random_input(rng, shape, dtype)
    k = kind(dtype)
    if k == "b" or x.size == 0:
        return x
    if k == "f":
        dt = np_dtype(dtype)
        fi = ml_dtypes.finfo(dt) if dtype == "bfloat16" else np.finfo(dt)
        edge = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, float(fi.max), float(-fi.max),
                         float(fi.tiny), 1.0, -1.0], np.float64).astype(dt)
    else:
        ii = np.iinfo(np_dtype(dtype))
        edge = np.array([ii.min, ii.max, ii.min + 1, ii.max - 1, 0, 1], np.int64).astype(
            np_dtype(dtype)) if k == "i" else np.array([ii.max, ii.max - 1, 0, 1, ii.max // 2 + 1],
                                                       np.uint64).astype(np_dtype(dtype))
    flat = np.array(x.astype(np_dtype(dtype)) if dtype == "bfloat16" else x).reshape(-1)
    pick = rng.random(flat.size) < 0.25
    flat[pick] = edge[rng.integers(0, edge.size, size=int(pick.sum()))]
    out = flat.reshape(np.shape(x))
    return np.asarray(out.astype(np.float32) if dtype == "bfloat16" else out)


def _session(model):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def compare(actual, expected, rtol, atol, spread):
    """None when they agree, else a description of the first bad element."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        return f"shape {actual.shape} != JAX {expected.shape}"
    if actual.dtype != expected.dtype:
        return f"dtype {actual.dtype} != JAX {expected.dtype}"
    if actual.size == 0:
        return None
    if kind(expected.dtype) != "f":
        bad = np.flatnonzero(actual != expected)
        if bad.size:
            i = np.unravel_index(bad[0], expected.shape)
            return (f"{bad.size} of {expected.size} elements differ, first at {tuple(map(int, i))}: "
                    f"onnx {actual[i]!r} jax {expected[i]!r}")
        return None
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    finite = np.isfinite(a) & np.isfinite(e)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(finite, np.abs(a - e), 0.0)
    bound = atol + rtol * np.abs(e) + 4 * spread
    bad = (diff > bound) & finite
    # NaN / inf at other places, unless the perturbed JAX runs move there too
    nonfinite_mismatch = ~finite & ~((np.isnan(a) & np.isnan(e)) | (a == e))
    bad |= nonfinite_mismatch & ~np.isinf(spread)
    if bad.any():
        idx = np.flatnonzero(bad)
        i = np.unravel_index(idx[0], expected.shape)
        return (f"{idx.size} of {expected.size} elements differ, first at {tuple(map(int, i))}: "
                f"onnx {actual[i]!r} jax {expected[i]!r} (bound {bound[i]:.3g}, spread {spread[i]:.3g})")
    return None


def _spread(fn, xs, expected, prog: Program, rng, n=2):
    """Elementwise max |JAX(x perturbed) - JAX(x)| over n perturbations of the
    float inputs by a few units of the program's coarsest float type."""
    eps = EPS.get(prog.coarse or "float32", EPS["float32"])
    out = [np.zeros(np.shape(e), np.float64) for e in expected]
    for _ in range(n):
        px = []
        for x, (_, dt) in zip(xs, prog.inputs):
            if kind(dt) == "f":
                noise = 1 + eps * rng.uniform(-4, 4, size=np.shape(x))
                y = (np.asarray(x, np.float64) * noise).astype(np_dtype(dt))
                px.append(np.asarray(y.astype(np.float32) if dt == "bfloat16" else y))
            else:
                px.append(x)
        ys = [np.asarray(y) for y in jax.tree_util.tree_leaves(fn(*px))]
        for k, (y, e) in enumerate(zip(ys, expected)):
            if kind(e.dtype) != "f" or y.shape != e.shape:
                continue
            y64, e64 = y.astype(np.float64), e.astype(np.float64)
            with np.errstate(invalid="ignore", over="ignore"):
                d = np.abs(y64 - e64)
            moved = (np.isnan(y64) != np.isnan(e64)) | (np.isinf(y64) & (y64 != e64))
            d = np.where(np.isfinite(d), d, 0.0)
            d = np.where(moved, np.inf, d)
            out[k] = np.maximum(out[k], d)
    return out


REFUSALS = (hlo2onnx.UnsupportedOpError,)
# Float sums of edge values depend on the order of the additions
# (FLT_MAX + FLT_MAX - FLT_MAX is inf or FLT_MAX; integers near 2^31 made
# floats cancel): no edge-value run for them.  Integer sums and products
# wrap alike in any order and keep theirs.
FLOAT_SUMS = {"sum", "prod", "mean", "var", "norm", "cumsum", "cumprod", "logsumexp", "softmax",
              "log_softmax", "layernorm", "rmsnorm", "softmax_manual", "masked_softmax", "median",
              "reduce_window_add", "avg_pool", "scatter_add", "scatter_mul", "at_add", "at_mul",
              "gemm", "batchnorm", "conv_bias", "scan", "fori_loop", "while_loop"}
TO_FLOAT = {"mean", "var", "norm", "logsumexp", "softmax", "log_softmax", "median"}
# No edge-value run for programs with these: XLA's CPU convolution skips the
# padding where StableHLO multiplies it (0 * inf is NaN in ONNX's Conv and
# finite in JAX), and how a dot product meets 0 * inf depends on its
# blocking.  Both are the runtimes', not the converter's.
NO_EDGE_VALUES = {"conv", "dot_general", "matmul", "einsum", "einsum_outer",
                  # MaxPool: onnxruntime's may not propagate NaN (documented in
                  # src/lower/conv.c); their operands are NaN-free otherwise
                  "cummax", "cummin", "reduce_window_max", "reduce_window_min"}
KERNEL_MISSING = re.compile(r"Could not find an implementation for (\w+\(\d+\))")


ZERO_SIZE_TYPE = re.compile(r"tensor<(?:[0-9?]+x)*0x")


def touches_zero_size(prog: Program, sizes=(1, 2, 3)) -> bool:
    """Whether JAX's StableHLO for the program has a tensor with a zero-size
    dim at one of the sizes of "B" it runs at (jnp.pad's edge mode makes 1x0
    pieces even for non-empty inputs; x[1:] is empty at B = 1)."""
    with jax.enable_x64(prog.x64):
        for size in sizes:
            specs = [jax.ShapeDtypeStruct(tuple(size if isinstance(d, str) else d for d in shape),
                                          dt)
                     for shape, dt in zip(prog.input_specs(), prog.input_dtypes())]
            try:
                text = jax.jit(prog.function()).lower(*specs).as_text()
            except Exception:  # noqa: BLE001 - not valid at this size
                continue
            if ZERO_SIZE_TYPE.search(text):
                return True
    return False


def check_program(prog: Program, stats: Stats | None = None, sizes=(1, 3), seed=0,
                  zero_mode=False, specials=True):
    """Converts, runs and compares one program; raises Finding on a
    disagreement.  Returns "ok", "refused", "kernel-missing" or (outside
    the zero mode) "zero-size": a finding in a program whose StableHLO has a
    zero-size tensor is issue 14 part 2's (empty tensors), counted and kept
    like the missing kernels."""
    stats = stats if stats is not None else Stats()
    try:
        return _check_program(prog, stats, sizes, seed, specials)
    except Finding as f:
        if zero_mode or not touches_zero_size(prog):
            raise
        stats.zero_size[f.category] += 1
        stats.zero_size_examples.setdefault(f.category, f"{f.detail[:300]}\n{prog}")
        return "zero-size"


def _check_program(prog: Program, stats: Stats, sizes, seed, specials):
    import onnx

    stats.programs += 1
    for label, dt in prog.ops:
        stats.ops[label] += 1
        stats.op_dtypes[(label, dt)] += 1
    with jax.enable_x64(prog.x64):
        fn = prog.function()
        try:
            model = hlo2onnx.to_onnx(fn, prog.input_specs(), input_dtypes=prog.input_dtypes())
        except REFUSALS as e:
            stats.refused += 1
            for op in getattr(e, "ops", None) or ["?"]:
                stats.refused_by_op[op] += 1
                msg = next((m for m in getattr(e, "errors", []) if op in m), str(e))
                stats.refusal_examples.setdefault(op, msg[:300])
            return "refused"
        except hlo2onnx.ConversionError as e:
            raise Finding("conversion-error", f"{type(e).__name__}: {str(e)[:600]}", prog) from None
        except Exception as e:  # noqa: BLE001 - JAX cannot export it (a symbolic dim
            # comparison eval_shape let pass, such as B - 1 >= 1): not a program
            stats.invalid[type(e).__name__] += 1
            return "invalid"
        stats.converted += 1
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as e:  # noqa: BLE001
            raise Finding("checker", f"{type(e).__name__}: {str(e)[:600]}", prog) from None
        try:
            sess = _session(model)
        except Exception as e:  # noqa: BLE001
            missing = KERNEL_MISSING.search(str(e))
            if missing:
                # issue 14 part 1 (an ONNX op onnxruntime has no kernel for at
                # this element type): counted and kept, not shrunk, so that it
                # does not hide the other findings
                key = missing.group(1)
                stats.kernel_missing[key] += 1
                stats.kernel_missing_examples.setdefault(key, str(prog))
                return "kernel-missing"
            raise Finding("ort-load", f"{type(e).__name__}: {str(e)[:600]}", prog) from None
        feeds = [i.name for i in sess.get_inputs()]
        jitted = jax.jit(fn)
        rng = np.random.default_rng(seed)
        symbolic = any(isinstance(d, str) for shape, _ in prog.inputs for d in shape)
        # every size with random values, then the last one with edge values
        runs = [(size, random_input) for size in (sizes if symbolic else (None,))]
        if specials and not any(label in NO_EDGE_VALUES
                                or (label in FLOAT_SUMS and (kind(dt) == "f" or label in TO_FLOAT))
                                for label, dt in prog.ops):
            runs.append((runs[-1][0], special_input))
        for size, draw_input in runs:
            shapes = [tuple(size if isinstance(d, str) else d for d in shape)
                      for shape, _ in prog.inputs]
            xs = [draw_input(rng, s, dt) for s, (_, dt) in zip(shapes, prog.inputs)]
            try:
                expected = [np.asarray(y) for y in jax.tree_util.tree_leaves(jitted(*xs))]
            except Exception:  # noqa: BLE001 - e.g. a shape assertion of JAX's at this size
                continue
            try:
                actual = sess.run(None, dict(zip(feeds, xs)))
            except Exception as e:  # noqa: BLE001
                raise Finding("ort-run", f"B={size}: {type(e).__name__}: {str(e)[:600]}", prog) from None
            stats.runs += 1
            if len(actual) != len(expected):
                raise Finding("outputs", f"{len(actual)} outputs, JAX {len(expected)}", prog)
            spread = None
            for k, (a, e) in enumerate(zip(actual, expected)):
                coarse = prog.out_coarse[k] if k < len(prog.out_coarse) else prog.coarse
                tol = TOL.get(coarse or "float32", 1e-5)
                zero = np.zeros(np.shape(e))
                why = compare(a, e, tol, tol, zero)
                if why is not None and kind(e.dtype) == "f" and np.shape(a) == np.shape(e) \
                        and np.asarray(a).dtype == e.dtype:
                    if spread is None:
                        spread = _spread(jitted, xs, expected, prog, rng)
                    why = compare(a, e, tol, tol, spread[k])
                if why is not None:
                    what = "edge values, " if draw_input is special_input else ""
                    raise Finding("mismatch", f"output {k} ({what}B={size}, tol {tol:g}): {why}\n"
                                  f"inputs: {[x.tolist() for x in xs]}"[:4000], prog)
    return "ok"


# ---------------------------------------------------------------------------
# running: hypothesis for drawing and shrinking


def run(cfg: Config, *, seed: int, programs_limit: int | None = None,
        seconds: float | None = None, stats: Stats | None = None, on_finding=None,
        shrink: bool = True, round_size: int = 150, log=None, after_round=None) -> Stats:
    """Draws and checks programs in rounds of ``round_size`` (seed, seed+1,
    ...), until ``programs_limit`` programs or ``seconds`` of wall time.  A
    finding is shrunk by hypothesis; ``on_finding(Finding)`` gets the
    minimal one and the run goes on with the next round."""
    stats = stats if stats is not None else Stats()
    start = time.time()
    rnd = 0

    def out_of_budget():
        if seconds is not None and time.time() - start > seconds:
            return True
        return programs_limit is not None and stats.programs >= programs_limit

    while not out_of_budget():
        last: list = []

        def test(prog):
            if out_of_budget() and not last:  # noqa: B023 - read while this round runs
                return
            try:
                check_program(prog, stats, seed=seed + rnd, zero_mode=cfg.zero,  # noqa: B023 - read while this round runs
                              specials=cfg.specials)
            except Finding as f:
                last[:] = [f]  # noqa: B023 - read while this round runs
                raise
        phases = None
        from hypothesis import Phase
        phases = [Phase.generate, Phase.shrink] if shrink else [Phase.generate]
        t = settings(max_examples=round_size, deadline=None, database=None, derandomize=False,
                     suppress_health_check=list(HealthCheck), phases=phases,
                     print_blob=False)(given(programs(cfg))(test))
        t = hyp_seed(seed + rnd)(t)
        try:
            t()
        except Finding as f:
            stats.findings += 1
            stats.findings_by_category[f.category] += 1
            if on_finding:
                on_finding(f)
        except Exception as e:
            if log:
                log(f"fuzzer error in round {rnd}: {type(e).__name__}: {e}\n{traceback.format_exc()}")
            else:
                raise
        rnd += 1
        if after_round:
            after_round(stats)
    return stats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--programs", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None, help="wall time budget")
    ap.add_argument("--cpu-seconds", type=float, default=None,
                    help="CPU time budget of this process (for loaded machines), checked between rounds")
    ap.add_argument("--mode", choices=["static", "symbolic", "zero", "mixed"], default="mixed",
                    help="symbolic: a dim 'B' in inputs; zero: size-0 dims; mixed: alternate "
                         "static and symbolic rounds")
    ap.add_argument("--dtypes", default=",".join(ALL_DTYPES))
    ap.add_argument("--exclude-ops", default="", help="op families to leave out (comma-separated)")
    ap.add_argument("--only-ops", default="", help="only these op families")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--round-size", type=int, default=50,
                    help="programs per hypothesis run (one seed each); a finding ends its round")
    ap.add_argument("--stats", help="write the totals as JSON here")
    ap.add_argument("--findings", help="append findings (minimal programs) to this file")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args(argv)
    if args.programs is None and args.seconds is None and args.cpu_seconds is None:
        args.programs = 100
    ops = sorted(OPS)
    if args.only_ops:
        ops = [o for o in args.only_ops.split(",") if o]
    ops = [o for o in ops if o not in set(args.exclude_ops.split(","))]
    base = Config(dtypes=args.dtypes.split(","), ops=ops, max_steps=args.steps, debug=args.debug)
    stats = Stats()
    t0 = time.process_time()
    w0 = time.time()

    def on_finding(f: Finding):
        line = f"FINDING [{f.category}] {f.detail}\n{f.program}\n"
        print(line, flush=True)
        if args.findings:
            with open(args.findings, "a") as fh:
                fh.write(line + "\n")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    modes = {"static": [False], "symbolic": [True], "zero": [False], "mixed": [False, True]}[args.mode]
    k = 0
    while True:
        spent = time.time() - w0
        if args.seconds is not None and spent >= args.seconds:
            break
        if args.cpu_seconds is not None and time.process_time() - t0 >= args.cpu_seconds:
            break
        if args.programs is not None and stats.programs >= args.programs:
            break
        cfg = dataclasses.replace(base, symbolic=modes[k % len(modes)], zero=args.mode == "zero")
        left_s = None if args.seconds is None else args.seconds - spent
        left_n = None if args.programs is None else args.programs - stats.programs
        # a chunk of at most 300 s of wall time, so the CPU budget is checked often enough
        run(cfg, seed=args.seed * 100000 + k * 1000, seconds=min(left_s or 300, 300),
            programs_limit=None if left_n is None else stats.programs + min(left_n, 200),
            stats=stats, on_finding=on_finding, shrink=not args.no_shrink, log=log,
            round_size=args.round_size,
            after_round=lambda st_: _write_stats(args.stats, st_, t0, w0, args))
        k += 1
        if args.stats:
            _write_stats(args.stats, stats, t0, w0, args)
    _write_stats(args.stats, stats, t0, w0, args)
    print(f"programs {stats.programs}, converted {stats.converted}, refused {stats.refused}, "
          f"findings {stats.findings}, onnxruntime runs {stats.runs}, "
          f"CPU {time.process_time() - t0:.0f} s, wall {time.time() - w0:.0f} s")
    return 1 if stats.findings else 0


def _write_stats(path, stats, t0, w0, args):
    if not path:
        return
    d = stats.to_json()
    d.update(cpu_seconds=round(time.process_time() - t0, 1), wall_seconds=round(time.time() - w0, 1),
             seed=args.seed, mode=args.mode)
    with open(path, "w") as fh:
        json.dump(d, fh, indent=1)


if __name__ == "__main__":
    sys.exit(main())
