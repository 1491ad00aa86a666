// RUN: spa-opt %s --spa-prune=plan=%S/Inputs/views_plan.json | filecheck %s
// torch's GroupNorm(1, C) (flatten to [N, 1, -1], InstanceNormalization, reshape
// back to the input's Shape): removing channel 2 leaves the flatten target and the
// Shape-read target as they are; the flattened axis and the result shrink.

// CHECK-LABEL: func.func @main_graph
// CHECK-DAG: onnx.Initializer "w" = dense_resource<{{.*}}> : tensor<3x2x1x1xf32>
// CHECK-DAG: onnx.Initializer "w2" = dense_resource<{{.*}}> : tensor<2x3x1x1xf32>
// CHECK-DAG: onnx.Initializer "flat" = dense<[0, 1, -1]> : tensor<3xi64>
// CHECK: "onnx.Reshape"{{.*}} -> tensor<?x1x12xf32>
// CHECK: "onnx.InstanceNormalization"{{.*}} -> tensor<?x1x12xf32>
// CHECK: "onnx.Reshape"{{.*}} -> tensor<?x3x2x2xf32>
func.func @main_graph(%x: tensor<?x2x2x2xf32>) -> tensor<?x2x2x2xf32> {
  %w = onnx.Initializer "w" = dense<[[[[0.1]], [[0.2]]], [[[0.3]], [[0.4]]], [[[0.5]], [[0.6]]], [[[0.7]], [[0.8]]]]> : tensor<4x2x1x1xf32>
  %w2 = onnx.Initializer "w2" = dense<[[[[0.1]], [[0.2]], [[0.3]], [[0.4]]], [[[0.5]], [[0.6]], [[0.7]], [[0.8]]]]> : tensor<2x4x1x1xf32>
  %flat = onnx.Initializer "flat" = dense<[0, 1, -1]> : tensor<3xi64>
  %scale = onnx.Initializer "scale" = dense<1.0> : tensor<1xf32>
  %bias = onnx.Initializer "bias" = dense<0.0> : tensor<1xf32>
  %none = "onnx.NoValue"() : () -> none
  %y = "onnx.Conv"(%x, %w, %none) : (tensor<?x2x2x2xf32>, tensor<4x2x1x1xf32>, none) -> tensor<?x4x2x2xf32>
  %f = "onnx.Reshape"(%y, %flat) : (tensor<?x4x2x2xf32>, tensor<3xi64>) -> tensor<?x1x16xf32>
  %n = "onnx.InstanceNormalization"(%f, %scale, %bias) : (tensor<?x1x16xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<?x1x16xf32>
  %shape = "onnx.Shape"(%y) : (tensor<?x4x2x2xf32>) -> tensor<4xi64>
  %back = "onnx.Reshape"(%n, %shape) : (tensor<?x1x16xf32>, tensor<4xi64>) -> tensor<?x4x2x2xf32>
  %z = "onnx.Conv"(%back, %w2, %none) : (tensor<?x4x2x2xf32>, tensor<2x4x1x1xf32>, none) -> tensor<?x2x2x2xf32>
  return %z : tensor<?x2x2x2xf32>
}
