"""Example models and runnable jobs.

* ``python -m hlo2onnx.examples``: train a CNN on scikit-learn's digits,
  convert it, verify it and compare accuracies (:mod:`.digits`);
* ``python -m hlo2onnx.examples.mlp``: the seed's MLP with a dynamic batch;
* :mod:`.models`: the models of jax2onnx v0.1.0's Examples table (CNNs, MLP,
  transformer parts, ViTs), which the registry converts in four variants
  (:mod:`hlo2onnx.components.examples`).
"""
