// RUN: spa-opt %s --split-input-file --spa-channel-coupling=output=- -o /dev/null | filecheck %s
// Channel rules: which constants each group ties together, and why groups are blocked.
// Keys of the JSON objects are printed in sorted order.

// Conv -> Relu -> Conv: the first conv's output channels are its weight rows and
// bias, and the second conv's weight columns.
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":4,"divisor":1,"function_preserving":true,"id":0
// CHECK-SAME: "axis":0,"channel_of_position":[0,1,2,3],"role":"producer","tensor":"w1"
// CHECK-SAME: "axis":0,"channel_of_position":[0,1,2,3],"role":"producer","tensor":"b1"
// CHECK-SAME: "axis":1,"channel_of_position":[0,1,2,3],"role":"consumer","tensor":"w2"
// CHECK-SAME: "prunable":true
// CHECK-SAME: "reasons":["graph output"]
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %b1 = onnx.Initializer "b1" = dense<0.0> : tensor<4xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<2x4x1x1xf32>
  %none = onnx.NoValue
  %y = "onnx.Conv"(%x, %w1, %b1) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, tensor<4xf32>) -> tensor<1x4x4x4xf32>
  %r = "onnx.Relu"(%y) : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
  %z = "onnx.Conv"(%r, %w2, %none) : (tensor<1x4x4x4xf32>, tensor<2x4x1x1xf32>, none) -> tensor<1x2x4x4xf32>
  return %z : tensor<1x2x4x4xf32>
}

// -----

// A residual Add unites the channels of both branches into one group.
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":4,{{.*}}"id":0,"members":[
// CHECK-SAME: "tensor":"wa"
// CHECK-SAME: "tensor":"wb"
// CHECK-SAME: "tensor":"wc"
// CHECK-SAME: "prunable":true
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %wa = onnx.Initializer "wa" = dense<1.0> : tensor<4x3x1x1xf32>
  %wb = onnx.Initializer "wb" = dense<1.0> : tensor<4x3x1x1xf32>
  %wc = onnx.Initializer "wc" = dense<1.0> : tensor<2x4x1x1xf32>
  %none = onnx.NoValue
  %a = "onnx.Conv"(%x, %wa, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %b = "onnx.Conv"(%x, %wb, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %s = "onnx.Add"(%a, %b) : (tensor<1x4x4x4xf32>, tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
  %z = "onnx.Conv"(%s, %wc, %none) : (tensor<1x4x4x4xf32>, tensor<2x4x1x1xf32>, none) -> tensor<1x2x4x4xf32>
  return %z : tensor<1x2x4x4xf32>
}

// -----

// Depthwise conv: input channel c is output channel c, so one group spans both convs.
// A grouped conv (2 groups of 2 inputs) keeps its groups: position j of every group
// is one channel, so the 4 channels above become 2, each removed from both groups.
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":2,{{.*}}"id":0,"members":[{"axis":0,"channel_of_position":[0,1,0,1],"role":"producer","tensor":"w1"},{"axis":0,"channel_of_position":[0,1,0,1],"role":"producer","tensor":"dw"},{"axis":1,"channel_of_position":[0,1],"role":"consumer","tensor":"wg"}],"prunable":true
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %dw = onnx.Initializer "dw" = dense<1.0> : tensor<4x1x3x3xf32>
  %wg = onnx.Initializer "wg" = dense<1.0> : tensor<2x2x1x1xf32>
  %none = onnx.NoValue
  %a = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %d = "onnx.Conv"(%a, %dw, %none) {group = 4 : i64, pads = [1, 1, 1, 1]} : (tensor<1x4x4x4xf32>, tensor<4x1x3x3xf32>, none) -> tensor<1x4x4x4xf32>
  %g = "onnx.Conv"(%d, %wg, %none) {group = 2 : i64, onnx.node_name = "grouped"} : (tensor<1x4x4x4xf32>, tensor<2x2x1x1xf32>, none) -> tensor<1x2x4x4xf32>
  return %g : tensor<1x2x4x4xf32>
}

// -----

// Concat lays channels side by side: the consumer's columns map to both producers.
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":5
// CHECK-SAME: "axis":1,"channel_of_position":[0,1,2,3,4],"role":"consumer","tensor":"wc"
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %wa = onnx.Initializer "wa" = dense<1.0> : tensor<2x3x1x1xf32>
  %wb = onnx.Initializer "wb" = dense<1.0> : tensor<3x3x1x1xf32>
  %wc = onnx.Initializer "wc" = dense<1.0> : tensor<2x5x1x1xf32>
  %none = onnx.NoValue
  %a = "onnx.Conv"(%x, %wa, %none) : (tensor<1x3x4x4xf32>, tensor<2x3x1x1xf32>, none) -> tensor<1x2x4x4xf32>
  %b = "onnx.Conv"(%x, %wb, %none) : (tensor<1x3x4x4xf32>, tensor<3x3x1x1xf32>, none) -> tensor<1x3x4x4xf32>
  %c = "onnx.Concat"(%a, %b) {axis = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<1x3x4x4xf32>) -> tensor<1x5x4x4xf32>
  %z = "onnx.Conv"(%c, %wc, %none) : (tensor<1x5x4x4xf32>, tensor<2x5x1x1xf32>, none) -> tensor<1x2x4x4xf32>
  return %z : tensor<1x2x4x4xf32>
}

