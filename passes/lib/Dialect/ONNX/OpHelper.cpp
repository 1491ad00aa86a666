//===- OpHelper.cpp - reading onnx-dialect values --------------------------===//
//
// Ranks, static dims, constant contents, shape pieces, slice ranges and op
// labels: what coupling rules and the prune pass ask of onnx values.
//
//===----------------------------------------------------------------------===//

#include "spa/Dialect/ONNX/OpHelper.h"

#include "spa/Dialect/ONNX/ONNXDialect.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/DialectResourceBlobManager.h"

#include <algorithm>
#include <functional>
#include <numeric>

using namespace mlir;
using namespace spa;

int64_t spa::product(ArrayRef<int64_t> dims) {
  return std::accumulate(dims.begin(), dims.end(), int64_t{1}, std::multiplies<int64_t>());
}

SmallVector<int64_t> spa::transposePerm(onnx::TransposeOp transpose, int64_t rank) {
  SmallVector<int64_t> perm;
  if (std::optional<ArrayAttr> attr = transpose.getPerm()) {
    for (Attribute entry : *attr)
      perm.push_back(cast<IntegerAttr>(entry).getInt());
    return perm;
  }
  for (int64_t i = rank - 1; i >= 0; --i) // no perm: the axes reversed
    perm.push_back(i);
  return perm;
}

/// The input axis a Reshape keeps intact as output axis `axis` (same size, same
/// static number of elements before it), so positions along it correspond:
/// a weight regrouped around its channel axis, e.g. Keras' depthwise kernel
/// (3, 3, C, 1) -> (3, 3, 1, C).
std::optional<int64_t> spa::reshapedAxisSource(Value input, Value output, int64_t axis) {
  auto in = dyn_cast<RankedTensorType>(input.getType());
  auto out = dyn_cast<RankedTensorType>(output.getType());
  if (!in || !out || !in.hasStaticShape() || !out.hasStaticShape() || axis < 0 || axis >= out.getRank())
    return std::nullopt;
  int64_t before = 1;
  for (int64_t i = 0; i < axis; ++i)
    before *= out.getDimSize(i);
  int64_t prefix = 1;
  for (int64_t k = 0; k < in.getRank(); prefix *= in.getDimSize(k++))
    if (prefix == before && in.getDimSize(k) == out.getDimSize(axis) && in.getDimSize(k) != 1)
      return k;
  return std::nullopt;
}

std::optional<int64_t> spa::staticDim(Value value, int64_t axis) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!type || axis < 0 || axis >= type.getRank() || type.isDynamicDim(axis))
    return std::nullopt;
  return type.getDimSize(axis);
}

std::optional<int64_t> spa::rankOf(Value value) {
  if (auto type = dyn_cast<RankedTensorType>(value.getType()))
    return type.getRank();
  return std::nullopt;
}

ElementsAttr spa::constantElements(Value value) {
  Operation *op = value.getDefiningOp();
  if (!op)
    return {};
  if (auto initializer = dyn_cast<onnx::InitializerOp>(op))
    return initializer.getValue();
  if (auto constant = dyn_cast<onnx::ConstantOp>(op))
    return constant.getValueAttr();
  if (auto identity = dyn_cast<onnx::IdentityOp>(op)) // exporters share equal weights this way
    return constantElements(identity.getInput());
  return {};
}

bool spa::isSliceableConstant(Value value) {
  if (constantElements(value))
    return true;
  auto fill = value.getDefiningOp<onnx::ConstantOfShapeOp>();
  return fill && constantInts(fill.getInput()) && isa<RankedTensorType>(value.getType());
}

std::optional<SmallVector<ShapePiece>> spa::shapePieces(Value shape) {
  if (std::optional<SmallVector<int64_t>> values = constantInts(shape))
    return SmallVector<ShapePiece>{ShapePiece{shape, 0, static_cast<int64_t>(values->size()), values}};
  if (auto whole = shape.getDefiningOp<onnx::ShapeOp>()) {
    std::optional<int64_t> rank = rankOf(whole.getData());
    if (rank && whole.getStart() == 0 && !whole.getEnd())
      return SmallVector<ShapePiece>{ShapePiece{shape, 0, *rank, std::nullopt, whole.getData()}};
    return std::nullopt;
  }
  auto concat = shape.getDefiningOp<onnx::ConcatOp>();
  if (!concat || concat.getAxis() != 0)
    return std::nullopt;
  SmallVector<ShapePiece> pieces;
  for (auto [index, piece] : llvm::enumerate(concat.getInputs())) {
    auto type = dyn_cast<RankedTensorType>(piece.getType());
    if (!type || type.getRank() != 1 || type.isDynamicDim(0))
      return std::nullopt;
    pieces.push_back(ShapePiece{piece, static_cast<unsigned>(index), type.getDimSize(0), constantInts(piece)});
    if (!pieces.back().constant)
      std::tie(pieces.back().shapeOf, pieces.back().shapeOffset) = dimsRead(piece, type.getDimSize(0));
  }
  return pieces;
}

/// The tensor and first dim a shape piece of `size` entries reads: dimRead's
/// single dims, or a run of dims read at once by Shape(x, start, end) (the
/// dynamo exporter's `Shape(x)[0:2]`); ({}, 0) for anything else.
std::pair<Value, int64_t> spa::dimsRead(Value piece, int64_t size) {
  auto shape = piece.getDefiningOp<onnx::ShapeOp>();
  std::optional<int64_t> rank = shape ? rankOf(shape.getData()) : std::nullopt;
  if (!rank)
    return size == 1 ? dimRead(piece) : std::pair<Value, int64_t>{};
  int64_t start = std::clamp<int64_t>(normaliseAxis(shape.getStart(), *rank), 0, *rank);
  int64_t end = shape.getEnd() ? std::clamp<int64_t>(normaliseAxis(*shape.getEnd(), *rank), 0, *rank) : *rank;
  return end - start == size ? std::make_pair(shape.getData(), start) : std::pair<Value, int64_t>{};
}

