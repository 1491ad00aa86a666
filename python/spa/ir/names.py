"""The names SPA's importer writes into MLIR and its exporter reads back.

Both directions agree on these strings, so they live here rather than in
either one: the exporter must not depend on the importer.
"""

SPA_OPSET = 26  # the newest opset onnxruntime 1.31 runs; the dialect is generated for it

MAIN_FUNCTION = "main_graph"  # the func.func that holds the ONNX main graph
DEFAULT_DOMAIN = "ai.onnx"  # the default domain's name in `onnx.opset_import` (MLIR keys cannot be empty)

# Module attributes.
INPUT_ORDER = "onnx.input_order"
SOURCE_OPSET = "spa.source_opset"  # set when the importer converted the model up to SPA_OPSET
SOURCE_IR_VERSION = "spa.source_ir_version"

# Discardable op attributes that carry ONNX names through MLIR.
NODE_NAME = "onnx.node_name"
OUTPUT_NAMES = "onnx.output_names"
GRAPH_NAME = "onnx.graph_name"
INPUT_NAMES = "onnx.input_names"
GRAPH_INPUT = "onnx.graph_input"
