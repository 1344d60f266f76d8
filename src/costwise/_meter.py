"""The terminal step: make the real SDK request, price it, and write the ledger.

The ledger is not a strategy: recording happens here, below every strategy, so each real
upstream attempt (cascade tiers, side calls, failures) is recorded and nobody can misorder or
forget it. Entries of one logical call are written together, in one store transaction, when
the call finishes (for a stream: when it ends or is closed), so a call returned to the caller
is in the ledger, and a failure in a strategy or the store loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import openai
from openai import AsyncStream, Stream

from ._call import Call, CallTrace
from ._compat import raw_mode
from ._exceptions import CostwiseWarning, UnknownModelError, warn_once
from ._ids import new_id
from ._streaming import AsyncCostwiseStream, CostwiseStream, asks_usage, assemble
from .ledger import Ledger
from .ledger._entry import FIELDS
from .pricing import _MAX_TOKENS, PriceTable, Usage, _sdk_counts

if TYPE_CHECKING:
    from .tokens import Tokenizer

__all__ = ["Meter"]

logger = logging.getLogger("costwise")

_SDK_STREAMS = (Stream, AsyncStream)  # a tuple: `Stream | AsyncStream` builds a union per call
_FINISHED = frozenset({"completed", "failed", "incomplete", "cancelled"})  # background states
_MAX_BACKGROUND = 100_000  # background responses awaiting their first finished sighting
_Counts = tuple[int, int, int, int, int]  # prompt, completion, cached, cache write, reasoning
_NO_USAGE: _Counts = (0, 0, 0, 0, 0)

# A pending entry is a row: a list of LedgerEntry values in FIELDS order, which the journal
# encodes as it is (see Ledger._record_rows). These are the positions the meter writes.
_ROW_FIELDS = (
    "id",
    "call_id",
    "ts",
    "feature",
    "requested_model",
    "model",
    "kind",
    "status",
    "strategy",
    "purpose",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nanos",
    "baseline_nanos",
    "final",
    "estimated",
    "latency_ms",
    "tier",
    "reason",
    "detail",
)
if _ROW_FIELDS != FIELDS:  # pragma: no cover - guards the literal rows below
    msg = f"LedgerEntry fields changed; update costwise._meter rows: {FIELDS}"
    raise ImportError(msg)
_MODEL, _KIND, _STATUS, _STRATEGY = 5, 6, 7, 8
_PROMPT, _COMPLETION, _CACHED, _REASONING = 10, 11, 12, 14
_COST, _BASELINE, _FINAL, _DETAIL = 15, 16, 17, 22


def _counts(usage: Any) -> _Counts | None:
    """The token counts of a response's ``usage`` (``None`` if it has none, or none to
    believe: the entry is then estimated from the texts)."""
    counts = _sdk_counts(usage)  # believable counts, or None (it checks the bound too)
    if counts is not None:
        return counts
    found = Usage.from_openai(usage)
    if found is None:
        return None
    counts = _counts_of(found)
    if max(counts) > _MAX_TOKENS:
        warnings.warn(
            f"the server reported {max(counts):,} tokens for one call; not believed, the "
            f"ledger entry is estimated from the texts instead",
            CostwiseWarning,
            stacklevel=2,
        )
        return None
    return counts


def _raw_stream_seen() -> None:
    """Warn once per process: a raw streamed response is read by the caller's own code, so
    its entry can only estimate the prompt (its answer and usage chunk are never seen)."""
    warn_once(
        _RAW_STREAM,
        "a raw streamed chat completion (with_raw_response or with_streaming_response, "
        "stream=True) is recorded with an estimate of its prompt only: costwise does not see "
        "its answer. Iterate a plain stream=True response for exact usage",
        stacklevel=6,
    )


_RAW_STREAM = "raw streamed chat completion"


def _background_view(kwargs: dict[str, Any], resp: Any) -> Any:
    """What `Meter.later` reads of a background response (its id, status, usage, model):
    the response, or for a raw one (``with_raw_response``) its JSON body."""
    if "extra_headers" not in kwargs or not raw_mode(kwargs["extra_headers"]):
        return resp
    body = _json_of_raw(resp) or {}
    return SimpleNamespace(
        id=body.get("id"),
        status=body.get("status"),
        usage=body.get("usage"),
        model=body.get("model"),
    )


def _billed(exc: BaseException, model: str) -> tuple[_Counts | None, str]:
    """The usage and model of an answer an error carries, or none.

    ``parse`` raises `openai.LengthFinishReasonError` (and the content-filter twin) after
    the provider answered, and billed, a completion; the error holds it. Other errors had
    no answer: providers bill nothing for them.
    """
    completion = getattr(exc, "completion", None)
    counts = _counts(getattr(completion, "usage", None)) if completion is not None else None
    if counts is None:
        return None, model
    return counts, str(getattr(completion, "model", None) or model)


def _counts_of(usage: Usage) -> _Counts:
    return (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    )


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

    __slots__ = ("_background", "_background_lock", "ledger", "prices", "tokenizer")

    def __init__(self, *, ledger: Ledger, prices: PriceTable, tokenizer: Tokenizer) -> None:
        self.ledger = ledger
        self.prices = prices
        self.tokenizer = tokenizer
        # Background Responses calls started here, recorded when seen finished (see `later`)
        self._background: dict[str, tuple[str, float, str, str | None]] = {}
        self._background_lock = threading.Lock()

    # -- building entries ---------------------------------------------------------------

    def _row(
        self,
        call: Call,
        model: str,
        counts: _Counts | None,
        started: float,
        status: str = "ok",
        estimated: bool = False,
    ) -> list[Any]:
        """The row of one attempt's ledger entry (the entry itself is built in the ledger)."""
        trace = call.trace
        return self._new_row(
            trace.call_id,
            trace.started,
            call.feature,
            trace.baseline_model,
            model,
            call.purpose,
            call.tier,
            counts,
            started,
            status,
            estimated,
        )

    def _new_row(
        self,
        call_id: str,
        ts: float,
        feature: str,
        requested: str,
        model: str,
        purpose: str | None,
        tier: int | None,
        counts: _Counts | None,
        started: float,
        status: str,
        estimated: bool,
    ) -> list[Any]:
        if counts is None:  # a failed attempt: providers bill nothing for it
            cost_nanos: int | None = 0
            counts = _NO_USAGE
        else:
            cost_nanos = self._nanos(model, counts[0], counts[1], counts[2], counts[3])
        return [
            new_id(),
            call_id,
            ts,
            feature,
            requested,
            model,
            "upstream" if purpose is None else "overhead",
            status,
            None,  # strategy: set at finish
            purpose,
            *counts,
            cost_nanos,
            0,  # baseline_nanos: set on the final entry at finish
            False,  # final
            estimated,
            (time.perf_counter() - started) * 1000.0,
            tier,
            None,  # reason
            None,  # detail
        ]

    def _nanos(
        self, model: str, prompt: int, completion: int, cached: int, written: int
    ) -> int | None:
        """The cost of counts at `model`; ``None`` when it has no price. Never raises: the
        answer was billed, and an entry with an unknown cost beats none. A table that
        refuses unknown models refused the call before it was sent (`Config`); an answer
        from another model it does not know is recorded, with a warning."""
        try:
            return self.prices._nanos(model, prompt, completion, cached, written)
        except UnknownModelError:
            warnings.warn(
                f"the answer came from {model!r}, which has no price: its cost is recorded "
                f"as unknown",
                CostwiseWarning,
                stacklevel=2,
            )
            return None

    def _estimate(self, messages: Any, model: str, completion_text: str) -> _Counts:
        return (
            self.tokenizer.count_messages(messages, model),
            self.tokenizer.count(completion_text, model),
            0,
            0,
            0,
        )

    def _read(self, resp: Any, messages: Any, model: str) -> tuple[_Counts, bool]:
        """The token counts of a (non-raw, non-stream) response, and whether they are estimated."""
        usage = getattr(resp, "usage", None)
        reported = _sdk_counts(usage)  # the common case, a plain SDK usage
        if reported is None:
            reported = _counts(usage)
        if reported is None:
            return self._estimate(messages, model, _text_of(resp)), True
        return reported, False

    def _record_response(self, call: Call, resp: Any, started: float) -> Any:
        """Queue the entry for a successful response; wrap streams so they meter on end."""
        trace = call.trace
        if call.raw:
            if call.stream:
                _raw_stream_seen()
            body = _json_of_raw(resp) if not call.stream else None
            reported = None if body is None else _counts(body.get("usage"))
            # a raw stream (or a body without usage): only the request side can be estimated
            estimated = reported is None
            counts = self._estimate(call.messages, call.model, "") if reported is None else reported
            model = str((body or {}).get("model") or call.model)
            trace.add(self._row(call, model, counts, started, "ok", estimated), resp)
            return resp
        if isinstance(resp, _SDK_STREAMS):
            return self._wrap_stream(call, resp, started)
        counts, estimated = self._read(resp, call.messages, call.model)
        model = str(getattr(resp, "model", None) or call.model)
        trace.add(self._row(call, model, counts, started, "ok", estimated), resp)
        return resp

    def _wrap_stream(self, call: Call, resp: Any, started: float) -> Any:
        if not asks_usage(call.kwargs):
            # Its entry will need a token count when it ends: load the tokenizer meanwhile,
            # so the count does not stall the consumer (an event loop) for the load.
            prefetch = getattr(self.tokenizer, "prefetch", None)
            if prefetch is not None:
                prefetch(call.model)
        if isinstance(resp, AsyncStream):
            wrapped: Any = AsyncCostwiseStream(
                resp.__aiter__(), response=resp.response, close=resp.close
            )
        else:
            wrapped = CostwiseStream(iter(resp), response=resp.response, close=resp.close)
        key = wrapped.ledger_key  # not `wrapped`: the callback must not keep the stream alive

        def done(chunks: list[Any], completed: bool) -> None:
            completion = assemble(chunks)
            reported = None if completion is None else _counts(completion.usage)
            estimated = reported is None
            counts = (
                self._estimate(
                    call.messages, call.model, "" if completion is None else _text_of(completion)
                )
                if reported is None
                else reported
            )
            model = (completion.model if completion is not None else "") or call.model
            status = "ok" if completed else "incomplete"
            row = self._row(call, model, counts, started, status, estimated)
            if not call.trace.add(row, key):  # the call ended (raised) before the stream did
                self.ledger._record_rows([row])

        wrapped.add_done_callback(done)
        return wrapped

    def _record_error(self, call: Call, exc: BaseException, started: float) -> None:
        counts, model = _billed(exc, call.model)
        call.trace.add(self._row(call, model, counts, started, type(exc).__name__))

    # -- the terminal steps ---------------------------------------------------------------

    def send(self, call: Call, sdk: Callable[..., Any]) -> Any:
        """Make the upstream request with `sdk` (a bound SDK method) and meter it."""
        started = time.perf_counter()
        try:
            resp = sdk(**call.kwargs)
        except openai.OpenAIError as exc:  # nothing was sent for other errors
            self._record_error(call, exc, started)
            raise
        return self._record_response(call, resp, started)

    async def asend(self, call: Call, sdk: Callable[..., Awaitable[Any]]) -> Any:
        """The async twin of `send`."""
        started = time.perf_counter()
        try:
            resp = await sdk(**call.kwargs)
        except openai.OpenAIError as exc:  # nothing was sent for other errors
            self._record_error(call, exc, started)
            raise
        return self._record_response(call, resp, started)

    # -- the direct path: a client with no strategies ------------------------------------

    def direct(
        self,
        feature: str,
        kwargs: dict[str, Any],
        sdk: Callable[..., Any],
        messages: Any = None,
        *,
        api: str | None = None,
    ) -> Any:
        """Send and record a plain ``create`` that no strategy can change, in one step.

        The same entry `send` + `finish` would write (one attempt, final, its baseline its
        own cost), without building a `Call` and its trace: with no strategies configured
        this is all costwise does, and it runs between two requests of the caller, so every
        step it skips is latency the caller does not pay. Streams and raw responses take
        the general path. The endpoints costwise only records (embeddings, the Responses
        API) come here too, with `messages` standing in for their input when usage must be
        estimated, and `api` (``"embeddings"``, ``"responses"``) noted in the entry's detail.
        """
        ts, started = time.time(), time.perf_counter()
        try:
            resp = sdk(**kwargs)
        except openai.OpenAIError as exc:  # nothing was sent for other errors
            self._failed(feature, ts, kwargs, started, exc, api)
            raise
        self._direct_ok(feature, ts, kwargs, resp, started, messages, api)
        return resp

    async def adirect(
        self,
        feature: str,
        kwargs: dict[str, Any],
        sdk: Callable[..., Awaitable[Any]],
        messages: Any = None,
        *,
        api: str | None = None,
    ) -> Any:
        """The async twin of `direct`."""
        ts, started = time.time(), time.perf_counter()
        try:
            resp = await sdk(**kwargs)
        except openai.OpenAIError as exc:  # nothing was sent for other errors
            self._failed(feature, ts, kwargs, started, exc, api)
            raise
        self._direct_ok(feature, ts, kwargs, resp, started, messages, api)
        return resp

    def direct_stream(
        self,
        feature: str,
        kwargs: dict[str, Any],
        sdk: Callable[..., Any],
        final_of: Callable[[list[Any]], Any],
        messages: Any,
        *,
        api: str | None = None,
    ) -> Any:
        """Send a streamed call of an endpoint costwise only records; record it when it ends.

        `final_of(events)` finds the finished response among the events (its ``usage`` and
        ``model``); without one (closed early, or no usage) the entry is an estimate from
        `messages`, marked ``incomplete`` when the stream did not run to its end. A request
        that fails before streaming is recorded with its error, as in `direct`.
        """
        stream, started = self._start(feature, kwargs, sdk, api)
        return self._watch(feature, kwargs, stream, started, final_of, messages, api)

    async def adirect_stream(
        self,
        feature: str,
        kwargs: dict[str, Any],
        sdk: Callable[..., Awaitable[Any]],
        final_of: Callable[[list[Any]], Any],
        messages: Any,
        *,
        api: str | None = None,
    ) -> Any:
        """The async twin of `direct_stream`."""
        stream, started = await self._astart(feature, kwargs, sdk, api)
        return self._watch(feature, kwargs, stream, started, final_of, messages, api)

    def _watch(
        self,
        feature: str,
        kwargs: dict[str, Any],
        stream: Any,
        started: tuple[float, float],
        final_of: Callable[[list[Any]], Any],
        messages: Any,
        api: str | None,
    ) -> Any:
        ts, t0 = started
        requested = kwargs.get("model") or ""
        if isinstance(stream, AsyncStream):
            wrapped: Any = AsyncCostwiseStream(
                stream.__aiter__(), response=stream.response, close=stream.close
            )
        else:
            wrapped = CostwiseStream(iter(stream), response=stream.response, close=stream.close)

        def done(events: list[Any], completed: bool) -> None:
            final = final_of(events)
            reported = None if final is None else _counts(getattr(final, "usage", None))
            if reported is None:
                counts = self._estimate(
                    messages, requested, "" if final is None else _text_of(final)
                )
            else:
                counts = reported
            model = str(getattr(final, "model", None) or requested)
            status = "ok" if completed else "incomplete"
            if getattr(final, "status", None) in ("failed", "incomplete"):  # said so itself
                status = str(final.status)
            estimated = reported is None
            self._direct_row(feature, ts, requested, model, counts, t0, status, estimated, api)

        wrapped.add_done_callback(done)
        return wrapped

    # -- calls that finish later: background Responses ------------------------------------

    def direct_background(
        self, feature: str, kwargs: dict[str, Any], sdk: Callable[..., Any]
    ) -> Any:
        """Start a background call (a failure to start it is recorded as in `direct`) and
        remember it: `finished` records it when this client sees it done."""
        resp, (ts, _) = self._start(feature, kwargs, sdk, "responses")
        self.later(
            feature, ts, kwargs.get("model") or "", _background_view(kwargs, resp), "responses"
        )
        return resp

    async def adirect_background(
        self, feature: str, kwargs: dict[str, Any], sdk: Callable[..., Awaitable[Any]]
    ) -> Any:
        """The async twin of `direct_background`."""
        resp, (ts, _) = await self._astart(feature, kwargs, sdk, "responses")
        self.later(
            feature, ts, kwargs.get("model") or "", _background_view(kwargs, resp), "responses"
        )
        return resp

    # -- sending, for the paths that record later -------------------------------------------

    def _start(
        self, feature: str, kwargs: dict[str, Any], sdk: Callable[..., Any], api: str | None
    ) -> tuple[Any, tuple[float, float]]:
        """Send; a failure is recorded (and raised). Returns the response and its start."""
        ts, t0 = time.time(), time.perf_counter()
        try:
            return sdk(**kwargs), (ts, t0)
        except openai.OpenAIError as exc:  # nothing was sent for other errors
            self._failed(feature, ts, kwargs, t0, exc, api)
            raise

    async def _astart(
        self,
        feature: str,
        kwargs: dict[str, Any],
        sdk: Callable[..., Awaitable[Any]],
        api: str | None,
    ) -> tuple[Any, tuple[float, float]]:
        """The async twin of `_start`."""
        ts, t0 = time.time(), time.perf_counter()
        try:
            return await sdk(**kwargs), (ts, t0)
        except openai.OpenAIError as exc:  # nothing was sent for other errors
            self._failed(feature, ts, kwargs, t0, exc, api)
            raise

    def _failed(
        self,
        feature: str,
        ts: float,
        kwargs: dict[str, Any],
        started: float,
        exc: BaseException,
        api: str | None,
    ) -> None:
        """The entry of a call that failed: its error class, and no usage unless the error
        carries the billed answer (``parse`` refusing a truncated one)."""
        model = kwargs.get("model") or ""
        counts, answered_by = _billed(exc, model)
        self._direct_row(
            feature, ts, model, answered_by, counts, started, type(exc).__name__, False, api
        )

    def later(self, feature: str, ts: float, requested: str, resp: Any, api: str) -> None:
        """Remember a call the provider runs in the background; `finished` records it.

        A response already finished is recorded now.
        """
        with self._background_lock:
            self._background[str(resp.id)] = (feature, ts, requested, api)
            if len(self._background) > _MAX_BACKGROUND:  # never retrieved: keep memory bounded
                oldest = next(iter(self._background))
                del self._background[oldest]
                logger.warning("costwise: background response %s will not be recorded", oldest)
        self.finished(resp)

    def finished(self, resp: Any) -> None:
        """Record a background response this process started, once, when it has finished
        (``completed``, ``failed``, ``incomplete`` or ``cancelled``); others are ignored."""
        status = getattr(resp, "status", None)
        if status not in _FINISHED:
            return
        with self._background_lock:
            started = self._background.pop(str(getattr(resp, "id", "")), None)
        if started is None:  # not ours, or recorded already
            return
        feature, ts, requested, api = started
        reported = _counts(getattr(resp, "usage", None))
        counts = reported if reported is not None else self._estimate((), requested, "")
        model = str(getattr(resp, "model", None) or requested)
        since = time.perf_counter() - (time.time() - ts)  # latency: from the create call
        result = "ok" if status == "completed" else str(status)
        self._direct_row(
            feature, ts, requested, model, counts, since, result, reported is None, api
        )

    def _direct_ok(
        self,
        feature: str,
        ts: float,
        kwargs: dict[str, Any],
        resp: Any,
        started: float,
        messages: Any = None,
        api: str | None = None,
    ) -> None:
        model = kwargs.get("model") or ""
        if messages is None:
            messages = kwargs.get("messages", ())
        if "extra_headers" in kwargs and raw_mode(kwargs["extra_headers"]):  # a raw response
            body = _json_of_raw(resp)
            reported = None if body is None else _counts(body.get("usage"))
            estimated = reported is None
            counts = self._estimate(messages, model, "") if reported is None else reported
            answered_by = str((body or {}).get("model") or model)
        else:
            counts, estimated = self._read(resp, messages, model)
            answered_by = str(getattr(resp, "model", None) or model)
        self._direct_row(feature, ts, model, answered_by, counts, started, "ok", estimated, api)

    def _direct_row(
        self,
        feature: str,
        ts: float,
        requested: str,
        model: str,
        counts: _Counts | None,
        started: float,
        status: str,
        estimated: bool,
        api: str | None = None,
    ) -> None:
        row = self._new_row(
            new_id(), ts, feature, requested, model, None, None, counts, started, status, estimated
        )
        row[_FINAL] = True
        if api is not None:  # which SDK endpoint, for the recorded-only ones (chat: none)
            row[_DETAIL] = {"api": api}
        if counts is not None:  # a failure keeps a zero baseline, as `finish` gives it
            row[_BASELINE] = row[_COST]  # nothing changed the call: as written = as sent
        self.ledger._record_rows([row])
        if logger.isEnabledFor(logging.DEBUG):
            _log([row])

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
            trace.has_final = bool(pending) or trace.hit is not None  # one is marked below
        if trace.hit is not None:
            pending.append(self._hit_row(trace))
            final: int | None = len(pending) - 1
        elif result is not None:
            final = trace.entry_for(result)
            if final is None:
                ok = [
                    i
                    for i, row in enumerate(pending)
                    if row[_KIND] == "upstream" and row[_STATUS] == "ok"
                ]
                final = ok[-1] if ok else None
        else:
            final = None
        if not pending:
            return
        failed = final is None
        if final is None:
            final = len(pending) - 1  # the call raised: its last attempt closes it, no baseline
        strategy = "+".join(trace.acted) or None
        if strategy is not None:
            for row in pending:
                row[_STRATEGY] = strategy
        row = pending[final]
        row[_FINAL] = True
        if failed:
            row[_BASELINE] = 0
        elif not trace.acted and row[_KIND] == "upstream":
            row[_BASELINE] = row[_COST]  # nothing changed the call: as written = as sent
        else:
            row[_BASELINE] = self._baseline(trace, row)
        if trace.detail:
            row[_DETAIL] = _jsonable(trace.detail)
        self.ledger._record_rows(pending)
        if logger.isEnabledFor(logging.DEBUG):
            _log(pending)

    def _hit_row(self, trace: CallTrace) -> list[Any]:
        return _hit_row(
            trace.call_id, trace.started, trace.feature, trace.baseline_model, trace.hit
        )

    def hit(self, feature: str, ts: float, requested: str, completion: Any, strategy: str) -> None:
        """Record an answer the first strategy's express lane gave (no `Call` was built).

        The same entry `finish` writes for a hit in the pipeline: zero cost, its baseline
        what the answer's tokens cost at the model the caller wrote.
        """
        row = _hit_row(new_id(), ts, feature, requested, completion)
        row[_STRATEGY] = strategy
        row[_FINAL] = True
        row[_BASELINE] = self._nanos(requested, row[_PROMPT], row[_COMPLETION], row[_CACHED], 0)
        self.ledger._record_rows([row])
        if logger.isEnabledFor(logging.DEBUG):
            _log([row])

    def _baseline(self, trace: CallTrace, row: list[Any]) -> int | None:
        """What the final answer's tokens cost at the model the caller wrote."""
        return self._nanos(
            trace.baseline_model,
            row[_PROMPT] + trace.baseline_extra_prompt_tokens,
            row[_COMPLETION],
            row[_CACHED],
            0,
        )


