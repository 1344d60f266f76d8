"""The exact response cache's parts: stores, the key policy, scopes, and hit detection.

The strategy itself is `costwise.strategies.ResponseCache`; this module holds what it is
built from, for users who pick a store, invalidate an entry, or write their own store::

    from costwise.cache import DiskCacheStore, is_hit
    from costwise.strategies import ResponseCache

    client = CostwiseClient(strategies=[ResponseCache(DiskCacheStore("/var/cache/llm"))])
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=msgs, temperature=0)
    is_hit(resp)  # False the first time, True the second
"""

from __future__ import annotations

import weakref
from typing import Any

from ._keys import KEY_POLICY, UncacheableRequest, request_key
from ._redis import RedisCacheStore
from ._scope import client_scope, scope_of
from ._stores import CacheStore, DiskCacheStore, MemoryCacheStore, default_cache_dir

__all__ = [
    "KEY_POLICY",
    "CacheStore",
    "DiskCacheStore",
    "MemoryCacheStore",
    "RedisCacheStore",
    "UncacheableRequest",
    "client_scope",
    "default_cache_dir",
    "is_hit",
    "request_key",
    "scope_of",
]

# Responses served from a cache, by id. Pydantic models are unhashable (no WeakSet), so the
# registry maps id() to a weak reference whose callback removes the id when the object dies;
# the ``ref() is obj`` check guards against a reused id.
_HITS: dict[int, weakref.ref[Any]] = {}


def _mark_hit(response: Any) -> None:
    key = id(response)
    _HITS[key] = weakref.ref(response, lambda _ref: _HITS.pop(key, None))


def is_hit(response: object) -> bool:
    """Whether `response` was served from a costwise cache rather than from upstream.

    Use it to show "cached" in a UI or to skip work already done for that answer. It works
    on a `ChatCompletion` and on a stream object (sync or async) without changing their
    types or their JSON: the mark lives in costwise, not on the object.

    Args:
        response: what ``chat.completions.create`` returned.

    Returns:
        ``True`` for a cache hit, ``False`` for an upstream answer or anything else.

    Example:
        >>> is_hit(client.chat.completions.create(model="gpt-4o", messages=m, temperature=0))
    """
    ref = _HITS.get(id(response))
    return ref is not None and ref() is response