// -----

// Flatten turns each channel into a block of H*W Gemm columns.
// CHECK-LABEL: "groups"
// CHECK-SAME: "axis":1,"channel_of_position":[0,0,0,0,1,1,1,1],"role":"consumer","tensor":"fc"
func.func @main_graph(%x: tensor<?x3x2x2xf32>) -> tensor<?x5xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<2x3x1x1xf32>
  %fc = onnx.Initializer "fc" = dense<1.0> : tensor<5x8xf32>
  %none = onnx.NoValue
  %a = "onnx.Conv"(%x, %w, %none) : (tensor<?x3x2x2xf32>, tensor<2x3x1x1xf32>, none) -> tensor<?x2x2x2xf32>
  %f = "onnx.Flatten"(%a) {axis = 1 : i64} : (tensor<?x2x2x2xf32>) -> tensor<?x8xf32>
  %y = "onnx.Gemm"(%f, %fc, %none) {transB = 1 : i64} : (tensor<?x8xf32>, tensor<5x8xf32>, none) -> tensor<?x5xf32>
  return %y : tensor<?x5xf32>
}

// -----

// An op of another domain is opaque: the channels it reads are not prunable.
// CHECK-LABEL: "groups"
// CHECK-SAME: "id":0
// CHECK-SAME: "prunable":false,"reasons":["opaque op onnx.Custom"]
func.func @main_graph(%x: tensor<1x3xf32>) -> tensor<1x4xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<3x4xf32>
  %y = "onnx.MatMul"(%x, %w) : (tensor<1x3xf32>, tensor<3x4xf32>) -> tensor<1x4xf32>
  %z = "onnx.Custom"(%y) {domain = "acme", op_type = "Magic"} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  return %z : tensor<1x4xf32>
}

// -----

// LayerNorm over the channels slices its scale and bias but is not function-preserving.
// CHECK-LABEL: "groups"
// CHECK-SAME: "function_preserving":false
// CHECK-SAME: "role":"norm","tensor":"gamma"
// CHECK-SAME: "prunable":true,"reasons":["onnx.LayerNormalization normalises over the channels"]
func.func @main_graph(%x: tensor<2x3xf32>) -> tensor<2x2xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<3x4xf32>
  %gamma = onnx.Initializer "gamma" = dense<1.0> : tensor<4xf32>
  %beta = onnx.Initializer "beta" = dense<0.0> : tensor<4xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<4x2xf32>
  %y = "onnx.MatMul"(%x, %w) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  %n, %mean, %inv = "onnx.LayerNormalization"(%y, %gamma, %beta) : (tensor<2x4xf32>, tensor<4xf32>, tensor<4xf32>) -> (tensor<2x4xf32>, none, none)
  %z = "onnx.MatMul"(%n, %w2) : (tensor<2x4xf32>, tensor<4x2xf32>) -> tensor<2x2xf32>
  return %z : tensor<2x2xf32>
}

// -----

// Splitting hidden features into heads ties the same head dim in every head.
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":2
// CHECK-SAME: "axis":1,"channel_of_position":[0,1,0,1],"role":"producer","tensor":"wq"
func.func @main_graph(%x: tensor<3x5xf32>) -> tensor<3x5xf32> {
  %wq = onnx.Initializer "wq" = dense<1.0> : tensor<5x4xf32>
  %shape = onnx.Initializer "shape" = dense<[3, 2, 2]> : tensor<3xi64>
  %back = onnx.Initializer "back" = dense<[3, 4]> : tensor<2xi64>
  %wo = onnx.Initializer "wo" = dense<1.0> : tensor<4x5xf32>
  %q = "onnx.MatMul"(%x, %wq) : (tensor<3x5xf32>, tensor<5x4xf32>) -> tensor<3x4xf32>
  %h = "onnx.Reshape"(%q, %shape) : (tensor<3x4xf32>, tensor<3xi64>) -> tensor<3x2x2xf32>
  %r = "onnx.Relu"(%h) : (tensor<3x2x2xf32>) -> tensor<3x2x2xf32>
  %m = "onnx.Reshape"(%r, %back) : (tensor<3x2x2xf32>, tensor<2xi64>) -> tensor<3x4xf32>
  %o = "onnx.MatMul"(%m, %wo) : (tensor<3x4xf32>, tensor<4x5xf32>) -> tensor<3x5xf32>
  return %o : tensor<3x5xf32>
}

