"""`Router`: pick the model for each request from its task, before it is sent."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._call import Call
from .._exceptions import ConfigurationError
from ..typing import Flow

if TYPE_CHECKING:
    from .._meter import Meter
    from ..pricing import PriceTable
    from ..routing import LearnedRouter
    from ..tokens import Tokenizer

__all__ = ["TASKS", "Router", "detect_task", "required_capabilities"]

logger = logging.getLogger("costwise")

TASKS = ("chat", "classify", "code", "reasoning", "summarize", "translate")
"""The task names `detect_task` can return; a task map may add its own."""

# Rules see the head and tail of the last user message (and the system prompt's head):
# bounded work per decision whatever the prompt's length, so a decision stays in microseconds.
_HEAD, _TAIL, _SYSTEM = 320, 160, 200

_LANGUAGES = frozenset(
    (
        "english",
        "french",
        "german",
        "spanish",
        "italian",
        "portuguese",
        "chinese",
        "japanese",
        "korean",
        "russian",
        "arabic",
        "dutch",
        "polish",
        "turkish",
        "hindi",
    )
)

# (task, whole words, substrings), in priority order. Set lookups and `in` tests run in C:
# a decision is a few microseconds, where the equivalent case-insensitive regexes took ~70.
_RULES: tuple[tuple[str, frozenset[str], tuple[str, ...]], ...] = (
    (
        "code",
        frozenset(
            {
                "python",
                "javascript",
                "typescript",
                "golang",
                "rust",
                "java",
                "sql",
                "regex",
                "bash",
                "debug",
                "refactor",
                "compile",
                "compiler",
                "traceback",
                "stacktrace",
                "segfault",
                "kotlin",
                "c++",
                "html",
                "css",
            }
        ),
        (
            "```",
            "def ",
            "function(",
            "console.log",
            "#include",
            "select * ",
            "stack trace",
            "unit test",
            "();",
            "=> {",
        ),
    ),
    (
        "translate",
        frozenset({"translate", "translation", "translating", "translated"}),
        (),
    ),
    (
        "summarize",
        frozenset(
            {
                "summarize",
                "summarise",
                "summary",
                "summarization",
                "summarisation",
                "tldr",
                "condense",
            }
        ),
        (
            "tl;dr",
            "key points",
            "key takeaways",
            "bullet points",
            "in one sentence",
            "in two sentences",
            "in three sentences",
        ),
    ),
    (
        "classify",
        frozenset(
            {
                "classify",
                "classification",
                "categorize",
                "categorise",
                "categorization",
                "sentiment",
            }
        ),
        (
            "which category",
            "what category",
            "yes or no",
            "one of:",
            "label this",
            "label each",
            "answer only with",
        ),
    ),
    (
        "reasoning",
        frozenset({"prove", "proof", "calculate", "solve", "derive", "compute", "probability"}),
        ("step by step", "step-by-step", "how many", "how much", "what is the value"),
    ),
)
# Every keyword with the rank of its task (lower wins), for one C-level set intersection.
_KEYWORD_RANK = {word: rank for rank, (_, words, _) in enumerate(_RULES) for word in words}
_KEYWORDS = frozenset(_KEYWORD_RANK)
# Every phrase with its task's rank, in rank order (a flat loop beats any() over generators).
_PHRASES = tuple(
    (phrase, rank) for rank, (_, _, phrases) in enumerate(_RULES) for phrase in phrases
)
_TRANSLATE_RANK = 1
_ARITHMETIC = re.compile(r"\d\s*[-+*/^]\s*\d")
# Punctuation becomes space so "python?" is the word "python" (str.translate runs in C).
_PUNCT = str.maketrans({c: " " for c in "!\"$%&'()*,-./:;<=>?@[\\]^_`{|}~\n\t\r"})


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    return ""


def _last_user(messages: Sequence[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def detect_task(messages: Sequence[Any]) -> str | None:
    """Guess the task of a request from its messages with fast local rules (no network).

    Use it to route calls that carry no ``task=``. It looks at the head and tail of the last
    user message and the head of the system prompt, and returns the first matching task of
    code, translate, summarize, classify, reasoning; ``None`` when no rule matches (plain
    chat, or a case for the optional LLM classifier). A decision takes a few microseconds
    (measured by ``benchmarks/routing.py``).

    Args:
        messages: the request's chat messages.

    Returns:
        A name from `TASKS` (never ``"chat"``), or ``None``.
    """
    user = _last_user(messages)
    text = user if len(user) <= _HEAD + _TAIL else user[:_HEAD] + "\n" + user[-_TAIL:]
    first = messages[0] if messages else None
    if isinstance(first, Mapping) and first.get("role") in ("system", "developer"):
        text = _text(first.get("content"))[:_SYSTEM] + "\n" + text
    text = text.lower()
    words = text.translate(_PUNCT).split()
    found = _KEYWORDS.intersection(words)
    best = min((_KEYWORD_RANK[w] for w in found), default=len(_RULES))
    if best > _TRANSLATE_RANK and "into" in words and not _LANGUAGES.isdisjoint(words):
        best = _TRANSLATE_RANK  # "... into French"
    for phrase, rank in _PHRASES:  # a phrase of a higher-priority task beats a keyword
        if rank >= best:
            break
        if phrase in text:
            best = rank
            break
    if best < len(_RULES):
        return _RULES[best][0]
    return "reasoning" if _ARITHMETIC.search(text) else None


def required_capabilities(kwargs: Mapping[str, Any]) -> frozenset[str]:
    """The model capabilities a request needs: ``tools``, ``json_schema``, ``vision``."""
    needed = set()
    if kwargs.get("tools") or kwargs.get("functions"):
        needed.add("tools")
    fmt = kwargs.get("response_format")
    if (isinstance(fmt, Mapping) and fmt.get("type") == "json_schema") or isinstance(fmt, type):
        needed.add("json_schema")  # a class: what `parse()` turns into a JSON schema
    for message in kwargs.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list) and any(
            isinstance(p, Mapping) and p.get("type") in ("image_url", "input_image")
            for p in content
        ):
            needed.add("vision")
            break
    return frozenset(needed)


_CLASSIFY_PROMPT = (
    "Which task is this request? Reply with exactly one word from: {tasks}.\n\nREQUEST:\n{text}"
)


class Router:
    """Send each request to the model its task needs; the model the caller wrote is the baseline.

    Use it to stop paying the big model for small jobs: classification, extraction and
    short chat go to a cheap model, code and hard reasoning to a strong one. The task comes
    from ``task=`` on the call; without it, from fast local rules (`detect_task`, a few
    microseconds), then, if configured, from a cheap LLM asked to classify the request (a
    side call whose cost is recorded as overhead), then from a fitted `LearnedRouter`. If
    nothing decides, the call keeps the caller's model.

    A target model is used only if it fits the request: its context window must hold the
    prompt plus the requested output, its output limit the requested output, and it must
    have every capability the request uses (tools, JSON schema, images), as recorded with
    its price. Otherwise the call keeps the caller's model. The ledger compares every call
    against the model the caller wrote, so ``report()`` shows the saving. It only rewrites
    the request, so it runs for streams and raw responses too.

    Args:
        tasks: task name → model, e.g. ``{"classify": "gpt-4o-mini", "code": "gpt-4.1"}``.
            Names outside `TASKS` are allowed (your own tasks, given with ``task=``).
        detect: guess the task when the call gives none: ``True`` for the built-in rules,
            or your own function ``messages -> task | None``; ``False`` to never guess.
        classifier: a cheap model asked for the task when the rules find none.
        learned: a fitted `costwise.routing.LearnedRouter`, consulted when no task is
            known; it picks among its own models.
        default: the task of calls nothing else decides (``None``: keep the caller's model).

    Raises:
        ConfigurationError: an empty map, a map value that is not a model name, an unknown
            default task; when the client binds it, a mapped model with no price. At call
            time, ``task=`` naming a task that is not in the map.

    Example:
        >>> CostwiseClient(strategies=[Router({"classify": "gpt-4o-mini", "chat": "gpt-4o-mini"})])
        >>> client.chat.completions.create(model="gpt-4o", messages=msgs, task="classify")
    """

    name = "router"
    request_only = True
    options = frozenset({"task"})

    def __init__(
        self,
        tasks: Mapping[str, str] | None = None,
        *,
        detect: bool | Callable[[Sequence[Any]], str | None] = True,
        classifier: str | None = None,
        learned: LearnedRouter | None = None,
        default: str | None = None,
    ) -> None:
        tasks = dict(tasks or {})
        if not tasks and learned is None:
            msg = "Router needs a task map (task -> model) or a learned router"
            raise ConfigurationError(msg)
        for task, model in tasks.items():
            if not isinstance(task, str) or not task or not isinstance(model, str) or not model:
                msg = f"Router: task map entries must be non-empty strings, got {task!r}: {model!r}"
                raise ConfigurationError(msg)
        if default is not None and default not in tasks:
            msg = f"Router: default task {default!r} is not in the task map {sorted(tasks)}"
            raise ConfigurationError(msg)
        self.tasks = tasks
        self.detect: Callable[[Sequence[Any]], str | None] | None = (
            detect_task if detect is True else (detect or None)
        )
        self.classifier = classifier
        self.learned = learned
        self.default = default
        self._prices: PriceTable | None = None
        self._tokenizer: Tokenizer | None = None

    def bind(self, meter: Meter) -> None:
        """Take the client's prices (context windows, capabilities) and tokenizer.

        Raises:
            ConfigurationError: a mapped model has no price.
        """
        self._prices, self._tokenizer = meter.prices, meter.tokenizer
        for task, model in self.tasks.items():
            if meter.prices.lookup(model) is None:
                msg = f"Router: task {task!r} maps to {model!r}, which has no price"
                raise ConfigurationError(msg)

    # -- the flow ----------------------------------------------------------------------------

    def flow(self, call: Call) -> Flow:
        target, task, how = None, call.option("task"), "task"
        if task is not None and task not in self.tasks:
            msg = f"Router: unknown task {task!r}; the task map has {sorted(self.tasks)}"
            raise ConfigurationError(msg)
        if task is None and self.detect is not None:
            task, how = self.detect(call.messages), "rules"
            if task not in self.tasks:
                task = None
        if task is None and self.classifier is not None:
            task = yield from self._classify(call)
            how = "llm"
        if task is not None:
            target = self.tasks[task]
        elif self.learned is not None:
            allowed = [m for m in self.learned.models if self.fits(call, m)]
            prompt = _last_user(call.messages)
            target, how = self.learned.route(prompt, allowed=allowed), "learned"
        elif self.default is not None:
            task, how = self.default, "default"
            target = self.tasks[task]
        if target is None:
            return (yield call)
        if target == call.model:
            # Decided, nothing to change; noted so a cascade after us starts at this tier.
            call.trace.act(self.name, task=task, routed_by=how)
            return (yield call)
        if not self.fits(call, target):
            logger.debug("router: %s does not fit the request; keeping %s", target, call.model)
            return (yield call)
        logger.debug("router: %s -> %s (task=%s by %s)", call.model, target, task, how)
        call.trace.act(self.name, routed_from=call.model, task=task, routed_by=how)
        return (yield call.replace(model=target))

    def _classify(self, call: Call) -> Flow:
        names = sorted(self.tasks)
        text = _last_user(call.messages)[:2000]
        resp = yield call.side_call(
            "classify",
            model=self.classifier,
            messages=[
                {
                    "role": "user",
                    "content": _CLASSIFY_PROMPT.format(tasks=", ".join(names), text=text),
                }
            ],
            max_tokens=5,
            temperature=0,
        )
        try:
            answer = str(resp.choices[0].message.content or "").strip().lower()
        except (AttributeError, IndexError):
            return None
        return next((n for n in names if answer.startswith(n.lower())), None)

    # -- fitting the request -----------------------------------------------------------------

    def fits(self, call: Call, model: str) -> bool:
        """Whether `model` can serve `call`: context window, output limit, capabilities.

        A model whose price records no context window is assumed to fit; capabilities are
        only required when the request uses them.
        """
        if self._prices is None:
            from ..pricing import PriceTable

            self._prices = PriceTable.default()
        price = self._prices.lookup(model)
        if price is None:
            return False
        if not required_capabilities(call.kwargs) <= price.capabilities:
            return False
        kwargs = call.kwargs
        output = int(kwargs.get("max_completion_tokens") or kwargs.get("max_tokens") or 0)
        if price.max_output_tokens is not None and output > price.max_output_tokens:
            return False
        if price.context_window is None:
            return True
        # Tool definitions are sent, and billed, as part of the prompt.
        tools = kwargs.get("tools") or kwargs.get("functions")
        tool_text = json.dumps(tools, default=str) if tools else ""
        # A token is at least one byte, so a short prompt fits without being tokenized.
        size = sum(len(str(m).encode()) for m in call.messages) + len(tool_text.encode())
        if size + output <= price.context_window:
            return True
        if self._tokenizer is None:
            from ..tokens import default_tokenizer

            self._tokenizer = default_tokenizer()
        prompt = self._tokenizer.count_messages(call.messages, model)
        if tool_text:
            prompt += self._tokenizer.count(tool_text, model)
        return prompt + output <= price.context_window
