"""Cache scopes: which requests may answer which.

A request is only ever answered from entries of its own scope. The default scope is the
client's: a hash of its API key and base URL (the key is never stored in clear), so two
tenants with their own keys, or one key at two providers, never share answers. A client can
choose a scope (``ResponseCache(scope="team-a")``), e.g. to share a cache between keys
deliberately, and a call can narrow it further (``cache_scope="tenant-42"``).
"""

from __future__ import annotations

import hashlib

from .._call import Call, auth_headers, client_scope

__all__ = ["client_scope", "scope_of"]


def scope_of(call: Call, *, client: str | None = None) -> str | None:
    """The scope a call's cache entries live in, or ``None`` when it has none.

    Args:
        call: the call (its ``cache_scope`` option, its ``extra_headers`` and the client
            scope on its trace).
        client: the scope set on the `ResponseCache` (replaces the API-key scope).

    Returns:
        A short string; a per-call ``cache_scope`` is nested inside the client's scope, so
        tenant names chosen by two different API keys still never collide, and so are the
        identity headers a call sends itself (``Authorization``, organization, project).
        ``None`` for a client whose credential is not a fixed key (a callable ``api_key``,
        workload identity, a provider) with no scope set and no ``cache_scope``: its
        requests must not be cached, as nothing tells its tenants apart.
    """
    base: str | None = client
    if base is None:
        base = call.trace.client_scope or None
        headers = auth_headers(call.kwargs.get("extra_headers"))
        if headers:
            base = _nest(base or "costwise:no-client-scope", repr(headers), b"costwise-auth")
    sub = call.options.get("cache_scope")
    if sub is None:
        return base
    return _nest(base or "costwise:call-scoped", str(sub), b"costwise-tenant")


def _nest(base: str, part: str, person: bytes) -> str:
    digest = hashlib.blake2b(digest_size=16, person=person)
    digest.update(base.encode())
    digest.update(b"\0")
    digest.update(part.encode())
    return digest.hexdigest()