// -----

// GroupNormalization (2 groups of 2) keeps its groups: position j of each group is one
// channel, its scale and bias are sliced, and the statistics make it non-preserving.
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":2,{{.*}}"function_preserving":false
// CHECK-SAME: "axis":0,"channel_of_position":[0,1,0,1],"role":"norm","tensor":"gscale"
// CHECK-SAME: "prunable":true,"reasons":["onnx.GroupNormalization normalises over channel groups"]
func.func @main_graph(%x: tensor<1x3x2x2xf32>) -> tensor<1x2x2x2xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<4x3x1x1xf32>
  %gscale = onnx.Initializer "gscale" = dense<1.0> : tensor<4xf32>
  %gbias = onnx.Initializer "gbias" = dense<0.0> : tensor<4xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<2x4x1x1xf32>
  %none = onnx.NoValue
  %a = "onnx.Conv"(%x, %w, %none) : (tensor<1x3x2x2xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x2x2xf32>
  %n = "onnx.GroupNormalization"(%a, %gscale, %gbias) {num_groups = 2 : i64} : (tensor<1x4x2x2xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<1x4x2x2xf32>
  %z = "onnx.Conv"(%n, %w2, %none) : (tensor<1x4x2x2xf32>, tensor<2x4x1x1xf32>, none) -> tensor<1x2x2x2xf32>
  return %z : tensor<1x2x2x2xf32>
}

// -----

// An op without a channel rule (TopK over the channels) blocks what it reads.
// CHECK-LABEL: "groups"
// CHECK-SAME: "prunable":false,"reasons":["no channel rule for onnx.TopK 'topk'"]
func.func @main_graph(%x: tensor<2x3xf32>) -> tensor<2x2xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<3x4xf32>
  %k = onnx.Initializer "k" = dense<2> : tensor<1xi64>
  %y = "onnx.MatMul"(%x, %w) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  %values, %indices = "onnx.TopK"(%y, %k) {onnx.node_name = "topk"} : (tensor<2x4xf32>, tensor<1xi64>) -> (tensor<2x2xf32>, tensor<2x2xi64>)
  return %values : tensor<2x2xf32>
}

// -----

// A weight the exporter left transposed (Transpose of an initializer, as
// PyTorch's unfolded Linear and channels-last frameworks export): the members
// land on the initializer, with the axes mapped back through the permutation.
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":4
// CHECK-SAME: "axis":0,"channel_of_position":[0,1,2,3],"role":"producer","tensor":"fc1"
// CHECK-SAME: "axis":1,"channel_of_position":[0,1,2,3],"role":"consumer","tensor":"fc2"
// CHECK-SAME: "prunable":true
func.func @main_graph(%x: tensor<2x3xf32>) -> tensor<2x2xf32> {
  %fc1 = onnx.Initializer "fc1" = dense<1.0> : tensor<4x3xf32>
  %fc2 = onnx.Initializer "fc2" = dense<1.0> : tensor<2x4xf32>
  %t1 = "onnx.Transpose"(%fc1) {perm = [1, 0]} : (tensor<4x3xf32>) -> tensor<3x4xf32>
  %t2 = "onnx.Transpose"(%fc2) : (tensor<2x4xf32>) -> tensor<4x2xf32>
  %h = "onnx.MatMul"(%x, %t1) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  %r = "onnx.Relu"(%h) : (tensor<2x4xf32>) -> tensor<2x4xf32>
  %y = "onnx.MatMul"(%r, %t2) : (tensor<2x4xf32>, tensor<4x2xf32>) -> tensor<2x2xf32>
  return %y : tensor<2x2xf32>
}

// -----

