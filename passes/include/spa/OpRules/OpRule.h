//===- OpRule.h - what SPA knows about one op, in one place ------*- C++ -*-===//
//
// An op's rule says how its channels couple (read by spa-channel-coupling) and
// how the op itself changes once channels are removed (applied by spa-prune).
// Both halves live together in one family file of lib/OpRules/ and are
// registered under the op's class, so a misspelt op does not compile:
//
//   table.add<onnx::ConvOp>({convRule, convRewrite});
//
// An op without a rule blocks every channel it reads, so an op SPA does not
// know never produces a broken model.
//
//===----------------------------------------------------------------------===//

#ifndef SPA_OPRULES_OPRULE_H
#define SPA_OPRULES_OPRULE_H

#include "spa/Analysis/CouplingBuilder.h"

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/Support/LogicalResult.h"
#include "mlir/Support/TypeID.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

#include <functional>

namespace spa {

/// The positions a pruned value keeps along its channel axis (of `size` before pruning).
struct KeptPositions {
  int64_t axis, size;
  llvm::SmallVector<int64_t> kept;
  /// How many kept positions lie before position `bound` (a bound renumbered).
  int64_t keptBefore(int64_t bound) const;
};

/// What spa-prune tells an op's rewrite, and the edits it may make.
class ChannelRewriter {
public:
  /// The kept positions of `value`, or null when the plan removes none of its channels.
  const KeptPositions *keptOf(mlir::Value value) const;
  /// The result types of `op` before pruning (empty when the plan changed none of them).
  llvm::ArrayRef<mlir::Type> oldResultTypes(mlir::Operation *op) const;
  /// Whether `op` needs its rewrite: a result or an operand lost channels.
  bool touches(mlir::Operation *op) const;

  /// Replaces integer operand `index` of `op` (a shape, sizes, bounds) by a new initializer.
  void replaceIntOperand(mlir::Operation *op, unsigned index, llvm::ArrayRef<int64_t> values);
  /// Rewrites the constant pieces of shape operand `index` (a Reshape or Expand target,
  /// Resize's sizes) where result 0's size changed from `oldType` (aligned to the end).
  void rewriteTargetCounts(mlir::Operation *op, mlir::RankedTensorType oldType, unsigned index);
  /// A name no other constant this pass makes has.
  std::string freshName(llvm::StringRef stem);

  // Filled by spa-prune before any rewrite runs.
  void setKept(mlir::Value value, KeptPositions kept) { kept_[value] = std::move(kept); }
  void recordOldResultTypes(mlir::Operation *op);
  void clear();

private:
  llvm::DenseMap<mlir::Value, KeptPositions> kept_;
  llvm::DenseMap<mlir::Operation *, llvm::SmallVector<mlir::Type>> oldTypes_;
  unsigned counter_ = 0;
};

/// Couples `op`'s channels: reads its operands' atoms from the builder and records its
/// results' atoms, ties and members.
using CouplingRule = std::function<void(mlir::Operation *op, CouplingBuilder &builder)>;
/// After the plan's channels are gone: fixes the attributes and shape operands of `op` that
/// count them (a depthwise conv's group, a Reshape target, a Slice's bounds).
using ChannelRewrite = std::function<void(mlir::Operation *op, ChannelRewriter &rewriter)>;
/// Before anything changes: refuses a plan `op` cannot take, with an error emitted on it.
using PlanCheck = std::function<mlir::LogicalResult(mlir::Operation *op, const ChannelRewriter &rewriter)>;

/// One op's rule; `rewrite` and `check` are optional.
struct OpRule {
  CouplingRule couple;
  ChannelRewrite rewrite = nullptr;
  PlanCheck check = nullptr;
};

/// The rules of every op SPA understands, keyed by op class.
class OpRuleTable {
public:
  /// Registers `rule` for each of `Ops` (a second registration of an op asserts).
  template <typename... Ops>
  OpRuleTable &add(const OpRule &rule) {
    (insert(mlir::TypeID::get<Ops>(), rule), ...);
    return *this;
  }
  /// The rule of `op`, or null.
  const OpRule *lookup(mlir::Operation *op) const;

private:
  void insert(mlir::TypeID id, const OpRule &rule);
  llvm::DenseMap<mlir::TypeID, OpRule> rules;
};

/// Every op family's rules (lib/OpRules/OpRuleTable.cpp lists the families).
const OpRuleTable &getOpRules();

namespace rules {
/// An If, whose branches hold ops of their own: `analyseBody` walks each branch's ops
/// (values captured from outside keep their channels); result i then carries the
/// channels both branches yield as their output i, united like an elementwise select.
void ifRule(mlir::Operation *op, CouplingBuilder &builder, llvm::function_ref<void(mlir::Block &)> analyseBody);
} // namespace rules

} // namespace spa

#endif // SPA_OPRULES_OPRULE_H
