//===- ChannelCouplingPass.cpp - report the channel groups ----------------===//
//
// Runs the ChannelCoupling analysis and writes its groups as JSON; see
// Passes.td for the format. The IR is not changed.
//
//===----------------------------------------------------------------------===//

#include "spa/Analysis/ChannelCoupling.h"
#include "spa/Transforms/Passes.h"

#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/ToolOutputFile.h"

namespace spa {
#define GEN_PASS_DEF_SPACHANNELCOUPLING
#include "spa/Transforms/Passes.h.inc"
} // namespace spa

using namespace mlir;

namespace {

struct ChannelCouplingPass : public spa::impl::SPAChannelCouplingBase<ChannelCouplingPass> {
  using Base::Base;

  void runOnOperation() override {
    std::optional<spa::HeadPruning> headPruning = spa::parseHeadPruning(heads);
    if (!headPruning) {
      getOperation().emitError() << "spa-channel-coupling: heads must be 'dims' or 'whole', not '" << heads << "'";
      return signalPassFailure();
    }
    spa::ChannelCoupling coupling(getOperation(), *headPruning);
    for (const spa::ChannelGroup &group : coupling.getGroups()) {
      ++numGroups;
      if (group.prunable) {
        ++numPrunableGroups;
        numPrunableChannels += group.channels;
      }
    }
    if (attach) { // in memory, for the Python API: a string attribute on the module
      getOperation()->setAttr("spa.coupling_groups",
                              StringAttr::get(&getContext(), llvm::formatv("{0}", coupling.toJSON()).str()));
      return;
    }
    std::string error;
    std::unique_ptr<llvm::ToolOutputFile> file = openOutputFile(output, &error);
    if (!file) {
      getOperation().emitError() << "spa-channel-coupling: cannot write " << output << ": " << error;
      return signalPassFailure();
    }
    file->os() << llvm::formatv("{0}", coupling.toJSON()) << "\n"; // compact: one line per module
    file->keep();
    markAllAnalysesPreserved();
  }
};

} // namespace
