"""Tests for costwise.tokens: the heuristic, tiktoken with its fallback, chat accounting."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from costwise import CostwiseWarning
from costwise.tokens import (
    IMAGE_TOKENS,
    HeuristicTokenizer,
    TiktokenTokenizer,
    Tokenizer,
    default_tokenizer,
    offline_tiktoken_cache,
)

PROSE = (
    "Large language models are billed by the token, and the price of a token differs by "
    "two orders of magnitude between the largest and the smallest models. A request that "
    "a small model answers well costs a hundredth of what the flagship charges, so routing "
    "easy questions to cheap models is the single biggest saving most teams can make. "
    "Caching helps too: a repeated system prompt is read from the provider's prompt cache "
    "at a tenth of the normal input price, and an identical request can be answered from a "
    "local cache for nothing at all. None of this works without measurement, which is why "
    "every call is recorded with its feature, its model, its tokens and its exact cost.\n"
) * 8

CHAT_LINES = [
    "Hello, world!",
    "What's the weather like in Paris today?",
    "Summarize the following article in 3 bullet points.",
    "You are a helpful assistant.",
    '{"city": "Paris", "unit": "celsius"}',
]


def _source(name: str) -> str:
    return resources.files("costwise").joinpath(name).read_text("utf-8")


@pytest.fixture
def real_tiktoken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TiktokenTokenizer]:
    """A TiktokenTokenizer backed by real encodings copied from bpe-openai (no network)."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(offline_tiktoken_cache(tmp_path / "cache")))
    tokenizer = TiktokenTokenizer()
    yield tokenizer
    assert tokenizer.exact is not False, "tiktoken fell back although its cache was filled"


class TestHeuristic:
    @pytest.mark.parametrize(
        ("name", "tolerance"),
        [("prose", 0.10), ("pricing.py", 0.10), ("tokens.py", 0.10), ("prices.json", 0.10)],
    )
    def test_within_tolerance_of_tiktoken(
        self, real_tiktoken: TiktokenTokenizer, name: str, tolerance: float
    ) -> None:
        """The estimate is within 10% of o200k_base on prose, code and JSON."""
        text = (
            PROSE
            if name == "prose"
            else _source(name if name != "prices.json" else "data/prices.json")
        )
        exact = real_tiktoken.count(text, "gpt-4o")
        estimate = HeuristicTokenizer().count(text)
        assert abs(estimate - exact) <= tolerance * exact, (estimate, exact)

    @pytest.mark.parametrize("line", CHAT_LINES)
    def test_short_texts_are_close(self, real_tiktoken: TiktokenTokenizer, line: str) -> None:
        """Single chat lines are off by at most three tokens."""
        exact = real_tiktoken.count(line, "gpt-4o")
        assert abs(HeuristicTokenizer().count(line) - exact) <= 3

    def test_empty_and_deterministic(self) -> None:
        """Empty text is zero tokens; any other text at least one; same text, same count."""
        tok = HeuristicTokenizer()
        assert tok.count("") == 0
        assert tok.count(" ") == 1
        assert tok.count(PROSE) == tok.count(PROSE)
        assert tok.count("日本語のテキスト") > 0


class TestTiktoken:
    def test_exact_counts_offline(self, real_tiktoken: TiktokenTokenizer) -> None:
        """With the offline cache, counts are tiktoken's own."""
        import tiktoken

        o200k = tiktoken.get_encoding("o200k_base")
        cl100k = tiktoken.get_encoding("cl100k_base")
        text = "Hello, world! Ünïcödé and <|endoftext|> are plain text here."
        assert real_tiktoken.count(text, "gpt-4o") == len(o200k.encode(text, disallowed_special=()))
        assert real_tiktoken.count(text, "openai/gpt-4.1-mini") == len(
            o200k.encode(text, disallowed_special=())
        )
        assert real_tiktoken.count(text, "gpt-4-0613") == len(
            cl100k.encode(text, disallowed_special=())
        )
        assert real_tiktoken.count(text, "gpt-3.5-turbo") == len(
            cl100k.encode(text, disallowed_special=())
        )
        assert real_tiktoken.count("", "gpt-4o") == 0
        assert real_tiktoken.exact is True

    def test_fixed_encoding(self, real_tiktoken: TiktokenTokenizer) -> None:
        """encoding= overrides the choice by model name."""
        import tiktoken

        fixed = TiktokenTokenizer(encoding="cl100k_base")
        text = "def f(x):\n    return x ** 2\n"
        cl100k = tiktoken.get_encoding("cl100k_base")
        assert fixed.count(text, "gpt-4o") == len(cl100k.encode(text))

    def test_offline_cache_files(self, tmp_path: Path) -> None:
        """Files are named by the sha1 of tiktoken's blob URL and pass its sha256 check."""
        cache = offline_tiktoken_cache(tmp_path)
        url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
        blob = (cache / hashlib.sha1(url.encode()).hexdigest()).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == (
            "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
        )
        assert len(list(cache.iterdir())) == 2
        assert offline_tiktoken_cache(tmp_path) == cache  # idempotent

    def test_default_tokenizer(self) -> None:
        """default_tokenizer() is a TiktokenTokenizer and both satisfy the protocol."""
        tok = default_tokenizer()
        assert isinstance(tok, TiktokenTokenizer)
        assert isinstance(tok, Tokenizer)
        assert isinstance(HeuristicTokenizer(), Tokenizer)


