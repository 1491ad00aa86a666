//===- ElementwiseRules.cpp - elementwise ops, activations, pooling -------===//
//
// Elementwise ops (with numpy broadcasting) keep every channel where it is:
// tracked operands are the same channels (a residual Add unites them) and
// constant operands spanning the channel axis are sliced with it. Pooling,
// Resize and Pad work per channel too. Softmax-like ops over the channel axis
// keep channels but are not function-preserving.
//
//===----------------------------------------------------------------------===//

#include "Rules.h"

#include "spa/Dialect/ONNX/ONNXDialect.h"

using namespace mlir;
using namespace spa;

namespace {

void perChannelRule(Operation *op, CouplingBuilder &builder) {
  const TrackedAxis *input = builder.lookup(op->getOperand(0));
  if (!input)
    return;
  if (input->axis != 1 || isa<onnx::DepthToSpaceOp>(op)) {
    builder.block(input->atoms, describe(op) + " works on the channel axis");
    return;
  }
  rules::passThrough(op, builder);
}

/// Whether Resize's explicit `sizes` keep the channel count of its input at
/// `axis`: the axis is not resized (`axes` leaves it out), or its entry is the
/// input's own channel count, read from Shape(x) (the dynamo exporter's
/// `Concat(Shape(x, 0, 2), size)`) or a constant equal to it, which the prune
/// pass rewrites. The sizes must be applied as given (the `stretch` aspect
/// policy) and the result must keep the count.
bool sizesKeepChannels(onnx::ResizeOp resize, int64_t axis) {
  std::optional<int64_t> rank = rankOf(resize.getX());
  auto policy = resize->getAttrOfType<StringAttr>("keep_aspect_ratio_policy");
  if (!rank || (policy && policy.getValue() != "stretch") || staticDim(resize.getY(), axis) != staticDim(resize.getX(), axis))
    return false;
  if (auto axes = resize->getAttrOfType<ArrayAttr>("axes"))
    return llvm::none_of(axes.getAsValueRange<IntegerAttr>(), [&](const APInt &resized) {
      return rules::normaliseAxis(resized.getSExtValue(), *rank) == axis;
    });
  std::optional<SmallVector<ShapePiece>> pieces = shapePieces(resize.getSizes());
  std::optional<int64_t> channels = staticDim(resize.getX(), axis);
  if (!pieces || !channels)
    return false;
  int64_t position = 0;
  for (const ShapePiece &piece : *pieces) {
    if (axis >= position && axis < position + piece.size) {
      int64_t entry = axis - position;
      if (piece.constant)
        return (*piece.constant)[entry] == *channels;
      return piece.shapeOf == resize.getX() && piece.shapeOffset + entry == axis;
    }
    position += piece.size;
  }
  return false;
}

void resizeRule(Operation *op, CouplingBuilder &builder) {
  auto resize = cast<onnx::ResizeOp>(op);
  const TrackedAxis *input = builder.lookup(resize.getX());
  if (!input)
    return;
  if (!isa<NoneType>(resize.getSizes().getType()) && !sizesKeepChannels(resize, input->axis)) {
    builder.block(input->atoms, describe(op) + " has explicit output sizes that change or hide the channel count");
    return;
  }
  std::optional<int64_t> in = staticDim(resize.getX(), input->axis), out = staticDim(resize.getY(), input->axis);
  auto mode = resize->getAttrOfType<StringAttr>("coordinate_transformation_mode");
  if ((in && out && *in != *out) || (mode && mode.getValue() == "tf_crop_and_resize")) {
    builder.block(input->atoms, describe(op) + " resizes or crops the channel axis");
    return;
  }
  rules::passThrough(op, builder);
}

void padRule(Operation *op, CouplingBuilder &builder) {
  auto pad = cast<onnx::PadOp>(op);
  const TrackedAxis *input = builder.lookup(pad.getData());
  std::optional<int64_t> rank = rankOf(pad.getData());
  if (!input || !rank)
    return;
  std::optional<SmallVector<int64_t>> pads = rules::constantInts(pad.getPads());
  bool axesGiven = !isa<NoneType>(pad.getAxes().getType());
  if (!pads || axesGiven || static_cast<int64_t>(pads->size()) != 2 * *rank ||
      (*pads)[input->axis] != 0 || (*pads)[input->axis + *rank] != 0) {
    builder.block(input->atoms, describe(op) + " may pad the channel axis");
    return;
  }
  rules::passThrough(op, builder);
}

void softmaxLikeRule(Operation *op, CouplingBuilder &builder) {
  const TrackedAxis *input = builder.lookup(op->getOperand(0));
  std::optional<int64_t> rank = rankOf(op->getOperand(0));
  if (!input || !rank)
    return;
  if (rules::normaliseAxis(static_cast<int64_t>(rules::intAttr(op, "axis", -1)), *rank) == input->axis)
    builder.markNotFunctionPreserving(op, *input, describe(op) + " normalises over the channels");
  rules::passThrough(op, builder);
}

/// Explicit sizes (with no `axes`) count the channels: they follow the result.
void resizeRewrite(Operation *op, ChannelRewriter &rewriter) {
  auto resize = cast<onnx::ResizeOp>(op);
  if (!isa<NoneType>(resize.getSizes().getType()) && !resize->hasAttr("axes"))
    rules::rewriteShapeOperand(op, rewriter, 3);
}

} // namespace

