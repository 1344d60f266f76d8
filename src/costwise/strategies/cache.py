"""`ResponseCache`: answer repeated requests from a cache, at zero cost."""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from openai.types.chat import ChatCompletion, ParsedChatCompletion
from typing_extensions import override

from .._exceptions import CostwiseWarning
from .._pipeline import Blocking, Express
from ..cache._hits import mark_hit
from ..cache._keys import UncacheableRequest, request_key
from ..cache._parsed import parse_key_kwargs
from ..cache._scope import scope_of
from ..cache._serving import (
    cacheable,
    fits,
    read_entry,
    repeatable,
    reusable,
    serve,
    when_complete,
)
from ..cache._stores import CacheStore, DiskCacheStore

if TYPE_CHECKING:
    from .._call import Call
    from .._meter import Meter
    from ..typing import Flow

__all__ = ["ResponseCache"]

logger = logging.getLogger("costwise")

# What a parsed completion adds to the API's JSON (rebuilt on every hit instead).
_PARSED: Any = {"choices": {"__all__": {"message": {"parsed"}}}}


# An entry recorded from a stream sent without ``include_usage`` has no usage, though the
# same request sent plain is always answered with one: stored with this mark (the JSON
# stays one object), it is served only to streams that ask no usage (see `fits`).
_WITHOUT_USAGE_MARK = b'{"x_costwise_streamed_without_usage":true,'


def _decode(raw: bytes) -> tuple[ChatCompletion, bool]:
    """A stored entry: the completion, and whether it came from a stream without usage."""
    if raw.startswith(_WITHOUT_USAGE_MARK):
        body = b"{" + raw[len(_WITHOUT_USAGE_MARK) :]
        return ChatCompletion.model_validate_json(body), True
    return ChatCompletion.model_validate_json(raw), False


def _warn(message: str) -> None:
    warnings.warn(message, CostwiseWarning, stacklevel=2)


