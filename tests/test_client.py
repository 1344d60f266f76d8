"""Drop-in behaviour: the same scenarios through the bare SDK and through CostwiseClient."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any

import anyio
import httpx2
import openai
import pydantic
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam, ChatCompletionToolParam

import costwise
from costwise import ConfigurationError, CostwiseClient, CostwiseStream
from costwise.ledger import Ledger, MemoryStore
from costwise.strategies import ModelOverride
from costwise.testing import Error, FakeProvider, Reply, bare_client, fake_client

MSGS: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]

Scenario = Callable[[openai.OpenAI], Any]


def _plain(c: openai.OpenAI) -> Any:
    return c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)


def _n_two(c: openai.OpenAI) -> Any:
    return c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, n=2, temperature=0.7)


def _json(c: openai.OpenAI) -> Any:
    return c.chat.completions.create(
        model="gpt-4o", messages=MSGS, response_format={"type": "json_object"}
    )


def _tools(c: openai.OpenAI) -> Any:
    tool: ChatCompletionToolParam = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object"}},
    }
    return c.chat.completions.create(
        model="gpt-4o",
        messages=MSGS,
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
    )


def _unknown_params(c: openai.OpenAI) -> Any:
    return c.chat.completions.create(
        model="gpt-4o-mini",
        messages=MSGS,
        user="u1",
        metadata={"k": "v"},
        store=False,
        extra_body={"vendor_flag": True},
        extra_headers={"X-Trace": "1"},
        extra_query={"q": "1"},
    )


def _truncated(c: openai.OpenAI) -> Any:
    return c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=3)


def _stream(c: openai.OpenAI) -> Any:
    return list(c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))


def _stream_usage(c: openai.OpenAI) -> Any:
    return list(
        c.chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
    )


def _stream_helper(c: openai.OpenAI) -> Any:
    with c.chat.completions.stream(model="gpt-4o-mini", messages=MSGS) as s:
        events = [e.type for e in s]
        return events, s.get_final_completion()


def _raw(c: openai.OpenAI) -> Any:
    raw = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSGS)
    return raw.http_response.status_code, raw.headers.get("content-type"), raw.parse()


def _streaming_response(c: openai.OpenAI) -> Any:
    with c.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MSGS) as r:
        return r.status_code, r.parse()


class Answer(pydantic.BaseModel):
    city: str


def _parse(c: openai.OpenAI) -> Any:
    return c.chat.completions.parse(model="gpt-4o", messages=MSGS, response_format=Answer)


def _raw_parse(c: openai.OpenAI) -> Any:
    return c.chat.completions.with_raw_response.parse(
        model="gpt-4o", messages=MSGS, response_format=Answer
    ).parse()


def _with_options(c: openai.OpenAI) -> Any:
    return c.with_options(timeout=5, max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=MSGS
    )


SCENARIOS: dict[str, Scenario] = {
    "plain": _plain,
    "n=2": _n_two,
    "json": _json,
    "tools": _tools,
    "unknown-params": _unknown_params,
    "truncated": _truncated,
    "stream": _stream,
    "stream-usage": _stream_usage,
    "stream-helper": _stream_helper,
    "raw": _raw,
    "streaming-response": _streaming_response,
    "parse": _parse,
    "raw-parse": _raw_parse,
    "with-options": _with_options,
}


def _reply(request: dict[str, Any]) -> Any:
    if request.get("response_format", {}).get("type") in ("json_schema", "json_object"):
        return '{"city": "Paris"}'
    return "The capital of France is Paris, a city on the Seine."


def _normalise(value: Any) -> Any:
    """Make results comparable across two providers: drop per-response clocks."""
    if isinstance(value, pydantic.BaseModel):
        data = value.model_dump(warnings=False)
        data.pop("created", None)
        return type(value).__name__, data
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_result_as_bare_sdk(name: str) -> None:
    """Each scenario returns the same types and values through costwise as through the SDK."""
    scenario = SCENARIOS[name]
    bare_provider, cw_provider = FakeProvider(reply=_reply), FakeProvider(reply=_reply)
    store = MemoryStore()
    expected = scenario(bare_client(bare_provider))
    got = scenario(fake_client(cw_provider, ledger=store))
    assert _normalise(got) == _normalise(expected)
    assert [r.json for r in cw_provider.requests] == [r.json for r in bare_provider.requests]
    sent = [
        {k: v for k, v in r.headers.items() if k.lower().startswith("x-trace")}
        for r in cw_provider.requests
    ]
    assert sent == [
        {k: v for k, v in r.headers.items() if k.lower().startswith("x-trace")}
        for r in bare_provider.requests
    ]
    assert len(store) == 1, "exactly one ledger entry per call"


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
    ],
)
def test_errors_pass_through_unchanged(status: int, exc_type: type[Exception]) -> None:
    """SDK errors are raised as the SDK raises them, never wrapped, and still recorded."""
    bare_provider, cw_provider = FakeProvider(), FakeProvider()
    bare_provider.script(Error(status=status, message="nope"))
    cw_provider.script(Error(status=status, message="nope"))
    store = MemoryStore()
    with pytest.raises(exc_type) as bare_err:
        _plain(bare_client(bare_provider))
    with pytest.raises(exc_type) as cw_err:
        _plain(fake_client(cw_provider, ledger=store))
    assert type(cw_err.value) is type(bare_err.value)
    assert cw_err.value.body == bare_err.value.body  # type: ignore[attr-defined]
    (entry,) = store.entries()
    assert entry.status == exc_type.__name__
    assert entry.cost_nanos == 0
    assert entry.final


def test_isinstance_and_types() -> None:
    """Clients are SDK subclasses; streams are SDK Stream instances."""
    client = fake_client(FakeProvider(), ledger=MemoryStore())
    assert isinstance(client, openai.OpenAI)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
    assert isinstance(stream, openai.Stream)
    assert isinstance(stream, CostwiseStream)
    stream.close()
    assert isinstance(stream.response, httpx2.Response)


class TestCopies:
    def test_with_options_keeps_strategies_and_ledger(self) -> None:
        """with_options() and copy() keep the pipeline and share one ledger."""
        provider = FakeProvider()
        client = fake_client(
            provider, ledger=MemoryStore(), strategies=[ModelOverride("gpt-4o-mini")]
        )
        for other in (client.with_options(timeout=3), client.copy(max_retries=0)):
            assert other.ledger is client.ledger
            assert other.strategies == client.strategies
            other.chat.completions.create(model="gpt-4o", messages=MSGS)
        assert [r.json["model"] for r in provider.requests] == ["gpt-4o-mini", "gpt-4o-mini"]
        assert client.ledger.report().row("untagged").calls == 2

    def test_with_feature(self) -> None:
        """with_feature() tags calls of the copy, an explicit feature= still wins."""
        client = fake_client(FakeProvider(), ledger=MemoryStore())
        tagged = client.with_feature("batch-jobs")
        tagged.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        tagged.chat.completions.create(model="gpt-4o-mini", messages=MSGS, feature="other")
        keys = {r.key: r.calls for r in client.ledger.report()}
        assert keys == {"batch-jobs": 1, "other": 1}


class TestFeatureTags:
    def test_feature_argument_and_context(self) -> None:
        """feature= on create/parse/stream, the context manager, and untagged."""
        client = fake_client(FakeProvider(reply=_reply), ledger=MemoryStore())
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, feature="bot")
        client.chat.completions.parse(
            model="gpt-4o", messages=MSGS, response_format=Answer, feature="extract"
        )
        with client.chat.completions.stream(
            model="gpt-4o-mini", messages=MSGS, feature="live"
        ) as s:
            s.get_final_completion()
        with costwise.feature("ctx"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
            with client.chat.completions.stream(model="gpt-4o-mini", messages=MSGS) as s:
                s.get_final_completion()
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, feature="explicit")
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        calls = {r.key: r.calls for r in client.ledger.report()}
        assert calls == {"bot": 1, "extract": 1, "live": 1, "ctx": 2, "explicit": 1, "untagged": 1}

    def test_context_in_threads_is_isolated(self) -> None:
        """A feature block in one thread does not tag another thread's calls."""
        client = fake_client(FakeProvider(), ledger=MemoryStore())
        barrier = threading.Barrier(2)

        def tagged() -> None:
            with costwise.feature("thread-a"):
                barrier.wait()
                client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
                barrier.wait()

        def untagged() -> None:
            barrier.wait()
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
            barrier.wait()

        threads = [threading.Thread(target=tagged), threading.Thread(target=untagged)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {r.key: r.calls for r in client.ledger.report()} == {"thread-a": 1, "untagged": 1}

    @pytest.mark.parametrize(
        ("bad", "exc"),
        [(123, TypeError), (None, None), ("", ValueError), ("   ", ValueError), (["x"], TypeError)],
        ids=["int", "none-is-untagged", "empty", "blank", "list"],
    )
    def test_bad_tags_fail_before_sending(self, bad: Any, exc: type[Exception] | None) -> None:
        """A bad tag raises TypeError/ValueError naming it, and nothing is sent."""
        provider = FakeProvider()
        client = fake_client(provider, ledger=MemoryStore())
        if exc is None:
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, feature=bad)
            assert len(provider.requests) == 1
            return
        with pytest.raises(exc, match="feature"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, feature=bad)
        with pytest.raises(exc, match="feature"):
            client.chat.completions.stream(model="gpt-4o-mini", messages=MSGS, feature=bad)
        with pytest.raises(exc, match="feature"), costwise.feature(bad):
            pass
        assert provider.requests == []
        assert list(client.ledger.entries()) == []


