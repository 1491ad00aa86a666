//===- Passes.h - every SPA pass --------------------------------*- C++ -*-===//

#ifndef SPA_TRANSFORMS_PASSES_H
#define SPA_TRANSFORMS_PASSES_H

#include "spa/Dialect/ONNX/ONNXDialect.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace spa {

#define GEN_PASS_DECL
#include "spa/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "spa/Transforms/Passes.h.inc"

} // namespace spa

#endif // SPA_TRANSFORMS_PASSES_H
