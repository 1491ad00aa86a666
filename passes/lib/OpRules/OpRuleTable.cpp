//===- OpRuleTable.cpp - every op family's rules, keyed by op class -------===//

#include "Rules.h"

using namespace mlir;
using namespace spa;

void OpRuleTable::insert(TypeID id, const OpRule &rule) {
  bool inserted = rules.try_emplace(id, rule).second;
  assert(inserted && "an op has two rules");
  (void)inserted;
}

const OpRule *OpRuleTable::lookup(Operation *op) const {
  std::optional<RegisteredOperationName> registered = op->getRegisteredInfo();
  if (!registered)
    return nullptr;
  auto it = rules.find(registered->getTypeID());
  return it == rules.end() ? nullptr : &it->second;
}

const OpRuleTable &spa::getOpRules() {
  static const OpRuleTable table = [] {
    OpRuleTable rules;
    rules::registerConvRules(rules);
    rules::registerLinearRules(rules);
    rules::registerNormalizationRules(rules);
    rules::registerElementwiseRules(rules);
    rules::registerShapeRules(rules);
    rules::registerReductionRules(rules);
    rules::registerRecurrentRules(rules);
    return rules;
  }();
  return table;
}
