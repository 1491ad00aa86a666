//===- CouplingBuilder.h - what channel rules record ------------*- C++ -*-===//
//
// Channel coupling works on *atoms*: one atom per channel that some op
// creates (a Conv's output channel, a Gemm's output feature, ...). Every
// value whose channels SPA tracks carries one tracked axis and, per position
// along it, the atom it holds. Op rules (lib/OpRules/) read the atoms of
// their operands and record what ties them:
//   - the atoms of their results (the same ones, reordered, or fresh ones);
//   - `unite`: two atoms must be removed together (residual Add, depthwise);
//   - `member`: a constant slice that is removed with an atom (weights,
//     biases, norm parameters), per position along one of its axes;
//   - `block`: atoms that must not be removed, with the reason.
// Atoms united transitively form a channel; channels that share a value or a
// constant form a group (ChannelCoupling.h).
//
//===----------------------------------------------------------------------===//

#ifndef SPA_ANALYSIS_COUPLINGBUILDER_H
#define SPA_ANALYSIS_COUPLINGBUILDER_H

#include "spa/Dialect/ONNX/OpHelper.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Operation.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/EquivalenceClasses.h"
#include "llvm/ADT/SmallVector.h"

#include <memory>
#include <optional>
#include <string>

namespace spa {

using Atom = int64_t;
/// Marks a position that holds no atom (not part of any prunable channel).
constexpr Atom kNoAtom = -1;

/// What a constant slice is to its channel.
enum class MemberRole { Producer, Norm, Consumer };
llvm::StringRef stringifyMemberRole(MemberRole role);

/// The tracked channel axis of a value and the atom at each position.
struct TrackedAxis {
  int64_t axis;
  llvm::SmallVector<Atom> atoms;
};

/// A constant (see isSliceableConstant) tied to atoms along `axis`.
struct MemberSlice {
  mlir::Operation *constant;
  int64_t axis;
  MemberRole role;
  llvm::SmallVector<Atom> atoms; // one per position along `axis`
};

/// A computed operand of an elementwise op that varies along the channel axis
/// but carries no channels itself (rotary cos/sin computed from the positions,
/// a relative-position bias): pruning gathers its kept positions for that use.
struct GatheredOperand {
  mlir::Operation *user;
  unsigned operandIndex;
  int64_t axis;
  llvm::SmallVector<Atom> atoms; // one per position along `axis`
};

/// An op whose result changes when channels of its operand go even with zeroed weights
/// (a LayerNorm's statistics, a Softmax, a reduction's mean, a Shape reading the count):
/// `atoms` are the operand's, one per position along `axis`.
struct NonPreservingSite {
  mlir::Operation *op;
  int64_t axis;
  llvm::SmallVector<Atom> atoms;
};

/// How attention heads are pruned: the same head dims in every head
/// (`HeadDims`, the default), or whole heads (`WholeHeads`).
enum class HeadPruning { HeadDims, WholeHeads };

/// "dims" or "whole" (the passes' `heads` option); std::nullopt for anything else.
std::optional<HeadPruning> parseHeadPruning(llvm::StringRef text);

class CouplingBuilder {
public:
  explicit CouplingBuilder(HeadPruning heads = HeadPruning::HeadDims) : heads(heads) {}
  /// The granularity chosen for the channels a Reshape splits into heads.
  HeadPruning headPruning() const { return heads; }

  /// Atoms tracked on `value`, or nullptr when SPA does not track its channels.
  const TrackedAxis *lookup(mlir::Value value) const;
  void track(mlir::Value value, int64_t axis, llvm::ArrayRef<Atom> atoms);

  /// `count` new atoms, for the channels an op creates (a static channel count).
  llvm::SmallVector<Atom> fresh(int64_t count);
  void unite(Atom a, Atom b);
  void uniteAll(llvm::ArrayRef<Atom> a, llvm::ArrayRef<Atom> b);

  /// Forbids removing these atoms; `reason` is shown to users ("graph output").
  void block(llvm::ArrayRef<Atom> atoms, llvm::StringRef reason);
  /// Blocks whatever atoms `value` carries.
  void blockValue(mlir::Value value, llvm::StringRef reason);
  /// Removing these atoms changes the function even with zeroed weights
  /// (they feed a reduction over channels, e.g. LayerNorm or Softmax).
  void markNotFunctionPreserving(llvm::ArrayRef<Atom> atoms, llvm::StringRef reason);
  /// The same for the channels `op` reads from `input`, recording the op as a site.
  void markNotFunctionPreserving(mlir::Operation *op, const TrackedAxis &input, llvm::StringRef reason);
  /// At least one of these atoms must stay (a Slice reading only them would be empty).
  void keepOneOf(llvm::ArrayRef<Atom> atoms) { keepSets.emplace_back(atoms.begin(), atoms.end()); }

