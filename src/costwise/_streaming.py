"""Stream objects costwise hands back: SDK-compatible, metered, and replayable.

`CostwiseStream` / `AsyncCostwiseStream` subclass the SDK's `Stream` / `AsyncStream`, so code
written for ``stream=True`` (and the SDK's ``.stream()`` helper) works unchanged: iteration,
``.response``, ``close()`` and ``with``. They pass chunks through as they arrive, remember
them, and call their done-callbacks once: when the stream ends (``completed=True``), or when
it fails or is closed early (``completed=False``). The terminal step meters the upstream
attempt from the callback; the response cache stores the assembled completion from it.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import re
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import httpx2
from openai import AsyncStream, Stream
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from typing_extensions import override

from .ledger._ledger import BEFORE_FLUSH

__all__ = [
    "AsyncCostwiseStream",
    "CostwiseStream",
    "asks_usage",
    "assemble",
    "replay_chunks",
    "synthetic_response",
]

DoneCallback = Callable[[list[ChatCompletionChunk], bool], None]

logger = logging.getLogger("costwise")


class _Callbacks:
    """The done-callback bookkeeping both stream classes share."""

    __slots__ = ("callbacks", "chunks", "completed", "done")

    def __init__(self) -> None:
        self.chunks: list[ChatCompletionChunk] = []
        self.callbacks: list[DoneCallback] = []
        self.done = False
        self.completed = False

    def add(self, fn: DoneCallback) -> None:
        if self.done:
            fn(self.chunks, self.completed)
        else:
            self.callbacks.append(fn)

    def finish(self, completed: bool) -> None:
        if self.done:
            return
        self.done, self.completed = True, completed
        for fn in self.callbacks:
            fn(self.chunks, completed)


def _iterate(state: _Callbacks, source: Iterator[ChatCompletionChunk]) -> Iterator[Any]:
    try:
        for chunk in source:
            state.chunks.append(chunk)
            yield chunk
    except BaseException:
        state.finish(False)
        raise
    state.finish(True)


async def _aiterate(state: _Callbacks, source: AsyncIterator[ChatCompletionChunk]) -> Any:
    try:
        async for chunk in source:
            state.chunks.append(chunk)
            yield chunk
    except BaseException:
        state.finish(False)
        raise
    state.finish(True)


# -- streams nobody finished -------------------------------------------------------------------
#
# A stream nobody reads to the end nor closes is still metered once it is dropped. Not in its
# finalizer itself: the garbage collector runs finalizers on whatever thread it interrupts,
# possibly one holding a lock the metering needs (the tokenizer's, the ledger's). The
# finalizer only puts the stream's state on a queue (SimpleQueue.put is safe there), and a
# worker thread meters it; at exit, what is left is metered in place.

_dropped: queue.SimpleQueue[_Callbacks | None] = queue.SimpleQueue()
_worker_pid = -1
_exiting = False


def _finish_when_dropped(stream: object, state: _Callbacks) -> None:
    global _worker_pid
    weakref.finalize(stream, _finish_later, state)  # holds the state, never the stream
    if _worker_pid != os.getpid():  # first stream of this process (or of a forked child)
        _worker_pid = os.getpid()
        threading.Thread(target=_finish_dropped, daemon=True, name="costwise-streams").start()
        # Registered after weakref's own exit hook (the finalizer above made sure of it),
        # so it runs first: finalizers called at exit then meter in place.
        atexit.register(_at_exit)


def _finish_later(state: _Callbacks) -> None:
    if _exiting:
        state.finish(False)
    else:
        _dropped.put(state)


def _finish_dropped() -> None:
    while (state := _dropped.get()) is not None:
        _finish(state)


def _finish(state: _Callbacks) -> None:
    try:
        state.finish(False)
    except Exception:  # a callback failed: the others of other streams still run
        logger.exception("costwise: metering a dropped stream failed")


def meter_dropped() -> None:
    """Meter, in this thread, the dropped streams still queued: every ledger read does it
    first (`Ledger.flush`), so a report never misses a stream dropped just before it."""
    while True:
        try:
            state = _dropped.get_nowait()
        except queue.Empty:
            return
        if state is not None:
            _finish(state)


BEFORE_FLUSH.append(meter_dropped)


def _at_exit() -> None:
    global _exiting
    _exiting = True
    meter_dropped()


class CostwiseStream(Stream[ChatCompletionChunk]):
    """A sync stream of chunks that reports how it ended. Behaves like `openai.Stream`."""

    def __init__(
        self,
        source: Iterator[ChatCompletionChunk],
        *,
        response: httpx2.Response,
        close: Callable[[], None] | None = None,
    ) -> None:
        # Not calling Stream.__init__: it would start decoding SSE from `response` itself.
        self.response = response
        self._source = source
        self._close_source = close
        self._state = _Callbacks()
        # A function of the state, not a method: a generator holding the stream would keep
        # it alive in a reference cycle, and an abandoned stream would wait for the cycle
        # collector to be metered.
        self._iterator = _iterate(self._state, source)
        _finish_when_dropped(self, self._state)

    @property
    def ledger_key(self) -> object:
        """A stand-in for this stream that callbacks may hold without keeping it alive."""
        return self._state

    def add_done_callback(self, fn: DoneCallback) -> None:
        """Call ``fn(chunks, completed)`` once the stream ends, fails or is closed."""
        self._state.add(fn)

    @property
    def chunks(self) -> list[ChatCompletionChunk]:
        """The chunks seen so far."""
        return self._state.chunks

    @override
    def close(self) -> None:
        if self._close_source is not None:
            self._close_source()
        self._iterator.close()  # type: ignore[attr-defined]  # it is a generator
        self._state.finish(False)

    @classmethod
    def replay(
        cls, chunks: list[ChatCompletionChunk], *, response: httpx2.Response
    ) -> CostwiseStream:
        """A stream that serves recorded chunks (a cache hit)."""
        return cls(iter(chunks), response=response)


class AsyncCostwiseStream(AsyncStream[ChatCompletionChunk]):
    """An async stream of chunks that reports how it ended. Behaves like `openai.AsyncStream`."""

    def __init__(
        self,
        source: AsyncIterator[ChatCompletionChunk],
        *,
        response: httpx2.Response,
        close: Callable[[], Any] | None = None,
    ) -> None:
        self.response = response
        self._source = source
        self._close_source = close
        self._state = _Callbacks()
        self._iterator = _aiterate(self._state, source)  # see CostwiseStream
        _finish_when_dropped(self, self._state)

    @property
    def ledger_key(self) -> object:
        """A stand-in for this stream that callbacks may hold without keeping it alive."""
        return self._state

    def add_done_callback(self, fn: DoneCallback) -> None:
        """Call ``fn(chunks, completed)`` once the stream ends, fails or is closed."""
        self._state.add(fn)

    @property
    def chunks(self) -> list[ChatCompletionChunk]:
        """The chunks seen so far."""
        return self._state.chunks

    @override
    async def close(self) -> None:
        if self._close_source is not None:
            result = self._close_source()
            if hasattr(result, "__await__"):
                await result
        await self._iterator.aclose()  # type: ignore[attr-defined]  # it is an async generator
        self._state.finish(False)

    @classmethod
    def replay(
        cls, chunks: list[ChatCompletionChunk], *, response: httpx2.Response
    ) -> AsyncCostwiseStream:
        """A stream that serves recorded chunks (a cache hit)."""

        async def gen() -> AsyncIterator[ChatCompletionChunk]:
            for chunk in chunks:
                yield chunk

        return cls(gen(), response=response)


def asks_usage(kwargs: Mapping[str, Any]) -> bool:
    """Whether a streamed request asked for the final usage chunk (``include_usage``)."""
    options = kwargs.get("stream_options")
    return isinstance(options, Mapping) and bool(options.get("include_usage"))


def synthetic_response(url: str) -> httpx2.Response:
    """An HTTP response object for a stream that did not come from the network."""
    return httpx2.Response(
        200,
        headers={"content-type": "text/event-stream", "x-costwise-replay": "true"},
        request=httpx2.Request("POST", url),
    )


def assemble(chunks: list[ChatCompletionChunk]) -> ChatCompletion | None:
    """Rebuild the `ChatCompletion` a list of stream chunks adds up to (``None`` if empty)."""
    if not chunks:
        return None
    # the first chunk that names the answer: some providers (Azure) open with one that
    # names nothing (empty id and model, only content-filter results)
    first = next((c for c in chunks if c.id), chunks[0])
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for chunk in chunks:
        if chunk.usage is not None:
            usage = chunk.usage.model_dump(exclude_none=True)
        for c in chunk.choices:
            ch = choices.setdefault(
                c.index,
                {
                    "index": c.index,
                    "finish_reason": None,
                    "logprobs": None,
                    "message": {"role": "assistant", "content": None},
                },
            )
            msg, d = ch["message"], c.delta
            if d.content is not None:
                msg["content"] = (msg["content"] or "") + d.content
            if d.refusal is not None:
                msg["refusal"] = (msg.get("refusal") or "") + d.refusal
            for tc in d.tool_calls or ():
                calls = msg.setdefault("tool_calls", {})
                slot = calls.setdefault(
                    tc.index,
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if tc.id:
                    slot["id"] = tc.id
                if tc.function is not None:
                    slot["function"]["name"] += tc.function.name or ""
                    slot["function"]["arguments"] += tc.function.arguments or ""
            if c.finish_reason is not None:
                ch["finish_reason"] = c.finish_reason
            if c.logprobs is not None and c.logprobs.content:
                lp = ch["logprobs"] or {"content": [], "refusal": None}
                lp["content"].extend(t.model_dump() for t in c.logprobs.content)
                ch["logprobs"] = lp
    for ch in choices.values():
        calls = ch["message"].pop("tool_calls", None)
        if calls:
            ch["message"]["tool_calls"] = [calls[i] for i in sorted(calls)]
        if ch["finish_reason"] is None:
            ch["finish_reason"] = "stop"  # the validator needs one; callers check completion
    body: dict[str, Any] = {
        "id": first.id,
        "object": "chat.completion",
        "created": first.created,
        # the last model a chunk names: some providers (Azure) send "" in the first one
        "model": next((c.model for c in reversed(chunks) if c.model), first.model),
        "choices": [choices[i] for i in sorted(choices)],
    }
    if first.system_fingerprint is not None:
        body["system_fingerprint"] = first.system_fingerprint
    if first.service_tier is not None:
        body["service_tier"] = first.service_tier
    if usage is not None:
        body["usage"] = usage
    return ChatCompletion.model_validate(body)


_PIECES = re.compile(r"\S+\s*|\s+")


def replay_chunks(completion: ChatCompletion, *, include_usage: bool) -> list[ChatCompletionChunk]:
    """The chunks a real stream of `completion` would have had, a few words per chunk."""
    base = {
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": completion.model,
    }
    if completion.system_fingerprint is not None:
        base["system_fingerprint"] = completion.system_fingerprint
    raw: list[dict[str, Any]] = []
    for choice in completion.choices:
        i, msg = choice.index, choice.message
        raw.append(
            {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        )
        words = _PIECES.findall(msg.content or "")
        for k in range(0, len(words), 3):
            raw.append(
                {"index": i, "delta": {"content": "".join(words[k : k + 3])}, "finish_reason": None}
            )
        if msg.refusal:
            raw.append({"index": i, "delta": {"refusal": msg.refusal}, "finish_reason": None})
        for n, tc in enumerate(msg.tool_calls or ()):
            fn = getattr(tc, "function", None)
            delta = {"index": n, "id": tc.id, "type": tc.type}
            if fn is not None:
                delta["function"] = {"name": fn.name, "arguments": fn.arguments}
            raw.append({"index": i, "delta": {"tool_calls": [delta]}, "finish_reason": None})
        raw.append({"index": i, "delta": {}, "finish_reason": choice.finish_reason})
    chunks = [ChatCompletionChunk.model_validate({**base, "choices": [c]}) for c in raw]
    if include_usage and completion.usage is not None:
        chunks.append(
            ChatCompletionChunk.model_validate(
                {**base, "choices": [], "usage": completion.usage.model_dump(exclude_none=True)}
            )
        )
    return chunks
