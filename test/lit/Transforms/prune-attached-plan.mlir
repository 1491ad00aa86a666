// RUN: spa-opt %s --spa-prune | filecheck %s
// RUN: spa-opt %s --spa-channel-coupling=attach=true | filecheck %s --check-prefix=GROUPS
// A plan attached to the module as the spa.plan string attribute (how the Python
// API hands plans over) is read, applied and removed; spa-channel-coupling can
// attach its groups the same way.

// CHECK: module {
// CHECK-NOT: spa.plan
// CHECK: onnx.Initializer "w1" = dense_resource<{{.*}}> : tensor<2x2xf32>
// CHECK: onnx.Initializer "w2" = dense_resource<{{.*}}> : tensor<2x2xf32>
// CHECK: "onnx.MatMul"{{.*}} -> tensor<1x2xf32>
// GROUPS: module attributes {spa.coupling_groups = "{\22groups\22:[{\22channels\22:3,
// GROUPS-SAME: \22tensor\22:\22w1\22
// GROUPS-SAME: \22tensor\22:\22w2\22
module attributes {spa.plan = "{\"groups\": [{\"id\": 0, \"removed\": [1]}]}"} {
  func.func @main_graph(%x: tensor<1x2xf32>) -> tensor<1x2xf32> {
    %w1 = onnx.Initializer "w1" = dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>
    %w2 = onnx.Initializer "w2" = dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>
    %h = "onnx.MatMul"(%x, %w1) : (tensor<1x2xf32>, tensor<2x3xf32>) -> tensor<1x3xf32>
    %r = "onnx.Relu"(%h) : (tensor<1x3xf32>) -> tensor<1x3xf32>
    %y = "onnx.MatMul"(%r, %w2) : (tensor<1x3xf32>, tensor<3x2xf32>) -> tensor<1x2xf32>
    return %y : tensor<1x2xf32>
  }
}
