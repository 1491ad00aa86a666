"""Ray: tasks on a cluster, or on Ray started on this machine ("local")."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from spa.errors import SPAError, first_line
from spa.execution.base import MAX_RETRIES, Task, run_task


def _ray():
    try:
        import ray
    except ImportError:
        raise SPAError("--ray needs Ray: pip install 'spa[ray]'") from None
    return ray


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _send_token_like_ray_start(address: str) -> None:
    """`ray start --head` turns token authentication on when ~/.ray/auth_token exists, but
    `ray.init(address=...)` does not, so the client is refused (ray-project/ray#64755 review):
    for a cluster of this machine, the one that token belongs to, the client follows the same
    rule. The token is never sent elsewhere unasked: RAY_AUTH_MODE=token does that."""
    if address.rsplit(":", 1)[0].strip("[]") not in LOOPBACK:
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _call(task: Task, shared: Any, item: Any) -> Any:
    return run_task(task, shared, item)


class RayBackend:
    """Tasks on the Ray cluster at `address`, or on a Ray instance of this machine ("local", with
    `workers` CPUs, default every core). `shared` is put once in the object store per map."""

    name = "ray"

    def __init__(self, address: str = "local", workers: int | None = None) -> None:
        ray = _ray()
        self._started_here = False
        if not ray.is_initialized():
            settings = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
            if address == "local" or address.rsplit(":", 1)[0].strip("[]") in LOOPBACK:
                settings["_node_ip_address"] = "127.0.0.1"  # a cluster of this machine talks over loopback only
            try:
                if address == "local":
                    ray.init(num_cpus=workers or os.cpu_count(), **settings)
                else:
                    _send_token_like_ray_start(address)
                    ray.init(address=address, **settings)
            except Exception as error:  # noqa: BLE001 - Ray raises many kinds: connection, version, timeout
                raise SPAError(f"cannot reach a Ray cluster at {address}: {first_line(error)}") from None
            self._started_here = True
        self.workers = int(ray.cluster_resources().get("CPU", 1))
        self._remote = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(_call)

    def map(self, task: Task, shared: Any, items: Iterable[Any], on_done: Callable[[Any], None] | None = None
            ) -> list[Any]:
        ray = _ray()
        items = list(items)
        reference = ray.put(shared)  # tasks receive the stored value, not a copy pickled into each
        named = self._remote.options(name=task.__name__)  # the worker's process title: ray::TASK
        futures = [named.remote(task, reference, item) for item in items]
        index = {future: position for position, future in enumerate(futures)}
        try:
            waiting = list(futures)
            while waiting:
                finished, waiting = ray.wait(waiting, num_returns=1)
                ray.get(finished)  # raises the task's error as soon as one fails
                if on_done is not None:
                    on_done(items[index[finished[0]]])
            return ray.get(futures)
        except ray.exceptions.RayTaskError as error:  # the task itself raised: the same error as locally
            raise error.as_instanceof_cause() from None
        except ray.exceptions.RayError as error:
            raise SPAError(f"Ray could not run {task.__name__}: {first_line(error)}") from None

    def close(self) -> None:
        """Disconnect (and stop Ray, when this backend started it)."""
        if self._started_here:
            _ray().shutdown()
