"""Progress displays for SPA's long phases (tqdm), quiet unless standard error is a terminal.

`spa --quiet` (or `set_quiet(True)`) silences them everywhere; the Python
API shows them only in an interactive terminal, as tqdm does by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Silence (True) or allow (False) every progress display of this process."""
    global _QUIET
    _QUIET = quiet


def progress_bar(total: int, description: str, quiet: bool = False):
    """A tqdm bar with `update(n)` and `close()`; silent when asked, or when stderr is no terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=description, disable=True if (quiet or _QUIET) else None, leave=False,
                unit="step", dynamic_ncols=True)


def progress(items: Iterable[T], description: str, total: int | None = None, quiet: bool = False) -> Iterator[T]:
    """`items`, with a progress display (see progress_bar)."""
    from tqdm import tqdm

    yield from tqdm(items, desc=description, total=total, disable=True if (quiet or _QUIET) else None, leave=False,
                    dynamic_ncols=True)
