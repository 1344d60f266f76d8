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

from ._hits import is_hit, mark_hit
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
    "mark_hit",
    "request_key",
    "scope_of",
]