// A per-channel scale unsqueezed to (C, 1, 1) for broadcasting is a member on
// its own axis 0 (the inserted axes carry no channels).
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":4
// CHECK-SAME: "axis":0,"channel_of_position":[0,1,2,3],"role":"norm","tensor":"scale"
// CHECK-SAME: "prunable":true
func.func @main_graph(%x: tensor<1x3x2x2xf32>) -> tensor<1x2x2x2xf32> {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %scale = onnx.Initializer "scale" = dense<2.0> : tensor<4xf32>
  %axes = onnx.Initializer "axes" = dense<[1, 2]> : tensor<2xi64>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<2x4x1x1xf32>
  %none = onnx.NoValue
  %y = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x2x2xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x2x2xf32>
  %s = "onnx.Unsqueeze"(%scale, %axes) : (tensor<4xf32>, tensor<2xi64>) -> tensor<4x1x1xf32>
  %m = "onnx.Mul"(%y, %s) : (tensor<1x4x2x2xf32>, tensor<4x1x1xf32>) -> tensor<1x4x2x2xf32>
  %z = "onnx.Conv"(%m, %w2, %none) : (tensor<1x4x2x2xf32>, tensor<2x4x1x1xf32>, none) -> tensor<1x2x2x2xf32>
  return %z : tensor<1x2x2x2xf32>
}

// -----

// Unit axes carry no data: (L, 1, 6) -> (L, 2, 3) splits the channels into 2 heads
// of 3 (torch's attention layout), so head dim j of both heads is one channel; a
// Slice of the Shape that leaves the channel entry out does not read the channel count.
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":3,{{.*}}"function_preserving":true,"id":0,"members":[{"axis":1,"channel_of_position":[0,1,2,0,1,2],"role":"producer","tensor":"w"},{"axis":0,"channel_of_position":[0,1,2,0,1,2],"role":"consumer","tensor":"w2"}
// CHECK-SAME: "prunable":true
func.func @main_graph(%x: tensor<5x1x4xf32>) -> tensor<5x1x2xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<4x6xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<6x2xf32>
  %back = onnx.Initializer "back" = dense<[5, 1, 6]> : tensor<3xi64>
  %start = onnx.Initializer "start" = dense<[0]> : tensor<1xi64>
  %end = onnx.Initializer "end" = dense<[2]> : tensor<1xi64>
  %target = onnx.Initializer "target" = dense<[5, 2, 3]> : tensor<3xi64>
  %none = onnx.NoValue
  %y = "onnx.MatMul"(%x, %w) : (tensor<5x1x4xf32>, tensor<4x6xf32>) -> tensor<5x1x6xf32>
  %shape = "onnx.Shape"(%y) : (tensor<5x1x6xf32>) -> tensor<3xi64>
  %lead = "onnx.Slice"(%shape, %start, %end, %none, %none) : (tensor<3xi64>, tensor<1xi64>, tensor<1xi64>, none, none) -> tensor<2xi64>
  %h = "onnx.Reshape"(%y, %target) : (tensor<5x1x6xf32>, tensor<3xi64>) -> tensor<5x2x3xf32>
  %r = "onnx.Relu"(%h) : (tensor<5x2x3xf32>) -> tensor<5x2x3xf32>
  %m = "onnx.Reshape"(%r, %back) : (tensor<5x2x3xf32>, tensor<3xi64>) -> tensor<5x1x6xf32>
  %z = "onnx.MatMul"(%m, %w2) : (tensor<5x1x6xf32>, tensor<6x2xf32>) -> tensor<5x1x2xf32>
  return %z : tensor<5x1x2xf32>
}

// -----

// A class token expanded to the batch (Expand with a target of ones) and concatenated
// with the tokens is a view of the token's channel axis.
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":4,{{.*}}"id":0,"members":[{"axis":1,"channel_of_position":[0,1,2,3],"role":"producer","tensor":"w"},{"axis":2,"channel_of_position":[0,1,2,3],"role":"{{[a-z]+}}","tensor":"token"}
// CHECK-SAME: "prunable":true
func.func @main_graph(%x: tensor<1x3x2xf32>) -> tensor<1x4x2xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<2x4xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<4x2xf32>
  %token = onnx.Initializer "token" = dense<0.5> : tensor<1x1x4xf32>
  %ones = onnx.Initializer "ones" = dense<1> : tensor<3xi64>
  %y = "onnx.MatMul"(%x, %w) : (tensor<1x3x2xf32>, tensor<2x4xf32>) -> tensor<1x3x4xf32>
  %t = "onnx.Expand"(%token, %ones) : (tensor<1x1x4xf32>, tensor<3xi64>) -> tensor<1x1x4xf32>
  %c = "onnx.Concat"(%t, %y) {axis = 1 : i64} : (tensor<1x1x4xf32>, tensor<1x3x4xf32>) -> tensor<1x4x4xf32>
  %z = "onnx.MatMul"(%c, %w2) : (tensor<1x4x4xf32>, tensor<4x2xf32>) -> tensor<1x4x2xf32>
  return %z : tensor<1x4x2xf32>
}

