"""OBSPA's reconstruction solves as tasks (spa.execution).

Once the statistics are known (the dense Hessians for the one-shot refit, a
level's cross and Gram matrices for the sequential one), each consumer layer's
corrected matrix is independent of every other's, so each is a task. Its item
carries what it reads (the matrix and one square statistic), not the model.
Tasks run NumPy on one thread, so every backend computes the same bits; in
this process (no backend, or one local worker) NumPy uses every core, which
may move the last bits, as for the Hessians (spa.obspa.parallel_hessians).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from spa.execution import Backend, LocalBackend
from spa.obspa.solver import reconstruct, reconstruct_with_inverse


@dataclass(frozen=True)
class Solve:
    """One layer's refit. `kind`:
    - "downdate": `statistic` is H^-1, `columns` the removed ones (few columns go);
    - "refit": `statistic` is H, `columns` the removed ones;
    - "ridge": `statistic` is the damped Gram block of the kept `columns`, `right` the right-hand
      side W C_:K + lambda W_:K (spa.obspa.sequential)."""

    kind: str
    matrix: np.ndarray
    statistic: np.ndarray
    columns: np.ndarray
    right: np.ndarray | None = None


def solve(item: Solve) -> np.ndarray:
    """The corrected matrix of one layer (removed columns zero)."""
    if item.kind == "downdate":
        return reconstruct_with_inverse(item.matrix, item.statistic, item.columns)
    if item.kind == "refit":
        return reconstruct(item.matrix, item.statistic, item.columns)
    result = np.zeros_like(item.matrix)
    result[:, item.columns] = np.linalg.solve(item.statistic, item.right.T).T
    return result


def _task(_shared: None, item: Solve) -> np.ndarray:
    return solve(item)


def solve_all(items: Sequence[Solve], backend: Backend | None,
              on_done: Callable[[Solve], None] | None = None) -> list[np.ndarray]:
    """`[solve(item) for item in items]`, as tasks on `backend` when it has workers elsewhere."""
    if backend is None or isinstance(backend, LocalBackend) and backend.workers == 1 or len(items) <= 1:
        results = []
        for item in items:
            results.append(solve(item))
            if on_done:
                on_done(item)
        return results
    return backend.map(_task, None, items, on_done)
