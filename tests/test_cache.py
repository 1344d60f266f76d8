"""ResponseCache through the real SDK: hits, safety rules, scopes, streams, faults, async."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import openai
import pydantic
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from typing_extensions import override

from costwise import AsyncCostwiseStream, CostwiseStream, CostwiseWarning
from costwise.cache import DiskCacheStore, MemoryCacheStore, RedisCacheStore, is_hit
from costwise.ledger import MemoryStore
from costwise.strategies import ResponseCache
from costwise.testing import (
    Disconnect,
    Error,
    FakeProvider,
    Reply,
    fake_async_client,
    fake_client,
)
from loopwatch import watch_loop
from redisserver import redis_url, start_redis

__all__ = ["redis_url"]

MSGS = [{"role": "user", "content": "What is the capital of France?"}]


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Env:
    """One client (sync or async) with a ResponseCache, its provider, store and ledger."""

    def __init__(
        self,
        mode: str,
        cache: ResponseCache | None = None,
        provider: FakeProvider | None = None,
        **client_kw: Any,
    ) -> None:
        self.mode = mode
        self.provider = provider or FakeProvider()
        self.clock = Clock()
        self.store = MemoryCacheStore(clock=self.clock)
        self.cache = cache or ResponseCache(self.store)
        self.ledger = MemoryStore()
        factory = fake_client if mode == "sync" else fake_async_client
        self.client: Any = factory(
            self.provider, strategies=[self.cache], ledger=self.ledger, **client_kw
        )

    async def ask(self, **kw: Any) -> Any:
        """create() with defaults; streams are consumed and returned as (stream, chunks)."""
        kw.setdefault("model", "gpt-4o-mini")
        kw.setdefault("messages", MSGS)
        create = self.client.chat.completions.create
        if self.mode == "sync":
            result = create(**kw)
            if kw.get("stream"):
                return result, list(result)
            return result
        result = await create(**kw)
        if kw.get("stream"):
            return result, [c async for c in result]
        return result

    @property
    def upstream(self) -> int:
        return len(self.provider.requests)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


pytestmark = pytest.mark.anyio


async def test_repeat_is_a_hit(mode: str) -> None:
    """The same temperature-0 request twice: one upstream call, then a hit of the same type."""
    env = Env(mode)
    first = await env.ask(temperature=0)
    second = await env.ask(temperature=0)
    assert env.upstream == 1
    assert type(second) is ChatCompletion
    assert second.model_dump() == first.model_dump()
    assert (is_hit(first), is_hit(second)) == (False, True)
    assert "cache" not in env.provider.requests[0].json


async def test_hit_in_ledger_and_report(mode: str) -> None:
    """A hit is a zero-cost ledger entry by "cache" whose saving is the original cost."""
    env = Env(mode)
    await env.ask(temperature=0, feature="faq")
    await env.ask(temperature=0, feature="faq")
    miss, hit = list(env.ledger.entries())
    assert (miss.kind, miss.strategy) == ("upstream", None)
    assert (hit.kind, hit.strategy, hit.cost_nanos, hit.final) == ("hit", "cache", 0, True)
    assert hit.baseline_nanos == miss.cost_nanos and miss.cost_nanos
    row = env.client.ledger.report().row("faq")
    assert (row.calls, row.hits) == (2, 1)
    assert row.baseline_nanos - row.cost_nanos == miss.cost_nanos


async def test_report_by_strategy_shows_cache_savings(mode: str) -> None:
    """report(by="strategy") attributes hits and savings to "cache", per feature too."""
    env = Env(mode)
    for feature in ("faq", "faq", "faq", "tags"):
        await env.ask(temperature=0, feature=feature)
    await env.ask(temperature=0, feature="tags", messages=[{"role": "user", "content": "x"}])
    by_strategy = env.client.ledger.report(by="strategy")
    cache_row = by_strategy.row("cache")
    assert cache_row.hits == 3 and cache_row.cost_nanos == 0 and cache_row.baseline_nanos > 0
    by_feature = env.client.ledger.report()
    assert (by_feature.row("faq").hits, by_feature.row("tags").hits) == (2, 1)


async def test_streamed_hit_is_in_the_ledger(mode: str) -> None:
    """A replayed stream is recorded as a hit as soon as it is returned."""
    env = Env(mode)
    await env.ask(temperature=0, stream=True, stream_options={"include_usage": True})
    await env.ask(temperature=0, stream=True, stream_options={"include_usage": True})
    miss, hit = list(env.ledger.entries())
    assert (miss.kind, hit.kind, hit.strategy) == ("upstream", "hit", "cache")
    assert hit.baseline_nanos == miss.cost_nanos and hit.cost_nanos == 0


async def test_hit_is_a_fresh_object(mode: str) -> None:
    """Editing a returned answer never changes what the cache serves next."""
    env = Env(mode)
    await env.ask(temperature=0)
    hit = await env.ask(temperature=0)
    hit.choices[0].message.content = "edited"
    again = await env.ask(temperature=0)
    assert again.choices[0].message.content != "edited"


@pytest.mark.parametrize(
    ("kw", "cached"),
    [
        ({}, False),
        ({"temperature": 0.7}, False),
        ({"temperature": 0}, True),
        ({"temperature": 0.0}, True),
        ({"seed": 42, "temperature": 1}, True),
        ({"cache": True, "temperature": 1}, True),
        ({"cache": False, "temperature": 0}, False),
    ],
    ids=["default", "sampled", "t0", "t0.0", "seed", "opt-in", "opt-out"],
)
async def test_only_repeatable_requests_are_cached(
    mode: str, kw: dict[str, Any], cached: bool
) -> None:
    """Safe by default: temperature 0, a seed, or an opt-in; cache=False bypasses."""
    env = Env(mode)
    await env.ask(**kw)
    await env.ask(**kw)
    assert env.upstream == (1 if cached else 2)
    assert env.store.size() == (1 if cached else 0)


async def test_always_caches_sampled_requests(mode: str) -> None:
    """ResponseCache(always=True) opts a whole client in."""
    env = Env(mode, ResponseCache(MemoryCacheStore(), always=True))
    await env.ask()
    await env.ask()
    assert env.upstream == 1


async def test_cache_false_does_not_read(mode: str) -> None:
    """cache=False skips a stored answer as well as storing."""
    env = Env(mode)
    await env.ask(temperature=0)
    await env.ask(temperature=0, cache=False)
    assert env.upstream == 2


async def test_refresh_overwrites(mode: str) -> None:
    """cache_refresh=True calls upstream and stores the new answer."""
    provider = FakeProvider().script(Reply("old"), Reply("new"))
    env = Env(mode, provider=provider)
    await env.ask(temperature=0)
    refreshed = await env.ask(temperature=0, cache_refresh=True)
    served = await env.ask(temperature=0)
    assert env.upstream == 2
    assert refreshed.choices[0].message.content == "new"
    assert served.choices[0].message.content == "new" and is_hit(served)


async def test_ttl_per_call_and_per_client(mode: str) -> None:
    """cache_ttl= bounds one entry's life; ResponseCache(ttl=) sets the default."""
    env = Env(mode)
    env.cache.ttl = 100
    await env.ask(temperature=0, cache_ttl=10)
    await env.ask(temperature=0, messages=[{"role": "user", "content": "other"}])
    env.clock.now = 50
    await env.ask(temperature=0)  # expired: upstream again
    await env.ask(temperature=0, messages=[{"role": "user", "content": "other"}])  # still there
    assert env.upstream == 3
    env.clock.now = 500
    await env.ask(temperature=0, messages=[{"role": "user", "content": "other"}])
    assert env.upstream == 4