// -----

// The same with a dynamic batch: the target's batch entry is read from Shape, the
// rest are constant ones (what SPA's import makes of torch's expand(n, -1, -1)).
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":4,{{.*}}"id":0,"members":[{"axis":1,"channel_of_position":[0,1,2,3],"role":"producer","tensor":"w"},{"axis":2,"channel_of_position":[0,1,2,3],"role":"{{[a-z]+}}","tensor":"token"}
// CHECK-SAME: "prunable":true
func.func @main_graph(%x: tensor<?x3x2xf32>) -> tensor<?x4x2xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<2x4xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<4x2xf32>
  %token = onnx.Initializer "token" = dense<0.5> : tensor<1x1x4xf32>
  %start = onnx.Initializer "start" = dense<0> : tensor<1xi64>
  %end = onnx.Initializer "end" = dense<1> : tensor<1xi64>
  %ones = onnx.Initializer "ones" = dense<1> : tensor<2xi64>
  %none = "onnx.NoValue"() : () -> none
  %y = "onnx.MatMul"(%x, %w) : (tensor<?x3x2xf32>, tensor<2x4xf32>) -> tensor<?x3x4xf32>
  %shape = "onnx.Shape"(%x) : (tensor<?x3x2xf32>) -> tensor<3xi64>
  %batch = "onnx.Slice"(%shape, %start, %end, %none, %none) : (tensor<3xi64>, tensor<1xi64>, tensor<1xi64>, none, none) -> tensor<1xi64>
  %target = "onnx.Concat"(%batch, %ones) {axis = 0 : i64} : (tensor<1xi64>, tensor<2xi64>) -> tensor<3xi64>
  %t = "onnx.Expand"(%token, %target) : (tensor<1x1x4xf32>, tensor<3xi64>) -> tensor<?x1x4xf32>
  %c = "onnx.Concat"(%t, %y) {axis = 1 : i64} : (tensor<?x1x4xf32>, tensor<?x3x4xf32>) -> tensor<?x4x4xf32>
  %z = "onnx.MatMul"(%c, %w2) : (tensor<?x4x4xf32>, tensor<4x2xf32>) -> tensor<?x4x2xf32>
  return %z : tensor<?x4x2xf32>
}

// -----

// A target whose channel entry is read from Shape broadcasts the token to a width
// SPA cannot rewrite: the channels are blocked.
// CHECK-LABEL: "groups"
// CHECK-SAME: "id":0,"members":[{"axis":1,"channel_of_position":[0,1,2,3],"role":"producer","tensor":"w"},{{.*}}"prunable":false,"reasons":["onnx.Concat operand is computed, not a constant"
func.func @main_graph(%x: tensor<?x3x2xf32>) -> tensor<?x4x2xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<2x4xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<4x2xf32>
  %token = onnx.Initializer "token" = dense<0.5> : tensor<1x1x1xf32>
  %start = onnx.Initializer "start" = dense<0> : tensor<1xi64>
  %end = onnx.Initializer "end" = dense<1> : tensor<1xi64>
  %two = onnx.Initializer "two" = dense<2> : tensor<1xi64>
  %three = onnx.Initializer "three" = dense<3> : tensor<1xi64>
  %one = onnx.Initializer "one" = dense<1> : tensor<1xi64>
  %none = "onnx.NoValue"() : () -> none
  %y = "onnx.MatMul"(%x, %w) : (tensor<?x3x2xf32>, tensor<2x4xf32>) -> tensor<?x3x4xf32>
  %shape = "onnx.Shape"(%y) : (tensor<?x3x4xf32>) -> tensor<3xi64>
  %batch = "onnx.Slice"(%shape, %start, %end, %none, %none) : (tensor<3xi64>, tensor<1xi64>, tensor<1xi64>, none, none) -> tensor<1xi64>
  %width = "onnx.Slice"(%shape, %two, %three, %none, %none) : (tensor<3xi64>, tensor<1xi64>, tensor<1xi64>, none, none) -> tensor<1xi64>
  %target = "onnx.Concat"(%batch, %one, %width) {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %t = "onnx.Expand"(%token, %target) : (tensor<1x1x1xf32>, tensor<3xi64>) -> tensor<?x1x4xf32>
  %c = "onnx.Concat"(%t, %y) {axis = 1 : i64} : (tensor<?x1x4xf32>, tensor<?x3x4xf32>) -> tensor<?x4x4xf32>
  %z = "onnx.MatMul"(%c, %w2) : (tensor<?x4x4xf32>, tensor<4x2xf32>) -> tensor<?x4x2xf32>
  return %z : tensor<?x4x2xf32>
}

