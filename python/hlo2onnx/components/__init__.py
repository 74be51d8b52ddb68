"""Declarations of the supported components, one module per namespace.

Each module calls :func:`hlo2onnx.registry.register` once per component; the
registry imports them on first use (``registry.COMPONENT_MODULES``).  Flax
and JAX are imported inside the factories, so importing these modules is
cheap and does not need Flax.
"""
