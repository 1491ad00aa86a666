"""`spa.flax`: the Flax NNX adapter (see spa.frameworks.flax_adapter); imports flax and jax2onnx when used."""

from spa.frameworks.flax_adapter import FlaxPruneResult, prune

__all__ = ["FlaxPruneResult", "prune"]
