"""The semantic cache strategy: paraphrase hits, exact context, scopes, opt-out, invalidation."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openai.types.chat import ChatCompletionMessageParam
from typing_extensions import override

from costwise import CostwiseWarning
from costwise.cache import MemoryCacheStore, is_hit
from costwise.ledger import MemoryStore
from costwise.semantic import (
    OpenAIEmbedder,
    RedisSemanticIndex,
    SemanticIndex,
    SemanticSettings,
)
from costwise.strategies import SemanticCache
from costwise.testing import Error, FakeProvider, fake_async_client, fake_client
from loopwatch import watch_loop
from redisserver import redis_url

__all__ = ["redis_url"]  # the session fixture, re-exported for pytest


class ToyEmbedder:
    """Bag-of-words hashed into 64 dimensions: reworded questions with the same words match."""

    name = "toy"
    dim = 64

    def embed(self, texts: Sequence[str]) -> Any:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[row, hashlib.md5(word.encode()).digest()[0] % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


PLAIN = SemanticSettings(embedder="toy", min_cosine=0.85, threshold=0.85)
ASK: dict[str, Any] = {"model": "gpt-4o-mini", "temperature": 0}


def cache(**kw: Any) -> SemanticCache:
    return SemanticCache(MemoryCacheStore(), embedder=ToyEmbedder(), settings=PLAIN, **kw)


def user(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


class Runner:
    """Makes calls through the sync or the async client with the same strategies."""

    def __init__(self, mode: str, provider: FakeProvider, strategies: list[Any], **kw: Any):
        self.mode = mode
        self.store = MemoryStore()
        factory = fake_client if mode == "sync" else fake_async_client
        self.client: Any = factory(provider, strategies=strategies, ledger=self.store, **kw)

    async def ask(self, text: str, **kw: Any) -> Any:
        kw.setdefault("model", "gpt-4o-mini")
        kw.setdefault("temperature", 0)
        messages = kw.pop("messages", user(text))
        result = self.client.chat.completions.create(messages=messages, **kw)
        if self.mode == "async":
            result = await result
        return result


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_paraphrase_is_a_semantic_hit(mode: str) -> None:
    """A reworded question is answered from the cache; the ledger shows the similarity."""
    provider = FakeProvider()
    run = Runner(mode, provider, [cache()])
    first = await run.ask("How do I reset my password?")
    second = await run.ask("how do I reset my password")
    assert len(provider.calls()) == 1
    assert second.choices[0].message.content == first.choices[0].message.content
    assert is_hit(second) and not is_hit(first)
    hit = [e for e in run.store.entries() if e.kind == "hit"]
    assert len(hit) == 1
    assert hit[0].strategy == "semantic_cache" and hit[0].cost_nanos == 0
    assert hit[0].detail["similarity"] >= 0.85
    assert hit[0].baseline_nanos and hit[0].baseline_nanos > 0


@pytest.mark.anyio
async def test_unrelated_question_misses(mode: str) -> None:
    """A different question goes upstream."""
    provider = FakeProvider()
    run = Runner(mode, provider, [cache()])
    await run.ask("How do I reset my password?")
    await run.ask("What are your opening hours on Sunday?")
    assert len(provider.calls()) == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4o"},
        {"temperature": 0, "max_tokens": 5},
        {"messages": [{"role": "system", "content": "Be terse."}, *user("reset my password")]},
        {"response_format": {"type": "json_object"}},
        {"seed": 3},
        {"cache_scope": "tenant-b"},
    ],
)
async def test_everything_but_the_question_must_match(mode: str, change: dict[str, Any]) -> None:
    """Model, params, system prompt, response_format and scope all partition the cache."""
    provider = FakeProvider()
    run = Runner(mode, provider, [cache()])
    await run.ask("reset my password", cache_scope="tenant-a")
    change = {"cache_scope": "tenant-a", **change}
    await run.ask("reset my password", **change)
    assert len(provider.calls()) == 2


@pytest.mark.anyio
async def test_api_keys_are_isolated(mode: str) -> None:
    """Two clients with different keys sharing one SemanticCache never share answers."""
    provider = FakeProvider()
    shared = cache()
    a = Runner(mode, provider, [shared], api_key="key-a")
    b = Runner(mode, provider, [shared], api_key="key-b")
    await a.ask("reset my password")
    await b.ask("reset my password")
    await a.ask("reset my password please")
    assert len(provider.calls()) == 2


@pytest.mark.anyio
async def test_opt_out_per_call(mode: str) -> None:
    """semantic=False and cache=False skip the semantic cache."""
    provider = FakeProvider()
    run = Runner(mode, provider, [cache()])
    await run.ask("reset my password")
    await run.ask("reset my password", semantic=False)
    await run.ask("reset my password", cache=False)
    assert len(provider.calls()) == 3


@pytest.mark.anyio
async def test_sampled_requests_are_not_stored_unless_opted_in(mode: str) -> None:
    """temperature > 0 bypasses the cache unless cache=True or always=True."""
    provider = FakeProvider()
    run = Runner(mode, provider, [cache()])
    await run.ask("reset my password", temperature=0.7)
    await run.ask("reset my password", temperature=0.7)
    assert len(provider.calls()) == 2
    await run.ask("reset my password", temperature=0.7, cache=True)
    await run.ask("reset my password", temperature=0.7, cache=True)
    assert len(provider.calls()) == 3


@pytest.mark.anyio
async def test_only_the_last_user_message_is_compared(mode: str) -> None:
    """Earlier turns must match exactly even when the last question matches."""
    provider = FakeProvider()
    run = Runner(mode, provider, [cache()])
    turn: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "I have an account."},
        {"role": "assistant", "content": "Good."},
    ]
    await run.ask("", messages=[*turn, *user("reset my password")])
    await run.ask("", messages=[*turn, *user("please reset my password")])
    assert len(provider.calls()) == 1
    other = [{"role": "user", "content": "I have two accounts."}, turn[1]]
    await run.ask("", messages=[*other, *user("reset my password")])
    assert len(provider.calls()) == 2


@pytest.mark.anyio
async def test_invalidate_an_entry(mode: str) -> None:
    """An entry found via entry_of() can be invalidated; the next ask goes upstream."""
    provider = FakeProvider()
    sem = cache()
    run = Runner(mode, provider, [sem])
    await run.ask("reset my password")
    hit = await run.ask("reset my password please")
    entry = SemanticCache.entry_of(hit)
    assert entry is not None
    assert [e.detail["semantic_entry"] for e in run.store.entries() if e.kind == "hit"] == [entry]
    assert sem.invalidate(entry)
    await run.ask("reset my password please")
    assert len(provider.calls()) == 2
    assert SemanticCache.entry_of(object()) is None


def test_stream_hit_replays_a_stream() -> None:
    """A streamed miss is stored when complete; a streamed hit replays chunks."""
    provider = FakeProvider()
    client = fake_client(provider, strategies=[cache()])
    kw: dict[str, Any] = {"model": "gpt-4o-mini", "temperature": 0, "stream": True}
    first = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(messages=user("reset my password"), **kw)
        if c.choices
    )
    again = client.chat.completions.create(messages=user("reset my password please"), **kw)
    assert is_hit(again)
    text = "".join(c.choices[0].delta.content or "" for c in again if c.choices)
    assert text == first
    assert len(provider.calls()) == 1


@pytest.mark.anyio
async def test_provider_embedder_is_recorded_as_overhead(mode: str) -> None:
    """OpenAIEmbedder embeds through the client; the ledger shows it under the feature."""
    provider = FakeProvider()
    embedder = OpenAIEmbedder("text-embedding-3-small", dim=64)
    settings = SemanticSettings(embedder=embedder.name, min_cosine=0.8, threshold=0.8)
    sem = SemanticCache(embedder=embedder, settings=settings)
    run = Runner(mode, provider, [sem])
    await run.ask("reset my password", feature="support")
    await run.ask("reset my password", feature="support")
    assert len(provider.calls()) == 1
    assert len(provider.calls("/embeddings")) == 2
    overhead = [e for e in run.store.entries() if e.kind == "overhead"]
    assert [(e.feature, e.purpose) for e in overhead] == [("support", "embed")] * 2
    assert all((e.cost_nanos or 0) > 0 for e in overhead)


@pytest.mark.anyio
async def test_embedding_failure_is_a_miss(mode: str) -> None:
    """A failed embeddings call warns and goes upstream; the user's call succeeds."""
    provider = FakeProvider().script(Error(status=500), model="text-embedding-3-small")
    embedder = OpenAIEmbedder("text-embedding-3-small", dim=64)
    settings = SemanticSettings(embedder=embedder.name, min_cosine=0.8, threshold=0.8)
    run = Runner(mode, provider, [SemanticCache(embedder=embedder, settings=settings)])
    with pytest.warns(CostwiseWarning, match="embedding failed"):
        result = await run.ask("reset my password")
    assert result.choices[0].message.content
    assert len(provider.calls()) == 1