class ResponseCache:
    """Answer a request that was already answered, from a cache, without calling upstream.

    Use it first in the pipeline for any traffic that repeats: classification, extraction,
    FAQ bots, evaluation reruns, retries of whole jobs. A hit costs nothing and takes
    microseconds; the ledger records it as a zero-cost ``hit`` whose saving is what the
    original call cost, and `costwise.cache.is_hit` tells a hit from a miss.

    Only requests that can be repeated are cached: ``temperature=0``, or a ``seed``, or
    an opt-in (``cache=True`` per call, ``always=True`` per client). Answers that should
    not be reused are never stored: errors, empty answers, ``content_filter`` and (unless
    `store_truncated`) ``finish_reason="length"``. Streams work both ways: a streamed
    miss is stored once it completes normally, and a hit on a streamed request replays a
    real stream; streamed and plain requests share entries.

    Per-call options: ``cache=False`` bypasses the cache, ``cache=True`` opts a request in,
    ``cache_ttl=`` sets this entry's lifetime in seconds, ``cache_refresh=True`` calls
    upstream and overwrites the entry, ``cache_scope=`` isolates a tenant.

    Args:
        store: a `costwise.cache.CacheStore`, a directory path (a `DiskCacheStore`), or a
            ``redis://`` URL (a `RedisCacheStore`). Default: a `DiskCacheStore` in
            `costwise.cache.default_cache_dir()`, opened on first use.
        ttl: default lifetime of an entry in seconds (``None``: the store's default).
        scope: the client's scope; replaces the default (a hash of the API key and base
            URL), e.g. to share entries between keys on purpose.
        always: cache every request, even sampled ones (``temperature`` > 0 and no seed).
        store_truncated: also store answers cut by ``max_tokens`` (``finish_reason="length"``).

    Example:
        >>> client = CostwiseClient(strategies=[ResponseCache(MemoryCacheStore())])
        >>> client.chat.completions.create(model="gpt-4o-mini", messages=m, temperature=0)
    """

    name = "cache"
    streams = True
    options = frozenset({"cache", "cache_ttl", "cache_refresh", "cache_scope"})

    def __init__(
        self,
        store: CacheStore | str | os.PathLike[str] | None = None,
        *,
        ttl: float | None = None,
        scope: str | None = None,
        always: bool = False,
        store_truncated: bool = False,
    ) -> None:
        if isinstance(store, str) and store.startswith(("redis://", "rediss://", "unix://")):
            from ..cache._redis import RedisCacheStore

            store = RedisCacheStore(store)
        elif isinstance(store, str | os.PathLike):
            store = DiskCacheStore(store)
        elif store is not None and not isinstance(store, CacheStore):
            msg = f"ResponseCache: store must be a CacheStore, a path or a redis URL, not {store!r}"
            raise TypeError(msg)
        if ttl is not None and ttl <= 0:
            msg = "ResponseCache: ttl must be positive"
            raise ValueError(msg)
        self._store = store
        self._lock = threading.Lock()
        self.ttl = ttl
        self.scope = scope
        self.always = always
        self.store_truncated = store_truncated
        self._warned_unscoped = False
        self._meter: Meter | None = None

    def bind(self, meter: Meter) -> None:
        """Keep the client's meter: its tokenizer estimates usage a stored stream lacked."""
        self._meter = meter

    @property
    def store(self) -> CacheStore:
        """The store (the default disk cache is opened on first use)."""
        store = self._store
        if store is None:
            with self._lock:
                if self._store is None:
                    self._store = DiskCacheStore()
                store = self._store
        return store

    @property
    def blocking(self) -> bool:
        """Whether the store waits on the network (Redis): the async client then calls it
        from a worker thread (see `costwise.Blocking`), so the event loop keeps running."""
        return bool(getattr(self.store, "blocking", False))

    @property
    def _writes_block(self) -> bool:
        # A store that queues its writes (RedisCacheStore's default) returns from `set` at
        # once: no worker thread for it.
        return bool(getattr(self.store, "blocking_writes", self.blocking))

    @override
    def __repr__(self) -> str:
        return f"ResponseCache({self._store!r})"

    # -- the express lane -------------------------------------------------------------------

    def express(self, kwargs: Mapping[str, Any], scope: str) -> Express | None:
        """Look up a plain ``create`` before the client builds a `Call` (see `costwise.Express`).

        The client uses it when this cache is first in the pipeline and the call has no
        costwise option but ``feature``: a hit is then answered in a fraction of a pipeline
        pass; a miss hands its key to `flow`, which does not look it up again.
        """
        if not repeatable(kwargs, always=self.always):
            return None
        scope = scope if self.scope is None else self.scope
        if not scope:
            return None  # no scope to keep tenants apart: the pipeline bypasses it, warned
        try:
            key = request_key(kwargs, scope)
        except UncacheableRequest as exc:
            logger.debug("cache bypass: %s", exc)
            return None
        found = self._lookup(key)
        if found is None or found[1]:  # streamed without usage: a plain call gets it upstream
            return Express(key)
        hit = found[0]
        messages = kwargs.get("messages", ())
        model = str(kwargs.get("model", ""))
        completion = self._priced(messages, model, hit)
        mark_hit(hit)
        return Express(key, hit, completion)

    # -- the flow -------------------------------------------------------------------------

    def flow(self, call: Call) -> Flow:
        # A call the express lane missed carries its key: neither keyed nor looked up again.
        looked_up = call.trace.looked_up
        key = looked_up or self._key(call)
        if key is None:
            logger.debug("cache: bypass (not cacheable) for %s", call.feature)
            return (yield call)
        # A store that waits on the network (Redis) is called through Blocking: in place by
        # the sync client, from a worker thread by the async one (the loop keeps running).
        blocking = self.blocking
        if looked_up is None and not call.options.get("cache_refresh"):
            found = (yield Blocking(self._lookup, key)) if blocking else self._lookup(key)
            served = None if found is None else self._serve(call, key, *found)
            if served is not None:
                logger.debug("cache: hit %s for %s", key[:12], call.feature)
                return served
            logger.debug("cache: miss %s for %s", key[:12], call.feature)
        elif looked_up is None:
            logger.debug("cache: refresh %s for %s", key[:12], call.feature)
        response = yield call
        if call.trace.hit is None:  # an inner strategy (semantic cache) answered: not exact
            if self._writes_block and isinstance(response, ChatCompletion):
                yield Blocking(self._keep, call, key, response)
            else:  # a stream is stored when it ends, from its done callback
                self._keep(call, key, response)
        return response

    def _key(self, call: Call) -> str | None:
        """The entry's key, or ``None`` when this call must bypass the cache."""
        if not cacheable(call, always=self.always):
            return None
        kwargs = call.kwargs if call.method == "create" else parse_key_kwargs(call.kwargs)
        scope = scope_of(call, client=self.scope)
        if scope is None:
            if not self._warned_unscoped:
                self._warned_unscoped = True
                _warn(
                    "response cache bypassed: the client's API key is not a fixed string (a "
                    "callable, workload identity or a provider), so nothing keeps its tenants "
                    "apart; set ResponseCache(scope=...) or pass cache_scope= to cache"
                )
            return None
        try:
            return request_key(kwargs, scope)
        except UncacheableRequest as exc:
            logger.debug("cache bypass: %s", exc)
            return None

    def _lookup(self, key: str) -> tuple[ChatCompletion, bool] | None:
        return read_entry(self.store, key, _decode, "response cache")

    def _serve(
        self, call: Call, key: str, completion: ChatCompletion, without_usage: bool = False
    ) -> Any:
        """The hit as the caller asked for it, or ``None`` if the entry cannot give it."""
        if not fits(call, completion, has_usage=not without_usage):
            return None
        try:
            response = serve(call, completion)
        except ValueError as exc:  # a parse hit whose JSON no longer fits the caller's class
            _warn(f"response cache entry {key} does not fit the request ({exc}); calling upstream")
            return None
        call.trace.answered(self.name, self._priced(call.messages, call.model, completion))
        return response

    def _priced(self, messages: Any, model: str, completion: ChatCompletion) -> ChatCompletion:
        """`completion`, with estimated usage for the ledger if it has none.

        An entry recorded from a stream without ``include_usage`` carries no usage; its hits
        would show no saving. The caller still gets the entry as stored.
        """
        if completion.usage is not None or self._meter is None:
            return completion
        from openai.types import CompletionUsage

        tokenizer = self._meter.tokenizer
        prompt = tokenizer.count_messages(messages, model)
        text = "".join(c.message.content or "" for c in completion.choices)
        output = tokenizer.count(text, model)
        usage = CompletionUsage(
            prompt_tokens=prompt, completion_tokens=output, total_tokens=prompt + output
        )
        return completion.model_copy(update={"usage": usage})

    # -- storing --------------------------------------------------------------------------

    def _keep(self, call: Call, key: str, response: Any) -> None:
        ttl = call.options.get("cache_ttl", self.ttl) if call.options else self.ttl
        if ttl is not None and ttl <= 0:
            return
        streamed = not isinstance(response, ChatCompletion)
        when_complete(
            response,
            lambda completion: self._write(key, completion, ttl, streamed=streamed),
            blocking=self._writes_block,
        )

    def _write(
        self, key: str, completion: ChatCompletion, ttl: float | None, *, streamed: bool = False
    ) -> None:
        if not reusable(completion, allow_truncated=self.store_truncated):
            logger.debug("cache: answer not stored (not reusable)")
            return
        if isinstance(completion, ParsedChatCompletion):  # stored as the API sent it
            # warnings=False: the SDK types `parsed` with an unbound TypeVar, so pydantic
            # warns about the (excluded) field
            value = completion.model_dump_json(exclude=_PARSED, warnings=False).encode()
        else:
            value = completion.model_dump_json().encode()
        if streamed and completion.usage is None:
            value = _WITHOUT_USAGE_MARK + value[1:]  # served only to streams that ask none
        try:
            self.store.set(key, value, ttl=ttl)
        except Exception as exc:
            _warn(f"response cache write failed ({type(exc).__name__}: {exc})")
