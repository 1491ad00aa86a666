//===- CouplingBuilder.cpp - atoms, ties and members ----------------------===//

#include "spa/Analysis/CouplingBuilder.h"

#include "spa/Dialect/ONNX/ONNXDialect.h"

#include "mlir/IR/AsmState.h"

#include <algorithm>
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "spa-coupling"

using namespace mlir;
using namespace spa;

StringRef spa::stringifyMemberRole(MemberRole role) {
  switch (role) {
  case MemberRole::Producer:
    return "producer";
  case MemberRole::Norm:
    return "norm";
  case MemberRole::Consumer:
    return "consumer";
  }
  return "unknown";
}

const TrackedAxis *CouplingBuilder::lookup(Value value) const {
  auto it = tracked.find(value);
  return it == tracked.end() ? nullptr : it->second.get();
}

void CouplingBuilder::track(Value value, int64_t axis, ArrayRef<Atom> atoms) {
  auto ranked = dyn_cast<RankedTensorType>(value.getType());
  if (!ranked || axis < 0 || axis >= ranked.getRank()) {
    // Pruning rewrites the value's type along `axis`; with no rank (shape
    // inference stopped at an opaque op, say) there is no axis to rewrite.
    Operation *owner = value.getDefiningOp();
    block(atoms, (owner ? describe(owner) : std::string("a block argument")) + " has a result of unknown rank");
    return;
  }
  LLVM_DEBUG({
    llvm::dbgs() << "track axis " << axis << " x" << atoms.size() << ": ";
    value.printAsOperand(llvm::dbgs(), OpPrintingFlags());
    if (Operation *owner = value.getDefiningOp())
      llvm::dbgs() << " of " << describe(owner);
    llvm::dbgs() << "\n";
  });
  auto it = tracked.find(value);
  if (it == tracked.end()) {
    auto axisAtoms = std::make_unique<TrackedAxis>(TrackedAxis{axis, SmallVector<Atom>(atoms)});
    tracked[value] = std::move(axisAtoms);
    return;
  }
  // A value carries one tracked axis. Tracked again on the same axis, the two
  // lists are the same channels; on another axis one of them would be dropped
  // without a trace (a MatMul whose lhs batch axis and rhs columns both carry
  // channels), so both are blocked instead.
  if (it->second->axis == axis && it->second->atoms.size() == atoms.size()) {
    uniteAll(it->second->atoms, atoms);
    return;
  }
  Operation *owner = value.getDefiningOp();
  std::string reason = (owner ? describe(owner) : std::string("a block argument")) + " carries channels on two axes";
  SmallVector<Atom> earlier = it->second->atoms;
  block(earlier, reason);
  block(atoms, reason);
}

SmallVector<Atom> CouplingBuilder::fresh(int64_t count) {
  SmallVector<Atom> atoms;
  atoms.reserve(count);
  for (int64_t i = 0; i < count; ++i) {
    classes.insert(nextAtom);
    atoms.push_back(nextAtom++);
  }
  return atoms;
}

void CouplingBuilder::unite(Atom a, Atom b) {
  if (a != kNoAtom && b != kNoAtom)
    classes.unionSets(a, b);
}

void CouplingBuilder::uniteAll(ArrayRef<Atom> a, ArrayRef<Atom> b) {
  if (a.size() != b.size()) {
    // A rule met channel lists it expected to match one to one but that do not
    // (a pattern SPA does not follow yet): neither side may be pruned.
    block(a, "channel lists of different lengths meet (a pattern SPA does not follow)");
    block(b, "channel lists of different lengths meet (a pattern SPA does not follow)");
    return;
  }
  for (auto [x, y] : llvm::zip_equal(a, b))
    unite(x, y);
}

void CouplingBuilder::block(ArrayRef<Atom> atoms, StringRef reason) {
  LLVM_DEBUG(llvm::dbgs() << "block x" << atoms.size() << ": " << reason << "\n");
  // One reason per atom list is enough to explain the group.
  for (Atom atom : atoms) {
    if (atom == kNoAtom)
      continue;
    auto &reasons = blocked[atom];
    if (reasons.empty() || reasons.back() != reason)
      reasons.push_back(reason.str());
  }
}

