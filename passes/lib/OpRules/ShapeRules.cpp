//===- ShapeRules.cpp - ops that move channels between axes and tensors ---===//
//
// Concat along the channel axis lays its inputs' channels side by side
// (offset map); Split does the reverse. Flatten and flattening Reshapes turn
// each channel into a contiguous block of the merged axis (block map).
// Transpose, Squeeze, Unsqueeze and Expand move the channel axis. Shape and
// Size only read shapes, which stay consistent after pruning.
//
//===----------------------------------------------------------------------===//

#include "Rules.h"
#include "llvm/ADT/DenseSet.h"

#include "spa/Dialect/ONNX/ONNXDialect.h"

#include "mlir/IR/BuiltinTypes.h"

#include <algorithm>
#include <numeric>

using namespace mlir;
using namespace spa;

namespace {

/// Each atom repeated `inner` times, the whole list `outer` times.
SmallVector<Atom> blockMap(ArrayRef<Atom> atoms, int64_t outer, int64_t inner) {
  SmallVector<Atom> positions;
  positions.reserve(outer * atoms.size() * inner);
  for (int64_t o = 0; o < outer; ++o)
    for (Atom atom : atoms)
      positions.append(inner, atom);
  return positions;
}

void concatRule(Operation *op, CouplingBuilder &builder) {
  auto concat = cast<onnx::ConcatOp>(op);
  std::optional<int64_t> rank = rankOf(concat.getConcatResult());
  std::string where = describe(op);
  if (!rank)
    return rules::broadcastElementwise(op, builder);
  int64_t axis = rules::normaliseAxis(static_cast<int64_t>(concat.getAxis()), *rank);
  bool alongChannels = llvm::any_of(concat.getInputs(), [&](Value input) {
    const TrackedAxis *tracked = builder.lookup(input);
    return tracked && tracked->axis == axis;
  });
  if (!alongChannels)
    return rules::broadcastElementwise(op, builder);
  SmallVector<Atom> atoms;
  for (Value input : concat.getInputs()) {
    const TrackedAxis *tracked = builder.lookup(input);
    if (tracked && tracked->axis == axis) {
      atoms.append(tracked->atoms);
      continue;
    }
    if (tracked)
      builder.block(tracked->atoms, where + " joins channels of different axes");
    std::optional<int64_t> size = staticDim(input, axis);
    if (!size) {
      builder.block(atoms, where + " has an input of unknown size");
      for (Value other : concat.getInputs())
        builder.blockValue(other, where + " has an input of unknown size");
      return;
    }
    SmallVector<Atom> fixed = builder.fresh(*size); // untracked input: channels that stay
    builder.block(fixed, where + " input is not prunable");
    atoms.append(fixed);
  }
  builder.track(concat.getConcatResult(), axis, atoms);
}

void splitRule(Operation *op, CouplingBuilder &builder) {
  auto split = cast<onnx::SplitOp>(op);
  const TrackedAxis *input = builder.lookup(split.getInput());
  std::optional<int64_t> rank = rankOf(split.getInput());
  if (!input || !rank)
    return;
  int64_t axis = rules::normaliseAxis(static_cast<int64_t>(split.getAxis()), *rank);
  if (input->axis != axis) {
    for (Value result : split.getOutputs())
      builder.track(result, input->axis, input->atoms);
    return;
  }
  if (!constantElements(split.getSplit())) {
    builder.block(input->atoms, describe(op) + " splits the channels without explicit sizes");
    return;
  }
  int64_t offset = 0;
  for (Value result : split.getOutputs()) {
    std::optional<int64_t> size = staticDim(result, axis);
    if (!size || offset + *size > static_cast<int64_t>(input->atoms.size())) {
      builder.block(input->atoms, describe(op) + " has outputs of unknown size");
      return;
    }
    builder.track(result, axis, ArrayRef<Atom>(input->atoms).slice(offset, *size));
    offset += *size;
  }
}

/// Tracks channels through a reshape whose output axis `outAxis` merges the
/// input channel axis with the static input axes up to `last` (exclusive).
void trackMerged(Value result, int64_t outAxis, const TrackedAxis &input, ArrayRef<int64_t> in, int64_t first,
                 int64_t last, CouplingBuilder &builder) {
  int64_t outer = product(in.slice(first, input.axis - first));
  int64_t inner = product(in.slice(input.axis + 1, last - input.axis - 1));
  builder.track(result, outAxis, blockMap(input.atoms, outer, inner));
}

/// Whether `piece` (a 1-element shape piece) is dim `axis` of `data`, read at run time.
bool isDimOf(Value piece, Value data, int64_t axis) { return dimRead(piece) == std::make_pair(data, axis); }

/// Fills in the `-1` entry of a Reshape target that shape inference left dynamic
/// because the batch is dynamic: (N, 8, 8, 8) -> [N, -1] (a flatten whose N is
/// read from the data) gives 512. `out` is indexed like `outPosition`.
void inferInferredDim(Operation *op, ArrayRef<ShapePiece> pieces, ArrayRef<int64_t> in,
                      SmallVector<int64_t> &out, ArrayRef<int64_t> outPosition) {
  auto entry = [&](int64_t position) -> std::pair<const ShapePiece *, int64_t> {
    for (const ShapePiece &piece : pieces) {
      if (position < piece.size)
        return {&piece, position};
      position -= piece.size;
    }
    return {nullptr, 0};
  };
  if (in.empty() || out.empty() || !ShapedType::isDynamic(in[0]) || !ShapedType::isDynamic(out[0]) ||
      llvm::any_of(in.drop_front(), ShapedType::isDynamic) || outPosition.front() != 0)
    return;
  const ShapePiece *batchPiece = entry(0).first;
  if (!batchPiece || batchPiece->size != 1 || !isDimOf(batchPiece->value, op->getOperand(0), 0))
    return;
  int64_t unknown = -1, known = 1;
  for (int64_t i = 1, e = out.size(); i < e; ++i) {
    if (!ShapedType::isDynamic(out[i])) {
      known *= out[i];
      continue;
    }
    auto [piece, offset] = entry(outPosition[i]);
    if (unknown >= 0 || !piece || !piece->constant || (*piece->constant)[offset] != -1)
      return;
    unknown = i;
  }
  int64_t total = product(in.drop_front());
  if (unknown >= 0 && known > 0 && total % known == 0)
    out[unknown] = total / known;
}

/// Static leading axes holding the same elements on both sides (GPT-2's
/// (B, T, H, D) -> (B*T, H*D)) become one axis on each side, so the axes from
/// the channel axis on are matched after one common dim.
void collapseLeadingBlock(SmallVector<int64_t> &in, SmallVector<int64_t> &out, SmallVector<int64_t> &outPosition,
                          int64_t &axis) {
  int64_t inProduct = 1, outProduct = 1, i = 0, j = 0, alignedIn = 0, alignedOut = 0;
  int64_t outRank = out.size();
  while (true) {
    if (i > 0 && j > 0 && inProduct == outProduct)
      std::tie(alignedIn, alignedOut) = std::make_pair(i, j);
    if (inProduct <= outProduct && i < axis && !ShapedType::isDynamic(in[i]))
      inProduct *= in[i++];
    else if (outProduct < inProduct && j < outRank && !ShapedType::isDynamic(out[j]))
      outProduct *= out[j++];
    else
      break;
  }
  if (alignedIn == alignedOut) // nothing, or the same number of axes: the common prefix handles it
    return;
  int64_t block = product(ArrayRef<int64_t>(in).take_front(alignedIn));
  in.erase(in.begin(), in.begin() + alignedIn - 1);
  in.front() = block;
  out.erase(out.begin(), out.begin() + alignedOut - 1);
  out.front() = block;
  outPosition.erase(outPosition.begin(), outPosition.begin() + alignedOut - 1);
  axis -= alignedIn - 1;
}

/// A Reshape of a tracked value, with its static unit axes squeezed out on
/// both sides ((L, 1, C) -> (L, H, D) in torch's attention): `in` and `out`
/// are the remaining dims, `axis` the channel axis in `in`, `outPosition` the
/// real output axis of each entry of `out`. Each case below either tracks
/// the channels on the result, blocks them, or declines (returns false).
struct ReshapeMatch {
  Operation *op;
  CouplingBuilder &builder;
  const TrackedAxis *input;
  SmallVector<ShapePiece> pieces;
  SmallVector<int64_t> in, out, outPosition;
  int64_t axis = -1;
  std::string where;

