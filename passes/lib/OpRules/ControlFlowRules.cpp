//===- ControlFlowRules.cpp - If branches ----------------------------------===//
//
// An If runs one of two sub-graphs, each reading values from the enclosing
// graph and yielding the If's results. Its channels are those of an
// elementwise select: output i of the then-branch, output i of the else-branch
// and result i are the same channels. Loop and Scan bodies run many times
// with carried state and stay opaque (ChannelCoupling.cpp blocks them).
//
//===----------------------------------------------------------------------===//

#include "Rules.h"

#include "spa/Dialect/ONNX/ONNXDialect.h"

using namespace mlir;
using namespace spa;

namespace spa::rules {

void ifRule(Operation *op, CouplingBuilder &builder, llvm::function_ref<void(Block &)> analyseBody) {
  SmallVector<Operation *, 2> yields;
  for (Region &branch : op->getRegions()) {
    if (branch.empty())
      continue;
    analyseBody(branch.front());
    yields.push_back(branch.front().getTerminator());
  }
  std::string where = describe(op);
  for (auto [index, result] : llvm::enumerate(op->getResults())) {
    std::optional<int64_t> rank = rankOf(result);
    std::optional<TrackedAxis> first;
    bool conflict = false, untracked = false;
    for (Operation *yield : yields) {
      Value yielded = yield->getOperand(index);
      const TrackedAxis *tracked = builder.lookup(yielded);
      if (!tracked) {
        untracked = true;
        continue;
      }
      if (!rank) { // the If's result has no known rank: its channels cannot be followed past it
        builder.blockValue(yielded, where + " result " + std::to_string(index) + " has no known rank");
        continue;
      }
      if (rankOf(yielded) != rank || (first && (first->axis != tracked->axis ||
                                                first->atoms.size() != tracked->atoms.size()))) {
        conflict = true;
        continue;
      }
      if (first)
        builder.uniteAll(first->atoms, tracked->atoms);
      else
        first = *tracked;
    }
    if (conflict) {
      for (Operation *yield : yields)
        builder.blockValue(yield->getOperand(index), where + " branches yield different channel axes");
      continue;
    }
    if (!first)
      continue;
    if (untracked) // a branch yields a tensor of its own there (a constant, say): its width is fixed
      builder.block(first->atoms, where + " has a branch whose output " + std::to_string(index) +
                                      " does not carry these channels");
    builder.track(result, first->axis, first->atoms);
  }
}

} // namespace spa::rules
