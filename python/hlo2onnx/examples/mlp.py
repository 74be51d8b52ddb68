"""The seed's MLP, end to end: build, convert with a dynamic batch, verify.

    python -m hlo2onnx.examples.mlp [-o mlp.onnx] [--opset 20]

Builds ``Linear(30->20) -> BatchNorm -> Dropout -> gelu (exact) ->
Linear(20->10)`` in Flax NNX, converts it with a symbolic batch dimension
"B", runs JAX and onnxruntime on random inputs at batch sizes 1, 3 and 8,
and prints the model's path and the largest differences.  Exits 1 when the
outputs differ by more than the tolerance (rtol = atol = 1e-5).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile


def make_mlp(din: int = 30, dmid: int = 20, dout: int = 10, seed: int = 17):
    """The MLP of the jax2onnx README (:class:`hlo2onnx.examples.models.MLP`)."""
    from flax import nnx

    from .models import MLP

    return MLP(din, dmid, dout, rngs=nnx.Rngs(seed))


def main(argv: list[str] | None = None) -> int:
    import hlo2onnx

    ap = argparse.ArgumentParser(prog="python -m hlo2onnx.examples.mlp", description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", help="model path (default: a temporary directory)")
    ap.add_argument("--opset", type=int, default=None, help="ai.onnx opset (default 20)")
    args = ap.parse_args(argv)

    path = args.output or os.path.join(tempfile.mkdtemp(prefix="hlo2onnx-"), "mlp.onnx")
    model = make_mlp()
    inputs = [("B", 30)]
    onnx_model = hlo2onnx.to_onnx(model, inputs, path, opset=args.opset)
    ops = [n.op_type for n in onnx_model.graph.node]
    result = hlo2onnx.verify(model, path, inputs, batch_sizes=(1, 3, 8), rtol=1e-5, atol=1e-5)

    print(f"model:    {os.path.abspath(path)}")
    opset = next(o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx"))
    print(f"opset:    {opset}")
    print(f"nodes:    {len(ops)} ({', '.join(ops)})")
    print(f"verified: {result}")
    print(f"largest abs diff: {result.max_abs_diff:.3g}")
    print(f"largest rel diff: {result.max_rel_diff:.3g}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