void CouplingBuilder::blockValue(Value value, StringRef reason) {
  if (const TrackedAxis *axis = lookup(value))
    block(axis->atoms, reason);
}

void CouplingBuilder::markNotFunctionPreserving(ArrayRef<Atom> atoms, StringRef reason) {
  for (Atom atom : atoms)
    if (atom != kNoAtom)
      nonPreserving.try_emplace(atom, reason.str());
}

void CouplingBuilder::markNotFunctionPreserving(Operation *op, const TrackedAxis &input, StringRef reason) {
  sites.push_back(NonPreservingSite{op, input.axis, input.atoms});
  markNotFunctionPreserving(input.atoms, reason);
}

LayoutView spa::layoutViewOf(Operation *op) {
  if (isa<onnx::TransposeOp>(op))
    return LayoutView::Transpose;
  if (isa<onnx::CastOp, onnx::IdentityOp, onnx::SqrtOp, onnx::ReciprocalOp, onnx::NegOp, onnx::AbsOp, onnx::ExpOp>(op))
    return LayoutView::SameShape;
  if (isa<onnx::ReshapeOp>(op))
    return LayoutView::Reshape;
  if (isa<onnx::ExpandOp>(op))
    return LayoutView::Expand;
  if (isa<onnx::UnsqueezeOp>(op))
    return LayoutView::Unsqueeze;
  if (op->getNumOperands() == 2 && isa<onnx::AddOp, onnx::SubOp, onnx::MulOp, onnx::DivOp>(op))
    return LayoutView::Arithmetic;
  return LayoutView::None;
}

/// The only axis of `value` longer than 1, if its shape is static and has exactly one.
static std::optional<int64_t> singleNonUnitAxis(Value value) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!type || !type.hasStaticShape())
    return std::nullopt;
  std::optional<int64_t> found;
  for (auto [index, size] : llvm::enumerate(type.getShape())) {
    if (size == 1)
      continue;
    if (found)
      return std::nullopt;
    found = index;
  }
  return found;
}

using ViewSource = std::optional<std::pair<Value, int64_t>>; // the viewed value and its axis, if a view

static ViewSource transposeSource(onnx::TransposeOp transpose, int64_t axis) {
  std::optional<int64_t> rank = rankOf(transpose.getData());
  if (!rank || axis < 0 || axis >= *rank)
    return std::nullopt;
  return std::make_pair(transpose.getData(), transposePerm(transpose, *rank)[axis]);
}

/// A per-channel vector reshaped to (1, .., C, .., 1) for broadcasting, or a weight regrouped around
/// its channel axis, with a target spa-prune can rewrite.
static ViewSource reshapeSource(onnx::ReshapeOp reshape, int64_t axis) {
  std::optional<int64_t> source = singleNonUnitAxis(reshape.getData());
  std::optional<int64_t> target = singleNonUnitAxis(reshape.getReshaped());
  std::optional<SmallVector<ShapePiece>> pieces = shapePieces(reshape.getShape());
  if (!pieces || llvm::any_of(*pieces, [](const ShapePiece &piece) { return !piece.constant; }))
    return std::nullopt;
  if (!source || !target || *target != axis)
    source = reshapedAxisSource(reshape.getData(), reshape.getReshaped(), axis);
  if (!source)
    return std::nullopt;
  return std::make_pair(reshape.getData(), *source);
}

/// Per-channel arithmetic with a scalar (BatchNorm's var + eps): a view of the per-channel side.
static ViewSource scalarArithmeticSource(Operation *op, Value value, int64_t axis) {
  Value lhs = op->getOperand(0), rhs = op->getOperand(1);
  auto isScalar = [](Value v) {
    auto type = dyn_cast<RankedTensorType>(v.getType());
    return type && type.hasStaticShape() && type.getNumElements() == 1 && isSliceableConstant(v);
  };
  if (isScalar(rhs) && rankOf(lhs) == rankOf(value))
    return std::make_pair(lhs, axis);
  if (isScalar(lhs) && rankOf(rhs) == rankOf(value))
    return std::make_pair(rhs, axis);
  return std::nullopt;
}

