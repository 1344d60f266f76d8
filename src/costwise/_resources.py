"""The SDK resource subclasses: the only code that touches SDK resource classes.

``client.chat.completions`` of a costwise client is a `CostwiseCompletions`, whose ``create``,
``parse`` and ``stream`` take costwise's per-call options and run the pipeline. The terminal
step calls the SDK's own method (``Completions.create(self, ...)``), so the SDK's retries,
auth, timeouts and error types are untouched.
"""

from __future__ import annotations

from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, overload

from openai import AsyncStream, Stream
from openai.lib.streaming.chat import AsyncChatCompletionStreamManager, ChatCompletionStreamManager
from openai.resources.chat import AsyncChat, Chat
from openai.resources.chat.completions import AsyncCompletions, Completions
from openai.resources.embeddings import AsyncEmbeddings, Embeddings
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ParsedChatCompletion
from typing_extensions import Unpack, override

from ._call import Method, credential_scope

if TYPE_CHECKING:
    from ._config import Config
    from .typing import CreateKwargs, CreateStreamKwargs

__all__ = ["AsyncCostwiseChat", "AsyncCostwiseCompletions", "CostwiseChat", "CostwiseCompletions"]


class CostwiseCompletions(Completions):
    """``client.chat.completions`` of a `CostwiseClient`: the SDK's, plus costwise options."""

    @property
    def _costwise(self) -> Config:
        return self._client._costwise  # type: ignore[attr-defined, no-any-return]  # set by CostwiseClient

    def _sdk(self, method: Method) -> Any:
        if method == "create":
            return self._sdk_create
        if method == "parse":
            return partial(Completions.parse, self)
        # The SDK's own create: the client's `embeddings` records its calls itself, and a
        # strategy's side call is recorded by the meter already.
        return partial(Embeddings.create, self._client.embeddings)

    @cached_property
    def _sdk_create(self) -> Any:
        # The SDK's own create, bound once (not a new closure per call).
        return partial(Completions.create, self)

    @overload  # type: ignore[override]  # adds costwise's keywords to the SDK's overloads
    def create(self, **kwargs: Unpack[CreateKwargs]) -> ChatCompletion: ...
    @overload
    def create(self, **kwargs: Unpack[CreateStreamKwargs]) -> Stream[ChatCompletionChunk]: ...

    @override
    def create(self, **kwargs: Any) -> ChatCompletion | Stream[ChatCompletionChunk]:
        """Create a chat completion through the costwise pipeline.

        Takes every argument the SDK's ``create`` takes, plus costwise's per-call options
        (`costwise.typing.CostwiseOptions`: ``feature=``, ``cache=``, ``task=``, ...).
        Returns exactly what the SDK returns; SDK errors pass through unchanged.
        """
        cfg = self._costwise
        feature = cfg.plain_call(kwargs)
        if feature is None:
            call = cfg.make_call(
                kwargs,
                method="create",
                is_async=False,
                base_url=self._url,
                client_scope=self._scope,
            )
        elif cfg.direct:
            return cfg.meter.direct(feature, kwargs, self._sdk_create)  # type: ignore[no-any-return]
        else:
            found = cfg.express(feature, kwargs, self._scope)
            if found is not None and found.response is not None:
                return found.response  # type: ignore[no-any-return]
            call = cfg.call_after(
                found, feature, kwargs, is_async=False, base_url=self._url, client_scope=self._scope
            )
        return cfg.run(call, self._sdk)  # type: ignore[no-any-return]

    @cached_property
    def _url(self) -> str:
        return f"{str(self._client.base_url).rstrip('/')}/chat/completions"

    @property
    def _scope(self) -> str:
        return _scope_now(self)

    @override
    def parse(self, *, feature: str | None = None, **kwargs: Any) -> ParsedChatCompletion[Any]:
        """The SDK's ``parse`` (structured outputs), priced and tagged like ``create``."""
        if feature is not None:
            kwargs["feature"] = feature
        cfg = self._costwise
        call = cfg.make_call(
            kwargs, method="parse", is_async=False, base_url=self._url, client_scope=self._scope
        )
        return cfg.run(call, self._sdk)  # type: ignore[no-any-return]

    @override
    def stream(
        self, *, feature: str | None = None, **kwargs: Any
    ) -> ChatCompletionStreamManager[Any]:
        """The SDK's ``.stream()`` helper; ``feature=`` and costwise options work here too."""
        self._costwise.stream_options_header(kwargs, feature)
        return super().stream(**kwargs)


