"""Cascade: cheap tier first, checks, escalation on bad answers and on errors, budget, streams."""

from __future__ import annotations

from typing import Any

import openai
import pytest
import tenacity

from costwise import Call, CostwiseWarning
from costwise._exceptions import ConfigurationError
from costwise.ledger import MemoryStore
from costwise.strategies.cascade import Cascade, Tier
from costwise.strategies.checks import all_of, not_empty, not_truncated, self_agreement
from costwise.testing import Error, FakeProvider, Reply, Timeout, fake_async_client, fake_client

MSGS = [{"role": "user", "content": "What is the capital of France?"}]
CHEAP, STRONG = "gpt-4o-mini", "gpt-4o"


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def make(mode: str, provider: FakeProvider, cascade: Cascade, **kw: Any) -> Any:
    """Create through a sync or async client; returns (result, ledger store)."""
    store = MemoryStore()
    if mode == "sync":
        client: Any = fake_client(provider, strategies=[cascade], ledger=store)
        result = client.chat.completions.create(model=STRONG, messages=MSGS, **kw)
        if kw.get("stream"):
            result = [c for c in result]
    else:
        aclient: Any = fake_async_client(provider, strategies=[cascade], ledger=store)
        result = await aclient.chat.completions.create(model=STRONG, messages=MSGS, **kw)
        if kw.get("stream"):
            result = [c async for c in result]
    return result, store


def models(provider: FakeProvider) -> list[str]:
    return [r.json["model"] for r in provider.calls()]


@pytest.mark.anyio
async def test_cheap_answer_accepted(mode: str) -> None:
    """A passing cheap answer is returned; one attempt, tier 0, saving against the baseline."""
    provider = FakeProvider()
    result, store = await make(mode, provider, Cascade([CHEAP, STRONG]))
    assert models(provider) == [CHEAP] and result.choices[0].message.content
    (entry,) = store.entries()
    assert (entry.tier, entry.final, entry.strategy) == (0, True, "cascade")
    assert entry.baseline_nanos and entry.cost_nanos and entry.baseline_nanos > entry.cost_nanos


@pytest.mark.anyio
async def test_rejected_answer_escalates_with_reason(mode: str) -> None:
    """A failing answer escalates; the rejected attempt carries the check's reason."""
    provider = FakeProvider().script(Reply("", finish_reason="length"), model=CHEAP)
    cascade = Cascade([CHEAP, STRONG], check=all_of(not_truncated(), not_empty()))
    _, store = await make(mode, provider, cascade)
    assert models(provider) == [CHEAP, STRONG]
    first, second = store.entries()
    assert (first.tier, first.final, first.reason) == (0, False, "truncated (length)")
    assert (second.tier, second.final) == (1, True)
    row = store.aggregate()[0]
    assert (row.calls, row.escalations) == (1, 1)


@pytest.mark.anyio
@pytest.mark.parametrize("failure", [Error(429), Error(503), Timeout()])
async def test_errors_escalate(mode: str, failure: Any) -> None:
    """Rate limits, 5xx and timeouts on a tier fall through to the next tier."""
    provider = FakeProvider().script(failure, model=CHEAP)
    result, store = await make(mode, provider, Cascade([CHEAP, STRONG]))
    assert models(provider) == [CHEAP, STRONG] and result.choices[0].message.content
    first, second = store.entries()
    assert first.status != "ok" and first.tier == 0 and second.final


@pytest.mark.anyio
async def test_every_tier_fails_last_error_unchanged(mode: str) -> None:
    """When every tier fails the last SDK error is raised as is."""
    provider = FakeProvider()
    provider.script(Error(429), model=CHEAP).script(Error(500, message="strong down"), model=STRONG)
    with pytest.raises(openai.InternalServerError, match="strong down"):
        await make(mode, provider, Cascade([CHEAP, STRONG]))


