// RUN: spa-opt %s --split-input-file --spa-channel-coupling=output=- -o /dev/null | filecheck %s
// One case per coupling rule not covered in coupling.mlir: normalisation, transposed conv, split,
// pooling and squeeze, pad, resize, LRN, size and reductions. Keys print in sorted order.

// BatchNormalization: its scale, bias, mean and variance are per-channel members of the conv's group.
// CHECK-LABEL: "groups"
// CHECK-SAME: "function_preserving":true,"id":0
// CHECK-SAME: "role":"producer","tensor":"w1"
// CHECK-SAME: "role":"norm","tensor":"bn.scale"
// CHECK-SAME: "role":"norm","tensor":"bn.bias"
// CHECK-SAME: "role":"norm","tensor":"bn.mean"
// CHECK-SAME: "role":"norm","tensor":"bn.var"
// CHECK-SAME: "axis":1,"channel_of_position":[0,1,2,3],"role":"consumer","tensor":"w2"}],"prunable":true
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %s = onnx.Initializer "bn.scale" = dense<1.0> : tensor<4xf32>
  %b = onnx.Initializer "bn.bias" = dense<0.0> : tensor<4xf32>
  %m = onnx.Initializer "bn.mean" = dense<0.0> : tensor<4xf32>
  %v = onnx.Initializer "bn.var" = dense<1.0> : tensor<4xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<2x4x1x1xf32>
  %none = onnx.NoValue
  %y = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %n, %nm, %nv = "onnx.BatchNormalization"(%y, %s, %b, %m, %v) {epsilon = 1.0e-05 : f32} : (tensor<1x4x4x4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> (tensor<1x4x4x4xf32>, none, none)
  %z = "onnx.Conv"(%n, %w2, %none) : (tensor<1x4x4x4xf32>, tensor<2x4x1x1xf32>, none) -> tensor<1x2x4x4xf32>
  return %z : tensor<1x2x4x4xf32>
}

// -----

// ConvTranspose: its weight is [in, out, kH, kW], so axis 0 consumes the conv's channels and
// axis 1 (with the bias) produces a group of its own.
// CHECK-LABEL: "groups"
// CHECK-SAME: "id":0,"members":[{"axis":0,{{[^}]*}}"tensor":"w1"},{"axis":0,{{[^}]*}}"role":"consumer","tensor":"wt"}],"prunable":true
// CHECK-SAME: "channels":5,{{.*}}"id":1,"members":[{"axis":1,{{[^}]*}}"role":"producer","tensor":"wt"},{"axis":0,{{[^}]*}}"role":"producer","tensor":"bt"},{"axis":1,{{[^}]*}}"role":"consumer","tensor":"w2"}],"prunable":true
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> tensor<1x2x8x8xf32> {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %none = onnx.NoValue
  %y = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %wt = onnx.Initializer "wt" = dense<1.0> : tensor<4x5x2x2xf32>
  %bt = onnx.Initializer "bt" = dense<0.0> : tensor<5xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<2x5x1x1xf32>
  %t = "onnx.ConvTranspose"(%y, %wt, %bt) {strides = [2, 2]} : (tensor<1x4x4x4xf32>, tensor<4x5x2x2xf32>, tensor<5xf32>) -> tensor<1x5x8x8xf32>
  %z = "onnx.Conv"(%t, %w2, %none) : (tensor<1x5x8x8xf32>, tensor<2x5x1x1xf32>, none) -> tensor<1x2x8x8xf32>
  return %z : tensor<1x2x8x8xf32>
}

// -----

