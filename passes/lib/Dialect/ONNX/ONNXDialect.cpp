//===- ONNXDialect.cpp - the onnx dialect ---------------------------------===//

#include "spa/Dialect/ONNX/ONNXDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace spa::onnx;

#include "spa/Dialect/ONNX/ONNXDialect.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "spa/Dialect/ONNX/ONNXTypes.cpp.inc"

void ONNXDialect::initialize() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "spa/Dialect/ONNX/ONNXTypes.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "spa/Dialect/ONNX/ONNXOps.cpp.inc"
      >();
}
