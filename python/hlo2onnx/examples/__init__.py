"""Runnable examples: ``python -m hlo2onnx.examples.mlp``."""