// -----

// Spatial axes merged in front of the channels with a dynamic batch in front of
// them ((?, 4, 4, C) -> (?, 16, C), PVT's tokens): the channels keep their positions.
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":8,{{.*}}"id":0,"members":[{"axis":1,"channel_of_position":[0,1,2,3,4,5,6,7],"role":"producer","tensor":"w"},{"axis":0,"channel_of_position":[0,1,2,3,4,5,6,7],"role":"consumer","tensor":"w2"}],"prunable":true
func.func @main_graph(%x: tensor<?x4x4x3xf32>) -> tensor<?x16x2xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<3x8xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<8x2xf32>
  %start = onnx.Initializer "start" = dense<0> : tensor<1xi64>
  %end = onnx.Initializer "end" = dense<1> : tensor<1xi64>
  %tokens = onnx.Initializer "tokens" = dense<[16, 8]> : tensor<2xi64>
  %none = "onnx.NoValue"() : () -> none
  %y = "onnx.MatMul"(%x, %w) : (tensor<?x4x4x3xf32>, tensor<3x8xf32>) -> tensor<?x4x4x8xf32>
  %shape = "onnx.Shape"(%y) : (tensor<?x4x4x8xf32>) -> tensor<4xi64>
  %batch = "onnx.Slice"(%shape, %start, %end, %none, %none) : (tensor<4xi64>, tensor<1xi64>, tensor<1xi64>, none, none) -> tensor<1xi64>
  %target = "onnx.Concat"(%batch, %tokens) {axis = 0 : i64} : (tensor<1xi64>, tensor<2xi64>) -> tensor<3xi64>
  %t = "onnx.Reshape"(%y, %target) : (tensor<?x4x4x8xf32>, tensor<3xi64>) -> tensor<?x16x8xf32>
  %z = "onnx.MatMul"(%t, %w2) : (tensor<?x16x8xf32>, tensor<8x2xf32>) -> tensor<?x16x2xf32>
  return %z : tensor<?x16x2xf32>
}

// -----

// Slices of the channels with constant bounds (torch's chunk) carry their ranges;
// each range must keep a channel (keep_one_of).
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":4,{{.*}}"id":0,"keep_one_of":[[0,1],[2,3]],"members":[{"axis":1,"channel_of_position":[0,1,2,3],"role":"producer","tensor":"w"},{"axis":0,"channel_of_position":[2,3,0,1],"role":"consumer","tensor":"w2"}],"prunable":true
func.func @main_graph(%x: tensor<1x2xf32>) -> tensor<1x2xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<2x4xf32>
  %zero = onnx.Initializer "zero" = dense<[0]> : tensor<1xi64>
  %two = onnx.Initializer "two" = dense<[2]> : tensor<1xi64>
  %big = onnx.Initializer "big" = dense<[100]> : tensor<1xi64>
  %axis = onnx.Initializer "axis" = dense<[1]> : tensor<1xi64>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<4x2xf32>
  %none = onnx.NoValue
  %y = "onnx.MatMul"(%x, %w) : (tensor<1x2xf32>, tensor<2x4xf32>) -> tensor<1x4xf32>
  %a = "onnx.Slice"(%y, %zero, %two, %axis, %none) : (tensor<1x4xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, none) -> tensor<1x2xf32>
  %b = "onnx.Slice"(%y, %two, %big, %axis, %none) : (tensor<1x4xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, none) -> tensor<1x2xf32>
  %c = "onnx.Concat"(%b, %a) {axis = 1 : i64} : (tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x4xf32>
  %z = "onnx.MatMul"(%c, %w2) : (tensor<1x4xf32>, tensor<4x2xf32>) -> tensor<1x2xf32>
  return %z : tensor<1x2xf32>
}

// -----

