"""`spa.keras`: the Keras 3 adapter (see spa.frameworks.keras_adapter); needs KERAS_BACKEND=torch."""

from spa.frameworks.keras_adapter import KerasPruneResult, prune

__all__ = ["KerasPruneResult", "prune"]