def test_settings_for_another_embedder_warn() -> None:
    """Settings calibrated with another embedder are flagged at construction."""
    with pytest.warns(CostwiseWarning, match="calibrated for"):
        SemanticCache(embedder=ToyEmbedder())


def test_expired_entry_is_dropped_from_the_index() -> None:
    """When the store has lost an entry, its vector is removed and the call goes upstream."""
    provider = FakeProvider()
    store = MemoryCacheStore()
    sem = SemanticCache(store, embedder=ToyEmbedder(), settings=PLAIN)
    client = fake_client(provider, strategies=[sem])
    client.chat.completions.create(
        model="gpt-4o-mini", messages=user("reset my password"), temperature=0
    )
    store.clear()
    client.chat.completions.create(
        model="gpt-4o-mini", messages=user("reset my password"), temperature=0
    )
    assert len(provider.calls()) == 2
    assert len(sem.index) == 1  # the stale vector went, the fresh one is in


def test_strategy_validates_arguments() -> None:
    """Bad arguments fail at construction, not at the first call."""
    with pytest.raises(ValueError, match="ttl"):
        cache(ttl=0)
    with pytest.raises(ValueError, match="candidates"):
        cache(candidates=0)
    with pytest.raises(TypeError, match="store"):
        SemanticCache(42, embedder=ToyEmbedder(), settings=PLAIN)  # type: ignore[arg-type]


