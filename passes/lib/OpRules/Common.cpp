//===- Common.cpp - helpers shared by the channel rules -------------------===//

#include "Rules.h"

#include "mlir/IR/BuiltinTypes.h"

using namespace mlir;
using namespace spa;

namespace spa::rules {

void passThrough(Operation *op, CouplingBuilder &builder) {
  const TrackedAxis *input = op->getNumOperands() ? builder.lookup(op->getOperand(0)) : nullptr;
  if (!input)
    return;
  for (Value result : op->getResults())
    if (rankOf(result) == rankOf(op->getOperand(0)))
      builder.track(result, input->axis, input->atoms);
}

void rewriteShapeOperand(Operation *op, ChannelRewriter &rewriter, unsigned index) {
  ArrayRef<Type> oldTypes = rewriter.oldResultTypes(op);
  if (auto oldType = oldTypes.empty() ? RankedTensorType() : dyn_cast<RankedTensorType>(oldTypes[0]))
    rewriter.rewriteTargetCounts(op, oldType, index);
}

int64_t intAttr(Operation *op, StringRef name, int64_t fallback) {
  if (auto attr = op->getAttrOfType<IntegerAttr>(name))
    return attr.getInt();
  return fallback;
}

void broadcastElementwise(Operation *op, CouplingBuilder &builder) {
  if (op->getNumResults() == 0)
    return;
  std::optional<int64_t> outRank = rankOf(op->getResult(0));
  std::string where = describe(op);
  // Find the output axis the tracked operands agree on.
  std::optional<int64_t> outAxis;
  SmallVector<Atom> atoms;
  bool conflict = !outRank.has_value();
  for (Value operand : op->getOperands()) {
    const TrackedAxis *tracked = builder.lookup(operand);
    if (!tracked)
      continue;
    std::optional<int64_t> rank = rankOf(operand);
    if (!rank || !outRank) {
      conflict = true;
      break;
    }
    int64_t axis = tracked->axis + (*outRank - *rank);
    if (!outAxis) {
      outAxis = axis;
      atoms = tracked->atoms;
    } else if (*outAxis != axis || atoms.size() != tracked->atoms.size()) {
      conflict = true;
    } else {
      builder.uniteAll(atoms, tracked->atoms);
    }
  }
  if (conflict) {
    for (Value operand : op->getOperands())
      builder.blockValue(operand, where + " mixes different channel axes");
    return;
  }
  if (!outAxis)
    return;
  // Untracked operands must broadcast along the channel axis, or be constants.
  for (OpOperand &use : op->getOpOperands()) {
    Value operand = use.get();
    if (builder.lookup(operand) || isa<NoneType>(operand.getType()))
      continue;
    std::optional<int64_t> rank = rankOf(operand);
    if (!rank) {
      builder.block(atoms, where + " has an operand of unknown rank");
      continue;
    }
    int64_t axis = *outAxis - (*outRank - *rank);
    if (axis < 0)
      continue; // broadcast: the operand has no channel axis
    std::optional<int64_t> size = staticDim(operand, axis);
    if (size == 1)
      continue;
    if (size != static_cast<int64_t>(atoms.size())) {
      builder.block(atoms, where + " has an operand of unknown size on the channel axis");
      continue;
    }
    builder.operandMember(use, axis, atoms, where + " operand");
  }
  for (Value result : op->getResults())
    if (rankOf(result) == outRank)
      builder.track(result, *outAxis, atoms);
}

} // namespace spa::rules
