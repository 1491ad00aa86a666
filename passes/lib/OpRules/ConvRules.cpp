//===- ConvRules.cpp - Conv and ConvTranspose -----------------------------===//
//
// Conv: input channel c <-> weight[:, c] (consumer); output channel o <->
// weight[o] and bias[o] (producer). Depthwise conv (group == in == out
// channels) ties input channel c to output channel c, so both sides are one
// channel. Other grouped convs keep their groups: the same positions are
// removed from every group, on the input side and on the output side.
// ConvTranspose is the same with the weight's first two axes swapped.
//
//===----------------------------------------------------------------------===//

#include "Rules.h"

#include "spa/Dialect/ONNX/ONNXDialect.h"

using namespace mlir;
using namespace spa;

namespace {

/// Input atoms on the channel axis (1), blocking them if tracked elsewhere.
const TrackedAxis *inputChannels(Value input, CouplingBuilder &builder, const std::string &where) {
  const TrackedAxis *tracked = builder.lookup(input);
  if (tracked && tracked->axis != 1) {
    builder.block(tracked->atoms, where + " reads channels on a non-channel axis");
    return nullptr;
  }
  return tracked;
}

void convRule(Operation *op, CouplingBuilder &builder) {
  auto conv = cast<onnx::ConvOp>(op);
  std::string where = describe(op);
  const TrackedAxis *input = inputChannels(conv.getX(), builder, where);
  std::optional<int64_t> outChannels = staticDim(conv.getW(), 0);
  std::optional<int64_t> inPerGroup = staticDim(conv.getW(), 1);
  if (!outChannels || !inPerGroup) {
    if (input)
      builder.block(input->atoms, where + " has a weight of unknown shape");
    return;
  }
  int64_t groups = conv.getGroup();
  bool depthwise = groups > 1 && *inPerGroup == 1 && input &&
                   static_cast<int64_t>(input->atoms.size()) == groups && *outChannels == groups;
  SmallVector<Atom> out;
  if (depthwise) {
    out = input->atoms; // channel c in is channel c out
  } else {
    out = builder.fresh(*outChannels);
    if (groups == 1) {
      if (input)
        builder.member(conv.getW(), 1, MemberRole::Consumer, input->atoms, where + " weight");
    } else if (*outChannels % groups == 0 && (!input || static_cast<int64_t>(input->atoms.size()) == groups * *inPerGroup)) {
      // Grouped conv: keep the groups, remove the same positions in each of them.
      int64_t outPerGroup = *outChannels / groups;
      for (int64_t g = 1; g < groups; ++g)
        builder.uniteAll(ArrayRef<Atom>(out).take_front(outPerGroup), ArrayRef<Atom>(out).slice(g * outPerGroup, outPerGroup));
      if (input) {
        for (int64_t g = 1; g < groups; ++g)
          builder.uniteAll(ArrayRef<Atom>(input->atoms).take_front(*inPerGroup),
                           ArrayRef<Atom>(input->atoms).slice(g * *inPerGroup, *inPerGroup));
        builder.member(conv.getW(), 1, MemberRole::Consumer, ArrayRef<Atom>(input->atoms).take_front(*inPerGroup),
                       where + " weight");
      }
    } else {
      std::string reason = where + " is a grouped conv with unexpected shapes";
      builder.block(out, reason);
      if (input)
        builder.block(input->atoms, reason);
    }
  }
  builder.member(conv.getW(), 0, MemberRole::Producer, out, where + " weight");
  if (!isa<NoneType>(conv.getB().getType()))
    builder.member(conv.getB(), 0, MemberRole::Producer, out, where + " bias");
  builder.track(conv.getY(), 1, out);
}

void convTransposeRule(Operation *op, CouplingBuilder &builder) {
  auto conv = cast<onnx::ConvTransposeOp>(op);
  std::string where = describe(op);
  const TrackedAxis *input = inputChannels(conv.getX(), builder, where);
  std::optional<int64_t> outPerGroup = staticDim(conv.getW(), 1);
  if (!outPerGroup || conv.getGroup() != 1) {
    if (input)
      builder.block(input->atoms, where + (outPerGroup ? " is a grouped transposed conv" : " has a weight of unknown shape"));
    if (outPerGroup) {
      SmallVector<Atom> out = builder.fresh(*outPerGroup * conv.getGroup());
      builder.block(out, where + " is a grouped transposed conv");
      builder.track(conv.getY(), 1, out);
    }
    return;
  }
  if (input)
    builder.member(conv.getW(), 0, MemberRole::Consumer, input->atoms, where + " weight");
  SmallVector<Atom> out = builder.fresh(*outPerGroup);
  builder.member(conv.getW(), 1, MemberRole::Producer, out, where + " weight");
  if (!isa<NoneType>(conv.getB().getType()))
    builder.member(conv.getB(), 0, MemberRole::Producer, out, where + " bias");
  builder.track(conv.getY(), 1, out);
}

/// Depthwise (one group per channel) keeps one group per remaining channel;
/// other grouped convs keep their groups and shrink each of them.
void convRewrite(Operation *op, ChannelRewriter &rewriter) {
  auto conv = cast<onnx::ConvOp>(op);
  ArrayRef<Type> oldTypes = rewriter.oldResultTypes(op);
  if (oldTypes.empty() || conv.getGroup() <= 1)
    return;
  if (static_cast<int64_t>(conv.getGroup()) == cast<RankedTensorType>(oldTypes[0]).getDimSize(1))
    conv.setGroup(cast<RankedTensorType>(conv.getY().getType()).getDimSize(1));
}

} // namespace

void spa::rules::registerConvRules(OpRuleTable &table) {
  table.add<onnx::ConvOp>({convRule, convRewrite});
  table.add<onnx::ConvTransposeOp>({convTransposeRule});
}
