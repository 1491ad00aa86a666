"""The plumbing between ONNX and MLIR that the importer, the exporter and the passes share.

- `bindings`: the MLIR Python bindings, loaded in one place;
- `context`: MLIR contexts with SPA's dialects registered;
- `files`: MLIR modules as text or bytecode files;
- `names`: the attribute names and constants both directions agree on;
- `onnx_types`, `onnx_attributes`, `tensors`: ONNX types, attributes and tensors as MLIR;
- `onnx_model`, `private_domain`, `group_norm`: ONNX-level facts and rewrites used on the way in and out.
"""