@pytest.mark.anyio
async def test_other_errors_do_not_escalate(mode: str) -> None:
    """A 400 is the caller's fault: raised at once, no second tier."""
    provider = FakeProvider().script(Error(400), model=CHEAP)
    with pytest.raises(openai.BadRequestError):
        await make(mode, provider, Cascade([CHEAP, STRONG]))
    assert models(provider) == [CHEAP]


@pytest.mark.anyio
async def test_retry_policy_retries_the_same_tier(mode: str) -> None:
    """A tenacity policy can retry a tier before escalating."""
    provider = FakeProvider().script(Error(429), model=CHEAP)
    policy = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(2),
        retry=tenacity.retry_if_exception_type(openai.RateLimitError),
        reraise=True,
    )
    await make(mode, provider, Cascade([CHEAP, STRONG], retry=policy))
    assert models(provider) == [CHEAP, CHEAP]


@pytest.mark.anyio
async def test_budget_stops_escalation(mode: str) -> None:
    """max_budget_usd stops before a tier whose estimated cost would exceed it."""
    provider = FakeProvider().script(Reply(""), model=CHEAP)
    _, store = await make(mode, provider, Cascade([CHEAP, STRONG]), max_budget_usd="0.000001")
    assert models(provider) == [CHEAP]
    (entry,) = store.entries()
    assert entry.final and entry.reason and "budget" in entry.reason
    # A generous budget lets it escalate.
    provider = FakeProvider().script(Reply(""), model=CHEAP)
    await make(mode, provider, Cascade([CHEAP, STRONG], max_budget_usd=1))
    assert models(provider) == [CHEAP, STRONG]


@pytest.mark.anyio
async def test_streams_skip_unless_buffered(mode: str) -> None:
    """A stream goes to the caller's model; with buffer_stream the accepted answer is replayed."""
    provider = FakeProvider()
    chunks, _ = await make(mode, provider, Cascade([CHEAP, STRONG]), stream=True)
    assert models(provider) == [STRONG] and provider.calls()[0].json["stream"] is True
    provider = FakeProvider()
    chunks, store = await make(
        mode,
        provider,
        Cascade([CHEAP, STRONG]),
        stream=True,
        buffer_stream=True,
        stream_options={"include_usage": True},
    )
    sent = provider.calls()[0].json
    assert models(provider) == [CHEAP] and "stream" not in sent and "stream_options" not in sent
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None
    (entry,) = store.entries()
    assert entry.final and entry.model.startswith(CHEAP)


@pytest.mark.anyio
async def test_raising_check_escalates_with_warning(mode: str) -> None:
    """A check that raises counts as failed (with a warning); the call is not lost."""

    def broken(call: Call, resp: Any) -> bool:
        raise ValueError("bad check")

    provider = FakeProvider()
    with pytest.warns(CostwiseWarning, match="bad check"):
        result, _ = await make(mode, provider, Cascade([CHEAP, STRONG], check=broken))
    assert models(provider) == [CHEAP, STRONG] and result.choices[0].message.content


@pytest.mark.anyio
async def test_self_agreement_side_call_is_overhead(mode: str) -> None:
    """Extra samples are one side call with n, recorded as overhead of the same call."""
    provider = FakeProvider()
    cascade = Cascade([Tier(model=CHEAP, check=self_agreement(3)), Tier(model=STRONG)])
    _, store = await make(mode, provider, cascade)
    sides = [r.json for r in provider.calls() if r.json.get("n") == 2]
    assert len(sides) == 1
    kinds = sorted(e.kind for e in store.entries())
    assert "overhead" in kinds and len({e.call_id for e in store.entries()}) == 1


def test_bad_configuration() -> None:
    """Too few tiers, pricier tiers first and unpriced models fail at construction."""
    with pytest.raises(ConfigurationError):
        Cascade([CHEAP])
    with pytest.raises(ConfigurationError):
        Cascade([CHEAP, ""])
    with pytest.raises(ConfigurationError, match="cheapest first"):
        fake_client(strategies=[Cascade([STRONG, CHEAP])])
    with pytest.raises(ConfigurationError, match="no price"):
        fake_client(strategies=[Cascade([CHEAP, "no-such-model-xyz"])])
    with pytest.raises(ConfigurationError):
        Cascade([CHEAP, STRONG], max_budget_usd=-1)


