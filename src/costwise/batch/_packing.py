"""Packing several questions into one request, and reading the answers back safely."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["ANSWER_SCHEMA", "pack_messages", "parse_answers", "split_exact"]

ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "answer": {"type": "string"}},
                "required": ["id", "answer"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["answers"],
    "additionalProperties": False,
}
"""The JSON schema a structured packed answer follows: ``{"answers": [{"id", "answer"}]}``."""

# Kept short: the instructions are paid once per packed request, the schema is sent too.
_STRUCTURED = (
    "Answer each numbered question on its own, as if it were the only one. "
    "Give one answer per question number (the id)."
)
_NUMBERED = (
    "Answer each numbered question on its own, as if it were the only one. Reply with one "
    "block per question, in order, each starting with its number in brackets: [1] ..."
)
_MARK = re.compile(r"^[ \t]*\**\[(\d+)\]\**[ \t]*:?[ \t]*", re.MULTILINE)


def pack_messages(
    system: str | None, questions: Sequence[str], *, structured: bool
) -> list[dict[str, Any]]:
    """The messages of one request asking all `questions` (ids ``1..n``)."""
    instructions = _STRUCTURED if structured else _NUMBERED
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": f"{system}\n\n{instructions}"})
    else:
        messages.append({"role": "system", "content": instructions})
    # The same numbered lines either way; `structured` only changes how answers come back.
    body = "\n".join(f"[{i}] {_one_line(q)}" for i, q in enumerate(questions, 1))
    messages.append({"role": "user", "content": body})
    return messages


def _one_line(text: str) -> str:
    # A newline followed by "[3]" inside question 2 would forge an answer marker.
    return " ".join(text.split())


def parse_answers(content: str | None, n: int, *, structured: bool) -> dict[int, str]:
    """The answers found for questions ``1..n``; anything ambiguous is left out.

    Ids outside ``1..n`` are ignored, an id answered twice is dropped (it cannot be told
    which answer belongs to the caller), and empty answers are dropped; the caller re-asks
    every question whose id is missing from the result.
    """
    if not content:
        return {}
    found: dict[int, list[str]] = {}
    if structured:
        for ident, answer in _json_items(content):
            found.setdefault(ident, []).append(answer)
    if not found:  # numbered text, or a model that ignored the schema
        marks = list(_MARK.finditer(content))
        for k, m in enumerate(marks):
            end = marks[k + 1].start() if k + 1 < len(marks) else len(content)
            found.setdefault(int(m.group(1)), []).append(content[m.end() : end].strip())
    return {
        i: answers[0]
        for i, answers in found.items()
        if 1 <= i <= n and len(answers) == 1 and answers[0].strip()
    }


def _json_items(content: str) -> list[tuple[int, str]]:
    text = content.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return []
    items = data.get("answers") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return []
    out: list[tuple[int, str]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        ident, answer = item.get("id"), item.get("answer")
        try:
            number = int(str(ident).strip().lstrip("q#"))
        except ValueError:
            continue
        if isinstance(answer, str | int | float) and not isinstance(answer, bool):
            out.append((number, str(answer)))
    return out


def split_exact(total: int, weights: Sequence[int]) -> list[int]:
    """Split the integer `total` in proportion to `weights`; the parts sum to `total` exactly.

    Largest-remainder rounding: each part gets its floor, and the units left over go to the
    parts with the largest fractional remainders (ties to the earlier part), so no
    nano-dollar is lost or counted twice. Zero weights everywhere split evenly.
    """
    n = len(weights)
    if n == 0:
        return []
    if any(w < 0 for w in weights):
        msg = "weights must not be negative"
        raise ValueError(msg)
    if sum(weights) == 0:
        weights = [1] * n
    whole = sum(weights)
    parts = [total * w // whole for w in weights]
    left = total - sum(parts)
    order = sorted(range(n), key=lambda i: (-((total * weights[i]) % whole), i))
    for i in order[:left]:
        parts[i] += 1
    return parts
