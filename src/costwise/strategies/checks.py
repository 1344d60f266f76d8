"""Quality checks a `Cascade` runs on a cheap tier's answer before accepting it.

A check looks at one tier's response (and the request that produced it) and returns a
`Verdict`: passed or not, an optional score, and the reason the ledger records when the
answer is rejected. Checks compose with `all_of` / `any_of`, and any callable returning a
bool or a score in [0, 1] is a check too (see `as_check`).

Most checks are pure functions of the response. Two make side requests: `self_agreement`
(more samples of the same cheap model) and `llm_judge` (a cheap judge model). Like a
strategy's flow, a check's `evaluate` is a generator that *yields* the side `Call` it wants
made and is sent the response, so one check serves the sync and the async client; the side
requests are recorded in the ledger as overhead of the call, with their real cost.

A check that raises does not lose the call: the cascade counts it as failed (so it
escalates) and emits a `CostwiseWarning`.

Which check helps when:

============================  ================================================================
check                         helps when
============================  ================================================================
`not_empty`                   always; empty answers and bare refusals are never worth keeping
`no_refusal`                  the cheap model refuses or says "I don't know" more than the big
`not_truncated`               outputs can hit ``max_tokens`` (long code, long summaries)
`valid_json`/`matches_schema` the request uses ``response_format`` (small models break JSON)
`valid_tool_calls`            the request has ``tools`` (small models invent names/arguments)
`final_answer`                tasks with one final answer in a known form (math, multiple choice)
`arithmetic_consistent`       math word problems: a worked step with wrong arithmetic (3*4=13)
`logprob_confidence`          classification/extraction with short answers; needs logprobs
`self_agreement`              reasoning tasks: several cheap samples agreeing is a strong signal
`llm_judge`                   open-ended answers where no rule can tell good from bad
`score` / any callable        you have your own scorer (a learned model, a unit test, a regex)
============================  ================================================================
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from typing_extensions import override

from .._call import Call
from .._exceptions import ConfigurationError, CostwiseWarning

__all__ = [
    "Check",
    "CheckFlow",
    "Verdict",
    "all_of",
    "any_of",
    "arithmetic_consistent",
    "as_check",
    "final_answer",
    "llm_judge",
    "logprob_confidence",
    "matches_schema",
    "no_refusal",
    "not_empty",
    "not_truncated",
    "run_check",
    "score",
    "self_agreement",
    "valid_json",
    "valid_tool_calls",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """The outcome of a check on one answer.

    Attributes:
        passed: the answer is good enough to return.
        score: a quality estimate in [0, 1], when the check computes one.
        reason: why the answer failed (recorded as the ledger entry's ``reason``).
    """

    passed: bool
    score: float | None = None
    reason: str | None = None


CheckFlow = Generator[Call, Any, Verdict]
"""What `Check.evaluate` returns: yields side calls, is sent responses, returns a `Verdict`."""

_NO_ARGS: Mapping[str, Any] = MappingProxyType({})


class Check:
    """Base class of the checks: a name, extra request arguments, and `evaluate`.

    Subclass it for a check that needs side requests (override `evaluate`), or override
    `judge` for a plain function of the response. Most users never subclass: pass a
    callable to `score` instead.

    Attributes:
        name: shown in rejection reasons (``"not_truncated"``).
        request: SDK arguments the cascade adds to the tier's request so the check can
            work (``{"logprobs": True}`` for `logprob_confidence`).
    """

    name: str = "check"
    request: Mapping[str, Any] = _NO_ARGS

    def evaluate(self, call: Call, response: Any) -> CheckFlow:
        """Judge `response` to `call`; yield side calls if needed (see the module docstring)."""
        return self.judge(call, response)
        yield call  # unreachable: makes this a generator

    def judge(self, call: Call, response: Any) -> Verdict:
        """Judge `response` without side requests (override this or `evaluate`)."""
        raise NotImplementedError

    @override
    def __repr__(self) -> str:
        return f"<check {self.name}>"


def run_check(check: Check, call: Call, response: Any) -> CheckFlow:
    """Run `check` so that it can never lose the call: an exception becomes a failed verdict.

    Use it (``verdict = yield from run_check(...)``) in your own cascade-like strategy.
    """
    try:
        verdict = yield from check.evaluate(call, response)
    except Exception as exc:
        warnings.warn(
            f"cascade check {check.name!r} raised {type(exc).__name__}: {exc}; "
            f"counted as a failed check",
            CostwiseWarning,
            stacklevel=2,
        )
        return Verdict(passed=False, reason=f"{check.name} raised {type(exc).__name__}")
    if not isinstance(verdict, Verdict):
        warnings.warn(
            f"cascade check {check.name!r} returned {type(verdict).__name__}, not a Verdict; "
            f"counted as a failed check",
            CostwiseWarning,
            stacklevel=2,
        )
        return Verdict(passed=False, reason=f"{check.name} returned no verdict")
    return verdict


# -- reading responses ----------------------------------------------------------------------


def _choices(response: Any) -> list[Any]:
    return list(getattr(response, "choices", None) or [])


def _text(response: Any) -> str:
    choices = _choices(response)
    if not choices:
        return ""
    return str(getattr(choices[0].message, "content", None) or "")


def _ok(score: float | None = None) -> Verdict:
    return Verdict(passed=True, score=score)


def _fail(reason: str, score: float | None = None) -> Verdict:
    return Verdict(passed=False, score=score, reason=reason)


class _Fn(Check):
    """A check from a function ``(call, response) -> Verdict``."""

    def __init__(
        self,
        name: str,
        fn: Callable[[Call, Any], Verdict],
        request: Mapping[str, Any] = _NO_ARGS,
    ) -> None:
        self.name = name
        self._fn = fn
        self.request = MappingProxyType(dict(request))

    @override
    def judge(self, call: Call, response: Any) -> Verdict:
        return self._fn(call, response)


# -- text checks ------------------------------------------------------------------------------

_REFUSALS = (
    r"\bI(?:'m| am) (?:sorry|afraid),? but I (?:can(?:'|no)t|am unable|won't)",
    r"\bI (?:can(?:'|no)t|am unable to|won't) (?:help|assist|answer|comply|provide)",
    r"\bI (?:do not|don't) know\b",
    r"\bI(?:'m| am) not (?:sure|certain|able)\b",
    r"\bas an AI(?: language model)?\b",
    r"\bI (?:do not|don't) have (?:enough )?(?:information|access|the ability)\b",
)


def not_empty() -> Check:
    """Fail an answer with no text and no tool calls (or an API ``refusal``).

    When it helps: always. It costs nothing, and an empty answer is never worth returning.

    Example:
        >>> Cascade(["gpt-4o-mini", "gpt-4o"], check=not_empty())
    """

    def judge(call: Call, response: Any) -> Verdict:
        choices = _choices(response)
        if not choices:
            return _fail("empty: no choices")
        message = choices[0].message
        if getattr(message, "refusal", None):
            return _fail("refusal")
        if _text(response).strip() or getattr(message, "tool_calls", None):
            return _ok()
        return _fail("empty answer")

    return _Fn("not_empty", judge)


def no_refusal(patterns: Iterable[str] = _REFUSALS, *, head_chars: int = 400) -> Check:
    """Fail refusals and "I don't know" answers (looks at the start of the answer).

    When it helps: small models refuse or hedge on requests the big one answers. Only the
    first `head_chars` characters are searched, so an answer that *discusses* not knowing
    later on still passes.

    Args:
        patterns: regular expressions (case-insensitive) that mark a refusal.
        head_chars: how much of the answer to search.
    """
    regex = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)

    def judge(call: Call, response: Any) -> Verdict:
        message = _choices(response)[0].message if _choices(response) else None
        if message is not None and getattr(message, "refusal", None):
            return _fail("refusal")
        if regex.search(_text(response)[:head_chars]):
            return _fail("refusal or 'I don't know'")
        return _ok()

    return _Fn("no_refusal", judge)


def not_truncated() -> Check:
    """Fail an answer cut off by ``max_tokens`` (``finish_reason == "length"``).

    When it helps: long outputs (code, documents) where a cut answer is useless. It reads
    no text, so it works on recorded outcomes without answer texts.
    """

    def judge(call: Call, response: Any) -> Verdict:
        for choice in _choices(response)[:1]:
            if choice.finish_reason in ("length", "content_filter"):
                return _fail(f"truncated ({choice.finish_reason})")
        return _ok()

    return _Fn("not_truncated", judge)


_FINAL_NUMBER = r"(?:####|answer is|answer:|=)\s*\**\s*\$?\s*(-?[\d,]*\.?\d+)\s*\**\.?\s*$"


def final_answer(
    pattern: str = _FINAL_NUMBER, *, integer: bool = False, tail_chars: int = 200
) -> Check:
    """Fail an answer that does not end in a clear final answer matching `pattern`.

    When it helps: tasks with one final answer in a known form (math word problems, multiple
    choice). A cheap model that rambles or never commits to an answer is often wrong. The
    default pattern wants a number after ``####``, ``answer is``, ``answer:`` or ``=`` at
    the very end.

    Args:
        pattern: a regular expression (case-insensitive) searched in the answer's tail; its
            first group, if any, is the answer.
        integer: also fail when the captured answer is not a whole number.
        tail_chars: how much of the end of the answer to search.
    """
    regex = re.compile(pattern, re.IGNORECASE)

    def judge(call: Call, response: Any) -> Verdict:
        match = regex.search(_text(response).strip()[-tail_chars:])
        if match is None:
            return _fail("no clear final answer")
        if integer and match.groups():
            try:
                value = float((match.group(1) or "").replace(",", ""))
            except ValueError:
                return _fail("final answer is not a number")
            if not value.is_integer():
                return _fail("final answer is not a whole number")
        return _ok()

    return _Fn("final_answer", judge)


def arithmetic_consistent(*, max_wrong: int = 0) -> Check:
    """Fail an answer whose written-out arithmetic is wrong (``3 * 4 = 13``).

    When it helps: math word problems and anything else where the cheap model shows its
    working. Each step ``a op b = c`` (and calculator annotations ``<<a*b=c>>``) is
    recomputed; a wrong step almost always means a wrong final answer (on GSM8K, 46 of 51
    flagged Mixtral answers in the fit half were wrong, against 32% of all its answers).
    It flags few answers (about 8% there), so pair it with a broader check, such as a
    learned score (`costwise.routing.AnswerScorer`, which reads the same signal). Pure
    Python, microseconds; answers with no arithmetic pass.

    Args:
        max_wrong: how many wrong steps to tolerate.

    Example:
        >>> Cascade(["mixtral-8x7b-instruct", "gpt-4o"], check=arithmetic_consistent())
    """
    from ..routing._arith import arithmetic_errors

    def judge(call: Call, response: Any) -> Verdict:
        checked, wrong = arithmetic_errors(_text(response))
        if wrong > max_wrong:
            return _fail(f"wrong arithmetic in {wrong} of {checked} steps", 1 - wrong / checked)
        return _ok(None if not checked else 1 - wrong / checked)

    return _Fn("arithmetic_consistent", judge)


# -- structured output ------------------------------------------------------------------------


def _response_format(call: Call) -> Mapping[str, Any]:
    fmt = call.kwargs.get("response_format")
    return fmt if isinstance(fmt, Mapping) else {}


def valid_json() -> Check:
    """Fail an answer that is not valid JSON when the request asked for JSON.

    When it helps: requests with ``response_format`` ``json_object`` or ``json_schema``;
    small models break JSON more often. Requests without ``response_format`` pass.
    """

    def judge(call: Call, response: Any) -> Verdict:
        if _response_format(call).get("type") not in ("json_object", "json_schema"):
            return _ok()
        try:
            json.loads(_text(response))
        except json.JSONDecodeError as exc:
            return _fail(f"invalid JSON: {exc.msg}")
        return _ok()

    return _Fn("valid_json", judge)


_JSON_TYPES: Mapping[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _schema_errors(value: Any, schema: Mapping[str, Any], path: str = "$") -> str | None:
    """The first violation of a (subset of) JSON Schema: type, enum, required, properties, items."""
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else list(kinds)
        ok = any(
            isinstance(value, _JSON_TYPES.get(k, object))
            and not (k in ("integer", "number") and isinstance(value, bool))
            for k in names
        )
        if not ok:
            return f"{path}: expected {'/'.join(names)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: not one of {schema['enum']}"
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                return f"{path}: missing {key!r}"
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if key in value and isinstance(sub, Mapping):
                error = _schema_errors(value[key], sub, f"{path}.{key}")
                if error:
                    return error
        if schema.get("additionalProperties") is False:
            extra = set(value) - set(props)
            if extra:
                return f"{path}: unexpected {sorted(extra)[0]!r}"
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            error = _schema_errors(item, schema["items"], f"{path}[{i}]")
            if error:
                return error
    return None


def matches_schema(schema: Mapping[str, Any] | None = None) -> Check:
    """Fail an answer that is not JSON matching a JSON Schema.

    When it helps: structured extraction with ``response_format={"type": "json_schema"}``.
    With `schema` omitted the request's own ``response_format.json_schema.schema`` is used
    (requests without one pass). The validator covers the subset structured outputs use:
    ``type``, ``enum``, ``required``, ``properties``, ``additionalProperties: false`` and
    ``items``.

    Args:
        schema: the schema to enforce; ``None`` reads it from the request.
    """

    def judge(call: Call, response: Any) -> Verdict:
        wanted = schema
        if wanted is None:
            fmt = _response_format(call)
            if fmt.get("type") != "json_schema":
                return _ok()
            wanted = (fmt.get("json_schema") or {}).get("schema") or {}
        try:
            value = json.loads(_text(response))
        except json.JSONDecodeError as exc:
            return _fail(f"invalid JSON: {exc.msg}")
        error = _schema_errors(value, wanted)
        return _fail(f"schema: {error}") if error else _ok()

    return _Fn("matches_schema", judge)


def valid_tool_calls() -> Check:
    """Fail tool calls that name an unknown tool, carry invalid JSON or miss required args.

    When it helps: requests with ``tools``; small models invent tool names, send broken
    argument JSON, or skip a call that ``tool_choice="required"`` demands. Requests without
    tools pass.
    """

    def judge(call: Call, response: Any) -> Verdict:
        tools = call.kwargs.get("tools") or []
        if not tools:
            return _ok()
        specs = {
            t["function"]["name"]: t["function"].get("parameters") or {}
            for t in tools
            if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping)
        }
        message = _choices(response)[0].message if _choices(response) else None
        calls = list(getattr(message, "tool_calls", None) or [])
        choice = call.kwargs.get("tool_choice")
        if not calls and (choice == "required" or isinstance(choice, Mapping)):
            return _fail("tool call required but none made")
        for tc in calls:
            function = getattr(tc, "function", None)
            name = getattr(function, "name", None)
            if name not in specs:
                return _fail(f"unknown tool {name!r}")
            try:
                args = json.loads(getattr(function, "arguments", "") or "{}")
            except ValueError:
                return _fail(f"tool {name}: arguments are not valid JSON")
            error = _schema_errors(args, specs[name])
            if error:
                return _fail(f"tool {name}: {error}")
        return _ok()

    return _Fn("valid_tool_calls", judge)


# -- confidence ---------------------------------------------------------------------------------


def logprob_confidence(min_mean_prob: float = 0.8) -> Check:
    """Fail an answer whose mean token probability is below `min_mean_prob`.

    When it helps: short answers (a label, a yes/no, an extracted field), where a model
    that is unsure spreads its probability. Less useful for long free text, where many
    tokens are legitimately uncertain. The cascade asks the tier for ``logprobs=True``; an
    answer without logprobs passes (nothing to judge).

    Args:
        min_mean_prob: the geometric-mean token probability an answer needs, in (0, 1].
    """
    if not 0 < min_mean_prob <= 1:
        msg = f"logprob_confidence: min_mean_prob must be in (0, 1], got {min_mean_prob!r}"
        raise ConfigurationError(msg)

    def judge(call: Call, response: Any) -> Verdict:
        choices = _choices(response)
        logprobs = getattr(choices[0], "logprobs", None) if choices else None
        content = getattr(logprobs, "content", None) or []
        if not content:
            return _ok()
        mean = math.exp(sum(t.logprob for t in content) / len(content))
        if mean < min_mean_prob:
            return _fail(f"low confidence ({mean:.2f})", mean)
        return _ok(mean)

    return _Fn("logprob_confidence", judge, {"logprobs": True})


def _last_number(text: str) -> str:
    numbers = re.findall(r"-?\d[\d,]*\.?\d*", text)
    if numbers:
        return str(numbers[-1]).replace(",", "").rstrip(".")
    return " ".join(text.lower().split())


class _SelfAgreement(Check):
    name = "self_agreement"

    def __init__(self, n: int, min_share: float, extract: Callable[[str], str]) -> None:
        self.n, self.min_share, self.extract = n, min_share, extract

    @override
    def evaluate(self, call: Call, response: Any) -> CheckFlow:
        texts = [str(c.message.content or "") for c in _choices(response)]
        if len(texts) < self.n:
            extra = self.n - len(texts)
            side = call.side_call("samples", **{**dict(call.kwargs), "n": extra})
            more = yield side
            texts += [str(c.message.content or "") for c in _choices(more)]
        answers = Counter(self.extract(t) for t in texts if t.strip())
        if not answers:
            return _fail("no samples to compare", 0.0)
        top = answers.most_common(1)[0][1] / len(texts)
        if top < self.min_share:
            return _fail(f"samples disagree ({top:.0%} agree)", top)
        return _ok(top)


def self_agreement(
    n: int = 5,
    *,
    min_share: float = 0.6,
    extract: Callable[[str], str] = _last_number,
) -> Check:
    """Fail an answer when several samples of the same cheap model disagree.

    When it helps: reasoning tasks with a short final answer (math, multiple choice,
    classification): when a model's samples agree it is usually right, when they scatter
    it is guessing. It costs ``n - 1`` more cheap completions, requested as one side call
    with ``n`` (recorded as overhead); ask the tier for ``n`` yourself to avoid the extra
    prompt. Not for open-ended text, where samples always differ.

    Args:
        n: how many samples to compare, including the answer itself (≥ 2).
        min_share: the share of samples that must give the most common answer.
        extract: maps an answer to what must agree (default: its last number, else its
            normalised text).
    """
    if n < 2:
        msg = f"self_agreement: n must be at least 2, got {n!r}"
        raise ConfigurationError(msg)
    if not 0 < min_share <= 1:
        msg = f"self_agreement: min_share must be in (0, 1], got {min_share!r}"
        raise ConfigurationError(msg)
    return _SelfAgreement(n, min_share, extract)


_JUDGE_PROMPT = (
    "Rate how well the ANSWER responds to the REQUEST: correct, complete and on topic. "
    "Reply with a single integer from 1 (useless) to 10 (excellent) and nothing else.\n\n"
    "REQUEST:\n{request}\n\nANSWER:\n{answer}"
)


class _Judge(Check):
    name = "llm_judge"

    def __init__(self, model: str, threshold: float, prompt: str, max_chars: int) -> None:
        self.model, self.threshold = model, threshold
        self.prompt, self.max_chars = prompt, max_chars

    @override
    def evaluate(self, call: Call, response: Any) -> CheckFlow:
        request = "\n".join(
            f"{m.get('role')}: {m.get('content')}" for m in call.messages if isinstance(m, Mapping)
        )
        content = self.prompt.format(
            request=request[-self.max_chars :], answer=_text(response)[: self.max_chars]
        )
        verdict = yield call.side_call(
            "judge",
            model=self.model,
            messages=[{"role": "user", "content": content}],
            max_tokens=4,
            temperature=0,
        )
        match = re.search(r"\d+", _text(verdict))
        if match is None:
            return _fail("judge gave no score")
        value = min(max(int(match.group()), 1), 10) / 10
        if value < self.threshold:
            return _fail(f"judge score {value:.1f}", value)
        return _ok(value)


def llm_judge(
    model: str,
    *,
    threshold: float = 0.7,
    prompt: str = _JUDGE_PROMPT,
    max_chars: int = 4000,
) -> Check:
    """Ask a cheap judge model to rate the answer from 1 to 10; fail below `threshold`.

    When it helps: open-ended answers (advice, summaries, explanations) where no rule can
    tell good from bad. It costs one short judge call per checked answer (recorded as
    overhead with purpose ``"judge"``); judges are lenient with fluent wrong answers, so
    prefer a rule-based check when one exists.

    Args:
        model: the judge model (cheap; the same as the tier is fine).
        threshold: the score in (0, 1] (rating / 10) an answer needs.
        prompt: the judge prompt, with ``{request}`` and ``{answer}`` placeholders.
        max_chars: how much of the request and the answer the judge sees.
    """
    if not model:
        msg = "llm_judge needs a model"
        raise ConfigurationError(msg)
    return _Judge(model, threshold, prompt, max_chars)


# -- user scores and composition --------------------------------------------------------------


def score(
    fn: Callable[[Call, Any], float | bool],
    *,
    threshold: float = 0.5,
    name: str | None = None,
) -> Check:
    """Turn your own scorer ``fn(call, response) -> float | bool`` into a check.

    When it helps: you have a signal costwise can't know: a learned model of when the cheap
    model is right, a unit test for generated code, a domain regex. A ``bool`` is the
    verdict; a number passes when it is at least `threshold`.

    Args:
        fn: the scorer; it gets the tier's request and its response.
        threshold: the score a numeric result needs to pass.
        name: shown in rejection reasons (default: the function's name).

    Example:
        >>> score(lambda call, resp: len(resp.choices[0].message.content) > 20)
    """
    label = str(name or getattr(fn, "__name__", "score"))

    def judge(call: Call, response: Any) -> Verdict:
        value = fn(call, response)
        if isinstance(value, bool):
            return _ok(float(value)) if value else _fail(f"{label}: failed", 0.0)
        value = float(value)
        if value >= threshold:
            return _ok(value)
        return _fail(f"{label}: score {value:.2f} < {threshold:.2f}", value)

    return _Fn(label, judge)


def as_check(obj: Check | Callable[[Call, Any], float | bool]) -> Check:
    """A `Check` from a check or a scorer callable (see `score`).

    Raises:
        ConfigurationError: `obj` is neither.
    """
    if isinstance(obj, Check):
        return obj
    if callable(obj):
        return score(obj)
    msg = f"{obj!r} is not a check: pass a Check or a callable (call, response) -> float | bool"
    raise ConfigurationError(msg)


def _merged_request(checks: Sequence[Check]) -> Mapping[str, Any]:
    merged: dict[str, Any] = {}
    for check in checks:
        merged.update(check.request)
    return merged


class _AllOf(Check):
    def __init__(self, checks: Sequence[Check]) -> None:
        self.checks = tuple(checks)
        self.name = "all_of(" + ", ".join(c.name for c in self.checks) + ")"
        self.request = MappingProxyType(dict(_merged_request(self.checks)))

    @override
    def evaluate(self, call: Call, response: Any) -> CheckFlow:
        scores = []
        for check in self.checks:  # cheapest first is the caller's job: we stop at a failure
            verdict = yield from run_check(check, call, response)
            if not verdict.passed:
                return verdict
            if verdict.score is not None:
                scores.append(verdict.score)
        return _ok(min(scores) if scores else None)


class _AnyOf(Check):
    def __init__(self, checks: Sequence[Check]) -> None:
        self.checks = tuple(checks)
        self.name = "any_of(" + ", ".join(c.name for c in self.checks) + ")"
        self.request = MappingProxyType(dict(_merged_request(self.checks)))

    @override
    def evaluate(self, call: Call, response: Any) -> CheckFlow:
        reasons = []
        for check in self.checks:
            verdict = yield from run_check(check, call, response)
            if verdict.passed:
                return verdict
            reasons.append(verdict.reason or check.name)
        return _fail(" and ".join(reasons))


def all_of(*checks: Check | Callable[[Call, Any], float | bool]) -> Check:
    """A check that passes when every one of `checks` passes (stops at the first failure).

    Put free checks (`not_empty`, `not_truncated`) before costly ones (`llm_judge`), so a
    cheap rejection saves the judge call.
    """
    if not checks:
        msg = "all_of needs at least one check"
        raise ConfigurationError(msg)
    return _AllOf([as_check(c) for c in checks])


def any_of(*checks: Check | Callable[[Call, Any], float | bool]) -> Check:
    """A check that passes when at least one of `checks` passes (stops at the first pass)."""
    if not checks:
        msg = "any_of needs at least one check"
        raise ConfigurationError(msg)
    return _AnyOf([as_check(c) for c in checks])
