"""The SDK endpoints costwise records but does not optimise: embeddings and the Responses API.

Strategies run on ``chat.completions`` only. A client's other priced calls must still be in
the ledger, or it undercounts spend: ``client.embeddings.create``, ``client.responses.create``
and ``client.responses.parse`` take ``feature=`` and are recorded through `Meter.direct` (one
entry, priced from the response's usage); a streamed ``responses.create`` is recorded when
it ends, from its final event's usage; a ``background=True`` one when this client first sees
it finished (``retrieve`` or ``cancel``). What is not recorded yet says so once per process
with a `CostwiseWarning` instead of silently missing from the ledger: raw streamed Responses
calls, and streaming an existing response by its id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, overload

from openai.resources.embeddings import AsyncEmbeddings, Embeddings
from openai.resources.responses import AsyncResponses, Responses
from typing_extensions import Unpack, override

from ._compat import raw_mode
from ._exceptions import warn_once

if TYPE_CHECKING:
    from openai import AsyncStream, Stream
    from openai.types import CreateEmbeddingResponse
    from openai.types.responses import ParsedResponse, Response, ResponseStreamEvent

    from ._config import Config
    from .typing import EmbeddingsKwargs, ResponsesKwargs, ResponsesStreamKwargs

__all__ = [
    "AsyncCostwiseEmbeddings",
    "AsyncCostwiseResponses",
    "CostwiseEmbeddings",
    "CostwiseResponses",
    "responses_messages",
]


def _unrecorded(what: str) -> None:
    """Warn once per process that a kind of call passes through without a ledger entry."""
    warn_once(
        f"unrecorded: {what}",
        f"costwise does not record {what} in the ledger yet; the call passes through "
        f"unchanged (chat completions, embeddings and new Responses API responses are "
        f"recorded)",
        stacklevel=4,
    )


def _embedding_messages(kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The input texts as messages, for a token estimate when the server reports no usage."""
    value = kwargs.get("input")
    texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [{"role": "user", "content": t} for t in texts if isinstance(t, str)]


def responses_messages(kwargs: Mapping[str, Any]) -> list[Any]:
    """Instructions and input of a Responses request as chat messages (text parts kept as
    parts): what a token estimate counts, and what the fake provider answers."""
    out: list[Any] = []
    instructions = kwargs.get("instructions")
    if isinstance(instructions, str):
        out.append({"role": "system", "content": instructions})
    value = kwargs.get("input")
    if isinstance(value, str):
        out.append({"role": "user", "content": value})
    elif isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        out += [item for item in value if isinstance(item, Mapping) and "content" in item]
    return out


def _finished(events: list[Any]) -> Any:
    """The final response of a Responses API stream (completed, incomplete or failed)."""
    for event in reversed(events):
        if getattr(event, "type", "") in _FINAL_EVENTS:
            return getattr(event, "response", None)
    return None


