"""Where SPA's independent pieces of work run: this process, local processes, or a Ray cluster.

The work that splits well (a sensitivity table's rows, a pruning sweep's
combinations) is written as a *task*: a module-level function
`task(shared, item) -> result`, where `shared` is what every task reads (the
model's bytes, the samples) and `item` is one piece. A backend runs
`map(task, shared, items)` and returns the results in the order of `items`:

- `LocalBackend(workers)`: `workers` processes on this machine (default:
  every core), `shared` sent once to each; with one worker, in this process.
- `RayBackend(address)`: Ray tasks, `shared` put once in Ray's object store
  (numpy arrays in it are read without copies); "local" starts Ray on this
  machine. `ray` is the optional extra `spa[ray]`.

Both retry the pieces of a worker that died (MAX_RETRIES times), and
a task computes the same result wherever it runs (tasks run onnxruntime on
one thread), so the backends agree bit for bit.
"""

from __future__ import annotations

from spa.execution.base import MAX_RETRIES, Backend, worker_cache
from spa.execution.local import LocalBackend


IN_PROCESS_WORK = 2e9  # bytes of model times runs below which workers would cost more than they save


def default_backend(work: float) -> Backend:
    """This process for a small job (`work`: model bytes times runs), else every core of this machine."""
    return LocalBackend(1 if work < IN_PROCESS_WORK else None)


def backend_for(ray: str | None = None, workers: int | None = None) -> Backend:
    """The backend a command line asks for: Ray at `ray` ("local" or an address), else local processes."""
    if ray:
        from spa.execution.ray_backend import RayBackend

        return RayBackend(ray, workers)
    return LocalBackend(workers)


__all__ = ["MAX_RETRIES", "Backend", "LocalBackend", "backend_for", "default_backend", "worker_cache"]
