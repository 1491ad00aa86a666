//===- Rules.h - helpers of the op families, one registration each -*- C++ -*-===//

#ifndef SPA_LIB_OPRULES_RULES_H
#define SPA_LIB_OPRULES_RULES_H

#include "spa/Dialect/ONNX/ONNXDialect.h"
#include "spa/OpRules/OpRule.h"

namespace spa::rules {

void registerConvRules(OpRuleTable &table);
void registerLinearRules(OpRuleTable &table);
void registerNormalizationRules(OpRuleTable &table);
void registerElementwiseRules(OpRuleTable &table);
void registerShapeRules(OpRuleTable &table);
void registerReductionRules(OpRuleTable &table);
void registerRecurrentRules(OpRuleTable &table);

/// Result `index` of `op` carries exactly the atoms of operand 0 on the same axis.
void passThrough(mlir::Operation *op, CouplingBuilder &builder);

/// Elementwise with numpy broadcasting over all operands: tracked operands
/// must agree and are united; constant operands spanning the channel axis
/// become members; every result carries the channels.
void broadcastElementwise(mlir::Operation *op, CouplingBuilder &builder);

/// Rewrites shape operand `index` of `op` to its result's new sizes (a Reshape or
/// Expand target, Resize's sizes).
void rewriteShapeOperand(mlir::Operation *op, ChannelRewriter &rewriter, unsigned index);

using spa::constantInts;

/// An integer attribute of `op`, or `fallback` when absent.
int64_t intAttr(mlir::Operation *op, llvm::StringRef name, int64_t fallback);

using spa::normaliseAxis;

} // namespace spa::rules

#endif // SPA_LIB_OPRULES_RULES_H
