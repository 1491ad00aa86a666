//===- SPADialect.td - the spa dialect -------------------------*- tablegen -*-===//
//
// Holds what SPA adds on top of an ONNX graph: channel groups found by the
// coupling analysis and pruning plans. It has no ops or attributes yet.
//
//===----------------------------------------------------------------------===//

#ifndef SPA_DIALECT_SPA_SPADIALECT_TD
#define SPA_DIALECT_SPA_SPADIALECT_TD

include "mlir/IR/OpBase.td"

def SPA_Dialect : Dialect {
  let name = "spa";
  let cppNamespace = "::spa";
  let summary = "Structured-pruning annotations: channel groups and plans";
}

#endif // SPA_DIALECT_SPA_SPADIALECT_TD