// Split on the channel axis: each output's consumer reads its own segment, and each segment
// must keep a channel.
// CHECK-LABEL: "groups"
// CHECK-SAME: "keep_one_of":[[0,1],[2,3,4]]
// CHECK-SAME: "axis":1,"channel_of_position":[0,1],"role":"consumer","tensor":"wa"
// CHECK-SAME: "axis":1,"channel_of_position":[2,3,4],"role":"consumer","tensor":"wb"}],"prunable":true
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<5x3x1x1xf32>
  %none = onnx.NoValue
  %y = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x4x4xf32>, tensor<5x3x1x1xf32>, none) -> tensor<1x5x4x4xf32>
  %sizes = onnx.Initializer "sizes" = dense<[2, 3]> : tensor<2xi64>
  %wa = onnx.Initializer "wa" = dense<1.0> : tensor<2x2x1x1xf32>
  %wb = onnx.Initializer "wb" = dense<1.0> : tensor<2x3x1x1xf32>
  %p:2 = "onnx.Split"(%y, %sizes) {axis = 1 : i64} : (tensor<1x5x4x4xf32>, tensor<2xi64>) -> (tensor<1x2x4x4xf32>, tensor<1x3x4x4xf32>)
  %a = "onnx.Conv"(%p#0, %wa, %none) : (tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32>, none) -> tensor<1x2x4x4xf32>
  %b = "onnx.Conv"(%p#1, %wb, %none) : (tensor<1x3x4x4xf32>, tensor<2x3x1x1xf32>, none) -> tensor<1x2x4x4xf32>
  return %a, %b : tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}

// -----

// MaxPool and GlobalAveragePool work per channel; Squeeze of the spatial axes keeps the channel
// axis, so the Gemm's columns are the conv's channels.
// CHECK-LABEL: "groups"
// CHECK-SAME: "id":0,"members":[{"axis":0,{{[^}]*}}"tensor":"w1"},{"axis":1,"channel_of_position":[0,1,2,3],"role":"consumer","tensor":"wf"}],"prunable":true,"reasons":[]
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> tensor<1x2xf32> {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %none = onnx.NoValue
  %y = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %axes = onnx.Initializer "axes" = dense<[2, 3]> : tensor<2xi64>
  %wf = onnx.Initializer "wf" = dense<1.0> : tensor<2x4xf32>
  %m, %mi = "onnx.MaxPool"(%y) {kernel_shape = [2, 2], strides = [2, 2]} : (tensor<1x4x4x4xf32>) -> (tensor<1x4x2x2xf32>, none)
  %g = "onnx.GlobalAveragePool"(%m) : (tensor<1x4x2x2xf32>) -> tensor<1x4x1x1xf32>
  %s = "onnx.Squeeze"(%g, %axes) : (tensor<1x4x1x1xf32>, tensor<2xi64>) -> tensor<1x4xf32>
  %z = "onnx.Gemm"(%s, %wf, %none) {transB = 1 : i64} : (tensor<1x4xf32>, tensor<2x4xf32>, none) -> tensor<1x2xf32>
  return %z : tensor<1x2xf32>
}

// -----

// Pad of the spatial axes only: channels pass through.
// CHECK-LABEL: "groups"
// CHECK-SAME: "id":0,"members":[{"axis":0,{{[^}]*}}"tensor":"w1"},{"axis":1,{{[^}]*}}"role":"consumer","tensor":"w2"}],"prunable":true
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> tensor<1x2x6x6xf32> {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %none = onnx.NoValue
  %y = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %pads = onnx.Initializer "pads" = dense<[0, 0, 1, 1, 0, 0, 1, 1]> : tensor<8xi64>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<2x4x1x1xf32>
  %p = "onnx.Pad"(%y, %pads, %none, %none) : (tensor<1x4x4x4xf32>, tensor<8xi64>, none, none) -> tensor<1x4x6x6xf32>
  %z = "onnx.Conv"(%p, %w2, %none) : (tensor<1x4x6x6xf32>, tensor<2x4x1x1xf32>, none) -> tensor<1x2x6x6xf32>
  return %z : tensor<1x2x6x6xf32>
}

// -----

// Pad that adds a channel: the conv's channels are blocked.
// CHECK-LABEL: "groups"
// CHECK-SAME: "id":0,"members":[{"axis":0,{{[^}]*}}"tensor":"w1"}],"prunable":false,"reasons":["onnx.Pad may pad the channel axis"]
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %none = onnx.NoValue
  %y = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %pads = onnx.Initializer "pads" = dense<[0, 1, 0, 0, 0, 0, 0, 0]> : tensor<8xi64>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<2x5x1x1xf32>
  %p = "onnx.Pad"(%y, %pads, %none, %none) : (tensor<1x4x4x4xf32>, tensor<8xi64>, none, none) -> tensor<1x5x4x4xf32>
  %z = "onnx.Conv"(%p, %w2, %none) : (tensor<1x5x4x4xf32>, tensor<2x5x1x1xf32>, none) -> tensor<1x2x4x4xf32>
  return %z : tensor<1x2x4x4xf32>
}

// -----

