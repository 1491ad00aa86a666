//===- ReductionRules.cpp - Reduce* ops -----------------------------------===//
//
// Reducing other axes keeps the channels (the axis moves when keepdims=0).
// Reducing over the channels ends them; a sum of zeroed channels is
// unchanged, so Sum-like reductions stay function-preserving, Mean/Max/...
// do not.
//
//===----------------------------------------------------------------------===//

#include "Rules.h"

#include "spa/Dialect/ONNX/ONNXDialect.h"

using namespace mlir;
using namespace spa;

namespace {

void reduceRule(Operation *op, CouplingBuilder &builder) {
  const TrackedAxis *input = builder.lookup(op->getOperand(0));
  std::optional<int64_t> rank = rankOf(op->getOperand(0));
  if (!input || !rank)
    return;
  std::string where = describe(op);
  bool keepDims = rules::intAttr(op, "keepdims", 1) != 0;
  std::optional<SmallVector<int64_t>> axes;
  bool noAxes = op->getNumOperands() < 2 || isa<NoneType>(op->getOperand(1).getType());
  if (!noAxes)
    axes = rules::constantInts(op->getOperand(1));
  if (!noAxes && !axes) {
    builder.block(input->atoms, where + " reduces over axes that are not constant");
    return;
  }
  // No axes, or an empty list, reduce every axis unless noop_with_empty_axes makes it the identity.
  bool reducesAll = (noAxes || axes->empty()) && rules::intAttr(op, "noop_with_empty_axes", 0) == 0;
  SmallVector<int64_t> reduced;
  if (axes)
    for (int64_t a : *axes)
      reduced.push_back(rules::normaliseAxis(a, *rank));
  if (reducesAll || llvm::is_contained(reduced, input->axis)) {
    if (!isa<onnx::ReduceSumOp, onnx::ReduceSumSquareOp, onnx::ReduceL1Op, onnx::ReduceL2Op>(op))
      builder.markNotFunctionPreserving(op, *input, where + " reduces over the channels");
    return;
  }
  int64_t shifted = input->axis;
  if (!keepDims)
    for (int64_t a : reduced)
      shifted -= a < input->axis;
  builder.track(op->getResult(0), shifted, input->atoms);
}

} // namespace

void spa::rules::registerReductionRules(OpRuleTable &table) {
  table.add<onnx::ReduceMeanOp, onnx::ReduceSumOp, onnx::ReduceMaxOp, onnx::ReduceMinOp, onnx::ReduceProdOp,
            onnx::ReduceL1Op, onnx::ReduceL2Op, onnx::ReduceLogSumOp, onnx::ReduceLogSumExpOp,
            onnx::ReduceSumSquareOp>({reduceRule});
}
