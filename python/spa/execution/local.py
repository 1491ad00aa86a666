"""Local processes: the default backend."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from spa.errors import SPAError
from spa.execution.base import MAX_RETRIES, Task, run_task

_SHARED: Any = None  # what the pool's initializer gave this worker process


def _receive(shared: Any) -> None:
    global _SHARED
    _SHARED = shared


def _run(task: Task, item: Any) -> Any:
    return run_task(task, _SHARED, item)


class LocalBackend:
    """`workers` processes on this machine (None: every core); one worker runs the tasks in this process."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)

    def map(self, task: Task, shared: Any, items: Iterable[Any], on_done: Callable[[Any], None] | None = None
            ) -> list[Any]:
        items, done = list(items), on_done or (lambda item: None)
        if self.workers == 1 or len(items) <= 1:
            results = []
            for item in items:
                results.append(run_task(task, shared, item))
                done(item)
            return results
        results: dict[int, Any] = {}
        for _ in range(MAX_RETRIES + 1):
            try:
                self._map_in_pool(task, shared, items, results, done)
                return [results[i] for i in range(len(items))]
            except BrokenProcessPool:  # a worker died (killed, out of memory): run what it left again
                continue
        raise SPAError(f"local workers kept dying: {len(items) - len(results)} of {len(items)} tasks of "
                       f"{task.__name__} could not be run")

    def _map_in_pool(self, task: Task, shared: Any, items: list[Any], results: dict[int, Any],
                     done: Callable[[Any], None]) -> None:
        # spawn, not fork: the parent holds MLIR contexts and onnxruntime threads that a fork would copy mid-use
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_receive,
                                 initargs=(shared,)) as pool:
            futures = {pool.submit(_run, task, item): index for index, item in enumerate(items)
                       if index not in results}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                done(items[futures[future]])

    def close(self) -> None:
        """Nothing to release: each map starts and ends its own processes."""
