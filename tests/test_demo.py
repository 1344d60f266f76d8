"""`costwise demo`: runs end to end offline, and its --live mode talks to a real HTTP server."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from costwise.testing import FakeProvider, serve


def _questions(path: Path) -> Path:
    # A tiny stand-in for the Banking77 file (same columns), so the test needs no shared data.
    rows = [
        ("How do I reset my PIN?", "change_pin"),
        ("My card payment was declined", "declined_card_payment"),
        ("I was charged twice for one purchase", "transaction_charged_twice"),
        ("How long does a transfer take?", "transfer_timing"),
        ("Can I top up by bank transfer?", "top_up_by_bank_transfer_charge"),
        ("My card has not arrived yet", "card_arrival"),
    ] * 10
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    return path


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "costwise", "demo", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=full_env,
        cwd=tmp_path,
    )


def test_demo_offline(tmp_path: Path) -> None:
    """The demo replays traffic twice, prints the comparison and writes the HTML report."""
    data = _questions(tmp_path / "q.csv")
    out = _run(["--data", str(data), "--scale", "0.05", "--out", "run", "--latency", "0"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "per feature" in out.stdout and "per strategy" in out.stdout
    assert "total" in out.stdout
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org", "")


def test_demo_live_mode_uses_the_configured_server(tmp_path: Path) -> None:
    """--live sends the small run to OPENAI_BASE_URL (here a loopback fake provider)."""
    data = _questions(tmp_path / "q.csv")
    provider = FakeProvider()
    with serve(provider) as server:
        out = _run(
            ["--data", str(data), "--live", "--out", "live"],
            tmp_path,
            OPENAI_BASE_URL=server.base_url,
            OPENAI_API_KEY="test-key",
        )
    assert out.returncode == 0, out.stderr
    assert len(provider.requests) > 0


def test_demo_without_data_says_so(tmp_path: Path) -> None:
    """Without the Banking77 file the demo stops with a clear message, not a traceback."""
    out = _run(["--data", str(tmp_path / "missing.csv")], tmp_path, COSTWISE_DEMO_DATA="")
    if out.returncode == 0:
        pytest.skip("the shared Banking77 file is present on this machine")
    assert out.returncode == 2
    assert "Banking77" in out.stderr