class AsyncCostwiseCompletions(AsyncCompletions):
    """``client.chat.completions`` of an `AsyncCostwiseClient`."""

    @property
    def _costwise(self) -> Config:
        return self._client._costwise  # type: ignore[attr-defined, no-any-return]  # set by AsyncCostwiseClient

    def _sdk(self, method: Method) -> Any:
        if method == "create":
            return self._sdk_create
        if method == "parse":
            return partial(AsyncCompletions.parse, self)
        return partial(AsyncEmbeddings.create, self._client.embeddings)

    @cached_property
    def _sdk_create(self) -> Any:
        return partial(AsyncCompletions.create, self)

    @cached_property
    def _url(self) -> str:
        return f"{str(self._client.base_url).rstrip('/')}/chat/completions"

    @property
    def _scope(self) -> str:
        return _scope_now(self)

    @overload  # type: ignore[override]  # adds costwise's keywords to the SDK's overloads
    async def create(self, **kwargs: Unpack[CreateKwargs]) -> ChatCompletion: ...
    @overload
    async def create(
        self, **kwargs: Unpack[CreateStreamKwargs]
    ) -> AsyncStream[ChatCompletionChunk]: ...

    @override
    async def create(self, **kwargs: Any) -> ChatCompletion | AsyncStream[ChatCompletionChunk]:
        """Create a chat completion through the costwise pipeline (see the sync twin)."""
        cfg = self._costwise
        feature = cfg.plain_call(kwargs)
        if feature is None:
            call = cfg.make_call(
                kwargs, method="create", is_async=True, base_url=self._url, client_scope=self._scope
            )
        elif cfg.direct:
            return await cfg.meter.adirect(feature, kwargs, self._sdk_create)  # type: ignore[no-any-return]
        else:
            found = await cfg.aexpress(feature, kwargs, self._scope)
            if found is not None and found.response is not None:
                return found.response  # type: ignore[no-any-return]
            call = cfg.call_after(
                found, feature, kwargs, is_async=True, base_url=self._url, client_scope=self._scope
            )
        return await cfg.arun(call, self._sdk)  # type: ignore[no-any-return]

    @override
    async def parse(
        self, *, feature: str | None = None, **kwargs: Any
    ) -> ParsedChatCompletion[Any]:
        """The SDK's ``parse``, priced and tagged like ``create``."""
        if feature is not None:
            kwargs["feature"] = feature
        cfg = self._costwise
        call = cfg.make_call(
            kwargs, method="parse", is_async=True, base_url=self._url, client_scope=self._scope
        )
        return await cfg.arun(call, self._sdk)  # type: ignore[no-any-return]

    @override
    def stream(
        self, *, feature: str | None = None, **kwargs: Any
    ) -> AsyncChatCompletionStreamManager[Any]:
        """The SDK's ``.stream()`` helper; ``feature=`` and costwise options work here too."""
        self._costwise.stream_options_header(kwargs, feature)
        return super().stream(**kwargs)


class CostwiseChat(Chat):
    """``client.chat`` of a `CostwiseClient`."""

    @cached_property
    @override
    def completions(self) -> CostwiseCompletions:
        return CostwiseCompletions(self._client)


class AsyncCostwiseChat(AsyncChat):
    """``client.chat`` of an `AsyncCostwiseClient`."""

    @cached_property
    @override
    def completions(self) -> AsyncCostwiseCompletions:
        return AsyncCostwiseCompletions(self._client)


def _scope_now(resource: Any) -> str:
    """The client's cache scope now (``""``: none, see `credential_scope`), recomputed only
    when its API key, base URL or workload identity changed (they can be reassigned)."""
    client = resource._client
    state = (client.api_key, client.base_url, getattr(client, "workload_identity", None))
    cached = resource.__dict__.get("_scope_cache")
    if (
        cached is not None
        and cached[0][0] == state[0]
        and cached[0][1] is state[1]
        and cached[0][2] is state[2]
    ):
        return cached[1]  # type: ignore[no-any-return]
    scope = credential_scope(client) or ""
    resource.__dict__["_scope_cache"] = (state, scope)
    return scope
