"""`ReplayProvider`: serve real models' recorded answers to the real SDK, in-process.

It answers ``/chat/completions`` for a prompt found in an outcomes file (see
`costwise.routing.load_outcomes`) with the answer the requested model really gave, and
usage from real token counts of the prompt and the answer, so strategies and the ledger can
be measured on recorded outcomes as if the models were live. It never reveals whether an
answer was correct: that stays in the file, for the benchmark's scoring only.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import httpx2

from costwise.testing._builders import (
    chat_completion_chunks,
    completion_body,
    message_body,
    sse,
    usage_body,
)

if TYPE_CHECKING:
    from costwise.routing import Outcome
    from costwise.tokens import Tokenizer

__all__ = ["PLACEHOLDER", "ReplayProvider"]

PLACEHOLDER = (
    "Looking at the question and each of the options in turn, the best supported choice is "
    "the one given below."
)
"""Served for a model whose answer text was not recorded (correctness-only files such as
MMLU): neutral, about as long as a short multiple-choice answer, and the same for every
model and prompt, so it carries no hint of the grade."""


def _prompt_of(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
            return str(content or "")
    return ""


class ReplayProvider:
    """An ``httpx2.MockTransport`` handler that replays recorded model outcomes.

    Use it to measure routing and cascades on real answers without calling any model:
    ``fake_client(..., http_client=httpx2.Client(transport=httpx2.MockTransport(replay)))``
    (or `replay_client`). A request is matched by its last user message to a row of the
    outcomes, and answered with the requested model's recorded ``response`` (or
    `PLACEHOLDER` when the file has no texts); with ``n`` > 1 it serves the recorded
    ``samples`` (cycled; the response repeated when there are none). Usage is counted with
    `tokenizer` on the prompt and the served texts. Unknown prompts get a 400, models
    without a recorded outcome for the prompt a 404, like the API.

    Args:
        outcomes: the rows to serve, or a path to an outcomes file.
        tokenizer: counts tokens for usage (default: ``costwise.tokens.default_tokenizer()``).
        placeholder: the text served when a model's answer was not recorded.

    Example:
        >>> replay = ReplayProvider("../shared/data/outcomes_gsm8k.jsonl")
        >>> client = fake_client(http_client=httpx2.Client(transport=httpx2.MockTransport(replay)))
    """

    def __init__(
        self,
        outcomes: Iterable[Outcome] | str | os.PathLike[str],
        *,
        tokenizer: Tokenizer | None = None,
        placeholder: str = PLACEHOLDER,
    ) -> None:
        if isinstance(outcomes, str | os.PathLike):
            from costwise.routing import load_outcomes

            outcomes = load_outcomes(outcomes)
        self._rows = {row.prompt: row for row in outcomes}
        if tokenizer is None:
            from costwise.tokens import default_tokenizer

            tokenizer = default_tokenizer()
        self.tokenizer = tokenizer
        self.placeholder = placeholder
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self.served: list[tuple[str, str]] = []
        """``(row id, model)`` of every answered request, in order."""

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one request (the sync handler)."""
        return self._respond(request)

    async def async_handler(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one request (for ``httpx2.AsyncClient``'s MockTransport)."""
        return self._respond(request)

    def _error(self, status: int, message: str, code: str | None = None) -> httpx2.Response:
        body = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
        return httpx2.Response(status, json=body)

    def _respond(self, request: httpx2.Request) -> httpx2.Response:
        if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
            return self._error(404, f"Invalid URL ({request.method} {request.url.path})")
        try:
            body = json.loads(request.content)
        except ValueError:
            return self._error(400, "We could not parse the JSON body of your request.")
        model = str(body.get("model", ""))
        messages = body.get("messages") or []
        row = self._rows.get(_prompt_of(messages))
        if row is None:
            return self._error(400, "replay: this prompt is not in the recorded outcomes")
        outcome = row.models.get(model)
        if outcome is None:
            return self._error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "model_not_found",
            )
        n = max(1, int(body.get("n") or 1))
        first = outcome.response if outcome.response is not None else self.placeholder
        if n == 1:
            texts = [first]
        else:
            pool = list(outcome.samples) or [first]
            texts = list(itertools.islice(itertools.cycle(pool), n))
        prompt_tokens = self.tokenizer.count_messages(messages, model)
        completion_tokens = sum(self.tokenizer.count(t, model) for t in texts)
        with self._lock:
            seq = next(self._counter)
            self.served.append((row.id, model))
        headers = {"x-request-id": f"req_replay_{seq}"}
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = chat_completion_chunks(
                texts[0],
                model=model,
                id=f"chatcmpl-replay-{seq}",
                usage=(prompt_tokens, completion_tokens) if include else None,
            )
            return httpx2.Response(
                200,
                headers={**headers, "content-type": "text/event-stream"},
                content=sse(chunks),
            )
        choices = [
            {
                "index": i,
                "message": message_body(text, None),
                "logprobs": None,
                "finish_reason": "stop",
            }
            for i, text in enumerate(texts)
        ]
        return httpx2.Response(
            200,
            headers=headers,
            json=completion_body(
                id=f"chatcmpl-replay-{seq}",
                model=model,
                created=int(time.time()),
                choices=choices,
                usage=usage_body(prompt_tokens, completion_tokens),
            ),
        )
