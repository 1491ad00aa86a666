// RUN: spa-opt %s --spa-prune=plan=%S/Inputs/split_plan.json | filecheck %s
// A Split over the channel axis, counted from the end (axis = -1), gets the kept sizes of its
// parts: removing channel 0 (first part) and 5 (second part) of 6 turns [2, 4] into [1, 3].
// (The accessor of the axis is unsigned; -1 once crashed the pass.)

// CHECK-LABEL: func.func @main_graph
// CHECK-DAG: onnx.Initializer "w" = dense<5.000000e-01> : tensor<4x4xf32>
// CHECK-DAG: %[[SIZES:.*]] = onnx.Initializer "{{.*}}_pruned{{[0-9]*}}" = dense_resource<[[BLOB:.*]]> : tensor<2xi64>
// CHECK: "onnx.Split"(%{{.*}}, %[[SIZES]]){{.*}} -> (tensor<2x1xf32>, tensor<2x3xf32>)
// CHECK: [[BLOB]]: "0x1000000001000000000000000300000000000000"
func.func @main_graph(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {
  %w = onnx.Initializer "w" = dense<0.5> : tensor<4x6xf32>
  %a = onnx.Initializer "a" = dense<0.25> : tensor<2x3xf32>
  %b = onnx.Initializer "b" = dense<0.125> : tensor<4x3xf32>
  %sizes = onnx.Initializer "sizes" = dense<[2, 4]> : tensor<2xi64>
  %h = "onnx.MatMul"(%x, %w) : (tensor<2x4xf32>, tensor<4x6xf32>) -> tensor<2x6xf32>
  %p:2 = "onnx.Split"(%h, %sizes) <{axis = -1 : i64}> : (tensor<2x6xf32>, tensor<2xi64>) -> (tensor<2x2xf32>, tensor<2x4xf32>)
  %ya = "onnx.MatMul"(%p#0, %a) : (tensor<2x2xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %yb = "onnx.MatMul"(%p#1, %b) : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
  %y = "onnx.Add"(%ya, %yb) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %y : tensor<2x3xf32>
}