class TestLedgerEntries:
    def test_cost_from_usage_with_cached_tokens(self) -> None:
        """Cost uses the response's model and usage, cached tokens at the cached rate."""
        provider = FakeProvider()
        provider.script(
            Reply(content="hi", model="gpt-4o-2024-08-06", usage=(2000, 100), cached_tokens=1024)
        )
        client = fake_client(provider, ledger=MemoryStore())
        client.chat.completions.create(model="gpt-4o", messages=MSGS, feature="f")
        (entry,) = client.ledger.entries()
        price = client.prices.lookup("gpt-4o")
        assert price is not None
        expected = (
            (2000 - 1024) * price.input + 1024 * price.effective_cached_input + 100 * price.output
        ) / 1_000_000
        assert entry.cost == expected
        assert entry.model == "gpt-4o-2024-08-06"
        assert entry.cached_tokens == 1024
        assert entry.baseline == entry.cost
        assert not entry.estimated

    @pytest.mark.parametrize(
        "reply",
        [
            Reply(content="hi", model="gpt-4o-2024-08-06", usage=(2000, 100), cached_tokens=1024),
            Reply(content="hi", model="gpt-4o-mini", usage=(7, 3)),
            Reply(content="hi", model="no-such-model", usage=(7, 3)),
        ],
    )
    def test_journaled_and_direct_ledgers_record_the_same_entry(
        self, reply: Reply, tmp_path: Any
    ) -> None:
        """The write-behind path (rows, journal, flusher) stores what write-through stores."""
        got = []
        for ledger in (MemoryStore(), tmp_path / "l.sqlite"):
            provider = FakeProvider()
            provider.script(reply)
            with fake_client(provider, ledger=ledger) as client:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", costwise.CostwiseWarning)
                    client.chat.completions.create(model="gpt-4o", messages=MSGS, feature="f")
                (entry,) = client.ledger.entries()
            got.append(entry.to_dict())
            assert entry.id != entry.call_id
            assert entry.final and entry.kind == "upstream" and entry.status == "ok"
            assert entry.detail == {}
        volatile = ("id", "call_id", "ts", "latency_ms")
        direct, journaled = ({k: v for k, v in e.items() if k not in volatile} for e in got)
        assert direct == journaled

    def test_annotate_rejects_unknown_fields(self) -> None:
        """A strategy's annotate() with a field the ledger does not have is an error."""
        from costwise._call import CallTrace
        from costwise.ledger._entry import FIELDS, ROW_INDEX

        trace = CallTrace(feature="f", baseline_model="m")
        response = object()
        trace.add([None] * len(FIELDS), response)
        trace.annotate(response, reason="refusal")
        assert trace.entries[0][ROW_INDEX["reason"]] == "refusal"
        with pytest.raises(TypeError, match="unknown ledger field"):
            trace.annotate(response, no_such_field=1)

    def test_stream_without_usage_is_estimated(self) -> None:
        """A stream without include_usage is recorded as an estimate, and usage is not forced on."""
        provider = FakeProvider()
        client = fake_client(provider, ledger=MemoryStore())
        chunks = list(
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
        )
        assert all(c.choices for c in chunks), "no usage chunk was added behind the caller's back"
        assert "stream_options" not in provider.requests[0].json
        (entry,) = client.ledger.entries()
        assert entry.estimated
        assert entry.prompt_tokens > 0 and entry.completion_tokens > 0

    def test_stream_with_usage_is_exact(self) -> None:
        """With include_usage, the final usage chunk prices the stream exactly."""
        provider = FakeProvider()
        client = fake_client(provider, ledger=MemoryStore())
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MSGS,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        usage = chunks[-1].usage
        assert usage is not None
        (entry,) = client.ledger.entries()
        assert not entry.estimated
        assert (entry.prompt_tokens, entry.completion_tokens) == (
            usage.prompt_tokens,
            usage.completion_tokens,
        )

    def test_stream_closed_early_is_recorded_once(self) -> None:
        """A stream the caller abandons is recorded once, as incomplete."""
        client = fake_client(FakeProvider(), ledger=MemoryStore())
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
        next(iter(stream))
        stream.close()
        stream.close()
        (entry,) = client.ledger.entries()
        assert entry.status == "incomplete"

    def test_abandoned_stream_is_recorded_when_collected(self) -> None:
        """A stream the caller neither reads to the end nor closes is still metered, once."""
        import gc

        client = fake_client(FakeProvider(), ledger=MemoryStore())
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
        next(iter(stream))
        del stream
        gc.collect()
        (entry,) = client.ledger.entries()
        assert entry.status == "incomplete"
        assert entry.final

    def test_a_dropped_stream_is_recorded_without_waiting_for_the_cycle_collector(
        self,
    ) -> None:
        """Dropping the last reference is enough: nothing holds the stream in a cycle."""
        import gc

        client = fake_client(FakeProvider(), ledger=MemoryStore())
        gc.disable()
        try:
            stream = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
            for _ in stream:
                break
            del stream
            (entry,) = client.ledger.entries()  # a read meters what is queued first
        finally:
            gc.enable()
        assert entry.status == "incomplete" and entry.final

    def test_unknown_model_warns_and_records_unknown_cost(self) -> None:
        """An unknown model is never a silent zero: a warning and cost None."""
        client = fake_client(FakeProvider(), ledger=MemoryStore())
        with pytest.warns(costwise.CostwiseWarning, match="my-private-model"):
            client.chat.completions.create(model="my-private-model", messages=MSGS)
        (entry,) = client.ledger.entries()
        assert entry.cost_nanos is None
        assert "*" in str(client.ledger.report())

    def test_report_table_and_dicts(self) -> None:
        """report() prints a table and gives dicts with the documented keys."""
        client = fake_client(FakeProvider(), ledger=MemoryStore())
        for feature_name in ("a", "b", "b"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, feature=feature_name)
        report = client.ledger.report()
        text = str(report)
        assert "feature" in text and "saved" in text and "b" in text
        rows = report.to_dicts()
        assert [r["feature"] for r in rows] == ["a", "b"]
        assert rows[1]["calls"] == 2
        assert set(rows[0]) >= {
            "feature",
            "calls",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            "baseline_usd",
            "saved_usd",
        }
        assert client.ledger.report(by="model").to_dicts()[0]["model"].startswith("gpt-4o-mini")


