//===- PrunePass.cpp - remove planned channels ----------------------------===//
//
// Algorithm: recompute the channel coupling, validate the plan against it,
// then for every group with removed channels
//   1. shrink the tracked axis of every value carrying the group (result
//      types are updated in place);
//   2. collect, per constant, the positions to keep on each axis, and
//      replace the constant's value by the sliced copy;
//   3. let the rule of every op that lost channels (lib/OpRules/) fix the
//      attributes and shape operands that count them.
// Nothing is changed unless the whole plan validates, including each op's
// own plan check.
//
//===----------------------------------------------------------------------===//

#include "ConstantSlicing.h"

#include "spa/Analysis/ChannelCoupling.h"
#include "spa/OpRules/OpRule.h"
#include "spa/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

namespace spa {
#define GEN_PASS_DEF_SPAPRUNE
#include "spa/Transforms/Passes.h.inc"
} // namespace spa

using namespace mlir;
using namespace spa;

namespace {

using RemovedChannels = llvm::DenseMap<unsigned, llvm::DenseSet<int64_t>>;

constexpr llvm::StringLiteral kPlanAttribute = "spa.plan";

/// Parses and validates the plan (`text`, from `source`); emits an error on `module` and
/// returns nullopt if it is wrong.
std::optional<RemovedChannels> readPlan(StringRef source, StringRef text, const ChannelCoupling &coupling,
                                        ModuleOp module) {
  auto fail = [&](const Twine &message) -> std::optional<RemovedChannels> {
    module.emitError() << "spa-prune: plan " << source << ": " << message;
    return std::nullopt;
  };
  llvm::Expected<llvm::json::Value> json = llvm::json::parse(text);
  if (!json)
    return fail("is not JSON: " + llvm::toString(json.takeError()));
  const llvm::json::Object *root = json->getAsObject();
  const llvm::json::Array *groups = root ? root->getArray("groups") : nullptr;
  if (!groups)
    return fail("has no \"groups\" list");
  ArrayRef<ChannelGroup> known = coupling.getGroups();
  RemovedChannels removed;
  for (const llvm::json::Value &entry : *groups) {
    const llvm::json::Object *group = entry.getAsObject();
    std::optional<int64_t> id = group ? group->getInteger("id") : std::nullopt;
    const llvm::json::Array *channels = group ? group->getArray("removed") : nullptr;
    if (!id || !channels)
      return fail("every group needs an \"id\" and a \"removed\" list");
    if (*id < 0 || *id >= static_cast<int64_t>(known.size()))
      return fail("group " + Twine(*id) + " does not exist (the model has " + Twine(known.size()) + " groups)");
    const ChannelGroup &target = known[*id];
    if (std::optional<int64_t> count = group->getInteger("channels"); count && *count != target.channels)
      return fail("group " + Twine(*id) + " has " + Twine(target.channels) + " channels, the plan says " +
                  Twine(*count) + " (was the plan made for another model?)");
    if (!target.prunable && !channels->empty())
      return fail("group " + Twine(*id) + " is not prunable: " + llvm::join(target.reasons, "; "));
    auto &set = removed[*id];
    for (const llvm::json::Value &channel : *channels) {
      std::optional<int64_t> index = channel.getAsInteger();
      if (!index || *index < 0 || *index >= target.channels)
        return fail("group " + Twine(*id) + " has no channel " + (index ? Twine(*index) : Twine("(not an integer)")));
      set.insert(*index);
    }
    if (static_cast<int64_t>(set.size()) >= target.channels && target.channels > 0)
      return fail("group " + Twine(*id) + " would lose all its " + Twine(target.channels) + " channels");
    for (const SmallVector<int64_t> &keep : target.keepOneOf)
      if (llvm::all_of(keep, [&](int64_t channel) { return set.contains(channel); }))
        return fail("group " + Twine(*id) + " would leave a value or weight with none of its channels (it carries "
                    "only channels " + llvm::join(llvm::map_range(keep, [](int64_t c) { return std::to_string(c); }),
                                                   ", ") + ")");
  }
  return removed;
}

SmallVector<int64_t> keptPositions(ArrayRef<int64_t> channelOfPosition, const llvm::DenseSet<int64_t> &removed) {
  SmallVector<int64_t> kept;
  for (auto [position, channel] : llvm::enumerate(channelOfPosition))
    if (channel < 0 || !removed.contains(channel))
      kept.push_back(position);
  return kept;
}

Type withDim(Type type, int64_t axis, int64_t size) {
  auto ranked = cast<RankedTensorType>(type);
  SmallVector<int64_t> shape(ranked.getShape());
  shape[axis] = size;
  return ranked.clone(shape);
}

/// Replaces the value of a constant op (initializer or onnx.Constant).
void setConstantValue(Operation *constant, ElementsAttr value) {
  if (auto initializer = dyn_cast<onnx::InitializerOp>(constant))
    initializer.setValueAttr(value);
  else
    cast<onnx::ConstantOp>(constant).setValueAttr(value);
  constant->getResult(0).setType(value.getType());
}

constexpr llvm::StringLiteral kCopyOf = "spa.copy_of"; // the source of an initializer unsharing made

/// Exporters share equal weights through Identity nodes; each use may belong
/// to another group, so every Identity of an initializer becomes an
/// initializer of its own (sharing the immutable data, not copying it).
void unshareIdentityConstants(ModuleOp module) {
  SmallVector<onnx::IdentityOp> shared;
  auto copiesAnInitializer = [](onnx::IdentityOp identity) {
    Value input = identity.getInput();
    while (auto inner = input.getDefiningOp<onnx::IdentityOp>()) // a copy of a copy
      input = inner.getInput();
    return static_cast<bool>(input.getDefiningOp<onnx::InitializerOp>());
  };
  module.walk([&](onnx::IdentityOp identity) { // in program order: inner copies become initializers first
    if (copiesAnInitializer(identity))
      shared.push_back(identity);
  });
  for (onnx::IdentityOp identity : shared) {
    auto source = identity.getInput().getDefiningOp<onnx::InitializerOp>();
    OpBuilder builder(identity);
    auto own = builder.create<onnx::InitializerOp>(identity.getLoc(), builder.getStringAttr(constantName(identity)),
                                                   source.getValue());
    own->setAttr(kCopyOf, source.getTensorNameAttr());
    identity.getOutput().replaceAllUsesWith(own.getResult());
    identity.erase();
    if (source->use_empty())
      source->erase();
  }
}

/// The bytes of a constant's elements, when they are at hand.
std::optional<ArrayRef<char>> elementBytes(ElementsAttr value) {
  if (auto resource = dyn_cast<DenseResourceElementsAttr>(value)) {
    if (AsmResourceBlob *blob = resource.getRawHandle().getBlob())
      return blob->getData();
    return std::nullopt;
  }
  if (auto dense = dyn_cast<DenseIntOrFPElementsAttr>(value); dense && !dense.isSplat())
    return dense.getRawData();
  return std::nullopt;
}

bool sameValue(ElementsAttr a, ElementsAttr b) {
  if (a == b)
    return true;
  std::optional<ArrayRef<char>> left = elementBytes(a), right = elementBytes(b);
  return left && right && *left == *right;
}

/// The constant an initializer was copied from: the one unsharing made it
/// from, or the importer's `<name>__use[_k]` copies' `<name>`; else itself.
std::string copiedFrom(onnx::InitializerOp initializer) {
  if (auto source = initializer->getAttrOfType<StringAttr>(kCopyOf))
    return source.getValue().str();
  StringRef name = initializer.getTensorName();
  size_t use = name.rfind("__use");
  if (use == StringRef::npos)
    return name.str();
  StringRef rest = name.drop_front(use + 5);
  bool suffix = rest.empty() || (rest.consume_front("_") && !rest.empty() && llvm::all_of(rest, llvm::isDigit));
  return suffix ? name.take_front(use).str() : name.str();
}

/// Unsharing gave each use of a shared constant an initializer of its own.
/// Float copies of one constant that the plan left equal (unsliced, or sliced alike:
/// the per-use copies of a bias of a layer applied twice) become Identity
/// copies of the first again, so the pruned model stores each value once and
/// never holds more parameters than the original. Distinct constants that
/// merely hold equal values stay as they are.
void reshareEqualCopies(ModuleOp module) {
  llvm::DenseMap<std::pair<Attribute, Type>, SmallVector<onnx::InitializerOp>> bySource;
  SmallVector<onnx::InitializerOp> initializers;
  module.walk([&](onnx::InitializerOp initializer) { initializers.push_back(initializer); });
  for (onnx::InitializerOp initializer : initializers) {
    OpBuilder builder(initializer);
    Type type = initializer.getResult().getType();
    std::string source = copiedFrom(initializer);
    initializer->removeAttr(kCopyOf);
    auto shaped = dyn_cast<ShapedType>(type);
    if (!shaped || !isa<FloatType>(shaped.getElementType()))
      continue; // integer constants (axes, shapes) stay initializers: onnx's converter and inference read them
    SmallVector<onnx::InitializerOp> &copies =
        bySource[{builder.getStringAttr(source), type}];
    auto equal = llvm::find_if(copies, [&](onnx::InitializerOp first) {
      return first->getBlock() == initializer->getBlock() && sameValue(first.getValue(), initializer.getValue());
    });
    if (equal == copies.end()) {
      copies.push_back(initializer);
      continue;
    }
    auto copy = builder.create<onnx::IdentityOp>(initializer.getLoc(), type, equal->getResult());
    copy->setAttr("onnx.output_names", builder.getStrArrayAttr({initializer.getTensorName()}));
    initializer.getResult().replaceAllUsesWith(copy.getResult());
    initializer.erase();
  }
}

struct PrunePass : public spa::impl::SPAPruneBase<PrunePass> {
  using Base::Base;
  ChannelRewriter rewriter; // what the ops' rewrites see and the edits they make
  llvm::DenseSet<Operation *> rewritten;

