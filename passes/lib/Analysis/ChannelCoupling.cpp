//===- ChannelCoupling.cpp - the channel-coupling analysis ----------------===//
//
// Algorithm: one forward walk over the function's ops in order. Each op's
// rule (lib/OpRules/) turns its operands' atoms into its results' atoms and
// records ties (union-find), constant members and blocks; an If's branches are
// walked the same way, in place. Ops without a rule, other ops with regions
// (Loop, Scan) and graph outputs block the atoms they touch. Then:
//   channel = union-find class of atoms;
//   group   = channels linked by appearing in one value or one constant
//             (a second union-find over channels);
// and each group is prunable iff none of its atoms is blocked.
//
//===----------------------------------------------------------------------===//

#include "spa/Analysis/ChannelCoupling.h"

#include "spa/OpRules/OpRule.h"

#include "spa/Dialect/ONNX/ONNXDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/MapVector.h"

#include <map>
#include <set>

using namespace mlir;
using namespace spa;

std::string spa::constantName(Operation *constant) {
  if (auto initializer = dyn_cast<onnx::InitializerOp>(constant))
    return initializer.getTensorName().str();
  if (auto names = constant->getAttrOfType<ArrayAttr>("onnx.output_names"))
    if (!names.empty())
      return cast<StringAttr>(names[0]).getValue().str();
  return "";
}

namespace {

/// Ops that hold no channels of their own.
bool isStructural(Operation *op) {
  return isa<onnx::InitializerOp, onnx::NoValueOp, onnx::ConstantOp, onnx::ConstantOfShapeOp>(op);
}

/// Every op of a graph body but its terminator: each op's rule, an If's branches
/// (analysed like the graph, see rules::ifRule), and blocks for the rest.
void analyseBody(Block &block, CouplingBuilder &builder) {
  const OpRuleTable &rules = getOpRules();
  for (Operation &op : block) {
    if (isStructural(&op) || op.hasTrait<OpTrait::IsTerminator>())
      continue;
    if (auto branches = dyn_cast<onnx::IfOp>(op)) {
      rules::ifRule(branches, builder, [&](Block &body) { analyseBody(body, builder); });
      continue;
    }
    if (op.getNumRegions() == 0) {
      if (const OpRule *rule = rules.lookup(&op)) {
        rule->couple(&op, builder);
        continue;
      }
    }
    std::string reason = isa<onnx::CustomOp>(op) ? "opaque op " + describe(&op)
                         : op.getNumRegions()  ? describe(&op) + " has sub-graphs SPA does not analyse"
                                               : "no channel rule for " + describe(&op);
    for (Value operand : op.getOperands())
      builder.blockValue(operand, reason);
    // Values captured by sub-graphs are used there too.
    op.walk([&](Operation *inner) {
      for (Value operand : inner->getOperands())
        if (!op.isAncestor(operand.getParentBlock()->getParentOp()))
          builder.blockValue(operand, reason);
    });
  }
}

/// The main graph: its body, then its outputs, whose shapes are the model's interface. The reason
/// names the output (the importer keeps its ONNX name as a result attribute of the function).
void analyseGraph(Block &block, CouplingBuilder &builder) {
  analyseBody(block, builder);
  if (block.empty() || !block.back().hasTrait<OpTrait::IsTerminator>())
    return;
  auto function = dyn_cast<func::FuncOp>(block.getParentOp());
  for (auto [index, operand] : llvm::enumerate(block.back().getOperands())) {
    StringAttr name = function ? function.getResultAttrOfType<StringAttr>(index, "onnx.name") : StringAttr();
    builder.blockValue(operand, name ? ("graph output '" + name.getValue() + "'").str() : "graph output");
  }
}

/// Union-find over channel indices (dense).
struct ChannelLinks {
  llvm::EquivalenceClasses<int64_t> classes;
  void link(ArrayRef<int64_t> channels) {
    for (int64_t c : channels)
      classes.insert(c);
    for (size_t i = 1; i < channels.size(); ++i)
      classes.unionSets(channels[0], channels[i]);
  }
};

} // namespace

