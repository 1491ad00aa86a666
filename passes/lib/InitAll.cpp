//===- InitAll.cpp - register every SPA dialect and pass ------------------===//

#include "spa/InitAll.h"

#include "spa/Dialect/ONNX/ONNXDialect.h"
#include "spa/Dialect/SPA/SPADialect.h"
#include "spa/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"

void spa::registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<spa::onnx::ONNXDialect, spa::SPADialect, mlir::func::FuncDialect>();
}

void spa::registerAllPasses() {
  static bool registered = [] {
    spa::registerSPAPasses();
    return true;
  }();
  (void)registered;
}
