"""Builders for OpenAI-shaped response bodies.

The shapes here follow what the OpenAI API sends on the wire (checked against the strict
pydantic models of openai 3.57), so a body built here passes
``ChatCompletion.model_validate`` and the SDK's ``_strict_response_validation``. The
``FakeProvider`` builds every response through the private helpers below, so hand-built
bodies in users' tests and generated ones never drift apart.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

__all__ = ["chat_completion", "chat_completion_chunks", "sse"]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]

DEFAULT_CONTENT = "Hello! How can I help you today?"

# A regex pre-tokenizer in the spirit of tiktoken's: a run of up to nine Latin, Greek or
# Cyrillic letters, one or two other letters (CJK), up to three digits, or one or two
# symbols, each taking one leading space; other whitespace forms tokens of its own.
# Against o200k_base it counts English prose and code within about 5%, and every
# character lands in exactly one piece, so joined pieces give the text back (streams and
# logprobs rely on that). costwise.tokens.HeuristicTokenizer counts as closely but yields
# no pieces, and the fake needs pieces to stream, truncate and cache token by token.
_TOKEN_RE = re.compile(
    r" ?(?:[A-Za-z\u00C0-\u024F\u0370-\u03FF\u0400-\u04FF]{1,9}|[^\W\d_]{1,2}|\d{1,3}"
    r"|[^\w\s]{1,2}|_)|\s+(?!\S)|\s+"
)


def split_tokens(text: str) -> list[str]:
    """Cut ``text`` into heuristic tokens whose concatenation is ``text``."""
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Count heuristic tokens in ``text`` (see ``split_tokens``)."""
    return len(split_tokens(text))


def fingerprint(model: str) -> str:
    """A stable ``system_fingerprint`` per model, like the API's ``fp_<hex>``."""
    return "fp_" + hashlib.sha256(model.encode()).hexdigest()[:10]


