"""The cache key: every output-affecting parameter counts, nothing else does."""

from __future__ import annotations

import inspect
import time
from typing import Any

import pytest
from openai import NOT_GIVEN, omit
from openai.resources.chat.completions import AsyncCompletions, Completions

from costwise.cache import KEY_POLICY, UncacheableRequest, request_key

BASE: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "temperature": 0,
}

# A value for every output-affecting parameter that differs from BASE.
CHANGES: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "What is the capital of Spain?"}],
    "audio": {"voice": "alloy", "format": "wav"},
    "modalities": ["text", "audio"],
    "prediction": {"type": "content", "content": "Paris"},
    "web_search_options": {"search_context_size": "low"},
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "functions": [{"name": "f", "parameters": {}}],
    "function_call": "auto",
    "response_format": {"type": "json_object"},
    "temperature": 0.5,
    "top_p": 0.9,
    "seed": 7,
    "n": 2,
    "max_tokens": 10,
    "max_completion_tokens": 10,
    "stop": ["\n"],
    "logit_bias": {"50256": -100},
    "logprobs": True,
    "top_logprobs": 3,
    "frequency_penalty": 0.5,
    "presence_penalty": 0.5,
    "reasoning_effort": "low",
    "verbosity": "low",
    "moderation": {"mode": "strict"},
    "extra_body": {"top_k": 5},
    "extra_query": {"api-version": "2024-10-21"},
}

IGNORED: dict[str, Any] = {
    "user": "user-123",
    "safety_identifier": "abc",
    "metadata": {"request": "42"},
    "store": True,
    "service_tier": "flex",
    "prompt_cache_key": "k",
    "prompt_cache_options": {"x": 1},
    "prompt_cache_retention": "24h",
    "stream": True,
    "stream_options": {"include_usage": True},
    "extra_headers": {"X-Trace": "1"},
    "timeout": 3.0,
}


@pytest.mark.parametrize(
    "method", [Completions.create, AsyncCompletions.create], ids=["sync", "async"]
)
def test_every_sdk_parameter_is_classified(method: Any) -> None:
    """A new `create` parameter in the SDK fails here until KEY_POLICY classifies it."""
    params = set(inspect.signature(method).parameters) - {"self"}
    missing = sorted(params - set(KEY_POLICY))
    assert not missing, f"classify these create() parameters in KEY_POLICY: {missing}"


def test_test_tables_cover_the_policy() -> None:
    """Every classified parameter is exercised by the tests below."""
    assert {k for k, v in KEY_POLICY.items() if v == "output"} == set(CHANGES)
    assert {k for k, v in KEY_POLICY.items() if v == "ignored"} == set(IGNORED)


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_output_parameter_changes_key(name: str) -> None:
    """Changing an output-affecting parameter changes the key."""
    assert request_key({**BASE, name: CHANGES[name]}, "s") != request_key(BASE, "s")


@pytest.mark.parametrize("name", sorted(IGNORED))
def test_ignored_parameter_keeps_key(name: str) -> None:
    """Parameters that cannot change the answer do not change the key."""
    assert request_key({**BASE, name: IGNORED[name]}, "s") == request_key(BASE, "s")


def test_unknown_parameter_counts() -> None:
    """A parameter the policy does not know is keyed (safe: can only cost a hit)."""
    assert request_key({**BASE, "brand_new_knob": 1}, "s") != request_key(BASE, "s")


def test_dict_order_and_number_spelling_do_not_matter() -> None:
    """Equal requests written differently share a key."""
    a = {
        **BASE,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": True}},
    }
    b = {
        "response_format": {"json_schema": {"strict": True, "name": "x"}, "type": "json_schema"},
        "temperature": 0.0,
        "messages": [{"content": "What is the capital of France?", "role": "user"}],
        "model": "gpt-4o-mini",
    }
    assert request_key(a, "s") == request_key(b, "s")


def test_not_given_counts_as_absent() -> None:
    """NOT_GIVEN and omit are the same as leaving the argument out."""
    key = request_key(BASE, "s")
    assert request_key({**BASE, "seed": NOT_GIVEN}, "s") == key
    assert request_key({**BASE, "top_p": omit}, "s") == key


def test_every_message_counts() -> None:
    """System, tool and image messages are all part of the key, in order."""
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    key = request_key({**BASE, "messages": msgs}, "s")
    for i in range(len(msgs)):
        changed = [dict(m) for m in msgs]
        changed[i]["content"] = "something else"
        assert request_key({**BASE, "messages": changed}, "s") != key
    swapped = [msgs[0], msgs[2], msgs[1]]
    assert request_key({**BASE, "messages": swapped}, "s") != key
    image = [dict(m) for m in msgs]
    image[1] = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://x/b.png"}},
        ],
    }
    assert request_key({**BASE, "messages": image}, "s") != key


@pytest.mark.parametrize("size", [10, 300, 5000], ids=["short", "medium", "long"])
def test_long_texts_are_keyed_exactly(size: int) -> None:
    """Long texts (hashed outside the JSON) still change the key by one character."""
    text = "a" * size
    key = request_key({**BASE, "messages": [{"role": "user", "content": text}]}, "s")
    other = request_key({**BASE, "messages": [{"role": "user", "content": text[:-1] + "b"}]}, "s")
    split = request_key(
        {
            **BASE,
            "messages": [
                {"role": "user", "content": text[: size // 2]},
                {"role": "user", "content": text[size // 2 :]},
            ],
        },
        "s",
    )
    parts = request_key(
        {**BASE, "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}, "s"
    )
    assert len({key, other, split, parts}) == 4


def test_scope_changes_key() -> None:
    """The same request in two scopes has two keys."""
    assert request_key(BASE, "tenant-a") != request_key(BASE, "tenant-b")


def test_pydantic_values_are_keyed_by_content() -> None:
    """A pydantic object in the request is keyed by its JSON dump."""
    from openai.types.chat import ChatCompletionMessage

    msg = ChatCompletionMessage(role="assistant", content="Paris")
    as_dict = {"role": "assistant", "content": "Paris"}
    a = request_key({**BASE, "messages": [*BASE["messages"], msg]}, "s")
    b = request_key({**BASE, "messages": [*BASE["messages"], as_dict]}, "s")
    assert a != request_key(BASE, "s")
    assert isinstance(b, str)


def test_unencodable_value_raises() -> None:
    """A value with no canonical JSON form makes the request uncacheable."""
    with pytest.raises(UncacheableRequest):
        request_key({**BASE, "extra_body": {"x": object()}}, "s")


def test_key_is_fast_for_a_2k_token_request() -> None:
    """Keying a ~2,000-token request takes well under a millisecond (benchmark: ≤ 15 µs)."""
    text = "The quick brown fox jumps over the lazy dog. " * 220
    kw = {
        **BASE,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
    }
    start = time.perf_counter()
    for _ in range(200):
        request_key(kw, "s")
    assert (time.perf_counter() - start) / 200 < 1e-3
