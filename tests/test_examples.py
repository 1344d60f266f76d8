"""The examples run as users would run them: real processes, real loopback HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path: Path, tmp_path: Path) -> None:
    """Each example exits 0 and prints a ledger report, against the loopback fake provider."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["COSTWISE_LEDGER"] = str(tmp_path / "ledger.sqlite")
    out = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "total" in out.stdout
