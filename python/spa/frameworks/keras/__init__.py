"""The Keras 3 adapter, on the torch, TensorFlow and JAX backends.

- `adapter`: `prune`, the entry point;
- `on_torch`: export, prune and rebuild or patch on the torch backend, in this process;
- `worker`: the same in a torch-backend child process, for the other backends;
- `surgery`: patching a subclassed model's layers in place;
- `saved_model`: keeping a pruned model as a TensorFlow SavedModel;
- `calls`: how a Keras model is called and checked.
"""
