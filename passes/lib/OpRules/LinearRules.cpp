//===- LinearRules.cpp - Gemm, MatMul and embedding Gather ----------------===//
//
// Gemm/MatMul with a constant weight: input feature k <-> weight row k
// (column with transB); output feature n <-> weight column n and bias[n].
// MatMul of two activations (attention) ties the contracted axes of both
// sides and carries batch/row/column channels through. A Gather from a
// constant table (embedding) creates one channel per table column.
//
//===----------------------------------------------------------------------===//

#include "Rules.h"

#include "spa/Dialect/ONNX/ONNXDialect.h"

#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace spa;

namespace {

void gemmRule(Operation *op, CouplingBuilder &builder) {
  auto gemm = cast<onnx::GemmOp>(op);
  std::string where = describe(op);
  int64_t transA = gemm.getTransA(), transB = gemm.getTransB();
  int64_t featureAxis = transA ? 0 : 1; // K axis of A
  int64_t weightInAxis = transB ? 1 : 0, weightOutAxis = transB ? 0 : 1;
  const TrackedAxis *input = builder.lookup(gemm.getA());
  if (input) {
    if (input->axis != featureAxis)
      builder.block(input->atoms, where + " reads channels on its row axis");
    else
      builder.member(gemm.getB(), weightInAxis, MemberRole::Consumer, input->atoms, where + " weight");
  }
  if (builder.lookup(gemm.getB()))
    builder.blockValue(gemm.getB(), where + " multiplies two activations");
  std::optional<int64_t> outFeatures = staticDim(gemm.getB(), weightOutAxis);
  if (!outFeatures)
    return;
  SmallVector<Atom> out = builder.fresh(*outFeatures);
  builder.member(gemm.getB(), weightOutAxis, MemberRole::Producer, out, where + " weight");
  Value bias = gemm.getC();
  if (!isa<NoneType>(bias.getType())) {
    std::optional<int64_t> rank = rankOf(bias);
    std::optional<int64_t> size = rank && *rank > 0 ? staticDim(bias, *rank - 1) : std::nullopt;
    if (size == *outFeatures)
      builder.member(bias, *rank - 1, MemberRole::Producer, out, where + " bias");
    else if (size != 1 && rank != 0)
      builder.block(out, where + " has a bias of unknown shape");
  }
  builder.track(gemm.getY(), 1, out);
}

void matMulRule(Operation *op, CouplingBuilder &builder) {
  Value lhs = op->getOperand(0), rhs = op->getOperand(1), result = op->getResult(0);
  std::string where = describe(op);
  std::optional<int64_t> lhsRank = rankOf(lhs), rhsRank = rankOf(rhs), outRank = rankOf(result);
  const TrackedAxis *a = builder.lookup(lhs);
  const TrackedAxis *b = builder.lookup(rhs);
  if (!lhsRank || !rhsRank || !outRank || *lhsRank < 2 || *rhsRank < 2) {
    builder.blockValue(lhs, where + " has operands of unknown or vector rank");
    builder.blockValue(rhs, where + " has operands of unknown or vector rank");
    return;
  }
  bool weight = isConstantOrView(rhs);
  // Contracted axis: lhs last <-> rhs second to last.
  if (a && a->axis == *lhsRank - 1) {
    if (b && b->axis == *rhsRank - 2)
      builder.uniteAll(a->atoms, b->atoms);
    else if (weight && *rhsRank == 2)
      builder.member(rhs, 0, MemberRole::Consumer, a->atoms, where + " weight");
    else
      builder.block(a->atoms, where + " contracts channels with a computed operand");
  }
  if (b && b->axis == *rhsRank - 2 && !(a && a->axis == *lhsRank - 1))
    builder.block(b->atoms, where + " contracts channels with a computed operand");
  // Output columns.
  if (weight && *rhsRank == 2 && !b) {
    if (std::optional<int64_t> columns = staticDim(rhs, 1)) {
      SmallVector<Atom> out = builder.fresh(*columns);
      builder.member(rhs, 1, MemberRole::Producer, out, where + " weight");
      builder.track(result, *outRank - 1, out);
    }
  } else if (b && b->axis == *rhsRank - 1) {
    builder.track(result, *outRank - 1, b->atoms);
  }
  // Rows and batch axes of the lhs carry over.
  if (a && a->axis == *lhsRank - 2)
    builder.track(result, *outRank - 2, a->atoms);
  else if (a && a->axis < *lhsRank - 2)
    builder.track(result, a->axis + (*outRank - *lhsRank), a->atoms);
  if (b && b->axis < *rhsRank - 2) {
    int64_t outAxis = b->axis + (*outRank - *rhsRank);
    const TrackedAxis *already = builder.lookup(result);
    if (already && already->axis == outAxis && a && a->axis < *lhsRank - 2)
      builder.uniteAll(already->atoms, b->atoms); // a batch axis of both (attention heads)
    else if (already)
      builder.block(b->atoms, where + " carries channels on two axes");
    else
      builder.track(result, outAxis, b->atoms);
  }
}

/// Einsum with an explicit output ("bghid,bghjd->bghij"): a channel is a
/// subscript letter. Every operand with that letter carries the same channels
/// (tracked ones are united; a constant becomes a member); the output carries
/// them where the letter appears, and a contracted letter only couples the
/// operands (attention's q.k and attn.v, as MaxViT writes them).
void einsumRule(Operation *op, CouplingBuilder &builder) {
  auto einsum = cast<onnx::EinsumOp>(op);
  std::string where = describe(op);
  std::string equation;
  for (char c : einsum.getEquation())
    if (c != ' ')
      equation.push_back(c);
  size_t arrow = equation.find("->");
  SmallVector<StringRef> terms;
  StringRef(equation).take_front(arrow).split(terms, ',');
  StringRef output = arrow == std::string::npos ? StringRef() : StringRef(equation).drop_front(arrow + 2);
  auto blockAll = [&](const Twine &reason) {
    for (Value operand : op->getOperands())
      builder.blockValue(operand, (where + reason).str());
  };
  if (arrow == std::string::npos || equation.find('.') != std::string::npos ||
      terms.size() != op->getNumOperands())
    return blockAll(" has an implicit output or an ellipsis");
  for (auto [term, operand] : llvm::zip_equal(terms, op->getOperands()))
    if (rankOf(operand) != std::optional<int64_t>(term.size()))
      return blockAll(" has a subscript that does not match its operand's rank");
  for (auto [index, operand] : llvm::enumerate(op->getOperands())) {
    const TrackedAxis *tracked = builder.lookup(operand);
    if (!tracked)
      continue;
    char letter = terms[index][tracked->axis];
    if (terms[index].count(letter) != 1 || output.count(letter) > 1) {
      builder.block(tracked->atoms, where + " takes a diagonal of the channels");
      continue;
    }
    for (auto [other, otherOperand] : llvm::enumerate(op->getOperands())) {
      size_t position = terms[other].find(letter);
      if (other == index || position == StringRef::npos)
        continue;
      if (const TrackedAxis *peer = builder.lookup(otherOperand)) {
        if (peer->axis == static_cast<int64_t>(position))
          builder.uniteAll(tracked->atoms, peer->atoms);
        else
          builder.block(tracked->atoms, where + " combines channels with another axis");
      } else if (isConstantOrView(otherOperand)) {
        builder.member(otherOperand, position, MemberRole::Consumer, tracked->atoms, where + " operand");
      } else {
        builder.block(tracked->atoms, where + " combines channels with a computed operand");
      }
    }
    size_t outAxis = output.find(letter);
    if (outAxis == StringRef::npos)
      continue;
    const TrackedAxis *already = builder.lookup(einsum->getResult(0));
    if (already && already->axis != static_cast<int64_t>(outAxis))
      builder.block(tracked->atoms, where + " carries channels on two axes");
    else if (!already)
      builder.track(einsum->getResult(0), outAxis, tracked->atoms);
  }
}

/// Gather of constant, distinct indices along the channel axis picks channels,
/// as a channel Slice does: 1-D indices give a result carrying the picked
/// channels (at least one stays; spa-prune renumbers the indices), and a
/// scalar index keeps the one channel it names (Falcon's fused QKV gives its
/// key and value heads this way).
void pickChannels(onnx::GatherOp gather, const TrackedAxis &tracked, CouplingBuilder &builder) {
  std::string where = describe(gather);
  std::optional<SmallVector<int64_t>> picked = constantInts(gather.getIndices());
  std::optional<int64_t> indexRank = rankOf(gather.getIndices());
  int64_t size = static_cast<int64_t>(tracked.atoms.size());
  if (!picked || !indexRank || *indexRank > 1 || staticDim(gather.getData(), tracked.axis) != size) {
    builder.block(tracked.atoms, where + " gathers along the channel axis with indices SPA cannot follow");
    return;
  }
  SmallVector<Atom> atoms;
  llvm::SmallDenseSet<int64_t> seen;
  for (int64_t index : *picked) {
    index = index < 0 ? index + size : index;
    if (index < 0 || index >= size || !seen.insert(index).second) {
      builder.block(tracked.atoms, where + " gathers channels out of range or twice");
      return;
    }
    atoms.push_back(tracked.atoms[index]);
  }
  builder.keepOneOf(atoms);
  if (*indexRank == 1)
    builder.track(gather.getOutput(), tracked.axis, atoms);
}

void gatherRule(Operation *op, CouplingBuilder &builder) {
  auto gather = cast<onnx::GatherOp>(op);
  Value data = gather.getData(), indices = gather.getIndices(), result = gather.getOutput();
  std::string where = describe(op);
  std::optional<int64_t> dataRank = rankOf(data), indexRank = rankOf(indices), outRank = rankOf(result);
  if (!dataRank || !indexRank || !outRank) {
    builder.blockValue(data, where + " has operands of unknown rank");
    return;
  }
  int64_t axis = rules::normaliseAxis(gather.getAxis(), *dataRank);
  builder.blockValue(indices, where + " uses channels as indices");
  const TrackedAxis *tracked = builder.lookup(data);
  if (tracked) {
    if (tracked->axis == axis)
      pickChannels(gather, *tracked, builder);
    else
      builder.track(result, tracked->axis < axis ? tracked->axis : tracked->axis + *indexRank - 1, tracked->atoms);
    return;
  }
  // Embedding lookup: table rows are gathered, table columns are channels.
  if (constantElements(data) && *dataRank == 2 && axis == 0) {
    if (std::optional<int64_t> columns = staticDim(data, 1)) {
      SmallVector<Atom> out = builder.fresh(*columns);
      builder.member(data, 1, MemberRole::Producer, out, where + " table");
      builder.track(result, *outRank - 1, out);
    }
  }
}

/// GatherND with batch_dims = 0 picks slices of `data` by its first r axes (r,
/// the indices' last dim): the axes after them are carried whole, after the
/// indices' leading axes (the dynamo exporter picks key/value heads of a fused
/// QKV this way). Channels on a picked axis block.
void gatherNDRule(Operation *op, CouplingBuilder &builder) {
  Value data = op->getOperand(0), indices = op->getOperand(1), result = op->getResult(0);
  std::string where = describe(op);
  builder.blockValue(indices, where + " uses channels as indices");
  const TrackedAxis *tracked = builder.lookup(data);
  if (!tracked)
    return;
  std::optional<int64_t> indexRank = rankOf(indices), picked = staticDim(indices, rankOf(indices).value_or(1) - 1);
  if (!indexRank || !picked || rules::intAttr(op, "batch_dims", 0) != 0) {
    builder.block(tracked->atoms, where + " has indices of unknown shape or batch dims");
    return;
  }
  if (tracked->axis < *picked) {
    builder.block(tracked->atoms, where + " gathers along the channel axis");
    return;
  }
  builder.track(result, tracked->axis - *picked + *indexRank - 1, tracked->atoms);
}

/// A Gather that picks channels by constant indices (see pickChannels) keeps the
/// picked channels that remain, renumbered.
void gatherRewrite(Operation *op, ChannelRewriter &rewriter) {
  auto gather = cast<onnx::GatherOp>(op);
  const KeptPositions *data = rewriter.keptOf(gather.getData());
  if (!data || normaliseAxis(gather.getAxis(), rankOf(gather.getData()).value_or(0)) != data->axis)
    return;
  std::optional<SmallVector<int64_t>> picked = constantInts(gather.getIndices());
  auto indexType = dyn_cast<RankedTensorType>(gather.getIndices().getType());
  if (!picked || !indexType)
    return;
  SmallVector<int64_t> renumbered;
  for (int64_t index : *picked) {
    index = index < 0 ? index + data->size : index;
    if (llvm::is_contained(data->kept, index))
      renumbered.push_back(data->keptBefore(index));
  }
  if (renumbered.empty())
    return; // the plan broke a keep-one set, which spa-prune's plan check refuses
  if (indexType.getRank() == 1) {
    rewriter.replaceIntOperand(gather, 1, renumbered);
    return;
  }
  OpBuilder builder(gather); // a scalar index: its channel is always kept (a keep-one set of one)
  auto type = RankedTensorType::get({}, builder.getI64Type());
  std::string name = rewriter.freshName("spa_picked_channel");
  auto index = onnx::InitializerOp::create(builder, gather.getLoc(), builder.getStringAttr(name),
                                                   DenseIntElementsAttr::get(type, renumbered.front()));
  gather->setOperand(1, index.getResult());
}

} // namespace

void spa::rules::registerLinearRules(OpRuleTable &table) {
  table.add<onnx::GatherNDOp>({gatherNDRule});
  table.add<onnx::GemmOp>({gemmRule});
  table.add<onnx::MatMulOp>({matMulRule});
  table.add<onnx::EinsumOp>({einsumRule});
  table.add<onnx::GatherOp>({gatherRule, gatherRewrite});
}