  /// The plan's (source, JSON text): from the plan file, or attached to the module (how the Python
  /// API hands it over; the attribute is taken off). None, with an error emitted, when neither or both.
  std::optional<std::pair<std::string, std::string>> planText(ModuleOp module) {
    if (auto attached = module->getAttrOfType<StringAttr>(kPlanAttribute)) {
      if (!plan.empty()) {
        module.emitError() << "spa-prune: both a plan file (" << plan << ") and a " << kPlanAttribute
                           << " attribute; give one";
        return std::nullopt;
      }
      std::string text = attached.getValue().str();
      module->removeAttr(kPlanAttribute);
      return std::make_pair(std::string(kPlanAttribute), text);
    }
    if (plan.empty()) {
      module.emitError() << "spa-prune needs a plan: --spa-prune=plan=PLAN.json or a " << kPlanAttribute
                         << " module attribute";
      return std::nullopt;
    }
    auto buffer = llvm::MemoryBuffer::getFile(plan);
    if (!buffer) {
      module.emitError() << "spa-prune: plan " << plan << ": cannot be read: " << buffer.getError().message();
      return std::nullopt;
    }
    return std::make_pair(std::string(plan), (*buffer)->getBuffer().str());
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::optional<std::pair<std::string, std::string>> planSource = planText(module);
    if (!planSource)
      return signalPassFailure();
    auto &[source, text] = *planSource;
    std::optional<HeadPruning> headPruning = parseHeadPruning(heads);
    if (!headPruning) {
      module.emitError() << "spa-prune: heads must be 'dims' or 'whole', not '" << heads << "'";
      return signalPassFailure();
    }
    std::optional<RemovedChannels> removed = readPlan(source, text, ChannelCoupling(module, *headPruning), module);
    if (!removed)
      return signalPassFailure();
    unshareIdentityConstants(module);
    ChannelCoupling coupling(module, *headPruning); // the same groups, now without shared constants
    recordKeptPositions(coupling, *removed);
    if (failed(checkOpsTakePlan(module)))
      return signalPassFailure();
    llvm::MapVector<Operation *, SmallVector<AxisSlice>> slices = shrinkGroups(coupling, *removed);
    if (failed(sliceConstants(slices)))
      return signalPassFailure();
    refreshLayoutViews(module);
    module.walk([&](Operation *op) {
      if (rewriter.touches(op))
        rewriteOp(op);
    });
    reshareEqualCopies(module);
  }

