"""Declarations of the supported components, one module per namespace.

Internal: development tooling of the test suite and of the README, shipped
with the package (the tests run against the installed wheel) but not part
of hlo2onnx's API (not in ``hlo2onnx.__all__``): it may change in any release.

Each module calls :func:`hlo2onnx.registry.register` once per component; the
registry imports them on first use (``registry.COMPONENT_MODULES``).  Flax
and JAX are imported inside the factories, so importing these modules is
cheap and does not need Flax.
"""
