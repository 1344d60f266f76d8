"""Embeddings and the Responses API: recorded in the ledger, returned exactly as the SDK's.

Strategies only run on chat completions, but a client's other priced calls must be in the
ledger or it undercounts spend. Each test runs the same call through the bare SDK and through
costwise over one MockTransport and compares the results, then checks the entry.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import httpx2
import openai
import pytest

import costwise
from costwise import AsyncCostwiseClient, CostwiseClient
from costwise.ledger import MemoryStore
from costwise.strategies import SemanticCache
from costwise.testing import FakeProvider

RESPONSE: dict[str, Any] = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "model": "gpt-4o-2024-08-06",
    "output": [
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Paris.", "annotations": []}],
        }
    ],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "status": "completed",
    "usage": {
        "input_tokens": 1200,
        "input_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 0},
        "output_tokens": 50,
        "output_tokens_details": {"reasoning_tokens": 20},
        "total_tokens": 1250,
    },
}


QUEUED: dict[str, Any] = {**RESPONSE, "status": "queued", "output": [], "usage": None}


class Upstream:
    """The fake provider, plus a ``/responses`` route (plain JSON, an SSE stream, or a 500)."""

    def __init__(self) -> None:
        self.provider = FakeProvider()
        self.responses = 0
        self.only_final = False  # a stream of the created and final events alone
        self.polls: dict[str, int] = {}

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if "/responses/" in path:  # retrieve (twice queued, then done) or cancel
            response_id = path.split("/responses/")[1].split("/")[0]
            polls = self.polls[response_id] = self.polls.get(response_id, 0) + 1
            if path.endswith("/cancel"):
                return httpx2.Response(
                    200, json={**RESPONSE, "id": response_id, "status": "cancelled"}
                )
            if polls < 2:
                return httpx2.Response(200, json={**QUEUED, "id": response_id})
            return httpx2.Response(200, json={**RESPONSE, "id": response_id})
        if not path.endswith("/responses"):
            return self.provider(request)
        self.responses += 1
        body = json.loads(request.content)
        if body.get("background"):
            return httpx2.Response(200, json={**QUEUED, "id": f"resp_bg{self.responses}"})
        if body.get("input") == "fail":
            error = {"error": {"message": "boom", "type": "server_error", "code": None}}
            return httpx2.Response(500, json=error)
        if body.get("stream"):
            delta = {
                "type": "response.output_text.delta",
                "sequence_number": 0,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": "Paris.",
                "logprobs": [],
            }
            done = {"type": "response.completed", "sequence_number": 1, "response": RESPONSE}
            created_response = {**RESPONSE, "status": "in_progress", "output": [], "usage": None}
            created = {
                "type": "response.created",
                "sequence_number": 0,
                "response": created_response,
            }
            if body.get("input") == "fail mid-stream":  # the model failed: a final event says so
                failed = {**RESPONSE, "status": "failed", "output": []}
                done = {"type": "response.failed", "sequence_number": 1, "response": failed}
            events = (created, done) if self.only_final else (delta, done)
            text = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
            return httpx2.Response(
                200, content=text.encode(), headers={"content-type": "text/event-stream"}
            )
        if (body.get("text") or {}).get("format", {}).get("type") == "json_schema":
            structured = json.loads(json.dumps(RESPONSE))
            structured["output"][0]["content"][0]["text"] = '{"city": "Paris"}'
            return httpx2.Response(200, json=structured)
        return httpx2.Response(200, json=RESPONSE)

    async def handle_async(self, request: httpx2.Request) -> httpx2.Response:
        return self(request)


def _clients(upstream: Upstream) -> tuple[openai.OpenAI, CostwiseClient]:
    opts: dict[str, Any] = {"api_key": "k", "base_url": "http://test/v1", "max_retries": 0}
    bare = openai.OpenAI(
        http_client=httpx2.Client(transport=httpx2.MockTransport(upstream)), **opts
    )
    http = httpx2.Client(transport=httpx2.MockTransport(upstream))
    return bare, CostwiseClient(http_client=http, ledger=MemoryStore(), **opts)


def _async_clients(upstream: Upstream) -> tuple[openai.AsyncOpenAI, AsyncCostwiseClient]:
    opts: dict[str, Any] = {"api_key": "k", "base_url": "http://test/v1", "max_retries": 0}
    transport = httpx2.MockTransport(upstream.handle_async)
    bare = openai.AsyncOpenAI(http_client=httpx2.AsyncClient(transport=transport), **opts)
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(upstream.handle_async))
    return bare, AsyncCostwiseClient(http_client=http, ledger=MemoryStore(), **opts)


def test_embeddings_are_recorded_and_unchanged() -> None:
    bare, client = _clients(Upstream())
    ask: dict[str, Any] = {"model": "text-embedding-3-small", "input": ["card pin", "refund"]}
    expected = bare.embeddings.create(**ask)
    got = client.embeddings.create(**ask, feature="search")
    assert type(got) is type(expected) and got.model_dump() == expected.model_dump()
    (entry,) = client.ledger.entries()
    assert (entry.feature, entry.model, entry.kind, entry.final) == (
        "search",
        "text-embedding-3-small",
        "upstream",
        True,
    )
    assert entry.prompt_tokens == expected.usage.prompt_tokens > 0
    assert entry.cost_nanos and entry.cost_nanos > 0 and entry.baseline_nanos == entry.cost_nanos
    assert not entry.estimated and entry.detail == {"api": "embeddings"}


def test_responses_are_recorded_and_unchanged() -> None:
    bare, client = _clients(Upstream())
    ask: dict[str, Any] = {
        "model": "gpt-4o",
        "input": "Capital of France?",
        "instructions": "Be terse.",
    }
    expected = bare.responses.create(**ask)
    with costwise.feature("geo"):
        got = client.responses.create(**ask)
    assert type(got) is type(expected) and got.model_dump() == expected.model_dump()
    (entry,) = client.ledger.entries()
    assert (entry.feature, entry.requested_model, entry.model) == (
        "geo",
        "gpt-4o",
        "gpt-4o-2024-08-06",
    )
    counts = (entry.prompt_tokens, entry.completion_tokens, entry.cached_tokens)
    assert counts == (1200, 50, 1024) and entry.reasoning_tokens == 20
    assert entry.detail == {"api": "responses"}
    price = client._costwise.meter.prices.price("gpt-4o")
    assert price is not None
    # 176 uncached + 1024 cached input tokens and 50 output tokens at gpt-4o's rates
    expected_usd = price.cost(
        costwise.pricing.Usage(prompt_tokens=1200, completion_tokens=50, cached_tokens=1024)
    )
    assert entry.cost == expected_usd


def test_errors_pass_through_unchanged_and_are_recorded() -> None:
    bare, client = _clients(Upstream())
    with pytest.raises(openai.InternalServerError) as bare_error:
        bare.responses.create(model="gpt-4o", input="fail")
    with pytest.raises(openai.InternalServerError) as error:
        client.responses.create(model="gpt-4o", input="fail", feature="geo")
    assert type(error.value) is type(bare_error.value) and error.value.status_code == 500
    (entry,) = client.ledger.entries()
    assert entry.status == "InternalServerError" and entry.cost_nanos == 0


def test_a_streamed_response_is_recorded_when_it_ends() -> None:
    upstream = Upstream()
    bare, client = _clients(upstream)
    ask: dict[str, Any] = {"model": "gpt-4o", "input": "Capital?", "stream": True}
    expected = [e.model_dump() for e in bare.responses.create(**ask)]
    stream = client.responses.create(**ask, feature="geo")
    assert isinstance(stream, openai.Stream) and list(client.ledger.entries()) == []
    assert [e.model_dump() for e in stream] == expected
    (entry,) = client.ledger.entries()
    assert (entry.feature, entry.model, entry.status, entry.estimated) == (
        "geo",
        "gpt-4o-2024-08-06",
        "ok",
        False,
    )
    assert (entry.prompt_tokens, entry.completion_tokens, entry.cached_tokens) == (1200, 50, 1024)
    with pytest.raises(openai.InternalServerError):  # fails before streaming: recorded too
        client.responses.create(model="gpt-4o", input="fail", stream=True)
    assert max(client.ledger.entries(), key=lambda e: e.ts).status == "InternalServerError"
    failed = list(client.responses.create(model="gpt-4o", input="fail mid-stream", stream=True))
    assert failed[-1].type == "response.failed"
    assert max(client.ledger.entries(), key=lambda e: e.ts).status == "failed"
    # closed after the first event: no final usage, so an estimate, marked incomplete
    with client.responses.create(**ask) as early:
        next(iter(early))
    last = max(client.ledger.entries(), key=lambda e: e.ts)
    assert last.status == "incomplete" and last.estimated and last.prompt_tokens > 0


def test_what_is_not_recorded_yet_passes_through_and_says_so() -> None:
    upstream = Upstream()
    _, client = _clients(upstream)
    with pytest.warns(costwise.CostwiseWarning, match="raw streamed responses"):
        raw = client.responses.with_raw_response.create(model="gpt-4o", input="hi", stream=True)
    assert [e.type for e in raw.parse()][-1] == "response.completed"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process: no second warning
        client.responses.with_raw_response.create(model="gpt-4o", input="hi", stream=True)
    assert list(client.ledger.entries()) == [] and upstream.responses == 2


def test_a_background_response_is_recorded_once_it_has_finished() -> None:
    upstream = Upstream()
    _, client = _clients(upstream)
    ask: dict[str, Any] = {"model": "gpt-4o", "input": "A long task", "background": True}
    started = client.responses.create(**ask, feature="research")
    assert started.status == "queued" and list(client.ledger.entries()) == []
    assert client.responses.retrieve(started.id).status == "queued"  # still running
    assert client.responses.retrieve(started.id).status == "completed"
    client.responses.retrieve(started.id)  # seen finished again: not recorded twice
    client.responses.retrieve("resp_not_ours")  # started elsewhere: not ours to record
    (entry,) = client.ledger.entries()
    assert (entry.feature, entry.status, entry.prompt_tokens, entry.completion_tokens) == (
        "research",
        "ok",
        1200,
        50,
    )
    cancelled = client.responses.create(**ask)
    assert client.responses.cancel(cancelled.id).status == "cancelled"
    statuses = sorted(e.status for e in client.ledger.entries())
    assert statuses == ["cancelled", "ok"]


def test_a_raw_background_response_is_remembered_from_its_body() -> None:
    """``with_raw_response`` and ``background=True``: the raw response is returned as the
    SDK gives it (it raised AttributeError before), and recorded once seen finished."""
    _, client = _clients(Upstream())
    with costwise.feature("research"):
        raw = client.responses.with_raw_response.create(
            model="gpt-4o", input="A long task", background=True
        )
    started = raw.parse()
    assert started.status == "queued" and list(client.ledger.entries()) == []
    for _ in range(3):
        client.responses.retrieve(started.id)
    (entry,) = client.ledger.entries()
    assert (entry.feature, entry.status, entry.completion_tokens) == ("research", "ok", 50)


@pytest.mark.anyio
async def test_async_raw_background_response_is_remembered_from_its_body() -> None:
    _, client = _async_clients(Upstream())
    with costwise.feature("research"):
        raw = await client.responses.with_raw_response.create(
            model="gpt-4o", input="A long task", background=True
        )
    started = raw.parse()
    for _ in range(3):
        await client.responses.retrieve(started.id)
    (entry,) = client.ledger.entries()
    assert (entry.feature, entry.status, entry.completion_tokens) == ("research", "ok", 50)


def test_raw_responses_are_recorded_from_their_body() -> None:
    bare, client = _clients(Upstream())
    with costwise.feature("geo"):  # the SDK types with_raw_response without feature=
        raw = client.responses.with_raw_response.create(model="gpt-4o", input="hi")
    assert raw.parse().output_text == "Paris." and raw.status_code == 200
    with client.embeddings.with_streaming_response.create(
        model="text-embedding-3-small", input="card pin"
    ) as streamed:
        vectors = streamed.parse()
    expected = bare.embeddings.create(model="text-embedding-3-small", input="card pin")
    assert vectors.model_dump() == expected.model_dump()
    by_model = {e.model: e for e in client.ledger.entries()}
    assert by_model["gpt-4o-2024-08-06"].prompt_tokens == 1200
    assert by_model["gpt-4o-2024-08-06"].feature == "geo"
    embedding = by_model["text-embedding-3-small"]
    assert embedding.prompt_tokens == expected.usage.prompt_tokens and not embedding.estimated


def test_bad_tags_are_refused_before_sending() -> None:
    upstream = Upstream()
    _, client = _clients(upstream)
    for bad in (3, "", " "):
        with pytest.raises((TypeError, ValueError), match="feature"):
            client.responses.create(model="gpt-4o", input="hi", feature=bad)  # type: ignore[arg-type]
        with pytest.raises((TypeError, ValueError), match="feature"):
            client.embeddings.create(model="text-embedding-3-small", input="x", feature=bad)  # type: ignore[arg-type]
    assert upstream.responses == 0 and upstream.provider.requests == []


def test_a_semantic_cache_side_call_is_recorded_once() -> None:
    """The semantic cache embeds through the SDK's own create: one overhead entry per embedding."""
    from costwise.cache import MemoryCacheStore
    from costwise.semantic import OpenAIEmbedder

    upstream = Upstream()
    with pytest.warns(costwise.CostwiseWarning, match="calibrated"):  # not MiniLM's settings
        semantic = SemanticCache(MemoryCacheStore(), embedder=OpenAIEmbedder(dimensions=64))
    client = CostwiseClient(
        api_key="k",
        base_url="http://test/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(upstream)),
        ledger=MemoryStore(),
        strategies=[semantic],
    )
    for _ in range(2):  # a miss (embed, call, store), then a hit (embed)
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "How do I reset my PIN?"}],
            temperature=0,
        )
    embeddings_sent = len(upstream.provider.calls("/embeddings"))
    entries = list(client.ledger.entries())
    assert embeddings_sent >= 1
    assert sum(e.purpose == "embed" for e in entries) == embeddings_sent
    assert sum(e.kind == "upstream" for e in entries) == 1


