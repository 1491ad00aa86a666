"""Progress: displays on a terminal only, silenced by --quiet, and events for a listener from every phase."""

from __future__ import annotations

import io
import time

import pytest

import spa
from spa import progress
from spa.data import demo_model_path


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def stderr(monkeypatch):
    def use(stream: io.StringIO) -> io.StringIO:
        monkeypatch.setattr("sys.stderr", stream)
        return stream

    monkeypatch.setattr(progress, "DELAY", 0.2)
    progress.set_quiet(False)  # as a process starts: an earlier in-process `spa --quiet` may have set it
    yield use
    progress.set_quiet(False)
    progress.set_listener(None)


def _slow_phase() -> None:
    with progress.phase("analysis of a large graph"):
        time.sleep(1.0)
    for _ in progress.progress(range(3), "scoring"):
        time.sleep(0.15)


def test_a_terminal_sees_the_phases_that_last(stderr) -> None:
    shown = stderr(Terminal())
    _slow_phase()
    assert "analysis of a large graph" in shown.getvalue() and "scoring" in shown.getvalue()


def test_no_display_off_a_terminal_or_when_quiet(stderr) -> None:
    piped = stderr(io.StringIO())
    _slow_phase()
    assert piped.getvalue() == ""
    quiet = stderr(Terminal())
    progress.set_quiet(True)
    _slow_phase()
    assert quiet.getvalue() == ""


def test_a_listener_hears_every_phase_of_a_prune(stderr, tmp_path) -> None:
    shown = stderr(Terminal())
    events: list[tuple[str, int, int | None]] = []
    progress.set_listener(lambda phase, done, total: events.append((phase, done, total)))
    model = spa.load(demo_model_path())
    model.prune(model.plan(criterion="l1", ratio=0.3))
    model.save(tmp_path / "pruned.onnx")
    phases = [phase for phase, done, _ in events if done == 0]
    assert phases[0] == "import of mnist_cnn.onnx"
    for expected in ("channel coupling analysis", "pruning and verification", "export to pruned.onnx"):
        assert expected in phases
    assert shown.getvalue() == ""  # a listener replaces the displays
