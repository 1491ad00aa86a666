//===- InitAll.h - register every SPA dialect and pass ----------*- C++ -*-===//

#ifndef SPA_INITALL_H
#define SPA_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace spa {
/// Adds the onnx and spa dialects, plus the upstream dialects SPA's IR uses
/// (func), to `registry`.
void registerAllDialects(mlir::DialectRegistry &registry);
/// Registers every SPA pass with MLIR's global pass registry (idempotent).
void registerAllPasses();
} // namespace spa

#endif // SPA_INITALL_H