@pytest.mark.parametrize(
    ("reply", "stored"),
    [
        (Reply("ok", finish_reason="stop"), True),
        (Reply("cut", finish_reason="length"), False),
        (Reply("blocked", finish_reason="content_filter"), False),
        (Reply(""), False),
        (Reply(tool_calls=[{"name": "f", "arguments": "{}"}]), True),
    ],
    ids=["stop", "length", "content_filter", "empty", "tool_calls"],
)
async def test_unusable_answers_are_not_stored(mode: str, reply: Reply, stored: bool) -> None:
    """Truncated, filtered and empty answers are never stored; good ones are."""
    env = Env(mode, provider=FakeProvider().script(reply))
    await env.ask(temperature=0)
    assert env.store.size() == (1 if stored else 0)


async def test_truncated_answers_on_request(mode: str) -> None:
    """store_truncated=True keeps finish_reason="length" answers."""
    store = MemoryCacheStore()
    env = Env(
        mode,
        ResponseCache(store, store_truncated=True),
        provider=FakeProvider().script(Reply("cut", finish_reason="length")),
    )
    await env.ask(temperature=0)
    assert store.size() == 1


async def test_errors_are_not_stored(mode: str) -> None:
    """An upstream error propagates unchanged and stores nothing."""
    env = Env(mode, provider=FakeProvider().script(Error(500)))
    with pytest.raises(openai.InternalServerError):
        await env.ask(temperature=0)
    await env.ask(temperature=0)
    assert env.upstream == 2 and env.store.size() == 1


