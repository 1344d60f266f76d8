"""The fake provider's ``POST /responses`` (the Responses API): request mapping and bodies.

A Responses request is answered by the same machinery as a chat completion: its
``instructions`` and ``input`` become chat messages, the provider plans the answer (scripted
``Reply``, the ``reply`` callable or the default text), and the plan is written back in the
Responses shape: a ``response`` object, or the server-sent events of a stream
(``response.created``, the output item and text deltas, ``response.completed``) in the
order the API sends them, so the SDK's ``responses.stream()`` helper can follow them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["as_chat", "response_body", "response_events"]


def as_chat(body: Mapping[str, Any]) -> dict[str, Any]:
    """The chat completion request that a Responses request asks the same of."""
    from .._recorded import responses_messages

    messages = []
    for message in responses_messages(body):
        content = message["content"]
        if isinstance(content, list):  # input_text parts: the answer is made from the text
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        messages.append({"role": str(message.get("role", "user")), "content": content})
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    return chat


def _usage(chat_usage: Mapping[str, Any]) -> dict[str, Any]:
    prompt, completion = chat_usage["prompt_tokens"], chat_usage["completion_tokens"]
    cached = chat_usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)
    reasoning = chat_usage.get("completion_tokens_details", {}).get("reasoning_tokens", 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def _message(seq: int, text: str, status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_{seq}",
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def response_body(
    *, seq: int, model: str, created: int, text: str, finish_reason: str, usage: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``response`` object of a finished answer (``incomplete`` when cut by the limit)."""
    complete = finish_reason != "length"
    return {
        "id": f"resp_{seq}",
        "object": "response",
        "created_at": created,
        "model": model,
        "status": "completed" if complete else "incomplete",
        "incomplete_details": None if complete else {"reason": "max_output_tokens"},
        "output": [_message(seq, text, "completed" if complete else "incomplete")],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _usage(usage),
    }


def response_events(final: Mapping[str, Any], pieces: list[str]) -> list[dict[str, Any]]:
    """The stream of a response: created, the message and its text deltas, then the end."""
    seq = int(str(final["id"]).removeprefix("resp_"))
    started = {**final, "status": "in_progress", "output": [], "usage": None}
    item = _message(seq, "", "in_progress")
    item_done = final["output"][0]
    text = item_done["content"][0]["text"]
    part = {"type": "output_text", "text": "", "annotations": []}
    where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {"type": "response.output_item.added", "output_index": 0, "item": {**item, "content": []}},
        {"type": "response.content_part.added", **where, "part": part},
        *(
            {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
            for piece in pieces
        ),
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": 0, "item": item_done},
        {
            "type": "response.completed"
            if final["status"] == "completed"
            else "response.incomplete",
            "response": final,
        },
    ]
    return [{**event, "sequence_number": n} for n, event in enumerate(events)]
