"""Calibration data files: `.npz` (one array per model input, by name) or `.npy` (single-input models)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from spa.errors import SPAError

MEASURED_SAMPLES = 32  # samples a sensitivity table or a plan's judge runs on: enough to rank groups


def load_calibration(path: str | Path, input_names: list[str], limit: int | None = None) -> dict[str, np.ndarray]:
    """Graph input name -> (N, ...) array read from `path`, first `limit` samples if given.

    An `.npz` must hold one array per input name; a single array (`.npy`, or
    an `.npz` with one array under any name) is accepted for a model with one
    input. Raises SPAError naming the file for a missing file, an unreadable
    one, or arrays that do not match the inputs.
    """
    path = Path(path)
    if not path.is_file():
        raise SPAError(f"{path}: calibration file not found")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise SPAError(f"{path}: not a NumPy .npy/.npz file ({error})") from None
    if isinstance(loaded, np.ndarray):
        arrays = {"": loaded}
    else:
        with loaded:
            arrays = {name: loaded[name] for name in loaded.files}
    if set(input_names) <= set(arrays):
        result = {name: arrays[name] for name in input_names}
    elif len(input_names) == 1 and len(arrays) == 1:
        result = {input_names[0]: next(iter(arrays.values()))}
    else:
        raise SPAError(f"{path}: expected arrays named {', '.join(input_names)} (the model's inputs), "
                       f"found {', '.join(n or '<unnamed>' for n in arrays) or 'none'}")
    for name, array in result.items():
        if array.ndim == 0 or len(array) == 0:
            raise SPAError(f"{path}: the array for input {name!r} holds no samples")
        if array.dtype.kind == "f" and array.dtype != np.float32:
            result[name] = array.astype(np.float32)
    return {name: array[:limit] for name, array in result.items()} if limit else result


def held_out_split(samples: dict[str, np.ndarray], limit: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(samples to fit on, samples to measure on): every fourth sample, at most `limit`, is held out when
    there are 32 samples or more (spread out, as files are often sorted by class or source), so that a
    refit is not judged on the samples it was fitted to; with fewer, both use them all."""
    count = len(next(iter(samples.values())))
    held = np.arange(3, count, 4)[:limit] if count >= 32 else np.zeros(0, np.int64)
    if not len(held):
        return dict(samples), dict(samples)
    fit = np.setdiff1d(np.arange(count), held)
    return ({name: np.asarray(a)[fit] for name, a in samples.items()},
            {name: np.asarray(a)[held] for name, a in samples.items()})
