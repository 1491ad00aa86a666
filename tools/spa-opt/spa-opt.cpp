//===- spa-opt.cpp - mlir-opt with SPA's dialects and passes --------------===//
//
// Behaves like mlir-opt (same flags: --pass-pipeline, --split-input-file,
// --verify-diagnostics, ...) with the onnx and spa dialects, the upstream
// passes and every SPA pass registered.
//
//===----------------------------------------------------------------------===//

#include "spa/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::registerTransformsPasses();
  spa::registerAllPasses();
  mlir::DialectRegistry registry;
  spa::registerAllDialects(registry);
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "SPA optimizer driver\n", registry));
}