async def test_several_choices(mode: str) -> None:
    """n>1 answers are cached whole when every choice is usable."""
    env = Env(mode)
    first = await env.ask(temperature=0, n=3)
    second = await env.ask(temperature=0, n=3)
    assert len(second.choices) == 3 and second.model_dump() == first.model_dump()
    assert env.upstream == 1


# -- scopes -------------------------------------------------------------------------------


async def test_api_keys_never_share(mode: str) -> None:
    """Two clients with different API keys never answer each other, even with one store."""
    provider, store = FakeProvider(), MemoryCacheStore()
    a = Env(mode, ResponseCache(store), provider=provider, api_key="key-a")
    b = Env(mode, ResponseCache(store), provider=provider, api_key="key-b")
    await a.ask(temperature=0)
    await b.ask(temperature=0)
    assert len(provider.requests) == 2
    await a.ask(temperature=0)
    await b.ask(temperature=0)
    assert len(provider.requests) == 2
    assert store.size() == 2


async def test_the_key_is_never_stored(tmp_path: Path, mode: str) -> None:
    """The API key appears nowhere in the cache directory."""
    store = DiskCacheStore(tmp_path / "c")
    env = Env(mode, ResponseCache(store), api_key="sk-very-secret-key")
    await env.ask(temperature=0)
    store.close()
    for path in (tmp_path / "c").rglob("*"):
        if path.is_file():
            assert b"sk-very-secret-key" not in path.read_bytes()


async def test_per_call_scope(mode: str) -> None:
    """cache_scope= isolates tenants of one client."""
    env = Env(mode)
    await env.ask(temperature=0, cache_scope="tenant-1")
    await env.ask(temperature=0, cache_scope="tenant-2")
    await env.ask(temperature=0)
    assert env.upstream == 3
    hit = await env.ask(temperature=0, cache_scope="tenant-2")
    assert is_hit(hit) and env.upstream == 3


async def test_client_scope_shares_across_keys(mode: str) -> None:
    """ResponseCache(scope=...) shares entries between keys on purpose."""
    provider, store = FakeProvider(), MemoryCacheStore()
    a = Env(mode, ResponseCache(store, scope="team"), provider=provider, api_key="key-a")
    b = Env(mode, ResponseCache(store, scope="team"), provider=provider, api_key="key-b")
    await a.ask(temperature=0)
    assert is_hit(await b.ask(temperature=0))
    assert len(provider.requests) == 1


# -- streams ------------------------------------------------------------------------------


