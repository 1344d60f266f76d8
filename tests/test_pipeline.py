"""The pipeline: strategies written once, driven by the sync and the async client alike."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from costwise import Answer, Call, CostwiseWarning, StrategyError
from costwise.ledger import MemoryStore
from costwise.strategies import ModelOverride
from costwise.testing import (
    Error,
    FakeProvider,
    Reply,
    chat_completion,
    fake_async_client,
    fake_client,
)
from costwise.typing import Flow

MSGS: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


class Recorder:
    """Records the order strategies see the request in; passes it on."""

    request_only = True

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def flow(self, call: Call) -> Flow:
        self.log.append(f"{self.name}>")
        resp = yield call
        self.log.append(f"<{self.name}")
        return resp


class ShortCircuit:
    """Answers every call itself (a cache hit)."""

    name = "cache"

    def flow(self, call: Call) -> Flow:
        completion = ChatCompletion.model_validate(chat_completion("cached!", model=call.model))
        call.trace.answered(self.name, completion)
        return completion
        yield call  # unreachable: makes this a generator


class FallBack:
    """Tries a cheap model, falls back to the caller's model on a rate limit."""

    name = "cascade"

    def flow(self, call: Call) -> Flow:
        try:
            return (yield call.replace(model="gpt-4o-mini").evolve(tier=0))
        except openai.RateLimitError:
            return (yield call.evolve(tier=1))


class TwoAttempts:
    """Makes two upstream attempts and returns the second."""

    name = "twice"

    def flow(self, call: Call) -> Flow:
        first = yield call.replace(model="gpt-4o-mini").evolve(tier=0)
        call.trace.annotate(first, reason="not good enough")
        return (yield call.evolve(tier=1))


class Judge:
    """Makes a side call (recorded as overhead) before answering."""

    name = "judge"

    def flow(self, call: Call) -> Flow:
        yield call.side_call(
            "judge", model="gpt-4o-mini", messages=[{"role": "user", "content": "ok?"}]
        )
        return (yield call)


class YieldsJunk:
    name = "junk"

    def flow(self, call: Call) -> Flow:
        yield "not a call"  # type: ignore[misc]
        return None


class ReturnsNone:
    name = "none"

    def flow(self, call: Call) -> Flow:
        yield call
        return None


class AsyncNative:
    """Uses the async escape hatch under the async client, flow() under the sync one."""

    name = "native"

    def flow(self, call: Call) -> Flow:
        return (yield call.replace(model="gpt-4o-mini"))

    async def async_flow(self, call: Call) -> Any:
        resp = yield call.replace(model="gpt-4o-mini")
        yield Answer(resp)


async def _acall(client: Any, **kw: Any) -> Any:
    return await client.chat.completions.create(**kw)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def make(mode: str, provider: FakeProvider, strategies: list[Any], **kw: Any) -> Any:
    """Create through a sync or async client with the same strategies; returns (result, ledger)."""
    store = MemoryStore()
    if mode == "sync":
        client: Any = fake_client(provider, strategies=strategies, ledger=store)
        result = client.chat.completions.create(model="gpt-4o", messages=MSGS, **kw)
    else:
        aclient: Any = fake_async_client(provider, strategies=strategies, ledger=store)
        result = await aclient.chat.completions.create(model="gpt-4o", messages=MSGS, **kw)
    return result, store


@pytest.mark.anyio
async def test_order_outermost_first(mode: str) -> None:
    """Strategies see the request outermost first and the response in reverse."""
    log: list[str] = []
    await make(mode, FakeProvider(), [Recorder("a", log), Recorder("b", log)])
    assert log == ["a>", "b>", "<b", "<a"]


@pytest.mark.anyio
async def test_short_circuit_records_a_hit(mode: str) -> None:
    """Returning before yielding answers without calling upstream; the ledger has a hit."""
    provider = FakeProvider()
    result, store = await make(mode, provider, [ShortCircuit()])
    assert result.choices[0].message.content == "cached!"
    assert provider.requests == []
    (entry,) = store.entries()
    assert (entry.kind, entry.cost_nanos, entry.strategy, entry.final) == ("hit", 0, "cache", True)
    assert entry.baseline_nanos and entry.baseline_nanos > 0


@pytest.mark.anyio
async def test_exception_thrown_into_flow(mode: str) -> None:
    """An upstream error is thrown into the flow, which can fall back; both attempts recorded."""
    provider = FakeProvider()
    provider.script(Error(status=429, message="slow down"))
    result, store = await make(mode, provider, [FallBack()])
    assert [r.json["model"] for r in provider.requests] == ["gpt-4o-mini", "gpt-4o"]
    assert result.choices[0].message.content
    first, second = store.entries()
    assert (first.status, first.tier, first.final) == ("RateLimitError", 0, False)
    assert (second.status, second.tier, second.final) == ("ok", 1, True)
    assert first.baseline_nanos == 0 and second.baseline_nanos == second.cost_nanos


@pytest.mark.anyio
async def test_unhandled_error_propagates_unchanged(mode: str) -> None:
    """If every attempt fails, the last SDK error is raised as is; all attempts recorded."""
    provider = FakeProvider()
    provider.script(Error(status=429, message="a"), Error(status=500, message="b"))
    with pytest.raises(openai.InternalServerError):
        await make(mode, provider, [FallBack()])


@pytest.mark.anyio
async def test_several_attempts_and_annotations(mode: str) -> None:
    """Two attempts are two entries; the annotated reason lands on the first."""
    _result, store = await make(mode, FakeProvider(), [TwoAttempts()])
    first, second = store.entries()
    assert first.reason == "not good enough" and not first.final
    assert second.final and second.tier == 1
    assert store.aggregate()[0].escalations == 1
    assert store.aggregate()[0].calls == 1


