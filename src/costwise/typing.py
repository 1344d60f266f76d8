"""Public types: the strategy protocol, flows, and the typed keyword arguments of `create`.

A strategy is an object with a ``flow(call)`` generator method. The generator *yields* the
`Call` it wants sent downstream and is *sent* what came back; it *returns* the answer for
its caller. It never does I/O itself, so one implementation serves both the sync and the
async client (the design of httpx's ``Auth.auth_flow``)::

    class OnlyMini:
        def flow(self, call: Call) -> Flow:
            response = yield call.replace(model="gpt-4o-mini")   # send downstream
            return response                                       # hand back upstream

- ``return resp`` before any ``yield`` answers without calling upstream (a cache hit).
- Yielding several times makes several attempts (a cascade).
- An upstream exception is thrown into the generator at the ``yield``; catch it to fall back,
  or let it propagate unchanged.
- A flow that must wait on the network (a Redis round trip) yields
  ``costwise.Blocking(fn, *args)`` and is sent ``fn(*args)``: called in place by the sync
  client, in a worker thread by the async one, so one implementation never blocks an
  event loop.
- Yielding anything but a `Call` or a `Blocking`, or returning ``None``, raises
  `StrategyError`.

Optional attributes a strategy may define:

- ``name: str``: the name the ledger shows (default: the class name, lower-cased).
- ``request_only: bool``: the flow only rewrites the request and returns the response
  untouched, so it is safe in every mode (streams, raw responses). Default ``False``.
- ``streams: bool``: the flow understands stream responses (it is sent a costwise stream
  object and may return one). Default ``False``: the pipeline skips it for ``stream=True``.
- ``options: frozenset[str]``: the per-call keyword arguments it reads from ``call.options``.
- ``async_flow(call)``: an async generator used by the async client instead of ``flow``,
  for a strategy that needs async-native I/O (none of the built-ins do).
- ``express(kwargs, scope) -> costwise.Express | None``: a fast lane, used only when the
  strategy is first in the pipeline and the call is a plain ``create`` (no stream, no raw
  response, no costwise option but ``feature``). It may answer before any `Call` is built
  (an exact cache hit: the client records one zero-cost ``hit`` entry and returns it);
  otherwise the call takes the pipeline as usual. `ResponseCache` has one, which is why a
  hit costs a fraction of a pipeline pass. A lane that waits on the network sets
  ``blocking = True`` so the async client runs it in a worker thread.

A plain function ``Call -> Call`` is a strategy too: a request-only rewrite.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, Union, runtime_checkable

from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)
from openai.types.embedding_create_params import EmbeddingCreateParams
from openai.types.responses.response_create_params import (
    ResponseCreateParamsNonStreaming,
    ResponseCreateParamsStreaming,
)
from typing_extensions import TypedDict

if TYPE_CHECKING:
    import httpx2

    from ._call import Call
    from ._compat import Body, Headers, Query
    from ._pipeline import Blocking

__all__ = [
    "AsyncFlow",
    "CostwiseOptions",
    "CreateKwargs",
    "CreateStreamKwargs",
    "EmbeddingsKwargs",
    "Flow",
    "RequestOptions",
    "ResponsesKwargs",
    "ResponsesStreamKwargs",
    "Strategy",
    "StrategyLike",
]

Flow = Generator[Union["Call", "Blocking"], Any, Any]
"""A strategy's generator: yields `Call`s (and `costwise.Blocking` I/O), is sent responses
(and I/O results), returns the final response."""

AsyncFlow = AsyncGenerator["Call", Any]
"""The async escape hatch: an async generator that yields `Call`s and is sent responses.

An async generator cannot ``return`` a value, so it ends by yielding a `costwise.Answer`.
"""


@runtime_checkable
class Strategy(Protocol):
    """The protocol every strategy object follows (see the module docstring)."""

    def flow(self, call: Call) -> Flow:
        """Handle one call: yield calls downstream, return the response."""
        ...


StrategyLike = Union[Strategy, Callable[["Call"], "Call"]]  # noqa: UP007  (a runtime alias)
"""A strategy object, or a plain ``Call -> Call`` function (a request-only rewrite)."""


class CostwiseOptions(TypedDict, total=False):
    """Per-call keyword arguments costwise adds to ``create``; the SDK never sees them."""

    feature: str | None
    """The spend tag (default: the `costwise.feature` context, else ``"untagged"``)."""
    cache: bool
    """``False`` bypasses the response cache; ``True`` caches a non-deterministic request."""
    cache_ttl: float
    """Seconds this response may be served from the cache."""
    cache_refresh: bool
    """Ignore a cached answer, call upstream and store the new answer."""
    cache_scope: str
    """Isolation scope of cache entries (for example one per tenant)."""
    semantic: bool
    """``False`` skips the semantic cache for this call."""
    task: str
    """The task (``"classify"``, ``"code"``, ...) the router maps to a model."""
    max_budget_usd: float | Decimal | str
    """The most a cascade may spend on this call."""
    buffer_stream: bool
    """Let a cascade buffer a streamed call (it then replays the accepted answer)."""
    compress: bool
    """``False`` skips compression; ``True`` also compresses user messages."""


class RequestOptions(TypedDict, total=False):
    """The SDK's per-request options, accepted by every ``create``."""

    extra_headers: Headers | None
    extra_query: Query | None
    extra_body: Body | None
    timeout: float | httpx2.Timeout | None


class CreateKwargs(
    CompletionCreateParamsNonStreaming, CostwiseOptions, RequestOptions, total=False
):
    """Keyword arguments of a non-streamed ``create``: the SDK's own plus costwise's."""


class CreateStreamKwargs(
    CompletionCreateParamsStreaming, CostwiseOptions, RequestOptions, total=False
):
    """Keyword arguments of ``create(stream=True)``: the SDK's own plus costwise's."""


class _Tag(TypedDict, total=False):
    feature: str | None
    """The spend tag (default: the `costwise.feature` context, else ``"untagged"``)."""


class EmbeddingsKwargs(EmbeddingCreateParams, RequestOptions, _Tag, total=False):
    """Keyword arguments of ``embeddings.create``: the SDK's own plus ``feature=``."""


class ResponsesKwargs(ResponseCreateParamsNonStreaming, RequestOptions, _Tag, total=False):
    """Keyword arguments of ``responses.create``: the SDK's own plus ``feature=``."""


class ResponsesStreamKwargs(ResponseCreateParamsStreaming, RequestOptions, _Tag, total=False):
    """Keyword arguments of ``responses.create(stream=True)`` (passes through unrecorded)."""
