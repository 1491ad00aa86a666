//===- ChannelRewriter.cpp - the edits op rewrites make -------------------===//

#include "ConstantSlicing.h"

#include "spa/Analysis/ChannelCoupling.h"
#include "spa/Dialect/ONNX/ONNXDialect.h"
#include "spa/OpRules/OpRule.h"

#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace spa;

int64_t KeptPositions::keptBefore(int64_t bound) const {
  return llvm::count_if(kept, [&](int64_t position) { return position < bound; });
}

const KeptPositions *ChannelRewriter::keptOf(Value value) const {
  auto it = kept_.find(value);
  return it == kept_.end() ? nullptr : &it->second;
}

ArrayRef<Type> ChannelRewriter::oldResultTypes(Operation *op) const {
  auto it = oldTypes_.find(op);
  return it == oldTypes_.end() ? ArrayRef<Type>() : ArrayRef<Type>(it->second);
}

bool ChannelRewriter::touches(Operation *op) const {
  return oldTypes_.count(op) || llvm::any_of(op->getOperands(), [&](Value v) { return kept_.count(v); });
}

void ChannelRewriter::recordOldResultTypes(Operation *op) {
  if (!oldTypes_.count(op))
    oldTypes_[op] = SmallVector<Type>(op->getResultTypes());
}

void ChannelRewriter::clear() {
  kept_.clear();
  oldTypes_.clear();
}

std::string ChannelRewriter::freshName(StringRef stem) { return (stem + std::to_string(counter_++)).str(); }

void ChannelRewriter::replaceIntOperand(Operation *op, unsigned index, ArrayRef<int64_t> values) {
  Value operand = op->getOperand(index);
  Operation *constant = operand.getDefiningOp();
  std::string name = freshName(constantName(constant) + "_pruned");
  OpBuilder builder(op);
  ElementsAttr elements = makeInt64Elements(op->getContext(), values, name);
  auto replacement = onnx::InitializerOp::create(builder, op->getLoc(), builder.getStringAttr(name), elements);
  op->setOperand(index, replacement.getResult());
  if (constant->use_empty())
    constant->erase();
}

void ChannelRewriter::rewriteTargetCounts(Operation *op, RankedTensorType oldType, unsigned index) {
  std::optional<SmallVector<ShapePiece>> pieces = shapePieces(op->getOperand(index));
  auto newType = cast<RankedTensorType>(op->getResult(0).getType());
  if (!pieces)
    return;
  int64_t entries = 0;
  for (const ShapePiece &piece : *pieces)
    entries += piece.size;
  int64_t position = oldType.getRank() - entries;
  // A target built by a Concat has its constant pieces rewritten there.
  Operation *concat =
      pieces->size() == 1 && pieces->front().value == op->getOperand(index) ? nullptr
                                                                             : op->getOperand(index).getDefiningOp();
  for (ShapePiece &piece : *pieces) {
    bool changed = false;
    for (int64_t i = 0; i < piece.size; ++i, ++position) {
      if (!piece.constant || (*piece.constant)[i] <= 1 || position < 0 ||
          oldType.getDimSize(position) == newType.getDimSize(position))
        continue;
      (*piece.constant)[i] = newType.getDimSize(position);
      changed = true;
    }
    if (changed)
      replaceIntOperand(concat ? concat : op, concat ? piece.operandIndex : index, *piece.constant);
  }
}