_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _stream_kwargs(resource: Any, feature: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Arguments for the SDK's ``responses.stream``: the tag rides in the private header
    to the ``create`` the helper calls when entered (the chat ``.stream()`` does the same)."""
    if kwargs.get("response_id") is not None:
        _unrecorded("responses.stream(response_id=...) of an existing response")
    _config(resource).stream_options_header(kwargs, feature)
    return kwargs


def _config(resource: Any) -> Config:
    return resource._client._costwise  # type: ignore[no-any-return]  # set by the clients


def _passes_through(kwargs: Mapping[str, Any], endpoint: str) -> bool:
    """Whether this call is one costwise does not record (after warning once)."""
    if raw_mode(kwargs.get("extra_headers")) and kwargs.get("stream"):
        _unrecorded(f"raw streamed responses of {endpoint} (with_raw_response, stream=True)")
        return True
    return False


class CostwiseEmbeddings(Embeddings):
    """``client.embeddings`` of a `CostwiseClient`: the SDK's, recorded in the ledger."""

    @override
    def create(  # type: ignore[override]  # adds feature= to the SDK's keywords
        self, **kwargs: Unpack[EmbeddingsKwargs]
    ) -> CreateEmbeddingResponse:
        """The SDK's ``create``, tagged with ``feature=`` and recorded (usage priced)."""
        args: dict[str, Any] = dict(kwargs)
        cfg = _config(self)
        tag = cfg.feature_of(args)
        sdk = partial(Embeddings.create, self)
        if _passes_through(args, "embeddings.create"):
            return sdk(**args)
        return cfg.meter.direct(tag, args, sdk, _embedding_messages(args), api="embeddings")  # type: ignore[no-any-return]


class AsyncCostwiseEmbeddings(AsyncEmbeddings):
    """``client.embeddings`` of an `AsyncCostwiseClient`: the SDK's, recorded in the ledger."""

    @override
    async def create(  # type: ignore[override]  # adds feature= to the SDK's keywords
        self, **kwargs: Unpack[EmbeddingsKwargs]
    ) -> CreateEmbeddingResponse:
        """The SDK's ``create``, tagged with ``feature=`` and recorded (usage priced)."""
        args: dict[str, Any] = dict(kwargs)
        cfg = _config(self)
        tag = cfg.feature_of(args)
        sdk = partial(AsyncEmbeddings.create, self)
        if _passes_through(args, "embeddings.create"):
            return await sdk(**args)
        return await cfg.meter.adirect(tag, args, sdk, _embedding_messages(args), api="embeddings")  # type: ignore[no-any-return]


class CostwiseResponses(Responses):
    """``client.responses`` of a `CostwiseClient`: ``create`` (streams too), ``parse`` and
    the ``stream()`` helper are recorded."""

    @overload  # type: ignore[override]  # adds feature= to the SDK's keywords
    def create(self, **kwargs: Unpack[ResponsesKwargs]) -> Response: ...
    @overload
    def create(self, **kwargs: Unpack[ResponsesStreamKwargs]) -> Stream[ResponseStreamEvent]: ...

    @override
    def create(self, **kwargs: Any) -> Response | Stream[ResponseStreamEvent]:
        """The SDK's ``create``, tagged with ``feature=`` and recorded: a stream when it
        ends, a background call when this client sees it finished (`retrieve`, `cancel`)."""
        cfg = _config(self)
        tag = cfg.feature_of(kwargs)
        sdk = partial(Responses.create, self)
        if _passes_through(kwargs, "responses.create"):
            return sdk(**kwargs)
        messages = responses_messages(kwargs)
        if kwargs.get("background") and not kwargs.get("stream"):
            return cfg.meter.direct_background(tag, kwargs, sdk)  # type: ignore[no-any-return]
        if kwargs.get("stream"):
            return cfg.meter.direct_stream(  # type: ignore[no-any-return]
                tag, kwargs, sdk, _finished, messages, api="responses"
            )
        return cfg.meter.direct(tag, kwargs, sdk, messages, api="responses")  # type: ignore[no-any-return]

    @override
    def retrieve(self, response_id: str, **kwargs: Any) -> Any:
        """The SDK's ``retrieve``; a background response this client started is recorded
        the first time it is seen finished."""
        response = super().retrieve(response_id, **kwargs)
        if not kwargs.get("stream"):
            _config(self).meter.finished(response)
        return response

    @override
    def cancel(self, response_id: str, **kwargs: Any) -> Response:
        """The SDK's ``cancel``; a cancelled background response is recorded with its usage."""
        response = super().cancel(response_id, **kwargs)
        _config(self).meter.finished(response)
        return response

    @override
    def parse(self, **kwargs: Any) -> ParsedResponse[Any]:
        """The SDK's ``parse`` (structured outputs), tagged with ``feature=`` and recorded."""
        cfg = _config(self)
        tag = cfg.feature_of(kwargs)
        sdk = partial(Responses.parse, self)
        if _passes_through(kwargs, "responses.parse"):
            return sdk(**kwargs)
        return cfg.meter.direct(tag, kwargs, sdk, responses_messages(kwargs), api="responses")  # type: ignore[no-any-return]

    @override
    def stream(self, *, feature: str | None = None, **kwargs: Any) -> Any:
        """The SDK's ``stream`` helper; ``feature=`` works here too. A new response is
        recorded when its stream ends (the helper calls ``create``); streaming an existing
        one by ``response_id`` is not recorded (warns once)."""
        return super().stream(**_stream_kwargs(self, feature, kwargs))


class AsyncCostwiseResponses(AsyncResponses):
    """``client.responses`` of an `AsyncCostwiseClient`: recorded like the sync twin's."""

    @overload  # type: ignore[override]  # adds feature= to the SDK's keywords
    async def create(self, **kwargs: Unpack[ResponsesKwargs]) -> Response: ...
    @overload
    async def create(
        self, **kwargs: Unpack[ResponsesStreamKwargs]
    ) -> AsyncStream[ResponseStreamEvent]: ...

    @override
    async def create(self, **kwargs: Any) -> Response | AsyncStream[ResponseStreamEvent]:
        """The SDK's ``create``, tagged and recorded like the sync twin's."""
        cfg = _config(self)
        tag = cfg.feature_of(kwargs)
        sdk = partial(AsyncResponses.create, self)
        if _passes_through(kwargs, "responses.create"):
            return await sdk(**kwargs)
        messages = responses_messages(kwargs)
        if kwargs.get("background") and not kwargs.get("stream"):
            return await cfg.meter.adirect_background(tag, kwargs, sdk)  # type: ignore[no-any-return]
        if kwargs.get("stream"):
            return await cfg.meter.adirect_stream(  # type: ignore[no-any-return]
                tag, kwargs, sdk, _finished, messages, api="responses"
            )
        return await cfg.meter.adirect(tag, kwargs, sdk, messages, api="responses")  # type: ignore[no-any-return]

    @override
    async def retrieve(self, response_id: str, **kwargs: Any) -> Any:
        """The SDK's ``retrieve``, recorded like the sync twin's."""
        response = await super().retrieve(response_id, **kwargs)
        if not kwargs.get("stream"):
            _config(self).meter.finished(response)
        return response

    @override
    async def cancel(self, response_id: str, **kwargs: Any) -> Response:
        """The SDK's ``cancel``, recorded like the sync twin's."""
        response = await super().cancel(response_id, **kwargs)
        _config(self).meter.finished(response)
        return response

    @override
    async def parse(self, **kwargs: Any) -> ParsedResponse[Any]:
        """The SDK's ``parse`` (structured outputs), tagged with ``feature=`` and recorded."""
        cfg = _config(self)
        tag = cfg.feature_of(kwargs)
        sdk = partial(AsyncResponses.parse, self)
        if _passes_through(kwargs, "responses.parse"):
            return await sdk(**kwargs)
        return await cfg.meter.adirect(  # type: ignore[no-any-return]
            tag, kwargs, sdk, responses_messages(kwargs), api="responses"
        )

    @override
    def stream(self, *, feature: str | None = None, **kwargs: Any) -> Any:
        """The SDK's ``stream`` helper; ``feature=`` works here too. A new response is
        recorded when its stream ends (the helper calls ``create``); streaming an existing
        one by ``response_id`` is not recorded (warns once)."""
        return super().stream(**_stream_kwargs(self, feature, kwargs))
