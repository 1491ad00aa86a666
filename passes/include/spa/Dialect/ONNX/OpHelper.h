//===- OpHelper.h - reading onnx-dialect values --------------*- C++ -*-===//
//
// What coupling rules and the prune pass ask of onnx values: ranks and static
// dims, constant contents (initializers, Constants, Identity-shared weights),
// the pieces of a computed shape, Slice ranges, Transpose perms, and a label
// for messages. In the spirit of onnx-mlir's OpHelper.
//
//===----------------------------------------------------------------------===//

#ifndef SPA_DIALECT_ONNX_OPHELPER_H
#define SPA_DIALECT_ONNX_OPHELPER_H

#include "spa/Dialect/ONNX/ONNXDialect.h"

#include "mlir/IR/BuiltinAttributeInterfaces.h"
#include "mlir/IR/Operation.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/SmallVector.h"

#include <optional>
#include <string>
#include <utility>

namespace spa {

/// `axis` counted from the front (ONNX allows negative axes, counted from the end).
inline int64_t normaliseAxis(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }
/// The product of `dims` (1 for none).
int64_t product(llvm::ArrayRef<int64_t> dims);
/// The output-to-input axis map of a Transpose of a rank-`rank` tensor (reversed axes without `perm`).
llvm::SmallVector<int64_t> transposePerm(onnx::TransposeOp transpose, int64_t rank);

/// The value's static dimension `axis`, or std::nullopt when unknown.
std::optional<int64_t> staticDim(mlir::Value value, int64_t axis);
/// The value's rank, or std::nullopt when unranked.
std::optional<int64_t> rankOf(mlir::Value value);
/// The constant elements behind `value` (onnx.Initializer / onnx.Constant), if any.
mlir::ElementsAttr constantElements(mlir::Value value);
/// True for values SPA can slice: constant elements, or a ConstantOfShape
/// (a filled tensor) whose shape is constant.
bool isSliceableConstant(mlir::Value value);

/// Integer values of a constant operand (shape, axes, pads ...), if constant.
std::optional<llvm::SmallVector<int64_t>> constantInts(mlir::Value value);
/// One piece of a shape operand: `size` entries, from `value`; `constant`
/// holds them when the piece is a constant, `shapeOf` the tensor when the
/// piece reads its dims (Shape(x), Shape(x, start, end) or one dim of it: it
/// follows x's sizes when x is pruned; entry i reads dim shapeOffset + i).
struct ShapePiece {
  mlir::Value value;
  unsigned operandIndex; // in the Concat building the shape (0 for a plain constant)
  int64_t size;
  std::optional<llvm::SmallVector<int64_t>> constant;
  mlir::Value shapeOf = {};
  int64_t shapeOffset = 0; // the dim of `shapeOf` that entry 0 reads (Gather(Shape(x), k) reads k)
};
/// The pieces of a shape operand: itself when constant or a whole Shape(x),
/// else the inputs of the Concat (axis 0) of 1-D pieces that computes it (e.g.
/// Shape-derived batch dims next to constant feature dims); std::nullopt otherwise.
std::optional<llvm::SmallVector<ShapePiece>> shapePieces(mlir::Value shape);
/// The tensor and dim a 1-element shape piece reads (Unsqueeze(Gather(Shape(x), k))), or ({}, 0).
std::pair<mlir::Value, int64_t> dimRead(mlir::Value piece);
/// The tensor and first dim a shape piece of `size` entries reads (dimRead, or Shape(x, start, end)).
std::pair<mlir::Value, int64_t> dimsRead(mlir::Value piece, int64_t size);
/// The range a Slice keeps along `axis` of its data (static size `size`):
/// [first, last) with `entry` the index of that axis in its starts/ends, when
/// the bounds are constants and the step is 1; std::nullopt otherwise.
struct SliceRange {
  int64_t first, last;
  unsigned entry;
};
std::optional<SliceRange> sliceRange(mlir::Operation *slice, int64_t axis, int64_t size);
/// The input axis a Reshape from `input` to `output` keeps intact as output axis
/// `axis` (same size and static element count before it), if any.
std::optional<int64_t> reshapedAxisSource(mlir::Value input, mlir::Value output, int64_t axis);
/// A human-readable label for an op: its ONNX node name, else its op name.
std::string describe(mlir::Operation *op);

} // namespace spa

#endif // SPA_DIALECT_ONNX_OPHELPER_H
