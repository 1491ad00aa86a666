"""Headless Chromium for tests of HTML pages: the DOM after the page's scripts ran, and screenshots.

CI installs Chromium (.ci/run); elsewhere a test that needs it is skipped when it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=15000"]


def chromium() -> str:
    """The Chromium executable; fails under CI (which must install it), else skips, when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("headless Chromium is missing: .ci/run must install it")
    pytest.skip("headless Chromium is not installed (apt-get install chromium)")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), *FLAGS, *args], capture_output=True, text=True, timeout=180)


def rendered_dom(url: str) -> str:
    """The page's DOM once its scripts have run."""
    result = _run("--dump-dom", url)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def screenshot(url: str, path: Path, width: int = 1400, height: int = 1100) -> Path:
    """A PNG of the page as a window of `width` x `height` shows it."""
    result = _run(f"--window-size={width},{height}", f"--screenshot={path}", url)
    assert result.returncode == 0 and path.is_file(), result.stderr[-2000:]
    return path


class _Collector(HTMLParser):
    """The <body> attributes, the text of elements by id, the cells of table rows by data-layer, and
    the resources the page refers to."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.text_by_id: dict[str, str] = {}
        self.rows: dict[str, list[str]] = {}
        self.fetches: list[str] = []  # src= and href= attributes: what the page would load
        self._open: list[tuple[str, str | None]] = []  # (tag, id) of the elements being read
        self._row: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = {key: value or "" for key, value in attrs}
        if tag == "body":
            self.body = attributes
        self.fetches += [attributes[key] for key in ("src", "href") if key in attributes]
        if tag not in VOID:
            self._open.append((tag, attributes.get("id")))
        if "id" in attributes:
            self.text_by_id.setdefault(attributes["id"], "")
        if tag == "tr" and "data-layer" in attributes:
            self._row = attributes["data-layer"]
            self.rows[self._row] = []
        if tag == "td" and self._row is not None:
            self.rows[self._row].append("")

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        for _, element_id in self._open:
            if element_id is not None:
                self.text_by_id[element_id] += data
        if self._row is not None and self.rows[self._row]:
            self.rows[self._row][-1] += data


def parsed(dom: str) -> _Collector:
    """What a test reads from a dumped DOM (see _Collector); ids' texts include their descendants' text."""
    collector = _Collector()
    collector.feed(dom)
    return collector
