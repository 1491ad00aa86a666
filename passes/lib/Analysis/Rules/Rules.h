//===- Rules.h - channel rules, one registration per op family --*- C++ -*-===//

#ifndef SPA_LIB_ANALYSIS_RULES_RULES_H
#define SPA_LIB_ANALYSIS_RULES_RULES_H

#include "spa/Analysis/CouplingBuilder.h"

namespace spa::rules {

void registerConvRules(ChannelRuleTable &table);
void registerLinearRules(ChannelRuleTable &table);
void registerNormalizationRules(ChannelRuleTable &table);
void registerElementwiseRules(ChannelRuleTable &table);
void registerShapeRules(ChannelRuleTable &table);
void registerReductionRules(ChannelRuleTable &table);
void registerRecurrentRules(ChannelRuleTable &table);

/// Result `index` of `op` carries exactly the atoms of operand 0 on the same axis.
void passThrough(mlir::Operation *op, CouplingBuilder &builder);

/// Elementwise with numpy broadcasting over all operands: tracked operands
/// must agree and are united; constant operands spanning the channel axis
/// become members; every result carries the channels.
void broadcastElementwise(mlir::Operation *op, CouplingBuilder &builder);

/// An If: `analyseBody` walks each branch's ops (values captured from outside
/// keep their channels); result i then carries the channels both branches
/// yield as their output i, which are united, like an elementwise select.
void ifRule(mlir::Operation *op, CouplingBuilder &builder, llvm::function_ref<void(mlir::Block &)> analyseBody);

using spa::constantInts;

/// An integer attribute of `op`, or `fallback` when absent.
int64_t intAttr(mlir::Operation *op, llvm::StringRef name, int64_t fallback);

using spa::normaliseAxis;

} // namespace spa::rules

#endif // SPA_LIB_ANALYSIS_RULES_RULES_H