  int64_t inRank() const { return in.size(); }
  int64_t outRank() const { return out.size(); }

  /// spa-prune rewrites the target entry of the axis whose size changes: it
  /// must be in a constant piece (Shape-derived pieces elsewhere are fine), or
  /// be read from the shape of a tensor carrying the same channels on that
  /// axis (torch's GroupNorm reshapes back to its input's shape), which
  /// follows by itself. Otherwise the channels are blocked.
  bool targetFollows(int64_t squeezedAxis, ArrayRef<Atom> atoms) {
    int64_t position = outPosition[squeezedAxis];
    for (const ShapePiece &piece : pieces) {
      if (position >= piece.size) {
        position -= piece.size;
        continue;
      }
      if (piece.constant)
        return true;
      const TrackedAxis *shaped = piece.shapeOf ? builder.lookup(piece.shapeOf) : nullptr;
      if (shaped && shaped->axis == position + piece.shapeOffset && shaped->atoms.size() == atoms.size()) {
        builder.uniteAll(shaped->atoms, atoms); // the output's size is x's: one group
        return true;
      }
      break;
    }
    builder.block(input->atoms, where + " has a computed target size for the channels");
    return false;
  }

  void trackOn(int64_t squeezedAxis, ArrayRef<Atom> atoms) {
    builder.track(op->getResult(0), outPosition[squeezedAxis], atoms);
  }