def usage_body(
    prompt_tokens: int,
    completion_tokens: int,
    *,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> dict[str, Any]:
    """The ``usage`` object, with the detail blocks the API always sends for chat."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def normalize_tool_calls(tool_calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Expand tool calls to the API's shape.

    Accepts the full shape (``{"id", "type": "function", "function": {...}}``) or the
    shorthand ``{"name": ..., "arguments": dict | str}``; missing ids are derived from the
    call so they are stable across runs.
    """
    out: list[dict[str, Any]] = []
    for index, call in enumerate(tool_calls):
        function = call.get("function", call)
        name = str(function["name"])
        arguments = function.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        call_id = call.get("id")
        if call_id is None:
            digest = hashlib.sha256(f"{index}:{name}:{arguments}".encode()).hexdigest()
            call_id = "call_" + digest[:24]
        out.append(
            {
                "id": str(call_id),
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
        )
    return out


def message_body(content: str | None, tool_calls: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The assistant ``message`` of a non-streamed choice."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "refusal": None,
        "annotations": [],
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def completion_body(
    *,
    id: str,
    model: str,
    created: int,
    choices: list[dict[str, Any]],
    usage: dict[str, Any],
) -> dict[str, Any]:
    """The top level of a ``chat.completion`` object."""
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": fingerprint(model),
    }


def chunk_body(
    *,
    id: str,
    model: str,
    created: int,
    choices: list[dict[str, Any]],
    include_usage: bool,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``.

    The API adds ``"usage": null`` to every chunk only when the caller asked for
    ``stream_options.include_usage``; otherwise the key is absent.
    """
    chunk: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": fingerprint(model),
        "choices": choices,
    }
    if include_usage:
        chunk["usage"] = usage
    return chunk


def choice_deltas(
    content: str | None,
    tool_calls: list[dict[str, Any]] | None,
    *,
    index: int,
    finish_reason: str,
    logprobs: list[list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """The streamed ``choices[]`` entries for one choice, in the order the API sends them.

    The first carries the role, then one delta per token of content (or per slice of tool
    arguments), then an empty delta with the finish reason. ``logprobs`` holds one list of
    token entries per content token, when the caller asked for them.
    """
    first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
    deltas: list[dict[str, Any]] = []
    if tool_calls:
        first["content"] = content
        for call_index, call in enumerate(tool_calls):
            head = {
                "index": call_index,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            if call_index == 0:
                first["tool_calls"] = [head]
            else:
                deltas.append({"tool_calls": [head]})
            for piece in split_tokens(call["function"]["arguments"]):
                deltas.append(
                    {"tool_calls": [{"index": call_index, "function": {"arguments": piece}}]}
                )
    elif content:
        deltas = [{"content": piece} for piece in split_tokens(content)]

    entries = [{"index": index, "delta": first, "logprobs": None, "finish_reason": None}]
    for position, delta in enumerate(deltas):
        entry_logprobs = None
        if logprobs is not None and "content" in delta and position < len(logprobs):
            entry_logprobs = {"content": logprobs[position], "refusal": None}
        entries.append(
            {"index": index, "delta": delta, "logprobs": entry_logprobs, "finish_reason": None}
        )
    entries.append({"index": index, "delta": {}, "logprobs": None, "finish_reason": finish_reason})
    return entries


def _resolve_finish(
    finish_reason: FinishReason | None, tool_calls: Sequence[Mapping[str, Any]] | None
) -> FinishReason:
    if finish_reason is not None:
        return finish_reason
    return "tool_calls" if tool_calls else "stop"


def chat_completion(
    content: str | None = DEFAULT_CONTENT,
    *,
    model: str = "gpt-4o-mini",
    usage: tuple[int, int] = (10, 5),
    finish_reason: FinishReason | None = None,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    id: str | None = None,
    tool_calls: Sequence[Mapping[str, Any]] | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """Build the JSON body of a non-streamed chat completion.

    Use it when a test needs one exact response, for instance in a hand-written
    ``httpx2.MockTransport`` handler or to seed a cache; use ``FakeProvider`` when the
    response should follow the request. The body passes
    ``openai.types.chat.ChatCompletion.model_validate`` and strict SDK validation.

    Args:
        content: The assistant text; ``None`` for a pure tool-call message.
        model: The model the response reports (a real API reports a dated snapshot).
        usage: ``(prompt_tokens, completion_tokens)``. Completion tokens include
            ``reasoning_tokens``, as in the API.
        finish_reason: Defaults to ``"tool_calls"`` when ``tool_calls`` is given, else
            ``"stop"``.
        cached_tokens: Reported as ``usage.prompt_tokens_details.cached_tokens``.
        reasoning_tokens: Reported as ``usage.completion_tokens_details.reasoning_tokens``.
        id: The completion id; defaults to one derived from the content.
        tool_calls: Full API tool calls or the shorthand ``{"name": ..., "arguments": ...}``
            (arguments may be a dict; it is JSON-encoded).
        created: Unix time; defaults to now.

    Returns:
        A JSON-ready ``dict``.

    Example:
        >>> body = chat_completion("Paris.", model="gpt-4o-2024-08-06", usage=(12, 2))
        >>> body["usage"]["total_tokens"]
        14
    """
    calls = normalize_tool_calls(tool_calls) if tool_calls else None
    if id is None:
        id = "chatcmpl-" + hashlib.sha256(f"{model}:{content}".encode()).hexdigest()[:24]
    choice = {
        "index": 0,
        "message": message_body(content, calls),
        "logprobs": None,
        "finish_reason": _resolve_finish(finish_reason, tool_calls),
    }
    return completion_body(
        id=id,
        model=model,
        created=int(time.time()) if created is None else created,
        choices=[choice],
        usage=usage_body(
            usage[0], usage[1], cached_tokens=cached_tokens, reasoning_tokens=reasoning_tokens
        ),
    )


def chat_completion_chunks(
    content: str | None = DEFAULT_CONTENT,
    *,
    model: str = "gpt-4o-mini",
    usage: tuple[int, int] | None = None,
    finish_reason: FinishReason | None = None,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    id: str | None = None,
    tool_calls: Sequence[Mapping[str, Any]] | None = None,
    created: int | None = None,
) -> list[dict[str, Any]]:
    """Build the chunks of a streamed chat completion, as the API sends them.

    Use it with ``sse()`` to hand-write a streaming response. The content is split into
    one chunk per token; the first chunk carries the role and the last choice chunk the
    finish reason.

    Args:
        content: The assistant text, streamed token by token.
        model: The model every chunk reports.
        usage: When given, ``(prompt_tokens, completion_tokens)`` for a trailing chunk with
            ``choices: []``, which is what the API sends for
            ``stream_options={"include_usage": True}``; every other chunk then carries
            ``"usage": null``, as in the API.
        finish_reason: Defaults to ``"tool_calls"`` with ``tool_calls``, else ``"stop"``.
        cached_tokens: Reported in the usage chunk.
        reasoning_tokens: Reported in the usage chunk.
        id: The id shared by all chunks.
        tool_calls: Streamed as the API does: name first, then argument fragments.
        created: Unix time; defaults to now.

    Returns:
        The chunk objects, in order, without the ``[DONE]`` sentinel.

    Example:
        >>> chunks = chat_completion_chunks("Hi there", usage=(5, 2))
        >>> chunks[-1]["choices"], chunks[-1]["usage"]["total_tokens"]
        ([], 7)
    """
    calls = normalize_tool_calls(tool_calls) if tool_calls else None
    if id is None:
        id = "chatcmpl-" + hashlib.sha256(f"{model}:{content}".encode()).hexdigest()[:24]
    stamp = int(time.time()) if created is None else created
    include_usage = usage is not None
    entries = choice_deltas(
        content, calls, index=0, finish_reason=_resolve_finish(finish_reason, tool_calls)
    )
    chunks = [
        chunk_body(id=id, model=model, created=stamp, choices=[e], include_usage=include_usage)
        for e in entries
    ]
    if usage is not None:
        chunks.append(
            chunk_body(
                id=id,
                model=model,
                created=stamp,
                choices=[],
                include_usage=True,
                usage=usage_body(
                    usage[0],
                    usage[1],
                    cached_tokens=cached_tokens,
                    reasoning_tokens=reasoning_tokens,
                ),
            )
        )
    return chunks


def sse_event(data: Mapping[str, Any] | str, *, name: str | None = None) -> bytes:
    """Encode one server-sent event the way the API does (compact JSON, blank line);
    `name` adds the ``event:`` line the Responses API sends."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = "" if name is None else f"event: {name}\n"
    return f"{head}data: {payload}\n\n".encode()


def sse(chunks: Iterable[Mapping[str, Any]], *, done: bool = True) -> bytes:
    """Encode chunks as a ``text/event-stream`` body.

    Use it to build the content of a streaming ``httpx2.Response`` by hand.

    Args:
        chunks: Chunk objects, for instance from ``chat_completion_chunks()``.
        done: Append the ``data: [DONE]`` sentinel; pass ``False`` to imitate a stream the
            server cut short.

    Returns:
        The body bytes.

    Example:
        >>> body = sse(chat_completion_chunks("Hi"))
        >>> body.endswith(b"data: [DONE]\\n\\n")
        True
    """
    body = b"".join(sse_event(chunk) for chunk in chunks)
    return body + sse_event("[DONE]") if done else body
