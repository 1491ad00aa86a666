// RUN: not spa-opt %s --spa-prune=plan=%S/Inputs/unprunable_plan.json 2>&1 | filecheck %s --check-prefix=UNPRUNABLE
// RUN: not spa-opt %s --spa-prune=plan=%S/Inputs/all_channels_plan.json 2>&1 | filecheck %s --check-prefix=EMPTY
// RUN: not spa-opt %s --spa-prune=plan=%S/Inputs/missing.json 2>&1 | filecheck %s --check-prefix=MISSING
// RUN: not spa-opt %s --spa-prune 2>&1 | filecheck %s --check-prefix=NOPLAN
// Bad plans are rejected with an error naming the problem; nothing is pruned.

// UNPRUNABLE: error: spa-prune: plan {{.*}}unprunable_plan.json: group 1 is not prunable: graph output
// EMPTY: error: spa-prune: plan {{.*}}: group 0 would lose all its 4 channels
// MISSING: error: spa-prune: plan {{.*}}missing.json: cannot be read
// NOPLAN: error: spa-prune needs a plan
func.func @main_graph(%x: tensor<1x3xf32>) -> tensor<1x2xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<3x4xf32>
  %w2 = onnx.Initializer "w2" = dense<1.0> : tensor<4x2xf32>
  %y = "onnx.MatMul"(%x, %w) : (tensor<1x3xf32>, tensor<3x4xf32>) -> tensor<1x4xf32>
  %z = "onnx.MatMul"(%y, %w2) : (tensor<1x4xf32>, tensor<4x2xf32>) -> tensor<1x2xf32>
  return %z : tensor<1x2xf32>
}
