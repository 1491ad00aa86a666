// RUN: spa-opt %s --split-input-file | spa-opt --split-input-file | filecheck %s
// Parse/print round trips of the onnx dialect: generated ops, structural ops and types.

// A conv with an absent bias: optional inputs are `none` values.
// CHECK-LABEL: func.func @conv_without_bias
// CHECK: %[[W:.*]] = onnx.Initializer "w" = dense<1.000000e+00> : tensor<4x3x3x3xf32>
// CHECK: %[[NONE:.*]] = onnx.NoValue
// CHECK: "onnx.Conv"(%arg0, %[[W]], %[[NONE]]) <{{{.*}}group = 1 : i64, pads = [1, 1, 1, 1]}>
func.func @conv_without_bias(%x: tensor<1x3x8x8xf32>) -> tensor<1x4x8x8xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<4x3x3x3xf32>
  %none = onnx.NoValue
  %y = "onnx.Conv"(%x, %w, %none) {pads = [1, 1, 1, 1]} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>, none) -> tensor<1x4x8x8xf32>
  return %y : tensor<1x4x8x8xf32>
}

// -----

// Weights live in dense_resource blobs that survive the text form.
// CHECK-LABEL: func.func @resource_weight
// CHECK: onnx.Initializer "fc.weight" = dense_resource<fc.weight> : tensor<2x2xf32> {onnx.graph_input}
// CHECK: dialect_resources
// CHECK: fc.weight: "0x04000000
func.func @resource_weight() -> tensor<2x2xf32> {
  %w = onnx.Initializer "fc.weight" = dense_resource<fc.weight> : tensor<2x2xf32> {onnx.graph_input}
  return %w : tensor<2x2xf32>
}
{-#
  dialect_resources: {
    builtin: {
      fc.weight: "0x040000000000803F000000400000404000008040"
    }
  }
#-}

// -----

// Variadic inputs (Concat) and several results (Split), with ONNX names kept.
// CHECK-LABEL: func.func @variadic
// CHECK: "onnx.Concat"(%arg0, %arg1) <{axis = 1 : i64}> {onnx.node_name = "cat", onnx.output_names = ["c"]}
// CHECK: "onnx.Split"
// CHECK-SAME: -> (tensor<1x3xf32>, tensor<1x2xf32>)
func.func @variadic(%a: tensor<1x2xf32>, %b: tensor<1x3xf32>) -> (tensor<1x3xf32>, tensor<1x2xf32>) {
  %c = "onnx.Concat"(%a, %b) {axis = 1 : i64, onnx.node_name = "cat", onnx.output_names = ["c"]} : (tensor<1x2xf32>, tensor<1x3xf32>) -> tensor<1x5xf32>
  %sizes = onnx.Initializer "sizes" = dense<[3, 2]> : tensor<2xi64>
  %p, %q = "onnx.Split"(%c, %sizes) {axis = 1 : i64} : (tensor<1x5xf32>, tensor<2xi64>) -> (tensor<1x3xf32>, tensor<1x2xf32>)
  return %p, %q : tensor<1x3xf32>, tensor<1x2xf32>
}

// -----

// Graph attributes are regions ending in onnx.Yield; sub-graphs see outer values.
// CHECK-LABEL: func.func @if_regions
// CHECK: "onnx.If"(%arg0) ({
// CHECK: onnx.Yield {onnx.output_names = ["e"]} %{{.*}} : tensor<2xf32>
// CHECK: }, {
// CHECK: onnx.Yield %arg1 : tensor<2xf32>
func.func @if_regions(%cond: tensor<i1>, %x: tensor<2xf32>) -> tensor<2xf32> {
  %y = "onnx.If"(%cond) ({
    %e = "onnx.Neg"(%x) : (tensor<2xf32>) -> tensor<2xf32>
    onnx.Yield {onnx.output_names = ["e"]} %e : tensor<2xf32>
  }, {
    onnx.Yield %x : tensor<2xf32>
  }) : (tensor<i1>) -> tensor<2xf32>
  return %y : tensor<2xf32>
}

// -----

// Nodes of other domains are onnx.Custom; ONNX's own types (seq, opt, string) parse.
// CHECK-LABEL: func.func @custom_and_types
// CHECK: "onnx.Custom"(%arg0) <{domain = "com.microsoft", node_attributes = {alpha = 1.000000e+00 : f32}, op_type = "FusedGelu"}>
// CHECK: "onnx.SequenceConstruct"(%arg0, %arg0) : (tensor<2xf32>, tensor<2xf32>) -> !onnx.seq<tensor<2xf32>>
// CHECK: "onnx.Optional"(%arg1) : (tensor<3x!onnx.string>) -> !onnx.opt<tensor<3x!onnx.string>>
func.func @custom_and_types(%x: tensor<2xf32>, %s: tensor<3x!onnx.string>) -> (tensor<2xf32>, !onnx.seq<tensor<2xf32>>, !onnx.opt<tensor<3x!onnx.string>>) {
  %y = "onnx.Custom"(%x) {domain = "com.microsoft", op_type = "FusedGelu", node_attributes = {alpha = 1.0 : f32}} : (tensor<2xf32>) -> tensor<2xf32>
  %seq = "onnx.SequenceConstruct"(%x, %x) : (tensor<2xf32>, tensor<2xf32>) -> !onnx.seq<tensor<2xf32>>
  %opt = "onnx.Optional"(%s) : (tensor<3x!onnx.string>) -> !onnx.opt<tensor<3x!onnx.string>>
  return %y, %seq, %opt : tensor<2xf32>, !onnx.seq<tensor<2xf32>>, !onnx.opt<tensor<3x!onnx.string>>
}
