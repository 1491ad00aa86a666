"""OBSPA's reconstruction solves as tasks (spa.execution).

Once the statistics are known (the dense Hessians for the one-shot refit, a
level's cross and Gram matrices for the sequential one), each consumer layer's
corrected matrix is independent of every other's, so each is a task. Its item
carries what it reads (the matrix and one square statistic), not the model.

Solves go out only to a backend that keeps its workers (Ray) and only when
the items are large (DISTRIBUTED_BYTES): on one machine the driver's BLAS
already uses every core and moving an item costs about as much as solving it
(benchmarks/RESULTS.md), and local processes start afresh for every map.
In the driver the solves run one at a time, each result written before the
next item is made, so one layer's matrices are alive at a time. Tasks run
NumPy on one thread and compute the same bits on any such backend; the
driver's threaded BLAS may move the last bits, as for the Hessians.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spa.execution import Backend, LocalBackend
from spa.obspa.solver import reconstruct, reconstruct_with_inverse

DISTRIBUTED_BYTES = 256 * 2**20  # items below this total are solved in the driver even with a backend


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


@dataclass(frozen=True)
class Job:
    """One layer to solve: `key` says where the result goes, `nbytes` estimates its item, `make` builds it."""

    key: Any
    nbytes: int
    make: Callable[[], Solve]


def solve_all(jobs: Sequence[Job], backend: Backend | None, write: Callable[[Any, np.ndarray], None]) -> None:
    """Solve every job and `write(job.key, result)`, as tasks when `backend` keeps workers elsewhere and
    the items are large enough (see the module doc), else here one at a time."""
    distributed = backend is not None and not isinstance(backend, LocalBackend) and len(jobs) > 1 \
        and sum(job.nbytes for job in jobs) >= DISTRIBUTED_BYTES
    if not distributed:
        for job in jobs:
            write(job.key, solve(job.make()))
        return
    for job, result in zip(jobs, backend.map(_task, None, [job.make() for job in jobs])):
        write(job.key, result)