// Resize by scales keeps channels, and so do explicit sizes whose channel entry is the input's own
// count (the prune pass rewrites it); sizes or scales that resize the channel axis block.
// CHECK-LABEL: "groups"
// CHECK-SAME: "id":0,"members":[{"axis":0,{{[^}]*}}"tensor":"w1"},{"axis":1,{{[^}]*}}"role":"consumer","tensor":"wa"}],"prunable":true
// CHECK-SAME: "id":1,"members":[{"axis":0,{{[^}]*}}"tensor":"w0"},{"axis":1,{{[^}]*}}"role":"consumer","tensor":"wb"}],"prunable":true
// CHECK-SAME: "tensor":"w2"}],"prunable":false,"reasons":["onnx.Resize has explicit output sizes that change or hide the channel count"]
// CHECK-SAME: "tensor":"w3"}],"prunable":false,"reasons":["onnx.Resize resizes or crops the channel axis"]
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> (tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>, tensor<1x8x8x8xf32>, tensor<1x8x8x8xf32>) {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %w3 = onnx.Initializer "w3" = dense<1.0> : tensor<4x3x1x1xf32>
  %doubling = onnx.Initializer "doubling" = dense<[1.0, 2.0, 2.0, 2.0]> : tensor<4xf32>
  %none = onnx.NoValue
  %y = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %w0 = onnx.Initializer "w0" = dense<1.0> : tensor<4x3x1x1xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<4x3x1x1xf32>
  %scales = onnx.Initializer "scales" = dense<[1.0, 1.0, 2.0, 2.0]> : tensor<4xf32>
  %sizes = onnx.Initializer "sizes" = dense<[1, 4, 8, 8]> : tensor<4xi64>
  %wider = onnx.Initializer "wider" = dense<[1, 8, 8, 8]> : tensor<4xi64>
  %wa = onnx.Initializer "wa" = dense<1.0> : tensor<2x4x1x1xf32>
  %wb = onnx.Initializer "wb" = dense<1.0> : tensor<2x4x1x1xf32>
  %y0 = "onnx.Conv"(%x, %w0, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %y2 = "onnx.Conv"(%x, %w2, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %r = "onnx.Resize"(%y, %none, %scales, %none) {mode = "nearest"} : (tensor<1x4x4x4xf32>, none, tensor<4xf32>, none) -> tensor<1x4x8x8xf32>
  %q = "onnx.Resize"(%y0, %none, %none, %sizes) {mode = "nearest"} : (tensor<1x4x4x4xf32>, none, none, tensor<4xi64>) -> tensor<1x4x8x8xf32>
  %w = "onnx.Resize"(%y2, %none, %none, %wider) {mode = "nearest"} : (tensor<1x4x4x4xf32>, none, none, tensor<4xi64>) -> tensor<1x8x8x8xf32>
  %a = "onnx.Conv"(%r, %wa, %none) : (tensor<1x4x8x8xf32>, tensor<2x4x1x1xf32>, none) -> tensor<1x2x8x8xf32>
  %b = "onnx.Conv"(%q, %wb, %none) : (tensor<1x4x8x8xf32>, tensor<2x4x1x1xf32>, none) -> tensor<1x2x8x8xf32>
  %y3 = "onnx.Conv"(%x, %w3, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %d = "onnx.Resize"(%y3, %none, %doubling, %none) {mode = "nearest"} : (tensor<1x4x4x4xf32>, none, tensor<4xf32>, none) -> tensor<1x8x8x8xf32>
  return %a, %b, %w, %d : tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>, tensor<1x8x8x8xf32>, tensor<1x8x8x8xf32>
}

// -----

// LRN mixes neighbouring channels: prunable, but not function-preserving.
// CHECK-LABEL: "groups"
// CHECK-SAME: "function_preserving":false,"id":0,"members":[{"axis":0,{{[^}]*}}"tensor":"w1"},{"axis":1,{{[^}]*}}"tensor":"w2"}],"non_preserving":[{"axis":1,"channel_of_position":[0,1,2,3],{{[^}]*}}"op":"LRN",{{[^}]*}}"rank":4}],"prunable":true,"reasons":["onnx.LRN mixes neighbouring channels"]
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %none = onnx.NoValue
  %y = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<2x4x1x1xf32>
  %l = "onnx.LRN"(%y) {size = 3 : i64} : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
  %z = "onnx.Conv"(%l, %w2, %none) : (tensor<1x4x4x4xf32>, tensor<2x4x1x1xf32>, none) -> tensor<1x2x4x4xf32>
  return %z : tensor<1x2x4x4xf32>
}

// -----

// Size reads the channel count: its value changes with pruning, so not function-preserving.
// CHECK-LABEL: "groups"
// CHECK-SAME: "function_preserving":false,"id":0,{{.*}}"prunable":true,"reasons":["onnx.Size reads the channel count"]
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> (tensor<1x2x4x4xf32>, tensor<i64>) {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %none = onnx.NoValue
  %y = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<2x4x1x1xf32>
  %n = "onnx.Size"(%y) : (tensor<1x4x4x4xf32>) -> tensor<i64>
  %z = "onnx.Conv"(%y, %w2, %none) : (tensor<1x4x4x4xf32>, tensor<2x4x1x1xf32>, none) -> tensor<1x2x4x4xf32>
  return %z, %n : tensor<1x2x4x4xf32>, tensor<i64>
}

// -----

// Reduce*: over spatial axes (keepdims=0) the channels stay and feed the Gemm; over the channels
// they end, function-preserving for ReduceSum (zeros add nothing) but not for ReduceMean.
// CHECK-LABEL: "groups"
// CHECK-SAME: "function_preserving":true,"id":0,"members":[{"axis":0,{{[^}]*}}"tensor":"w1"},{"axis":1,{{[^}]*}}"role":"consumer","tensor":"wf"}],"prunable":true
// CHECK-SAME: "function_preserving":false,"id":1,"members":[{"axis":0,{{[^}]*}}"tensor":"wm"}],"non_preserving":[{"axis":1,{{[^}]*}}"op":"ReduceMean",{{[^}]*}}}],"prunable":true,"reasons":["onnx.ReduceMean reduces over the channels"]
// CHECK-SAME: "function_preserving":true,"id":2,"members":[{"axis":0,{{[^}]*}}"tensor":"ws"}],"prunable":true,"reasons":[]
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> (tensor<1x2xf32>, tensor<1x4x4xf32>, tensor<1x4x4xf32>) {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %none = onnx.NoValue
  %y = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %wm = onnx.Initializer "wm" = dense<1.0> : tensor<4x3x1x1xf32>
  %ws = onnx.Initializer "ws" = dense<1.0> : tensor<4x3x1x1xf32>
  %spatial = onnx.Initializer "spatial" = dense<[2, 3]> : tensor<2xi64>
  %channel = onnx.Initializer "channel" = dense<[1]> : tensor<1xi64>
  %wf = onnx.Initializer "wf" = dense<1.0> : tensor<2x4xf32>
  %ym = "onnx.Conv"(%x, %wm, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %ys = "onnx.Conv"(%x, %ws, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %r = "onnx.ReduceMean"(%y, %spatial) {keepdims = 0 : i64} : (tensor<1x4x4x4xf32>, tensor<2xi64>) -> tensor<1x4xf32>
  %z = "onnx.Gemm"(%r, %wf, %none) {transB = 1 : i64} : (tensor<1x4xf32>, tensor<2x4xf32>, none) -> tensor<1x2xf32>
  %mean = "onnx.ReduceMean"(%ym, %channel) {keepdims = 0 : i64} : (tensor<1x4x4x4xf32>, tensor<1xi64>) -> tensor<1x4x4xf32>
  %sum = "onnx.ReduceSum"(%ys, %channel) {keepdims = 0 : i64} : (tensor<1x4x4x4xf32>, tensor<1xi64>) -> tensor<1x4x4xf32>
  return %z, %mean, %sum : tensor<1x2xf32>, tensor<1x4x4xf32>, tensor<1x4x4xf32>
}

// -----

// optimum's GPT-2 Conv1D, x.view(-1, x.size(-1)): the target's last entry is Slice(Shape(x), -1)
// made a scalar and back. It reads the reshaped tensor's own size, so it follows the pruned width:
// prunable and function-preserving (the Shape only builds that target).
// CHECK-LABEL: "groups"
// CHECK-SAME: "channels":8,"divisor":1,"function_preserving":true,"id":0,"members":[{"axis":1,{{[^}]*}}"tensor":"w1"},{"axis":0,{{[^}]*}}"tensor":"w2"}],"prunable":true,"reasons":[]
func.func @main_graph(%x: tensor<2x3x4xf32>) -> tensor<6x2xf32> {
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x8xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<8x2xf32>
  %start = onnx.Initializer "start" = dense<[-1]> : tensor<1xi64>
  %end = onnx.Initializer "end" = dense<[9223372036854775807]> : tensor<1xi64>
  %zero = onnx.Initializer "zero" = dense<[0]> : tensor<1xi64>
  %rows = onnx.Initializer "rows" = dense<[-1]> : tensor<1xi64>
  %none = onnx.NoValue
  %h = "onnx.MatMul"(%x, %w1) : (tensor<2x3x4xf32>, tensor<4x8xf32>) -> tensor<2x3x8xf32>
  %shape = "onnx.Shape"(%h) : (tensor<2x3x8xf32>) -> tensor<3xi64>
  %last = "onnx.Slice"(%shape, %start, %end, %zero, %none) : (tensor<3xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, none) -> tensor<1xi64>
  %scalar = "onnx.Squeeze"(%last, %zero) : (tensor<1xi64>, tensor<1xi64>) -> tensor<i64>
  %entry = "onnx.Unsqueeze"(%scalar, %zero) : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64>
  %target = "onnx.Concat"(%rows, %entry) {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>) -> tensor<2xi64>
  %flat = "onnx.Reshape"(%h, %target) : (tensor<2x3x8xf32>, tensor<2xi64>) -> tensor<6x8xf32>
  %y = "onnx.MatMul"(%flat, %w2) : (tensor<6x8xf32>, tensor<8x2xf32>) -> tensor<6x2xf32>
  return %y : tensor<6x2xf32>
}

// -----

// An empty axes list reduces every axis (noop_with_empty_axes = 0): the channels end there, as with
// a reduction over them, and do not reach the graph output.
// CHECK-LABEL: "groups"
// CHECK-SAME: "function_preserving":false,"id":0,"members":[{"axis":0,{{[^}]*}}"tensor":"w"}],"non_preserving":[{"axis":1,{{[^}]*}}"op":"ReduceMean",{{[^}]*}}}],"prunable":true,"reasons":["onnx.ReduceMean reduces over the channels"]
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> tensor<1x1x1x1xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<4x3x1x1xf32>
  %all = onnx.Initializer "all" = dense<> : tensor<0xi64>
  %none = onnx.NoValue
  %y = "onnx.Conv"(%x, %w, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %m = "onnx.ReduceMean"(%y, %all) {keepdims = 1 : i64} : (tensor<1x4x4x4xf32>, tensor<0xi64>) -> tensor<1x1x1x1xf32>
  return %m : tensor<1x1x1x1xf32>
}

// -----

// GatherND picks slices by the leading axes its indices address: channels after them pass through to
// the consumer; channels on an addressed axis block.
// CHECK-LABEL: "groups"
// CHECK-SAME: "id":0,"members":[{"axis":0,{{[^}]*}}"tensor":"w1"},{"axis":1,{{[^}]*}}"role":"consumer","tensor":"wa"}],"prunable":true
// CHECK-SAME: "tensor":"w2"}],"prunable":false,"reasons":["onnx.GatherND gathers along the channel axis"]
func.func @main_graph(%x: tensor<1x3x4x4xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x4x4xf32>) {
  %none = onnx.NoValue
  %w1 = onnx.Initializer "w1" = dense<1.0> : tensor<4x3x1x1xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<4x3x1x1xf32>
  %wa = onnx.Initializer "wa" = dense<1.0> : tensor<2x4x1x1xf32>
  %first = onnx.Initializer "first" = dense<[[0]]> : tensor<1x1xi64>
  %pairs = onnx.Initializer "pairs" = dense<[[0, 1]]> : tensor<1x2xi64>
  %y = "onnx.Conv"(%x, %w1, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %z = "onnx.Conv"(%x, %w2, %none) : (tensor<1x3x4x4xf32>, tensor<4x3x1x1xf32>, none) -> tensor<1x4x4x4xf32>
  %g = "onnx.GatherND"(%y, %first) : (tensor<1x4x4x4xf32>, tensor<1x1xi64>) -> tensor<1x4x4x4xf32>
  %p = "onnx.GatherND"(%z, %pairs) : (tensor<1x4x4x4xf32>, tensor<1x2xi64>) -> tensor<1x4x4xf32>
  %a = "onnx.Conv"(%g, %wa, %none) : (tensor<1x4x4x4xf32>, tensor<2x4x1x1xf32>, none) -> tensor<1x2x4x4xf32>
  return %a, %p : tensor<1x2x4x4xf32>, tensor<1x4x4xf32>
}
