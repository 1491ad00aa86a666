//===- ConstantSlicing.h - keep some positions of a constant ----*- C++ -*-===//

#ifndef SPA_LIB_TRANSFORMS_CONSTANTSLICING_H
#define SPA_LIB_TRANSFORMS_CONSTANTSLICING_H

#include "mlir/IR/BuiltinAttributes.h"

namespace spa {

/// Positions to keep along one axis.
struct AxisSlice {
  int64_t axis;
  llvm::SmallVector<int64_t> kept;
};

/// A copy of `elements` keeping only `slice.kept` along `slice.axis`, as a
/// dense_resource blob named after `blobName` (dense splats stay splats).
/// Returns null for element types it cannot slice (sub-byte, strings).
mlir::ElementsAttr sliceElements(mlir::ElementsAttr elements, const AxisSlice &slice, llvm::StringRef blobName);

/// A dense_resource i64 tensor holding `values`.
mlir::ElementsAttr makeInt64Elements(mlir::MLIRContext *context, llvm::ArrayRef<int64_t> values,
                                     llvm::StringRef blobName);

} // namespace spa

#endif // SPA_LIB_TRANSFORMS_CONSTANTSLICING_H
