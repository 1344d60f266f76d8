"""The drop-in scenarios of test_client.py, through AsyncOpenAI and AsyncCostwiseClient."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionToolParam

import costwise
from costwise import AsyncCostwiseStream
from costwise.ledger import MemoryStore
from costwise.strategies import ModelOverride
from costwise.testing import Error, FakeProvider, bare_async_client, fake_async_client
from test_client import MSGS, Answer, _normalise, _reply  # the same scenarios, async

AScenario = Callable[[openai.AsyncOpenAI], Awaitable[Any]]


async def _plain(c: openai.AsyncOpenAI) -> Any:
    return await c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)


async def _n_two(c: openai.AsyncOpenAI) -> Any:
    return await c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, n=2, temperature=0.7)


async def _tools(c: openai.AsyncOpenAI) -> Any:
    tool: ChatCompletionToolParam = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object"}},
    }
    return await c.chat.completions.create(
        model="gpt-4o",
        messages=MSGS,
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
    )


async def _unknown_params(c: openai.AsyncOpenAI) -> Any:
    return await c.chat.completions.create(
        model="gpt-4o-mini",
        messages=MSGS,
        user="u1",
        metadata={"k": "v"},
        extra_body={"vendor_flag": True},
        extra_headers={"X-Trace": "1"},
    )


async def _stream(c: openai.AsyncOpenAI) -> Any:
    stream = await c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
    return [chunk async for chunk in stream]


async def _stream_usage(c: openai.AsyncOpenAI) -> Any:
    stream = await c.chat.completions.create(
        model="gpt-4o-mini",
        messages=MSGS,
        stream=True,
        stream_options={"include_usage": True},
    )
    return [chunk async for chunk in stream]


async def _stream_helper(c: openai.AsyncOpenAI) -> Any:
    async with c.chat.completions.stream(model="gpt-4o-mini", messages=MSGS) as s:
        events = [e.type async for e in s]
        return events, await s.get_final_completion()


async def _raw(c: openai.AsyncOpenAI) -> Any:
    raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSGS)
    return raw.http_response.status_code, raw.parse()


async def _streaming_response(c: openai.AsyncOpenAI) -> Any:
    async with c.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MSGS
    ) as r:
        return r.status_code, await r.parse()


async def _parse(c: openai.AsyncOpenAI) -> Any:
    return await c.chat.completions.parse(model="gpt-4o", messages=MSGS, response_format=Answer)


async def _with_options(c: openai.AsyncOpenAI) -> Any:
    return await c.with_options(timeout=5).chat.completions.create(
        model="gpt-4o-mini", messages=MSGS
    )


SCENARIOS: dict[str, AScenario] = {
    "plain": _plain,
    "n=2": _n_two,
    "tools": _tools,
    "unknown-params": _unknown_params,
    "stream": _stream,
    "stream-usage": _stream_usage,
    "stream-helper": _stream_helper,
    "raw": _raw,
    "streaming-response": _streaming_response,
    "parse": _parse,
    "with-options": _with_options,
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_same_result_as_bare_async_sdk(name: str) -> None:
    """Each scenario gives the same result and the same request through both async clients."""
    scenario = SCENARIOS[name]
    bare_provider, cw_provider = FakeProvider(reply=_reply), FakeProvider(reply=_reply)
    store = MemoryStore()
    expected = await scenario(bare_async_client(bare_provider))
    got = await scenario(fake_async_client(cw_provider, ledger=store))
    assert _normalise(got) == _normalise(expected)
    assert [r.json for r in cw_provider.requests] == [r.json for r in bare_provider.requests]
    assert len(store) == 1, "exactly one ledger entry per call"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "exc_type"),
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (400, openai.BadRequestError),
    ],
)
async def test_errors_pass_through_unchanged(status: int, exc_type: type[Exception]) -> None:
    """SDK errors are raised unchanged by the async client, and recorded."""
    provider = FakeProvider()
    provider.script(Error(status=status, message="nope"))
    store = MemoryStore()
    with pytest.raises(exc_type):
        await _plain(fake_async_client(provider, ledger=store))
    (entry,) = store.entries()
    assert entry.status == exc_type.__name__


@pytest.mark.anyio
async def test_async_copies_and_features() -> None:
    """with_options keeps strategies and the ledger; feature tags work in tasks."""
    import anyio

    provider = FakeProvider()
    client = fake_async_client(
        provider, ledger=MemoryStore(), strategies=[ModelOverride("gpt-4o-mini")]
    )
    other = client.with_options(timeout=3)
    assert other.ledger is client.ledger

    async def tagged(name: str) -> None:
        with costwise.feature(name):
            await other.chat.completions.create(model="gpt-4o", messages=MSGS)

    async with anyio.create_task_group() as tg:
        tg.start_soon(tagged, "a")
        tg.start_soon(tagged, "b")
    assert {r.key: r.calls for r in client.ledger.report()} == {"a": 1, "b": 1}
    assert {r.json["model"] for r in provider.requests} == {"gpt-4o-mini"}


@pytest.mark.anyio
async def test_async_stream_types_and_early_close() -> None:
    """Async streams are SDK AsyncStream instances; closing early records one entry."""
    client = fake_async_client(FakeProvider(), ledger=MemoryStore())
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
    assert isinstance(stream, openai.AsyncStream)
    assert isinstance(stream, AsyncCostwiseStream)
    async for _chunk in stream:
        break
    await stream.close()
    await stream.close()
    (entry,) = client.ledger.entries()
    assert entry.status == "incomplete"
