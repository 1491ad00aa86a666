"""A disk cache of arrays that are slow to compute and depend only on what their key hashes.

Sensitivity tables and synthesised data-free inputs live here, so that
re-planning the same model (at another target, with another criterion)
does not measure or synthesise again. The folder is `$SPA_CACHE_DIR/<kind>`,
or `~/.cache/spa/<kind>`; SPA_CACHE_DIR=off turns the cache off.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np


def cache_folder(kind: str) -> Path | None:
    """Where entries of `kind` are kept, or None when caching is off."""
    setting = os.environ.get("SPA_CACHE_DIR")
    if setting == "off":
        return None
    root = Path(setting) if setting else Path.home() / ".cache" / "spa"
    return root / kind


def digest(parts: Iterable[bytes | str | np.ndarray]) -> str:
    """A hex digest of byte strings, text and arrays (their dtype, shape and contents)."""
    hasher = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            hasher.update(f"{part.dtype}{part.shape}".encode())
            part = np.ascontiguousarray(part).tobytes()
        hasher.update(part.encode() if isinstance(part, str) else part)
    return hasher.hexdigest()


def load_arrays(kind: str, key: str) -> dict[str, np.ndarray] | None:
    """The arrays kept under `key`, or None (also for an entry that cannot be read)."""
    folder = cache_folder(kind)
    path = folder / f"{key}.npz" if folder else None
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path) as arrays:
            return {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError, KeyError):
        return None  # a damaged entry is computed again


def store_arrays(kind: str, key: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Keep `arrays` under `key`, atomically; a folder that cannot be written is skipped."""
    folder = cache_folder(kind)
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, staged = tempfile.mkstemp(prefix=".entry-", suffix=".npz", dir=folder)
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.replace(staged, folder / f"{key}.npz")
    except OSError:
        pass
