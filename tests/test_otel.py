"""OpenTelemetry spans from ledger entries, following the GenAI semantic conventions."""

from __future__ import annotations

import subprocess
import sys

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from costwise import Call
from costwise._otel import instrument
from costwise.ledger import LedgerEntry, MemoryStore
from costwise.strategies import ModelOverride
from costwise.testing import Error, FakeProvider, Reply, chat_completion, fake_client
from costwise.typing import Flow

pytest.importorskip("opentelemetry.sdk", reason="needs opentelemetry-sdk (costwise[otel] + sdk)")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

MSGS: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


class AlwaysHit:
    """Answers every call itself, like a cache hit."""

    name = "cache"

    def flow(self, call: Call) -> Flow:
        completion = ChatCompletion.model_validate(chat_completion("cached", model=call.model))
        call.trace.answered(self.name, completion)
        return completion
        yield call  # unreachable: makes this a generator


def tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def by_name(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def test_upstream_attempt_has_genai_attributes() -> None:
    """An upstream call becomes a CLIENT span with model, tokens, cost and feature."""
    provider, exporter = tracing()
    fake = FakeProvider(reply=lambda _: Reply("ok", usage=(1000, 100), model="gpt-4o-mini"))
    with fake_client(
        fake, on_record=[instrument(provider)], strategies=[ModelOverride("gpt-4o-mini")]
    ) as client:
        client.chat.completions.create(model="gpt-4o", messages=MSGS, feature="faq")
    spans = exporter.get_finished_spans()
    (chat,) = by_name(spans, "chat ")
    (call,) = by_name(spans, "costwise faq")
    attrs = dict(chat.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.usage.input_tokens"] == 1000
    assert attrs["gen_ai.usage.output_tokens"] == 100
    assert attrs["costwise.cost_usd"] == pytest.approx(0.00021)
    assert attrs["costwise.feature"] == "faq"
    assert attrs["costwise.cache_hit"] is False
    assert chat.parent is not None and chat.parent.span_id == call.context.span_id
    assert [e.attributes["costwise.strategy"] for e in call.events if e.attributes] == ["override"]
    baseline = dict(call.attributes or {})["costwise.baseline_usd"]
    assert isinstance(baseline, float)
    assert baseline > 0.00021


def test_span_times_come_from_the_entries() -> None:
    """Spans carry explicit start/end times taken from the entry's ts and latency."""
    provider, exporter = tracing()
    hook = instrument(provider)
    hook(
        [
            LedgerEntry(
                id="a" * 32,
                call_id="c",
                ts=1_790_000_000.5,
                feature="f",
                requested_model="gpt-4o",
                model="gpt-4o",
                latency_ms=250.0,
                prompt_tokens=3,
                completion_tokens=4,
                final=True,
                tier=1,
            )
        ]
    )
    (chat,) = by_name(exporter.get_finished_spans(), "chat ")
    assert chat.start_time == 1_790_000_000_500_000_000
    assert chat.end_time == 1_790_000_000_750_000_000
    assert dict(chat.attributes or {})["costwise.tier"] == 1


def test_cache_hit_and_error_spans() -> None:
    """A cache hit is its own span with cache_hit=True; a failed attempt has error.type."""
    provider, exporter = tracing()
    with fake_client(on_record=[instrument(provider)], strategies=[AlwaysHit()]) as client:
        client.chat.completions.create(model="gpt-4o", messages=MSGS)
    (hit,) = by_name(exporter.get_finished_spans(), "costwise.cache_hit")
    assert dict(hit.attributes or {})["costwise.cache_hit"] is True
    exporter.clear()
    fake = FakeProvider().script(Error(429))
    with fake_client(fake, on_record=[instrument(provider)]) as client:
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o", messages=MSGS)
    (chat,) = by_name(exporter.get_finished_spans(), "chat ")
    assert dict(chat.attributes or {})["error.type"] == "RateLimitError"
    assert not chat.status.is_ok


def test_a_broken_tracer_never_breaks_the_call(caplog: pytest.LogCaptureFixture) -> None:
    """An exception while emitting spans is logged, and the call still succeeds."""

    class BrokenTracer:
        def start_span(self, *args: object, **kwargs: object) -> object:
            raise RuntimeError("exporter down")

    class BrokenProvider:
        def get_tracer(self, *args: object, **kwargs: object) -> BrokenTracer:
            return BrokenTracer()

    store = MemoryStore()
    with fake_client(ledger=store, on_record=[instrument(BrokenProvider())]) as client:
        client.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert len(store) == 1
    assert "could not emit OpenTelemetry spans" in caplog.text


def test_not_imported_unless_enabled() -> None:
    """Importing costwise (and making calls) never imports opentelemetry."""
    code = "import sys, costwise, costwise.ledger; print('opentelemetry' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_embeddings_calls_are_embeddings_spans() -> None:
    """A client's own embeddings call is an ``embeddings <model>`` span, not ``chat``."""
    provider, exporter = tracing()
    with fake_client(FakeProvider(), on_record=[instrument(provider)]) as client:
        client.embeddings.create(model="text-embedding-3-small", input="card pin", feature="rag")
        (entry,) = client.ledger.entries()
    assert entry.detail == {"api": "embeddings"}
    (span,) = by_name(exporter.get_finished_spans(), "embeddings ")
    assert span.name == "embeddings text-embedding-3-small"
    assert span.attributes is not None
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert span.attributes["costwise.feature"] == "rag"