  /// What every pruned value keeps, and the result types its producer had, for the ops' rewrites.
  void recordKeptPositions(const ChannelCoupling &coupling, const RemovedChannels &removed) {
    rewriter.clear();
    rewritten.clear();
    for (const ChannelGroup &group : coupling.getGroups()) {
      auto it = removed.find(group.id);
      if (it == removed.end() || it->second.empty())
        continue;
      for (const GroupSpace &space : group.spaces) {
        rewriter.setKept(space.value, KeptPositions{space.axis, static_cast<int64_t>(space.channelOfPosition.size()),
                                                    keptPositions(space.channelOfPosition, it->second)});
        if (Operation *owner = space.value.getDefiningOp())
          rewriter.recordOldResultTypes(owner);
      }
    }
  }

  /// Each op's plan check (a channel Slice must keep a channel), before anything changes.
  LogicalResult checkOpsTakePlan(ModuleOp module) {
    const OpRuleTable &rules = getOpRules();
    WalkResult result = module.walk([&](Operation *op) {
      const OpRule *rule = rewriter.touches(op) ? rules.lookup(op) : nullptr;
      if (rule && rule->check && failed(rule->check(op, rewriter)))
        return WalkResult::interrupt();
      return WalkResult::advance();
    });
    return failure(result.wasInterrupted());
  }

