"""A fake OpenAI-compatible provider that answers the real SDK in-process.

`FakeProvider` is an ``httpx2`` handler: pass it to ``httpx2.MockTransport`` (or to
``costwise.testing.serve`` for a real socket) and point an ``openai.OpenAI`` client at it.
It answers ``/chat/completions`` and ``/responses`` (plain and streamed), ``/embeddings``
and ``/models`` with bodies of the exact shape the API sends, computes usage from the
request, and can be scripted to fail the way the API fails (429, 500, timeouts, dropped
streams).

Everything it makes up is deterministic: the same request to the same provider (same
``seed``) gets the same answer, token counts and embedding.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import math
import re
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, TypeAlias

import anyio
import httpx2
from typing_extensions import Self, override

from costwise.testing._batches import FakeBatches
from costwise.testing._builders import (
    FinishReason,
    choice_deltas,
    chunk_body,
    completion_body,
    count_tokens,
    message_body,
    normalize_tool_calls,
    split_tokens,
    sse_event,
    usage_body,
)

__all__ = [
    "Disconnect",
    "Error",
    "FakeProvider",
    "RecordedRequest",
    "Reply",
    "ScriptItem",
    "Timeout",
]


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted chat completion, served instead of the default answer.

    Use it with ``FakeProvider.script`` when a test needs a specific answer, model or
    usage for one call (say, a weak first answer that a cascade must escalate). Fields
    left as ``None`` keep the provider's computed value. ``Reply`` may also be returned
    from the provider's ``reply`` callable.

    Args:
        content: The assistant text. ``None`` means the default answer, unless
            ``tool_calls`` is given (then the message has no content).
        model: The model name the response reports.
        usage: ``(prompt_tokens, completion_tokens)`` to report instead of counting.
        finish_reason: Reported as given; also turns off ``max_tokens`` truncation.
        tool_calls: Tool calls, in the API's shape or as ``{"name": ..., "arguments": ...}``.
        cached_tokens: Reported as ``usage.prompt_tokens_details.cached_tokens``.
        reasoning_tokens: Reported as ``usage.completion_tokens_details.reasoning_tokens``.

    Example:
        >>> provider = FakeProvider().script(Reply("I don't know.", model="gpt-4o-mini"))
    """

    content: str | None = None
    _: KW_ONLY
    model: str | None = None
    usage: tuple[int, int] | None = None
    finish_reason: FinishReason | None = None
    tool_calls: Sequence[Mapping[str, Any]] | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Error:
    """A scripted HTTP error with a body in OpenAI's error shape.

    Use it to test how code reacts to API failures: the SDK maps the status to its own
    exception (429 to ``openai.RateLimitError``, 500 to ``openai.InternalServerError``,
    400 to ``openai.BadRequestError``, and so on), exactly as with the real API.

    Args:
        status: The HTTP status code.
        message: ``error.message``; defaults to the API's usual text for the status.
        type: ``error.type``; defaults to the API's value for the status.
        code: ``error.code``; defaults to the API's value for the status.
        param: ``error.param``.
        headers: Extra response headers, e.g. ``{"retry-after": "0"}``.

    Example:
        >>> provider = FakeProvider().script(Error(429), Error(500))
    """

    status: int = 500
    _: KW_ONLY
    message: str | None = None
    type: str | None = None
    code: str | None = None
    param: str | None = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Timeout:
    """A scripted read timeout.

    Use it to test timeout handling. In-process the handler raises ``httpx2.ReadTimeout``,
    which the SDK reports as ``openai.APITimeoutError``. Over ``serve()`` the server holds
    the connection open without answering, so the client's own timeout fires (give the
    client a short ``timeout=``).
    """


@dataclass(frozen=True, slots=True)
class Disconnect:
    """A scripted dropped connection.

    Use it to test half-received streams: a streamed completion stops after ``after``
    events, with no ``[DONE]``, and the connection fails, so the SDK raises
    ``openai.APIConnectionError`` while iterating. A non-streamed request is dropped before
    any response.

    Args:
        after: How many SSE events to deliver before the connection drops.
    """

    after: int = 2


ScriptItem: TypeAlias = Reply | Error | Timeout | Disconnect
"""Anything ``FakeProvider.script`` accepts."""

ReplyValue: TypeAlias = str | Mapping[str, Any] | Reply
"""What a ``reply`` callable may return."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordedRequest:
    """One request the provider received, as recorded in ``FakeProvider.requests``."""

    method: str
    path: str
    """The URL path, including the client's base path (``/v1/chat/completions``)."""
    headers: Mapping[str, str]
    """Request headers with lower-cased names."""
    json: Any
    """The decoded JSON body, or ``None`` when there was no (valid) JSON body."""