/// One dim of a tensor read as a 1-element shape piece: Unsqueeze(Gather(Shape(x), k)),
/// Gather(Shape(x), [k]) or Slice(Shape(x), k, k + 1), also through Unsqueeze(Squeeze(...))
/// (optimum's GPT-2 export) -> (x, k); ({}, 0) for anything else.
std::pair<Value, int64_t> spa::dimRead(Value piece) {
  if (auto unsqueeze = piece.getDefiningOp<onnx::UnsqueezeOp>()) {
    piece = unsqueeze.getData();
    if (auto squeeze = piece.getDefiningOp<onnx::SqueezeOp>())
      piece = squeeze.getData(); // a 1-element slice made a scalar and back
  }
  Operation *op = piece.getDefiningOp();
  auto shape = op && op->getNumOperands() >= 2 ? op->getOperand(0).getDefiningOp<onnx::ShapeOp>() : onnx::ShapeOp();
  std::optional<int64_t> rank = shape ? rankOf(shape.getData()) : std::nullopt;
  if (!shape || !rank || shape.getStart() != 0 || (shape.getEnd() && *shape.getEnd() < *rank))
    return {};
  if (auto gather = dyn_cast<onnx::GatherOp>(op)) {
    std::optional<SmallVector<int64_t>> index = constantInts(gather.getIndices());
    if (gather.getAxis() != 0 || !index || index->size() != 1)
      return {};
    int64_t dim = normaliseAxis(index->front(), *rank);
    return dim >= 0 && dim < *rank ? std::make_pair(shape.getData(), dim) : std::pair<Value, int64_t>{};
  }
  if (isa<onnx::SliceOp>(op)) {
    std::optional<SliceRange> range = sliceRange(op, 0, *rank);
    if (range && range->last == range->first + 1)
      return {shape.getData(), range->first};
  }
  return {};
}

std::optional<SliceRange> spa::sliceRange(Operation *slice, int64_t axis, int64_t size) {
  auto optionalInts = [&](unsigned index) -> std::optional<SmallVector<int64_t>> {
    if (slice->getNumOperands() <= index || isa<NoneType>(slice->getOperand(index).getType()))
      return SmallVector<int64_t>{};
    return constantInts(slice->getOperand(index));
  };
  std::optional<SmallVector<int64_t>> starts = constantInts(slice->getOperand(1)),
                                      ends = constantInts(slice->getOperand(2)), axes = optionalInts(3),
                                      steps = optionalInts(4);
  std::optional<int64_t> rank = rankOf(slice->getOperand(0));
  if (!starts || !ends || !axes || !steps || !rank || starts->size() != ends->size() ||
      (!axes->empty() && axes->size() != starts->size()) || (!steps->empty() && steps->size() != starts->size()))
    return std::nullopt;
  for (unsigned i = 0; i < starts->size(); ++i) {
    int64_t sliced = axes->empty() ? i : normaliseAxis((*axes)[i], *rank);
    if (sliced != axis)
      continue;
    if (!steps->empty() && (*steps)[i] != 1)
      return std::nullopt;
    auto clampIndex = [&](int64_t index) { return std::clamp(index < 0 ? index + size : index, int64_t{0}, size); };
    return SliceRange{clampIndex((*starts)[i]), clampIndex((*ends)[i]), i};
  }
  return SliceRange{0, size, ~0u}; // the axis is not sliced
}

std::string spa::describe(Operation *op) {
  std::string label = op->getName().getStringRef().str();
  if (auto name = op->getAttrOfType<StringAttr>("onnx.node_name"))
    label += " '" + name.getValue().str() + "'";
  return label;
}

std::optional<SmallVector<int64_t>> spa::constantInts(Value value) {
  if (auto unsqueeze = value.getDefiningOp<onnx::UnsqueezeOp>()) // a scalar made a 1-element shape piece
    return constantInts(unsqueeze.getData());
  if (auto constant = value.getDefiningOp<onnx::ConstantOp>()) { // value_ints / value_int (folders write these)
    if (std::optional<ArrayAttr> list = constant.getValueInts()) {
      SmallVector<int64_t> values;
      for (Attribute entry : *list)
        values.push_back(cast<IntegerAttr>(entry).getInt());
      return values;
    }
    if (std::optional<uint64_t> single = constant.getValueInt())
      return SmallVector<int64_t>{static_cast<int64_t>(*single)};
  }
  ElementsAttr elements = constantElements(value);
  if (!elements || !elements.getElementType().isInteger())
    return std::nullopt;
  SmallVector<int64_t> values;
  if (auto dense = dyn_cast<DenseIntElementsAttr>(elements)) {
    for (const APInt &v : dense.getValues<APInt>())
      values.push_back(v.getSExtValue());
    return values;
  }
  if (auto resource = dyn_cast<DenseResourceElementsAttr>(elements)) {
    AsmResourceBlob *blob = resource.getRawHandle().getBlob();
    if (!blob)
      return std::nullopt;
    ArrayRef<char> data = blob->getData();
    unsigned width = elements.getElementType().getIntOrFloatBitWidth();
    if (width != 64 && width != 32)
      return std::nullopt;
    size_t count = data.size() / (width / 8);
    for (size_t i = 0; i < count; ++i)
      values.push_back(width == 64 ? reinterpret_cast<const int64_t *>(data.data())[i]
                                   : reinterpret_cast<const int32_t *>(data.data())[i]);
    return values;
  }
  return std::nullopt;
}