@pytest.mark.anyio
async def test_async_embeddings_and_responses_are_recorded_and_unchanged() -> None:
    upstream = Upstream()
    bare, client = _async_clients(upstream)
    ask: dict[str, Any] = {"model": "gpt-4o", "input": "Capital of France?"}
    expected = await bare.responses.create(**ask)
    got = await client.responses.create(**ask, feature="geo")
    assert got.model_dump() == expected.model_dump()
    emb: dict[str, Any] = {"model": "text-embedding-3-small", "input": "card pin"}
    assert (await client.embeddings.create(**emb)).model_dump() == (
        await bare.embeddings.create(**emb)
    ).model_dump()
    entries = sorted(client.ledger.entries(), key=lambda e: e.model)
    assert [(e.feature, e.model) for e in entries] == [
        ("geo", "gpt-4o-2024-08-06"),
        ("untagged", "text-embedding-3-small"),
    ]
    with pytest.raises(openai.InternalServerError):
        await client.responses.create(model="gpt-4o", input="fail")
    assert len(list(client.ledger.entries())) == 3
    stream = await client.responses.create(model="gpt-4o", input="hi", stream=True)
    assert isinstance(stream, openai.AsyncStream)
    assert [e.type async for e in stream] == ["response.output_text.delta", "response.completed"]
    entries = list(client.ledger.entries())
    assert len(entries) == 4 and max(entries, key=lambda e: e.ts).completion_tokens == 50
    with pytest.raises(openai.InternalServerError):
        await client.responses.create(model="gpt-4o", input="fail", stream=True)
    assert [e.status for e in client.ledger.entries()].count("InternalServerError") == 2