  /// Shrinks the channel axis of every value of a pruned group; returns what each member constant keeps.
  llvm::MapVector<Operation *, SmallVector<AxisSlice>> shrinkGroups(const ChannelCoupling &coupling,
                                                                     const RemovedChannels &removed) {
    llvm::MapVector<Operation *, SmallVector<AxisSlice>> slices;
    for (const ChannelGroup &group : coupling.getGroups()) {
      auto it = removed.find(group.id);
      if (it == removed.end() || it->second.empty())
        continue;
      numRemovedChannels += it->second.size();
      for (const GroupSpace &space : group.spaces) {
        Value value = space.value;
        value.setType(withDim(value.getType(), space.axis, keptPositions(space.channelOfPosition, it->second).size()));
      }
      for (const GroupMember &member : group.members)
        slices[member.constant].push_back(AxisSlice{member.axis, keptPositions(member.channelOfPosition, it->second)});
      for (const GroupGather &gather : group.gathers)
        gatherKept(gather, keptPositions(gather.channelOfPosition, it->second));
    }
    return slices;
  }

  LogicalResult sliceConstants(const llvm::MapVector<Operation *, SmallVector<AxisSlice>> &slices) {
    for (auto &[constant, axisSlices] : slices) {
      if (auto fill = dyn_cast<onnx::ConstantOfShapeOp>(constant)) {
        resizeFill(fill, axisSlices);
        ++numSlicedConstants;
        continue;
      }
      ElementsAttr value = constantElements(constant->getResult(0));
      for (const AxisSlice &slice : axisSlices) {
        value = value ? sliceElements(value, slice, constantName(constant)) : value;
        if (!value)
          return constant->emitError() << "spa-prune: cannot slice constant '" << constantName(constant)
                                       << "' of type " << constant->getResult(0).getType();
      }
      setConstantValue(constant, value);
      ++numSlicedConstants;
    }
    return success();
  }

  /// `op`'s rule fixes the attributes and shape operands that count its channels (once).
  void rewriteOp(Operation *op) {
    if (!rewritten.insert(op).second)
      return;
    if (const OpRule *rule = getOpRules().lookup(op); rule && rule->rewrite)
      rule->rewrite(op, rewriter);
  }

