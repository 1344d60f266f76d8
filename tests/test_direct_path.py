"""A client with no strategies records calls on a direct path; it must equal the pipeline's.

`Meter.direct` skips building a `Call` and its trace (see costwise._meter), so every entry it
writes is compared here, field by field, with what the general pipeline writes for the same
call: a client whose only strategy never acts (a ModelOverride for another feature).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import openai
import pytest

import costwise
from costwise import AsyncCostwiseClient, CostwiseClient
from costwise.ledger import MemoryStore
from costwise.strategies import ModelOverride
from costwise.testing import Error, FakeProvider, Reply

MSGS: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
_VOLATILE = ("id", "call_id", "ts", "latency_ms")
_IDLE = ModelOverride(features={"some-other-feature": "gpt-4o-mini"})  # never acts here


def no_usage(request: httpx2.Request) -> httpx2.Response:
    """A provider that reports no usage: the entry must be a tokenizer estimate."""
    body = json.loads(request.content)
    return httpx2.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Paris is the capital."},
                    "finish_reason": "stop",
                }
            ],
        },
    )


Setup = Callable[[], Callable[[httpx2.Request], httpx2.Response]]

SCENARIOS: dict[str, tuple[Setup, dict[str, Any]]] = {
    "usage with cached tokens": (
        lambda: FakeProvider().script(
            Reply("hi", model="gpt-4o-2024-08-06", usage=(2000, 100), cached_tokens=1024)
        ),
        {"model": "gpt-4o", "feature": "support"},
    ),
    "reasoning tokens": (
        lambda: FakeProvider().script(Reply("42", model="o3-mini", reasoning_tokens=50)),
        {"model": "o3-mini", "feature": "support"},
    ),
    "unknown model": (
        lambda: FakeProvider().script(Reply("hi", model="no-such-model", usage=(7, 3))),
        {"model": "no-such-model"},
    ),
    "no usage reported": (lambda: no_usage, {"model": "gpt-4o-mini", "feature": "f"}),
    "upstream error": (lambda: FakeProvider().script(Error(500)), {"model": "gpt-4o-mini"}),
    "unknown parameters and costwise options": (
        FakeProvider,
        {"model": "gpt-4o-mini", "cache": False, "task": "chat", "extra_body": {"x": 1}},
    ),
}


def _comparable(client: CostwiseClient | AsyncCostwiseClient) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in e.to_dict().items() if k not in _VOLATILE}
        for e in client.ledger.entries()
    ]


def _options(strategies: list[Any], ledger: Any = None) -> dict[str, Any]:
    return {
        "api_key": "k",
        "base_url": "http://test/v1",
        "max_retries": 0,
        "ledger": ledger if ledger is not None else MemoryStore(),
        "strategies": strategies,
    }


def _answer(completion: Any) -> dict[str, Any]:
    """The completion without ``created``: the fake provider stamps the wall clock's second,
    which the two runs of a scenario may straddle."""
    return {k: v for k, v in completion.model_dump().items() if k != "created"}


def _sync_entries(
    setup: Setup, kwargs: dict[str, Any], strategies: list[Any], ledger: Any = None
) -> Any:
    http = httpx2.Client(transport=httpx2.MockTransport(setup()))
    with CostwiseClient(http_client=http, **_options(strategies, ledger)) as client:
        assert client._costwise.direct == (not strategies)  # the path under test
        outcome: Any
        try:
            outcome = _answer(client.chat.completions.create(messages=MSGS, **kwargs))
        except openai.APIStatusError as exc:
            outcome = (type(exc), exc.status_code)
        return outcome, _comparable(client)


async def _async_entries(setup: Setup, kwargs: dict[str, Any], strategies: list[Any]) -> Any:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(setup()))
    async with AsyncCostwiseClient(http_client=http, **_options(strategies)) as client:
        assert client._costwise.direct == (not strategies)  # the path under test
        outcome: Any
        try:
            outcome = _answer(await client.chat.completions.create(messages=MSGS, **kwargs))
        except openai.APIStatusError as exc:
            outcome = (type(exc), exc.status_code)
        return outcome, _comparable(client)


@pytest.mark.parametrize("name", SCENARIOS)
def test_direct_path_records_what_the_pipeline_records(name: str, tmp_path: Path) -> None:
    setup, kwargs = SCENARIOS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", costwise.CostwiseWarning)
        direct = _sync_entries(setup, dict(kwargs), [])
        general = _sync_entries(setup, dict(kwargs), [_IDLE])
    assert direct[1], "no ledger entry written"
    assert direct == general
    (entry,) = direct[1]
    # the same through the SQLite ledger, and in its journal: what a killed process would
    # leave behind
    from costwise.ledger._journal import decode

    http = httpx2.Client(transport=httpx2.MockTransport(setup()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", costwise.CostwiseWarning)
        opts = _options([], tmp_path / "ledger.sqlite")
        with CostwiseClient(http_client=http, **opts) as client:
            with contextlib.suppress(openai.APIStatusError):
                client.chat.completions.create(messages=MSGS, **kwargs)
            files = sorted((tmp_path / "ledger.sqlite.journal").iterdir())
            in_journal = [e for f in files for e in decode(f.read_bytes())]
            assert _comparable(client) == direct[1]
    assert [e.to_dict() for e in in_journal] == [e.to_dict() for e in client.ledger.entries()]
    assert entry["final"] and entry["strategy"] is None
    assert entry["estimated"] == (name == "no usage reported")


@pytest.mark.anyio
@pytest.mark.parametrize("name", SCENARIOS)
async def test_async_direct_path_records_what_the_pipeline_records(name: str) -> None:
    setup, kwargs = SCENARIOS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", costwise.CostwiseWarning)
        direct = await _async_entries(setup, dict(kwargs), [])
        general = await _async_entries(setup, dict(kwargs), [_IDLE])
        sync = _sync_entries(setup, dict(kwargs), [])
    assert direct == general
    assert direct[1] == sync[1]


def test_direct_path_takes_the_feature_from_context_and_client() -> None:
    provider = FakeProvider()
    http = httpx2.Client(transport=httpx2.MockTransport(provider))
    with CostwiseClient(api_key="k", base_url="http://test/v1", http_client=http) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        with costwise.feature("ctx"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, feature="arg")
        client.with_feature("pinned").chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        got = [e.feature for e in client.ledger.entries()]
    assert sorted(got) == ["arg", "ctx", "pinned", "untagged"]


@pytest.mark.parametrize("bad", [3, "", "   "])
def test_direct_path_rejects_bad_tags_before_sending(bad: object) -> None:
    provider = FakeProvider()
    http = httpx2.Client(transport=httpx2.MockTransport(provider))
    with CostwiseClient(api_key="k", base_url="http://test/v1", http_client=http) as client:
        with pytest.raises((TypeError, ValueError), match="feature"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, feature=bad)  # type: ignore[call-overload]
        assert provider.requests == [] and list(client.ledger.entries()) == []


def test_async_direct_path_is_anyio_compatible() -> None:
    # The async scenarios above run under the anyio plugin; this one checks the plain
    # asyncio entry point a service would use.
    setup, kwargs = SCENARIOS["usage with cached tokens"]
    outcome, entries = anyio.run(_async_entries, setup, dict(kwargs), [])
    assert outcome["model"] == "gpt-4o-2024-08-06" and len(entries) == 1


@pytest.mark.parametrize(
    "strategies", [[], [ModelOverride("gpt-4o-mini")]], ids=["direct", "pipeline"]
)
def test_usage_no_call_could_have_is_estimated_not_recorded(strategies: list[Any]) -> None:
    """A server reporting more tokens than any call uses (a bug; near 2**63 they would not
    even fit the store) gets a warning, and the entry is estimated from the texts."""
    provider = FakeProvider().script(Reply("Paris.", model="gpt-4o-mini", usage=(2**62, 3)))
    http = httpx2.Client(transport=httpx2.MockTransport(provider))
    with CostwiseClient(http_client=http, **_options(strategies)) as client:
        with pytest.warns(costwise.CostwiseWarning, match="not believed"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        (entry,) = client.ledger.entries()
    assert entry.estimated and 0 < entry.prompt_tokens < 100 and entry.cost_nanos is not None


@pytest.mark.parametrize(
    "strategies", [[], [ModelOverride("gpt-4o-mini")]], ids=["direct", "pipeline"]
)
def test_a_call_the_sdk_refuses_before_sending_is_not_an_attempt(strategies: list[Any]) -> None:
    """Arguments the SDK rejects raise before any request: no upstream attempt, no entry."""
    provider = FakeProvider()
    http = httpx2.Client(transport=httpx2.MockTransport(provider))
    with CostwiseClient(http_client=http, **_options(strategies)) as client:
        with pytest.raises(TypeError):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, bogus_kw=1)  # type: ignore[call-overload]
        assert provider.calls() == [] and list(client.ledger.entries()) == []


def test_a_truncated_parse_answer_is_recorded_with_what_it_cost() -> None:
    """``parse`` raises `LengthFinishReasonError` for an answer cut by the limit, after the
    provider billed it: the entry carries that answer's usage, priced."""
    import pydantic

    class City(pydantic.BaseModel):
        name: str

    provider = FakeProvider().script(
        Reply('{"name": "Par', model="gpt-4o-mini", usage=(40, 16), finish_reason="length")
    )
    http = httpx2.Client(transport=httpx2.MockTransport(provider))
    with CostwiseClient(http_client=http, **_options([])) as client:
        with pytest.raises(openai.LengthFinishReasonError):
            client.chat.completions.parse(model="gpt-4o-mini", messages=MSGS, response_format=City)
        (entry,) = client.ledger.entries()
    assert entry.status == "LengthFinishReasonError" and entry.final
    assert (entry.prompt_tokens, entry.completion_tokens) == (40, 16) and entry.cost_nanos