// Einsum attention (MaxViT): the head dim d is contracted in q.k (q and k channels
// are one) and carried by attn.v to the output projection.
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":4,{{.*}}"id":0,"members":[{"axis":1,"channel_of_position":[0,1,2,3],"role":"producer","tensor":"wq"},{"axis":1,"channel_of_position":[0,1,2,3],"role":"producer","tensor":"wk"}],"prunable":true
// CHECK-SAME: "channels":4,{{.*}}"id":1,"members":[{"axis":1,"channel_of_position":[0,1,2,3],"role":"producer","tensor":"wv"},{"axis":0,"channel_of_position":[0,1,2,3],"role":"consumer","tensor":"wo"}],"prunable":true
func.func @main_graph(%x: tensor<1x3x2xf32>) -> tensor<1x3x2xf32> {
  %wq = onnx.Initializer "wq" = dense<1.0> : tensor<2x4xf32>
  %wk = onnx.Initializer "wk" = dense<1.0> : tensor<2x4xf32>
  %wv = onnx.Initializer "wv" = dense<1.0> : tensor<2x4xf32>
  %wo = onnx.Initializer "wo" = dense<1.0> : tensor<4x2xf32>
  %q = "onnx.MatMul"(%x, %wq) : (tensor<1x3x2xf32>, tensor<2x4xf32>) -> tensor<1x3x4xf32>
  %k = "onnx.MatMul"(%x, %wk) : (tensor<1x3x2xf32>, tensor<2x4xf32>) -> tensor<1x3x4xf32>
  %v = "onnx.MatMul"(%x, %wv) : (tensor<1x3x2xf32>, tensor<2x4xf32>) -> tensor<1x3x4xf32>
  %s = "onnx.Einsum"(%q, %k) {equation = "B I D, B J D -> B I J"} : (tensor<1x3x4xf32>, tensor<1x3x4xf32>) -> tensor<1x3x3xf32>
  %a = "onnx.Softmax"(%s) {axis = -1 : i64} : (tensor<1x3x3xf32>) -> tensor<1x3x3xf32>
  %o = "onnx.Einsum"(%a, %v) {equation = "bij,bjd->bid"} : (tensor<1x3x3xf32>, tensor<1x3x4xf32>) -> tensor<1x3x4xf32>
  %y = "onnx.MatMul"(%o, %wo) : (tensor<1x3x4xf32>, tensor<4x2xf32>) -> tensor<1x3x2xf32>
  return %y : tensor<1x3x2xf32>
}

// -----

// torch's GroupNorm(1, C): the channels are flattened with their spatial dims
// (Reshape to [N, 1, -1]), normalised together by InstanceNormalization, and
// reshaped back to the input's own Shape. The channels stay one group through
// both Reshapes; removing them changes the statistics: not function-preserving.
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":4,{{.*}}"function_preserving":false,"id":0,"members":[{"axis":0,"channel_of_position":[0,1,2,3],"role":"producer","tensor":"w"},{"axis":1,"channel_of_position":[0,1,2,3],"role":"consumer","tensor":"w2"}
// CHECK-SAME: "prunable":true
func.func @main_graph(%x: tensor<?x2x2x2xf32>) -> tensor<?x2x2x2xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<4x2x1x1xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<2x4x1x1xf32>
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

// -----

// A batched MatMul whose lhs carries channels on a batch axis (3, from the Conv)
// and whose rhs carries other channels as its columns (5, from w2) would carry
// both on its result: neither set is dropped unnoticed, both are blocked.
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":3,{{.*}}"tensor":"w"}],"prunable":false,"reasons":["onnx.MatMul carries channels on two axes"]
// CHECK-SAME: "channels":5,{{.*}}"tensor":"w2"},{{.*}}"tensor":"w3"}],"prunable":false,"reasons":["onnx.MatMul carries channels on two axes"]
func.func @main_graph(%x: tensor<2x2x4x4xf32>, %y: tensor<2x3x4x6xf32>) -> tensor<2x3x4x2xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<3x2x1x1xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<6x5xf32>
  %w3 = onnx.Initializer "w3" = dense<1.0> : tensor<5x2xf32>
  %none = "onnx.NoValue"() : () -> none
  %a = "onnx.Conv"(%x, %w, %none) : (tensor<2x2x4x4xf32>, tensor<3x2x1x1xf32>, none) -> tensor<2x3x4x4xf32>
  %b = "onnx.MatMul"(%y, %w2) : (tensor<2x3x4x6xf32>, tensor<6x5xf32>) -> tensor<2x3x4x5xf32>
  %z = "onnx.MatMul"(%a, %b) : (tensor<2x3x4x4xf32>, tensor<2x3x4x5xf32>) -> tensor<2x3x4x5xf32>
  %o = "onnx.MatMul"(%z, %w3) : (tensor<2x3x4x5xf32>, tensor<5x2xf32>) -> tensor<2x3x4x2xf32>
  return %o : tensor<2x3x4x2xf32>
}

// -----