  /// Transpose/Cast/Unsqueeze/Expand views of constants (see throughLayoutViews
  /// in the analysis) take their shape from the sliced constant.
  void refreshLayoutViews(ModuleOp module) {
    llvm::DenseSet<Value> constantDerived;
    auto isConstant = [&](Value v) { return isSliceableConstant(v) || constantDerived.contains(v); };
    module.walk([&](Operation *op) {
      if (op->getNumResults() != 1 || op->getNumOperands() < 1)
        return;
      bool binary = layoutViewOf(op) == LayoutView::Arithmetic;
      auto inputType = dyn_cast<RankedTensorType>(op->getOperand(0).getType());
      auto resultType = dyn_cast<RankedTensorType>(op->getResult(0).getType());
      if (!isConstant(op->getOperand(0)) || (binary && !isConstant(op->getOperand(1))) || !inputType ||
          !resultType)
        return;
      std::optional<SmallVector<int64_t>> shape = viewShape(op, inputType.getShape(), resultType);
      if (!shape)
        return;
      constantDerived.insert(op->getResult(0));
      if (resultType.getShape() != ArrayRef<int64_t>(*shape)) {
        rewriter.recordOldResultTypes(op);
        op->getResult(0).setType(resultType.clone(*shape));
        rewriteOp(op); // a Reshape's target has constant pieces to rewrite
      }
    });
  }

  /// The shape of view `op` of a constant now shaped `shape` (None: not a view SPA refreshes).
  static std::optional<SmallVector<int64_t>> viewShape(Operation *op, ArrayRef<int64_t> shape,
                                                       RankedTensorType resultType) {
    switch (layoutViewOf(op)) {
    case LayoutView::None:
      return std::nullopt;
    case LayoutView::Transpose: {
      SmallVector<int64_t> permuted;
      for (int64_t from : transposePerm(cast<onnx::TransposeOp>(op), shape.size()))
        permuted.push_back(shape[from]);
      return permuted;
    }
    case LayoutView::SameShape:
      return SmallVector<int64_t>(shape);
    case LayoutView::Unsqueeze:
      return unsqueezedViewShape(op, shape, resultType.getRank());
    case LayoutView::Reshape:
      return reshapedViewShape(shape, resultType.getShape());
    case LayoutView::Expand:
      return expandedViewShape(cast<onnx::ExpandOp>(op), shape, resultType);
    case LayoutView::Arithmetic: {
      auto other = dyn_cast<RankedTensorType>(op->getOperand(1).getType());
      if (!other)
        return std::nullopt;
      return broadcastShapes(shape, other.getShape());
    }
    }
    llvm_unreachable("every layout view kind is handled");
  }

  static std::optional<SmallVector<int64_t>> unsqueezedViewShape(Operation *op, ArrayRef<int64_t> shape,
                                                                 int64_t outRank) {
    std::optional<SmallVector<int64_t>> axes = constantInts(op->getOperand(1));
    if (!axes)
      return std::nullopt;
    SmallVector<bool> inserted(outRank, false);
    for (int64_t axis : *axes)
      inserted[axis < 0 ? axis + outRank : axis] = true;
    SmallVector<int64_t> expanded;
    for (int64_t i = 0, next = 0; i < outRank; ++i)
      expanded.push_back(inserted[i] ? 1 : shape[next++]);
    return expanded;
  }

  static std::optional<SmallVector<int64_t>> reshapedViewShape(ArrayRef<int64_t> shape, ArrayRef<int64_t> oldResult) {
    // (C) -> (1, .., C, .., 1): the one long axis takes the new length.
    auto notUnit = [](int64_t size) { return size != 1; };
    if (llvm::count_if(oldResult, notUnit) == 1 && llvm::count_if(shape, notUnit) <= 1) {
      int64_t length = 1;
      for (int64_t size : shape)
        length *= size;
      SmallVector<int64_t> result(oldResult);
      for (int64_t &size : result)
        if (size != 1)
          size = length;
      return result;
    }
    return regroupedShape(shape, oldResult); // a weight regrouped around its channel axis (reshapedAxisSource)
  }