def test_a_stream_opening_with_an_anonymous_chunk_is_priced_at_its_model() -> None:
    """Azure opens a stream with a chunk naming no model (only content-filter results):
    the entry is priced at the model the other chunks name, from the usage chunk."""
    provider = FakeProvider()

    def azure(request: httpx2.Request) -> httpx2.Response:
        response = provider(request)
        filters = [{"prompt_index": 0, "content_filter_results": {}}]
        first = {"id": "", "object": "", "created": 0, "model": "", "choices": []}
        first["prompt_filter_results"] = filters
        body = b"data: " + json.dumps(first).encode() + b"\n\n" + response.read()
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    http = httpx2.Client(transport=httpx2.MockTransport(azure))
    with CostwiseClient(http_client=http, **_options([])) as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MSGS,
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = [c.usage for c in stream if c.usage][-1]
        (entry,) = client.ledger.entries()
    assert entry.model.startswith("gpt-4o-mini") and not entry.estimated
    assert entry.prompt_tokens == usage.prompt_tokens and entry.cost_nanos


def test_a_tool_call_streams_estimate_counts_its_arguments() -> None:
    """Without ``include_usage`` a stream is estimated from its text: a tool call's name
    and arguments are output tokens too."""
    args = json.dumps({"city": "Paris", "days": 5, "units": "metric", "detail": "hourly " * 40})
    provider = FakeProvider().script(
        Reply(None, tool_calls=[{"name": "forecast", "arguments": args}])
    )
    http = httpx2.Client(transport=httpx2.MockTransport(provider))
    with CostwiseClient(http_client=http, **_options([])) as client:
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True):
            pass
        (entry,) = client.ledger.entries()
    assert entry.estimated and entry.completion_tokens > 40


