"""The Optimal Brain Surgeon arithmetic on one group's consumer matrices (float64).

For a consumer W (rows x columns) with input second moment H, removing the
column set S and correcting the others optimally costs

    L(S) = 1/2 tr(W_S (Hinv_SS)^-1 W_S^T)        (Hinv = H^-1)

with the correction dW = -W_S (Hinv_SS)^-1 Hinv_S: , after which Hinv is
downdated: Hinv <- Hinv - Hinv_:S (Hinv_SS)^-1 Hinv_S: . A channel owns a
block of columns (k x k for a Conv input channel, the flattened pixels after
a Flatten). `greedy_scores` removes the cheapest channels of a group a step
at a time over all its consumers and scores each channel by the cumulative
cost at its removal; `reconstruct` then gives the corrected W for the
channels finally chosen, as the least-squares fit of the kept columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ConsumerState:
    """One consumer matrix during a group's greedy removal.

    `columns[c]` are the columns of group channel c (empty if the layer does
    not read it); `w` and `hinv` are updated in place as channels go.
    """

    w: np.ndarray
    hinv: np.ndarray
    columns: list[np.ndarray]


MAX_RAISES = 12  # tenfold each: enough for any rounding noise, short of hiding a NaN


def damped(h: np.ndarray, damp: float) -> np.ndarray:
    """H + damp * mean(diag H) * I (a copy); a zero diagonal gets damp itself.

    Features so small that their float32 products are denormal (about 1e-23) leave H with rounding
    noise as large as its diagonal, so the damped H can still be indefinite; the added diagonal
    then grows tenfold until H is positive definite, which every solve here needs.
    """
    scale = float(np.mean(np.diag(h)))
    added = damp * (scale if scale > 0 else 1.0)
    result = h.copy()
    diagonal = np.diag_indices_from(result)
    result[diagonal] += added
    for _ in range(MAX_RAISES):
        try:
            np.linalg.cholesky(result)
            break
        except np.linalg.LinAlgError:
            result[diagonal] += 9 * added
            added *= 10
    return result


def inverse(h: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix (symmetrised)."""
    np.linalg.cholesky(h)  # raises LinAlgError early if H is not positive definite
    result = np.linalg.inv(h)
    return (result + result.T) / 2


def channel_costs(state: ConsumerState, channels: np.ndarray) -> np.ndarray:
    """1/2 tr(W_c (Hinv_cc)^-1 W_c^T) for each channel in `channels` (0 where the layer has no columns)."""
    costs = np.zeros(len(channels))
    sizes = np.array([len(state.columns[c]) for c in channels])
    for size in np.unique(sizes[sizes > 0]):
        picked = np.flatnonzero(sizes == size)
        index = np.stack([state.columns[channels[i]] for i in picked])  # (m, size)
        blocks = state.hinv[index[:, :, None], index[:, None, :]]  # (m, size, size)
        w = state.w[:, index]  # (rows, m, size)
        if size == 1:
            costs[picked] = 0.5 * (w[:, :, 0] ** 2).sum(axis=0) / np.maximum(blocks[:, 0, 0], 1e-300)
        else:
            solved = np.linalg.solve(blocks, np.transpose(w, (1, 2, 0)))  # (m, size, rows)
            costs[picked] = 0.5 * np.einsum("rms,msr->m", w, solved)
    return costs


def remove_columns(state: ConsumerState, columns: np.ndarray) -> None:
    """Apply the OBS correction for removing `columns` and downdate Hinv (in place)."""
    if columns.size == 0:
        return
    block = state.hinv[np.ix_(columns, columns)]
    rows_s = state.hinv[columns]  # (s, n)
    solved = np.linalg.solve(block, rows_s)  # (Hinv_SS)^-1 Hinv_S:
    state.w -= state.w[:, columns] @ solved
    state.w[:, columns] = 0.0
    state.hinv -= rows_s.T @ solved
    state.hinv[columns, :] = 0.0
    state.hinv[:, columns] = 0.0
    state.hinv[columns, columns] = 1.0  # keeps removed blocks invertible; they are never scored again


def greedy_scores(channels: int, consumers: list[ConsumerState], steps: int = 64,
                  max_fraction: float = 0.95) -> np.ndarray:
    """Scores (float64, shape (channels,)) that order a group's channels by greedy OBS removal.

    About channels/`steps` channels are removed per step, the cheapest by
    their summed cost over `consumers`; a removed channel scores the cumulative
    cost so far, so scores increase with removal order. Removal stops after
    `max_fraction` of the channels; the rest are ordered by their last costs,
    above every removed channel.
    """
    scores = np.zeros(channels)
    alive = np.arange(channels)
    per_step = max(1, -(-channels // steps))
    total = 0.0
    limit = int(np.floor(max_fraction * channels))
    removed = 0
    while alive.size > 1 and removed < limit:
        costs = sum(channel_costs(state, alive) for state in consumers)
        order = np.lexsort((alive, costs))
        take = order[:min(per_step, alive.size - 1, limit - removed)]
        for i in take:
            total += max(float(costs[i]), 0.0)
            scores[alive[i]] = total
            total = np.nextafter(total, np.inf)  # strictly increasing even for zero costs
        for state in consumers:
            gone = [state.columns[c] for c in alive[take]]
            remove_columns(state, np.concatenate(gone) if gone else np.zeros(0, dtype=np.int64))
        removed += take.size
        alive = np.delete(alive, take)
    if alive.size:
        costs = sum(channel_costs(state, alive) for state in consumers)
        order = np.lexsort((alive, costs))
        for i in order:
            total = np.nextafter(total + max(float(costs[i]), 0.0), np.inf)
            scores[alive[i]] = total
    return scores


def reconstruct(w: np.ndarray, h: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """W with columns `removed` zeroed and the others refitted: W_K' = W H_:K (H_KK)^-1.

    This is the least-squares W' that reads only the kept columns K and best
    reproduces W x under E[x x^T] = H (the joint OBS correction for `removed`).
    """
    result = np.zeros_like(w)
    keep = np.setdiff1d(np.arange(w.shape[1]), removed)
    if keep.size == 0:
        return result
    h_kk = h[np.ix_(keep, keep)]
    rhs = w @ h[:, keep]  # (rows, k)
    factor = np.linalg.cholesky(h_kk)
    solved = np.linalg.solve(factor.T, np.linalg.solve(factor, rhs.T))
    result[:, keep] = solved.T
    return result


def reconstruct_with_inverse(w: np.ndarray, hinv: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The same refit as `reconstruct`, from H^-1: W - W_S (Hinv_SS)^-1 Hinv_S: with columns S zeroed.

    It solves an |S| x |S| system where `reconstruct` factors the |K| x |K|
    kept block, so it is the cheaper one when few columns go.
    """
    result = w.copy()
    if removed.size == 0:
        return result
    block = hinv[np.ix_(removed, removed)]
    result -= w[:, removed] @ np.linalg.solve(block, hinv[removed])
    result[:, removed] = 0.0
    return result
