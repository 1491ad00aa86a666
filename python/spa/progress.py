"""Progress displays for SPA's long phases (tqdm), quiet unless standard error is a terminal.

A display appears only once its phase has run for DELAY seconds, so quick
phases print nothing. `spa --quiet` (or `set_quiet(True)`) silences them
everywhere. A program that wants the events instead of the bars registers a
listener (`set_listener`): it is called with (phase, done, total) as each
phase starts, advances and ends (`total` None for a phase without steps),
and the bars stay hidden while one is set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
Listener = Callable[[str, int, "int | None"], None]

DELAY = 1.0  # seconds before a display appears
_QUIET = False
_LISTENER: Listener | None = None


def set_quiet(quiet: bool) -> None:
    """Silence (True) or allow (False) every progress display of this process."""
    global _QUIET
    _QUIET = quiet


def set_listener(listener: Listener | None) -> None:
    """Send progress events to `listener(phase, done, total)` instead of displaying them (None: stop)."""
    global _LISTENER
    _LISTENER = listener


def _notify(description: str, done: int, total: int | None) -> None:
    if _LISTENER is not None:
        _LISTENER(description, done, total)


def _disabled(quiet: bool) -> bool | None:
    """tqdm's `disable`: True to hide, None to show only on a terminal."""
    return True if (quiet or _QUIET or _LISTENER is not None) else None


class Bar:
    """A counted phase: a tqdm bar (on a terminal) that also tells the listener how far it got."""

    def __init__(self, total: int | None, description: str, quiet: bool = False) -> None:
        from tqdm import tqdm

        self.description, self.total, self.done = description, total, 0
        _notify(description, 0, total)
        self._bar = tqdm(total=total, desc=description, disable=_disabled(quiet), leave=False, unit="step",
                         dynamic_ncols=True, delay=DELAY)

    def update(self, n: int = 1) -> None:
        self.done += n
        self._bar.update(n)
        _notify(self.description, self.done, self.total)

    def close(self) -> None:
        self._bar.close()


def progress_bar(total: int | None, description: str, quiet: bool = False) -> Bar:
    """A Bar with `update(n)` and `close()`; silent when asked, or when stderr is no terminal."""
    return Bar(total, description, quiet)


def progress(items: Iterable[T], description: str, total: int | None = None, quiet: bool = False) -> Iterator[T]:
    """`items`, with a progress display (see progress_bar)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    bar = progress_bar(total, description, quiet)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()


@contextmanager
def phase(description: str, quiet: bool = False) -> Iterator[None]:
    """A display of the time spent in a phase that has no steps to count (an import, the analysis)."""
    from tqdm import tqdm

    _notify(description, 0, None)
    bar = tqdm(total=None, desc=description, disable=_disabled(quiet), leave=False, delay=DELAY,
               bar_format="{desc}: {elapsed}", dynamic_ncols=True)
    stop = threading.Event()

    def tick() -> None:  # the phase itself never calls back, so the clock is advanced from here
        while not stop.wait(0.5):
            if bar._time() - bar.start_t >= DELAY:
                bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    if not bar.disable:
        ticker.start()
    try:
        yield
    finally:
        stop.set()
        if ticker.is_alive():
            ticker.join()
        bar.close()
        _notify(description, 1, 1)
