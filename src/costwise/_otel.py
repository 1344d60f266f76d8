"""Optional OpenTelemetry spans built from ledger entries (GenAI semantic conventions).

Nothing here imports OpenTelemetry until `instrument` is called, and the hook it returns runs
after the ledger write, outside the request path, so tracing never slows or fails a call
(a tracing error is logged, not raised).

One logical call becomes one ``costwise <feature>`` span (INTERNAL) holding:

- one ``chat <model>`` (or ``embeddings <model>``) span (CLIENT) per upstream attempt or
  side call, with the GenAI
  attributes ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
  ``gen_ai.response.model``, ``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``
  and ``error.type`` on failures;
- one ``costwise.cache_hit <strategy>`` span (INTERNAL) when a cache answered;
- one ``costwise.decision`` event per strategy that acted (``costwise.strategy``).

Every span also has ``costwise.cost_usd``, ``costwise.feature``, ``costwise.cache_hit``,
``costwise.kind`` and, when set, ``costwise.tier``, ``costwise.purpose`` and
``costwise.reason``. Times are explicit: the call span starts at the entry's ``ts``; attempts
are laid out one after another from there, each lasting its ``latency_ms`` (entries record
how long each attempt took, not when it began, and a call's attempts run in sequence).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from .ledger import LedgerEntry

__all__ = ["instrument"]

logger = logging.getLogger("costwise")


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _common(e: LedgerEntry) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "costwise.feature": e.feature,
        "costwise.cost_usd": float(e.cost) if e.cost is not None else 0.0,
        "costwise.cost_known": e.cost_nanos is not None,
        "costwise.cache_hit": e.kind == "hit",
        "costwise.kind": e.kind,
        "costwise.call_id": e.call_id,
        "costwise.requested_model": e.requested_model,
    }
    optional = {
        "costwise.tier": e.tier,
        "costwise.purpose": e.purpose,
        "costwise.reason": e.reason,
        "costwise.strategy": e.strategy,
    }
    attrs.update({k: v for k, v in optional.items() if v is not None})
    if e.final:
        attrs["costwise.baseline_usd"] = float(e.baseline) if e.baseline is not None else 0.0
    if e.estimated:
        attrs["costwise.estimated"] = True
    return attrs


def instrument(
    tracer_provider: Any = None, *, tracer_name: str = "costwise"
) -> Callable[[Sequence[LedgerEntry]], None]:
    """A ledger hook that turns each call's entries into OpenTelemetry spans.

    Use it when your service already exports traces and you want each LLM call's model,
    tokens, cost, feature and cache hit next to the request that made it. Pass the result as
    ``on_record=[...]``; it needs ``opentelemetry-api`` (``pip install 'costwise[otel]'``)
    and an SDK configured by your application.

    Args:
        tracer_provider: the provider to get the tracer from (default: the global one).
        tracer_name: the instrumentation scope name.

    Returns:
        A callable for ``CostwiseClient(on_record=[...])`` or ``Ledger(on_record=[...])``.

    Raises:
        ImportError: opentelemetry-api is not installed.

    Example:
        >>> client = CostwiseClient(on_record=[costwise.otel.instrument()])
    """
    try:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode
    except ImportError as exc:
        msg = "costwise.otel needs opentelemetry-api: pip install 'costwise[otel]'"
        raise ImportError(msg) from exc

    tracer = trace.get_tracer(tracer_name, tracer_provider=tracer_provider)

    def emit(entries: Sequence[LedgerEntry]) -> None:
        calls: dict[str, list[LedgerEntry]] = {}
        for e in entries:
            calls.setdefault(e.call_id, []).append(e)
        for group in calls.values():
            first = group[0]
            start = _ns(first.ts)
            # Integer nanoseconds throughout: float seconds lose precision at 1e18 ns.
            end = start + sum(round(e.latency_ms * 1e6) for e in group)
            final = next((e for e in group if e.final), group[-1])
            parent_attrs = _common(final)
            parent_attrs["costwise.cost_usd"] = sum(float(e.cost or 0) for e in group)
            parent_attrs["costwise.attempts"] = sum(e.kind == "upstream" for e in group)
            parent = tracer.start_span(
                f"costwise {first.feature}",
                kind=SpanKind.INTERNAL,
                attributes=parent_attrs,
                start_time=start,
            )
            ctx = trace.set_span_in_context(parent)
            for name in (final.strategy or "").split("+"):
                if name:
                    parent.add_event(
                        "costwise.decision", {"costwise.strategy": name}, timestamp=start
                    )
            at = start
            for e in group:
                attrs = _common(e)
                duration = round(e.latency_ms * 1e6)
                if e.kind == "hit":
                    span = tracer.start_span(
                        f"costwise.cache_hit {e.strategy or 'cache'}",
                        context=ctx,
                        kind=SpanKind.INTERNAL,
                        attributes=attrs,
                        start_time=at,
                    )
                    span.end(end_time=at + duration)
                    continue
                embeds = e.purpose == "embed" or e.detail.get("api") == "embeddings"
                operation = "embeddings" if embeds else "chat"
                attrs.update(
                    {
                        "gen_ai.operation.name": operation,
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": e.model,
                        "gen_ai.usage.input_tokens": e.prompt_tokens,
                        "gen_ai.usage.output_tokens": e.completion_tokens,
                    }
                )
                if e.status == "ok":
                    attrs["gen_ai.response.model"] = e.model
                else:
                    attrs["error.type"] = e.status
                span = tracer.start_span(
                    f"{operation} {e.model}",
                    context=ctx,
                    kind=SpanKind.CLIENT,
                    attributes=attrs,
                    start_time=at,
                )
                if e.status != "ok":
                    span.set_status(Status(StatusCode.ERROR, e.status))
                span.end(end_time=at + duration)
                at += duration
            if final.status != "ok":
                parent.set_status(Status(StatusCode.ERROR, final.status))
            parent.end(end_time=max(end, at))

    def hook(entries: Sequence[LedgerEntry]) -> None:
        try:
            emit(entries)
        except Exception:  # tracing must never break the caller's LLM call
            logger.exception("costwise: could not emit OpenTelemetry spans")

    return hook