def test_persisted_index_answers_after_a_restart(tmp_path: Path) -> None:
    """A disk store plus a saved index answer paraphrases in a new process's cache."""
    provider = FakeProvider()

    def worker() -> SemanticCache:
        return SemanticCache(
            tmp_path / "store",
            embedder=ToyEmbedder(),
            settings=PLAIN,
            index=SemanticIndex(64, path=tmp_path / "index"),
        )

    first = worker()
    client = fake_client(provider, strategies=[first])
    client.chat.completions.create(**ASK, messages=user("reset my password"))
    first.index.save()
    first.store.close()
    again = fake_client(provider, strategies=[worker()])
    hit = again.chat.completions.create(**ASK, messages=user("reset my password please"))
    assert is_hit(hit) and len(provider.calls()) == 1


def _workers(redis_url: str, prefix: str, store: Callable[[], Any]) -> list[SemanticCache]:
    """Two workers' semantic caches sharing one Redis index, each with `store()`."""
    return [
        SemanticCache(
            store(),
            embedder=ToyEmbedder(),
            settings=PLAIN,
            index=RedisSemanticIndex(64, redis_url, prefix=prefix, sync_interval=0),
        )
        for _ in range(2)
    ]


def test_workers_share_entries_through_redis(redis_url: str) -> None:
    """Two workers with a Redis store and index: one caches, the other answers."""
    from costwise.cache import RedisCacheStore

    provider = FakeProvider()
    prefix = "test-semantic-workers:"
    caches = _workers(redis_url, prefix, lambda: RedisCacheStore(redis_url, prefix=prefix + "e:"))
    one = fake_client(provider, strategies=[caches[0]])
    two = fake_client(provider, strategies=[caches[1]])
    two.chat.completions.create(**ASK, messages=user("what are the opening hours"))
    one.chat.completions.create(**ASK, messages=user("reset my password"))
    hit = two.chat.completions.create(**ASK, messages=user("reset my password please"))
    assert is_hit(hit) and len(provider.calls()) == 2
    for cache_ in caches:
        cache_.close()


