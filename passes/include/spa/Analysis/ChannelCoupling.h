//===- ChannelCoupling.h - groups of coupled channels -----------*- C++ -*-===//
//
// The channel-coupling analysis: walks a function of the onnx dialect once,
// applies each op's channel rule (CouplingBuilder.h) and forms groups of
// channels that must be pruned together. Linear in the size of the graph
// (plus the total number of channels, for the union-find).
//
//===----------------------------------------------------------------------===//

#ifndef SPA_ANALYSIS_CHANNELCOUPLING_H
#define SPA_ANALYSIS_CHANNELCOUPLING_H

#include "spa/Analysis/CouplingBuilder.h"

#include "llvm/Support/JSON.h"

#include <vector>

namespace spa {

/// A constant tied to a group: position p along `axis` belongs to group
/// channel `channelOfPosition[p]` (-1: not part of this group).
struct GroupMember {
  mlir::Operation *constant;
  std::string tensorName;
  int64_t axis;
  MemberRole role;
  llvm::SmallVector<int64_t> channelOfPosition;
};

/// A value whose tracked axis holds channels of a group.
struct GroupSpace {
  mlir::Value value;
  int64_t axis;
  llvm::SmallVector<int64_t> channelOfPosition;
};

/// A computed operand to gather along `axis` for one use (see GatheredOperand).
struct GroupGather {
  mlir::Operation *user;
  unsigned operandIndex;
  int64_t axis;
  llvm::SmallVector<int64_t> channelOfPosition;
};

/// An op that makes the group not function-preserving (see NonPreservingSite).
struct GroupSite {
  mlir::Operation *op;
  int64_t axis;
  llvm::SmallVector<int64_t> channelOfPosition;
};

struct ChannelGroup {
  unsigned id;
  int64_t channels;
  bool prunable;
  bool functionPreserving;
  std::vector<std::string> reasons; // why not prunable / not function-preserving
  std::vector<GroupMember> members;
  std::vector<GroupSpace> spaces;
  std::vector<llvm::SmallVector<int64_t>> keepOneOf; // channel sets of which one must stay
  std::vector<GroupGather> gathers;
  std::vector<GroupSite> nonPreservingSites;
};

class ChannelCoupling {
public:
  /// Analyses `root` (a func.func, or a module whose functions are analysed).
  explicit ChannelCoupling(mlir::Operation *root, HeadPruning heads = HeadPruning::HeadDims);

  llvm::ArrayRef<ChannelGroup> getGroups() const { return groups; }
  /// The groups as JSON: {"groups": [{id, channels, prunable, reasons,
  /// function_preserving, divisor, members: [{tensor, axis, role,
  /// channel_of_position}], gathered: [{value, user, axis, channel_of_position}],
  /// non_preserving: [{op, output, input, rank, axis, channel_of_position}]}]}.
  llvm::json::Value toJSON() const;

private:
  void formGroups(const CouplingBuilder &builder);
  /// Adds a keep-one set for every member and value that carries only some of its group's channels.
  void keepEveryAxisNonEmpty();
  std::vector<ChannelGroup> groups;
};

/// The ONNX name of a constant op (its tensor_name, or its output name).
std::string constantName(mlir::Operation *constant);

} // namespace spa

#endif // SPA_ANALYSIS_CHANNELCOUPLING_H