  /// The channels `atoms` live on output entry `squeezedAxis` (if the target follows them).
  bool accept(int64_t squeezedAxis, ArrayRef<Atom> atoms) {
    if (targetFollows(squeezedAxis, atoms))
      trackOn(squeezedAxis, atoms);
    return true;
  }

  /// The channel axis and every axis after it are static and equal on both
  /// sides: the element count is kept, so only the axes before the channels
  /// regroup, whatever their sizes (GPT-2's Conv1D flattens (B, T, C) to
  /// (B*T, C) and back with a dynamic batch and length).
  bool keepsSuffix() {
    int64_t suffixAxis = outRank() - (inRank() - axis);
    ArrayRef<int64_t> suffix = ArrayRef<int64_t>(in).drop_front(axis);
    if (suffixAxis < 0 || llvm::any_of(suffix, ShapedType::isDynamic) ||
        suffix != ArrayRef<int64_t>(out).drop_front(suffixAxis))
      return false;
    return accept(suffixAxis, input->atoms);
  }

  /// Merge: in[common..last) -> out[common], the channel axis among them
  /// (flattening, or heads x head_dim back to hidden) -> block map.
  bool merges(int64_t common) {
    int64_t merged = 1, last = common;
    while (last < inRank() && !ShapedType::isDynamic(in[last]) && merged < out[common])
      merged *= in[last++];
    if (merged != out[common] || last <= axis)
      return false;
    int64_t outer = product(ArrayRef<int64_t>(in).slice(common, axis - common));
    int64_t inner = product(ArrayRef<int64_t>(in).slice(axis + 1, last - axis - 1));
    return accept(common, blockMap(input->atoms, outer, inner));
  }

  /// Unflatten: the positions already repeat each channel over the factors
  /// after one of them (channels flattened with their spatial dims, as
  /// torch's GroupNorm(1, C) does) -> the channels are that factor.
  bool unflattens(int64_t lastFactor) {
    for (int64_t factor = axis; factor < lastFactor; ++factor) {
      int64_t inner = product(ArrayRef<int64_t>(out).slice(factor + 1, lastFactor - factor));
      SmallVector<Atom> atoms;
      for (int64_t channel = 0; channel < out[factor]; ++channel)
        atoms.push_back(input->atoms[channel * inner]);
      bool repeats = true;
      for (int64_t position = 0; position < in[axis] && repeats; ++position)
        repeats = input->atoms[position] == atoms[(position / inner) % out[factor]];
      if (repeats)
        return accept(factor, atoms);
    }
    return false;
  }

