// RUN: spa-opt %s --spa-prune=plan=%S/Inputs/transposed_plan.json | filecheck %s
// Removing hidden feature 1 of two Linear layers whose weights reach MatMul
// through Transpose: the initializers are sliced on their own axes and the
// Transpose results take the new shapes.

// CHECK-LABEL: func.func @main_graph
// CHECK-DAG: onnx.Initializer "fc1" = dense<1.000000e+00> : tensor<3x3xf32>
// CHECK-DAG: onnx.Initializer "fc2" = dense<1.000000e+00> : tensor<2x3xf32>
// CHECK: "onnx.Transpose"{{.*}} -> tensor<3x3xf32>
// CHECK: "onnx.Transpose"{{.*}} -> tensor<3x2xf32>
// CHECK: "onnx.MatMul"{{.*}} -> tensor<2x3xf32>
// CHECK: "onnx.MatMul"{{.*}}(tensor<2x3xf32>, tensor<3x2xf32>) -> tensor<2x2xf32>
func.func @main_graph(%x: tensor<2x3xf32>) -> tensor<2x2xf32> {
  %fc1 = onnx.Initializer "fc1" = dense<1.0> : tensor<4x3xf32>
  %fc2 = onnx.Initializer "fc2" = dense<1.0> : tensor<2x4xf32>
  %t1 = "onnx.Transpose"(%fc1) {perm = [1, 0]} : (tensor<4x3xf32>) -> tensor<3x4xf32>
  %t2 = "onnx.Transpose"(%fc2) : (tensor<2x4xf32>) -> tensor<4x2xf32>
  %h = "onnx.MatMul"(%x, %t1) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  %r = "onnx.Relu"(%h) : (tensor<2x4xf32>) -> tensor<2x4xf32>
  %y = "onnx.MatMul"(%r, %t2) : (tensor<2x4xf32>, tensor<4x2xf32>) -> tensor<2x2xf32>
  return %y : tensor<2x2xf32>
}