def _run_isolated(script: str, env_overrides: dict[str, str]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(env_overrides)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


_FALLBACK_SCRIPT = """
    import json, sys, warnings
    {prelude}
    from costwise import CostwiseWarning
    from costwise.tokens import HeuristicTokenizer, TiktokenTokenizer
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tok = TiktokenTokenizer()
        counts = [tok.count("hello world", "gpt-4o"), tok.count("hello again", "gpt-4")]
        n = tok.count_messages([{{"role": "user", "content": "hi"}}], "gpt-4o")
    heuristic = HeuristicTokenizer()
    print(json.dumps({{
        "warnings": [str(w.message) for w in caught if issubclass(w.category, CostwiseWarning)],
        "other": [str(w.message) for w in caught if not issubclass(w.category, CostwiseWarning)],
        "counts": counts,
        "expected": [heuristic.count("hello world"), heuristic.count("hello again")],
        "messages": n,
        "expected_messages": heuristic.count_messages([{{"role": "user", "content": "hi"}}]),
        "exact": tok.exact,
    }}))
"""


class TestFallback:
    def test_warns_once_when_encodings_cannot_download(self, tmp_path: Path) -> None:
        """Empty cache, no network: one CostwiseWarning, then heuristic counts."""
        empty = tmp_path / "empty-cache"
        empty.mkdir()
        dead_proxy = "http://127.0.0.1:9"  # refused at once; nothing leaves this machine
        data = _run_isolated(
            _FALLBACK_SCRIPT.format(prelude=""),
            {
                "TIKTOKEN_CACHE_DIR": str(empty),
                "HTTPS_PROXY": dead_proxy,
                "https_proxy": dead_proxy,
                "HTTP_PROXY": dead_proxy,
                "http_proxy": dead_proxy,
                "NO_PROXY": "",
                "no_proxy": "",
            },
        )
        assert len(data["warnings"]) == 1, data
        assert data["warnings"][0].startswith("tiktoken encodings could not be loaded (")
        assert data["warnings"][0].endswith("token counts are estimates from HeuristicTokenizer")
        assert data["counts"] == data["expected"]
        assert data["messages"] == data["expected_messages"]
        assert data["exact"] is False
        assert list(empty.iterdir()) == []

    def test_warns_once_without_tiktoken(self) -> None:
        """tiktoken not installed: the same single warning."""
        data = _run_isolated(
            _FALLBACK_SCRIPT.format(prelude="sys.modules['tiktoken'] = None"),
            {"TIKTOKEN_CACHE_DIR": "/nonexistent"},
        )
        assert len(data["warnings"]) == 1, data
        assert "ImportError" in data["warnings"][0] or "ModuleNotFound" in data["warnings"][0]
        assert data["counts"] == data["expected"]

    def test_in_process_fallback_warning(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """In-process too, the fallback is a CostwiseWarning (asserted, never silent)."""
        monkeypatch.setitem(sys.modules, "tiktoken", None)
        tok = TiktokenTokenizer()
        with pytest.warns(CostwiseWarning, match="could not be loaded"):
            assert tok.count("hello world") == HeuristicTokenizer().count("hello world")
        assert tok.count("again") == HeuristicTokenizer().count("again")


def test_import_does_not_import_tiktoken() -> None:
    """Importing costwise.tokens leaves tiktoken unimported until the first count."""
    data = _run_isolated(
        """
        import json, sys
        import costwise.tokens
        before = "tiktoken" in sys.modules
        costwise.tokens.HeuristicTokenizer().count("x")
        print(json.dumps({"before": before, "after": "tiktoken" in sys.modules}))
        """,
        {},
    )
    assert data == {"before": False, "after": False}


class TestMessages:
    def test_openai_accounting(self) -> None:
        """3 tokens per message, 3 for reply priming, +1 for a name."""
        tok = HeuristicTokenizer()
        messages = [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "name": "ann", "content": "Hi there"},
        ]
        expected = (
            3
            + 3 + tok.count("system") + tok.count("You are terse.")
            + 3 + tok.count("user") + tok.count("ann") + 1 + tok.count("Hi there")
        )  # fmt: skip
        assert tok.count_messages(messages) == expected

    def test_list_content_counts_text_and_images(self) -> None:
        """Text parts are counted; each image costs a fixed IMAGE_TOKENS."""
        tok = HeuristicTokenizer()
        text_only = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}]}]
        with_images = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            }
        ]
        as_string = [{"role": "user", "content": "What is this?"}]
        assert tok.count_messages(text_only) == tok.count_messages(as_string)
        assert tok.count_messages(with_images) == tok.count_messages(text_only) + 2 * IMAGE_TOKENS

    def test_tool_calls_count_name_and_arguments(self) -> None:
        """Assistant tool calls count their function names and JSON arguments."""
        tok = HeuristicTokenizer()
        arguments = json.dumps({"city": "Paris", "days": 3})
        base: list[dict[str, Any]] = [{"role": "assistant", "content": None}]
        with_call: list[dict[str, Any]] = [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_forecast", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ]
        expected = (
            tok.count_messages(base)
            + tok.count("get_forecast")
            + tok.count(arguments)
            + 3
            + tok.count("tool")
            + tok.count("call_1")
            + tok.count("sunny")
        )
        assert tok.count_messages(with_call) == expected

    def test_tiktoken_message_count_matches_cookbook(
        self, real_tiktoken: TiktokenTokenizer
    ) -> None:
        """With real encodings the count follows OpenAI's cookbook formula exactly."""
        import tiktoken

        enc = tiktoken.get_encoding("o200k_base")
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": [{"type": "text", "text": "Name three colours."}]},
        ]
        texts = ["You are a helpful assistant.", "Name three colours."]
        expected = 3 + sum(
            3 + len(enc.encode(m["role"])) + len(enc.encode(text))
            for m, text in zip(messages, texts, strict=True)
        )
        assert real_tiktoken.count_messages(messages, "gpt-4o") == expected

    def test_empty_conversation(self) -> None:
        """No messages still costs the reply priming."""
        assert HeuristicTokenizer().count_messages([]) == 3


