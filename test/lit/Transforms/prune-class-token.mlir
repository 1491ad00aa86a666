// RUN: spa-opt %s --spa-prune=plan=%S/Inputs/views_plan.json | filecheck %s
// A class token expanded to a batch read from Shape (the target Concat(batch, [1, 1]))
// is a view of the token: removing channel 2 slices the token, and the Expand and
// Concat results take the new width with the batch left dynamic.

// CHECK-LABEL: func.func @main_graph
// CHECK-DAG: onnx.Initializer "token" = dense_resource<{{.*}}> : tensor<1x1x3xf32>
// CHECK-DAG: onnx.Initializer "w2" = dense<1.000000e+00> : tensor<3x2xf32>
// CHECK: "onnx.Expand"{{.*}} -> tensor<?x1x3xf32>
// CHECK: "onnx.Concat"{{.*}} -> tensor<?x4x3xf32>
func.func @main_graph(%x: tensor<?x3x2xf32>) -> tensor<?x4x2xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<2x4xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<4x2xf32>
  %token = onnx.Initializer "token" = dense<[[[0.1, 0.2, 0.3, 0.4]]]> : tensor<1x1x4xf32>
  %start = onnx.Initializer "start" = dense<0> : tensor<1xi64>
  %end = onnx.Initializer "end" = dense<1> : tensor<1xi64>
  %ones = onnx.Initializer "ones" = dense<1> : tensor<2xi64>
  %none = "onnx.NoValue"() : () -> none
  %y = "onnx.MatMul"(%x, %w) : (tensor<?x3x2xf32>, tensor<2x4xf32>) -> tensor<?x3x4xf32>
  %shape = "onnx.Shape"(%x) : (tensor<?x3x2xf32>) -> tensor<3xi64>
  %batch = "onnx.Slice"(%shape, %start, %end, %none, %none) : (tensor<3xi64>, tensor<1xi64>, tensor<1xi64>, none, none) -> tensor<1xi64>
  %target = "onnx.Concat"(%batch, %ones) {axis = 0 : i64} : (tensor<1xi64>, tensor<2xi64>) -> tensor<3xi64>
  %t = "onnx.Expand"(%token, %target) : (tensor<1x1x4xf32>, tensor<3xi64>) -> tensor<?x1x4xf32>
  %c = "onnx.Concat"(%t, %y) {axis = 1 : i64} : (tensor<?x1x4xf32>, tensor<?x3x4xf32>) -> tensor<?x4x4xf32>
  %z = "onnx.MatMul"(%c, %w2) : (tensor<?x4x4xf32>, tensor<4x2xf32>) -> tensor<?x4x2xf32>
  return %z : tensor<?x4x2xf32>
}
