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

const char *const kElementwiseOps[] = {
    // unary math and activations
    "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Cos", "Cosh", "Erf", "Exp", "Floor",
    "IsInf", "IsNaN", "Log", "Neg", "Not", "Reciprocal", "Round", "Sign", "Sin", "Sinh", "Sqrt", "Tan",
    "Tanh", "Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Gelu", "Sigmoid", "HardSigmoid", "HardSwish",
    "Mish", "Softplus", "Softsign", "ThresholdedRelu", "Shrink", "Swish", "Identity", "Cast", "CastLike",
    "Dropout", "Clip", "PRelu",
    // binary and variadic, broadcasting
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean", "Where", "And", "Or", "Xor",
    "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "BitShift", "BitwiseAnd", "BitwiseOr",
    "BitwiseXor", "BitwiseNot"};

/// Ops that work on each channel separately and keep the channel axis 1.
const char *const kPerChannelOps[] = {"MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
                                      "GlobalMaxPool", "GlobalLpPool", "MaxRoiPool", "DepthToSpace"};

void perChannelRule(Operation *op, CouplingBuilder &builder) {
  const TrackedAxis *input = builder.lookup(op->getOperand(0));
  if (!input)
    return;
  if (input->axis != 1 || op->getName().getStringRef() == "onnx.DepthToSpace") {
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

} // namespace

void spa::rules::registerElementwiseRules(ChannelRuleTable &table) {
  for (const char *name : kElementwiseOps)
    table[std::string("onnx.") + name] = broadcastElementwise;
  for (const char *name : kPerChannelOps)
    table[std::string("onnx.") + name] = perChannelRule;
  table["onnx.Resize"] = resizeRule;
  table["onnx.Pad"] = padRule;
  for (const char *name : {"Softmax", "LogSoftmax", "Hardmax"})
    table[std::string("onnx.") + name] = softmaxLikeRule;
}