class RecordingTokenizer(HeuristicTokenizer):
    """A real tokenizer that notes which models it was asked to prefetch."""

    def __init__(self) -> None:
        self.prefetched: list[str | None] = []

    def prefetch(self, model: str | None = None) -> None:
        self.prefetched.append(model)


_ASK: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Tell me about PIN resets."}],
}


class TestPrefetch:
    """A stream without usage will need a count when it ends: the load starts when it is sent."""

    def test_prefetch_loads_the_encoding_in_a_thread_of_its_own(self) -> None:
        # A fresh process: tiktoken caches loaded encodings for the whole process.
        data = _run_isolated(
            """
            import json, threading
            from costwise.tokens import TiktokenTokenizer
            tok = TiktokenTokenizer()
            tok.prefetch("gpt-4o")
            loaders = [t for t in threading.enumerate() if t.name == "costwise-tokenizer-load"]
            for t in loaders:
                t.join()
            tok.prefetch("gpt-4o")  # loaded: nothing more to do
            again = [t for t in threading.enumerate() if t.name == "costwise-tokenizer-load"]
            print(json.dumps({"loaders": len(loaders), "exact": tok.exact, "again": len(again),
                              "count": tok.count("hello world", "gpt-4o")}))
            """,
            {},
        )
        assert data == {"loaders": 1, "exact": True, "again": 0, "count": 2}

    def test_prefetch_after_a_fallback_does_nothing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "tiktoken", None)
        tok = TiktokenTokenizer()
        with pytest.warns(CostwiseWarning, match="could not be loaded"):
            tok.count("hello")
        tok.prefetch("gpt-4o")
        assert tok.exact is False and tok.count("hello") == HeuristicTokenizer().count("hello")

    @pytest.mark.parametrize(
        ("extra", "expected"),
        [
            ({"stream": True}, ["gpt-4o-mini"]),
            ({"stream": True, "stream_options": {"include_usage": True}}, []),
            ({}, []),
        ],
    )
    def test_the_client_prefetches_for_streams_without_usage(
        self, extra: dict[str, Any], expected: list[str]
    ) -> None:
        from costwise.ledger import MemoryStore
        from costwise.testing import fake_client

        tok = RecordingTokenizer()
        client = fake_client(ledger=MemoryStore(), tokenizer=tok)
        out = client.chat.completions.create(**_ASK, **extra)
        if extra.get("stream"):
            list(out)
        assert tok.prefetched == expected
        (entry,) = client.ledger.entries()
        assert entry.estimated == (expected != [])

    @pytest.mark.anyio
    @pytest.mark.parametrize(
        ("extra", "expected"),
        [
            ({"stream": True}, ["gpt-4o-mini"]),
            ({"stream": True, "stream_options": {"include_usage": True}}, []),
            ({}, []),
        ],
    )
    async def test_the_async_client_prefetches_for_streams_without_usage(
        self, extra: dict[str, Any], expected: list[str]
    ) -> None:
        from costwise.ledger import MemoryStore
        from costwise.testing import fake_async_client

        tok = RecordingTokenizer()
        client = fake_async_client(ledger=MemoryStore(), tokenizer=tok)
        out = await client.chat.completions.create(**_ASK, **extra)
        if extra.get("stream"):
            async for _ in out:
                pass
        assert tok.prefetched == expected
        (entry,) = client.ledger.entries()
        assert entry.estimated == (expected != [])
