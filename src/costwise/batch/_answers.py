"""A batcher's answers, kept in the client's response cache: a repeated question is not sent.

Packed requests skip the client's strategies (a response cache would key on the whole pack,
which never repeats). When the client has a `ResponseCache` and the batcher's requests are
repeatable (``temperature=0`` or a seed, as the cache requires), each answered question is
stored on its own in the cache's store, and a question asked again is answered from there
at $0, before it is queued.

The key is the request the question would be on its own (model, system prompt, question,
the batcher's other arguments), in a scope of its own inside the client's cache scope: an
answer produced inside a pack never answers a plain ``create`` of the same question, and
tenants stay apart exactly as in the response cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._exceptions import CostwiseWarning

if TYPE_CHECKING:
    from ..strategies import ResponseCache

__all__ = ["AnswerCache"]

logger = logging.getLogger("costwise")


class AnswerCache:
    """Single-question answers of a batcher in the store of the client's `ResponseCache`."""

    __slots__ = ("cache", "scope")

    def __init__(self, cache: ResponseCache, scope: str) -> None:
        self.cache = cache
        self.scope = scope

    @classmethod
    def of(cls, client: Any, create_kwargs: Mapping[str, Any]) -> AnswerCache | None:
        """The answer cache of a batcher on `client`, or ``None`` when it has none.

        ``None`` when the client has no `ResponseCache`, or when the batcher's requests are
        not repeatable (sampled answers are never reused, as in the response cache).
        """
        from .._call import credential_scope
        from ..cache._serving import repeatable
        from ..strategies import ResponseCache

        cache = next((s for s in client._costwise.pipeline if isinstance(s, ResponseCache)), None)
        if cache is None or not repeatable(create_kwargs, always=cache.always):
            return None
        base = cache.scope if cache.scope is not None else credential_scope(client)
        if base is None:  # nothing keeps this client's tenants apart (see ResponseCache)
            return None
        digest = hashlib.blake2b(digest_size=16, person=b"costwise-batch")
        digest.update(base.encode())
        return cls(cache, digest.hexdigest())

    @property
    def blocking(self) -> bool:
        """Whether the store waits on the network (the async batcher then uses a thread)."""
        return self.cache.blocking

    def key(self, request: Mapping[str, Any]) -> str | None:
        """The key of a single-question request, or ``None`` if it cannot be keyed."""
        from ..cache._keys import UncacheableRequest, request_key

        try:
            return request_key(request, self.scope)
        except UncacheableRequest as exc:
            logger.debug("batcher answer cache bypass: %s", exc)
            return None

    def get(self, key: str) -> str | None:
        """The stored answer, or ``None`` (a miss; a corrupt entry warns and is dropped)."""
        from ..cache._serving import read_entry

        return read_entry(self.cache.store, key, _answer, "batcher answer cache")

    def put(self, key: str, answer: str) -> None:
        """Store an answer (empty answers are never stored)."""
        if not answer.strip():
            return
        try:
            self.cache.store.set(key, json.dumps({"answer": answer}).encode(), ttl=self.cache.ttl)
        except Exception as exc:
            _warn(f"batcher answer cache write failed ({type(exc).__name__}: {exc})")


def _answer(raw: bytes) -> str:
    answer = json.loads(raw)["answer"]
    if not isinstance(answer, str):
        raise TypeError(type(answer).__name__)
    return answer


def _warn(message: str) -> None:
    warnings.warn(message, CostwiseWarning, stacklevel=3)
