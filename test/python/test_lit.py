"""Runs the lit + FileCheck suite (test/lit) so that `pytest` covers everything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LIT_DIR = Path(__file__).resolve().parents[1] / "lit"


def test_lit_suite_passes() -> None:
    command = [sys.executable, "-c", "from lit.main import main; main()", "-sv", str(LIT_DIR)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "Passed" in result.stdout
