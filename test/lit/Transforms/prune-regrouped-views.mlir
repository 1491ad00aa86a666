// RUN: spa-opt %s --split-input-file --spa-prune | filecheck %s
// Keras-style export: the depthwise kernel is stored (3, 3, C, 1) and reshaped to
// (3, 3, 1, C) before a Transpose (a regrouped view of its channel axis), and the
// flatten target is [batch read from Shape, -1] on a dynamic batch, whose -1 is
// 4 x 2 x 2 = 16. Removing channel 1 slices the stored kernel on its axis 2,
// rewrites the view's target to [3, 3, 1, 3], and leaves the -1 alone.

// CHECK-LABEL: func.func @main_graph
// CHECK-DAG: onnx.Initializer "w" = dense<1.000000e+00> : tensor<3x2x1x1xf32>
// CHECK-DAG: onnx.Initializer "dw" = dense<1.000000e+00> : tensor<3x3x3x1xf32>
// CHECK-DAG: onnx.Initializer "fc" = dense<1.000000e+00> : tensor<12x2xf32>
// CHECK: onnx.Initializer "dw_shape_pruned{{[0-9]+}}" = dense_resource<[[DW_SHAPE:[^>]*]]>
// CHECK: "onnx.Reshape"{{.*}} -> tensor<3x3x1x3xf32>
// CHECK: "onnx.Transpose"{{.*}} -> tensor<3x1x3x3xf32>
// CHECK: "onnx.Conv"{{.*}}group = 3 : i64{{.*}} -> tensor<?x3x2x2xf32>
// CHECK: "onnx.Reshape"(%{{.*}}, %{{.*}}) <{allowzero = 0 : i64}> : (tensor<?x3x2x2xf32>, tensor<2xi64>) -> tensor<?x12xf32>
// CHECK: "onnx.MatMul"{{.*}} -> tensor<?x2xf32>
// CHECK: [[DW_SHAPE]]: "0x100000000300000000000000030000000000000001000000000000000300000000000000"
module attributes {spa.plan = "{\"groups\": [{\"id\": 0, \"removed\": [1]}]}"} {
  func.func @main_graph(%x: tensor<?x2x2x2xf32>) -> tensor<?x2xf32> {
    %w = onnx.Initializer "w" = dense<1.0> : tensor<4x2x1x1xf32>
    %dw = onnx.Initializer "dw" = dense<1.0> : tensor<3x3x4x1xf32>
    %dw_shape = onnx.Initializer "dw_shape" = dense<[3, 3, 1, 4]> : tensor<4xi64>
    %zero = onnx.Initializer "zero" = dense<0> : tensor<i64>
    %axes = onnx.Initializer "axes" = dense<[0]> : tensor<1xi64>
    %rest = onnx.Initializer "rest" = dense<[-1]> : tensor<1xi64>
    %fc = onnx.Initializer "fc" = dense<1.0> : tensor<16x2xf32>
    %none = onnx.NoValue
    %a = "onnx.Conv"(%x, %w, %none) : (tensor<?x2x2x2xf32>, tensor<4x2x1x1xf32>, none) -> tensor<?x4x2x2xf32>
    %k = "onnx.Reshape"(%dw, %dw_shape) : (tensor<3x3x4x1xf32>, tensor<4xi64>) -> tensor<3x3x1x4xf32>
    %kt = "onnx.Transpose"(%k) {perm = [3, 2, 0, 1]} : (tensor<3x3x1x4xf32>) -> tensor<4x1x3x3xf32>
    %d = "onnx.Conv"(%a, %kt, %none) {group = 4 : i64, pads = [1, 1, 1, 1]} : (tensor<?x4x2x2xf32>, tensor<4x1x3x3xf32>, none) -> tensor<?x4x2x2xf32>
    %shape = "onnx.Shape"(%d) : (tensor<?x4x2x2xf32>) -> tensor<4xi64>
    %batch = "onnx.Gather"(%shape, %zero) {axis = 0 : i64} : (tensor<4xi64>, tensor<i64>) -> tensor<i64>
    %batch1 = "onnx.Unsqueeze"(%batch, %axes) : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64>
    %target = "onnx.Concat"(%batch1, %rest) {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>) -> tensor<2xi64>
    %f = "onnx.Reshape"(%d, %target) : (tensor<?x4x2x2xf32>, tensor<2xi64>) -> tensor<?x?xf32>
    %y = "onnx.MatMul"(%f, %fc) : (tensor<?x?xf32>, tensor<16x2xf32>) -> tensor<?x2xf32>
    return %y : tensor<?x2xf32>
  }
}

