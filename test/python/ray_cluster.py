"""A Ray cluster of this machine for tests: started on the loopback address, bounded in time, stopped after."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

START_TIMEOUT = 180  # seconds


def _ray_command() -> str:
    pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")  # CI installs spa[ray]
    return str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def local_cluster(cpus: int = 2) -> Iterator[str]:
    """`ray start --head` on 127.0.0.1 with `cpus` CPUs; yields its address; `ray stop` at the end."""
    ray = _ray_command()
    port = _free_port()
    started = subprocess.run([ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                              f"--num-cpus={cpus}", "--include-dashboard=false", "--disable-usage-stats"],
                             capture_output=True, text=True, timeout=START_TIMEOUT)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=START_TIMEOUT)
