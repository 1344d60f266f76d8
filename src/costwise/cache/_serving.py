"""What the exact and the semantic cache share: which answers may be reused, how a hit is
served (a completion, or a replayed stream of the same shape), and storing an answer once it
is complete (at once, or when a stream ends normally)."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from openai.types.chat import ChatCompletion

from .._exceptions import CostwiseWarning
from .._streaming import (
    AsyncCostwiseStream,
    CostwiseStream,
    asks_usage,
    assemble,
    replay_chunks,
    synthetic_response,
)
from ._hits import mark_hit
from ._parsed import as_parsed, parse_cacheable

if TYPE_CHECKING:
    from .._call import Call

__all__ = [
    "cacheable",
    "finished",
    "fits",
    "read_entry",
    "repeatable",
    "reusable",
    "serve",
    "when_complete",
]

_REUSABLE = frozenset({"stop", "tool_calls", "function_call"})
T = TypeVar("T")
logger = logging.getLogger("costwise")


def read_entry(store: Any, key: str, decode: Callable[[bytes], T], what: str) -> T | None:
    """The entry under `key`, decoded, or ``None``: a miss, a failed read (warned), or a
    corrupt entry (warned and dropped, so the next answer replaces it).

    `decode` raises ``ValueError``, ``KeyError`` or ``TypeError`` for a corrupt entry.
    """
    try:
        raw = store.get(key)
    except Exception as exc:
        _warn(f"{what} read failed ({type(exc).__name__}: {exc}); calling upstream")
        return None
    if raw is None:
        return None
    try:
        return decode(raw)
    except (ValueError, KeyError, TypeError) as exc:  # pydantic's ValidationError: ValueError
        _warn(f"corrupt {what} entry {key} dropped ({type(exc).__name__})")
        try:
            store.delete(key)
        except Exception as exc2:
            logger.debug("cache delete failed: %r", exc2)
        return None


def _warn(message: str) -> None:
    warnings.warn(message, CostwiseWarning, stacklevel=4)


def cacheable(call: Call, *, always: bool = False) -> bool:
    """Whether a request may be answered from (and stored in) a cache at all.

    Only ``create`` and ``parse`` requests (``parse`` without tools and with a pydantic
    ``response_format``, see `costwise.cache._parsed`). ``cache=False`` bypasses;
    ``cache=True`` opts in. Otherwise only repeatable requests qualify: ``temperature=0``
    or an integer ``seed`` (or ``always`` for the whole client), and never a request
    grounded in a live web search, whose answer changes with the web.
    """
    opt_in = call.options.get("cache") if call.options else None
    if opt_in is False or call.method not in ("create", "parse"):
        return False
    if call.method == "parse" and not parse_cacheable(call.kwargs):
        return False
    if opt_in:
        return True
    return repeatable(call.kwargs, always=always)


def repeatable(kwargs: Mapping[str, Any], *, always: bool = False) -> bool:
    """Whether a request with no cache option may be cached: ``temperature=0`` or an integer
    ``seed`` (or `always`), and not grounded in a live web search."""
    if kwargs.get("web_search_options") is not None:
        return False
    if always:
        return True
    temperature, seed = kwargs.get("temperature"), kwargs.get("seed")
    deterministic = temperature == 0 and isinstance(temperature, int | float)
    return deterministic or (isinstance(seed, int) and not isinstance(seed, bool))


def reusable(completion: ChatCompletion, *, allow_truncated: bool = False) -> bool:
    """Whether an answer may be served again: every choice finished normally and says something.

    Errors never get here; truncated answers (``finish_reason="length"``) only when allowed;
    content-filtered and empty answers never.
    """
    if not completion.choices:
        return False
    for choice in completion.choices:
        reason = choice.finish_reason
        if reason not in _REUSABLE and not (reason == "length" and allow_truncated):
            return False
        msg = choice.message
        if not (msg.content or msg.tool_calls or msg.function_call or msg.audio):
            return False
    return True


def fits(call: Call, completion: ChatCompletion, *, has_usage: bool = True) -> bool:
    """Whether a stored answer can be served in the shape this call expects from upstream.

    Not an entry recorded from a stream without ``include_usage`` (`has_usage` false) to a
    plain call or a stream asking for usage: upstream always sends usage there, and code
    reads it. Not to a stream asking for ``logprobs``: a replay carries none. Such a call
    is a miss; its answer then replaces the entry.
    """
    if not has_usage and (not call.stream or asks_usage(call.kwargs)):
        return False
    return not (call.stream and call.kwargs.get("logprobs"))


def serve(call: Call, completion: ChatCompletion) -> Any:
    """The hit as the caller asked for it: the completion, a real stream replaying it, or
    for ``parse`` the parsed completion.

    Raises:
        ValueError: a ``parse`` hit whose content does not fit the caller's class.
    """
    if call.method == "parse":
        response: Any = as_parsed(completion, call.kwargs.get("response_format"))
    elif not call.stream:
        response = completion
    else:
        chunks = replay_chunks(completion, include_usage=asks_usage(call.kwargs))
        cls = AsyncCostwiseStream if call.is_async else CostwiseStream
        response = cls.replay(chunks, response=synthetic_response(call.trace.url))
    mark_hit(response)
    return response


def finished(chunks: list[Any]) -> bool:
    """Whether every choice of a stream got its ``finish_reason``: a stream that just stops
    (a proxy cut, a crashed server) ends without error but with a partial answer."""
    seen: set[int] = set()
    done: set[int] = set()
    for chunk in chunks:
        for choice in getattr(chunk, "choices", None) or ():
            seen.add(choice.index)
            if choice.finish_reason is not None:
                done.add(choice.index)
    return bool(seen) and seen == done


def when_complete(
    response: Any, store: Callable[[ChatCompletion], None], *, blocking: bool = False
) -> None:
    """Call `store` with the completed answer: now, or when a stream ends normally.

    A stream ends in its consumer's thread (the event loop under the async client); with
    `blocking` (the store waits on the network) its answer is stored from a thread of its
    own, so the consumer does not wait for the write. A process that exits at that moment
    may lose the entry.
    """
    if isinstance(response, ChatCompletion):
        store(response)
    elif isinstance(response, CostwiseStream | AsyncCostwiseStream):

        def done(chunks: list[Any], completed: bool) -> None:
            if completed and finished(chunks):
                completion = assemble(chunks)
                if completion is None:
                    return
                if blocking:
                    threading.Thread(
                        target=store, args=(completion,), daemon=True, name="costwise-cache-store"
                    ).start()
                else:
                    store(completion)

        response.add_done_callback(done)
