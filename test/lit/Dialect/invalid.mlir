// RUN: spa-opt %s --split-input-file --verify-diagnostics
// Verifier errors of the onnx dialect.

func.func @conv_rejects_integer_input(%x: tensor<1x3x8x8xi32>, %w: tensor<4x3x3x3xf32>) {
  %none = onnx.NoValue
  // expected-error @+1 {{'onnx.Conv' op operand #0 must be tensor of bfloat16 type or 16-bit float or 32-bit float or 64-bit float values}}
  %y = "onnx.Conv"(%x, %w, %none) : (tensor<1x3x8x8xi32>, tensor<4x3x3x3xf32>, none) -> tensor<1x4x8x8xf32>
  return
}

// -----

func.func @required_input_cannot_be_none(%x: tensor<2xf32>) {
  %none = onnx.NoValue
  // expected-error @+1 {{'onnx.Add' op operand #1 must be tensor of}}
  %y = "onnx.Add"(%x, %none) : (tensor<2xf32>, none) -> tensor<2xf32>
  return
}

// -----

func.func @missing_required_attribute(%x: tensor<2xf32>) {
  // expected-error @+1 {{'onnx.Cast' op requires attribute 'to'}}
  %y = "onnx.Cast"(%x) : (tensor<2xf32>) -> tensor<2xi64>
  return
}

// -----

func.func @attribute_of_wrong_kind(%x: tensor<1x3x8x8xf32>, %w: tensor<4x3x3x3xf32>) {
  %none = onnx.NoValue
  // expected-error @+1 {{'onnx.Conv' op attribute 'group' failed to satisfy constraint: 64-bit signless integer attribute}}
  %y = "onnx.Conv"(%x, %w, %none) {group = "two"} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>, none) -> tensor<1x4x8x8xf32>
  return
}

// -----

func.func @initializer_type_must_match_value() {
  // expected-error @+2 {{'onnx.Initializer' op inferred type(s) 'tensor<2xf32>' are incompatible with return type(s) of operation 'tensor<3xf32>'}}
  // expected-error @+1 {{'onnx.Initializer' op failed to infer returned types}}
  %w = "onnx.Initializer"() {tensor_name = "w", value = dense<1.0> : tensor<2xf32>} : () -> tensor<3xf32>
  return
}

// -----

func.func @if_needs_two_regions(%c: tensor<i1>) {
  // expected-error @+1 {{'onnx.If' op expected 2 regions}}
  "onnx.If"(%c) ({
    onnx.Yield
  }) : (tensor<i1>) -> ()
  return
}

// -----

func.func @custom_graph_names_match_regions(%x: tensor<2xf32>) {
  // expected-error @+1 {{'onnx.Custom' op has 1 graph regions but names 0 graph attributes}}
  "onnx.Custom"(%x) ({
    onnx.Yield
  }) {domain = "acme", op_type = "Loop"} : (tensor<2xf32>) -> ()
  return
}
