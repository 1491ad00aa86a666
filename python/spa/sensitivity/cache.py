"""A disk cache of sensitivity tables, keyed by the content of everything they depend on.

The key hashes the model's bytes, the samples, the scores, the counts
measured and a note on the criterion, so a table is reused exactly when it
would be measured again the same way (re-planning the same model at other
targets). The folder is `$SPA_CACHE_DIR/sensitivity`, or
`~/.cache/spa/sensitivity`; SPA_CACHE_DIR=off turns the cache off.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from spa.sensitivity.measure import SensitivityTable


def cache_folder() -> Path | None:
    """Where tables are kept, or None when caching is off."""
    setting = os.environ.get("SPA_CACHE_DIR")
    if setting == "off":
        return None
    root = Path(setting) if setting else Path.home() / ".cache" / "spa"
    return root / "sensitivity"


def table_key(model_bytes: bytes, batches: Iterable[Mapping[str, np.ndarray]], scores: Mapping[int, np.ndarray],
              counts: Mapping[int, Iterable[int]], note: str) -> str:
    """A hex digest of everything the table depends on."""
    digest = hashlib.sha256(model_bytes)
    for batch in batches:
        for name in sorted(batch):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(batch[name]).tobytes())
    for group_id in sorted(scores):
        digest.update(f"{group_id}:{list(counts.get(group_id, ()))}".encode())
        digest.update(np.ascontiguousarray(scores[group_id], dtype=np.float64).tobytes())
    digest.update(note.encode())
    return digest.hexdigest()


def load_table(key: str) -> SensitivityTable | None:
    """The cached table for `key`, or None."""
    folder = cache_folder()
    path = folder / f"{key}.npz" if folder else None
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path) as arrays:
            return SensitivityTable.from_arrays({name: arrays[name] for name in arrays.files})
    except (OSError, ValueError, KeyError):
        return None  # a damaged entry is measured again


def store_table(key: str, table: SensitivityTable) -> None:
    """Keep `table` under `key` (atomically; a folder that cannot be written is skipped)."""
    folder = cache_folder()
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, staged = tempfile.mkstemp(prefix=".table-", suffix=".npz", dir=folder)
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **table.to_arrays())
        os.replace(staged, folder / f"{key}.npz")
    except OSError:
        pass