/// A constant broadcast along other axes (a class token expanded to the batch, which may be read
/// from Shape): a view of the source when the target leaves the channel axis alone (a constant
/// entry of 1, or none).
static ViewSource expandSource(onnx::ExpandOp expand, int64_t axis) {
  std::optional<SmallVector<ShapePiece>> pieces = shapePieces(expand.getShape());
  std::optional<int64_t> inRank = rankOf(expand.getInput()), outRank = rankOf(expand->getResult(0));
  if (!pieces || !inRank || !outRank)
    return std::nullopt;
  int64_t targetSize = 0;
  for (const ShapePiece &piece : *pieces)
    targetSize += piece.size;
  auto entryAt = [&](int64_t position) -> std::optional<int64_t> {
    for (const ShapePiece &piece : *pieces) {
      if (position < piece.size)
        return piece.constant ? std::optional<int64_t>((*piece.constant)[position]) : std::nullopt;
      position -= piece.size;
    }
    return std::nullopt;
  };
  int64_t sourceAxis = axis - (*outRank - *inRank);
  int64_t targetAxis = axis - (*outRank - targetSize);
  if (sourceAxis < 0 || staticDim(expand.getInput(), sourceAxis) == std::optional<int64_t>(1) ||
      (targetAxis >= 0 && entryAt(targetAxis) != std::optional<int64_t>(1)))
    return std::nullopt;
  return std::make_pair(expand.getInput(), sourceAxis);
}

/// Per-channel parameters unsqueezed to (C, 1, 1) for broadcasting (not a view when `axis` is an
/// inserted one).
static ViewSource unsqueezeSource(Operation *op, int64_t axis) {
  std::optional<SmallVector<int64_t>> axes = constantInts(op->getOperand(1));
  std::optional<int64_t> outRank = rankOf(op->getResult(0));
  if (!axes || !outRank)
    return std::nullopt;
  int64_t before = 0;
  for (int64_t inserted : *axes) {
    int64_t normalised = inserted < 0 ? inserted + *outRank : inserted;
    if (normalised == axis)
      return std::nullopt;
    before += normalised < axis;
  }
  return std::make_pair(op->getOperand(0), axis - before);
}

/// One step of throughLayoutViews: what `value` (along `axis`) is a view of.
static ViewSource viewSource(Value value, int64_t axis) {
  Operation *op = value.getDefiningOp();
  if (!op)
    return std::nullopt;
  switch (layoutViewOf(op)) {
  case LayoutView::None:
    return std::nullopt;
  case LayoutView::Transpose:
    return transposeSource(cast<onnx::TransposeOp>(op), axis);
  case LayoutView::SameShape:
    return std::make_pair(op->getOperand(0), axis);
  case LayoutView::Reshape:
    return reshapeSource(cast<onnx::ReshapeOp>(op), axis);
  case LayoutView::Expand:
    return expandSource(cast<onnx::ExpandOp>(op), axis);
  case LayoutView::Unsqueeze:
    return unsqueezeSource(op, axis);
  case LayoutView::Arithmetic:
    return scalarArithmeticSource(op, value, axis);
  }
  llvm_unreachable("every layout view kind is handled");
}

/// The constant a weight is a layout view of: exporters for channels-last
/// frameworks (and unfolded exports) feed Transpose, Cast, Unsqueeze, Expand
/// or a broadcasting Reshape of an initializer, or per-channel arithmetic with
/// a scalar, to an op; the member then lives on the initializer's axis that
/// lands on `axis`. spa-prune re-derives the views' types and targets.
static std::pair<Value, int64_t> throughLayoutViews(Value value, int64_t axis) {
  while (!isSliceableConstant(value)) {
    ViewSource source = viewSource(value, axis);
    if (!source)
      break;
    std::tie(value, axis) = *source;
  }
  return {value, axis};
}