ChannelCoupling::ChannelCoupling(Operation *root, HeadPruning heads) {
  CouplingBuilder builder(heads);
  root->walk([&](func::FuncOp function) {
    if (!function.getBody().empty())
      analyseGraph(function.getBody().front(), builder);
  });
  formGroups(builder);
}

namespace {

/// The second stage of the analysis: atom classes become channels, channels
/// that share a constant or a value become a group, and each group collects
/// its members, value spaces, gathered operands, blocks and keep-one sets.
class GroupFormer {
public:
  GroupFormer(const CouplingBuilder &builder, std::vector<ChannelGroup> &groups) : builder(builder), groups(groups) {}

  void run() {
    linkChannels();
    localIndex.assign(channelOfLeader.size(), -1);
    placeMembers();
    placeSites();
    markGroups();
    splitKeepOneSets();
  }

private:
  const CouplingBuilder &builder;
  std::vector<ChannelGroup> &groups;
  llvm::DenseMap<Atom, int64_t> channelOfLeader; // dense channel ids, in order of first appearance
  ChannelLinks links;
  std::vector<SmallVector<int64_t>> memberChannels, spaceChannels, gatherChannels, siteChannels;
  SmallVector<std::pair<Value, const TrackedAxis *>> spaces;
  llvm::MapVector<int64_t, unsigned> groupOfLeader; // groups in order of their first member
  SmallVector<int64_t> localIndex;                  // channel numbering inside each group

  int64_t channelOf(Atom atom) {
    if (atom == kNoAtom)
      return -1;
    auto [it, inserted] = channelOfLeader.try_emplace(builder.leader(atom), channelOfLeader.size());
    return it->second;
  }

  SmallVector<int64_t> toChannels(ArrayRef<Atom> atoms) {
    SmallVector<int64_t> channels;
    for (Atom atom : atoms)
      channels.push_back(channelOf(atom));
    return channels;
  }

  unsigned groupOf(int64_t channel) {
    auto [it, inserted] = groupOfLeader.insert({links.classes.getLeaderValue(channel), groups.size()});
    if (inserted)
      groups.push_back(ChannelGroup{static_cast<unsigned>(groups.size()), 0, true, true, {}, {}, {}, {}, {}, {}});
    return it->second;
  }

  /// The group of the first channel in `channels` (-1 entries are other groups'), or nullptr for none.
  ChannelGroup *groupOfFirst(ArrayRef<int64_t> channels) {
    auto first = llvm::find_if(channels, [](int64_t c) { return c >= 0; });
    return first == channels.end() ? nullptr : &groups[groupOf(*first)];
  }

  std::optional<unsigned> groupOfAtom(Atom atom) {
    auto it = channelOfLeader.find(builder.leader(atom));
    if (it == channelOfLeader.end())
      return std::nullopt;
    return groupOf(it->second);
  }

  SmallVector<int64_t> localize(ChannelGroup &group, ArrayRef<int64_t> channels) {
    SmallVector<int64_t> local;
    for (int64_t c : channels) {
      if (c >= 0 && localIndex[c] < 0)
        localIndex[c] = group.channels++;
      local.push_back(c < 0 ? -1 : localIndex[c]);
    }
    return local;
  }

  /// Channels that appear in one constant or one value belong to one group.
  void linkChannels() {
    for (const MemberSlice &member : builder.members()) {
      memberChannels.push_back(toChannels(member.atoms));
      SmallVector<int64_t> present(llvm::make_filter_range(memberChannels.back(), [](int64_t c) { return c >= 0; }));
      links.link(present);
    }
    for (auto &[value, tracked] : builder.trackedValues())
      spaces.push_back({value, tracked.get()});
    for (auto &[value, tracked] : spaces) {
      spaceChannels.push_back(toChannels(tracked->atoms));
      links.link(spaceChannels.back());
    }
    // Numbered here with the rest, so that localIndex (sized after this) covers every channel.
    for (const GatheredOperand &gathered : builder.gatheredOperands()) {
      gatherChannels.push_back(toChannels(gathered.atoms));
      SmallVector<int64_t> present(llvm::make_filter_range(gatherChannels.back(), [](int64_t c) { return c >= 0; }));
      links.link(present);
    }
    for (const NonPreservingSite &site : builder.nonPreservingSites())
      siteChannels.push_back(toChannels(site.atoms)); // a tracked value's atoms: numbered above
  }

