"""Train a small CNN on scikit-learn's digits, convert it, check it.

    python -m hlo2onnx.examples [-o digits_cnn.onnx] [--epochs 20] [--opset 20]

The end-to-end job of the README's first command:

1. trains the example :class:`~hlo2onnx.examples.models.CNN` (two Conv ->
   relu -> avg_pool stages, two Linear layers, log_softmax), sized for 8x8
   images, on 80% of scikit-learn's handwritten digits (1797 images that
   ship with scikit-learn: nothing is downloaded), with optax's Adam, for a
   few seconds;
2. converts it with a dynamic batch dimension "B" and NCHW input
   (``inputs_as_nchw=True``): the ONNX model takes ``[B, 1, 8, 8]``;
3. verifies it with onnxruntime against JAX on random inputs at batch sizes
   1, 3 and 8 (:func:`hlo2onnx.verify`), then classifies the held-out 20%
   with both and prints a summary: file size, op counts, the largest
   differences, and the test accuracy of JAX and onnxruntime side by side.

Exits 1 when onnxruntime and JAX differ beyond the tolerance (rtol = atol =
1e-5) or disagree on a test image's class.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time

import numpy as np

TOLERANCE = 1e-5


def load_digits_split(seed: int = 0, test_fraction: float = 0.2):
    """scikit-learn's 8x8 digits scaled to [0, 1] as NHWC float32 images:
    ``(x_train, y_train, x_test, y_test)``, a fixed random split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]  # (1797, 8, 8, 1)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = round(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def train_cnn(x, y, *, epochs: int = 20, batch_size: int = 64, learning_rate: float = 1e-2,
              seed: int = 0):
    """The example CNN for 8x8 images, trained with Adam on (x, y)."""
    import jax
    import optax
    from flax import nnx

    from .models import CNN

    # An "rbg" key: Flax's initializers then compile in a fraction of the
    # time the default threefry generator takes (seconds on a small machine).
    rngs = nnx.Rngs(jax.random.key(seed, impl="rbg"))
    model = CNN(height=8, width=8, features=(8, 16), hidden=32, rngs=rngs)
    optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)

    def loss_fn(m, xb, yb):
        log_probs = m(xb)  # the model ends in log_softmax
        return -log_probs[jax.numpy.arange(yb.shape[0]), yb].mean()

    @nnx.jit
    def step(m, opt, xb, yb):
        loss, grads = nnx.value_and_grad(loss_fn)(m, xb, yb)
        opt.update(m, grads)
        return loss

    rng = np.random.default_rng(seed)
    n_batches = len(x) // batch_size  # equal batches: one compiled step
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for b in range(n_batches):
            idx = order[b * batch_size:(b + 1) * batch_size]
            step(model, optimizer, x[idx], y[idx])
    return model


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hlo2onnx.examples",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", help="model path (default: in a temporary directory)")
    ap.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    ap.add_argument("--opset", type=int, default=None, help="ai.onnx opset (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="data split and initialisation seed")
    args = ap.parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

    import jax
    import onnxruntime as ort

    import hlo2onnx

    t0 = time.perf_counter()
    x_train, y_train, x_test, y_test = load_digits_split(args.seed)
    model = train_cnn(x_train, y_train, epochs=args.epochs, seed=args.seed)
    t_train = time.perf_counter() - t0

    path = args.output or os.path.join(tempfile.mkdtemp(prefix="hlo2onnx-"), "digits_cnn.onnx")
    inputs = [("B", 8, 8, 1)]  # the Flax model's NHWC input
    t0 = time.perf_counter()
    onnx_model = hlo2onnx.to_onnx(model, inputs, path, opset=args.opset, inputs_as_nchw=True,
                                  input_names=["image"], output_names=["log_probs"])
    t_convert = time.perf_counter() - t0
    check = hlo2onnx.verify(model, path, inputs, rtol=TOLERANCE, atol=TOLERANCE,
                            batch_sizes=(1, 3, 8), inputs_as_nchw=True)

    # The held-out images through both: JAX on NHWC, onnxruntime on NCHW.
    jax_out = np.asarray(jax.jit(lambda m, x: m(x))(model, x_test))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    ort_out = sess.run(None, {"image": x_test.transpose(0, 3, 1, 2)})[0]
    jax_pred, ort_pred = jax_out.argmax(-1), ort_out.argmax(-1)
    test_diff = float(np.max(np.abs(ort_out - jax_out)))
    agree = int((jax_pred == ort_pred).sum())

    ops = collections.Counter(n.op_type for n in onnx_model.graph.node)
    opset = next(o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx"))
    dims = [d.dim_param or d.dim_value for d in onnx_model.graph.input[0].type.tensor_type.shape.dim]
    ok = check.ok and agree == len(y_test) and test_diff <= TOLERANCE * (1 + np.abs(jax_out).max())

    print("hlo2onnx: a CNN trained on scikit-learn's digits, converted to ONNX and checked "
          "with onnxruntime")
    print(f"  trained     {len(x_train)} images (8x8), {args.epochs} epochs, {t_train:.1f} s")
    print(f"  converted   {path}")
    print(f"              {_size(os.path.getsize(path))}, opset {opset}, input 'image' "
          f"[{', '.join(map(str, dims))}] (NCHW), {t_convert:.2f} s")
    print(f"  nodes       {sum(ops.values())}: "
          + ", ".join(f"{op} {k}" for op, k in ops.most_common()))
    print(f"  verified    {'OK' if check.ok else 'MISMATCH'} on random inputs at B = 1, 3, 8 "
          f"({check.runs} runs): largest abs diff {check.max_abs_diff:.2g} "
          f"(passing: |diff| <= {TOLERANCE:g} + {TOLERANCE:g} * |JAX|)")
    print(f"  test split  {len(y_test)} held-out images, largest abs diff {test_diff:.2g}")
    print(f"                            {'JAX':>8}  {'onnxruntime':>12}")
    print(f"    accuracy                {100 * np.mean(jax_pred == y_test):7.1f}%  "
          f"{100 * np.mean(ort_pred == y_test):11.1f}%")
    print(f"    same class as JAX       {agree} of {len(y_test)}")
    if not check.ok:
        print(str(check), file=sys.stderr)
    print("OK" if ok else "FAILED: onnxruntime and JAX differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
