"""The cascade's check library: each check alone, composition, and checks that raise."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletion

from costwise import Call, CostwiseWarning
from costwise._call import CallTrace
from costwise._exceptions import ConfigurationError
from costwise.strategies.checks import (
    Check,
    Verdict,
    all_of,
    any_of,
    arithmetic_consistent,
    as_check,
    final_answer,
    llm_judge,
    logprob_confidence,
    matches_schema,
    no_refusal,
    not_empty,
    not_truncated,
    run_check,
    score,
    self_agreement,
    valid_json,
    valid_tool_calls,
)
from costwise.testing import chat_completion


def make_call(**kwargs: Any) -> Call:
    kwargs.setdefault("model", "gpt-4o-mini")
    kwargs.setdefault("messages", [{"role": "user", "content": "question?"}])
    return Call(kwargs=kwargs, feature="f", trace=CallTrace(feature="f", baseline_model="gpt-4o"))


def reply(content: str | None = "fine answer", **kw: Any) -> ChatCompletion:
    return ChatCompletion.model_validate(chat_completion(content, **kw))


def verdict(check: Check, response: Any, call: Call | None = None) -> Verdict:
    gen = run_check(check, call or make_call(), response)
    with pytest.raises(StopIteration) as stop:
        next(gen)
    return stop.value.value  # type: ignore[no-any-return]


def test_not_empty() -> None:
    """Empty text fails; text or a tool call passes."""
    assert not verdict(not_empty(), reply("  ")).passed
    assert verdict(not_empty(), reply("ok")).passed
    tool = reply(None, tool_calls=[{"name": "f", "arguments": {}}])
    assert verdict(not_empty(), tool).passed


@pytest.mark.parametrize(
    ("text", "passed"),
    [
        ("I'm sorry, but I can't help with that.", False),
        ("I don't know.", False),
        ("As an AI language model, I cannot say.", False),
        ("Paris is the capital of France.", True),
    ],
)
def test_no_refusal(text: str, passed: bool) -> None:
    """Refusals and "I don't know" fail; a plain answer passes."""
    assert verdict(no_refusal(), reply(text)).passed is passed


def test_not_truncated() -> None:
    """finish_reason == "length" fails."""
    assert not verdict(not_truncated(), reply("cut", finish_reason="length")).passed
    assert verdict(not_truncated(), reply("whole")).passed


@pytest.mark.parametrize(
    ("text", "passed"),
    [
        ("She has 16 - 3 = 13 eggs, so 13 * 2 = <<13*2=26>>26.\n#### 26", True),
        ("She has 16 - 3 = 14 eggs left.\n#### 14", False),
        ("Total: $<<20000-20000*21/100=16000>>16,000.", False),
        ("So 4 x 12 + 2 = 50 and 1,000 * 2 = 2,000 and 7.5% of 19 = 1.43", True),
        ("No arithmetic here at all.", True),
    ],
    ids=["right", "wrong-step", "wrong-annotation", "forms", "nothing-to-check"],
)
def test_arithmetic_consistent(text: str, passed: bool) -> None:
    """Written-out steps are recomputed; a wrong one fails the answer."""
    verdict_ = verdict(arithmetic_consistent(), reply(text))
    assert verdict_.passed is passed
    if not passed:
        assert "wrong arithmetic" in (verdict_.reason or "")
    assert verdict(arithmetic_consistent(max_wrong=1), reply(text)).passed


def test_final_answer() -> None:
    """A clear final number passes; rambling and (with integer=True) fractions fail."""
    assert verdict(final_answer(), reply("so 3 + 4 = 7.\n#### 7")).passed
    assert not verdict(final_answer(), reply("It depends on many things.")).passed
    assert not verdict(final_answer(integer=True), reply("The answer is 2.5")).passed


def test_valid_json_only_when_asked() -> None:
    """Invalid JSON fails only when response_format asks for JSON."""
    asked = make_call(response_format={"type": "json_object"})
    assert not verdict(valid_json(), reply("{nope"), asked).passed
    assert verdict(valid_json(), reply('{"a": 1}'), asked).passed
    assert verdict(valid_json(), reply("{nope")).passed


def test_matches_schema_reads_the_request() -> None:
    """The request's json_schema is enforced: types, required, enum."""
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["pos", "neg"]}},
        "required": ["label"],
        "additionalProperties": False,
    }
    call = make_call(
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    )
    assert verdict(matches_schema(), reply('{"label": "pos"}'), call).passed
    assert not verdict(matches_schema(), reply('{"label": "meh"}'), call).passed
    assert not verdict(matches_schema(), reply("{}"), call).passed
    assert not verdict(matches_schema(), reply('{"label": "pos", "x": 1}'), call).passed
    assert verdict(matches_schema({"type": "array"}), reply("[1]")).passed