async def test_streamed_miss_then_streamed_hit(mode: str) -> None:
    """A streamed miss passes through and is stored; the hit replays a real stream."""
    env = Env(mode)
    stream, chunks = await env.ask(temperature=0, stream=True)
    assert not is_hit(stream) and env.store.size() == 1
    replay, again = await env.ask(temperature=0, stream=True)
    assert env.upstream == 1 and is_hit(replay)
    assert isinstance(replay, CostwiseStream if mode == "sync" else AsyncCostwiseStream)
    assert all(isinstance(c, ChatCompletionChunk) for c in again)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "".join(c.choices[0].delta.content or "" for c in again if c.choices) == text
    assert again[-1].choices[0].finish_reason == "stop"
    assert again[0].choices[0].delta.role == "assistant"
    assert replay.response.status_code == 200


async def test_stream_hit_honours_include_usage(mode: str) -> None:
    """A replay ends with a usage chunk only if this request asked for one."""
    env = Env(mode)
    await env.ask(temperature=0)
    _, plain = await env.ask(temperature=0, stream=True)
    _, with_usage = await env.ask(
        temperature=0, stream=True, stream_options={"include_usage": True}
    )
    assert env.upstream == 1
    assert all(c.usage is None for c in plain)
    assert with_usage[-1].usage is not None and with_usage[-1].choices == []


async def test_stream_entry_serves_plain_request(mode: str) -> None:
    """An answer stored from a stream serves a non-streamed request, and vice versa."""
    env = Env(mode)
    _, chunks = await env.ask(temperature=0, stream=True, stream_options={"include_usage": True})
    hit = await env.ask(temperature=0)
    assert is_hit(hit) and type(hit) is ChatCompletion
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert hit.choices[0].message.content == text
    assert hit.usage is not None and hit.usage.total_tokens > 0
    assert env.upstream == 1
    hit_entry = list(env.ledger.entries())[-1]
    assert hit_entry.kind == "hit" and hit_entry.baseline_nanos


async def test_an_entry_without_usage_serves_only_streams_that_ask_none(mode: str) -> None:
    """An entry stored from a stream without ``include_usage`` has no usage. A stream that
    asks none is a hit, priced in the ledger from a token estimate; a plain call (which
    upstream always answers with usage, and code reads it) is a miss that replaces it."""
    env = Env(mode)
    await env.ask(temperature=0, stream=True)
    replay, _ = await env.ask(temperature=0, stream=True)
    assert is_hit(replay) and env.upstream == 1
    entry = list(env.ledger.entries())[-1]
    assert entry.kind == "hit" and entry.baseline_nanos and entry.completion_tokens > 0
    plain = await env.ask(temperature=0)
    assert not is_hit(plain) and plain.usage is not None and env.upstream == 2
    again = await env.ask(temperature=0)
    assert is_hit(again) and again.usage is not None and env.upstream == 2
    _, chunks = await env.ask(temperature=0, stream=True, stream_options={"include_usage": True})
    assert chunks[-1].usage is not None and env.upstream == 2


async def test_broken_stream_is_not_stored(mode: str) -> None:
    """A stream that fails midway is not stored."""
    env = Env(mode, provider=FakeProvider().script(Disconnect(after=3)))
    with pytest.raises(openai.APIConnectionError):
        await env.ask(temperature=0, stream=True)
    assert env.store.size() == 0


async def test_stream_closed_early_is_not_stored(mode: str) -> None:
    """A stream the caller abandons is not stored."""
    env = Env(mode)
    create = env.client.chat.completions.create
    kw: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": MSGS,
        "temperature": 0,
        "stream": True,
    }
    if mode == "sync":
        stream = create(**kw)
        next(iter(stream))
        stream.close()
    else:
        stream = await create(**kw)
        await stream.__anext__()
        await stream.close()
    assert env.store.size() == 0


# -- faults -------------------------------------------------------------------------------


async def test_corrupt_entry_is_a_miss(mode: str) -> None:
    """A corrupt entry: a warning, a call upstream, and the entry is replaced."""
    env = Env(mode)
    await env.ask(temperature=0)
    (key,) = list(env.store._data)
    env.store.set(key, b'{"not": "a completion"')
    with pytest.warns(CostwiseWarning, match="corrupt"):
        answer = await env.ask(temperature=0)
    assert not is_hit(answer) and env.upstream == 2
    assert is_hit(await env.ask(temperature=0))


