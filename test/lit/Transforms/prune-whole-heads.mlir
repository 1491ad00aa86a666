// RUN: spa-opt %s --spa-channel-coupling="heads=whole" -o /dev/null | filecheck %s --check-prefix=GROUPS
// RUN: spa-opt %s --spa-prune="heads=whole" | filecheck %s
// Whole-head pruning: q, k and v are split into 2 heads of 4 dims; with heads=whole
// a channel is a head (its 4 columns in each projection and 4 rows of wo), the
// heads are a batch axis of both attention MatMuls, and removing head 1 shrinks
// the head count in the split targets and the merged width.

// GROUPS: "channels":2,{{.*}}"id":0,"members":[{"axis":1,"channel_of_position":[0,0,0,0,1,1,1,1],"role":"producer","tensor":"wq"}
// GROUPS-SAME: "tensor":"wk"
// GROUPS-SAME: "tensor":"wv"
// GROUPS-SAME: {"axis":0,"channel_of_position":[0,0,0,0,1,1,1,1],"role":"consumer","tensor":"wo"}],"prunable":true

// CHECK-LABEL: func.func @main_graph
// CHECK-DAG: onnx.Initializer "wq" = dense<1.000000e+00> : tensor<2x4xf32>
// CHECK-DAG: onnx.Initializer "wo" = dense_resource<[[WO:[^>]*]]> : tensor<4x2xf32>
// CHECK: onnx.Initializer "split_pruned{{[0-9]+}}" = dense_resource<[[SPLIT:[^>]*]]>
// CHECK: "onnx.Reshape"{{.*}} -> tensor<1x3x1x4xf32>
// CHECK: "onnx.MatMul"{{.*}} -> tensor<1x1x3x3xf32>
// CHECK: onnx.Initializer "merge_pruned{{[0-9]+}}" = dense_resource<[[MERGE:[^>]*]]>
// CHECK: "onnx.Reshape"{{.*}} -> tensor<1x3x4xf32>
// Rows 0..3 of wo stay (head 0); the targets become [1, 3, 1, 4] and [1, 3, 4].
// CHECK-DAG: [[WO]]: "0x100000000000803F0000803F000000400000004000004040000040400000804000008040"
// CHECK-DAG: [[SPLIT]]: "0x10000000010000000000000003000000000000000100000000000000040000000000000
// CHECK-DAG: [[MERGE]]: "0x10000000010000000000000003000000000000000400000000000000"
module attributes {spa.plan = "{\"groups\": [{\"id\": 0, \"removed\": [1]}]}"} {
  func.func @main_graph(%x: tensor<1x3x2xf32>) -> tensor<1x3x2xf32> {
    %wq = onnx.Initializer "wq" = dense<1.0> : tensor<2x8xf32>
    %wk = onnx.Initializer "wk" = dense<1.0> : tensor<2x8xf32>
    %wv = onnx.Initializer "wv" = dense<1.0> : tensor<2x8xf32>
    %wo = onnx.Initializer "wo" = dense<[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0],
                                         [5.0, 5.0], [6.0, 6.0], [7.0, 7.0], [8.0, 8.0]]> : tensor<8x2xf32>
    %split = onnx.Initializer "split" = dense<[1, 3, 2, 4]> : tensor<4xi64>
    %merge = onnx.Initializer "merge" = dense<[1, 3, 8]> : tensor<3xi64>
    %q = "onnx.MatMul"(%x, %wq) : (tensor<1x3x2xf32>, tensor<2x8xf32>) -> tensor<1x3x8xf32>
    %k = "onnx.MatMul"(%x, %wk) : (tensor<1x3x2xf32>, tensor<2x8xf32>) -> tensor<1x3x8xf32>
    %v = "onnx.MatMul"(%x, %wv) : (tensor<1x3x2xf32>, tensor<2x8xf32>) -> tensor<1x3x8xf32>
    %qh = "onnx.Reshape"(%q, %split) : (tensor<1x3x8xf32>, tensor<4xi64>) -> tensor<1x3x2x4xf32>
    %kh = "onnx.Reshape"(%k, %split) : (tensor<1x3x8xf32>, tensor<4xi64>) -> tensor<1x3x2x4xf32>
    %vh = "onnx.Reshape"(%v, %split) : (tensor<1x3x8xf32>, tensor<4xi64>) -> tensor<1x3x2x4xf32>
    %qt = "onnx.Transpose"(%qh) {perm = [0, 2, 1, 3]} : (tensor<1x3x2x4xf32>) -> tensor<1x2x3x4xf32>
    %kt = "onnx.Transpose"(%kh) {perm = [0, 2, 3, 1]} : (tensor<1x3x2x4xf32>) -> tensor<1x2x4x3xf32>
    %vt = "onnx.Transpose"(%vh) {perm = [0, 2, 1, 3]} : (tensor<1x3x2x4xf32>) -> tensor<1x2x3x4xf32>
    %s = "onnx.MatMul"(%qt, %kt) : (tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32>) -> tensor<1x2x3x3xf32>
    %a = "onnx.Softmax"(%s) {axis = -1 : i64} : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
    %o = "onnx.MatMul"(%a, %vt) : (tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
    %ot = "onnx.Transpose"(%o) {perm = [0, 2, 1, 3]} : (tensor<1x2x3x4xf32>) -> tensor<1x3x2x4xf32>
    %m = "onnx.Reshape"(%ot, %merge) : (tensor<1x3x2x4xf32>, tensor<3xi64>) -> tensor<1x3x8xf32>
    %y = "onnx.MatMul"(%m, %wo) : (tensor<1x3x8xf32>, tensor<8x2xf32>) -> tensor<1x3x2xf32>
    return %y : tensor<1x3x2xf32>
  }
}
