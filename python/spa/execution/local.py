"""Local processes: the default backend."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import threading
import types
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


_MAIN_LOCK = threading.Lock()  # one pool at a time hides and restores the script


@contextmanager
def _main_script_kept_from_workers(task: Task, shared: Any, items: list[Any]) -> Iterator[None]:
    """While the workers start, hide the user's script from them, unless what they are sent needs it.

    A spawned worker first runs the parent's `__main__` script again. A script that calls SPA at its top
    level, with no `if __name__ == "__main__":` guard, would then prune again in every worker, and the
    worker's own pool would fail and leave the parent waiting for ever. SPA's tasks live in SPA's modules,
    so the workers need the script only when the task, the shared value or an item refers to a class or
    function defined in it, or when the script registered a criterion of its own (a sweep's workers look
    criteria up by name). Set SPA_WORKERS_RUN_MAIN=1 to always give the workers the script.
    """
    with _MAIN_LOCK:
        main = sys.modules.get("__main__")
        missing = object()
        hidden = {key: main.__dict__.get(key, missing) for key in ("__file__", "__spec__")} if main else {}
        if (not main or hidden["__file__"] is missing and hidden["__spec__"] in (missing, None)
                or os.environ.get("SPA_WORKERS_RUN_MAIN") == "1" or _needs_main((task, shared, items))):
            yield
            return
        main.__dict__.pop("__file__", None)
        main.__spec__ = None
        try:
            yield
        finally:
            for key, value in hidden.items():
                if value is missing:
                    main.__dict__.pop(key, None)
                else:
                    main.__dict__[key] = value


class _MainFinder(pickle.Pickler):
    """Pickles into nothing, noting any class or function that lives in `__main__`."""

    found = False

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (type, types.FunctionType)) and getattr(obj, "__module__", None) == "__main__":
            self.found = True
        return NotImplemented


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


def _needs_main(value: Any) -> bool:
    criteria = getattr(sys.modules.get("spa.criteria"), "CRITERIA", {})
    finder = _MainFinder(_Discard(), protocol=pickle.HIGHEST_PROTOCOL)
    try:
        finder.dump((value, criteria))
    except Exception:  # noqa: BLE001 - unpicklable: the pool reports it, with or without the script
        pass
    return finder.found