class BrokenStore(MemoryCacheStore):
    """A store whose every operation fails."""

    @override
    def get(self, key: str) -> bytes | None:
        raise OSError("disk on fire")

    @override
    def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        raise OSError("disk on fire")


async def test_failing_store_never_fails_the_call(mode: str) -> None:
    """Store errors are warnings; the answer comes from upstream."""
    env = Env(mode, ResponseCache(BrokenStore()))
    with pytest.warns(CostwiseWarning, match="disk on fire"):
        answer = await env.ask(temperature=0)
    assert answer.choices[0].message.content


async def test_redis_down_goes_upstream(mode: str) -> None:
    """With Redis down the call goes upstream, with one warning, and caching resumes after."""
    with start_redis() as server:
        store = RedisCacheStore(server.url, timeout=0.05, retry_after=0)
        env = Env(mode, ResponseCache(store))
        await env.ask(temperature=0)
        store.flush()  # stored in Redis (not only queued) before it goes down
        server.stop()
        with pytest.warns(CostwiseWarning, match="Redis cache unavailable"):
            answer = await env.ask(temperature=0)
        assert not is_hit(answer) and env.upstream == 2
        server.start()
        await env.ask(temperature=0)
        assert is_hit(await env.ask(temperature=0))
        store.close()


async def test_redis_shared_between_clients(mode: str, redis_url: str) -> None:
    """Two clients (two workers) with one Redis share answers."""
    import time

    prefix = f"test-cache:{time.time_ns()}:"
    provider = FakeProvider()
    stores = [RedisCacheStore(redis_url, prefix=prefix, timeout=1.0) for _ in range(2)]
    a = Env(mode, ResponseCache(stores[0]), provider=provider)
    b = Env(mode, ResponseCache(stores[1]), provider=provider)
    await a.ask(temperature=0)
    stores[0].flush()  # other workers see a queued answer within the flush interval
    assert is_hit(await b.ask(temperature=0))
    assert len(provider.requests) == 1
    stores[0].clear()


# -- configuration -------------------------------------------------------------------------