// Shape inference stops at an opaque op: the Conv behind it has an unranked result,
// whose type pruning could not rewrite, so its output channels are blocked (the
// prune pass once crashed on such a value).
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":4,{{.*}}"prunable":false,"reasons":["onnx.Conv has a result of unknown rank"]
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> tensor<*xf32> {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<2x4x1x1xf32>
  %none = onnx.NoValue
  %g = "onnx.Custom"(%x) {domain = "com.microsoft", op_type = "Gelu"} : (tensor<1x3x4x4xf32>) -> tensor<*xf32>
  %y = "onnx.Conv"(%g, %w1, %none) : (tensor<*xf32>, tensor<4x3x1x1xf32>, none) -> tensor<*xf32>
  %z = "onnx.Conv"(%y, %w2, %none) : (tensor<*xf32>, tensor<2x4x1x1xf32>, none) -> tensor<*xf32>
  return %z : tensor<*xf32>
}

// -----

// An If's branches are analysed in place: each branch reads the outer value %h,
// and what they yield is the If's result, so conv1's outputs, both branch convs'
// inputs and outputs (the then-branch adds %h back) and conv2's inputs are one group.
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":4,{{.*}}"id":0,"members":[
// CHECK-SAME: "tensor":"w1"
// CHECK-SAME: "tensor":"wb"
// CHECK-SAME: "tensor":"wa"
// CHECK-SAME: "tensor":"w2"
// CHECK-SAME: "prunable":true
func.func @main_graph(%x: tensor<1x3x4x4xf32>, %flag: tensor<i1>) -> tensor<1x2x4x4xf32> {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %wa = onnx.Initializer "wa" = dense<1.0> : tensor<4x4x1x1xf32>
  %wb = onnx.Initializer "wb" = dense<1.0> : tensor<4x4x1x1xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<2x4x1x1xf32>
  %none = onnx.NoValue
  %h = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %y = "onnx.If"(%flag) ({
    %b = "onnx.Conv"(%h, %wb, %none) : (tensor<1x4x4x4xf32>, tensor<4x4x1x1xf32>, none) -> tensor<1x4x4x4xf32>
    onnx.Yield %b : tensor<1x4x4x4xf32>
  }, {
    %a = "onnx.Conv"(%h, %wa, %none) : (tensor<1x4x4x4xf32>, tensor<4x4x1x1xf32>, none) -> tensor<1x4x4x4xf32>
    %s = "onnx.Add"(%a, %h) : (tensor<1x4x4x4xf32>, tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
    onnx.Yield %s : tensor<1x4x4x4xf32>
  }) : (tensor<i1>) -> tensor<1x4x4x4xf32>
  %z = "onnx.Conv"(%y, %w2, %none) : (tensor<1x4x4x4xf32>, tensor<2x4x1x1xf32>, none) -> tensor<1x2x4x4xf32>
  return %z : tensor<1x2x4x4xf32>
}

// -----

// A Loop body runs many times with carried state: SPA does not look inside, and
// the channels it touches say so.
// CHECK-LABEL: "groups"
// CHECK-SAME: "prunable":false,"reasons":["onnx.Loop{{.*}}has sub-graphs SPA does not analyse"
func.func @main_graph(%x: tensor<1x3x4x4xf32>, %trips: tensor<i64>) -> tensor<1x4x4x4xf32> {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %none = onnx.NoValue
  %h = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %y = "onnx.Loop"(%trips, %none, %h) ({
  ^bb0(%i: tensor<i64>, %c: tensor<i1>, %carried: tensor<1x4x4x4xf32>):
    %r = "onnx.Relu"(%carried) : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
    onnx.Yield %c, %r : tensor<i1>, tensor<1x4x4x4xf32>
  }) : (tensor<i64>, none, tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
  return %y : tensor<1x4x4x4xf32>
}

// -----

// An If whose result has no known rank: the branches' channels stop there, and
// the reason says so. A graph output is named in the reason that blocks it.
// CHECK-LABEL: "groups"
// CHECK-SAME: "prunable":false,"reasons":["onnx.If{{.*}}result 0 has no known rank"
// CHECK-SAME: "prunable":false,"reasons":["graph output 'logits'"]
func.func @main_graph(%x: tensor<1x3x4x4xf32>, %flag: tensor<i1>) -> (tensor<*xf32>, tensor<1x2x4x4xf32> {onnx.name = "logits"}) {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<2x3x1x1xf32>
  %none = onnx.NoValue
  %h = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %y = "onnx.If"(%flag) ({
    onnx.Yield %h : tensor<1x4x4x4xf32>
  }, {
    %r = "onnx.Relu"(%h) : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
    onnx.Yield %r : tensor<1x4x4x4xf32>
  }) : (tensor<i1>) -> tensor<*xf32>
  %z = "onnx.Conv"(%x, %w2, %none) : (tensor<1x3x4x4xf32>, tensor<2x3x1x1xf32>, none) -> tensor<1x2x4x4xf32>
  return %y, %z : tensor<*xf32>, tensor<1x2x4x4xf32>
}