_ERROR_DEFAULTS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    409: ("invalid_request_error", None, "Conflict."),
    422: ("invalid_request_error", None, "Unprocessable entity."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again in 1s.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}

_DEFAULT_MODELS = (
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o",
    "gpt-4o-mini",
    "o3-mini",
    "o4-mini",
    "text-embedding-3-large",
    "text-embedding-3-small",
)

# Model families that bill hidden reasoning tokens as output.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")

# OpenAI's automatic prompt caching: prompts of at least 1024 tokens, cached prefixes grow
# in steps of 128 tokens.
_CACHE_MIN_TOKENS = 1024
_CACHE_STEP = 128

# Rough per-part costs of non-text message parts, so multimodal prompts don't count as free.
_PART_TOKENS = {"image_url": 85, "input_audio": 50, "file": 100}

_EMBEDDING_DIMS = 64

_OPENERS = (
    "Here is a short answer about {topic}.",
    "Good question about {topic}.",
    "Let's look at {topic} step by step.",
    "In short, {topic} comes down to a few points.",
    "Sure, here is what matters for {topic}.",
)
_MIDDLES = (
    "The main idea is to start with the simplest approach that works and to measure "
    "before optimising anything.",
    "Most of the cost usually comes from a small number of steps, so those are worth "
    "checking first.",
    "A common mistake is to change several things at once, which makes the effect of each "
    "one hard to see.",
    "It helps to write down the expected result first and compare it with what actually happens.",
    "There are trade-offs between speed, cost and quality, and the right balance depends "
    "on the use case.",
    "Small, repeatable experiments tend to tell you more than one large change.",
    "Keeping the inputs short and specific often improves the answer as well as the price.",
)
_CLOSERS = (
    "Let me know if you want more detail on any part.",
    "I hope this helps.",
    "Happy to go deeper if needed.",
    "Feel free to ask a follow-up question.",
)


class _EventStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """An SSE body that serves both sync and async clients, with optional pacing.

    With ``cut_after`` set it stops early and raises the error h11 raises when a server
    closes mid-body, so the SDK sees exactly what a real dropped connection looks like.
    """

    def __init__(
        self,
        events: list[bytes],
        *,
        delay: float,
        cut_after: int | None,
        request: httpx2.Request,
    ) -> None:
        if cut_after is not None:
            # Never deliver [DONE] on a dropped stream, whatever ``after`` says.
            events = events[: max(0, min(cut_after, len(events) - 1))]
        self._events = events
        self._delay = delay
        self._cut = cut_after is not None
        self._request = request

    def _disconnect(self) -> httpx2.RemoteProtocolError:
        return httpx2.RemoteProtocolError(
            "peer closed connection without sending complete message body "
            "(incomplete chunked read)",
            request=self._request,
        )

    @override
    def __iter__(self) -> Iterator[bytes]:
        for index, event in enumerate(self._events):
            if index and self._delay > 0:
                time.sleep(self._delay)
            yield event
        if self._cut:
            raise self._disconnect()

    @override
    async def __aiter__(self) -> AsyncIterator[bytes]:
        for index, event in enumerate(self._events):
            if index and self._delay > 0:
                await anyio.sleep(self._delay)
            yield event
        if self._cut:
            raise self._disconnect()


@dataclass(kw_only=True, slots=True)
class _Choice:
    content: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    logprobs: list[list[dict[str, Any]]] | None = None
    tokens: int = 0


