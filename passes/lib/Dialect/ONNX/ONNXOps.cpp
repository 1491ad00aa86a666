//===- ONNXOps.cpp - hand-written parts of onnx ops -----------------------===//
//
// Everything generated from the ONNX schemas is verified by ODS constraints;
// this file adds the checks ODS cannot express for the structural ops.
//
//===----------------------------------------------------------------------===//

#include "spa/Dialect/ONNX/ONNXDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace spa::onnx;

LogicalResult InitializerOp::inferReturnTypes(MLIRContext *, std::optional<Location>,
                                              Adaptor adaptor,
                                              SmallVectorImpl<Type> &inferred) {
  if (!adaptor.getValue())
    return failure();
  inferred.push_back(adaptor.getValue().getType());
  return success();
}

LogicalResult CustomOp::verify() {
  size_t named = getGraphAttributeNames() ? getGraphAttributeNames()->size() : 0;
  if (named != getGraphs().size())
    return emitOpError() << "has " << getGraphs().size() << " graph regions but names "
                         << named << " graph attributes";
  return success();
}

#define GET_OP_CLASSES
#include "spa/Dialect/ONNX/ONNXOps.cpp.inc"