  static std::optional<SmallVector<int64_t>> expandedViewShape(onnx::ExpandOp expand, ArrayRef<int64_t> shape,
                                                               RankedTensorType resultType) {
    // The target may read the batch from Shape (a class token): those entries
    // keep the result's old sizes, the constant ones are the target's.
    std::optional<SmallVector<ShapePiece>> pieces = shapePieces(expand.getShape());
    if (!pieces)
      return std::nullopt;
    SmallVector<int64_t> target;
    for (const ShapePiece &piece : *pieces)
      for (int64_t i = 0; i < piece.size; ++i)
        target.push_back(piece.constant ? (*piece.constant)[i] : ShapedType::kDynamic);
    int64_t offset = resultType.getRank() - static_cast<int64_t>(target.size());
    for (auto [i, entry] : llvm::enumerate(target))
      if (ShapedType::isDynamic(entry) && offset + static_cast<int64_t>(i) >= 0)
        entry = resultType.getDimSize(offset + i);
    return broadcastShapes(shape, target);
  }

  /// The new result shape of a Reshape view whose input became `input`: the one
  /// output axis with the same elements before and after it as a changed input
  /// axis takes that axis' new size; std::nullopt if there is no single such axis.
  static std::optional<SmallVector<int64_t>> regroupedShape(ArrayRef<int64_t> input, ArrayRef<int64_t> oldResult) {
    std::optional<SmallVector<int64_t>> found;
    for (size_t k = 0; k < input.size(); ++k)
      for (size_t j = 0; j < oldResult.size(); ++j) {
        if (input[k] == oldResult[j] || product(input.take_front(k)) != product(oldResult.take_front(j)) ||
            product(input.drop_front(k + 1)) != product(oldResult.drop_front(j + 1)))
          continue;
        SmallVector<int64_t> candidate(oldResult);
        candidate[j] = input[k];
        if (found && *found != candidate)
          return std::nullopt; // two different readings (a unit axis next to the channels gives the same one twice)
        found = std::move(candidate);
      }
    return found;
  }

  /// Numpy-style broadcast of two static shapes (right-aligned).
  static SmallVector<int64_t> broadcastShapes(ArrayRef<int64_t> a, ArrayRef<int64_t> b) {
    SmallVector<int64_t> result(std::max(a.size(), b.size()), 1);
    for (size_t i = 0; i < result.size(); ++i) {
      int64_t x = i < a.size() ? a[a.size() - 1 - i] : 1, y = i < b.size() ? b[b.size() - 1 - i] : 1;
      result[result.size() - 1 - i] = x == 1 ? y : x;
    }
    return result;
  }

  /// A computed operand of a pruned elementwise op reads only the kept positions.
  void gatherKept(const GroupGather &gather, ArrayRef<int64_t> kept) {
    Value operand = gather.user->getOperand(gather.operandIndex);
    OpBuilder builder(gather.user);
    std::string name = rewriter.freshName("spa_kept_positions");
    auto indices = builder.create<onnx::InitializerOp>(gather.user->getLoc(), builder.getStringAttr(name),
                                                       makeInt64Elements(builder.getContext(), kept, name));
    Type type = withDim(operand.getType(), gather.axis, static_cast<int64_t>(kept.size()));
    auto gathered = builder.create<onnx::GatherOp>(gather.user->getLoc(), type, operand, indices.getResult(),
                                                   static_cast<uint64_t>(gather.axis));
    gather.user->setOperand(gather.operandIndex, gathered.getResult());
  }

  /// A ConstantOfShape member only needs its shape operand (and type) shrunk.
  void resizeFill(onnx::ConstantOfShapeOp fill, ArrayRef<AxisSlice> axisSlices) {
    auto type = cast<RankedTensorType>(fill.getOutput().getType());
    SmallVector<int64_t> shape(type.getShape());
    for (const AxisSlice &slice : axisSlices)
      shape[slice.axis] = slice.kept.size();
    rewriter.replaceIntOperand(fill, 0, shape);
    fill.getOutput().setType(type.clone(shape));
  }

};

} // namespace