void spa::rules::registerElementwiseRules(OpRuleTable &table) {
  // Unary math and activations.
  table.add<onnx::AbsOp, onnx::AcosOp, onnx::AcoshOp, onnx::AsinOp, onnx::AsinhOp, onnx::AtanOp, onnx::AtanhOp,
            onnx::CeilOp, onnx::CosOp, onnx::CoshOp, onnx::ErfOp, onnx::ExpOp, onnx::FloorOp, onnx::IsInfOp,
            onnx::IsNaNOp, onnx::LogOp, onnx::NegOp, onnx::NotOp, onnx::ReciprocalOp, onnx::RoundOp, onnx::SignOp,
            onnx::SinOp, onnx::SinhOp, onnx::SqrtOp, onnx::TanOp, onnx::TanhOp, onnx::ReluOp, onnx::LeakyReluOp,
            onnx::EluOp, onnx::SeluOp, onnx::CeluOp, onnx::GeluOp, onnx::SigmoidOp, onnx::HardSigmoidOp,
            onnx::HardSwishOp, onnx::MishOp, onnx::SoftplusOp, onnx::SoftsignOp, onnx::ThresholdedReluOp,
            onnx::ShrinkOp, onnx::SwishOp, onnx::IdentityOp, onnx::CastOp, onnx::CastLikeOp, onnx::DropoutOp,
            onnx::ClipOp, onnx::PReluOp>({broadcastElementwise});
  // Binary and variadic, broadcasting.
  table.add<onnx::AddOp, onnx::SubOp, onnx::MulOp, onnx::DivOp, onnx::PowOp, onnx::ModOp, onnx::MaxOp, onnx::MinOp,
            onnx::SumOp, onnx::MeanOp, onnx::WhereOp, onnx::AndOp, onnx::OrOp, onnx::XorOp, onnx::EqualOp,
            onnx::GreaterOp, onnx::GreaterOrEqualOp, onnx::LessOp, onnx::LessOrEqualOp, onnx::BitShiftOp,
            onnx::BitwiseAndOp, onnx::BitwiseOrOp, onnx::BitwiseXorOp, onnx::BitwiseNotOp>({broadcastElementwise});
  // Per channel, with the channel axis 1.
  table.add<onnx::MaxPoolOp, onnx::AveragePoolOp, onnx::LpPoolOp, onnx::GlobalAveragePoolOp, onnx::GlobalMaxPoolOp,
            onnx::GlobalLpPoolOp, onnx::MaxRoiPoolOp, onnx::DepthToSpaceOp>({perChannelRule});
  table.add<onnx::ResizeOp>({resizeRule, resizeRewrite});
  table.add<onnx::PadOp>({padRule});
  table.add<onnx::SoftmaxOp, onnx::LogSoftmaxOp, onnx::HardmaxOp>({softmaxLikeRule});
}