class TestConfiguration:
    @pytest.mark.parametrize(
        "bad",
        [object(), "not-a-list", [42], [ModelOverride]],
        ids=["object", "str", "int", "class"],
    )
    def test_bad_strategies(self, bad: Any) -> None:
        """A strategy that breaks the protocol is rejected at construction, naming it."""
        with pytest.raises(ConfigurationError):
            CostwiseClient(api_key="k", strategies=bad, ledger=MemoryStore())

    def test_no_api_key_still_errors_like_sdk(self) -> None:
        """Without an API key the SDK's own error is raised."""
        with pytest.raises(openai.OpenAIError):
            CostwiseClient(ledger=MemoryStore())

    def test_default_ledger_is_sqlite(self, tmp_path: Any) -> None:
        """With no ledger= the SQLite ledger at $COSTWISE_LEDGER is used."""
        client = CostwiseClient(
            api_key="k",
            base_url="http://test/v1",
            http_client=httpx2.Client(transport=httpx2.MockTransport(FakeProvider())),
        )
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        assert type(client.ledger.store).__name__ == "SQLiteStore"
        assert str(client.ledger.store.path).endswith("default-ledger.sqlite")  # type: ignore[attr-defined]
        client.ledger.flush()
        assert len(list(Ledger(client.ledger.store).entries())) == 1