def test_store_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A path gives a disk store, a redis URL a Redis store, nothing the default directory."""
    assert isinstance(ResponseCache(str(tmp_path / "a")).store, DiskCacheStore)
    assert isinstance(ResponseCache(tmp_path / "b").store, DiskCacheStore)
    assert isinstance(ResponseCache("redis://127.0.0.1:1/0")._store, RedisCacheStore)
    monkeypatch.setenv("COSTWISE_CACHE_DIR", str(tmp_path / "default"))
    default = ResponseCache()
    assert isinstance(default.store, DiskCacheStore)
    assert default.store.directory == tmp_path / "default"
    with pytest.raises(TypeError, match="CacheStore"):
        ResponseCache(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl"):
        ResponseCache(MemoryCacheStore(), ttl=0)


def test_is_hit_on_other_objects() -> None:
    """is_hit is False for anything the cache did not serve."""
    assert not is_hit(None)
    assert not is_hit(object())


@pytest.fixture
def disk_env(tmp_path: Path) -> Iterator[DiskCacheStore]:
    store = DiskCacheStore(tmp_path / "c")
    yield store
    store.close()


async def test_disk_store_end_to_end(mode: str, disk_env: DiskCacheStore) -> None:
    """The default backend serves hits through the client, and to another client."""
    env = Env(mode, ResponseCache(disk_env))
    await env.ask(temperature=0)
    assert is_hit(await env.ask(temperature=0))
    assert disk_env.size() == 1
    other = Env(mode, ResponseCache(disk_env))
    assert is_hit(await other.ask(temperature=0))


def test_web_search_answers_are_not_cached_unless_asked() -> None:
    """A request grounded in a live web search is not repeatable: bypassed unless cache=True."""
    from costwise.cache import MemoryCacheStore
    from costwise.ledger import MemoryStore
    from costwise.strategies import ResponseCache
    from costwise.testing import FakeProvider, fake_client

    provider = FakeProvider()
    client = fake_client(
        provider, ledger=MemoryStore(), strategies=[ResponseCache(MemoryCacheStore())]
    )
    msgs: list[Any] = [{"role": "user", "content": "latest news on rates?"}]
    for _ in range(2):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=msgs, temperature=0, web_search_options={}
        )
    assert len(provider.requests) == 2
    for _ in range(2):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=msgs, web_search_options={}, cache=True
        )
    assert len(provider.requests) == 3


class SlowProxy:
    """A TCP proxy to a real redis-server that delays every reply: a slow network."""

    def __init__(self, target: str, delay: float) -> None:
        import socket
        import threading
        from urllib.parse import urlparse

        parsed = urlparse(target)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        self.delay = delay
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, 0.0), daemon=True).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, self.delay), daemon=True
            ).start()

    @staticmethod
    def _pump(src: Any, dst: Any, delay: float) -> None:
        import time as _time

        try:
            while data := src.recv(65536):
                if delay:
                    _time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def close(self) -> None:
        self.listener.close()


@pytest.mark.anyio
async def test_async_client_keeps_serving_while_redis_is_slow(redis_url: str) -> None:
    """Redis calls of the async client run in a worker thread: the event loop never stalls."""
    proxy = SlowProxy(redis_url, delay=0.15)
    store = RedisCacheStore(proxy.url, prefix=f"slow:{time.time_ns()}:", timeout=5.0)
    env = Env("async", ResponseCache(store))
    async with watch_loop() as watch:
        await env.ask(temperature=0)  # a miss: a slow GET, the upstream call, a slow SET
        hit = await env.ask(temperature=0)  # a hit: a slow GET
    assert is_hit(hit) and env.upstream == 1
    assert watch.elapsed >= 0.45  # three delayed round trips at least
    assert watch.loop_kept_running(), (watch.ticks, watch.elapsed)
    store.close()
    proxy.close()


def test_sync_client_works_through_a_slow_redis(redis_url: str) -> None:
    """The sync client calls the same store in place; a slow network only costs time."""
    proxy = SlowProxy(redis_url, delay=0.05)
    store = RedisCacheStore(proxy.url, prefix=f"slow-sync:{time.time_ns()}:", timeout=5.0)
    env = Env("sync", ResponseCache(store))
    first = env.client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, temperature=0)
    hit = env.client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, temperature=0)
    assert not is_hit(first) and is_hit(hit) and env.upstream == 1
    store.close()
    proxy.close()


# -- structured outputs: parse() ---------------------------------------------------------


class City(pydantic.BaseModel):
    city: str


class Town(pydantic.BaseModel):  # another schema: never shares entries with City
    town: str


async def _parse(env: Env, fmt: Any = City, **kw: Any) -> Any:
    kw.setdefault("model", "gpt-4o-mini")
    kw.setdefault("messages", MSGS)
    parse = env.client.chat.completions.parse
    if env.mode == "sync":
        return parse(response_format=fmt, temperature=0, **kw)
    return await parse(response_format=fmt, temperature=0, **kw)


def _json_reply(_request: Any) -> str:
    return '{"city": "Paris", "town": "Paris"}'


@pytest.mark.anyio
async def test_parse_hit_is_the_parsed_completion(mode: str) -> None:
    """A repeated parse() is answered from the cache with the caller's class, parsed."""
    from openai.types.chat import ParsedChatCompletion

    env = Env(mode, provider=FakeProvider(reply=_json_reply))
    first = await _parse(env)
    hit = await _parse(env)
    assert env.upstream == 1 and is_hit(hit) and not is_hit(first)
    assert isinstance(hit, ParsedChatCompletion)
    assert hit.choices[0].message.parsed == City(city="Paris")
    # (the SDK's own parsed completion warns when dumped: its `parsed` is typed by a TypeVar)
    assert hit.model_dump(warnings=False) == first.model_dump(warnings=False)
    kinds = [e.kind for e in env.ledger.entries()]
    assert kinds == ["upstream", "hit"]


