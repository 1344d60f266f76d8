"""The Batcher: packed questions, each caller its own answer, re-asks, exact cost split."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from costwise import BatchError
from costwise.batch import AsyncBatcher, Batcher, parse_answers, split_exact
from costwise.ledger import LedgerEntry, MemoryStore
from costwise.pricing import Usage, to_nanos
from costwise.testing import Error, FakeProvider, Reply, fake_async_client, fake_client

SYSTEM = "You are a careful arithmetic tutor who explains nothing and answers briefly. " * 20
QUESTIONS = [f"What is {n} plus {n}?" for n in range(1, 8)]


def answer_of(question: str) -> str:
    return f"answer to <{question}>"


def packed_reply(
    mangle: Callable[[list[tuple[str, str]]], list[tuple[str, str]]] | None = None,
    *,
    raw: str | None = None,
) -> Callable[[dict[str, Any]], Any]:
    """A provider that answers packed prompts properly, then lets `mangle` spoil the answers."""

    def reply(body: dict[str, Any]) -> Any:
        user = body["messages"][-1]["content"]
        structured = (body.get("response_format") or {}).get("type") == "json_schema"
        if user.startswith("[1] "):
            pairs = [
                (m.group(1), answer_of(m.group(2)))
                for m in re.finditer(r"^\[(\d+)\] (.*)$", user, re.MULTILINE)
            ]
        else:
            return Reply(answer_of(user))
        if raw is not None:
            return Reply(raw)
        if mangle is not None:
            pairs = mangle(pairs)
        if structured:
            return Reply(json.dumps({"answers": [{"id": i, "answer": a} for i, a in pairs]}))
        return Reply("\n".join(f"[{i}] {a}" for i, a in pairs))

    return reply


def rows(store: MemoryStore) -> list[LedgerEntry]:
    return list(store.entries())


def test_map_packs_and_answers_each_caller() -> None:
    """Seven questions, one request (JSON answers for gpt-4o-mini), each answer to its caller."""
    provider, store = FakeProvider(reply=packed_reply()), MemoryStore()
    client = fake_client(provider, ledger=store)
    with Batcher(client, model="gpt-4o-mini", system="Be brief.") as batcher:
        assert batcher.structured
        answers = batcher.map(QUESTIONS, feature="math")
    assert answers == [answer_of(q) for q in QUESTIONS]
    (call,) = provider.calls()
    assert call.json["response_format"]["type"] == "json_schema"
    entries = rows(store)
    assert len(entries) == len(QUESTIONS)
    assert {e.feature for e in entries} == {"math"}
    assert all(e.final and e.strategy == "batcher" for e in entries)


def test_cost_split_is_exact() -> None:
    """Per-caller costs and tokens add up to the packed request's, to the nano-dollar."""
    provider, store = FakeProvider(reply=packed_reply()), MemoryStore()
    client = fake_client(provider, ledger=store)
    batcher = Batcher(client, model="gpt-4o", max_size=7, system=SYSTEM)
    features = ["a", "b", "c", "a", "b", "c", "a"]
    futures = [
        batcher._enqueue(q, f, hold=True).future for q, f in zip(QUESTIONS, features, strict=True)
    ]
    batcher.flush()
    assert [f.result() for f in futures] == [answer_of(q) for q in QUESTIONS]
    entries = rows(store)
    total = sum(e.cost_nanos or 0 for e in entries)
    prompt = sum(e.prompt_tokens for e in entries)
    completion = sum(e.completion_tokens for e in entries)
    expected = client.prices.cost(
        "gpt-4o", Usage(prompt_tokens=prompt, completion_tokens=completion)
    )
    assert expected is not None and total == to_nanos(expected)
    assert {e.feature for e in entries} == {"a", "b", "c"}
    # a long shared system prompt is paid once instead of seven times
    assert sum(e.baseline_nanos or 0 for e in entries) > total


def test_numbered_text_for_models_without_json_schema() -> None:
    """Models without structured output get numbered questions and answers."""
    provider = FakeProvider(reply=packed_reply())
    client = fake_client(provider)
    batcher = Batcher(client, model="deepseek-chat")
    assert not batcher.structured
    assert batcher.map(QUESTIONS[:3]) == [answer_of(q) for q in QUESTIONS[:3]]
    assert "response_format" not in provider.calls()[0].json