  void placeMembers() {
    for (auto [member, channels] : llvm::zip_equal(builder.members(), memberChannels))
      if (ChannelGroup *group = groupOfFirst(channels))
        group->members.push_back(GroupMember{member.constant, constantName(member.constant), member.axis, member.role,
                                             localize(*group, channels)});
    for (auto [space, channels] : llvm::zip_equal(spaces, spaceChannels)) {
      if (channels.empty())
        continue;
      ChannelGroup &group = groups[groupOf(channels.front())];
      group.spaces.push_back(GroupSpace{space.first, space.second->axis, localize(group, channels)});
    }
    for (auto [gathered, channels] : llvm::zip_equal(builder.gatheredOperands(), gatherChannels)) {
      if (!channels.empty() && channels.front() >= 0) {
        ChannelGroup &group = groups[groupOf(channels.front())];
        group.gathers.push_back(
            GroupGather{gathered.user, gathered.operandIndex, gathered.axis, localize(group, channels)});
      }
    }
  }

  /// Each site, with the group channel of each position it reads.
  void placeSites() {
    for (auto [site, channels] : llvm::zip_equal(builder.nonPreservingSites(), siteChannels))
      if (ChannelGroup *group = groupOfFirst(channels))
        group->nonPreservingSites.push_back(GroupSite{site.op, site.axis, localize(*group, channels)});
  }

  /// Blocks and non-preserving marks, per group; blocks first in each group's reasons.
  void markGroups() {
    std::vector<std::set<std::string>> reasons(groups.size()), notes(groups.size());
    for (auto &[atom, atomReasons] : builder.blockedAtoms())
      if (std::optional<unsigned> group = groupOfAtom(atom)) {
        reasons.resize(groups.size());
        groups[*group].prunable = false;
        reasons[*group].insert(atomReasons.begin(), atomReasons.end());
      }
    for (auto &[atom, note] : builder.nonPreservingAtoms())
      if (std::optional<unsigned> group = groupOfAtom(atom)) {
        notes.resize(groups.size());
        groups[*group].functionPreserving = false;
        notes[*group].insert(note);
      }
    reasons.resize(groups.size());
    notes.resize(groups.size());
    for (ChannelGroup &group : groups) {
      group.reasons.assign(reasons[group.id].begin(), reasons[group.id].end());
      group.reasons.insert(group.reasons.end(), notes[group.id].begin(), notes[group.id].end());
    }
  }

  /// Keep-one sets, split by group (keeping one in each part is the safe reading).
  void splitKeepOneSets() {
    for (ArrayRef<Atom> set : builder.keepOneOfSets()) {
      std::map<unsigned, std::set<int64_t>> parts;
      for (Atom atom : set) {
        auto it = channelOfLeader.find(builder.leader(atom));
        if (it != channelOfLeader.end() && localIndex[it->second] >= 0)
          parts[groupOf(it->second)].insert(localIndex[it->second]);
      }
      for (auto &[group, channels] : parts) {
        SmallVector<int64_t> sorted(channels.begin(), channels.end());
        std::vector<SmallVector<int64_t>> &sets = groups[group].keepOneOf;
        if (static_cast<int64_t>(sorted.size()) < groups[group].channels && !llvm::is_contained(sets, sorted))
          sets.push_back(std::move(sorted)); // q and k slices of united channels give the same set once
      }
    }
  }
};

} // namespace

void ChannelCoupling::formGroups(const CouplingBuilder &builder) {
  GroupFormer(builder, groups).run();
  keepEveryAxisNonEmpty();
}