@pytest.mark.anyio
async def test_parse_keys_by_schema_and_method(mode: str) -> None:
    """Another response_format, create() and parse() with tools never share an entry."""
    env = Env(mode, provider=FakeProvider(reply=_json_reply))
    await _parse(env)
    town = await _parse(env, Town)
    assert town.choices[0].message.parsed == Town(town="Paris") and not is_hit(town)
    await env.ask(temperature=0)  # create with the same messages: its own entry
    tool: Any = openai.pydantic_function_tool(City)
    await _parse(env, tools=[tool])
    await _parse(env, tools=[tool])  # parse with tools is never cached
    assert env.upstream == 5


@pytest.mark.anyio
async def test_parse_entry_that_does_not_fit_is_a_miss(mode: str) -> None:
    """A stored answer the caller's class rejects is a miss and a warning, never an error."""
    env = Env(mode, provider=FakeProvider(reply=_json_reply))
    await _parse(env)
    strict = _strict_city()
    assert strict.__name__ == "City"
    assert pydantic.TypeAdapter(strict).json_schema() == pydantic.TypeAdapter(City).json_schema()
    with (
        pytest.warns(CostwiseWarning, match="does not fit"),
        pytest.raises(pydantic.ValidationError),
    ):
        await _parse(env, strict)  # upstream answers Paris too: the SDK's own parse raises
    assert env.upstream == 2


def _strict_city() -> type[pydantic.BaseModel]:
    """A class named City with City's JSON schema (so the same key) that rejects Paris."""

    class City(pydantic.BaseModel):
        city: str

        @pydantic.field_validator("city")
        @classmethod
        def not_paris(cls, value: str) -> str:
            if value == "Paris":
                msg = "Paris is not allowed here"
                raise ValueError(msg)
            return value

    return City


@pytest.mark.anyio
async def test_async_streamed_miss_stores_off_the_loop(redis_url: str) -> None:
    """A streamed miss is stored into a slow Redis from a thread: the loop keeps ticking."""
    proxy = SlowProxy(redis_url, delay=0.3)
    store = RedisCacheStore(proxy.url, prefix=f"slow-stream:{time.time_ns()}:", timeout=5.0)
    env = Env("async", ResponseCache(store))
    # warm up first: the connection pool, the worker threads, and the tokenizer that
    # estimates a stream's usage (its one-time load runs on the loop)
    await env.ask(temperature=0, stream=True, messages=[{"role": "user", "content": "warm"}])
    async with watch_loop() as watch:
        _stream, chunks = await env.ask(temperature=0, stream=True)  # a slow GET, then upstream
        start = time.perf_counter()
        # the stream ended: its SET runs in a thread; the loop must not wait for it
        while (time.perf_counter() - start) < 0.5:
            await anyio.sleep(0.01)
    assert chunks and env.upstream == 2
    assert watch.longest_stall < 0.2, watch.longest_stall  # a slow SET on the loop: >= 0.3 s
    for _ in range(100):  # the thread's write takes a few delayed round trips
        if not any(t.name == "costwise-cache-store" for t in threading.enumerate()):
            break
        await anyio.sleep(0.1)
    store.flush()  # the write queue sends it through the slow proxy
    hit, _ = await env.ask(temperature=0, stream=True)  # the streamed answer, replayed
    assert is_hit(hit) and env.upstream == 2
    store.close()
    proxy.close()


# -- found in review: scopes of dynamic credentials, cut streams, logprobs ------------------

ASK: Any = [{"role": "user", "content": "What is my account balance?"}]