// -----

// Down to one channel the kernel (3, 3, 1, 1) has a unit axis next to its channel
// axis; the view still takes the one reading: target [3, 3, 1, 1].
// CHECK-LABEL: func.func @main_graph
// CHECK: "onnx.Reshape"{{.*}} -> tensor<3x3x1x1xf32>
// CHECK: "onnx.Transpose"{{.*}} -> tensor<1x1x3x3xf32>
// CHECK: "onnx.Conv"{{.*}}group = 1 : i64{{.*}} -> tensor<?x1x2x2xf32>
module attributes {spa.plan = "{\"groups\": [{\"id\": 0, \"removed\": [1, 2, 3]}]}"} {
  func.func @main_graph(%x: tensor<?x2x2x2xf32>) -> tensor<?x2xf32> {
    %w = onnx.Initializer "w" = dense<1.0> : tensor<4x2x1x1xf32>
    %dw = onnx.Initializer "dw" = dense<1.0> : tensor<3x3x4x1xf32>
    %dw_shape = onnx.Initializer "dw_shape" = dense<[3, 3, 1, 4]> : tensor<4xi64>
    %zero = onnx.Initializer "zero" = dense<0> : tensor<i64>
    %axes = onnx.Initializer "axes" = dense<[0]> : tensor<1xi64>
    %rest = onnx.Initializer "rest" = dense<[-1]> : tensor<1xi64>
    %fc = onnx.Initializer "fc" = dense<1.0> : tensor<16x2xf32>
    %none = onnx.NoValue
    %a = "onnx.Conv"(%x, %w, %none) : (tensor<?x2x2x2xf32>, tensor<4x2x1x1xf32>, none) -> tensor<?x4x2x2xf32>
    %k = "onnx.Reshape"(%dw, %dw_shape) : (tensor<3x3x4x1xf32>, tensor<4xi64>) -> tensor<3x3x1x4xf32>
    %kt = "onnx.Transpose"(%k) {perm = [3, 2, 0, 1]} : (tensor<3x3x1x4xf32>) -> tensor<4x1x3x3xf32>
    %d = "onnx.Conv"(%a, %kt, %none) {group = 4 : i64, pads = [1, 1, 1, 1]} : (tensor<?x4x2x2xf32>, tensor<4x1x3x3xf32>, none) -> tensor<?x4x2x2xf32>
    %shape = "onnx.Shape"(%d) : (tensor<?x4x2x2xf32>) -> tensor<4xi64>
    %batch = "onnx.Gather"(%shape, %zero) {axis = 0 : i64} : (tensor<4xi64>, tensor<i64>) -> tensor<i64>
    %batch1 = "onnx.Unsqueeze"(%batch, %axes) : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64>
    %target = "onnx.Concat"(%batch1, %rest) {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>) -> tensor<2xi64>
    %f = "onnx.Reshape"(%d, %target) : (tensor<?x4x2x2xf32>, tensor<2xi64>) -> tensor<?x?xf32>
    %y = "onnx.MatMul"(%f, %fc) : (tensor<?x?xf32>, tensor<16x2xf32>) -> tensor<?x2xf32>
    return %y : tensor<?x2xf32>
  }
}
