//===- ONNXDialect.h - the onnx dialect -------------------------*- C++ -*-===//

#ifndef SPA_DIALECT_ONNX_ONNXDIALECT_H
#define SPA_DIALECT_ONNX_ONNXDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "spa/Dialect/ONNX/ONNXDialect.h.inc"

#define GET_TYPEDEF_CLASSES
#include "spa/Dialect/ONNX/ONNXTypes.h.inc"

#define GET_OP_CLASSES
#include "spa/Dialect/ONNX/ONNXOps.h.inc"

#endif // SPA_DIALECT_ONNX_ONNXDIALECT_H
