"""The canonical request key: which SDK parameters can change the answer, and a fast hash.

Every parameter of the SDK's ``chat.completions.create`` is classified in `KEY_POLICY`
as ``"output"`` (part of the key) or ``"ignored"`` (cannot change the answer). A test
enumerates the SDK's signature and fails when a new parameter appears unclassified;
meanwhile, at run time, an unknown parameter counts as ``"output"``: a new knob can only
cost a hit, never serve a wrong answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from openai import NotGiven, Omit

__all__ = ["KEY_POLICY", "UncacheableRequest", "request_key"]

KEY_POLICY: Mapping[str, Literal["output", "ignored"]] = {
    # What is asked, and of whom.
    "model": "output",
    "messages": "output",
    "audio": "output",
    "modalities": "output",
    "prediction": "output",  # meant to only speed decoding, but keyed to stay safe
    "web_search_options": "output",
    # Tools and structured output.
    "tools": "output",
    "tool_choice": "output",
    "parallel_tool_calls": "output",
    "functions": "output",
    "function_call": "output",
    "response_format": "output",
    # Sampling and length.
    "temperature": "output",
    "top_p": "output",
    "seed": "output",
    "n": "output",
    "max_tokens": "output",
    "max_completion_tokens": "output",
    "stop": "output",
    "logit_bias": "output",
    "logprobs": "output",
    "top_logprobs": "output",
    "frequency_penalty": "output",
    "presence_penalty": "output",
    "reasoning_effort": "output",
    "verbosity": "output",
    "moderation": "output",  # may block or alter the answer
    # The request body and query can carry provider-specific knobs (Azure api-version,
    # vLLM sampling extras): keyed.
    "extra_body": "output",
    "extra_query": "output",
    # Who asks, bookkeeping and transport: never change the answer.
    "user": "ignored",
    "safety_identifier": "ignored",
    "metadata": "ignored",
    "store": "ignored",
    "service_tier": "ignored",
    "prompt_cache_key": "ignored",
    "prompt_cache_options": "ignored",
    "prompt_cache_retention": "ignored",
    # A streamed and a plain answer are the same completion; the cache serves both ways.
    "stream": "ignored",
    "stream_options": "ignored",
    "extra_headers": "ignored",
    "timeout": "ignored",
}
"""How each ``create`` parameter affects the cache key: ``"output"`` or ``"ignored"``."""

_IGNORED = frozenset(k for k, v in KEY_POLICY.items() if v == "ignored")
_VERSION = b"costwise-cache-v1\n"


class UncacheableRequest(Exception):
    """The request holds a value with no canonical JSON form; it bypasses the cache."""


def _default(value: Any) -> Any:
    # Rare path: only objects json can't encode get here (pydantic models, Omit, sets).
    if isinstance(value, NotGiven | Omit):
        return None
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return {"$pydantic": value.__qualname__, "schema": value.model_json_schema()}
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    msg = f"cannot key a {type(value).__name__}"
    raise UncacheableRequest(msg)


_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_default
).encode


# Long message texts skip the JSON escaper (the slowest part of keying a big prompt): each
# is replaced in the structure by a marker object {"\u0000text": i} and its UTF-8 bytes go to
# the hash separately, length-prefixed, in order. The API accepts no such object as a
# message or a content part, so a marker can't be confused with a real value.
_LONG = 256
_MARK = "\x00text"


def _message(msg: Any, texts: list[str]) -> Any:
    if type(msg) is not dict:
        return msg
    content = msg.get("content")
    if type(content) is str:
        if len(content) <= _LONG:
            return msg
        texts.append(content)
        return {**msg, "content": {_MARK: len(texts) - 1}}
    if type(content) is list:
        parts = []
        for part in content:
            text = part.get("text") if type(part) is dict else None
            if type(text) is str and len(text) > _LONG:
                texts.append(text)
                part = {**part, "text": {_MARK: len(texts) - 1}}
            parts.append(part)
        return {**msg, "content": parts}
    return msg


def canonical(kwargs: Mapping[str, Any]) -> tuple[bytes, list[str]]:
    """The request's output-affecting arguments as canonical JSON, plus its long texts.

    Dict key order never matters (keys are sorted), ``0`` and ``0.0`` are the same number,
    and an argument passed as ``NOT_GIVEN``/``omit`` counts as absent.

    Raises:
        UncacheableRequest: a value has no canonical JSON form.
    """
    body: dict[str, Any] = {}
    texts: list[str] = []
    for name, value in kwargs.items():
        if name in _IGNORED or isinstance(value, NotGiven | Omit):
            continue
        if name == "messages" and isinstance(value, list | tuple):
            value = [_message(m, texts) for m in value]
        elif type(value) is float and value.is_integer():
            value = int(value)
        body[name] = value
    try:
        text = _encode(body)
    except (TypeError, ValueError) as exc:  # circular or non-finite values
        raise UncacheableRequest(str(exc)) from exc
    return text.encode("ascii"), texts


def request_key(kwargs: Mapping[str, Any], scope: str) -> str:
    """The cache key of a request in a scope: 32 hex digits of SHA-256.

    Use it to look up or invalidate one entry by hand (``store.delete(request_key(...))``).

    Args:
        kwargs: the SDK keyword arguments of ``chat.completions.create``.
        scope: the isolation scope (see `costwise.cache.scope_of`); different scopes never
            share a key.

    Returns:
        The key.

    Raises:
        UncacheableRequest: a value has no canonical JSON form.

    Example:
        >>> request_key({"model": "gpt-4o", "messages": [], "temperature": 0}, "tenant-a")
    """
    structure, texts = canonical(kwargs)
    scope_bytes = scope.encode()
    # SHA-256 rather than BLAKE2b: CPUs with SHA extensions hash a long prompt ~2x faster.
    # One update per piece; the scope is length-prefixed so it can't run into the body.
    parts = [_VERSION, b"%d:" % len(scope_bytes), scope_bytes, structure]
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        parts += (b"\n%d:" % len(data), data)
    return hashlib.sha256(b"".join(parts)).hexdigest()[:32]