void ChannelCoupling::keepEveryAxisNonEmpty() {
  // A value or constant may carry only some of its group's channels (one input
  // of a Concat, a Split part, a conv before a channel Slice); removing all of
  // them would leave a zero-size axis, which onnxruntime rejects or crashes on.
  for (ChannelGroup &group : groups) {
    std::set<SmallVector<int64_t>> seen(group.keepOneOf.begin(), group.keepOneOf.end());
    auto keepOne = [&](ArrayRef<int64_t> channelOfPosition) {
      std::set<int64_t> present;
      for (int64_t channel : channelOfPosition)
        if (channel >= 0)
          present.insert(channel);
      SmallVector<int64_t> sorted(present.begin(), present.end());
      if (!sorted.empty() && static_cast<int64_t>(sorted.size()) < group.channels && seen.insert(sorted).second)
        group.keepOneOf.push_back(std::move(sorted));
    };
    for (const GroupMember &member : group.members)
      keepOne(member.channelOfPosition);
    for (const GroupSpace &space : group.spaces)
      keepOne(space.channelOfPosition);
  }
}

/// The ONNX name of a value: its producer's output name, or a placeholder.
static std::string valueName(Value value) {
  if (Operation *producer = value.getDefiningOp())
    if (auto names = producer->getAttrOfType<ArrayAttr>("onnx.output_names"))
      if (auto result = dyn_cast<OpResult>(value); result && result.getResultNumber() < names.size())
        if (auto name = dyn_cast<StringAttr>(names[result.getResultNumber()]))
          return name.getValue().str();
  return "<computed>";
}

static llvm::json::Array gathersToJSON(ArrayRef<GroupGather> gathers) {
  llvm::json::Array entries;
  for (const GroupGather &gather : gathers)
    entries.push_back(llvm::json::Object{{"value", valueName(gather.user->getOperand(gather.operandIndex))},
                                         {"user", describe(gather.user)},
                                         {"axis", gather.axis},
                                         {"channel_of_position", llvm::json::Array(gather.channelOfPosition)}});
  return entries;
}

static llvm::json::Array sitesToJSON(ArrayRef<GroupSite> sites) {
  llvm::json::Array entries;
  for (const GroupSite &site : sites)
    entries.push_back(llvm::json::Object{{"op", site.op->getName().getStringRef().drop_front(5).str()},
                                         {"output", valueName(site.op->getResult(0))},
                                         {"input", valueName(site.op->getOperand(0))},
                                         {"rank", rankOf(site.op->getOperand(0)).value_or(-1)},
                                         {"axis", site.axis},
                                         {"channel_of_position", llvm::json::Array(site.channelOfPosition)}});
  return entries;
}

llvm::json::Value ChannelCoupling::toJSON() const {
  llvm::json::Array jsonGroups;
  for (const ChannelGroup &group : groups) {
    llvm::json::Array members;
    for (const GroupMember &member : group.members)
      members.push_back(llvm::json::Object{{"tensor", member.tensorName},
                                           {"axis", member.axis},
                                           {"role", stringifyMemberRole(member.role)},
                                           {"channel_of_position", llvm::json::Array(member.channelOfPosition)}});
    llvm::json::Object object{{"id", group.id},
                              {"channels", group.channels},
                              {"prunable", group.prunable},
                              {"function_preserving", group.functionPreserving},
                              {"divisor", 1},
                              {"reasons", llvm::json::Array(group.reasons)},
                              {"members", std::move(members)}};
    if (!group.gathers.empty())
      object["gathered"] = gathersToJSON(group.gathers);
    if (!group.nonPreservingSites.empty())
      object["non_preserving"] = sitesToJSON(group.nonPreservingSites);
    if (!group.keepOneOf.empty()) {
      llvm::json::Array sets;
      for (const SmallVector<int64_t> &set : group.keepOneOf)
        sets.push_back(llvm::json::Array(set));
      object["keep_one_of"] = std::move(sets);
    }
    jsonGroups.push_back(std::move(object));
  }
  return llvm::json::Object{{"groups", std::move(jsonGroups)}};
}
