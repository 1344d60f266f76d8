"""`SemanticCache`: answer a reworded question from the cache, with a bounded false-hit rate."""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from openai.types.chat import ChatCompletion
from typing_extensions import override

from .._exceptions import CostwiseWarning
from .._pipeline import Blocking
from ..cache._keys import UncacheableRequest, request_key
from ..cache._scope import scope_of
from ..cache._serving import cacheable, reusable, serve, when_complete
from ..cache._stores import CacheStore, MemoryCacheStore

if TYPE_CHECKING:
    from .._call import Call
    from ..semantic._calibrate import SemanticSettings
    from ..semantic._embedders import Embedder, OpenAIEmbedder
    from ..semantic._index import SemanticIndex
    from ..typing import Flow

__all__ = ["SemanticCache"]

logger = logging.getLogger("costwise")

_PLACEHOLDER = "\x00costwise-semantic-question\x00"

# Served responses -> the entry that answered them, so a caller can invalidate a wrong one.
_SERVED: dict[int, tuple[weakref.ref[Any], str]] = {}


def _warn(message: str) -> None:
    warnings.warn(message, CostwiseWarning, stacklevel=3)


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only pure text is comparable
        texts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text":
                return None
            texts.append(str(part.get("text", "")))
        return "\n".join(texts)
    return None