@pytest.mark.anyio
async def test_router_before_cascade_picks_the_starting_tier(mode: str) -> None:
    """A router that picked a tier makes the cascade start there; otherwise tier 0."""
    from costwise.strategies.router import Router

    provider = FakeProvider()
    store = MemoryStore()
    strategies = [Router({"reasoning": STRONG, "chat": CHEAP}), Cascade([CHEAP, STRONG])]
    if mode == "sync":
        client: Any = fake_client(provider, strategies=strategies, ledger=store)
        client.chat.completions.create(model=STRONG, messages=MSGS, task="reasoning")
        client.chat.completions.create(model=STRONG, messages=MSGS, task="chat")
    else:
        aclient: Any = fake_async_client(provider, strategies=strategies, ledger=store)
        await aclient.chat.completions.create(model=STRONG, messages=MSGS, task="reasoning")
        await aclient.chat.completions.create(model=STRONG, messages=MSGS, task="chat")
    assert models(provider) == [STRONG, CHEAP]
    entries = list(store.entries())
    assert [e.tier for e in entries] == [1, 0]
    assert entries[0].strategy == "router+cascade"


# -- found in review ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_retry_policy_without_reraise_still_escalates(mode: str) -> None:
    """A user's tenacity policy without ``reraise=True``: its RetryError would wrap the SDK
    error and stop the escalation; the cascade retries, then escalates as usual."""
    policy = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(2),
        retry=tenacity.retry_if_exception_type(openai.RateLimitError),
    )
    provider = FakeProvider().script(Error(429), Error(429), model=CHEAP)
    result, store = await make(mode, provider, Cascade([CHEAP, STRONG], retry=policy))
    assert models(provider) == [CHEAP, CHEAP, STRONG]
    assert result.model.startswith(STRONG)
    assert [e.status for e in store.entries()] == ["RateLimitError", "RateLimitError", "ok"]


@pytest.mark.anyio
async def test_the_budget_counts_what_a_checks_side_calls_spent(mode: str) -> None:
    """``max_budget_usd`` adds up every entry of the call so far, a judge's too: a judge
    that spent the budget stops the escalation."""
    from costwise.strategies.checks import llm_judge

    def reply(body: dict[str, Any]) -> str:
        return "2" if body["model"] == "gpt-4" else "answer 391"  # the judge rejects

    provider = FakeProvider(reply=reply)
    long_question = [{"role": "user", "content": "What is 17*23? " + "context " * 2000}]
    cascade = Cascade([CHEAP, STRONG], check=llm_judge("gpt-4"), max_budget_usd="0.01")
    store = MemoryStore()
    if mode == "sync":
        client: Any = fake_client(provider, strategies=[cascade], ledger=store)
        client.chat.completions.create(model=STRONG, messages=long_question, max_tokens=100)
    else:
        aclient: Any = fake_async_client(provider, strategies=[cascade], ledger=store)
        await aclient.chat.completions.create(model=STRONG, messages=long_question, max_tokens=100)
    # tier 0 ($0.0003) and its judge ($0.0167) spent more than the budget: no next tier
    assert models(provider) == [CHEAP, "gpt-4"]


@pytest.mark.anyio
async def test_tiers_without_a_needed_capability_are_skipped(mode: str) -> None:
    """A request for structured output skips a tier whose model has none (it would refuse
    with a 400, which fails the call); one with tools only keeps it."""
    schema = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    provider = FakeProvider()
    cascade = Cascade(["gpt-3.5-turbo", STRONG])
    await make(mode, provider, cascade, response_format=schema)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    await make(mode, provider, cascade, tools=tools)
    assert models(provider) == [STRONG, "gpt-3.5-turbo"]
