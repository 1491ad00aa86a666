//===- Passes.td - every SPA pass ------------------------------*- tablegen -*-===//

#ifndef SPA_TRANSFORMS_PASSES_TD
#define SPA_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def SPAChannelCoupling : Pass<"spa-channel-coupling", "mlir::ModuleOp"> {
  let summary = "Find the groups of coupled channels that must be pruned together";
  let description = [{
    Walks `func.func @main_graph` once and applies each onnx op's channel
    rule: Conv/Gemm/MatMul create channels and tie their weights' rows and
    columns to them, elementwise ops (residual adds) unite channels, Concat,
    Split, Flatten, Reshape and Transpose move them. Channels that share a
    value or a constant form a group. A group touching a graph output, an
    op without a rule or an opaque op is not prunable, and says why.

    The groups are written as JSON to `output` ("-" for stdout):

    ```json
    {"groups": [ {"id": 0, "channels": 64, "prunable": true, "function_preserving": true,
                  "divisor": 1, "reasons": [],
                  "members": [ {"tensor": "conv1.weight", "axis": 0, "role": "producer",
                                "channel_of_position": [0, 1, ...] }, ... ] } ] }
    ```
    `channel_of_position[p]` is the group channel of position `p` along
    `axis` of the constant (-1: not in this group). A group whose channels
    a Slice reads in part also has `"keep_one_of": [[channels], ...]`: sets
    of which a plan must keep at least one channel. With `attach=true` the
    JSON goes to the `spa.coupling_groups` module attribute instead. The IR
    is otherwise unchanged.
  }];
  let options = [
    Option<"output", "output", "std::string", /*default=*/"\"-\"",
           "File to write the groups to as JSON ('-' for stdout)">,
    Option<"attach", "attach", "bool", /*default=*/"false",
           "Attach the JSON to the module as the string attribute spa.coupling_groups instead">,
    Option<"heads", "heads", "std::string", /*default=*/"\"dims\"",
           "Reshapes that split channels into (groups, size), as attention heads: 'dims' (channels on the last factor, the same in every group) or 'whole' (whole groups)">,
  ];
  let statistics = [
    Statistic<"numGroups", "groups", "Number of channel groups">,
    Statistic<"numPrunableGroups", "prunable-groups", "Number of prunable channel groups">,
    Statistic<"numPrunableChannels", "prunable-channels", "Number of channels in prunable groups">,
  ];
  let dependentDialects = ["spa::onnx::ONNXDialect"];
}

def SPAPrune : Pass<"spa-prune", "mlir::ModuleOp"> {
  let summary = "Remove the channels a plan selects from every tensor of their group";
  let description = [{
    Reads a plan (JSON, `{"groups": [ {"id": 3, "removed": [0, 5]}, ... ] }`,
    group ids and channel indices as `spa-channel-coupling` reports them),
    recomputes the coupling, and for each group slices every constant it
    touches (weights, biases, norm parameters) and shrinks the type of every
    value carrying its channels. Attributes that count channels follow:
    depthwise Conv `group`, explicit Reshape target shapes, Split sizes.

    The plan comes from the `plan` file or, when the module has one, from its
    `spa.plan` string attribute (which the pass removes).

    A plan naming an unprunable group, an unknown channel, or every channel
    of a group is rejected with an error and the IR is left unchanged.
  }];
  let options = [
    Option<"plan", "plan", "std::string", /*default=*/"\"\"", "Plan file (JSON)">,
    Option<"heads", "heads", "std::string", /*default=*/"\"dims\"",
           "Attention heads as the plan's analysis saw them: 'dims' or 'whole'">,
  ];
  let statistics = [
    Statistic<"numRemovedChannels", "removed-channels", "Number of channels removed">,
    Statistic<"numSlicedConstants", "sliced-constants", "Number of constants sliced">,
  ];
  let dependentDialects = ["spa::onnx::ONNXDialect"];
}

#endif // SPA_TRANSFORMS_PASSES_TD
