"""Router: task map, task detection, LLM classification, and never routing to a misfit model."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest

from costwise._exceptions import ConfigurationError
from costwise.ledger import MemoryStore
from costwise.pricing import PriceTable
from costwise.strategies.router import Router, detect_task, required_capabilities
from costwise.testing import FakeProvider, fake_async_client, fake_client

CHEAP, STRONG = "gpt-4o-mini", "gpt-4o"
PRICES = PriceTable.default().extend(
    {
        "tiny-window": {"input": "0.01", "output": "0.02", "context_window": 60},
        "no-tools": {"input": "0.01", "output": "0.02", "context_window": 100000},
        "small-tools": {
            "input": "0.01",
            "output": "0.02",
            "context_window": 400,
            "capabilities": ["tools"],
        },
    }
)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def make(
    mode: str, provider: FakeProvider, router: Router, content: str = "hello", **kw: Any
) -> Any:
    """Create through a sync or async client; returns (result, ledger store)."""
    store = MemoryStore()
    msgs = [{"role": "user", "content": content}]
    if mode == "sync":
        client: Any = fake_client(provider, strategies=[router], ledger=store, prices=PRICES)
        result = client.chat.completions.create(model=STRONG, messages=msgs, **kw)
        if kw.get("stream"):
            result = list(result)
    else:
        aclient: Any = fake_async_client(provider, strategies=[router], ledger=store, prices=PRICES)
        result = await aclient.chat.completions.create(model=STRONG, messages=msgs, **kw)
        if kw.get("stream"):
            result = [c async for c in result]
    return result, store


def sent(provider: FakeProvider) -> list[str]:
    return [r.json["model"] for r in provider.calls()]


@pytest.mark.anyio
async def test_task_map_routes_and_keeps_baseline(mode: str) -> None:
    """task= picks the mapped model; the ledger compares against the model the caller wrote."""
    provider = FakeProvider()
    _, store = await make(mode, provider, Router({"classify": CHEAP}), task="classify")
    assert sent(provider) == [CHEAP]
    (entry,) = store.entries()
    assert (entry.requested_model, entry.strategy) == (STRONG, "router")
    assert entry.baseline_nanos and entry.cost_nanos and entry.baseline_nanos > entry.cost_nanos


@pytest.mark.anyio
async def test_unknown_task_is_an_error(mode: str) -> None:
    """A task= that is not in the map raises before anything is sent."""
    provider = FakeProvider()
    with pytest.raises(ConfigurationError, match="unknown task"):
        await make(mode, provider, Router({"classify": CHEAP}), task="poetry")
    assert provider.calls() == []


@pytest.mark.anyio
async def test_detected_task_routes(mode: str) -> None:
    """Without task=, the rules detect it; no rule match keeps the caller's model."""
    provider = FakeProvider()
    router = Router({"translate": CHEAP})
    await make(mode, provider, router, "Translate this into German: good morning")
    await make(mode, provider, router, "hello, how are you?")
    assert sent(provider) == [CHEAP, STRONG]


@pytest.mark.anyio
async def test_default_task(mode: str) -> None:
    """default= routes calls nothing else decides."""
    provider = FakeProvider()
    await make(mode, provider, Router({"chat": CHEAP}, default="chat"), "hello")
    assert sent(provider) == [CHEAP]


@pytest.mark.anyio
async def test_context_window_and_capabilities(mode: str) -> None:
    """A model that can't hold the prompt, or lacks tools, is never chosen."""
    provider = FakeProvider()
    await make(mode, provider, Router({"chat": "tiny-window"}), "word " * 200, task="chat")
    await make(mode, provider, Router({"chat": "tiny-window"}), "hi", task="chat")
    await make(mode, provider, Router({"chat": "tiny-window"}), "hi", task="chat", max_tokens=100)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    await make(mode, provider, Router({"chat": "no-tools"}), "hi", task="chat", tools=tools)
    await make(mode, provider, Router({"chat": CHEAP}), "hi", task="chat", tools=tools)
    assert sent(provider) == [STRONG, "tiny-window", STRONG, STRONG, CHEAP]