def test_clients_with_callable_keys_never_share_answers() -> None:
    """A callable ``api_key`` is resolved per request, so two such clients cannot be told
    apart: their calls bypass the cache (one warning) unless a scope is set."""
    store = MemoryCacheStore()
    provider = FakeProvider().script(Reply("for tenant A"), Reply("for tenant B"), Reply("B"))
    a = fake_client(provider, api_key=lambda: "sk-a", strategies=[ResponseCache(store)])
    b = fake_client(provider, api_key=lambda: "sk-b", strategies=[ResponseCache(store)])
    with pytest.warns(CostwiseWarning, match="not a fixed string"):
        first = a.chat.completions.create(model="gpt-4o-mini", messages=ASK, temperature=0)
    with pytest.warns(CostwiseWarning, match="not a fixed string"):
        second = b.chat.completions.create(model="gpt-4o-mini", messages=ASK, temperature=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per cache: the next bypass is silent
        b.chat.completions.create(model="gpt-4o-mini", messages=ASK, temperature=0)
    assert first.choices[0].message.content == "for tenant A"
    assert second.choices[0].message.content == "for tenant B" and not is_hit(second)
    assert store.size() == 0
    scoped = fake_client(
        FakeProvider(), api_key=lambda: "sk-c", strategies=[ResponseCache(store, scope="c")]
    )
    scoped.chat.completions.create(model="gpt-4o-mini", messages=ASK, temperature=0)
    hit = scoped.chat.completions.create(model="gpt-4o-mini", messages=ASK, temperature=0)
    assert is_hit(hit)


def test_a_reassigned_key_or_base_url_changes_the_scope() -> None:
    """The scope follows the client's credential and base URL when they are reassigned."""
    provider = FakeProvider().script(Reply("as key A"), Reply("as key B"))
    client = fake_client(provider, api_key="sk-a", strategies=[ResponseCache(MemoryCacheStore())])
    client.chat.completions.create(model="gpt-4o-mini", messages=ASK, temperature=0)
    client.api_key = "sk-b"
    again = client.chat.completions.create(model="gpt-4o-mini", messages=ASK, temperature=0)
    assert not is_hit(again) and again.choices[0].message.content == "as key B"
    client.base_url = "http://elsewhere/v1"
    moved = client.chat.completions.create(model="gpt-4o-mini", messages=ASK, temperature=0)
    assert not is_hit(moved)


def test_a_calls_own_authorization_header_gets_its_own_scope() -> None:
    """``extra_headers={"Authorization": ...}`` speaks for another tenant: another scope."""
    client = fake_client(FakeProvider(), strategies=[ResponseCache(MemoryCacheStore())])
    ask: Any = {"model": "gpt-4o-mini", "messages": ASK, "temperature": 0}
    client.chat.completions.create(**ask)
    other = client.chat.completions.create(
        **ask, extra_headers={"Authorization": "Bearer sk-other"}
    )
    assert not is_hit(other)
    assert is_hit(
        client.chat.completions.create(**ask, extra_headers={"authorization": "Bearer sk-other"})
    )


def test_a_stream_that_stops_without_finishing_is_not_stored() -> None:
    """A stream cut by a proxy ends without error but without ``finish_reason``: its partial
    answer is never served as a whole one."""
    import json

    import httpx2

    calls: list[Any] = []

    def cut(request: httpx2.Request) -> httpx2.Response:
        calls.append(request)
        base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
        chunks = [
            {**base, "choices": [{"index": 0, "delta": {"content": "The capital of Austral"}}]}
        ]  # no finish_reason, no [DONE]
        body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    store = MemoryCacheStore()
    client = fake_client(
        http_client=httpx2.Client(transport=httpx2.MockTransport(cut)),
        strategies=[ResponseCache(store)],
    )
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=ASK, temperature=0, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert store.size() == 0


async def test_a_stream_asking_for_logprobs_is_not_served_a_replay(mode: str) -> None:
    """A replay carries no logprobs: a stream that asks for them goes upstream."""
    env = Env(mode)
    await env.ask(temperature=0, logprobs=True)
    plain = await env.ask(temperature=0, logprobs=True)
    assert is_hit(plain) and env.upstream == 1
    stream, _ = await env.ask(temperature=0, logprobs=True, stream=True)
    assert not is_hit(stream) and env.upstream == 2
