"""Cache scopes: which requests may answer which.

A request is only ever answered from entries of its own scope. The default scope is the
client's: a hash of its API key and base URL (the key is never stored in clear), so two
tenants with their own keys, or one key at two providers, never share answers. A client can
choose a scope (``ResponseCache(scope="team-a")``), e.g. to share a cache between keys
deliberately, and a call can narrow it further (``cache_scope="tenant-42"``).
"""

from __future__ import annotations

import hashlib

from .._call import Call, client_scope

__all__ = ["client_scope", "scope_of"]


def scope_of(call: Call, *, client: str | None = None) -> str:
    """The scope a call's cache entries live in.

    Args:
        call: the call (its ``cache_scope`` option and the client scope on its trace).
        client: the scope set on the `ResponseCache` (replaces the API-key scope).

    Returns:
        A short string; a per-call ``cache_scope`` is nested inside the client's scope, so
        tenant names chosen by two different API keys still never collide.
    """
    base = client if client is not None else (call.trace.client_scope or call.trace.url)
    sub = call.options.get("cache_scope")
    if sub is None:
        return base
    digest = hashlib.blake2b(digest_size=16, person=b"costwise-tenant")
    digest.update(base.encode())
    digest.update(b"\0")
    digest.update(str(sub).encode())
    return digest.hexdigest()
