"""Budgets: warn, downgrade or refuse before sending; shared through the ledger store."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessageParam

from costwise import BudgetExceededError, ConfigurationError, CostwiseWarning
from costwise.ledger import LedgerEntry, MemoryStore, SQLiteStore
from costwise.strategies.budget import Budget, BudgetLimit, period_start
from costwise.testing import FakeProvider, Reply, fake_async_client, fake_client

MSGS: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
NOW = 1_795_000_000.0  # 2026-11-18 (a fixed clock keeps period boundaries deterministic)
# gpt-4o at $2.50/M in and $10/M out: 1000 in + 100 out = $0.0035 per call.
CALL_COST = Decimal("0.0035")


def fixed_usage(_: dict[str, Any]) -> Reply:
    return Reply("ok", usage=(1000, 100))


def spent_entry(store: Any, usd: str, *, feature: str = "chat", ts: float = NOW - 60) -> None:
    n = len(getattr(store, "_entries", [])) + int(ts)
    store.write(
        [
            LedgerEntry(
                id=f"seed{n:x}{feature}",
                call_id="seed",
                ts=ts,
                feature=feature,
                requested_model="gpt-4o",
                model="gpt-4o",
                cost_nanos=int(Decimal(usd) * 10**9),
                baseline_nanos=int(Decimal(usd) * 10**9),
                final=True,
            )
        ]
    )


def test_refuse_raises_before_sending() -> None:
    """Once the overall budget is spent the call is refused and nothing reaches upstream."""
    store, provider = MemoryStore(), FakeProvider(reply=fixed_usage)
    spent_entry(store, "1.00")
    with fake_client(provider, ledger=store, strategies=[Budget(1, clock=lambda: NOW)]) as c:
        with pytest.raises(BudgetExceededError) as info:
            c.chat.completions.create(model="gpt-4o", messages=MSGS, feature="chat")
    assert provider.requests == []
    assert info.value.limit == Decimal(1)
    assert info.value.spent == Decimal(1)
    assert info.value.period == "day"
    assert info.value.feature is None


def test_under_budget_passes() -> None:
    """Below the cap the call goes through unchanged."""
    store, provider = MemoryStore(), FakeProvider(reply=fixed_usage)
    spent_entry(store, "0.99")
    with fake_client(provider, ledger=store, strategies=[Budget("1", clock=lambda: NOW)]) as c:
        c.chat.completions.create(model="gpt-4o", messages=MSGS, feature="chat")
    assert len(provider.requests) == 1


def test_feature_budget_only_caps_its_feature() -> None:
    """A per-feature cap refuses that feature and lets the others through."""
    store, provider = MemoryStore(), FakeProvider(reply=fixed_usage)
    spent_entry(store, "5", feature="chat")
    budget = Budget(features={"chat": 5}, clock=lambda: NOW)
    with fake_client(provider, ledger=store, strategies=[budget]) as c:
        with pytest.raises(BudgetExceededError, match="feature 'chat'"):
            c.chat.completions.create(model="gpt-4o", messages=MSGS, feature="chat")
        c.chat.completions.create(model="gpt-4o", messages=MSGS, feature="search")
    assert len(provider.requests) == 1


def test_downgrade_switches_model_and_is_recorded() -> None:
    """action='downgrade' sends the call to the cheaper model; the ledger names the budget."""
    store, provider = MemoryStore(), FakeProvider(reply=fixed_usage)
    spent_entry(store, "2")
    budget = Budget(1, action="downgrade", downgrade_to="gpt-4o-mini", clock=lambda: NOW)
    with fake_client(provider, ledger=store, strategies=[budget]) as c:
        c.chat.completions.create(model="gpt-4o", messages=MSGS, feature="chat")
    assert provider.requests[0].json["model"] == "gpt-4o-mini"
    last = next(e for e in store.entries() if e.call_id != "seed")
    assert last.strategy == "budget"
    assert last.requested_model == "gpt-4o"


def test_warn_lets_the_call_through() -> None:
    """action='warn' warns with CostwiseWarning and still sends the call."""
    store, provider = MemoryStore(), FakeProvider(reply=fixed_usage)
    spent_entry(store, "3")
    with fake_client(
        provider, ledger=store, strategies=[Budget(1, action="warn", clock=lambda: NOW)]
    ) as c:
        with pytest.warns(CostwiseWarning, match="budget of \\$1 per day is spent"):
            c.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert len(provider.requests) == 1


def test_spend_before_the_period_does_not_count() -> None:
    """Spend before the current day (or month) does not count against its cap."""
    store = MemoryStore()
    spent_entry(store, "10", ts=period_start("day", NOW) - 1)
    day = Budget(1, clock=lambda: NOW)
    day.store = store
    assert day.spent(day.limits[0]) == 0
    month = Budget(
        limits=[BudgetLimit(usd=Decimal(1), period="month")], store=store, clock=lambda: NOW
    )
    assert month.spent(month.limits[0]) == Decimal(10)
    assert period_start("month", NOW) <= NOW - 86400


def test_bad_configuration_is_refused() -> None:
    """No cap, negative caps, unknown actions and downgrade without a model are errors."""
    with pytest.raises(ConfigurationError):
        Budget()
    with pytest.raises(ConfigurationError):
        Budget(-1)
    with pytest.raises(ConfigurationError):
        Budget(1, action="explode")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="downgrade_to"):
        Budget(1, action="downgrade")


@pytest.mark.anyio
async def test_async_client_refuses_too() -> None:
    """The same strategy refuses under AsyncCostwiseClient."""
    store, provider = MemoryStore(), FakeProvider(reply=fixed_usage)
    spent_entry(store, "1")
    async with fake_async_client(
        provider, ledger=store, strategies=[Budget(1, clock=lambda: NOW)]
    ) as c:
        with pytest.raises(BudgetExceededError):
            await c.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert provider.requests == []


def test_concurrent_workers_overshoot_at_most_n_calls(tmp_path: Path) -> None:
    """N workers sharing one SQLite ledger overshoot the cap by at most N calls, as documented."""
    path = tmp_path / "shared.sqlite"
    provider = FakeProvider(reply=fixed_usage, latency=0.02)
    limit = CALL_COST * 10
    workers = 6
    refused = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(workers, timeout=60)

    def worker() -> None:
        # Each worker is its own client with its own connection: like separate processes.
        try:
            with fake_client(
                provider, ledger=SQLiteStore(path), strategies=[Budget(limit)]
            ) as client:
                barrier.wait()
                for _ in range(40):
                    try:
                        client.chat.completions.create(model="gpt-4o", messages=MSGS)
                    except BudgetExceededError:
                        refused.append(1)
                        return
        except BaseException as exc:  # surfaced below, so one failure cannot hang the others
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = SQLiteStore(path)
    spent = Decimal(store.spent_nanos(since=time.time() - 3600)) / 10**9
    assert len(refused) == workers  # every worker was eventually refused
    assert spent >= limit
    assert spent <= limit + workers * CALL_COST
    assert len(provider.requests) * CALL_COST == spent
