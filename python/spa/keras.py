"""`spa.keras`: the Keras 3 adapter (see spa.frameworks.keras_adapter), for the torch, TensorFlow and JAX backends.

On TensorFlow and JAX the model is pruned in a torch-backend child process, so torch must be installed
(`pip install 'spa[keras]'`).
"""

from spa.frameworks.keras_adapter import KerasPruneResult, prune

__all__ = ["KerasPruneResult", "prune"]
