// RUN: spa-opt %s --split-input-file --verify-diagnostics --spa-prune | filecheck %s
// Slices of the channel axis with constant bounds (torch's chunk): each branch
// carries its range of the channels, and pruning moves the bounds to count
// the kept channels before them. Removing channel 1 of 4: the first half
// [0, 2) becomes [0, 1), the second [2, end) becomes [1, 3), and the consumer
// loses row 3 (channel 1 sits after the second half in the Concat).

// CHECK-LABEL: func.func @main_graph
// CHECK: onnx.Initializer "w" = dense<1.000000e+00> : tensor<2x3xf32>
// CHECK: onnx.Initializer "w2" = dense_resource<[[W2:[^>]*]]> : tensor<3x2xf32>
// CHECK: "onnx.MatMul"{{.*}} -> tensor<1x3xf32>
// CHECK: %[[S0:.*]] = onnx.Initializer "zero_pruned{{[0-9]+}}" = dense_resource<[[S0_BLOB:[^>]*]]>
// CHECK: %[[E0:.*]] = onnx.Initializer "two_pruned{{[0-9]+}}" = dense_resource<[[E0_BLOB:[^>]*]]>
// CHECK: "onnx.Slice"(%{{.*}}, %[[S0]], %[[E0]], %{{.*}}, %{{.*}}) : {{.*}} -> tensor<1x1xf32>
// CHECK: %[[S1:.*]] = onnx.Initializer "two_pruned{{[0-9]+}}" = dense_resource<[[S1_BLOB:[^>]*]]>
// CHECK: %[[E1:.*]] = onnx.Initializer "end_pruned{{[0-9]+}}" = dense_resource<[[E1_BLOB:[^>]*]]>
// CHECK: "onnx.Slice"(%{{.*}}, %[[S1]], %[[E1]], %{{.*}}, %{{.*}}) : {{.*}} -> tensor<1x2xf32>
// CHECK: "onnx.Concat"{{.*}} -> tensor<1x3xf32>
// Kept rows 0, 1, 2 of w2; bounds [0, 1) and [1, 3).
// CHECK-DAG: [[W2]]: "0x100000000000803F0000004000004040000080400000000000000000"
// CHECK-DAG: [[S0_BLOB]]: "0x100000000000000000000000"
// CHECK-DAG: [[E0_BLOB]]: "0x100000000100000000000000"
// CHECK-DAG: [[S1_BLOB]]: "0x100000000100000000000000"
// CHECK-DAG: [[E1_BLOB]]: "0x100000000300000000000000"
module attributes {spa.plan = "{\"groups\": [{\"id\": 0, \"removed\": [1]}]}"} {
  func.func @main_graph(%x: tensor<1x2xf32>) -> tensor<1x2xf32> {
    %w = onnx.Initializer "w" = dense<1.0> : tensor<2x4xf32>
    %zero = onnx.Initializer "zero" = dense<[0]> : tensor<1xi64>
    %two = onnx.Initializer "two" = dense<[2]> : tensor<1xi64>
    %end = onnx.Initializer "end" = dense<[9223372036854775807]> : tensor<1xi64>
    %axis = onnx.Initializer "axis" = dense<[1]> : tensor<1xi64>
    %w2 = onnx.Initializer "w2" = dense<[[1.0, 2.0], [3.0, 4.0], [0.0, 0.0], [9.0, 9.0]]> : tensor<4x2xf32>
    %none = onnx.NoValue
    %y = "onnx.MatMul"(%x, %w) : (tensor<1x2xf32>, tensor<2x4xf32>) -> tensor<1x4xf32>
    %a = "onnx.Slice"(%y, %zero, %two, %axis, %none) : (tensor<1x4xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, none) -> tensor<1x2xf32>
    %b = "onnx.Slice"(%y, %two, %end, %axis, %none) : (tensor<1x4xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, none) -> tensor<1x2xf32>
    %r = "onnx.Relu"(%a) : (tensor<1x2xf32>) -> tensor<1x2xf32>
    %c = "onnx.Concat"(%b, %r) {axis = 1 : i64} : (tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x4xf32>
    %z = "onnx.MatMul"(%c, %w2) : (tensor<1x4xf32>, tensor<4x2xf32>) -> tensor<1x2xf32>
    return %z : tensor<1x2xf32>
  }
}

// -----

// A plan that removes every channel one Slice reads (here: all that %a holds) is rejected
// with the plan, before anything changes.
// expected-error @+1 {{group 0 would leave a value or weight with none of its channels (it carries only channels 0, 1)}}
module attributes {spa.plan = "{\"groups\": [{\"id\": 0, \"removed\": [0, 1]}]}"} {
  func.func @main_graph(%x: tensor<1x2xf32>) -> tensor<1x2xf32> {
    %w = onnx.Initializer "w" = dense<1.0> : tensor<2x4xf32>
    %zero = onnx.Initializer "zero" = dense<[0]> : tensor<1xi64>
    %two = onnx.Initializer "two" = dense<[2]> : tensor<1xi64>
    %end = onnx.Initializer "end" = dense<[4]> : tensor<1xi64>
    %axis = onnx.Initializer "axis" = dense<[1]> : tensor<1xi64>
    %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<4x2xf32>
    %none = onnx.NoValue
    %y = "onnx.MatMul"(%x, %w) : (tensor<1x2xf32>, tensor<2x4xf32>) -> tensor<1x4xf32>
    %a = "onnx.Slice"(%y, %zero, %two, %axis, %none) : (tensor<1x4xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, none) -> tensor<1x2xf32>
    %b = "onnx.Slice"(%y, %two, %end, %axis, %none) : (tensor<1x4xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, none) -> tensor<1x2xf32>
    %c = "onnx.Concat"(%b, %a) {axis = 1 : i64} : (tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x4xf32>
    %z = "onnx.MatMul"(%c, %w2) : (tensor<1x4xf32>, tensor<4x2xf32>) -> tensor<1x2xf32>
    return %z : tensor<1x2xf32>
  }
}
