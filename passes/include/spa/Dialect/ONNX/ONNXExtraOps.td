//===- ONNXExtraOps.td - onnx graph structure ops --------------*- tablegen -*-===//
//
// Ops for the parts of an ONNX graph that are not operators of the default
// domain: initializers, absent optional values, sub-graph terminators and
// nodes of other domains.
//
//===----------------------------------------------------------------------===//

#ifndef SPA_DIALECT_ONNX_ONNXEXTRAOPS_TD
#define SPA_DIALECT_ONNX_ONNXEXTRAOPS_TD

include "spa/Dialect/ONNX/ONNXBase.td"

def ONNX_NoValueOp : ONNX_Op<"NoValue", [Pure]> {
  let summary = "An absent optional input";
  let results = (outs NoneType:$none);
  let assemblyFormat = "attr-dict";
}

def ONNX_InitializerOp : ONNX_Op<"Initializer", [Pure, InferTypeOpAdaptor]> {
  let summary = "A named graph initializer (weight or constant tensor)";
  let description = [{
    `tensor_name` is the initializer's ONNX name. `value` is usually a
    `dense_resource` blob so that weights never pass through text. With
    `onnx.graph_input`, the initializer is also a graph input that callers may
    override (models of IR version < 4 list every initializer as an input).

    ```mlir
    %w = onnx.Initializer "conv1.weight" = dense_resource<conv1.weight> : tensor<64x3x7x7xf32>
    ```
  }];
  let arguments = (ins StrAttr:$tensor_name, ElementsAttr:$value);
  let results = (outs AnyTensor:$output);
  let assemblyFormat = "$tensor_name `=` $value attr-dict";
}

def ONNX_YieldOp : ONNX_Op<"Yield", [Pure, ReturnLike, Terminator]> {
  let summary = "Returns the outputs of a sub-graph (If, Loop, Scan bodies)";
  let arguments = (ins Variadic<AnyType>:$values);
  let assemblyFormat = "attr-dict ($values^ `:` type($values))?";
}

def ONNX_CustomOp : ONNX_Op<"Custom", [RecursiveMemoryEffects]> {
  let summary = "A node of a domain other than ONNX's default domain";
  let description = [{
    Carries the node's `domain`, `op_type` and attributes unchanged so that it
    round-trips. Graph attributes become regions, named in order by
    `graph_attribute_names`. Analyses must treat it as opaque.
  }];
  let arguments = (ins Variadic<AnyType>:$inputs, StrAttr:$domain, StrAttr:$op_type,
                   OptionalAttr<DictionaryAttr>:$node_attributes,
                   OptionalAttr<StrArrayAttr>:$graph_attribute_names);
  let results = (outs Variadic<AnyType>:$outputs);
  let regions = (region VariadicRegion<SizedRegion<1>>:$graphs);
  let hasVerifier = 1;
}

#endif // SPA_DIALECT_ONNX_ONNXEXTRAOPS_TD
