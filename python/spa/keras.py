"""`spa.keras`: the Keras 3 adapter (see spa.frameworks.keras), for the torch, TensorFlow and JAX backends.

On TensorFlow and JAX the model is pruned in a torch-backend child process, so torch must be installed
(`pip install 'spa[keras]'`). `export_saved_model` keeps a Keras model (a pruned subclassed one, say) as a
TensorFlow SavedModel, checked against the model (TensorFlow or JAX backend).
"""

from spa.frameworks.keras.adapter import KerasPruneResult, prune
from spa.frameworks.keras.saved_model import export_saved_model

__all__ = ["KerasPruneResult", "export_saved_model", "prune"]
