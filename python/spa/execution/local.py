"""Local processes: the default backend."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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
            with _main_script_kept_from_workers(task, shared, items):  # the workers start at the submits
                futures = {pool.submit(_run, task, item): index for index, item in enumerate(items)
                           if index not in results}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                done(items[futures[future]])

    def close(self) -> None:
        """Nothing to release: each map starts and ends its own processes."""


@contextmanager
def _main_script_kept_from_workers(task: Task, shared: Any, items: list[Any]) -> Iterator[None]:
    """While the workers start, hide the user's script from them, unless what they are sent needs it.

    A spawned worker first runs the parent's `__main__` script again. A script that calls SPA at its top
    level, with no `if __name__ == "__main__":` guard, would then prune again in every worker, and the
    worker's own pool would fail and leave the parent waiting for ever. SPA's tasks live in SPA's modules,
    so the workers need the script only when the task, the shared value or an item is defined in it (a
    criterion class written in the script, say).
    """
    main = sys.modules.get("__main__")
    hidden = {key: main.__dict__[key] for key in ("__file__", "__spec__") if main and key in main.__dict__}
    if not hidden or _refers_to_main((task, shared, items)):
        yield
        return
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.update(hidden)


def _refers_to_main(value: Any) -> bool:
    try:
        return b"__main__" in pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - unpicklable: let the pool report it as it would
        return True