def test_chat_completion_type() -> None:
    """A plain call returns a ChatCompletion (not a costwise type)."""
    client = fake_client(FakeProvider(), ledger=MemoryStore())
    result = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert type(result) is ChatCompletion


def test_feature_keyword_wins_over_the_options_header() -> None:
    """make_call: ``feature=`` beats the private header's feature, even when it is None."""
    import json

    from costwise._compat import OPTIONS_HEADER
    from costwise._feature import UNTAGGED

    client = fake_client(FakeProvider(), ledger=MemoryStore())
    cfg = client._costwise
    header = {OPTIONS_HEADER: json.dumps({"feature": "from-header", "cache": False})}

    def make(**kwargs: Any) -> Any:
        return cfg.make_call(
            {"model": "gpt-4o", "extra_headers": dict(header), **kwargs},
            method="create",
            is_async=False,
            base_url="u",
        )

    assert make().feature == "from-header"
    assert make(feature="kw").feature == "kw"
    assert make(feature=None).feature == UNTAGGED
    call = make(feature="kw", task="classify")
    assert dict(call.options) == {"cache": False, "task": "classify"}
    assert OPTIONS_HEADER not in call.kwargs["extra_headers"]
    assert "feature" not in call.kwargs and "task" not in call.kwargs
    plain = cfg.make_call(
        {"model": "gpt-4o", "feature": "f"}, method="create", is_async=False, base_url="u"
    )
    assert plain.feature == "f" and dict(plain.options) == {} and plain.trace.feature == "f"
    client.close()


