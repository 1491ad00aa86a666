//===- NormalizationRules.cpp - per-channel and cross-channel norms -------===//
//
// BatchNormalization / InstanceNormalization: every parameter is per channel
// (axis 1) and travels with it. InstanceNormalization of channels flattened
// into a normalised axis (torch's GroupNorm(1, C): Reshape to [N, 1, C*H*W])
// keeps its parameters but, like LayerNormalization, its statistics change
// when channels go: not function-preserving. LayerNormalization over the channel axis
// also slices scale and bias, but removing a channel changes the statistics,
// so its channels are not function-preserving; the same holds for LRN.
// GroupNormalization keeps its groups and loses the same positions in each.
//
//===----------------------------------------------------------------------===//

#include "Rules.h"

#include "spa/Dialect/ONNX/ONNXDialect.h"

using namespace mlir;
using namespace spa;

namespace {

/// Input channels on axis 1, with operands `first..last` as per-channel members.
void perChannelNorm(Operation *op, CouplingBuilder &builder, unsigned first, unsigned last) {
  const TrackedAxis *input = builder.lookup(op->getOperand(0));
  if (!input)
    return;
  std::string where = describe(op);
  if (input->axis != 1) {
    builder.block(input->atoms, where + " normalises a non-channel axis");
    return;
  }
  for (unsigned index = first; index <= last && index < op->getNumOperands(); ++index)
    if (!isa<NoneType>(op->getOperand(index).getType()))
      builder.member(op->getOperand(index), 0, MemberRole::Norm, input->atoms, where + " parameter");
  for (Value result : op->getResults())
    if (rankOf(result) == rankOf(op->getOperand(0)))
      builder.track(result, 1, input->atoms);
}

void batchNormRule(Operation *op, CouplingBuilder &builder) { perChannelNorm(op, builder, 1, 4); }
void instanceNormRule(Operation *op, CouplingBuilder &builder) {
  const TrackedAxis *input = builder.lookup(op->getOperand(0));
  if (input && input->axis >= 2) { // channels inside the normalised axes
    builder.markNotFunctionPreserving(op, *input, describe(op) + " normalises over the channels");
    builder.track(op->getResult(0), input->axis, input->atoms);
    return;
  }
  perChannelNorm(op, builder, 1, 2);
}

void layerNormRule(Operation *op, CouplingBuilder &builder) {
  auto norm = cast<onnx::LayerNormalizationOp>(op);
  const TrackedAxis *input = builder.lookup(norm.getX());
  std::optional<int64_t> rank = rankOf(norm.getX());
  if (!input || !rank)
    return;
  std::string where = describe(op);
  int64_t first = rules::normaliseAxis(norm.getAxis(), *rank);
  if (input->axis >= first) {
    builder.markNotFunctionPreserving(op, *input, where + " normalises over the channels");
    int64_t paramAxis = input->axis - first;
    for (Value param : std::initializer_list<Value>{norm.getScale(), norm.getB()}) {
      if (isa<NoneType>(param.getType()))
        continue;
      std::optional<int64_t> paramRank = rankOf(param);
      if (paramRank && *paramRank == *rank - first)
        builder.member(param, paramAxis, MemberRole::Norm, input->atoms, where + " parameter");
      else
        builder.block(input->atoms, where + " has parameters of unexpected rank");
    }
  }
  builder.track(norm.getY(), input->axis, input->atoms);
}

void acrossChannelsRule(Operation *op, CouplingBuilder &builder) {
  const TrackedAxis *input = builder.lookup(op->getOperand(0));
  if (!input)
    return;
  if (input->axis == 1)
    builder.markNotFunctionPreserving(op, *input, describe(op) + " mixes neighbouring channels");
  rules::passThrough(op, builder);
}

/// GroupNormalization keeps its groups: position j of every group is one
/// channel (as for grouped convs). Statistics are per group, so removing
/// channels changes them: not function-preserving.
void groupNormRule(Operation *op, CouplingBuilder &builder) {
  auto norm = cast<onnx::GroupNormalizationOp>(op);
  const TrackedAxis *input = builder.lookup(norm.getX());
  if (!input)
    return;
  std::string where = describe(op);
  int64_t groups = norm.getNumGroups(), channels = input->atoms.size();
  if (input->axis != 1 || groups <= 0 || channels % groups != 0) {
    builder.block(input->atoms, where + " normalises channel groups SPA cannot follow");
    return;
  }
  int64_t perGroup = channels / groups;
  ArrayRef<Atom> atoms = input->atoms;
  for (int64_t g = 1; g < groups; ++g)
    builder.uniteAll(atoms.take_front(perGroup), atoms.slice(g * perGroup, perGroup));
  builder.markNotFunctionPreserving(op, *input, where + " normalises over channel groups");
  for (Value param : std::initializer_list<Value>{norm.getScale(), norm.getBias()})
    builder.member(param, 0, MemberRole::Norm, input->atoms, where + " parameter");
  builder.track(norm.getY(), 1, input->atoms);
}

} // namespace

void spa::rules::registerNormalizationRules(OpRuleTable &table) {
  table.add<onnx::BatchNormalizationOp>({batchNormRule});
  table.add<onnx::InstanceNormalizationOp>({instanceNormRule});
  table.add<onnx::LayerNormalizationOp>({layerNormRule});
  table.add<onnx::LRNOp>({acrossChannelsRule});
  table.add<onnx::GroupNormalizationOp>({groupNormRule});
}