class SemanticCache:
    """Answer a question that was already answered in other words, from a cache.

    Use it after `ResponseCache` for traffic where people ask the same thing differently:
    support and FAQ bots, search boxes, internal help desks. Only the **last user message**
    is compared by meaning; everything else in the request (model, system prompt, earlier
    turns, tools, ``response_format``, sampling and length parameters) must match exactly,
    and entries never cross scopes (API key and base URL by default, narrowed per call with
    ``cache_scope=``), exactly as in the exact cache.

    A hit needs more than a close vector: the candidate must pass the verifier of `settings`
    (numbers, names, negation, question word and wording checks combined with the cosine
    by a calibrated model). The shipped default is calibrated for at most 2% false hits
    with the local MiniLM embedder; see `costwise.semantic.calibrate` to fit your own.
    Every hit is in the ledger as a ``hit`` by ``semantic_cache`` with its ``similarity``,
    ``score`` and ``semantic_entry`` (pass it to :meth:`invalidate` to drop a wrong entry).

    Like the exact cache it only stores repeatable requests (``temperature=0`` or a
    ``seed``) unless ``cache=True`` per call or ``always=True``; answers cut short, empty,
    or filtered are never stored. Streams are stored when complete and replayed as streams.

    Per-call options: ``semantic=False`` skips it, ``cache=False`` skips both caches,
    ``cache_refresh=True`` calls upstream and stores the new answer, ``cache_ttl=`` and
    ``cache_scope=`` as in `ResponseCache`.

    Args:
        store: where questions and answers live: a `costwise.cache.CacheStore` (share the
            exact cache's), a directory path, or a ``redis://`` URL. Default: in memory.
        embedder: a `costwise.semantic.Embedder` or `OpenAIEmbedder` (default: the local
            `LocalMiniLM`, loaded on first use).
        settings: thresholds and verifier (default: `costwise.semantic.default_settings()`).
        index: the vector index (default: an in-memory `SemanticIndex`; pass one with a
            `path`, or a `RedisSemanticIndex`, to persist or share it).
        ttl: lifetime of an entry in seconds.
        scope: the client's scope; replaces the default (a hash of the API key and base URL).
        always: store sampled requests too.
        candidates: how many nearest neighbours the verifier examines.
        max_question_chars: longer questions bypass the semantic cache. The local embedder
            reads only its first 128 tokens, so two long prompts that differ near the end
            (a classification instruction followed by different tickets) would embed alike;
            and the default settings were calibrated on short questions.

    Example:
        >>> client = CostwiseClient(strategies=[ResponseCache(), SemanticCache()])
    """

    name = "semantic_cache"
    streams = True
    options = frozenset({"semantic", "cache", "cache_ttl", "cache_refresh", "cache_scope"})

    def __init__(
        self,
        store: CacheStore | str | os.PathLike[str] | None = None,
        *,
        embedder: Embedder | OpenAIEmbedder | None = None,
        settings: SemanticSettings | None = None,
        index: SemanticIndex | None = None,
        ttl: float | None = None,
        scope: str | None = None,
        always: bool = False,
        candidates: int = 4,
        max_question_chars: int = 400,
    ) -> None:
        if isinstance(store, str) and store.startswith(("redis://", "rediss://", "unix://")):
            from ..cache._redis import RedisCacheStore

            store = RedisCacheStore(store, prefix="costwise:semantic:entry:")
        elif isinstance(store, str | os.PathLike):
            from ..cache._stores import DiskCacheStore

            store = DiskCacheStore(store)
        elif store is None:
            store = MemoryCacheStore(max_entries=100_000)
        elif not isinstance(store, CacheStore):
            msg = f"SemanticCache: store must be a CacheStore, a path or a redis URL, not {store!r}"
            raise TypeError(msg)
        if ttl is not None and ttl <= 0:
            msg = "SemanticCache: ttl must be positive"
            raise ValueError(msg)
        if candidates < 1:
            msg = "SemanticCache: candidates must be at least 1"
            raise ValueError(msg)
        if embedder is None:
            from ..semantic._embedders import LocalMiniLM

            embedder = LocalMiniLM()
        if settings is None:
            from ..semantic._calibrate import default_settings

            settings = default_settings()
        if settings.embedder != embedder.name:
            _warn(
                f"SemanticCache: settings were calibrated for {settings.embedder!r}, not "
                f"{embedder.name!r}; run costwise.semantic.calibrate() with this embedder"
            )
        if index is None:
            from ..semantic._index import SemanticIndex

            index = SemanticIndex(embedder.dim)
        self.store: CacheStore = store
        self.embedder = embedder
        self.settings = settings
        self.index = index
        self.ttl = ttl
        self.scope = scope
        self.always = always
        self.candidates = candidates
        self.max_question_chars = max_question_chars
        self._lock = threading.Lock()

    @override
    def __repr__(self) -> str:
        return f"SemanticCache(embedder={self.embedder.name!r}, store={self.store!r})"

    # -- the flow -------------------------------------------------------------------------

    def flow(self, call: Call) -> Flow:
        where = self._partition(call)
        if where is None:
            return (yield call)
        partition, question = where
        try:
            vector = yield from self._embed(call, question)
        except Exception as exc:  # an embedding failure is a miss, never a failed call
            _warn(f"semantic cache: embedding failed ({type(exc).__name__}: {exc}); miss")
            return (yield call)
        if not call.options.get("cache_refresh"):
            if getattr(self.store, "blocking", False):  # a Redis store: off the event loop
                hit = yield Blocking(self._lookup, partition, question, vector)
            else:
                hit = self._lookup(partition, question, vector)
            if hit is not None:
                completion, entry, cosine, score = hit
                call.trace.answered(
                    self.name,
                    completion,
                    similarity=round(cosine, 4),
                    score=round(score, 4),
                    semantic_entry=entry,
                )
                logger.debug("semantic cache hit: cos=%.3f score=%.3f", cosine, score)
                return self._serve(call, completion, entry)
        response = yield call
        if call.trace.hit is None:
            if getattr(self.store, "blocking", False) and isinstance(response, ChatCompletion):
                yield Blocking(self._keep, call, partition, question, vector, response)
            else:  # a stream is stored when it ends, from its done callback
                self._keep(call, partition, question, vector, response)
        return response

    def _partition(self, call: Call) -> tuple[str, str] | None:
        """(partition, question) of a call, or ``None`` when it must bypass this cache."""
        options, kwargs = call.options, call.kwargs
        if options.get("semantic") is False or not cacheable(call, always=self.always):
            return None
        messages = call.messages
        if not messages or not isinstance(messages[-1], Mapping):
            return None
        last = messages[-1]
        if last.get("role") != "user":
            return None
        question = _text(last.get("content"))
        if question is None or not question.strip():
            return None
        if len(question) > self.max_question_chars:
            logger.debug("semantic cache bypass: question of %d chars", len(question))
            return None
        # The rest of the request, with the question blanked out, keys the partition: every
        # other field must match exactly for two questions to be compared at all.
        context = dict(kwargs)
        context["messages"] = [*messages[:-1], {**last, "content": _PLACEHOLDER}]
        context["\x00embedder"] = self.embedder.name
        scope = scope_of(call, client=self.scope)
        if scope is None:  # nothing keeps this client's tenants apart (see ResponseCache)
            logger.debug("semantic cache bypass: no cache scope for this client")
            return None
        try:
            return request_key(context, scope), question
        except UncacheableRequest as exc:
            logger.debug("semantic cache bypass: %s", exc)
            return None

    def _embed(self, call: Call, question: str) -> Flow:
        flow = getattr(self.embedder, "flow", None)
        if flow is not None:
            vectors = yield from flow(call, [question])
        elif getattr(self.embedder, "blocking", False):
            # milliseconds of model inference that release the GIL: under the async client
            # they run in a worker thread while the loop serves other requests
            vectors = yield Blocking(self.embedder.embed, [question])
        else:
            vectors = self.embedder.embed([question])
        return vectors[0]

    def _lookup(
        self, partition: str, question: str, vector: Any
    ) -> tuple[ChatCompletion, str, float, float] | None:
        settings = self.settings
        best: tuple[ChatCompletion, str, float, float] | None = None
        try:
            neighbours = self.index.search(partition, vector, self.candidates)
        except Exception as exc:
            _warn(f"semantic cache: index search failed ({type(exc).__name__}: {exc}); miss")
            return None
        for key, cosine in neighbours:
            if cosine < settings.min_cosine:
                break  # best first: the rest are further away
            entry = self._entry_key(partition, key)
            try:
                raw = self.store.get(entry)
            except Exception as exc:
                _warn(f"semantic cache read failed ({type(exc).__name__}: {exc}); miss")
                return None
            if raw is None:  # expired or evicted from the store: drop the stale vector
                self.index.remove(partition, key)
                continue
            try:
                data = json.loads(raw)
                cached_question = str(data["q"])
            except (ValueError, KeyError, TypeError):
                self.index.remove(partition, key)
                continue
            score = settings.score(question, cached_question, cosine)
            if score >= settings.threshold and (best is None or score > best[3]):
                try:
                    completion = ChatCompletion.model_validate(data["c"])
                except ValueError:
                    continue
                best = (completion, f"{partition}:{key:x}", cosine, score)
        return best

    @staticmethod
    def _entry_key(partition: str, key: int) -> str:
        return f"semantic:{partition}:{key:x}"

    def _serve(self, call: Call, completion: ChatCompletion, entry: str) -> Any:
        response = serve(call, completion)
        ident = id(response)
        _SERVED[ident] = (weakref.ref(response, lambda _r: _SERVED.pop(ident, None)), entry)
        return response

    # -- storing --------------------------------------------------------------------------

    def _keep(self, call: Call, partition: str, question: str, vector: Any, response: Any) -> None:
        ttl = call.options.get("cache_ttl", self.ttl)
        if ttl is not None and ttl <= 0:
            return
        when_complete(
            response,
            lambda c: self._write(partition, question, vector, c, ttl),
            blocking=getattr(self.store, "blocking", False),
        )

    def _write(
        self,
        partition: str,
        question: str,
        vector: Any,
        completion: ChatCompletion,
        ttl: float | None,
    ) -> None:
        if not reusable(completion):
            return
        from ..semantic._index import new_key

        key = new_key()
        value = json.dumps({"q": question, "c": completion.model_dump(mode="json")})
        try:
            self.store.set(self._entry_key(partition, key), value.encode(), ttl=ttl)
            flush = getattr(self.store, "flush", None)
            if callable(flush):
                # A write-behind store (DiskCacheStore) first: a shared index must never point
                # another process at an entry that is not on disk yet (it would drop it as
                # expired). Next to the embedding this call already paid, the write is small.
                flush()
            self.index.add(partition, key, vector)
        except Exception as exc:
            _warn(f"semantic cache write failed ({type(exc).__name__}: {exc})")

    # -- reversibility --------------------------------------------------------------------

    @staticmethod
    def entry_of(response: object) -> str | None:
        """The cache entry that answered `response`, or ``None`` if it was not a semantic hit.

        Use it to invalidate an answer a user flagged as wrong (also in the ledger detail as
        ``semantic_entry``).
        """
        item = _SERVED.get(id(response))
        if item is None or item[0]() is not response:
            return None
        return item[1]

    def invalidate(self, entry: str) -> bool:
        """Remove one entry (an id from :meth:`entry_of` or the ledger's ``semantic_entry``).

        Returns:
            Whether the entry was in the index.

        Example:
            >>> cache.invalidate(SemanticCache.entry_of(resp))
        """
        partition, _, key_hex = entry.rpartition(":")
        try:
            key = int(key_hex, 16)
        except ValueError:
            msg = f"not a semantic cache entry id: {entry!r}"
            raise ValueError(msg) from None
        found = self.index.remove(partition, key)
        try:
            self.store.delete(self._entry_key(partition, key))
        except Exception as exc:
            _warn(f"semantic cache delete failed ({type(exc).__name__}: {exc})")
        return found

    def clear(self) -> None:
        """Forget every entry of the index (the store's entries expire or are evicted)."""
        self.index.clear()

    def close(self) -> None:
        """Close the store and the index (connections, file handles)."""
        self.store.close()
        self.index.close()
