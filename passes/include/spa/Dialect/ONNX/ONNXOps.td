//===- ONNXOps.td - all ops of the onnx dialect ----------------*- tablegen -*-===//

#ifndef SPA_DIALECT_ONNX_ONNXOPS_TD
#define SPA_DIALECT_ONNX_ONNXOPS_TD

include "spa/Dialect/ONNX/ONNXExtraOps.td"
include "spa/Dialect/ONNX/ONNXOps.gen.td"

#endif // SPA_DIALECT_ONNX_ONNXOPS_TD
