//===- RecurrentRules.cpp - LSTM, GRU and RNN hidden units ----------------===//
//
// A recurrent op consumes its input features (W's last axis) and produces
// `hidden_size` units. Unit h sits at row g*H + h of W and R for every gate
// g (LSTM 4, GRU 3, RNN 1), at 2G positions of B (input and recurrent
// biases), at 3 of the LSTM peepholes P, on R's last axis (the units read
// back at the next step), and on the last axis of the initial states and of
// every output. Both directions of a bidirectional op share the units.
//
//===----------------------------------------------------------------------===//

#include "Rules.h"

#include "spa/Dialect/ONNX/ONNXDialect.h"

using namespace mlir;
using namespace spa;

namespace {

/// Operand positions shared by LSTM, GRU and RNN.
enum RecurrentOperand : unsigned { kX = 0, kW = 1, kR = 2, kB = 3, kInitialH = 5, kInitialC = 6, kPeepholes = 7 };

/// `atoms` repeated `times` times, one block after another.
SmallVector<Atom> repeated(ArrayRef<Atom> atoms, int64_t times) {
  SmallVector<Atom> result;
  for (int64_t copy = 0; copy < times; ++copy)
    result.append(atoms.begin(), atoms.end());
  return result;
}

bool present(Operation *op, unsigned index) {
  return index < op->getNumOperands() && !isa<NoneType>(op->getOperand(index).getType());
}

void recurrentRule(Operation *op, CouplingBuilder &builder, int64_t gates) {
  std::string where = describe(op);
  if (const TrackedAxis *input = builder.lookup(op->getOperand(kX))) {
    if (input->axis != 2)
      builder.block(input->atoms, where + " reads channels on its time or batch axis");
    else
      builder.member(op->getOperand(kW), 2, MemberRole::Consumer, input->atoms, where + " input weight");
  }
  std::optional<int64_t> hiddenSize = staticDim(op->getOperand(kR), 2);
  if (!hiddenSize)
    return;
  SmallVector<Atom> units = builder.fresh(*hiddenSize);
  for (unsigned state : {kInitialH, kInitialC})
    if (present(op, state) && builder.lookup(op->getOperand(state)))
      builder.blockValue(op->getOperand(state), where + " starts from a state computed from other channels");
  builder.member(op->getOperand(kW), 1, MemberRole::Producer, repeated(units, gates), where + " input weight");
  builder.member(op->getOperand(kR), 1, MemberRole::Producer, repeated(units, gates), where + " recurrent weight");
  builder.member(op->getOperand(kR), 2, MemberRole::Consumer, units, where + " recurrent weight");
  if (present(op, kB))
    builder.member(op->getOperand(kB), 1, MemberRole::Producer, repeated(units, 2 * gates), where + " bias");
  if (gates == 4 && present(op, kPeepholes))
    builder.member(op->getOperand(kPeepholes), 1, MemberRole::Producer, repeated(units, 3), where + " peephole");
  for (unsigned state : {kInitialH, kInitialC})
    if (present(op, state) && (state == kInitialH || gates == 4) && !builder.lookup(op->getOperand(state)))
      builder.operandMember(op->getOpOperand(state), 2, units, where + " initial state");
  // Y is (T, D, B, H) or, with layout 1, (B, T, D, H); the final states (D, B, H) or (B, D, H).
  for (Value result : op->getResults())
    if (!isa<NoneType>(result.getType()))
      if (std::optional<int64_t> rank = rankOf(result))
        builder.track(result, *rank - 1, units);
}

/// hidden_size counts the units: every output's last axis.
void recurrentRewrite(Operation *op, ChannelRewriter &rewriter) {
  if (rewriter.oldResultTypes(op).empty())
    return;
  for (Value result : op->getResults()) // Y may be absent; any output present counts the units
    if (auto type = dyn_cast<RankedTensorType>(result.getType())) {
      int64_t units = type.getShape().back();
      op->setAttr("hidden_size", IntegerAttr::get(IntegerType::get(op->getContext(), 64), units));
      return;
    }
}

/// A recurrent op whose weights stack `gates` blocks of hidden units.
OpRule recurrent(int gates) {
  return {[gates](Operation *op, CouplingBuilder &builder) { recurrentRule(op, builder, gates); }, recurrentRewrite};
}

} // namespace

void spa::rules::registerRecurrentRules(OpRuleTable &table) {
  table.add<onnx::LSTMOp>(recurrent(4));
  table.add<onnx::GRUOp>(recurrent(3));
  table.add<onnx::RNNOp>(recurrent(1));
}
