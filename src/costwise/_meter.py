"""The terminal step: make the real SDK request, price it, and write the ledger.

The ledger is not a strategy: recording happens here, below every strategy, so each real
upstream attempt (cascade tiers, side calls, failures) is recorded and nobody can misorder or
forget it. Entries of one logical call are written together, in one store transaction, when
the call finishes (for a stream: when it ends or is closed), so a call returned to the caller
is in the ledger, and a failure in a strategy or the store loses nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from openai import AsyncStream, Stream
from openai.types.chat import ChatCompletion

from ._call import Call, CallTrace
from ._ids import new_id
from ._streaming import AsyncCostwiseStream, CostwiseStream, assemble
from .ledger import Ledger, LedgerEntry
from .pricing import PriceTable, Usage, to_nanos

if TYPE_CHECKING:
    from .tokens import Tokenizer

__all__ = ["Meter"]

logger = logging.getLogger("costwise")

_NO_USAGE = Usage(prompt_tokens=0, completion_tokens=0)


def _json_of_raw(resp: Any) -> dict[str, Any] | None:
    """The JSON body of a raw (``with_raw_response``) response, read without disturbing it."""
    http = resp.http_response
    try:
        if not http.is_stream_consumed and not hasattr(http, "_content"):
            http.read()  # with_streaming_response: body not read yet; it stays readable
        body = http.json()
    except Exception:  # not JSON (an SSE stream): the caller gets it untouched
        return None
    return body if isinstance(body, dict) else None


class Meter:
    """Turns upstream requests into ledger entries. One per client configuration."""

    __slots__ = ("ledger", "prices", "tokenizer")

    def __init__(self, *, ledger: Ledger, prices: PriceTable, tokenizer: Tokenizer) -> None:
        self.ledger = ledger
        self.prices = prices
        self.tokenizer = tokenizer

    # -- building entries ---------------------------------------------------------------

    def _entry(
        self,
        call: Call,
        *,
        model: str,
        usage: Usage | None,
        started: float,
        status: str = "ok",
        estimated: bool = False,
    ) -> dict[str, Any]:
        """The fields of one attempt's ledger entry (the entry is built once, at finish)."""
        if usage is None:  # a failed attempt: providers bill nothing for it
            cost_nanos: int | None = 0
            usage = _NO_USAGE
        else:
            cost = self.prices.cost(model, usage)
            cost_nanos = None if cost is None else to_nanos(cost)
        return {
            "id": new_id(),
            "call_id": call.trace.call_id,
            "ts": call.trace.started,
            "feature": call.feature,
            "requested_model": call.trace.baseline_model,
            "model": model,
            "kind": "overhead" if call.purpose is not None else "upstream",
            "status": status,
            "purpose": call.purpose,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "cost_nanos": cost_nanos,
            "estimated": estimated,
            "latency_ms": (time.perf_counter() - started) * 1000.0,
            "tier": call.tier,
        }

    def _estimate(self, call: Call, completion_text: str) -> Usage:
        return Usage(
            prompt_tokens=self.tokenizer.count_messages(call.messages, call.model),
            completion_tokens=self.tokenizer.count(completion_text, call.model),
        )

    def _record_response(self, call: Call, resp: Any, started: float) -> Any:
        """Queue the entry for a successful response; wrap streams so they meter on end."""
        trace = call.trace
        if call.raw:
            body = _json_of_raw(resp) if not call.stream else None
            reported = None if body is None else Usage.from_openai(body.get("usage"))
            # a raw stream (or a body without usage): only the request side can be estimated
            estimated = reported is None
            usage = self._estimate(call, "") if reported is None else reported
            model = str((body or {}).get("model") or call.model)
            trace.add(
                self._entry(call, model=model, usage=usage, started=started, estimated=estimated),
                resp,
            )
            return resp
        if isinstance(resp, Stream | AsyncStream):
            return self._wrap_stream(call, resp, started)
        reported = Usage.from_openai(getattr(resp, "usage", None))
        estimated = reported is None
        usage = self._estimate(call, _text_of(resp)) if reported is None else reported
        model = str(getattr(resp, "model", None) or call.model)
        trace.add(
            self._entry(call, model=model, usage=usage, started=started, estimated=estimated), resp
        )
        return resp

    def _wrap_stream(self, call: Call, resp: Any, started: float) -> Any:
        if isinstance(resp, AsyncStream):
            wrapped: Any = AsyncCostwiseStream(
                resp.__aiter__(), response=resp.response, close=resp.close
            )
        else:
            wrapped = CostwiseStream(iter(resp), response=resp.response, close=resp.close)

        def done(chunks: list[Any], completed: bool) -> None:
            completion = assemble(chunks)
            reported = None if completion is None else Usage.from_openai(completion.usage)
            estimated = reported is None
            usage = (
                self._estimate(call, "" if completion is None else _text_of(completion))
                if reported is None
                else reported
            )
            model = completion.model if completion is not None else call.model
            status = "ok" if completed else "incomplete"
            entry = self._entry(
                call, model=model, usage=usage, started=started, status=status, estimated=estimated
            )
            call.trace.add(entry, wrapped)

        wrapped.add_done_callback(done)
        return wrapped

    def _record_error(self, call: Call, exc: BaseException, started: float) -> None:
        call.trace.add(
            self._entry(
                call, model=call.model, usage=None, started=started, status=type(exc).__name__
            )
        )

    # -- the terminal steps ---------------------------------------------------------------

    def send(self, call: Call, sdk: Callable[..., Any]) -> Any:
        """Make the upstream request with `sdk` (a bound SDK method) and meter it."""
        started = time.perf_counter()
        try:
            resp = sdk(**call.kwargs)
        except Exception as exc:
            self._record_error(call, exc, started)
            raise
        return self._record_response(call, resp, started)

    async def asend(self, call: Call, sdk: Callable[..., Awaitable[Any]]) -> Any:
        """The async twin of `send`."""
        started = time.perf_counter()
        try:
            resp = await sdk(**call.kwargs)
        except Exception as exc:
            self._record_error(call, exc, started)
            raise
        return self._record_response(call, resp, started)

    # -- finishing a logical call -----------------------------------------------------------

    def finish(self, trace: CallTrace, result: Any) -> None:
        """Mark the final entry, fill in the baseline, and write the call's entries.

        Called exactly once per logical call (later calls are ignored): with the response
        returned to the caller, or ``None`` when the call raised.
        """
        with trace._lock:
            if trace.finished:
                return
            trace.finished = True
            pending = list(trace.entries)
        if trace.hit is not None:
            pending.append(self._hit_fields(trace))
            final: int | None = len(pending) - 1
        elif result is not None:
            final = trace.entry_for(result)
            if final is None:
                ok = [
                    i
                    for i, e in enumerate(pending)
                    if e["kind"] == "upstream" and e["status"] == "ok"
                ]
                final = ok[-1] if ok else None
        else:
            final = None
        failed = final is None
        if failed and pending:
            final = len(pending) - 1  # the call raised: its last attempt closes it, no baseline
        strategy = "+".join(trace.acted) or None
        detail = _jsonable(trace.detail) if trace.detail else None
        entries = []
        for i, fields in enumerate(pending):
            if i == final:
                fields["final"] = True
                fields["baseline_nanos"] = 0 if failed else self._baseline(trace, fields)
                if detail:
                    fields["detail"] = detail
            entries.append(LedgerEntry(strategy=strategy, **fields))
        if entries:
            self.ledger.record(entries)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "ledger: %s",
                    ", ".join(
                        f"{e.kind} {e.model} {e.status} cost={e.cost_nanos}n$" for e in entries
                    ),
                )

    def _hit_fields(self, trace: CallTrace) -> dict[str, Any]:
        completion: ChatCompletion = trace.hit
        usage = Usage.from_openai(completion.usage) or _NO_USAGE
        return {
            "id": new_id(),
            "call_id": trace.call_id,
            "ts": trace.started,
            "feature": trace.feature,
            "requested_model": trace.baseline_model,
            "model": completion.model,
            "kind": "hit",
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "cost_nanos": 0,
            "latency_ms": (time.time() - trace.started) * 1000.0,
        }

    def _baseline(self, trace: CallTrace, fields: dict[str, Any]) -> int | None:
        """What the final answer's tokens cost at the model the caller wrote."""
        if not trace.acted and fields["kind"] == "upstream":
            return cast("int | None", fields["cost_nanos"])  # nothing changed: as written = as sent
        usage = Usage(
            prompt_tokens=fields["prompt_tokens"] + trace.baseline_extra_prompt_tokens,
            completion_tokens=fields["completion_tokens"],
            cached_tokens=fields["cached_tokens"],
            reasoning_tokens=fields["reasoning_tokens"],
        )
        cost = self.prices.cost(trace.baseline_model, usage)
        return None if cost is None else to_nanos(cost)


def _text_of(resp: Any) -> str:
    try:
        return "".join(c.message.content or "" for c in resp.choices)
    except (AttributeError, TypeError):
        return ""


def _jsonable(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | int | float | bool | None) else str(v)
        for k, v in detail.items()
    }