@pytest.mark.anyio
async def test_llm_classifier_is_a_recorded_side_call(mode: str) -> None:
    """With classifier=, an undetected task is asked of a cheap model; its cost is overhead."""

    def reply(body: dict[str, Any]) -> str:
        return "code" if "Which task" in str(body["messages"]) else "the answer"

    provider = FakeProvider(reply=reply)
    router = Router({"code": CHEAP}, detect=False, classifier=CHEAP)
    _, store = await make(mode, provider, router, "make my thing faster")
    assert sent(provider) == [CHEAP, CHEAP]
    side, main = store.entries()
    assert (side.kind, side.purpose) == ("overhead", "classify")
    assert side.cost_nanos and main.final and main.model.startswith(CHEAP)


@pytest.mark.anyio
async def test_streams_are_routed(mode: str) -> None:
    """The router only rewrites the request, so it runs for streams too."""
    provider = FakeProvider()
    chunks, _ = await make(mode, provider, Router({"chat": CHEAP}), task="chat", stream=True)
    assert sent(provider) == [CHEAP] and chunks


def test_bad_configuration() -> None:
    """Empty maps, bad entries, unknown defaults and unpriced models fail at construction."""
    with pytest.raises(ConfigurationError):
        Router({})
    with pytest.raises(ConfigurationError):
        Router({"chat": ""})
    with pytest.raises(ConfigurationError, match="default"):
        Router({"chat": CHEAP}, default="code")
    with pytest.raises(ConfigurationError, match="no price"):
        fake_client(strategies=[Router({"chat": "no-such-model-xyz"})])


@pytest.mark.parametrize(
    ("text", "task"),
    [
        ("Why does this python function raise a KeyError?", "code"),
        ("```\nx = 1\n```", "code"),
        ("Translate 'good night' into Spanish", "translate"),
        ("Summarize the following article in three sentences.", "summarize"),
        ("Classify the sentiment of this review: loved it", "classify"),
        ("A train leaves at 3pm. How many hours until 7pm?", "reasoning"),
        ("Good morning! Any plans for the weekend?", None),
    ],
)
def test_detect_task(text: str, task: str | None) -> None:
    """The rules recognise the common tasks and leave plain chat alone."""
    assert detect_task([{"role": "user", "content": text}]) == task


def test_detect_task_is_fast() -> None:
    """A rules decision on a long prompt takes microseconds (loose bound for busy CI)."""
    msgs = [{"role": "user", "content": "Please review the following text. " * 300}]
    samples = []
    for _ in range(300):
        t = time.perf_counter_ns()
        detect_task(msgs)
        samples.append((time.perf_counter_ns() - t) / 1000)
    assert statistics.median(samples) < 200


def test_required_capabilities() -> None:
    """Tools, JSON schema and images are read from the request."""
    image = {"type": "image_url", "image_url": {"url": "data:,"}}
    kwargs = {
        "tools": [{"type": "function"}],
        "response_format": {"type": "json_schema"},
        "messages": [{"role": "user", "content": [image]}],
    }
    assert required_capabilities(kwargs) == {"tools", "json_schema", "vision"}
    assert required_capabilities({"messages": []}) == frozenset()


@pytest.mark.anyio
async def test_tool_definitions_count_toward_the_context_window(mode: str) -> None:
    """Tool definitions are sent and billed as prompt: a model whose window cannot hold
    them with the messages is never chosen."""
    provider = FakeProvider()

    def tools(words: int) -> list[Any]:
        function = {"name": "f", "description": "word " * words, "parameters": {"type": "object"}}
        return [{"type": "function", "function": function}]

    await make(mode, provider, Router({"chat": "small-tools"}), "hi", task="chat", tools=tools(5))
    await make(mode, provider, Router({"chat": "small-tools"}), "hi", task="chat", tools=tools(900))
    assert sent(provider) == ["small-tools", STRONG]


def test_a_parse_response_format_class_needs_json_schema() -> None:
    """``parse(response_format=Model)`` passes a class: it needs structured outputs too."""
    import pydantic

    class City(pydantic.BaseModel):
        name: str

    assert "json_schema" in required_capabilities({"response_format": City})
    assert "json_schema" not in required_capabilities({"response_format": {"type": "text"}})
