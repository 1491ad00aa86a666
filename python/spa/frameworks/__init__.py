"""Framework adapters: prune a model of a framework and get it back in that framework.

Each adapter imports its framework only when used; SPA's core needs none.
- PyTorch: `spa.torch.prune(module, example_inputs, **options)` (torch_adapter.py).
- Keras 3 on the torch backend: `spa.keras.prune(model, example_inputs, **options)` (keras_adapter.py).
- Flax NNX through jax2onnx: `spa.flax.prune(module, example_inputs, **options)` (flax_adapter.py).
- PaddlePaddle through paddle2onnx: `spa.paddle.prune(layer, example_inputs, **options)` (paddle_adapter.py).
- MXNet 1.9 Gluon: `spa.mxnet.prune(block, example_inputs, **options)` (mxnet_adapter.py).
"""
