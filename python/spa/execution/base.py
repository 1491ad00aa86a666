"""What every backend provides, and a per-process cache for what tasks rebuild from `shared`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

R = TypeVar("R")
Task = Callable[[Any, Any], R]

MAX_RETRIES = 3  # a piece whose worker died is run again this many times before the map fails

_CACHE: dict[str, Any] = {}


class Backend(Protocol):
    name: str
    workers: int

    def map(self, task: Task, shared: Any, items: Iterable[Any], on_done: Callable[[Any], None] | None = None
            ) -> list[Any]:
        """`[task(shared, item) for item in items]`, run where the backend runs things; `on_done(item)`
        is called here as each item's task finishes (for progress)."""

    def close(self) -> None:
        """Release the workers."""


def run_task(task: Task, shared: Any, item: Any) -> Any:
    """`task(shared, item)` with NumPy's BLAS on one thread: a multi-threaded BLAS sums in an order that
    depends on its thread count, and a task must compute the same bits in any worker of any backend."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return task(shared, item)


def worker_cache(key: str, build: Callable[[], R]) -> R:
    """`build()` once per worker process for `key` (an onnxruntime session of the shared model, say),
    so that the tasks a worker runs one after another do not rebuild it."""
    if key not in _CACHE:
        if len(_CACHE) >= 4:  # a long-lived worker serves several maps: keep the recent ones only
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = build()
    return _CACHE[key]
