"""The exact cache's express lane must answer and record exactly what the pipeline does.

When `ResponseCache` is first in the pipeline, a plain ``create`` is looked up before any
`Call` is built (`ResponseCache.express`, see costwise._config). Each scenario here runs
twice over one shared cache store: through a client whose cache is first (the lane), and
through one whose first strategy is a rewrite that never acts (the general pipeline), and
compares the responses and every ledger entry field by field, sync and async.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from typing_extensions import override

import costwise
from costwise import AsyncCostwiseClient, Call, CostwiseClient
from costwise.cache import MemoryCacheStore, is_hit
from costwise.ledger import MemoryStore
from costwise.strategies import ResponseCache, SemanticCache
from costwise.testing import FakeProvider, Reply
from test_direct_path import _answer, no_usage
from test_semantic import PLAIN, ToyEmbedder

MSGS: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
_VOLATILE = ("id", "call_id", "ts", "latency_ms")


def _idle(call: Call) -> Call:
    """A first strategy that never acts: the cache behind it runs in the pipeline."""
    return call


class CountingStore(MemoryCacheStore):
    """A real memory store that counts reads, to show a miss is looked up once."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    @override
    def get(self, key: str) -> bytes | None:
        self.gets += 1
        return super().get(key)


Setup = Callable[[], Callable[[httpx2.Request], httpx2.Response]]

SCENARIOS: dict[str, tuple[Setup, dict[str, Any]]] = {
    "cached tokens, dated snapshot": (
        lambda: FakeProvider().script(
            Reply("Paris.", model="gpt-4o-2024-08-06", usage=(2000, 10), cached_tokens=1024)
        ),
        {"model": "gpt-4o", "temperature": 0, "feature": "geo"},
    ),
    "answered by a cheaper model than asked for": (
        lambda: FakeProvider().script(Reply("Paris.", model="gpt-4o-mini", usage=(50, 5))),
        {"model": "gpt-4o", "temperature": 0},
    ),
    "a seed instead of temperature 0": (FakeProvider, {"model": "gpt-4o-mini", "seed": 7}),
    "no usage reported": (lambda: no_usage, {"model": "gpt-4o-mini", "temperature": 0}),
    "unknown model": (
        lambda: FakeProvider().script(Reply("hi", model="no-such-model", usage=(7, 3))),
        {"model": "no-such-model", "temperature": 0},
    ),
    "not repeatable": (FakeProvider, {"model": "gpt-4o-mini", "temperature": 0.7}),
}


def _comparable(entries: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.to_dict().items() if k not in _VOLATILE} for e in entries]


def _options(strategies: list[Any], handler: Any, *, is_async: bool) -> dict[str, Any]:
    http: Any = (httpx2.AsyncClient if is_async else httpx2.Client)(
        transport=httpx2.MockTransport(handler)
    )
    return {
        "api_key": "k",
        "base_url": "http://test/v1",
        "max_retries": 0,
        "ledger": MemoryStore(),
        "strategies": strategies,
        "http_client": http,
    }


def _sync_run(setup: Setup, kwargs: dict[str, Any], lane: bool) -> Any:
    cache = ResponseCache(MemoryCacheStore())
    strategies = [cache] if lane else [_idle, cache]
    with CostwiseClient(**_options(strategies, setup(), is_async=False)) as client:
        assert (client._costwise.pipeline.front is not None) == lane  # the path under test
        answers = [client.chat.completions.create(messages=MSGS, **dict(kwargs)) for _ in range(2)]
        return (
            [_answer(a) for a in answers],
            [is_hit(a) for a in answers],
            _comparable(client.ledger.entries()),
        )


async def _async_run(setup: Setup, kwargs: dict[str, Any], lane: bool) -> Any:
    cache = ResponseCache(MemoryCacheStore())
    strategies = [cache] if lane else [_idle, cache]
    async with AsyncCostwiseClient(**_options(strategies, setup(), is_async=True)) as client:
        assert (client._costwise.pipeline.front is not None) == lane
        answers = [
            await client.chat.completions.create(messages=MSGS, **dict(kwargs)) for _ in range(2)
        ]
        return (
            [_answer(a) for a in answers],
            [is_hit(a) for a in answers],
            _comparable(client.ledger.entries()),
        )


