// RUN: spa-opt %s --spa-prune=plan=%S/Inputs/heads_plan.json | filecheck %s
// Reshape targets built by Concat from a Shape-derived batch size and constant
// pieces (as exporters write x.reshape(x.shape[0], heads, -1)): removing head dim 1
// of 3 rewrites only the constant pieces ([2, 3] -> [2, 2], [6] -> [4]).

// CHECK-LABEL: func.func @main_graph
// CHECK: onnx.Initializer "w" = dense_resource<{{.*}}> : tensor<4x4xf32>
// CHECK: "onnx.Shape"
// CHECK: %[[HEADS:.*]] = onnx.Initializer "heads_pruned{{[0-9]+}}" = dense_resource<[[HEADS_BLOB:.*]]> : tensor<2xi64>
// CHECK: "onnx.Concat"(%{{.*}}, %[[HEADS]])
// CHECK: "onnx.Reshape"{{.*}} -> tensor<?x2x2xf32>
// CHECK: %[[FLAT:.*]] = onnx.Initializer "flat_pruned{{[0-9]+}}" = dense_resource<[[FLAT_BLOB:.*]]> : tensor<1xi64>
// CHECK: "onnx.Concat"(%{{.*}}, %[[FLAT]])
// CHECK: "onnx.Reshape"{{.*}} -> tensor<?x4xf32>
// CHECK: "onnx.MatMul"{{.*}}tensor<4x5xf32>
// Kept columns 0, 2, 3, 5 of w (head dims 0 and 2 of both heads).
// CHECK: w: "0x100000000000803F00004040000080400000C040
// CHECK: [[HEADS_BLOB]]: "0x1000000002000000000000000200000000000000"
// CHECK: [[FLAT_BLOB]]: "0x100000000400000000000000"
func.func @main_graph(%x: tensor<?x4xf32>) -> tensor<?x5xf32> {
  %w = onnx.Initializer "w" = dense<[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                                     [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]> : tensor<4x6xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<6x5xf32>
  %zero = onnx.Initializer "zero" = dense<[0]> : tensor<1xi64>
  %heads = onnx.Initializer "heads" = dense<[2, 3]> : tensor<2xi64>
  %flat = onnx.Initializer "flat" = dense<[6]> : tensor<1xi64>
  %y = "onnx.MatMul"(%x, %w) : (tensor<?x4xf32>, tensor<4x6xf32>) -> tensor<?x6xf32>
  %shape = "onnx.Shape"(%y) : (tensor<?x6xf32>) -> tensor<2xi64>
  %batch = "onnx.Gather"(%shape, %zero) : (tensor<2xi64>, tensor<1xi64>) -> tensor<1xi64>
  %target = "onnx.Concat"(%batch, %heads) {axis = 0 : i64} : (tensor<1xi64>, tensor<2xi64>) -> tensor<3xi64>
  %h = "onnx.Reshape"(%y, %target) : (tensor<?x6xf32>, tensor<3xi64>) -> tensor<?x2x3xf32>
  %r = "onnx.Relu"(%h) : (tensor<?x2x3xf32>) -> tensor<?x2x3xf32>
  %back = "onnx.Concat"(%batch, %flat) {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>) -> tensor<2xi64>
  %m = "onnx.Reshape"(%r, %back) : (tensor<?x2x3xf32>, tensor<2xi64>) -> tensor<?x6xf32>
  %o = "onnx.MatMul"(%m, %w2) : (tensor<?x6xf32>, tensor<6x5xf32>) -> tensor<?x5xf32>
  return %o : tensor<?x5xf32>
}
