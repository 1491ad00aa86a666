"""Framework adapters: prune a model of a framework and get it back in that framework.

Each adapter imports its framework only when used; SPA's core needs none. They all follow one
protocol (protocol.py): export to ONNX, prune, copy the model with the pruned weights and fix its
widths, check the copy against the pruned ONNX model; and return one `PruneResult`, whose `model`
also answers to the framework's own word for it (`result.module`, `.layer`, `.block`).
- PyTorch: `spa.torch.prune(module, example_inputs, **options)` (torch_adapter.py).
- Keras 3 (torch backend here, TensorFlow and JAX through a child process): `spa.keras.prune(model, example_inputs, **options)` (keras/).
- Flax NNX through jax2onnx: `spa.flax.prune(module, example_inputs, **options)` (flax_adapter.py).
- PaddlePaddle through paddle2onnx: `spa.paddle.prune(layer, example_inputs, **options)` (paddle_adapter.py).
- MXNet 1.9 Gluon: `spa.mxnet.prune(block, example_inputs, **options)` (mxnet_adapter.py).
"""