@pytest.mark.parametrize("name", SCENARIOS)
def test_express_lane_records_what_the_pipeline_records(name: str) -> None:
    setup, kwargs = SCENARIOS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", costwise.CostwiseWarning)  # the unknown model
        lane = _sync_run(setup, kwargs, lane=True)
        general = _sync_run(setup, kwargs, lane=False)
    assert lane == general
    answers, hits, entries = lane
    repeatable = name != "not repeatable"
    assert hits == [False, repeatable]
    assert answers[0] == answers[1] or not repeatable
    assert [e["kind"] for e in entries] == ["upstream", "hit" if repeatable else "upstream"]
    if repeatable:
        hit = entries[1]
        assert hit["cost_nanos"] == 0 and hit["final"] and hit["strategy"] == "cache"
        if name == "answered by a cheaper model than asked for":
            # the saving is against the call as written (gpt-4o), as in the pipeline
            assert hit["baseline_nanos"] > entries[0]["baseline_nanos"] > 0
        else:
            assert hit["baseline_nanos"] == entries[0]["baseline_nanos"]  # saved what it cost
        assert hit["prompt_tokens"] == entries[0]["prompt_tokens"] > 0


@pytest.mark.anyio
@pytest.mark.parametrize("name", SCENARIOS)
async def test_async_express_lane_records_what_the_pipeline_records(name: str) -> None:
    setup, kwargs = SCENARIOS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", costwise.CostwiseWarning)
        lane = await _async_run(setup, kwargs, lane=True)
        general = await _async_run(setup, kwargs, lane=False)
        sync = _sync_run(setup, kwargs, lane=True)
    assert lane == general == sync


def test_a_miss_is_keyed_and_looked_up_once() -> None:
    store = CountingStore()
    provider = FakeProvider()
    opts = _options([ResponseCache(store)], provider, is_async=False)
    with CostwiseClient(**opts) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, temperature=0)
        assert store.gets == 1 and store.size() == 1  # one read on the miss, then stored
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, temperature=0)
        assert store.gets == 2 and len(provider.requests) == 1


@pytest.mark.anyio
async def test_async_miss_is_keyed_and_looked_up_once() -> None:
    store = CountingStore()
    provider = FakeProvider()
    opts = _options([ResponseCache(store)], provider.async_handler, is_async=True)
    async with AsyncCostwiseClient(**opts) as client:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, temperature=0)
        assert store.gets == 1 and store.size() == 1
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, temperature=0)
        assert store.gets == 2 and len(provider.requests) == 1


def test_options_other_than_feature_take_the_pipeline() -> None:
    """``cache_refresh`` and friends are read by the strategy's flow, so they skip the lane."""
    store = CountingStore()
    provider = FakeProvider()
    with CostwiseClient(**_options([ResponseCache(store)], provider, is_async=False)) as client:
        create = client.chat.completions.create
        create(model="gpt-4o-mini", messages=MSGS, temperature=0)
        again = create(model="gpt-4o-mini", messages=MSGS, temperature=0, cache_refresh=True)
        assert not is_hit(again) and len(provider.requests) == 2
        assert not is_hit(create(model="gpt-4o-mini", messages=MSGS, temperature=0, cache=False))
        other = create(model="gpt-4o-mini", messages=MSGS, temperature=0, cache_scope="tenant-b")
        assert not is_hit(other) and len(provider.requests) == 4
        assert is_hit(create(model="gpt-4o-mini", messages=MSGS, temperature=0, feature="f"))
        entries = list(client.ledger.entries())
    assert [e.kind for e in entries] == ["upstream"] * 4 + ["hit"]
    assert entries[-1].feature == "f"


def test_the_lane_takes_the_feature_from_context_and_client_and_checks_it() -> None:
    provider = FakeProvider()
    with CostwiseClient(
        **_options([ResponseCache(MemoryCacheStore())], provider, is_async=False)
    ) as client:
        ask: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MSGS, "temperature": 0}
        client.chat.completions.create(**ask)
        with costwise.feature("ctx"):
            client.chat.completions.create(**ask)
            client.chat.completions.create(**ask, feature="arg")
        client.with_feature("pinned").chat.completions.create(**ask)
        for bad in (3, "", "  "):
            with pytest.raises((TypeError, ValueError), match="feature"):
                client.chat.completions.create(**ask, feature=bad)  # type: ignore[arg-type]
        got = [(e.feature, e.kind) for e in client.ledger.entries()]
    assert sorted(got) == [
        ("arg", "hit"),
        ("ctx", "hit"),
        ("pinned", "hit"),
        ("untagged", "upstream"),
    ]
    assert len(provider.requests) == 1