def test_shared_index_never_points_at_a_queued_disk_entry(redis_url: str, tmp_path: Path) -> None:
    """A disk store writes behind; a shared index entry must still find its value at once."""
    from costwise.cache import DiskCacheStore

    provider = FakeProvider()
    # two processes on one host: one cache directory, one Redis index
    caches = _workers(
        redis_url,
        "test-semantic-disk-workers:",
        lambda: DiskCacheStore(tmp_path / "store", flush_interval=60),
    )
    one = fake_client(provider, strategies=[caches[0]])
    two = fake_client(provider, strategies=[caches[1]])
    one.chat.completions.create(**ASK, messages=user("reset my password"))
    hit = two.chat.completions.create(**ASK, messages=user("reset my password please"))
    assert is_hit(hit) and len(provider.calls()) == 1
    for cache_ in caches:
        cache_.close()


def test_after_the_exact_cache_hits_are_told_apart() -> None:
    """With ResponseCache first, repeats are exact hits and paraphrases semantic hits."""
    from costwise.strategies import ResponseCache

    provider = FakeProvider()
    store = MemoryCacheStore()
    ledger = MemoryStore()
    client = fake_client(
        provider,
        strategies=[
            ResponseCache(store),
            SemanticCache(store, embedder=ToyEmbedder(), settings=PLAIN),
        ],
        ledger=ledger,
    )
    client.chat.completions.create(**ASK, messages=user("reset my password"))
    client.chat.completions.create(**ASK, messages=user("reset my password"))
    client.chat.completions.create(**ASK, messages=user("reset my password please"))
    assert len(provider.calls()) == 1
    assert [e.strategy for e in ledger.entries() if e.kind == "hit"] == ["cache", "semantic_cache"]


def test_long_questions_bypass_the_semantic_cache() -> None:
    """Prompts longer than max_question_chars are never matched by meaning (no false hits on
    long instructions that differ only past the embedder's window)."""
    from costwise.ledger import MemoryStore
    from costwise.strategies import SemanticCache
    from costwise.testing import FakeProvider, fake_client

    provider = FakeProvider()
    store = MemoryStore()
    client = fake_client(provider, ledger=store, strategies=[SemanticCache(max_question_chars=100)])
    prefix = "Classify this ticket into one of: " + ", ".join(f"intent_{i}" for i in range(30))
    for ticket in ("my card was stolen", "how do I top up by bank transfer"):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"{prefix}. Ticket: {ticket}"}],
            temperature=0,
        )
    assert len(provider.requests) == 2
    assert all(e.kind == "upstream" for e in store.entries())


class SlowEmbedder(ToyEmbedder):
    """A local model that takes a while per question (and says so)."""

    blocking = True

    @override
    def embed(self, texts: Sequence[str]) -> Any:
        import time

        time.sleep(0.1)  # inference releases the GIL, like onnxruntime's
        return super().embed(texts)


@pytest.mark.anyio
async def test_async_embedding_runs_off_the_event_loop() -> None:
    """A blocking embedder runs in a worker thread under the async client: the loop ticks."""
    provider = FakeProvider()
    cache_ = SemanticCache(MemoryCacheStore(), embedder=SlowEmbedder(), settings=PLAIN)
    client = fake_async_client(provider, strategies=[cache_])
    async with watch_loop() as watch:
        await client.chat.completions.create(**ASK, messages=user("reset my password"))
        hit = await client.chat.completions.create(**ASK, messages=user("reset my password please"))
    assert is_hit(hit) and len(provider.calls()) == 1
    assert watch.elapsed >= 0.2
    assert watch.loop_kept_running(), (watch.ticks, watch.elapsed)  # a stalled loop: ~0 ticks