  /// Whole heads: channels live on the factor before the last (the heads);
  /// each head's dims (the last factor) and its copies (q, k, v) are one
  /// channel. Only a projection's fresh positions are heads x dims; positions
  /// that already repeat channels are heads in a batch (GQA's repeated keys
  /// reshaped (B*H, ...) -> (B, H, ...)), which the copies case handles.
  bool splitsWholeHeads(int64_t lastFactor) {
    bool fresh = llvm::DenseSet<Atom>(input->atoms.begin(), input->atoms.end()).size() == input->atoms.size();
    if (builder.headPruning() != HeadPruning::WholeHeads || !fresh)
      return false;
    int64_t dims = out[lastFactor], heads = out[lastFactor - 1];
    SmallVector<Atom> atoms;
    for (int64_t head = 0; head < heads; ++head)
      atoms.push_back(input->atoms[head * dims]);
    if (!targetFollows(lastFactor - 1, atoms))
      return true;
    for (int64_t position = 0; position < in[axis]; ++position)
      builder.unite(atoms[(position / dims) % heads], input->atoms[position]);
    trackOn(lastFactor - 1, atoms);
    return true;
  }

  /// Split: in[axis] -> out[axis] x ... x out[last] (prefix and suffix
  /// unchanged); channels live on the last factor and the others are copies
  /// whose atoms are united (the same head dims in every head and in q, k and
  /// v; channel shuffle keeps the same channels per group).
  bool splits(int64_t common) {
    int64_t factors = 1, lastFactor = axis;
    while (common == axis && lastFactor < outRank() && !ShapedType::isDynamic(out[lastFactor]) && factors < in[axis])
      factors *= out[lastFactor++];
    --lastFactor;
    if (common != axis || factors != in[axis] || lastFactor <= axis ||
        ArrayRef<int64_t>(in).drop_front(axis + 1) != ArrayRef<int64_t>(out).drop_front(lastFactor + 1))
      return false;
    if (unflattens(lastFactor) || splitsWholeHeads(lastFactor))
      return true;
    int64_t size = out[lastFactor], copies = in[axis] / size;
    SmallVector<Atom> atoms(input->atoms.begin(), input->atoms.begin() + size);
    if (!targetFollows(lastFactor, atoms))
      return true;
    for (int64_t copy = 1; copy < copies; ++copy)
      builder.uniteAll(atoms, ArrayRef<Atom>(input->atoms).slice(copy * size, size));
    trackOn(lastFactor, atoms);
    return true;
  }