@dataclass(kw_only=True, slots=True)
class _Plan:
    """What one chat request will be answered with, before it is encoded."""

    id: str
    model: str
    created: int
    choices: list[_Choice]
    usage: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class FakeProvider:
    """An in-process, OpenAI-compatible provider for tests and benchmarks.

    Use it wherever a test would otherwise need the network: give it to
    ``httpx2.MockTransport`` and hand that transport to the real ``openai`` SDK (or to
    ``costwise.testing.fake_client``), or run it behind a loopback socket with ``serve()``.
    Answers look like the API's, with usage counted from the request, so spend and cache
    logic can be tested end to end. ``script()`` stages failures and fixed answers;
    ``requests`` and ``calls()`` show what was sent. One provider may serve many client
    threads at once.

    Routes (matched on the end of the path, so any ``base_url`` works):

    - ``POST .../chat/completions``: plain and ``stream: true`` (SSE, with the usage chunk
      when ``stream_options.include_usage`` is set). Honours ``n``, ``max_tokens`` /
      ``max_completion_tokens`` (truncates, ``finish_reason="length"``), ``stop``,
      ``response_format`` (``json_object`` and ``json_schema``, the latter answered with
      an instance of the schema), ``tools`` with a forcing ``tool_choice``, ``logprobs``
      and ``top_logprobs``.
    - ``POST .../responses`` (the Responses API): the same answers in the Responses shape,
      plain or streamed as the API's events (so ``responses.stream()`` works); usage as
      ``input_tokens``/``output_tokens``; ``max_output_tokens`` cuts the answer
      (``status="incomplete"``); ``Reply`` and errors can be scripted as for chat.
    - ``POST .../embeddings``: deterministic, normalised 64-dimension vectors (or
      ``dimensions``), as floats or base64. Texts that share words get similar vectors,
      which gives semantic-cache tests something to match.
    - ``GET .../models`` and ``GET .../models/{id}``.
    - Anything else: 404 with an OpenAI error body.

    Args:
        latency: Seconds to wait before answering (``time.sleep`` in the sync handler,
            ``anyio.sleep`` in ``async_handler``).
        reply: Called with the decoded request body; returns the answer text, a
            ``Reply``, or a dict with any of ``content``, ``tool_calls``,
            ``finish_reason``, ``model``, ``usage`` (a ``(prompt, completion)`` pair or a
            usage dict), ``cached_tokens``, ``reasoning_tokens``.
        model_map: Requested model to reported model, as the API reports dated snapshots
            (``{"gpt-4o": "gpt-4o-2024-08-06"}``).
        seed: Changes every made-up answer, id and vector, deterministically.
        prompt_cache: Report ``cached_tokens`` for repeated prompt prefixes of at least
            1024 tokens, in 128-token steps, like OpenAI's automatic prompt caching.
        chunk_delay: Seconds between streamed events, so clients see tokens trickle in.
        base64_embeddings: Answer ``encoding_format="base64"`` with base64 strings. Off by
            default because the SDK asks for base64 on its own and decodes the reply
            afterwards, but strict response validation (used by this kit's clients)
            rejects the strings before that; float lists, which the SDK passes through
            unchanged, work either way.

    Example:
        >>> import httpx2, openai
        >>> provider = FakeProvider(model_map={"gpt-4o": "gpt-4o-2024-08-06"})
        >>> client = openai.OpenAI(
        ...     api_key="test",
        ...     base_url="http://test/v1",
        ...     http_client=httpx2.Client(transport=httpx2.MockTransport(provider)),
        ... )
        >>> client.chat.completions.create(
        ...     model="gpt-4o", messages=[{"role": "user", "content": "Hi"}]
        ... ).model
        'gpt-4o-2024-08-06'
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        reply: Callable[[dict[str, Any]], ReplyValue] | None = None,
        model_map: Mapping[str, str] | None = None,
        seed: int = 0,
        prompt_cache: bool = False,
        chunk_delay: float = 0.0,
        base64_embeddings: bool = False,
    ) -> None:
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.seed = seed
        self.prompt_cache = prompt_cache
        self.base64_embeddings = base64_embeddings
        self.model_map: Mapping[str, str] = dict(model_map or {})
        self._reply = reply
        # One lock guards all mutable state; user callbacks run outside it.
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._scripts: dict[str | None, deque[ScriptItem]] = {}
        self._counter = itertools.count(1)
        self._prefixes: set[bytes] = set()
        self.batches = FakeBatches(self)  # /files and /batches: the Batch API (_batches.py)

    # -- public API -----------------------------------------------------------------

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        """Answer ``request``; the sync handler for ``httpx2.MockTransport``.

        The same handler also serves an ``httpx2.AsyncClient`` (``MockTransport`` only
        awaits async handlers), but its ``latency`` then blocks the event loop; use
        ``async_handler`` for async clients with latency.

        Raises:
            httpx2.ReadTimeout: A scripted ``Timeout``.
            httpx2.RemoteProtocolError: A scripted ``Disconnect`` of a non-streamed call.
        """
        received = self._record(request)
        if self.latency > 0:
            time.sleep(self.latency)
        return self._respond(request, *received)

    async def async_handler(self, request: httpx2.Request) -> httpx2.Response:
        """Answer ``request`` without blocking the event loop.

        Use it as ``httpx2.MockTransport(provider.async_handler)`` for an
        ``httpx2.AsyncClient``; latency and stream pacing use ``anyio.sleep``.
        """
        received = self._record(request)
        if self.latency > 0:
            await anyio.sleep(self.latency)
        return self._respond(request, *received)

    def script(
        self,
        *items: ScriptItem | type[Timeout] | type[Disconnect],
        model: str | None = None,
    ) -> Self:
        """Queue responses to serve, in order, before falling back to the defaults.

        Use it to stage a sequence such as "429, then a good answer". Each item is used
        by one request: ``Reply`` by a chat completion, ``Error``, ``Timeout`` and
        ``Disconnect`` by a chat completion or an embeddings call. Items queued for a
        ``model`` are served first to requests for that model.

        Args:
            *items: ``Reply``, ``Error``, ``Timeout`` or ``Disconnect`` (the bare classes
                ``Timeout`` and ``Disconnect`` work too).
            model: Only serve these items to requests for this model.

        Returns:
            The provider, for chaining.

        Example:
            >>> provider = FakeProvider().script(Error(429), Reply("ok"), model="gpt-4o")
        """
        queued = [item() if isinstance(item, type) else item for item in items]
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(queued)
        return self

    @property
    def pending(self) -> int:
        """How many scripted items have not been served yet."""
        with self._lock:
            return sum(len(queue) for queue in self._scripts.values())

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def calls(self, path: str | None = "/chat/completions") -> list[RecordedRequest]:
        """The recorded requests whose path ends with ``path`` (all when ``None``).

        Example:
            >>> [c.json["model"] for c in FakeProvider().calls()]
            []
        """
        return [r for r in self.requests if path is None or r.path.endswith(path)]

    def reset(self) -> None:
        """Forget recorded requests, scripted items, cached prefixes and id counters."""
        with self._lock:
            self._requests.clear()
            self._scripts.clear()
            self._prefixes.clear()
            self._counter = itertools.count(1)

    # -- dispatch ---------------------------------------------------------------------

    def _record(self, request: httpx2.Request) -> tuple[int, Any, bool]:
        """Record ``request`` on arrival (so tests can see calls still in flight)."""
        body: Any = None
        valid = True
        if request.content:
            try:
                body = json.loads(request.content)
            except ValueError:
                valid = False
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.url.path,
                    headers=dict(request.headers.items()),
                    json=body,
                )
            )
            seq = next(self._counter)
        return seq, body, valid

    def _respond(
        self, request: httpx2.Request, seq: int, body: Any, valid: bool
    ) -> httpx2.Response:
        method = request.method
        path = request.url.path
        if method == "POST" and path.endswith("/chat/completions"):
            route = "chat"
        elif method == "POST" and path.endswith("/embeddings"):
            route = "embeddings"
        elif method == "POST" and path.endswith("/responses"):
            route = "responses"
        elif method == "GET" and path.endswith("/models"):
            return self._json(200, self._models_list(), seq)
        elif method == "GET" and "/models/" in path:
            return self._json(200, self._model_object(path.rsplit("/models/", 1)[1]), seq)
        elif (batch_api := self.batches.handle(request)) is not None:
            return batch_api
        else:
            return self._error(seq, 404, f"Invalid URL ({method} {path})")

        if not valid or not isinstance(body, dict):
            return self._error(
                seq,
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly.)",
            )
        required = {"chat": ("model", "messages"), "embeddings": ("model", "input")}.get(
            route, ("model",)
        )
        for name in required:
            if name not in body:
                return self._error(
                    seq,
                    400,
                    f"Missing required parameter: '{name}'.",
                    param=name,
                    code="missing_required_parameter",
                )

        item = self._take(str(body["model"]), route)
        if isinstance(item, Error):
            default_type, default_code, default_message = _ERROR_DEFAULTS.get(
                item.status,
                ("server_error" if item.status >= 500 else "invalid_request_error", None, "Error."),
            )
            return self._error(
                seq,
                item.status,
                item.message or default_message,
                type=item.type or default_type,
                code=item.code if item.code is not None else default_code,
                param=item.param,
                headers=item.headers,
            )
        if isinstance(item, Timeout):
            msg = "The read operation timed out"
            raise httpx2.ReadTimeout(msg, request=request)
        streaming = route != "embeddings" and bool(body.get("stream"))
        if isinstance(item, Disconnect) and not streaming:
            msg = "Server disconnected without sending a response."
            raise httpx2.RemoteProtocolError(msg, request=request)
        if route == "embeddings":
            return self._json(200, self._embeddings(body), seq)
        if route == "responses":
            return self._responses(request, body, item, seq)

        plan = self._plan(body, item if isinstance(item, Reply) else None, seq)
        if streaming:
            return self._stream(
                request,
                body,
                plan,
                cut_after=item.after if isinstance(item, Disconnect) else None,
            )
        choices = [
            {
                "index": index,
                "message": message_body(choice.content, choice.tool_calls),
                "logprobs": (
                    None
                    if choice.logprobs is None
                    else {"content": [e[0] for e in choice.logprobs], "refusal": None}
                ),
                "finish_reason": choice.finish_reason,
            }
            for index, choice in enumerate(plan.choices)
        ]
        return self._json(
            200,
            completion_body(
                id=plan.id,
                model=plan.model,
                created=plan.created,
                choices=choices,
                usage=plan.usage,
            ),
            seq,
        )

    def _take(self, model: str, route: str) -> ScriptItem | None:
        with self._lock:
            for key in (model, None):
                queue = self._scripts.get(key)
                # A Reply answers a chat completion or a response; leave it for the next one.
                if queue and (route != "embeddings" or not isinstance(queue[0], Reply)):
                    return queue.popleft()
        return None

    # -- chat -------------------------------------------------------------------------

    def _plan(self, body: dict[str, Any], scripted: Reply | None, seq: int) -> _Plan:
        model = str(body["model"])
        digest = self._digest(model, body.get("messages"))
        source = scripted
        if source is None and self._reply is not None:
            # A deep copy, so a callback that edits its argument can't rewrite the record.
            source = _coerce_reply(self._reply(copy.deepcopy(body)))

        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        stops = body.get("stop")
        stop_list = [stops] if isinstance(stops, str) else list(stops or [])
        choices: list[_Choice] = []
        for index in range(max(1, int(body.get("n") or 1))):
            explicit = source is not None and source.finish_reason is not None
            if source is not None and (source.content is not None or source.tool_calls):
                content = source.content
                calls = normalize_tool_calls(source.tool_calls) if source.tool_calls else None
                finish = "tool_calls" if calls else "stop"
            else:
                content, calls, finish = self._default_answer(body, digest, index)
            if source is not None and source.finish_reason is not None:
                finish = source.finish_reason
            if content and not explicit:
                content, finish = _apply_limits(content, finish, limit, stop_list)
            choices.append(
                _Choice(
                    content=content,
                    tool_calls=calls,
                    finish_reason=finish,
                    logprobs=self._logprobs(body, content, index),
                    tokens=_completion_tokens(content, calls),
                )
            )

        prompt = _prompt_pieces(body)
        cached = self._cached_tokens(model, prompt) if self.prompt_cache else 0
        reasoning = 0
        if model.startswith(_REASONING_PREFIXES):
            # Hidden reasoning is billed as output; vary it a little per request.
            reasoning = 64 * (1 + digest[0] % 4)
        prompt_tokens = len(prompt)
        completion_tokens = sum(c.tokens for c in choices) + reasoning
        reported = self.model_map.get(model, model)
        if source is not None:
            if source.usage is not None:
                prompt_tokens, completion_tokens = source.usage
            if source.cached_tokens is not None:
                cached = source.cached_tokens
            if source.reasoning_tokens is not None:
                reasoning = source.reasoning_tokens
            if source.model is not None:
                reported = source.model
        return _Plan(
            id=f"chatcmpl-{seq}",
            model=reported,
            created=int(time.time()),
            choices=choices,
            usage=usage_body(
                prompt_tokens,
                completion_tokens,
                cached_tokens=min(cached, prompt_tokens),
                reasoning_tokens=reasoning,
            ),
        )

    def _default_answer(
        self, body: Mapping[str, Any], digest: bytes, index: int
    ) -> tuple[str | None, list[dict[str, Any]] | None, str]:
        forced = _forced_tool(body)
        if forced is not None:
            function, named = forced
            arguments = _example_from_schema(function.get("parameters") or {})
            call_id = "call_" + hashlib.sha256(digest + bytes([index % 256])).hexdigest()[:24]
            calls = normalize_tool_calls(
                [{"id": call_id, "name": function["name"], "arguments": arguments}]
            )
            # The API reports "stop", not "tool_calls", when tool_choice names the function.
            return None, calls, "stop" if named else "tool_calls"

        text = self._default_text(body, digest, index)
        response_format = body.get("response_format")
        if not isinstance(response_format, Mapping):
            response_format = {}
        kind = response_format.get("type")
        if kind == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema") or {}
            return json.dumps(_example_from_schema(schema, text=text)), None, "stop"
        if kind == "json_object":
            return json.dumps({"answer": text}), None, "stop"
        return text, None, "stop"

    def _default_text(self, body: Mapping[str, Any], digest: bytes, index: int) -> str:
        messages = body.get("messages")
        messages = messages if isinstance(messages, list) else []
        last = messages[-1] if messages and isinstance(messages[-1], Mapping) else {}
        user = next(
            (
                _text_of(m.get("content"))
                for m in reversed(messages)
                if isinstance(m, Mapping) and m.get("role") == "user"
            ),
            "",
        )
        pick = hashlib.sha256(digest + index.to_bytes(4, "big")).digest()
        middles = sorted(range(len(_MIDDLES)), key=lambda i: pick[4 + i])[:2]
        sentences = [_OPENERS[pick[0] % len(_OPENERS)].format(topic=_topic(user))]
        if last.get("role") == "tool":
            result = " ".join(_text_of(last.get("content")).split())[:80]
            sentences = [f"Based on the tool result ({result}), here is the answer."]
        sentences += [_MIDDLES[i] for i in middles]
        sentences.append(_CLOSERS[pick[1] % len(_CLOSERS)])
        return " ".join(sentences)

    def _logprobs(
        self, body: Mapping[str, Any], content: str | None, index: int
    ) -> list[list[dict[str, Any]]] | None:
        """Per-token logprob entries (each a one-item list, as a stream chunk carries)."""
        if not body.get("logprobs"):
            return None
        top = int(body.get("top_logprobs") or 0)
        entries: list[list[dict[str, Any]]] = []
        for position, piece in enumerate(split_tokens(content or "")):
            raw = hashlib.sha256(f"{self.seed}:{index}:{position}:{piece}".encode()).digest()
            logprob = -round(raw[0] / 255 * 1.5, 6)
            alternatives = [{"token": piece, "logprob": logprob, "bytes": list(piece.encode())}]
            for rank in range(1, top):
                alt = piece.upper() if rank % 2 else piece.lower()
                alt = alt if alt != piece else f"{piece}{rank}"
                alternatives.append(
                    {
                        "token": alt,
                        "logprob": round(logprob - rank * 0.75, 6),
                        "bytes": list(alt.encode()),
                    }
                )
            entry = {
                "token": piece,
                "logprob": logprob,
                "bytes": list(piece.encode()),
                "top_logprobs": alternatives[:top],
            }
            entries.append([entry])
        return entries

    def _stream(
        self,
        request: httpx2.Request,
        body: Mapping[str, Any],
        plan: _Plan,
        *,
        cut_after: int | None,
    ) -> httpx2.Response:
        options = body.get("stream_options")
        include_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))
        per_choice = [
            choice_deltas(
                c.content,
                c.tool_calls,
                index=index,
                finish_reason=c.finish_reason,
                logprobs=c.logprobs,
            )
            for index, c in enumerate(plan.choices)
        ]
        # The API interleaves the choices of n > 1 token by token.
        entries = [
            entry
            for group in itertools.zip_longest(*per_choice)
            for entry in group
            if entry is not None
        ]
        chunks = [
            chunk_body(
                id=plan.id,
                model=plan.model,
                created=plan.created,
                choices=[entry],
                include_usage=include_usage,
            )
            for entry in entries
        ]
        if include_usage:
            chunks.append(
                chunk_body(
                    id=plan.id,
                    model=plan.model,
                    created=plan.created,
                    choices=[],
                    include_usage=True,
                    usage=plan.usage,
                )
            )
        events = [sse_event(chunk) for chunk in chunks] + [sse_event("[DONE]")]
        return httpx2.Response(
            200,
            headers={
                **self._headers(plan.id),
                "content-type": "text/event-stream; charset=utf-8",
            },
            stream=_EventStream(
                events, delay=self.chunk_delay, cut_after=cut_after, request=request
            ),
        )

    # -- the Responses API -----------------------------------------------------------------

    def _responses(
        self, request: httpx2.Request, body: dict[str, Any], item: Any, seq: int
    ) -> httpx2.Response:
        """``POST /responses``: planned like a chat completion, written in its own shape."""
        from ._responses import as_chat, response_body, response_events

        plan = self._plan(as_chat(body), item if isinstance(item, Reply) else None, seq)
        choice = plan.choices[0]
        final = response_body(
            seq=seq,
            model=plan.model,
            created=plan.created,
            text=choice.content or "",
            finish_reason=choice.finish_reason,
            usage=plan.usage,
        )
        if not body.get("stream"):
            return self._json(200, final, seq)
        pieces = [piece for piece in re.split(r"(?<= )", choice.content or "") if piece]
        events = [sse_event(e, name=e["type"]) for e in response_events(final, pieces)]
        cut_after = item.after if isinstance(item, Disconnect) else None
        return httpx2.Response(
            200,
            headers={**self._headers(final["id"]), "content-type": "text/event-stream"},
            stream=_EventStream(
                events, delay=self.chunk_delay, cut_after=cut_after, request=request
            ),
        )

    def _cached_tokens(self, model: str, prompt: list[str]) -> int:
        """Longest previously seen prefix, in the API's 1024 + 128k token steps."""
        if len(prompt) < _CACHE_MIN_TOKENS:
            return 0
        running = hashlib.sha256(f"{model}\x00".encode())
        marks: list[tuple[int, bytes]] = []
        for position, piece in enumerate(prompt, 1):
            running.update(piece.encode() + b"\x00")
            if position >= _CACHE_MIN_TOKENS and (position - _CACHE_MIN_TOKENS) % _CACHE_STEP == 0:
                marks.append((position, running.digest()))
        with self._lock:
            hit = max((n for n, mark in marks if mark in self._prefixes), default=0)
            self._prefixes.update(mark for _, mark in marks)
        return hit

    # -- embeddings and models --------------------------------------------------------

    def _embeddings(self, body: Mapping[str, Any]) -> dict[str, Any]:
        model = str(body["model"])
        raw = body["input"]
        inputs: list[str | list[int]]
        single_token_list = isinstance(raw, list) and all(isinstance(x, int) for x in raw)
        if isinstance(raw, str) or (raw and single_token_list):
            inputs = [raw]
        else:
            inputs = list(raw) if isinstance(raw, list) else [str(raw)]
        dims = int(body.get("dimensions") or _EMBEDDING_DIMS)
        as_base64 = self.base64_embeddings and body.get("encoding_format") == "base64"
        data: list[dict[str, Any]] = []
        tokens = 0
        for index, item in enumerate(inputs):
            if isinstance(item, str):
                tokens += count_tokens(item)
                text = item
            else:
                tokens += len(item)
                text = " ".join(str(t) for t in item)
            vector = self._vector(model, text, dims)
            packed = struct.pack(f"<{dims}f", *vector)
            embedding: list[float] | str = (
                base64.b64encode(packed).decode()
                if as_base64
                # Round-trip through float32 so both encodings give identical values.
                else list(struct.unpack(f"<{dims}f", packed))
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return {
            "object": "list",
            "data": data,
            "model": self.model_map.get(model, model),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _vector(self, model: str, text: str, dims: int) -> list[float]:
        """Feature-hash the words of ``text``: shared words make vectors similar."""
        vector = [0.0] * dims
        for word in re.findall(r"\w+", text.lower()) or [text]:
            raw = hashlib.sha256(f"{self.seed}:{model}:{word}".encode()).digest()
            # Each word touches four dimensions, so one collision can't cancel it out.
            for k in range(4):
                slot = int.from_bytes(raw[2 * k : 2 * k + 2], "big") % dims
                sign = 1.0 if raw[8 + k] & 1 else -1.0
                vector[slot] += sign * (1.0 + raw[12 + k] / 255)
        norm = math.sqrt(sum(x * x for x in vector))
        if norm == 0:
            vector[0], norm = 1.0, 1.0
        return [x / norm for x in vector]

    def _models_list(self) -> dict[str, Any]:
        names = sorted({*_DEFAULT_MODELS, *self.model_map.keys(), *self.model_map.values()})
        return {"object": "list", "data": [self._model_object(name) for name in names]}

    @staticmethod
    def _model_object(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "system"}

    # -- helpers ----------------------------------------------------------------------

    def _digest(self, model: str, messages: Any) -> bytes:
        encoded = json.dumps(messages, sort_keys=True, default=str)
        return hashlib.sha256(f"{self.seed}:{model}:{encoded}".encode()).digest()

    def _headers(self, ident: str | int) -> dict[str, str]:
        token = hashlib.sha256(f"{self.seed}:{ident}".encode()).hexdigest()[:32]
        return {
            "x-request-id": f"req_{token}",
            "openai-version": "2020-10-01",
            "openai-processing-ms": str(int(self.latency * 1000)),
        }

    def _json(self, status: int, body: Any, seq: int) -> httpx2.Response:
        return httpx2.Response(status, headers=self._headers(seq), json=body)

    def _error(
        self,
        seq: int,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx2.Response:
        payload = {"error": {"message": message, "type": type, "param": param, "code": code}}
        return httpx2.Response(
            status,
            headers={**self._headers(seq), **(headers or {})},
            json=payload,
        )


def _coerce_reply(value: ReplyValue) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return Reply(value)
    if not isinstance(value, Mapping):
        msg = f"reply() must return str, dict or Reply, not {type(value).__name__}"
        raise TypeError(msg)
    usage = value.get("usage")
    cached = value.get("cached_tokens")
    reasoning = value.get("reasoning_tokens")
    pair: tuple[int, int] | None = None
    if isinstance(usage, Mapping):
        pair = (int(usage["prompt_tokens"]), int(usage["completion_tokens"]))
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens", cached)
        reasoning = (usage.get("completion_tokens_details") or {}).get(
            "reasoning_tokens", reasoning
        )
    elif usage is not None:
        prompt_tokens, completion_tokens = usage
        pair = (int(prompt_tokens), int(completion_tokens))
    return Reply(
        value.get("content"),
        model=value.get("model"),
        usage=pair,
        finish_reason=value.get("finish_reason"),
        tool_calls=value.get("tool_calls"),
        cached_tokens=cached,
        reasoning_tokens=reasoning,
    )


def _apply_limits(content: str, finish: str, limit: Any, stops: list[Any]) -> tuple[str, str]:
    """Cut at the first stop sequence, then at the token limit, as the API does."""
    cuts = [content.find(s) for s in stops if isinstance(s, str) and s and s in content]
    if cuts:
        content = content[: min(cuts)]
    if isinstance(limit, int) and limit > 0:
        pieces = split_tokens(content)
        if len(pieces) > limit:
            return "".join(pieces[:limit]), "length"
    return content, finish


def _completion_tokens(content: str | None, calls: list[dict[str, Any]] | None) -> int:
    tokens = count_tokens(content or "")
    for call in calls or []:
        # A few tokens of framing per call, as with the real tokenizer.
        tokens += 3 + count_tokens(call["function"]["name"])
        tokens += count_tokens(call["function"]["arguments"])
    return tokens


def _forced_tool(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool] | None:
    """The function a request forces a call to, and whether it was named."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, Mapping) and "function" in t]
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        for tool in tools:
            if tool["function"].get("name") == name:
                return tool["function"], True
        return {"name": str(name)}, True
    if choice == "required" and tools:
        return tools[0]["function"], False
    return None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def _topic(user_text: str) -> str:
    words = user_text.split()[:8]
    topic = " ".join(words).rstrip(".?!,:;")
    if not topic:
        return "your request"
    if len(topic) > 1 and not topic[1].isupper():
        topic = topic[0].lower() + topic[1:]
    return f'"{topic}"' if len(words) > 3 else topic


def _prompt_pieces(body: Mapping[str, Any]) -> list[str]:
    """The prompt as heuristic tokens, in the order the API feeds them to the model.

    Message framing follows OpenAI's counting recipe (a few tokens per message plus three
    to prime the reply); tools and schemas come first, as they sit in the system prompt,
    so changing them breaks a cached prefix just as it does upstream.
    """
    pieces: list[str] = []
    tools = body.get("tools")
    if tools:
        pieces += split_tokens(json.dumps(tools, sort_keys=True))
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") == "json_schema":
        pieces += split_tokens(json.dumps(response_format.get("json_schema"), sort_keys=True))
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, Mapping):
            continue
        pieces += ["<|start|>", str(message.get("role", "user")), "<|message|>"]
        if message.get("name"):
            pieces += split_tokens(str(message["name"]))
        content = message.get("content")
        if isinstance(content, str):
            pieces += split_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, Mapping):
                    continue
                kind = str(part.get("type", "text"))
                if kind in _PART_TOKENS:
                    pieces += [f"<|{kind}|>"] * _PART_TOKENS[kind]
                else:
                    pieces += split_tokens(str(part.get("text") or part.get("refusal") or ""))
        if message.get("tool_calls"):
            pieces += split_tokens(json.dumps(message["tool_calls"], sort_keys=True))
        pieces.append("<|end|>")
    return [*pieces, "<|start|>", "assistant", "<|message|>"]


def _example_from_schema(schema: Mapping[str, Any], *, text: str = "example") -> Any:
    """A small instance of a JSON schema, so ``parse()`` and strict tools validate."""
    root = schema

    def build(node: Mapping[str, Any], key: str, depth: int) -> Any:
        if depth > 8:
            return None
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, Mapping) else {}
            return build(target, key, depth + 1)
        if "const" in node:
            return node["const"]
        if node.get("enum"):
            return node["enum"][0]
        for combinator in ("anyOf", "oneOf", "allOf"):
            options = [o for o in node.get(combinator) or [] if o.get("type") != "null"]
            if options:
                return build(options[0], key, depth + 1)
        kind = node.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object" or (kind is None and "properties" in node):
            properties = node.get("properties") or {}
            return {name: build(sub, name, depth + 1) for name, sub in properties.items()}
        if kind == "array":
            count = max(1, int(node.get("minItems") or 1))
            return [build(node.get("items") or {}, key, depth + 1) for _ in range(count)]
        if kind == "integer":
            return int(max(node.get("minimum", 42), min(node.get("maximum", 42), 42)))
        if kind == "number":
            return float(max(node.get("minimum", 0.5), min(node.get("maximum", 0.5), 0.5)))
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        formats = {
            "date-time": "2024-01-01T00:00:00Z",
            "date": "2024-01-01",
            "email": "user@example.com",
            "uri": "https://example.com",
        }
        if node.get("format") in formats:
            return formats[node["format"]]
        return text if key in ("answer", "content", "text") else f"example {key}"

    return build(schema, "value", 0)