@pytest.mark.anyio
async def test_a_dropped_async_stream_is_recorded_without_the_cycle_collector() -> None:
    """The async twin: dropping the last reference meters the stream, once."""
    import gc

    from costwise.testing import fake_async_client

    client = fake_async_client(FakeProvider(), ledger=MemoryStore())
    gc.disable()
    try:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, stream=True
        )
        async for _ in stream:
            break
        del stream
        for _ in range(3):  # the loop closes the abandoned `async for` iterator (asyncio does)
            await anyio.sleep(0)
        (entry,) = client.ledger.entries()
    finally:
        gc.enable()
    assert entry.status == "incomplete" and entry.final


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_strategy_raising_after_the_answer_loses_no_entry(stream: bool) -> None:
    """A strategy that raises once upstream answered: the attempt is still one entry, the
    call's final one (a stream's is written when the dropped stream is metered)."""

    class Inspect:
        name = "inspect"
        streams = True

        def flow(self, call: Any) -> Any:
            yield call
            msg = "strategy failed after upstream answered"
            raise RuntimeError(msg)

    provider = FakeProvider()
    client = fake_client(provider, strategies=[Inspect()], ledger=MemoryStore())
    extra: Any = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    with pytest.raises(RuntimeError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, **extra)
    (entry,) = client.ledger.entries()
    assert len(provider.calls()) == 1 and entry.final and entry.baseline_nanos == 0