  /// Regroup: other axes change (windows of a spatial grid) while the channel
  /// axis and everything after it stay. The common prefix (a dynamic batch
  /// included) is the same on both sides; the static dims between it and the
  /// channel axis must hold the same elements.
  bool regroups(int64_t common) {
    int64_t outAxis = outRank() - (inRank() - axis);
    if (outAxis < common || ArrayRef<int64_t>(in).drop_front(axis) != ArrayRef<int64_t>(out).drop_front(outAxis))
      return false;
    auto staticProduct = [](ArrayRef<int64_t> dims) -> std::optional<int64_t> {
      if (llvm::any_of(dims, ShapedType::isDynamic))
        return std::nullopt;
      return product(dims);
    };
    std::optional<int64_t> before = staticProduct(ArrayRef<int64_t>(in).slice(common, axis - common));
    std::optional<int64_t> after = staticProduct(ArrayRef<int64_t>(out).slice(common, outAxis - common));
    return before && before == after && accept(outAxis, input->atoms);
  }
};

/// Reshape, around the channel axis: a static suffix kept, a merge, a split
/// or a regroup (see ReshapeMatch); anything else is blocked.
void reshapeRule(Operation *op, CouplingBuilder &builder) {
  Value source = op->getOperand(0), result = op->getResult(0);
  const TrackedAxis *input = builder.lookup(source);
  auto inType = dyn_cast<RankedTensorType>(source.getType());
  auto outType = dyn_cast<RankedTensorType>(result.getType());
  if (!input)
    return;
  std::string where = describe(op);
  if (!inType || !outType) {
    builder.block(input->atoms, where + " reshapes a tensor of unknown rank");
    return;
  }
  std::optional<SmallVector<ShapePiece>> pieces = shapePieces(op->getOperand(1));
  if (!pieces) {
    builder.block(input->atoms, where + " has a computed target shape");
    return;
  }
  ReshapeMatch match{op, builder, input, *pieces, {}, {}, {}, -1, where};
  for (auto [i, size] : llvm::enumerate(inType.getShape())) {
    if (static_cast<int64_t>(i) == input->axis)
      match.axis = match.in.size();
    if (size != 1 || static_cast<int64_t>(i) == input->axis)
      match.in.push_back(size);
  }
  for (auto [i, size] : llvm::enumerate(outType.getShape()))
    if (size != 1) {
      match.out.push_back(size);
      match.outPosition.push_back(i);
    }
  inferInferredDim(op, match.pieces, match.in, match.out, match.outPosition);
  collapseLeadingBlock(match.in, match.out, match.outPosition, match.axis);
  if (match.keepsSuffix())
    return;
  // Longest common prefix of equal dims (dynamic ones included), up to the channel axis.
  int64_t common = 0;
  while (common < match.axis && common < match.outRank() && match.in[common] == match.out[common])
    ++common;
  if (common == match.outRank() || ShapedType::isDynamic(match.out[common]) ||
      ShapedType::isDynamic(match.in[match.axis])) {
    builder.block(input->atoms, where + " reshapes the channel axis dynamically");
    return;
  }
  if (!match.merges(common) && !match.splits(common) && !match.regroups(common))
    builder.block(input->atoms, where + " reshapes the channel axis in a way SPA does not follow");
}

/// Flatten(axis=k): [d0..dk-1, dk..] -> [prod(d0..dk-1), prod(dk..)].
void flattenRule(Operation *op, CouplingBuilder &builder) {
  Value source = op->getOperand(0), result = op->getResult(0);
  const TrackedAxis *input = builder.lookup(source);
  auto inType = dyn_cast<RankedTensorType>(source.getType());
  if (!input)
    return;
  std::string where = describe(op);
  if (!inType) {
    builder.block(input->atoms, where + " flattens a tensor of unknown rank");
    return;
  }
  ArrayRef<int64_t> in = inType.getShape();
  int64_t rank = in.size();
  int64_t split = rules::normaliseAxis(rules::intAttr(op, "axis", 1), rank);
  bool channelsFirst = input->axis < split;
  int64_t first = channelsFirst ? 0 : split, last = channelsFirst ? split : rank;
  // The dims merged with the channel axis must be static (they size its blocks).
  for (int64_t i = first; i < last; ++i)
    if (i != input->axis && ShapedType::isDynamic(in[i])) {
      builder.block(input->atoms, where + " flattens channels with dynamic dims");
      return;
    }
  trackMerged(result, channelsFirst ? 0 : 1, *input, in, first, last, builder);
}

void transposeRule(Operation *op, CouplingBuilder &builder) {
  auto transpose = cast<onnx::TransposeOp>(op);
  const TrackedAxis *input = builder.lookup(transpose.getData());
  std::optional<int64_t> rank = rankOf(transpose.getData());
  if (!input || !rank)
    return;
  for (auto [outAxis, inAxis] : llvm::enumerate(transposePerm(transpose, *rank)))
    if (inAxis == input->axis)
      builder.track(transpose.getTransposed(), outAxis, input->atoms);
}

/// Squeeze/Unsqueeze/Expand: the channel axis moves by the axes removed or added before it.
void axisShiftRule(Operation *op, CouplingBuilder &builder) {
  const TrackedAxis *input = builder.lookup(op->getOperand(0));
  std::optional<int64_t> inRank = rankOf(op->getOperand(0)), outRank = rankOf(op->getResult(0));
  if (!input || !inRank || !outRank)
    return;
  int64_t axis = input->axis;
  if (isa<onnx::ExpandOp>(op)) {
    builder.track(op->getResult(0), axis + (*outRank - *inRank), input->atoms);
    return;
  }
  std::optional<SmallVector<int64_t>> axes =
      op->getNumOperands() > 1 ? rules::constantInts(op->getOperand(1)) : std::nullopt;
  if (!axes) {
    builder.block(input->atoms, describe(op) + " has axes that are not constant");
    return;
  }
  int64_t shifted = axis;
  if (isa<onnx::SqueezeOp>(op)) {
    for (int64_t a : *axes) {
      a = rules::normaliseAxis(a, *inRank);
      if (a == axis) {
        builder.block(input->atoms, describe(op) + " squeezes the channel axis");
        return;
      }
      shifted -= a < axis;
    }
  } else { // Unsqueeze: axes index the output
    SmallVector<int64_t> sorted;
    for (int64_t a : *axes)
      sorted.push_back(rules::normaliseAxis(a, *outRank));
    llvm::sort(sorted);
    for (int64_t a : sorted)
      shifted += a <= shifted;
  }
  builder.track(op->getResult(0), shifted, input->atoms);
}

void sliceRule(Operation *op, CouplingBuilder &builder) {
  auto slice = cast<onnx::SliceOp>(op);
  const TrackedAxis *input = builder.lookup(slice.getData());
  std::optional<int64_t> rank = rankOf(slice.getData());
  if (!input || !rank)
    return;
  // Sliced axes: the constant `axes`, or 0..len(starts)-1 when absent.
  bool hasAxes = !isa<NoneType>(slice.getAxes().getType());
  std::optional<SmallVector<int64_t>> axes =
      hasAxes ? rules::constantInts(slice.getAxes()) : rules::constantInts(slice.getStarts());
  bool touchesChannels = true;
  if (axes) {
    touchesChannels = false;
    for (auto [index, a] : llvm::enumerate(*axes))
      touchesChannels |= (hasAxes ? rules::normaliseAxis(a, *rank) : static_cast<int64_t>(index)) == input->axis;
  }
  if (touchesChannels) {
    // A constant unit-step range of the channels (torch's chunk): the result
    // carries those channels; spa-prune moves the bounds.
    std::optional<int64_t> size = staticDim(slice.getData(), input->axis);
    std::optional<SliceRange> range = size ? sliceRange(op, input->axis, *size) : std::nullopt;
    if (!range || range->last <= range->first || *size != static_cast<int64_t>(input->atoms.size())) {
      builder.block(input->atoms, describe(op) + " slices the channel axis with bounds SPA cannot follow");
      return;
    }
    ArrayRef<Atom> kept = ArrayRef<Atom>(input->atoms).slice(range->first, range->last - range->first);
    builder.track(slice.getOutput(), input->axis, kept);
    builder.keepOneOf(kept);
    return;
  }
  builder.track(slice.getOutput(), input->axis, input->atoms);
}

/// Whether Slice `slice` of a 1-D shape of `length` entries may read entry `entry`
/// (true unless its bounds are constants that leave the entry out).
bool sliceReads(Operation *slice, int64_t length, int64_t entry) {
  std::optional<SliceRange> range = sliceRange(slice, 0, length);
  return !range || range->entry == ~0u || (entry >= range->first && entry < range->last);
}

/// Whether a dim read from `source`'s shape only builds Reshape targets for
/// `source` itself (`x.view(-1, x.size(-1))`): the target follows the pruned size.
bool onlyReshapesItsSource(Value dim, Value source) {
  for (Operation *user : dim.getUsers()) {
    if (isa<onnx::UnsqueezeOp, onnx::SqueezeOp>(user) && onlyReshapesItsSource(user->getResult(0), source))
      continue;
    auto concat = dyn_cast<onnx::ConcatOp>(user);
    if (!concat || concat.getAxis() != 0)
      return false;
    for (Operation *reshape : concat.getResult().getUsers())
      if (!isa<onnx::ReshapeOp>(reshape) || reshape->getOperand(0) != source || reshape->getOperand(1) != concat)
        return false;
  }
  return true;
}

/// Shape reads sizes only; but a computation on the channel count (e.g. an
/// attention scale sqrt(head_dim)) changes when channels are removed.
void shapeRule(Operation *op, CouplingBuilder &builder) {
  const TrackedAxis *input = builder.lookup(op->getOperand(0));
  std::optional<int64_t> rank = rankOf(op->getOperand(0));
  if (!input || !rank)
    return;
  int64_t start = rules::normaliseAxis(rules::intAttr(op, "start", 0), *rank);
  int64_t end = op->hasAttr("end") ? rules::normaliseAxis(rules::intAttr(op, "end", *rank), *rank) : *rank;
  if (input->axis < start || input->axis >= end)
    return;
  int64_t channelEntry = input->axis - start;
  for (Operation *user : op->getResult(0).getUsers()) {
    auto gather = dyn_cast<onnx::GatherOp>(user);
    std::optional<SmallVector<int64_t>> indices = gather ? constantInts(gather.getIndices()) : std::nullopt;
    if (indices && !llvm::is_contained(*indices, channelEntry) &&
        !llvm::is_contained(*indices, channelEntry - (end - start)))
      continue;
    if (isa<onnx::SliceOp>(user) && (!sliceReads(user, end - start, channelEntry) ||
                                     onlyReshapesItsSource(user->getResult(0), op->getOperand(0))))
      continue;
    if (gather && onlyReshapesItsSource(gather.getResult(), op->getOperand(0)))
      continue;
    builder.markNotFunctionPreserving(op, *input, describe(op) + " reads the channel count");
    return;
  }
}

void sizeRule(Operation *op, CouplingBuilder &builder) {
  if (const TrackedAxis *input = builder.lookup(op->getOperand(0)))
    builder.markNotFunctionPreserving(op, *input, describe(op) + " reads the channel count");
}

/// Explicit split sizes become the results' new sizes on the split axis.
void splitRewrite(Operation *op, ChannelRewriter &rewriter) {
  auto split = cast<onnx::SplitOp>(op);
  if (rewriter.oldResultTypes(op).empty() || isa<NoneType>(split.getSplit().getType()))
    return;
  int64_t rank = cast<RankedTensorType>(split.getInput().getType()).getRank();
  int64_t axis = static_cast<int64_t>(split.getAxis()); // the accessor is unsigned: -1 would not read as < 0
  if (axis < 0)
    axis += rank;
  SmallVector<int64_t> sizes;
  for (Value result : split.getOutputs())
    sizes.push_back(cast<RankedTensorType>(result.getType()).getDimSize(axis));
  rewriter.replaceIntOperand(op, 1, sizes);
}

/// A Reshape or Expand target follows the result's new sizes.
void targetRewrite(Operation *op, ChannelRewriter &rewriter) { rules::rewriteShapeOperand(op, rewriter, 1); }

/// The channel range a Slice reads, when the plan prunes its data's channel axis.
std::optional<SliceRange> prunedSliceRange(onnx::SliceOp slice, const ChannelRewriter &rewriter) {
  const KeptPositions *data = rewriter.keptOf(slice.getData());
  if (!data)
    return std::nullopt;
  std::optional<SliceRange> range = sliceRange(slice, data->axis, data->size);
  if (!range || range->entry == ~0u)
    return std::nullopt;
  return range;
}

/// The bounds on the channel axis count the kept positions before them.
void sliceRewrite(Operation *op, ChannelRewriter &rewriter) {
  auto slice = cast<onnx::SliceOp>(op);
  std::optional<SliceRange> range = prunedSliceRange(slice, rewriter);
  std::optional<SmallVector<int64_t>> starts = constantInts(slice.getStarts()), ends = constantInts(slice.getEnds());
  if (!range || !starts || !ends)
    return;
  const KeptPositions &data = *rewriter.keptOf(slice.getData());
  (*starts)[range->entry] = data.keptBefore(range->first);
  (*ends)[range->entry] = data.keptBefore(range->last);
  rewriter.replaceIntOperand(op, 1, *starts);
  rewriter.replaceIntOperand(op, 2, *ends);
}

/// A Slice of the channels must keep at least one of them.
LogicalResult sliceCheck(Operation *op, const ChannelRewriter &rewriter) {
  auto slice = cast<onnx::SliceOp>(op);
  std::optional<SliceRange> range = prunedSliceRange(slice, rewriter);
  if (!range || llvm::any_of(rewriter.keptOf(slice.getData())->kept,
                             [&](int64_t p) { return p >= range->first && p < range->last; }))
    return success();
  return slice.emitError() << "spa-prune: the plan removes every channel " << describe(slice)
                           << " reads; keep at least one";
}

} // namespace

void spa::rules::registerShapeRules(OpRuleTable &table) {
  table.add<onnx::ConcatOp>({concatRule});
  table.add<onnx::SplitOp>({splitRule, splitRewrite});
  table.add<onnx::ReshapeOp>({reshapeRule, targetRewrite});
  table.add<onnx::FlattenOp>({flattenRule});
  table.add<onnx::TransposeOp>({transposeRule});
  table.add<onnx::SqueezeOp, onnx::UnsqueezeOp>({axisShiftRule});
  table.add<onnx::ExpandOp>({axisShiftRule, targetRewrite});
  table.add<onnx::SliceOp>({sliceRule, sliceRewrite, sliceCheck});
  table.add<onnx::ShapeOp>({shapeRule});
  table.add<onnx::SizeOp>({sizeRule});
}