@pytest.mark.parametrize("structured", [True, False])
def test_missing_and_duplicate_answers_are_reasked(structured: bool) -> None:
    """A missing answer and an id answered twice are asked again alone; nobody gets another's."""

    def spoil(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        kept = [p for p in pairs if p[0] not in ("2", "4")]  # 2 and 4 missing
        kept.append(("5", "a second answer for 5"))  # 5 answered twice: ambiguous
        kept.append(("99", "an answer to nothing"))  # extra: ignored
        return kept

    provider, store = FakeProvider(reply=packed_reply(spoil)), MemoryStore()
    client = fake_client(provider, ledger=store)
    answers = Batcher(client, model="gpt-4o-mini", structured=structured).map(QUESTIONS)
    assert answers == [answer_of(q) for q in QUESTIONS]
    assert len(provider.calls()) == 1 + 3
    entries = rows(store)
    reasked = [e for e in entries if e.detail.get("reasked")]
    unanswered = [e for e in entries if e.reason == "unanswered"]
    assert len(reasked) == len(unanswered) == 3
    assert {e.call_id for e in reasked} == {e.call_id for e in unanswered}
    assert sum(e.final for e in entries) == len(QUESTIONS)  # one final entry per caller


def test_unparseable_answer_reasks_everything() -> None:
    """A reply that is neither JSON nor numbered text: every question is asked alone."""
    provider = FakeProvider(reply=packed_reply(raw="Sorry, I can't help with that."))
    answers = Batcher(fake_client(provider), model="gpt-4o-mini").map(QUESTIONS[:4])
    assert answers == [answer_of(q) for q in QUESTIONS[:4]]
    assert len(provider.calls()) == 5


def test_size_limit_splits_packs() -> None:
    """More questions than max_size go in several requests."""
    provider = FakeProvider(reply=packed_reply())
    answers = Batcher(fake_client(provider), model="gpt-4o-mini", max_size=3).map(QUESTIONS)
    assert answers == [answer_of(q) for q in QUESTIONS]
    assert len(provider.calls()) == 3


def test_window_zero_never_delays() -> None:
    """With the default window, a submitted question is sent at once, alone and unpacked."""
    provider = FakeProvider(reply=packed_reply())
    with Batcher(fake_client(provider), model="gpt-4o-mini", system="S") as batcher:
        assert batcher.submit("Hi?").result(timeout=5) == answer_of("Hi?")
    (call,) = provider.calls()
    assert call.json["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Hi?"},
    ]


def test_window_collects_submissions() -> None:
    """With max_wait > 0, questions submitted together share one request."""
    provider = FakeProvider(reply=packed_reply())
    with Batcher(fake_client(provider), model="gpt-4o-mini", max_wait=0.2) as batcher:
        futures = [batcher.submit(q) for q in QUESTIONS[:4]]
        assert [f.result(timeout=5) for f in futures] == [answer_of(q) for q in QUESTIONS[:4]]
    assert len(provider.calls()) == 1


def test_failed_request_reaches_every_caller() -> None:
    """A failing packed request raises for each of its callers; the ledger notes each failure."""
    provider, store = FakeProvider().script(Error(500)), MemoryStore()
    batcher = Batcher(fake_client(provider, ledger=store), model="gpt-4o-mini")
    futures = [batcher._enqueue(q, None, hold=True).future for q in QUESTIONS[:3]]
    batcher.flush()
    for f in futures:
        with pytest.raises(Exception, match="server had an error"):
            f.result()
    assert [e.status for e in rows(store)] == ["InternalServerError"] * 3


def test_bad_input() -> None:
    """Empty questions, bad sizes and arguments the batcher owns are refused; [] is fine."""
    client = fake_client(FakeProvider())
    batcher = Batcher(client, model="gpt-4o-mini")
    with pytest.raises(BatchError):
        batcher.map(["ok", "  "])
    assert batcher.map([]) == []
    bad: list[dict[str, Any]] = [
        {"max_size": 0},
        {"max_size": 101},
        {"max_wait": -1},
        {"messages": []},
    ]
    for kwargs in bad:
        with pytest.raises(BatchError):
            Batcher(client, model="gpt-4o-mini", **kwargs)
    batcher.close()
    with pytest.raises(BatchError):
        batcher.submit("late")


@pytest.mark.anyio
async def test_async_gather_packs_in_one_turn() -> None:
    """Concurrent asks made in the same event-loop turn share one request, with no wait."""
    provider, store = FakeProvider(reply=packed_reply()), MemoryStore()
    batcher = AsyncBatcher(fake_async_client(provider, ledger=store), model="gpt-4o-mini")
    answers = await asyncio.gather(
        *(batcher.ask(q, feature=f"f{i % 2}") for i, q in enumerate(QUESTIONS))
    )
    assert answers == [answer_of(q) for q in QUESTIONS]
    assert len(provider.calls()) == 1
    assert {e.feature for e in rows(store)} == {"f0", "f1"}


@pytest.mark.anyio
async def test_async_reask_and_errors() -> None:
    """The async twin re-asks missing answers and reports a failed request to each caller."""
    provider = FakeProvider(reply=packed_reply(lambda pairs: pairs[1:]))
    batcher = AsyncBatcher(fake_async_client(provider), model="gpt-4o-mini", max_size=4)
    assert await batcher.map(QUESTIONS[:4]) == [answer_of(q) for q in QUESTIONS[:4]]
    assert len(provider.calls()) == 2
    provider.script(Error(429))
    with pytest.raises(Exception, match="Rate limit"):
        await batcher.ask("one more?")
    await batcher.flush()