def test_responses_parse_is_recorded() -> None:
    import pydantic

    class City(pydantic.BaseModel):
        city: str

    upstream = Upstream()
    _, client = _clients(upstream)
    parsed = client.responses.parse(
        model="gpt-4o", input="Capital?", text_format=City, feature="geo"
    )
    assert parsed.output_parsed == City(city="Paris")
    (entry,) = client.ledger.entries()
    assert (entry.feature, entry.prompt_tokens, entry.completion_tokens) == ("geo", 1200, 50)


def test_the_stream_helper_is_recorded_with_its_feature() -> None:
    upstream = Upstream()
    upstream.only_final = True
    _, client = _clients(upstream)
    manager = client.responses.stream(model="gpt-4o", input="hi", feature="geo")
    assert list(client.ledger.entries()) == []  # nothing is sent until it is entered
    with manager as stream:
        assert [e.type for e in stream] == ["response.created", "response.completed"]
        final = stream.get_final_response()
    assert final.output_text == "Paris."
    (entry,) = client.ledger.entries()
    assert (entry.feature, entry.prompt_tokens, entry.completion_tokens) == ("geo", 1200, 50)
    with pytest.warns(costwise.CostwiseWarning, match="response_id"):
        client.responses.stream(response_id="resp_1")  # an existing response: not recorded


