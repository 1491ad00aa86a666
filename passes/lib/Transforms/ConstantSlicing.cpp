//===- ConstantSlicing.cpp - keep some positions of a constant ------------===//
//
// Slicing copies the kept rows of a constant's raw bytes into a new heap
// blob: outer x kept x inner blocks, one memcpy per kept position.
//
//===----------------------------------------------------------------------===//

#include "ConstantSlicing.h"

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/DialectResourceBlobManager.h"

#include <cstring>

using namespace mlir;

namespace {

/// The raw bytes of a constant, one element after the other (bools as bytes).
std::optional<std::vector<char>> rawBytes(ElementsAttr elements, bool &splat) {
  splat = false;
  if (auto resource = dyn_cast<DenseResourceElementsAttr>(elements)) {
    AsmResourceBlob *blob = resource.getRawHandle().getBlob();
    if (!blob)
      return std::nullopt;
    ArrayRef<char> data = blob->getData();
    return std::vector<char>(data.begin(), data.end());
  }
  auto dense = dyn_cast<DenseIntOrFPElementsAttr>(elements);
  if (!dense)
    return std::nullopt;
  splat = dense.isSplat();
  if (dense.getElementType().isInteger(1)) {
    std::vector<char> bytes;
    for (bool value : dense.getValues<bool>())
      bytes.push_back(value);
    return bytes;
  }
  ArrayRef<char> data = dense.getRawData();
  return std::vector<char>(data.begin(), data.end());
}

size_t elementBytes(Type type) {
  if (type.isInteger(1))
    return 1;
  if (type.isIntOrFloat() && type.getIntOrFloatBitWidth() % 8 == 0)
    return type.getIntOrFloatBitWidth() / 8;
  if (auto complex = dyn_cast<ComplexType>(type))
    return 2 * elementBytes(complex.getElementType());
  return 0;
}

ElementsAttr blobElements(ShapedType type, ArrayRef<char> bytes, StringRef blobName) {
  AsmResourceBlob blob = HeapAsmResourceBlob::allocateAndCopyWithAlign(bytes, alignof(std::max_align_t));
  return DenseResourceElementsAttr::get(type, blobName, std::move(blob));
}

} // namespace

ElementsAttr spa::sliceElements(ElementsAttr elements, const AxisSlice &slice, StringRef blobName) {
  auto type = cast<ShapedType>(elements.getType());
  SmallVector<int64_t> shape(type.getShape());
  shape[slice.axis] = slice.kept.size();
  auto newType = type.clone(shape);
  size_t width = elementBytes(type.getElementType());
  bool splat = false;
  std::optional<std::vector<char>> bytes = width ? rawBytes(elements, splat) : std::nullopt;
  if (!bytes)
    return {};
  if (splat)
    return DenseElementsAttr::get(newType, cast<DenseElementsAttr>(elements).getSplatValue<Attribute>());
  int64_t outer = 1, inner = width;
  for (int64_t i = 0; i < slice.axis; ++i)
    outer *= type.getDimSize(i);
  for (int64_t i = slice.axis + 1; i < type.getRank(); ++i)
    inner *= type.getDimSize(i);
  int64_t positions = type.getDimSize(slice.axis);
  std::vector<char> sliced(outer * slice.kept.size() * inner);
  char *out = sliced.data();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t position : slice.kept) {
      std::memcpy(out, bytes->data() + (o * positions + position) * inner, inner);
      out += inner;
    }
  return blobElements(newType, sliced, blobName);
}

ElementsAttr spa::makeInt64Elements(MLIRContext *context, ArrayRef<int64_t> values, StringRef blobName) {
  auto type = RankedTensorType::get({static_cast<int64_t>(values.size())}, IntegerType::get(context, 64));
  ArrayRef<char> bytes(reinterpret_cast<const char *>(values.data()), values.size() * sizeof(int64_t));
  return blobElements(type, bytes, blobName);
}