/// Whether every leaf under `value` is a constant, through the view and
/// arithmetic ops `member` follows (at most `depth` ops deep).
static bool isConstantExpression(Value value, int depth) {
  if (isSliceableConstant(value))
    return true;
  Operation *op = value.getDefiningOp();
  if (depth == 0 || !op)
    return false;
  switch (layoutViewOf(op)) {
  case LayoutView::None:
    return false;
  case LayoutView::Arithmetic:
    return isConstantExpression(op->getOperand(0), depth - 1) && isConstantExpression(op->getOperand(1), depth - 1);
  case LayoutView::Transpose:
  case LayoutView::SameShape:
  case LayoutView::Reshape:
  case LayoutView::Expand:
  case LayoutView::Unsqueeze:
    return isConstantExpression(op->getOperand(0), depth - 1);
  }
  llvm_unreachable("every layout view kind is handled");
}

bool spa::isConstantOrView(Value value) { return isSliceableConstant(throughLayoutViews(value, 0).first); }

bool CouplingBuilder::member(Value constantValue, int64_t axis, MemberRole role, ArrayRef<Atom> atoms,
                             StringRef what) {
  std::tie(constantValue, axis) = throughLayoutViews(constantValue, axis);
  Operation *constant = constantValue.getDefiningOp();
  if (constant && !isSliceableConstant(constantValue) && constant->getNumOperands() == 2 &&
      isa<onnx::AddOp, onnx::SubOp, onnx::MulOp, onnx::DivOp>(constant))
    return memberOfArithmetic(constant, axis, role, atoms, what);
  if (!constant || !isSliceableConstant(constantValue)) {
    block(atoms, (what + " is computed, not a constant").str());
    return false;
  }
  auto key = std::make_pair(constant, axis);
  auto [it, inserted] = memberIndex.try_emplace(key, memberSlices.size());
  if (inserted) {
    memberSlices.push_back(MemberSlice{constant, axis, role, SmallVector<Atom>(atoms)});
    return true;
  }
  // A shared constant (weight tying): the same positions are the same channel.
  MemberSlice &existing = memberSlices[it->second];
  for (auto [x, y] : llvm::zip_equal(existing.atoms, atoms)) {
    if (x == kNoAtom || y == kNoAtom) {
      block({x, y}, (what + " is shared with positions outside any channel").str());
      continue;
    }
    unite(x, y);
  }
  return true;
}

void CouplingBuilder::operandMember(OpOperand &use, int64_t axis, ArrayRef<Atom> atoms, StringRef what) {
  if (isConstantExpression(use.get(), /*depth=*/8)) {
    member(use.get(), axis, MemberRole::Norm, atoms, what);
    return;
  }
  // Computed from the inputs but not from these channels (it would be tracked
  // then): each kept position of it is still the one its channel read.
  gathered.push_back(GatheredOperand{use.getOwner(), use.getOperandNumber(), axis, SmallVector<Atom>(atoms)});
}

bool CouplingBuilder::memberOfArithmetic(Operation *op, int64_t axis, MemberRole role, ArrayRef<Atom> atoms,
                                         StringRef what) {
  // Per-channel constants combined elementwise (BatchNorm's gamma / sqrt(var + eps)):
  // every operand that varies along the axis is a member; broadcast ones are not.
  std::optional<int64_t> rank = rankOf(op->getResult(0));
  if (!rank || !isConstantExpression(op->getResult(0), /*depth=*/8)) {
    block(atoms, (what + " is computed, not a constant").str());
    return false;
  }
  bool ok = true;
  for (Value operand : op->getOperands()) {
    std::optional<int64_t> operandRank = rankOf(operand);
    int64_t operandAxis = axis - (*rank - operandRank.value_or(0));
    if (!operandRank || operandAxis < 0 || staticDim(operand, operandAxis) == 1)
      continue; // broadcast along the channel axis: not a member
    ok &= member(operand, operandAxis, role, atoms, what);
  }
  return ok;
}

std::optional<HeadPruning> spa::parseHeadPruning(StringRef text) {
  if (text == "dims")
    return HeadPruning::HeadDims;
  if (text == "whole")
    return HeadPruning::WholeHeads;
  return std::nullopt;
}

Atom CouplingBuilder::leader(Atom atom) const { return classes.getLeaderValue(atom); }
