"""A StableHLO module whose weights are hex constants, for timing the C core.

``write_module`` writes, in the form JAX prints a function that closes over
big arrays, an MLP of ``layers`` dense layers of width ``width``:

    %w3 = stablehlo.constant dense<"0x...">  : tensor<4096x4096xf32>
    %3 = stablehlo.dot_general %2, %w3, contracting_dims = [1] x [0] ...
    %4 = stablehlo.add %3, %b3 ...      then stablehlo.tanh

Each weight is made from a fixed seed one layer at a time and written as it
is made, so a 1 GB module needs only one layer's worth of memory; the same
seed gives the same weights to :func:`reference`, which computes the
module's output with NumPy to check what onnxruntime computes from the ONNX
file.  With width 4096 and 16 layers the module holds 1 GiB of weights
(2 GiB of hex digits).

    python bench/gen_mlir.py OUT.mlir [--width 4096] [--layers 16]
"""

from __future__ import annotations

import argparse
import math

import numpy as np


def _layer(rng: np.random.Generator, width: int) -> tuple[np.ndarray, np.ndarray]:
    w = rng.random((width, width), dtype=np.float32)
    w -= 0.5
    w *= 2.0 * math.sqrt(3.0) / math.sqrt(width)
    b = rng.random((width,), dtype=np.float32)
    b -= 0.5
    b *= 0.2
    return w, b


def _hex(a: np.ndarray) -> str:
    return a.astype("<f4", copy=False).tobytes().hex().upper()


def write_module(path: str, width: int = 4096, layers: int = 16, seed: int = 0) -> int:
    """Writes the module; returns the number of weight bytes in it."""
    rng = np.random.default_rng(seed)
    vec = f"tensor<1x{width}xf32>"
    mat = f"tensor<{width}x{width}xf32>"
    bias = f"tensor<{width}xf32>"
    total = 0
    with open(path, "w", encoding="ascii") as f:
        f.write("module @jit_mlp attributes {mhlo.num_partitions = 1 : i32, "
                "mhlo.num_replicas = 1 : i32} {\n")
        f.write(f"  func.func public @main(%arg0: {vec}) -> ({vec} "
                '{jax.result_info = "result"}) {\n')
        prev = "%arg0"
        for i in range(layers):
            w, b = _layer(rng, width)
            total += w.nbytes + b.nbytes
            f.write(f'    %w{i} = stablehlo.constant dense<"0x')
            f.write(_hex(w))
            f.write(f'"> : {mat}\n')
            del w
            f.write(f'    %b{i} = stablehlo.constant dense<"0x{_hex(b)}"> : {bias}\n')
            f.write(f"    %d{i} = stablehlo.dot_general {prev}, %w{i}, contracting_dims = [1] x [0], "
                    f"precision = [DEFAULT, DEFAULT] : ({vec}, {mat}) -> {vec}\n")
            f.write(f"    %e{i} = stablehlo.broadcast_in_dim %b{i}, dims = [1] : ({bias}) -> {vec}\n")
            f.write(f"    %s{i} = stablehlo.add %d{i}, %e{i} : {vec}\n")
            f.write(f"    %t{i} = stablehlo.tanh %s{i} : {vec}\n")
            prev = f"%t{i}"
        f.write(f"    return {prev} : {vec}\n  }}\n}}\n")
    return total


def reference(x: np.ndarray, width: int = 4096, layers: int = 16, seed: int = 0) -> np.ndarray:
    """The module's output for ``x`` (shape (1, width)), in float64."""
    rng = np.random.default_rng(seed)
    y = x.astype(np.float64)
    for _ in range(layers):
        w, b = _layer(rng, width)
        y = np.tanh(y @ w.astype(np.float64) + b)
    return y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    n = write_module(a.out, a.width, a.layers, a.seed)
    print(f"{a.out}: {n} weight bytes")


if __name__ == "__main__":
    main()