def test_valid_tool_calls() -> None:
    """Unknown tools, bad argument JSON and missing required arguments fail."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    call = make_call(tools=tools, tool_choice="required")
    good = reply(None, tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    unknown = reply(None, tool_calls=[{"name": "get_time", "arguments": {}}])
    missing = reply(None, tool_calls=[{"name": "get_weather", "arguments": {}}])
    broken = reply(None, tool_calls=[{"name": "get_weather", "arguments": "{oops"}])
    assert verdict(valid_tool_calls(), good, call).passed
    for bad in (unknown, missing, broken, reply("no call")):
        assert not verdict(valid_tool_calls(), bad, call).passed


def test_logprob_confidence() -> None:
    """Low mean token probability fails; the check asks the tier for logprobs."""
    body = chat_completion("yes")
    body["choices"][0]["logprobs"] = {
        "content": [{"token": "yes", "logprob": -2.0, "bytes": None, "top_logprobs": []}],
        "refusal": None,
    }
    check = logprob_confidence(0.5)
    assert check.request == {"logprobs": True}
    v = verdict(check, ChatCompletion.model_validate(body))
    assert not v.passed and v.score is not None and v.score < 0.2
    assert verdict(check, reply("no logprobs")).passed
    with pytest.raises(ConfigurationError):
        logprob_confidence(0)


def test_self_agreement_with_enough_choices() -> None:
    """With n choices already in the answer no side call is made; disagreement fails."""
    body = chat_completion("#### 4")
    body["choices"] += [
        {**body["choices"][0], "index": i, "message": {"role": "assistant", "content": text}}
        for i, text in enumerate(["so #### 5", "#### 6"], 1)
    ]
    assert not verdict(self_agreement(3), ChatCompletion.model_validate(body)).passed
    with pytest.raises(ConfigurationError):
        self_agreement(1)


def test_score_and_composition() -> None:
    """A user scorer is a check; all_of stops at the first failure, any_of at a pass."""
    seen: list[str] = []

    def long_enough(call: Call, resp: Any) -> float:
        seen.append("scored")
        return len(resp.choices[0].message.content) / 10

    assert verdict(score(long_enough, threshold=0.5), reply("0123456789")).passed
    v = verdict(all_of(not_empty(), long_enough), reply("  "))
    assert not v.passed and seen == ["scored"]  # the scorer never ran on the empty answer
    assert verdict(any_of(not_truncated(), not_empty()), reply("x", finish_reason="length")).passed
    assert verdict(as_check(lambda call, resp: True), reply()).passed
    with pytest.raises(ConfigurationError):
        as_check("nope")  # type: ignore[arg-type]


def test_a_check_that_raises_fails_with_a_warning() -> None:
    """A raising check counts as failed and warns; it never raises out."""

    def broken(call: Call, resp: Any) -> bool:
        raise RuntimeError("boom")

    with pytest.warns(CostwiseWarning, match="boom"):
        v = verdict(as_check(broken), reply())
    assert not v.passed and v.reason and "RuntimeError" in v.reason


def test_judge_yields_a_side_call() -> None:
    """llm_judge asks the judge model via a side call and reads its score."""
    gen = run_check(llm_judge("gpt-4o-mini", threshold=0.7), make_call(), reply("an answer"))
    side = next(gen)
    assert side.purpose == "judge" and side.kwargs["model"] == "gpt-4o-mini"
    assert "an answer" in json.dumps(side.kwargs["messages"])
    with pytest.raises(StopIteration) as stop:
        gen.send(reply("4"))
    assert not stop.value.value.passed
