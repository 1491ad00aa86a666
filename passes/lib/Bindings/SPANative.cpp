//===- SPANative.cpp - the spa._native Python extension -------------------===//
//
// Bridges the MLIR Python bindings and SPA's C++: registers SPA's dialects and
// passes in a bindings-owned context, and exposes constant data (dense or
// dense_resource elements) as zero-copy buffers for the ONNX exporter, which
// the bindings cannot do for resource blobs.
//
// Objects cross from the bindings through their C API capsules only; this
// module links the bindings' own libMLIRPythonCAPI.so, never a second MLIR.
//
//===----------------------------------------------------------------------===//

#include "spa/InitAll.h"

#include "mlir-c/Bindings/Python/Interop.h"
#include "mlir/CAPI/IR.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/MLIRContext.h"

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

namespace nb = nanobind;

namespace {

mlir::MLIRContext *contextFrom(nb::handle pyContext) {
  nb::object capsule = nb::getattr(pyContext, MLIR_PYTHON_CAPI_PTR_ATTR);
  MlirContext context = mlirPythonCapsuleToContext(capsule.ptr());
  if (mlirContextIsNull(context))
    throw nb::type_error("expected an mlir.ir.Context");
  return unwrap(context);
}

mlir::Attribute attributeFrom(nb::handle pyAttribute) {
  nb::object capsule = nb::getattr(pyAttribute, MLIR_PYTHON_CAPI_PTR_ATTR);
  MlirAttribute attribute = mlirPythonCapsuleToAttribute(capsule.ptr());
  if (mlirAttributeIsNull(attribute))
    throw nb::type_error("expected an mlir.ir.Attribute");
  return unwrap(attribute);
}

void registerDialects(nb::handle pyContext) {
  mlir::MLIRContext *context = contextFrom(pyContext);
  mlir::DialectRegistry registry;
  spa::registerAllDialects(registry);
  context->appendDialectRegistry(registry);
  context->loadAllAvailableDialects();
}

using ByteView = nb::ndarray<nb::numpy, const uint8_t, nb::ndim<1>>;

/// Returns (bytes, is_splat, is_bit_packed) for a dense or dense_resource
/// elements attribute. The bytes are a read-only view owned by `pyAttribute`,
/// which keeps the context (and so the blob) alive. Dense i1 data is
/// bit-packed, as MLIR stores it; resource i1 data is one byte per element.
nb::tuple elementsBuffer(nb::handle pyAttribute) {
  mlir::Attribute attribute = attributeFrom(pyAttribute);
  llvm::ArrayRef<char> data;
  bool splat = false;
  bool bitPacked = false;
  if (auto resource = llvm::dyn_cast<mlir::DenseResourceElementsAttr>(attribute)) {
    mlir::AsmResourceBlob *blob = resource.getRawHandle().getBlob();
    if (!blob)
      throw nb::value_error("dense_resource attribute has no data (blob was not loaded)");
    data = blob->getData();
  } else if (auto dense = llvm::dyn_cast<mlir::DenseIntOrFPElementsAttr>(attribute)) {
    data = dense.getRawData();
    splat = dense.isSplat();
    bitPacked = dense.getElementType().isInteger(1);
  } else {
    throw nb::type_error("expected a dense or dense_resource elements attribute");
  }
  size_t shape[1] = {data.size()};
  ByteView view(reinterpret_cast<const uint8_t *>(data.data()), 1, shape, pyAttribute);
  return nb::make_tuple(view, splat, bitPacked);
}

} // namespace

NB_MODULE(_native, m) {
  m.doc() = "SPA's native dialects, passes and constant-data access";
  spa::registerAllPasses();
  m.def("register_dialects", &registerDialects, nb::arg("context"),
        "Register and load the onnx and spa dialects in an mlir.ir.Context.");
  m.def("elements_buffer", &elementsBuffer, nb::arg("attribute"),
        "Return (uint8 view of the raw data, is_splat, is_bit_packed) of a dense or\n"
        "dense_resource elements attribute.");
}