def _hit_row(call_id: str, ts: float, feature: str, requested: str, completion: Any) -> list[Any]:
    """The row of a zero-cost ``hit``: `completion` served without calling upstream."""
    counts = _counts(completion.usage) or _NO_USAGE
    return [
        new_id(),
        call_id,
        ts,
        feature,
        requested,
        completion.model,
        "hit",
        "ok",
        None,
        None,
        counts[0],
        counts[1],
        counts[2],
        0,  # cache writes are not read back from a stored answer
        counts[4],
        0,
        0,
        False,
        False,
        (time.time() - ts) * 1000.0,
        None,
        None,
        None,
    ]


def _log(rows: list[list[Any]]) -> None:
    logger.debug(
        "ledger: %s",
        ", ".join(f"{r[_KIND]} {r[_MODEL]} {r[_STATUS]} cost={r[_COST]}n$" for r in rows),
    )


def _text_of(resp: Any) -> str:
    """The text an answer's output tokens were spent on, for an estimate: the content, and
    the names and arguments of its tool calls (billed as output like any text)."""
    try:
        parts = []
        for choice in resp.choices:
            message = choice.message
            parts.append(message.content or "")
            for tool_call in message.tool_calls or ():
                function = getattr(tool_call, "function", None)
                if function is not None:
                    parts += (function.name or "", function.arguments or "")
        return "".join(parts)
    except (AttributeError, TypeError):  # a Responses API response has its own text
        text = getattr(resp, "output_text", None)
        return text if isinstance(text, str) else ""


def _jsonable(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | int | float | bool | None) else str(v)
        for k, v in detail.items()
    }
