"""Console-script launchers for the native tools shipped inside the package."""

from __future__ import annotations

import os
import sys
from pathlib import Path



def tool_path(name: str) -> Path:
    """Return the path of a native tool installed in the package (e.g. 'spa-opt')."""
    from spa import _native  # the tools are installed beside the native extension

    path = Path(_native.__file__).resolve().parent / "bin" / name
    if not path.exists():
        raise FileNotFoundError(f"{name} is not installed at {path}; reinstall spa with pip")
    return path


def spa_opt() -> None:
    """Run spa-opt with this process's arguments (replaces the Python process)."""
    path = tool_path("spa-opt")
    os.execv(path, [str(path), *sys.argv[1:]])