def test_the_first_gpt_4o_snapshot_is_priced_at_its_own_price() -> None:
    """gpt-4o-2024-05-13 kept its launch price ($5 / $15), not its family's."""
    from decimal import Decimal

    from costwise.pricing import PriceTable, Usage

    table = PriceTable.default()
    million = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert table.cost("gpt-4o-2024-05-13", million) == Decimal(20)
    assert table.cost("gpt-4o-2024-08-06", million) == Decimal("12.5")


@pytest.mark.parametrize(
    "strategies", [[], [ModelOverride("gpt-4o-mini")]], ids=["direct", "pipeline"]
)
def test_a_strict_price_table_refuses_unknown_models_before_sending(strategies: list[Any]) -> None:
    """``on_unknown="raise"``: a call to a model with no price raises before anything is
    sent (nothing billed); an answer from an unexpected model is still recorded."""
    from costwise.pricing import PriceTable

    provider = FakeProvider().script(Reply("hi", model="mystery-snapshot"))
    http = httpx2.Client(transport=httpx2.MockTransport(provider))
    strict = PriceTable.default(on_unknown="raise")
    with CostwiseClient(http_client=http, prices=strict, **_options(strategies)) as client:
        with pytest.raises(costwise.UnknownModelError):
            client.chat.completions.create(model="no-such-model", messages=MSGS)
        assert provider.calls() == []
        with pytest.warns(costwise.CostwiseWarning, match="mystery-snapshot"):
            answer = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        assert answer.choices[0].message.content == "hi"
        (entry,) = client.ledger.entries()
    assert entry.model == "mystery-snapshot" and entry.cost_nanos is None


def test_a_raw_streamed_chat_completion_is_estimated_with_one_warning() -> None:
    """A raw stream is read by the caller's own code: its entry estimates the prompt only,
    and the process is told so, once."""
    from costwise import _exceptions, _meter

    _exceptions._warned_once.discard(_meter._RAW_STREAM)  # the warning is once per process
    http = httpx2.Client(transport=httpx2.MockTransport(FakeProvider()))
    with CostwiseClient(http_client=http, **_options([])) as client:
        raw = client.chat.completions.with_raw_response.create
        with pytest.warns(costwise.CostwiseWarning, match="prompt only"):
            raw(model="gpt-4o-mini", messages=MSGS, stream=True).parse().close()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            raw(model="gpt-4o-mini", messages=MSGS, stream=True).parse().close()
        entries = list(client.ledger.entries())
    assert len(entries) == 2 and all(e.estimated and e.completion_tokens == 0 for e in entries)