def test_a_lane_miss_goes_on_to_the_semantic_cache() -> None:
    """An exact miss still reaches the strategies behind the exact cache."""
    provider = FakeProvider()
    semantic = SemanticCache(MemoryCacheStore(), embedder=ToyEmbedder(), settings=PLAIN)
    strategies = [ResponseCache(MemoryCacheStore()), semantic]
    with CostwiseClient(**_options(strategies, provider, is_async=False)) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, temperature=0)
        reworded: list[Any] = [{"role": "user", "content": "What is the capital of France ?"}]
        client.chat.completions.create(model="gpt-4o-mini", messages=reworded, temperature=0)
        kinds = [(e.kind, e.strategy) for e in client.ledger.entries()]
    assert len(provider.calls()) == 1, kinds
    assert kinds[-1][0] == "hit" and kinds[-1][1] == "semantic_cache"


def test_the_lane_writes_the_journal_a_killed_process_leaves(tmp_path: Path) -> None:
    from costwise.ledger._journal import decode

    provider = FakeProvider()
    opts = _options([ResponseCache(MemoryCacheStore())], provider, is_async=False)
    opts["ledger"] = tmp_path / "ledger.sqlite"
    with CostwiseClient(**opts) as client:
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, temperature=0)
        files = sorted((tmp_path / "ledger.sqlite.journal").iterdir())
        in_journal = [e for f in files for e in decode(f.read_bytes())]
        stored = list(client.ledger.entries())
    assert [e.kind for e in in_journal] == ["upstream", "hit"]
    assert [e.to_dict() for e in in_journal] == [e.to_dict() for e in stored]


# -- the lane is part of the strategy protocol: user strategies may offer one -------------


class Canned:
    """A user strategy whose express lane answers every plain request with one completion."""

    name = "canned"

    def __init__(self, lane: Any = None) -> None:
        from openai.types.chat import ChatCompletion

        from costwise.testing import chat_completion

        self.answer = ChatCompletion.model_validate(chat_completion("Canned.", usage=(12, 3)))
        self.lane = lane

    def express(self, kwargs: Any, scope: str) -> Any:
        if self.lane is not None:
            return self.lane
        return costwise.Express("canned", self.answer, self.answer)

    def flow(self, call: Call) -> Any:
        return (yield call)


def test_a_user_strategy_can_answer_in_the_lane() -> None:
    provider = FakeProvider()
    with CostwiseClient(**_options([Canned()], provider, is_async=False)) as client:
        got = client.chat.completions.create(model="gpt-4o", messages=MSGS, feature="f")
        (entry,) = client.ledger.entries()
    assert got.choices[0].message.content == "Canned." and provider.requests == []
    assert (entry.kind, entry.strategy, entry.feature, entry.cost_nanos) == (
        "hit",
        "canned",
        "f",
        0,
    )
    assert entry.prompt_tokens == 12 and entry.baseline_nanos and entry.baseline_nanos > 0


@pytest.mark.parametrize(
    "lane",
    ["not an Express", costwise.Express("k", response=object())],
    ids=["type", "no completion"],
)
def test_a_lane_that_breaks_the_protocol_is_named(lane: Any) -> None:
    provider = FakeProvider()
    with CostwiseClient(**_options([Canned(lane)], provider, is_async=False)) as client:
        with pytest.raises(costwise.StrategyError, match=r"'canned'.*express"):
            client.chat.completions.create(model="gpt-4o", messages=MSGS)
        assert provider.requests == [] and list(client.ledger.entries()) == []


@pytest.mark.anyio
async def test_async_a_lane_that_breaks_the_protocol_is_named() -> None:
    provider = FakeProvider()
    opts = _options([Canned("nope")], provider.async_handler, is_async=True)
    async with AsyncCostwiseClient(**opts) as client:
        with pytest.raises(costwise.StrategyError, match=r"'canned'.*express"):
            await client.chat.completions.create(model="gpt-4o", messages=MSGS)
        assert provider.requests == []
