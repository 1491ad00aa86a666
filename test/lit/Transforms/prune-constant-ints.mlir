// RUN: spa-opt %s --spa-prune=plan=%S/Inputs/views_plan.json | filecheck %s
// A Reshape target written as a Constant with value_ints (what onnxscript's folder
// writes for a static Shape) is a constant target: removing channel 2 rewrites it.

// CHECK-LABEL: func.func @main_graph
// CHECK-DAG: onnx.Initializer "w" = dense_resource<{{.*}}> : tensor<3x2x1x1xf32>
// CHECK-DAG: onnx.Initializer "w2" = dense<5.000000e-01> : tensor<12x3xf32>
// CHECK-DAG: %[[TARGET:.*]] = onnx.Initializer "{{.*}}_pruned{{[0-9]+}}" = dense_resource<[[BLOB:.*]]> : tensor<2xi64>
// CHECK: "onnx.Reshape"(%{{.*}}, %[[TARGET]]){{.*}} -> tensor<1x12xf32>
// The new target holds [1, 12] (int64, little-endian, after the blob's alignment word).
// CHECK: [[BLOB]]: "0x1000000001000000000000000C00000000000000"
func.func @main_graph(%x: tensor<1x2x2x2xf32>) -> tensor<1x3xf32> {
  %w = onnx.Initializer "w" = dense<[[[[0.1]], [[0.2]]], [[[0.3]], [[0.4]]], [[[0.5]], [[0.6]]], [[[0.7]], [[0.8]]]]> : tensor<4x2x1x1xf32>
  %w2 = onnx.Initializer "w2" = dense<0.5> : tensor<16x3xf32>
  %none = "onnx.NoValue"() : () -> none
  %target = "onnx.Constant"() <{value_ints = [1, 16]}> : () -> tensor<2xi64>
  %y = "onnx.Conv"(%x, %w, %none) : (tensor<1x2x2x2xf32>, tensor<4x2x1x1xf32>, none) -> tensor<1x4x2x2xf32>
  %f = "onnx.Reshape"(%y, %target) : (tensor<1x4x2x2xf32>, tensor<2xi64>) -> tensor<1x16xf32>
  %z = "onnx.MatMul"(%f, %w2) : (tensor<1x16xf32>, tensor<16x3xf32>) -> tensor<1x3xf32>
  return %z : tensor<1x3xf32>
}
