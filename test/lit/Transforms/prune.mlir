// RUN: spa-opt %s --spa-prune=plan=%S/Inputs/conv_chain_plan.json | filecheck %s
// Removing channels 1 and 2 of a conv -> depthwise conv -> flatten -> gemm chain:
// producer rows, depthwise weights and group, value types, the Reshape target
// and the Gemm columns (a block of 2 per channel) all follow.

// CHECK-LABEL: func.func @main_graph
// CHECK-DAG: onnx.Initializer "w1" = dense<1.000000e+00> : tensor<2x3x1x1xf32>
// CHECK-DAG: onnx.Initializer "b1" = dense_resource<[[B1:.*]]> : tensor<2xf32>
// CHECK-DAG: onnx.Initializer "dw" = dense<1.000000e+00> : tensor<2x1x3x3xf32>
// CHECK-DAG: onnx.Initializer "fc" = dense_resource<[[FC:.*]]> : tensor<3x4xf32>
// CHECK: "onnx.Conv"{{.*}} -> tensor<1x2x1x2xf32>
// CHECK: "onnx.Conv"{{.*}}group = 2 : i64{{.*}} -> tensor<1x2x1x2xf32>
// CHECK: onnx.Initializer "target_pruned0" = dense_resource<{{.*}}> : tensor<2xi64>
// CHECK: "onnx.Reshape"{{.*}} -> tensor<1x4xf32>
// CHECK: "onnx.Gemm"{{.*}}(tensor<1x4xf32>, tensor<3x4xf32>, none) -> tensor<1x3xf32>
// Kept bias entries 0 and 3 (1.0 and 4.0), Gemm columns 0, 1, 6, 7 of each row;
// the Reshape target becomes [1, 4].
// CHECK: [[B1]]: "0x100000000000803F00008040"
// CHECK: [[FC]]: "0x10000000000000000000803F0000C0400000E040
// CHECK: target_pruned0: "0x1000000001000000000000000400000000000000"
func.func @main_graph(%x: tensor<1x3x1x2xf32>) -> tensor<1x3xf32> {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %b1 = onnx.Initializer "b1" = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %dw = onnx.Initializer "dw" = dense<1.0> : tensor<4x1x3x3xf32>
  %target = onnx.Initializer "target" = dense<[1, 8]> : tensor<2xi64>
  %fc = onnx.Initializer "fc" = dense<[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                                       [8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0],
                                       [16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0]]> : tensor<3x8xf32>
  %none = onnx.NoValue
  %a = "onnx.Conv"(%x, %w1, %b1) : (tensor<1x3x1x2xf32>, tensor<4x3x1x1xf32>, tensor<4xf32>) -> tensor<1x4x1x2xf32>
  %d = "onnx.Conv"(%a, %dw, %none) {group = 4 : i64, pads = [1, 1, 1, 1]} : (tensor<1x4x1x2xf32>, tensor<4x1x3x3xf32>, none) -> tensor<1x4x1x2xf32>
  %f = "onnx.Reshape"(%d, %target) : (tensor<1x4x1x2xf32>, tensor<2xi64>) -> tensor<1x8xf32>
  %y = "onnx.Gemm"(%f, %fc, %none) {transB = 1 : i64} : (tensor<1x8xf32>, tensor<3x8xf32>, none) -> tensor<1x3xf32>
  return %y : tensor<1x3xf32>
}
