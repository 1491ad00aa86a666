"""pytest fixtures shared by SPA's Python tests (the helpers they import live in helpers.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Tests measure and synthesise for themselves: no entries from the user's ~/.cache/spa, none left there."""
    patcher = pytest.MonkeyPatch()
    patcher.setenv("SPA_CACHE_DIR", str(tmp_path_factory.mktemp("spa-cache")))
    yield
    patcher.undo()