  /// Records that slices of `constantValue` along `axis` go with `atoms`.
  /// Returns false (and blocks the atoms) if the value is not a constant.
  bool member(mlir::Value constantValue, int64_t axis, MemberRole role, llvm::ArrayRef<Atom> atoms,
              llvm::StringRef what);
  /// `member` for an elementwise operand: a computed one is gathered for its use instead of blocked.
  void operandMember(mlir::OpOperand &use, int64_t axis, llvm::ArrayRef<Atom> atoms, llvm::StringRef what);

private:
  /// `member` for an Add/Sub/Mul/Div of constants: each operand that varies along `axis`.
  bool memberOfArithmetic(mlir::Operation *op, int64_t axis, MemberRole role, llvm::ArrayRef<Atom> atoms,
                          llvm::StringRef what);

public:

  // -- read by ChannelCoupling when it forms groups ---------------------------
  Atom leader(Atom atom) const;
  int64_t numAtoms() const { return nextAtom; }
  const llvm::DenseMap<mlir::Value, std::unique_ptr<TrackedAxis>> &trackedValues() const { return tracked; }
  llvm::ArrayRef<MemberSlice> members() const { return memberSlices; }
  llvm::ArrayRef<GatheredOperand> gatheredOperands() const { return gathered; }
  const llvm::DenseMap<Atom, llvm::SmallVector<std::string, 1>> &blockedAtoms() const { return blocked; }
  const llvm::DenseMap<Atom, std::string> &nonPreservingAtoms() const { return nonPreserving; }
  llvm::ArrayRef<NonPreservingSite> nonPreservingSites() const { return sites; }
  llvm::ArrayRef<llvm::SmallVector<Atom>> keepOneOfSets() const { return keepSets; }

private:
  HeadPruning heads;
  Atom nextAtom = 0;
  mutable llvm::EquivalenceClasses<Atom> classes;
  // Boxed: rules hold `lookup` pointers while they track more values, and a
  // DenseMap moves its entries when it grows.
  llvm::DenseMap<mlir::Value, std::unique_ptr<TrackedAxis>> tracked;
  llvm::SmallVector<MemberSlice> memberSlices;
  llvm::DenseMap<std::pair<mlir::Operation *, int64_t>, size_t> memberIndex;
  llvm::DenseMap<Atom, llvm::SmallVector<std::string, 1>> blocked;
  llvm::DenseMap<Atom, std::string> nonPreserving;
  llvm::SmallVector<llvm::SmallVector<Atom>> keepSets;
  llvm::SmallVector<GatheredOperand> gathered;
  llvm::SmallVector<NonPreservingSite> sites;
};

/// How an op can be a layout view of a constant: exporters feed ops a Transpose, a
/// Cast, an Unsqueeze, an Expand or a broadcasting Reshape of an initializer, or
/// per-channel arithmetic on one. This is the one table of those ops: the analysis
/// follows them to the initializer (throughLayoutViews, isConstantExpression) and
/// the prune pass re-derives their shapes from it (refreshLayoutViews); a `switch`
/// over the kinds in each place makes the compiler name any place a new kind misses.
enum class LayoutView {
  None,       ///< not a view
  Transpose,  ///< permutes the axes
  SameShape,  ///< Cast, Identity, Sqrt, Reciprocal, Neg, Abs, Exp: the input's shape, per element
  Reshape,    ///< a broadcasting or regrouping Reshape
  Expand,     ///< broadcasts to a target shape
  Unsqueeze,  ///< inserts unit axes
  Arithmetic, ///< Add, Sub, Mul or Div of two operands, broadcasting
};

/// The kind of layout view `op` is (LayoutView::None for any other op).
LayoutView layoutViewOf(mlir::Operation *op);

/// True for a sliceable constant or a Transpose/Cast/Unsqueeze view of one (a weight
/// an exporter left in another layout); members on views land on the source.
bool isConstantOrView(mlir::Value value);

} // namespace spa

#endif // SPA_ANALYSIS_COUPLINGBUILDER_H
