//===- ONNXBase.td - the onnx dialect, its types and op base ---*- tablegen -*-===//
//
// The `onnx` dialect mirrors ONNX's default domain one op per operator.
// Generated ops (ONNXOps.gen.td) include this file; hand-written ops that ONNX
// itself has no operator for live in ONNXExtraOps.td.
//
//===----------------------------------------------------------------------===//

#ifndef SPA_DIALECT_ONNX_ONNXBASE_TD
#define SPA_DIALECT_ONNX_ONNXBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

def ONNX_Dialect : Dialect {
  let name = "onnx";
  let cppNamespace = "::spa::onnx";
  let summary = "ONNX operators (default domain) and ONNX graph structure";
  let description = [{
    One op per ONNX operator of the default domain, generated from onnx's
    operator schemas. Absent optional inputs are `none` values produced by
    `onnx.NoValue`; graph attributes are single-block regions ending in
    `onnx.Yield`; initializers are `onnx.Initializer` ops whose value is
    usually a `dense_resource` blob; ops of any other domain are
    `onnx.Custom`. The node name and output tensor names of an ONNX node are
    kept in the discardable attributes `onnx.node_name` and `onnx.output_names`.
  }];
  let useDefaultTypePrinterParser = 1;
}

class ONNX_Type<string name, string typeMnemonic> : TypeDef<ONNX_Dialect, name> {
  let mnemonic = typeMnemonic;
}

def ONNX_StringType : ONNX_Type<"String", "string"> {
  let summary = "ONNX string tensor element";
}

def ONNX_SeqType : ONNX_Type<"Seq", "seq"> {
  let summary = "ONNX sequence of values";
  let parameters = (ins "::mlir::Type":$elementType);
  let assemblyFormat = "`<` $elementType `>`";
}

def ONNX_OptType : ONNX_Type<"Opt", "opt"> {
  let summary = "ONNX optional value";
  let parameters = (ins "::mlir::Type":$elementType);
  let assemblyFormat = "`<` $elementType `>`";
}

def ONNX_MapType : ONNX_Type<"Map", "map"> {
  let summary = "ONNX map from keys to values";
  let parameters = (ins "::mlir::Type":$keyType, "::mlir::Type":$valueType);
  let assemblyFormat = "`<` $keyType `,` $valueType `>`";
}

class ONNX_Op<string mnemonic, list<Trait> traits = []>
    : Op<ONNX_Dialect, mnemonic, traits>;

#endif // SPA_DIALECT_ONNX_ONNXBASE_TD
