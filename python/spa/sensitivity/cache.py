"""Sensitivity tables on disk (spa.cache), keyed by the content of everything they depend on.

The key hashes the model's bytes, the samples, the scores, the counts
measured and a note on the criterion, so a table is reused exactly when it
would be measured again the same way (re-planning the same model at other
targets).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from spa.cache import digest, load_arrays, store_arrays
from spa.sensitivity.measure import SensitivityTable

KIND = "sensitivity"


def table_key(model_bytes: bytes, batches: Iterable[Mapping[str, np.ndarray]], scores: Mapping[int, np.ndarray],
              counts: Mapping[int, Iterable[int]], note: str) -> str:
    """A hex digest of everything the table depends on."""
    def parts():
        yield model_bytes
        for batch in batches:
            for name in sorted(batch):
                yield name
                yield np.asarray(batch[name])
        for group_id in sorted(scores):
            yield f"{group_id}:{list(counts.get(group_id, ()))}"
            yield np.asarray(scores[group_id], dtype=np.float64)
        yield note
    return digest(parts())


def load_table(key: str) -> SensitivityTable | None:
    """The cached table for `key`, or None."""
    arrays = load_arrays(KIND, key)
    try:
        return SensitivityTable.from_arrays(arrays) if arrays is not None else None
    except (KeyError, ValueError):
        return None  # a damaged entry is measured again


def store_table(key: str, table: SensitivityTable) -> None:
    """Keep `table` under `key`."""
    store_arrays(KIND, key, table.to_arrays())
