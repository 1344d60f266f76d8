"""Telling a cache hit from an upstream answer without changing the response object."""

from __future__ import annotations

import weakref
from typing import Any

__all__ = ["is_hit", "mark_hit"]

# Responses served from a cache, by id. Pydantic models are unhashable (no WeakSet), so the
# registry maps id() to a weak reference whose callback removes the id when the object dies;
# the ``ref() is obj`` check guards against a reused id.
_HITS: dict[int, weakref.ref[Any]] = {}


def mark_hit(response: Any) -> None:
    """Mark `response` as served from a cache (for strategies that answer without upstream)."""
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