@pytest.mark.anyio
async def test_side_call_is_overhead(mode: str) -> None:
    """A side call goes straight upstream and is recorded as overhead of the same call."""
    provider = FakeProvider()
    _, store = await make(mode, provider, [Judge(), ModelOverride("gpt-4o-mini")])
    # the side call skipped ModelOverride? No: Judge is outermost, so the main call was
    # rewritten by ModelOverride below it, while the side call went straight upstream.
    assert [r.json["model"] for r in provider.requests] == ["gpt-4o-mini", "gpt-4o-mini"]
    side, main = store.entries()
    assert (side.kind, side.purpose, side.final, side.baseline_nanos) == (
        "overhead",
        "judge",
        False,
        0,
    )
    assert main.final and main.call_id == side.call_id


@pytest.mark.anyio
async def test_model_override_baseline(mode: str) -> None:
    """Changing the model records the saving against the model the caller wrote."""
    provider = FakeProvider()
    provider.script(Reply(content="x", usage=(1000, 1000)))
    _, store = await make(mode, provider, [ModelOverride("gpt-4o-mini")])
    (entry,) = store.entries()
    assert entry.requested_model == "gpt-4o"
    assert entry.strategy == "override"
    # gpt-4o costs 2.50/10.00, gpt-4o-mini 0.15/0.60 per million tokens
    assert entry.cost_nanos == 1000 * 150 + 1000 * 600
    assert entry.baseline_nanos == 1000 * 2500 + 1000 * 10000


@pytest.mark.anyio
async def test_function_strategy(mode: str) -> None:
    """A plain Call -> Call function is a request-only strategy."""
    provider = FakeProvider()

    def shorten(call: Call) -> Call:
        return call.replace(max_tokens=5)

    await make(mode, provider, [shorten])
    assert provider.requests[0].json["max_tokens"] == 5


@pytest.mark.anyio
@pytest.mark.parametrize("bad", [YieldsJunk, ReturnsNone], ids=["junk", "none"])
async def test_contract_violation(mode: str, bad: type[YieldsJunk] | type[ReturnsNone]) -> None:
    """A strategy that breaks the protocol raises StrategyError naming it; entries kept."""
    with pytest.raises(StrategyError, match=bad.name):
        await make(mode, FakeProvider(), [bad()])


@pytest.mark.anyio
async def test_async_escape_hatch(mode: str) -> None:
    """async_flow is used by the async client; flow by the sync one; same result."""
    provider = FakeProvider()
    await make(mode, provider, [AsyncNative()])
    assert provider.requests[0].json["model"] == "gpt-4o-mini"


@pytest.mark.anyio
async def test_request_only_runs_for_streams_others_skip(mode: str) -> None:
    """For stream=True only request-only or stream-aware strategies run."""
    provider = FakeProvider()
    result, store = await make(
        mode, provider, [ShortCircuit(), ModelOverride("gpt-4o-mini")], stream=True
    )
    chunks = list(result) if mode == "sync" else [c async for c in result]
    assert chunks
    assert provider.requests[0].json["model"] == "gpt-4o-mini"
    (entry,) = store.entries()
    assert entry.kind == "upstream" and entry.final


def test_duplicate_kinds_rejected() -> None:
    """Two strategies of one kind are a configuration error."""
    from costwise import ConfigurationError, Pipeline

    with pytest.raises(ConfigurationError, match="override"):
        Pipeline([ModelOverride("a"), ModelOverride("b")])


def test_unusual_order_warns() -> None:
    """A cache inside a cascade is allowed but warned about."""
    from costwise import Pipeline

    with pytest.warns(CostwiseWarning, match="unusual strategy order"):
        Pipeline([FallBack(), ShortCircuit()])


def test_strategy_raising_loses_no_entry() -> None:
    """A strategy that raises after an upstream attempt: the attempt is still recorded."""

    class Boom:
        name = "boom"

        def flow(self, call: Call) -> Flow:
            yield call
            raise RuntimeError("strategy bug")

    store = MemoryStore()
    client = fake_client(FakeProvider(), strategies=[Boom()], ledger=store)
    with pytest.raises(RuntimeError, match="strategy bug"):
        client.chat.completions.create(model="gpt-4o", messages=MSGS)
    (entry,) = store.entries()
    assert entry.status == "ok" and entry.final and entry.baseline_nanos == 0


class Lookup:
    """Waits on 'the network' through Blocking: gets a value, and an error thrown back in."""

    name = "lookup"

    def __init__(self) -> None:
        self.threads: list[str] = []

    def _fetch(self, key: str) -> str:
        import threading

        self.threads.append(threading.current_thread().name)
        if key == "missing":
            raise KeyError(key)
        return f"value of {key}"

    def flow(self, call: Call) -> Flow:
        from costwise import Blocking

        value = yield Blocking(self._fetch, "model")
        assert value == "value of model"
        try:
            yield Blocking(self._fetch, "missing")
        except KeyError as exc:
            call.trace.act(self.name, looked_up=value, missing=str(exc))
        return (yield call)


@pytest.mark.anyio
async def test_blocking_io_from_a_flow(mode: str) -> None:
    """Blocking(fn, ...) is called in place by the sync client, in a worker thread by async."""
    import threading

    lookup = Lookup()
    result, store = await make(mode, FakeProvider(), [lookup])
    assert isinstance(result, ChatCompletion)
    (entry,) = list(store.entries())
    assert entry.strategy == "lookup" and entry.detail["looked_up"] == "value of model"
    main = threading.main_thread().name
    if mode == "sync":
        assert lookup.threads == [main, main]
    else:
        assert len(lookup.threads) == 2 and main not in lookup.threads