def test_parse_answers_is_strict() -> None:
    """Out-of-range, duplicate and empty answers are dropped; fenced JSON is read."""
    assert parse_answers("[1] a\n[2] b\n[2] c\n[3]\n[4] d", 3, structured=False) == {1: "a"}
    fenced = '```json\n{"answers": [{"id": "1", "answer": "x"}, {"id": "q2", "answer": 7}]}\n```'
    assert parse_answers(fenced, 2, structured=True) == {1: "x", 2: "7"}
    assert parse_answers(None, 2, structured=True) == {}


def test_split_exact() -> None:
    """Parts are proportional, never lose or add a unit, and zero weights split evenly."""
    assert split_exact(10, [1, 1, 1]) == [4, 3, 3]
    assert split_exact(7, [0, 0]) == [4, 3]
    assert split_exact(0, [3, 5]) == [0, 0]
    parts = split_exact(1_000_003, [7, 13, 29, 1])
    assert sum(parts) == 1_000_003
    assert split_exact(5, []) == []
    with pytest.raises(ValueError, match="negative"):
        split_exact(5, [-1, 2])


# -- questions asked again: answered from the client's response cache -------------------


def _questions_sent(provider: FakeProvider) -> list[str]:
    """Every question the provider was asked, packed or alone."""
    out = []
    for call in provider.calls():
        user = call.json["messages"][-1]["content"]
        found = re.findall(r"^\[\d+\] (.*)$", user, re.MULTILINE)
        out += found if found else [user]
    return out


def test_questions_asked_again_come_from_the_response_cache() -> None:
    from costwise.cache import MemoryCacheStore
    from costwise.strategies import ResponseCache

    provider, store = FakeProvider(reply=packed_reply()), MemoryStore()
    cache = ResponseCache(MemoryCacheStore())
    client = fake_client(provider, ledger=store, strategies=[cache])
    with Batcher(client, model="gpt-4o-mini", system="Be brief.", temperature=0) as batcher:
        first = batcher.map(QUESTIONS[:4], feature="math")
        again = batcher.map([QUESTIONS[1], QUESTIONS[5], QUESTIONS[3]], feature="math")
        one = batcher.submit(QUESTIONS[0]).result()
    assert first == [answer_of(q) for q in QUESTIONS[:4]]
    assert again == [answer_of(q) for q in (QUESTIONS[1], QUESTIONS[5], QUESTIONS[3])]
    assert one == answer_of(QUESTIONS[0])
    assert _questions_sent(provider) == [*QUESTIONS[:4], QUESTIONS[5]]  # nothing sent twice
    hits = [e for e in rows(store) if e.kind == "hit"]
    assert len(hits) == 3 and all(
        e.strategy == "cache" and e.detail == {"batcher": True} for e in hits
    )
    assert all(e.cost_nanos == 0 and e.baseline_nanos and e.final for e in hits)
    assert {e.feature for e in hits} == {"math", "untagged"}
    # a packed answer never answers a plain create of the same question (its own scope)
    plain = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": QUESTIONS[0]},
        ],
        temperature=0,
    )
    assert len(provider.calls()) == 3 and plain.choices[0].message.content


def test_sampled_or_uncached_batchers_ask_again() -> None:
    from costwise.cache import MemoryCacheStore
    from costwise.strategies import ResponseCache

    for temperature, strategies in ((0.7, [ResponseCache(MemoryCacheStore())]), (0, [])):
        provider = FakeProvider(reply=packed_reply())
        client = fake_client(provider, ledger=MemoryStore(), strategies=strategies)
        with Batcher(client, model="gpt-4o-mini", temperature=temperature) as batcher:
            batcher.map(QUESTIONS[:2])
            batcher.map(QUESTIONS[:2])
        assert _questions_sent(provider) == QUESTIONS[:2] * 2


def test_another_api_key_does_not_share_batched_answers() -> None:
    from costwise.cache import MemoryCacheStore
    from costwise.strategies import ResponseCache

    shared = MemoryCacheStore()
    provider = FakeProvider(reply=packed_reply())
    for key in ("tenant-a", "tenant-b"):
        client = fake_client(
            provider, ledger=MemoryStore(), strategies=[ResponseCache(shared)], api_key=key
        )
        with Batcher(client, model="gpt-4o-mini", temperature=0) as batcher:
            batcher.map(QUESTIONS[:2])
    assert _questions_sent(provider) == QUESTIONS[:2] * 2


@pytest.mark.anyio
async def test_async_questions_asked_again_come_from_the_response_cache() -> None:
    from costwise.cache import MemoryCacheStore
    from costwise.strategies import ResponseCache

    provider, store = FakeProvider(reply=packed_reply()), MemoryStore()
    client = fake_async_client(
        provider, ledger=store, strategies=[ResponseCache(MemoryCacheStore())]
    )
    batcher = AsyncBatcher(client, model="gpt-4o-mini", temperature=0)
    first = await batcher.map(QUESTIONS[:3])
    again = await batcher.map(QUESTIONS[1:4])
    assert first == [answer_of(q) for q in QUESTIONS[:3]]
    assert again == [answer_of(q) for q in QUESTIONS[1:4]]
    assert _questions_sent(provider) == [*QUESTIONS[:3], QUESTIONS[3]]
    assert sum(e.kind == "hit" for e in rows(store)) == 2