@pytest.mark.anyio
async def test_async_stream_helper_and_parse_are_recorded() -> None:
    import pydantic

    class City(pydantic.BaseModel):
        city: str

    upstream = Upstream()
    upstream.only_final = True
    _, client = _async_clients(upstream)
    async with client.responses.stream(model="gpt-4o", input="hi", feature="geo") as stream:
        assert [e.type async for e in stream] == ["response.created", "response.completed"]
    parsed = await client.responses.parse(model="gpt-4o", input="Capital?", text_format=City)
    assert parsed.output_parsed == City(city="Paris")
    entries = sorted(client.ledger.entries(), key=lambda e: e.ts)
    assert [(e.feature, e.prompt_tokens) for e in entries] == [("geo", 1200), ("untagged", 1200)]


@pytest.mark.anyio
async def test_async_background_response_is_recorded_once_finished() -> None:
    upstream = Upstream()
    _, client = _async_clients(upstream)
    started = await client.responses.create(
        model="gpt-4o", input="A long task", background=True, feature="research"
    )
    for _ in range(3):
        await client.responses.retrieve(started.id)
    (entry,) = client.ledger.entries()
    assert (entry.feature, entry.status, entry.completion_tokens) == ("research", "ok", 50)


def test_background_responses_awaiting_their_finish_are_bounded() -> None:
    """A service that never retrieves its background responses does not grow without end."""
    from types import SimpleNamespace

    from costwise._meter import _MAX_BACKGROUND

    _, client = _clients(Upstream())
    meter = client._costwise.meter
    for i in range(_MAX_BACKGROUND + 1):
        meter.later("f", 0.0, "gpt-4o", SimpleNamespace(id=f"r{i}", status="queued"), "responses")
    assert len(meter._background) == _MAX_BACKGROUND
    usage = {"input_tokens": 3, "output_tokens": 2}
    for i in (0, _MAX_BACKGROUND):  # the oldest was dropped; the newest is still awaited
        meter.finished(SimpleNamespace(id=f"r{i}", status="completed", model="gpt-4o", usage=usage))
    (entry,) = client.ledger.entries()
    assert entry.prompt_tokens == 3 and entry.completion_tokens == 2
