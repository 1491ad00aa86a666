// RUN: spa-opt %s --spa-prune=plan=%S/Inputs/views_plan.json | filecheck %s
// Per-channel parameters that reach the graph through views (a bias Reshape'd
// to (1, C, 1, 1), gamma * sqrt(var + eps), an Unsqueeze'd scale) are
// sliced at their source; the views take the new shapes and the Reshape
// target is rewritten.

// CHECK-LABEL: func.func @main_graph
// CHECK-DAG: onnx.Initializer "bias" = dense_resource<{{.*}}> : tensor<3xf32>
// CHECK-DAG: onnx.Initializer "var" = dense<4.000000e+00> : tensor<3xf32>
// CHECK-DAG: onnx.Initializer "gamma" = dense_resource<{{.*}}> : tensor<3xf32>
// CHECK-DAG: onnx.Initializer "target_pruned0" = dense_resource<{{.*}}> : tensor<4xi64>
// CHECK: "onnx.Reshape"{{.*}} -> tensor<1x3x1x1xf32>
// CHECK: "onnx.Add"{{.*}}(tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
// CHECK: "onnx.Sqrt"{{.*}} -> tensor<3xf32>
// CHECK: "onnx.Mul"{{.*}}(tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
// CHECK: "onnx.Unsqueeze"{{.*}} -> tensor<3x1x1xf32>
// CHECK: target_pruned0: "0x100000000100000000000000030000000000000001000000000000000100000000000000"
func.func @main_graph(%x: tensor<1x3x2x2xf32>) -> tensor<1x2x2x2xf32> {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %bias = onnx.Initializer "bias" = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %target = onnx.Initializer "target" = dense<[1, 4, 1, 1]> : tensor<4xi64>
  %var = onnx.Initializer "var" = dense<4.0> : tensor<4xf32>
  %gamma = onnx.Initializer "gamma" = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %eps = onnx.Initializer "eps" = dense<1.0e-3> : tensor<f32>
  %axes = onnx.Initializer "axes" = dense<[1, 2]> : tensor<2xi64>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<2x4x1x1xf32>
  %none = onnx.NoValue
  %y = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x2x2xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x2x2xf32>
  %b = "onnx.Reshape"(%bias, %target) : (tensor<4xf32>, tensor<4xi64>) -> tensor<1x4x1x1xf32>
  %yb = "onnx.Add"(%y, %b) : (tensor<1x4x2x2xf32>, tensor<1x4x1x1xf32>) -> tensor<1x4x2x2xf32>
  %v = "onnx.Add"(%var, %eps) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %r = "onnx.Sqrt"(%v) : (tensor<4xf32>) -> tensor<4xf32>
  %s = "onnx.Mul"(%gamma, %r) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %s3 = "onnx.Unsqueeze"(%s, %axes) : (tensor<4xf32>, tensor<2xi64>) -> tensor<4x1x1xf32>
  %n = "onnx.Div"(%yb, %s3) : (tensor<1x4x2x2xf32>, tensor<4x1x1xf32>) -> tensor<1x4x2x2xf32>
  %z = "onnx.Conv"(%n, %w2, %none) : (tensor<1x4x2x2xf32>, tensor<2x4x1x1xf32>, none) -> tensor<1x2x2x2xf32>
  return %z : tensor<1x2x2x2xf32>
}
