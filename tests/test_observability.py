"""What the ledger and logs reveal: DEBUG decisions, exports, and never the prompt or the key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletionMessageParam

from costwise.cache import MemoryCacheStore
from costwise.ledger import Ledger, SQLiteStore
from costwise.strategies import ModelOverride, ResponseCache, Router
from costwise.testing import FakeProvider, fake_client

SECRET_KEY = "sk-costwise-test-secret-0123456789"
PROMPT = "My passport number is X1234567 and my card was stolen"
MSGS: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT}]


def test_every_decision_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    """Cache miss and hit, a route and an override each leave a DEBUG record on 'costwise'."""
    client = fake_client(
        FakeProvider(),
        strategies=[
            ResponseCache(MemoryCacheStore()),
            Router(tasks={"classify": "gpt-4o-mini"}),
        ],
    )
    with caplog.at_level(logging.DEBUG, logger="costwise"):
        for _ in range(2):
            client.chat.completions.create(
                model="gpt-4o", messages=MSGS, temperature=0, task="classify"
            )
        fake_client(
            FakeProvider(), strategies=[ModelOverride("gpt-4o-mini")]
        ).chat.completions.create(model="gpt-4o", messages=MSGS)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "costwise")
    assert "cache: miss" in text
    assert "cache: hit" in text
    assert "router: gpt-4o -> gpt-4o-mini" in text
    assert "override: gpt-4o -> gpt-4o-mini" in text
    assert PROMPT not in text


def test_ledger_never_holds_the_prompt_or_the_key(tmp_path: Path) -> None:
    """Neither the SQLite file, its journal, nor the CSV/JSONL exports contain message text or
    the API key (message capture is off by default)."""
    path = tmp_path / "ledger.sqlite"
    client = fake_client(FakeProvider(), api_key=SECRET_KEY, ledger=SQLiteStore(path))
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, feature="support")
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
    list(stream)
    ledger = client.ledger
    ledger.export_csv(tmp_path / "l.csv")
    ledger.export_jsonl(tmp_path / "l.jsonl")
    ledger.close()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".csv" for p in files)
    for p in files:
        data = p.read_bytes()
        assert PROMPT.encode() not in data, p
        assert b"X1234567" not in data, p
        assert SECRET_KEY.encode() not in data, p
    assert Ledger(path).report().row("support").calls == 3


def test_ledger_exports_to_a_dataframe() -> None:
    """With pandas installed, the ledger becomes a DataFrame, one row per entry."""
    pytest.importorskip("pandas")
    client = fake_client(FakeProvider())
    for feature in ("a", "b", "b"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, feature=feature)
    frame = client.ledger.to_dataframe()
    assert len(frame) == 3
    assert sorted(frame["feature"]) == ["a", "b", "b"]
    assert frame["cost_nanos"].sum() > 0
