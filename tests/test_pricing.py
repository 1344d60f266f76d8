"""Tests for costwise.pricing: exact money, the bundled table, lookup and price sheets."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import textwrap
import timeit
import warnings
from decimal import Decimal, localcontext
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from openai.types import CompletionUsage

from costwise import ConfigurationError, CostwiseWarning, PricingError, UnknownModelError
from costwise.pricing import (
    CAPABILITIES,
    Price,
    PriceTable,
    Usage,
    from_nanos,
    to_nanos,
)

D = Decimal
M = 1_000_000


def _bundled_json() -> dict[str, Any]:
    text = resources.files("costwise").joinpath("data/prices.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


BUNDLED = _bundled_json()["models"]


@pytest.fixture
def table() -> PriceTable:
    return PriceTable.default()


def _price(model: str = "m", **kw: Any) -> Price:
    fields: dict[str, Any] = {
        "provider": "test",
        "input": D("1"),
        "output": D("2"),
        "as_of": datetime.date(2026, 1, 1),
        "source": "test",
    }
    fields.update(kw)
    return Price(model=model, **fields)


# --------------------------------------------------------------------------------------------
# The bundled table
# --------------------------------------------------------------------------------------------


class TestBundledTable:
    @pytest.mark.parametrize("model", sorted(BUNDLED))
    def test_every_model_prices_exactly(self, table: PriceTable, model: str) -> None:
        """One million tokens of each kind cost exactly the per-million rates in the file."""
        entry = BUNDLED[model]
        price = table.lookup(model)
        assert price is not None
        assert price.model == model
        usage = Usage(
            prompt_tokens=3 * M,
            completion_tokens=M,
            cached_tokens=M,
            cache_write_tokens=M,
        )
        # a 3M-token prompt is past every long-context threshold: that tier's rates apply
        raw = entry.get("long_context", entry)
        cached = D(raw.get("cached_input", raw["input"]))
        write = D(raw.get("cache_write", raw["input"]))
        assert price.cost(usage) == D(raw["input"]) + cached + write + D(raw["output"])
        if "long_context" in entry:  # and a prompt at the threshold still pays the base rates
            at = entry["long_context"]["above"]
            small = Usage(prompt_tokens=at, completion_tokens=M)
            expected = (D(entry["input"]) * at + D(entry["output"]) * M) / M
            assert price.cost(small) == expected

    @pytest.mark.parametrize("model", sorted(BUNDLED))
    def test_cost_nanos_is_to_nanos_of_cost(self, table: PriceTable, model: str) -> None:
        """The integer path gives exactly to_nanos(cost(...)) for every bundled model.

        Small and odd counts land on sub-nano amounts, so this covers rounding half to
        even (``to_nanos``'s rule), not just whole nano-dollars.
        """
        price = table.lookup(model)
        assert price is not None
        counts = [0, 1, 2, 3, 5, 7, 13, 333, 1001, 4097, 65_537, 999_999, 12_345_679]
        for i, prompt in enumerate(counts):
            for completion in counts[i % 4 :: 3]:
                cached = prompt // 3
                write = prompt // 5 if i % 2 else 0
                usage = Usage(
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    cached_tokens=cached,
                    cache_write_tokens=write,
                    reasoning_tokens=completion // 2,
                )
                assert price.cost_nanos(usage) == to_nanos(price.cost(usage)), usage
                assert table.cost_nanos(model, usage) == to_nanos(price.cost(usage)), usage
                if price.batch_discount is not None:
                    assert price.cost_nanos(usage, batch=True) == to_nanos(
                        price.cost(usage, batch=True)
                    ), usage

    @pytest.mark.parametrize("model", sorted(BUNDLED))
    def test_every_entry_is_dated_and_sourced(self, model: str) -> None:
        """Every bundled entry says when and where its price was read."""
        raw = BUNDLED[model]
        datetime.date.fromisoformat(raw["as_of"])
        assert raw["source"].strip()
        assert set(raw.get("capabilities", [])) <= CAPABILITIES

    @pytest.mark.parametrize(
        ("model", "output"),
        [
            ("gpt-4o", "10.00"),
            ("gpt-4o-mini", "0.60"),
            ("deepseek-v4-flash", "0.25"),
            ("deepseek-coder", "0.25"),
            ("Qwen/Qwen3-8B", "0.01"),
            ("Qwen/Qwen3-32B", "0.28"),
            ("Qwen-MT-Turbo", "0.30"),
            ("deepseek-reasoner", "2.50"),
        ],
    )
    def test_issue_table_output_prices(self, table: PriceTable, model: str, output: str) -> None:
        """The aggregator price list of issue #2 is bundled under its exact names."""
        price = table.lookup(model)
        assert price is not None
        assert price.model == model
        assert price.output == D(output)
        assert table.cost(model, Usage(prompt_tokens=0, completion_tokens=M)) == D(output)

    @pytest.mark.parametrize(
        ("model", "prompt", "completion", "expected"),
        [
            # 1000 * 2.50 / 1e6 + 500 * 10.00 / 1e6
            ("gpt-4o", 1000, 500, "0.0075"),
            # 1000 * 0.15 / 1e6 + 500 * 0.60 / 1e6
            ("gpt-4o-mini", 1000, 500, "0.00045"),
            # 2000 * 0.14 / 1e6 + 1000 * 0.25 / 1e6
            ("deepseek-v4-flash", 2000, 1000, "0.00053"),
            # 1000 * 0.25 / 1e6 + 1000 * 0.25 / 1e6
            ("deepseek-coder", 1000, 1000, "0.0005"),
            # 12345 * 0.01 / 1e6 + 678 * 0.01 / 1e6
            ("Qwen/Qwen3-8B", 12345, 678, "0.00013023"),
            # 1000 * 0.08 / 1e6 + 1000 * 0.28 / 1e6
            ("Qwen/Qwen3-32B", 1000, 1000, "0.00036"),
            # 300 * 0.101 / 1e6 + 400 * 0.30 / 1e6
            ("Qwen-MT-Turbo", 300, 400, "0.0001503"),
            # 1000 * 0.55 / 1e6 + 3000 * 2.50 / 1e6
            ("deepseek-reasoner", 1000, 3000, "0.00805"),
            # 1 * 10 / 1e6 + 1 * 30 / 1e6
            ("gpt-4-1106-preview", 1, 1, "0.00004"),
            # 1e6 * 0.24 / 1e6 (blended)
            ("mixtral-8x7b-instruct", M // 2, M // 2, "0.24"),
        ],
    )
    def test_hand_computed_costs(
        self, table: PriceTable, model: str, prompt: int, completion: int, expected: str
    ) -> None:
        """Costs match values computed by hand, to the last digit."""
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
        assert table.cost(model, usage) == D(expected)

    def test_as_of_is_the_oldest_entry(self, table: PriceTable) -> None:
        """table.as_of tells how stale the oldest bundled price may be."""
        oldest = min(datetime.date.fromisoformat(raw["as_of"]) for raw in BUNDLED.values())
        assert table.as_of == oldest

    def test_container_protocol(self, table: PriceTable) -> None:
        """len, iteration, models() and `in` (which normalises) agree with the file."""
        assert len(table) == len(BUNDLED)
        assert list(table) == list(BUNDLED)
        assert table.models() == list(BUNDLED)
        assert "gpt-4o" in table
        assert "gpt-4o-2024-08-06" in table
        assert "no-such-model" not in table

    def test_default_tables_are_independent(self) -> None:
        """Each default() call is a new table; the file is parsed once and shared."""
        first, second = PriceTable.default(), PriceTable.default()
        assert first is not second
        assert first.lookup("gpt-4o") is second.lookup("gpt-4o")


# --------------------------------------------------------------------------------------------
# Cost arithmetic
# --------------------------------------------------------------------------------------------


class TestCost:
    def test_cached_tokens_use_the_cached_rate(self, table: PriceTable) -> None:
        """Cache reads are charged at cached_input, the rest of the prompt at input."""
        usage = Usage(prompt_tokens=2000, completion_tokens=0, cached_tokens=1024)
        # 976 * 2.50 + 1024 * 1.25 = 2440 + 1280 = 3720 micro-dollars
        assert table.cost("gpt-4o", usage) == D("0.00372")

    def test_cache_writes_use_the_cache_write_rate(self, table: PriceTable) -> None:
        """Anthropic-style cache writes are charged at cache_write."""
        usage = Usage(
            prompt_tokens=10_000, completion_tokens=100, cached_tokens=1000, cache_write_tokens=8000
        )
        # 1000 * 2.00 + 1000 * 0.10 + 8000 * 2.50 + 100 * 10.00 = 23100 micro-dollars
        assert table.cost("claude-sonnet-5-5", usage) == D("0.0231")

    def test_unset_cache_rates_fall_back_to_input(self) -> None:
        """No cached_input/cache_write means those tokens cost the input rate."""
        price = _price(input=D("3"), output=D("5"))
        usage = Usage(
            prompt_tokens=30, completion_tokens=0, cached_tokens=10, cache_write_tokens=10
        )
        assert price.cost(usage) == D("0.00009")
        assert price.effective_cached_input == price.effective_cache_write == D("3")

    def test_reasoning_tokens_are_billed_as_output(self, table: PriceTable) -> None:
        """Reasoning tokens are part of completion_tokens and cost the output rate."""
        plain = Usage(prompt_tokens=100, completion_tokens=1000)
        thinking = Usage(prompt_tokens=100, completion_tokens=1000, reasoning_tokens=900)
        assert table.cost("o3", thinking) == table.cost("o3", plain) == D("0.0082")

    def test_batch_discount(self, table: PriceTable) -> None:
        """batch=True charges the batch_discount fraction of the normal cost."""
        usage = Usage(prompt_tokens=1000, completion_tokens=500)
        assert table.cost("gpt-4o", usage, batch=True) == D("0.00375")
        price = _price(batch_discount=D("0.4"))
        assert price.cost(Usage(prompt_tokens=M, completion_tokens=0), batch=True) == D("0.4")

    def test_batch_without_a_batch_api_raises(self, table: PriceTable) -> None:
        """A model without batch pricing cannot silently be priced as a batch call."""
        with pytest.raises(PricingError, match="no batch API"):
            table.cost("gpt-4-turbo", Usage(prompt_tokens=1, completion_tokens=1), batch=True)

    def test_cost_ignores_the_callers_decimal_context(self, table: PriceTable) -> None:
        """A caller's low-precision decimal context cannot round money."""
        usage = Usage(prompt_tokens=123_456_789, completion_tokens=987_654_321)
        expected = table.cost("gpt-4o", usage)
        with localcontext() as ctx:
            ctx.prec = 3
            assert table.cost("gpt-4o", usage) == expected
            assert to_nanos(D("0.123456789")) == 123_456_789
        assert expected == D("123456789") * D("2.5") / M + D("987654321") * 10 / M

    def test_zero_usage_costs_zero(self, table: PriceTable) -> None:
        """An empty call costs exactly nothing."""
        assert table.cost("gpt-4o", Usage(prompt_tokens=0, completion_tokens=0)) == 0

    def test_cost_nanos_rounds_half_to_even(self) -> None:
        """Exact halves of a nano-dollar round to the even neighbour, like to_nanos."""
        price = Price(
            model="m",
            provider="me",
            input=D("0.0005"),  # half a nano-dollar per token
            output=D("0.0015"),  # one and a half
            as_of=datetime.date(2026, 11, 1),
            source="test",
        )
        for tokens, nanos in [(1, 0), (3, 2), (5, 2), (7, 4)]:
            usage = Usage(prompt_tokens=tokens, completion_tokens=0)
            assert price.cost_nanos(usage) == nanos == to_nanos(price.cost(usage))
        usage = Usage(prompt_tokens=0, completion_tokens=1)
        assert price.cost_nanos(usage) == 2 == to_nanos(price.cost(usage))

    def test_cost_nanos_follows_the_unknown_model_policy(self) -> None:
        """Unknown models: None under warn, 0 under zero, an error under raise."""
        usage = Usage(prompt_tokens=10, completion_tokens=10)
        with pytest.warns(CostwiseWarning):
            assert PriceTable.default().cost_nanos("no-such-model", usage) is None
        zero = PriceTable.default(on_unknown="zero")
        assert zero.cost_nanos("no-such-model", usage) == 0
        with pytest.raises(UnknownModelError):
            PriceTable.default(on_unknown="raise").cost_nanos("no-such-model", usage)
        with pytest.raises(PricingError, match="no batch API"):
            PriceTable.default().cost_nanos("gpt-4-turbo", usage, batch=True)

    def test_cost_is_fast(self, table: PriceTable) -> None:
        """cost() is on the hot path: far below 20 µs per call even on a slow CI machine."""
        usage = Usage(prompt_tokens=1234, completion_tokens=567, cached_tokens=1000)
        table.cost("gpt-4o-2024-08-06", usage)
        seconds = timeit.timeit(lambda: table.cost("gpt-4o-2024-08-06", usage), number=10_000)
        assert seconds / 10_000 < 20e-6


class TestMoney:
    @pytest.mark.parametrize(
        "amount", ["0", "0.000000001", "0.0075", "123.456789012", "0.24", "99999999.999999999"]
    )
    def test_round_trip(self, amount: str) -> None:
        """Amounts with at most nine decimals survive nanos and back exactly."""
        assert from_nanos(to_nanos(D(amount))) == D(amount)

    @pytest.mark.parametrize(
        ("amount", "nanos"),
        [
            ("0.0000000005", 0),  # half to even: 0.5 -> 0
            ("0.0000000015", 2),  # 1.5 -> 2
            ("0.0000000025", 2),  # 2.5 -> 2
            ("0.00000000251", 3),
            ("-0.0000000015", -2),
        ],
    )
    def test_rounds_half_to_even(self, amount: str, nanos: int) -> None:
        """Sub-nano amounts round half to even."""
        assert to_nanos(D(amount)) == nanos

    def test_rejects_non_finite(self) -> None:
        """NaN and infinity are not money."""
        with pytest.raises(ValueError, match="nano-dollars"):
            to_nanos(D("NaN"))
        with pytest.raises(ValueError, match="nano-dollars"):
            to_nanos(D("Infinity"))


# --------------------------------------------------------------------------------------------
# Lookup and normalisation
# --------------------------------------------------------------------------------------------


class TestLookup:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("gpt-4o", "gpt-4o"),
            ("GPT-4o", "gpt-4o"),
            ("gpt-4o-2024-08-06", "gpt-4o"),
            ("openai/gpt-4o", "gpt-4o"),
            ("openrouter/openai/GPT-4o-2024-11-20", "gpt-4o"),
            ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
            ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
            ("o3-2025-04-16", "o3"),
            ("gpt-4-0613", "gpt-4"),
            ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
            ("gpt-4-1106-preview", "gpt-4-1106-preview"),
            ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
            ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
            ("anthropic/claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
            ("claude-opus-5-5@20260901", "claude-opus-5-5"),
            ("gemini-2.5-pro-preview-06-05", "gemini-2.5-pro"),
            ("gemini-2.5-flash-preview-2025-05-20", "gemini-2.5-flash"),
            ("claude-sonnet-4-5-latest", "claude-sonnet-4-5"),
            ("mistral-large-latest", "mistral-large-latest"),
            ("Qwen/Qwen3-8B", "Qwen/Qwen3-8B"),
            ("qwen/qwen3-8b", "Qwen/Qwen3-8B"),
            ("siliconflow/Qwen/Qwen3-32B", "Qwen/Qwen3-32B"),
            ("deepseek/deepseek-v4-flash", "deepseek-v4-flash"),
        ],
    )
    def test_normalisation(self, table: PriceTable, name: str, expected: str) -> None:
        """Case, provider prefixes and snapshot suffixes are normalised away."""
        price = table.lookup(name)
        assert price is not None
        assert price.model == expected

    @pytest.mark.parametrize(
        "name",
        [
            "deepseek-ai/DeepSeek-V3",
            "gpt-4o-mini-tts",
            "ft:gpt-4o-mini-2024-07-18:org::abc123",
            "gpt-4o-audio",
            "totally-unknown",
            "",
        ],
    )
    def test_unknown_names_stay_unknown(self, table: PriceTable, name: str) -> None:
        """Names that are not a snapshot of a listed model are not guessed."""
        assert table.lookup(name) is None

    @pytest.mark.parametrize(
        "name",
        ["gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini", "GPT-4o-Mini-latest"],
    )
    def test_gpt_4o_mini_never_becomes_gpt_4o(self, name: str) -> None:
        """A table without gpt-4o-mini must not price it as gpt-4o (a 16x error)."""
        only_4o = PriceTable([_price("gpt-4o", input=D("2.5"), output=D("10"))])
        assert only_4o.lookup(name) is None
        full = PriceTable.default().lookup(name)
        assert full is not None
        assert full.model == "gpt-4o-mini"

    def test_exact_match_wins_over_prefix_stripping(self) -> None:
        """A listed key containing '/' is found before its prefix-stripped form."""
        table = PriceTable(
            [_price("Qwen/Qwen3-8B", output=D("0.01")), _price("Qwen3-8B", output=D("9"))]
        )
        found = table.lookup("Qwen/Qwen3-8B")
        assert found is not None
        assert found.output == D("0.01")
        stripped = table.lookup("other/Qwen3-8B")
        assert stripped is not None
        assert stripped.output == D("9")

    def test_lookups_are_cached(self, table: PriceTable) -> None:
        """Repeated lookups return the same object from the per-table cache."""
        first = table.lookup("openai/gpt-4o-2024-08-06")
        assert first is table.lookup("openai/gpt-4o-2024-08-06")
        assert table.lookup("nope") is None
        assert table.lookup("nope") is None


# --------------------------------------------------------------------------------------------
# Unknown-model policy
# --------------------------------------------------------------------------------------------


class TestUnknownModelPolicy:
    def test_warn_once_per_model_and_cost_is_none(self, table: PriceTable) -> None:
        """Under "warn" an unknown model warns once and its cost is None, never 0."""
        usage = Usage(prompt_tokens=10, completion_tokens=10)
        with pytest.warns(CostwiseWarning, match="no price for model 'mystery-1'"):
            assert table.cost("mystery-1", usage) is None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert table.cost("mystery-1", usage) is None
            assert table.price("mystery-1") is None
        assert caught == []
        with pytest.warns(CostwiseWarning, match="mystery-2"):
            table.price("mystery-2")

    def test_warnings_are_per_table(self, table: PriceTable) -> None:
        """Another table warns again for the same model."""
        with pytest.warns(CostwiseWarning):
            table.price("mystery")
        with pytest.warns(CostwiseWarning):
            table.with_policy("warn").price("mystery")

    def test_raise(self, table: PriceTable) -> None:
        """Under "raise" an unknown model raises UnknownModelError carrying the name."""
        strict = table.with_policy("raise")
        with pytest.raises(UnknownModelError) as info:
            strict.cost("mystery", Usage(prompt_tokens=1, completion_tokens=1))
        assert info.value.model == "mystery"
        assert isinstance(info.value, KeyError)
        assert strict.price("gpt-4o") is not None
        assert strict.on_unknown == "raise"

    def test_zero(self) -> None:
        """Under "zero" an unknown model costs exactly $0 and is marked as not real."""
        table = PriceTable.default(on_unknown="zero")
        assert table.cost("mystery", Usage(prompt_tokens=5, completion_tokens=5)) == 0
        price = table.price("mystery")
        assert price is not None
        assert price.note is not None
        assert table.price("mystery") is price

    def test_lookup_never_warns_or_raises(self) -> None:
        """lookup() is policy-free: routers use it to skip unpriceable models."""
        assert PriceTable.default(on_unknown="raise").lookup("mystery") is None

    def test_bad_policy(self) -> None:
        """An unknown policy is a configuration error."""
        with pytest.raises(ConfigurationError, match="on_unknown"):
            PriceTable(on_unknown="ignore")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Per-instance overrides
# --------------------------------------------------------------------------------------------


class TestOverrides:
    def test_extend_applies_to_the_new_table_only(self) -> None:
        """extend() returns a new table; the default table is unchanged."""
        base = PriceTable.default()
        mine = base.extend(
            {
                "gpt-4o": {"input": 2, "output": "8.00"},
                "my-model": {"input": 0.15, "output": "0.6", "capabilities": ["tools"]},
            }
        )
        gpt4o = mine.lookup("gpt-4o")
        assert gpt4o is not None
        assert gpt4o.output == D("8.00")
        my_model = mine.lookup("my-model")
        assert my_model is not None
        assert my_model.input == D("0.15")  # a JSON/Python float stays exactly 0.15
        assert my_model.capabilities == frozenset({"tools"})
        fresh = PriceTable.default()
        for table in (base, fresh):
            original = table.lookup("gpt-4o")
            assert original is not None
            assert original.output == D("10.00")
            assert table.lookup("my-model") is None
        assert len(mine) == len(base) + 1

    def test_extend_with_prices_and_tables(self) -> None:
        """extend() accepts Price objects and other tables; the argument wins."""
        custom = _price("gpt-4o", output=D("1"))
        other = PriceTable([_price("x")])
        table = PriceTable.default().extend({"gpt-4o": custom}).extend(other)
        assert table.lookup("gpt-4o") is custom
        assert "x" in table

    def test_extend_keeps_policy(self) -> None:
        """extend() keeps the table's unknown-model policy."""
        strict = PriceTable.default(on_unknown="raise").extend({"m": {"input": 1, "output": 1}})
        assert strict.on_unknown == "raise"

    def test_from_dict(self) -> None:
        """from_dict accepts a whole sheet with a shared as_of and source."""
        table = PriceTable.from_dict(
            {
                "schema": 1,
                "as_of": "2026-10-01",
                "source": "our contract",
                "models": {"m": {"input": "1.5", "output": "3", "batch_discount": "0.5"}},
            }
        )
        price = table.lookup("m")
        assert price is not None
        assert price.as_of == datetime.date(2026, 10, 1)
        assert price.source == "our contract"
        assert price.batch_discount == D("0.5")
        assert PriceTable.default().lookup("m") is None

    def test_from_json_file_with_base(self, tmp_path: Path) -> None:
        """from_file(base=...) adds a JSON sheet on top of another table."""
        path = tmp_path / "prices.json"
        path.write_text(
            json.dumps(
                {
                    "schema": 1,
                    "models": {
                        "gpt-4o": {"input": 1.25, "output": 5, "as_of": "2026-11-01"},
                        "local-llama": {"input": 0, "output": 0, "context_window": 8192},
                    },
                }
            )
        )
        table = PriceTable.from_file(path, base=PriceTable.default(), on_unknown="raise")
        assert table.cost("gpt-4o", Usage(prompt_tokens=M, completion_tokens=M)) == D("6.25")
        assert table.cost("gpt-4.1", Usage(prompt_tokens=M, completion_tokens=0)) == D("2.00")
        llama = table.lookup("local-llama")
        assert llama is not None
        assert llama.context_window == 8192
        assert llama.source == str(path)
        assert table.on_unknown == "raise"
        default_4o = PriceTable.default().lookup("gpt-4o")
        assert default_4o is not None
        assert default_4o.input == D("2.50")

    def test_from_csv_file(self, tmp_path: Path) -> None:
        """A CSV sheet needs model,input,output; empty cells mean 'not set'."""
        path = tmp_path / "sheet.csv"
        path.write_text(
            "model,input,output,cached_input,capabilities,context_window,as_of,source\n"
            "acme-large,3.00,15.00,0.30,tools;vision,200000,2026-09-01,acme sheet\n"
            "acme-small,0.25,1.25,,,,,\n"
        )
        table = PriceTable.from_file(path)
        large = table.lookup("acme-large")
        assert large is not None
        assert large.capabilities == frozenset({"tools", "vision"})
        assert large.context_window == 200_000
        assert large.as_of == datetime.date(2026, 9, 1)
        usage = Usage(prompt_tokens=2 * M, completion_tokens=0, cached_tokens=M)
        assert large.cost(usage) == D("3.30")
        small = table.lookup("acme-small")
        assert small is not None
        assert small.cached_input is None
        assert len(table) == 2


# --------------------------------------------------------------------------------------------
# Bad price sheets
# --------------------------------------------------------------------------------------------


def _sheet(entry: object) -> str:
    return json.dumps({"schema": 1, "models": {"gpt-x": entry}})


BAD_ENTRIES = [
    pytest.param({"input": -1, "output": 1}, "input", "non-negative number, got -1", id="negative"),
    pytest.param({"input": "cheap", "output": 1}, "input", 'got "cheap"', id="not-a-number"),
    pytest.param({"input": True, "output": 1}, "input", "got true", id="bool"),
    pytest.param({"input": 1, "output": [1]}, "output", "non-negative number", id="list"),
    pytest.param({"output": 1}, "input", "missing required field", id="missing"),
    pytest.param(
        {"input": 1, "output": 1, "capabilities": ["tools", "telepathy"]},
        "capabilities",
        'unknown capability "telepathy"',
        id="capability",
    ),
    pytest.param({"input": 1, "output": 1, "ouput": 2}, "ouput", "unknown field", id="typo"),
    pytest.param({"input": 1, "output": 1, "as_of": "yesterday"}, "as_of", "YYYY-MM-DD", id="date"),
    pytest.param(
        {"input": 1, "output": 1, "context_window": 0}, "context_window", "positive", id="window"
    ),
    pytest.param(
        {"input": 1, "output": 1, "batch_discount": 2}, "batch_discount", "(0, 1]", id="batch"
    ),
]


class TestBadSheets:
    @pytest.mark.parametrize(("entry", "field", "message"), BAD_ENTRIES)
    def test_bad_entry_names_file_model_and_field(
        self, tmp_path: Path, entry: object, field: str, message: str
    ) -> None:
        """Each invalid entry raises ConfigurationError naming the file, model and field."""
        path = tmp_path / "prices.json"
        path.write_text(_sheet(entry))
        with pytest.raises(ConfigurationError) as info:
            PriceTable.from_file(path)
        text = str(info.value)
        assert f"{path}: model 'gpt-x': field '{field}':" in text
        assert message in text

    @pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
    def test_non_finite_numbers(self, tmp_path: Path, literal: str) -> None:
        """JSON's NaN/Infinity extensions are rejected, not priced."""
        path = tmp_path / "prices.json"
        path.write_text(f'{{"models": {{"gpt-x": {{"input": {literal}, "output": 1}}}}}}')
        with pytest.raises(ConfigurationError, match=r"model 'gpt-x': field 'input': must be"):
            PriceTable.from_file(path)

    def test_example_message_from_the_issue(self) -> None:
        """The message reads like the issue's example."""
        with pytest.raises(ConfigurationError) as info:
            PriceTable.from_dict({"gpt-x": {"input": -1, "output": 1}})
        assert str(info.value) == (
            "from_dict: model 'gpt-x': field 'input': must be a non-negative number, got -1"
        )

    def test_malformed_json(self, tmp_path: Path) -> None:
        """Invalid JSON names the file and the position."""
        path = tmp_path / "broken.json"
        path.write_text('{"models": {"gpt-x": {"input": 1,,}}}')
        with pytest.raises(ConfigurationError, match=r"broken\.json: not valid JSON: .*line 1"):
            PriceTable.from_file(path)

    def test_unreadable_path(self, tmp_path: Path) -> None:
        """A missing file is a ConfigurationError naming it, not a bare OSError."""
        path = tmp_path / "missing.json"
        with pytest.raises(ConfigurationError, match=r"missing\.json: cannot read price file"):
            PriceTable.from_file(path)

    def test_wrong_top_level(self, tmp_path: Path) -> None:
        """A sheet must be an object with models, and a supported schema."""
        path = tmp_path / "list.json"
        path.write_text("[1, 2]")
        with pytest.raises(ConfigurationError, match="must be a JSON object"):
            PriceTable.from_file(path)
        path.write_text(json.dumps({"schema": 2, "models": {}}))
        with pytest.raises(ConfigurationError, match=r"list\.json: field 'schema'"):
            PriceTable.from_file(path)
        with pytest.raises(ConfigurationError, match="entry must be an object"):
            PriceTable.from_dict({"gpt-x": 3})

    def test_csv_errors(self, tmp_path: Path) -> None:
        """CSV sheets report a missing column, or the model and field at fault."""
        path = tmp_path / "sheet.csv"
        path.write_text("model,input\nm,1\n")
        with pytest.raises(ConfigurationError, match=r"sheet\.csv: CSV header .* \['output'\]"):
            PriceTable.from_file(path)
        path.write_text("model,input,output\nm,1,-2\n")
        with pytest.raises(ConfigurationError, match=r"sheet\.csv: model 'm': field 'output'"):
            PriceTable.from_file(path)

    def test_all_problems_are_reported(self) -> None:
        """Every bad entry is listed, one per line, not just the first."""
        with pytest.raises(ConfigurationError) as info:
            PriceTable.from_dict({"a": {"input": -1, "output": 1}, "b": {"input": 1}})
        lines = str(info.value).splitlines()
        assert len(lines) == 2
        assert "model 'a': field 'input'" in lines[0]
        assert "model 'b': field 'output'" in lines[1]

    def test_bad_price_objects(self) -> None:
        """Price itself refuses negative or float prices and unknown capabilities."""
        with pytest.raises(ConfigurationError, match="field 'output'"):
            _price(output=D("-1"))
        with pytest.raises(ConfigurationError, match="field 'input'"):
            _price(input=0.15)
        with pytest.raises(ConfigurationError, match="unknown capability"):
            _price(capabilities=frozenset({"flying"}))
        with pytest.raises(ConfigurationError, match="batch_discount"):
            _price(batch_discount=D("1.5"))


# --------------------------------------------------------------------------------------------
# Usage
# --------------------------------------------------------------------------------------------


class TestUsage:
    def test_from_openai_pydantic(self) -> None:
        """The SDK's CompletionUsage, with cache and reasoning details."""
        sdk = CompletionUsage.model_validate(
            {
                "prompt_tokens": 2006,
                "completion_tokens": 300,
                "total_tokens": 2306,
                "prompt_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 50},
                "completion_tokens_details": {"reasoning_tokens": 256},
            }
        )
        assert Usage.from_openai(sdk) == Usage(
            prompt_tokens=2006,
            completion_tokens=300,
            cached_tokens=1920,
            cache_write_tokens=50,
            reasoning_tokens=256,
        )

    def test_from_openai_none_and_minimal(self) -> None:
        """None means no usage; null details mean zero."""
        assert Usage.from_openai(None) is None
        assert Usage.from_openai(
            {
                "prompt_tokens": 5,
                "completion_tokens": 1,
                "prompt_tokens_details": None,
                "completion_tokens_details": {"reasoning_tokens": None},
            }
        ) == Usage(prompt_tokens=5, completion_tokens=1)

    @pytest.mark.parametrize(
        ("payload", "expected"),
        [
            pytest.param(
                {
                    "prompt_tokens": 1500,
                    "completion_tokens": 20,
                    "cache_read_input_tokens": 1000,
                    "cache_creation_input_tokens": 400,
                },
                Usage(
                    prompt_tokens=1500,
                    completion_tokens=20,
                    cached_tokens=1000,
                    cache_write_tokens=400,
                ),
                id="litellm-anthropic-compatible",
            ),
            pytest.param(
                {
                    "prompt_tokens": 900,
                    "completion_tokens": 20,
                    "prompt_cache_hit_tokens": 768,
                    "prompt_cache_miss_tokens": 132,
                },
                Usage(prompt_tokens=900, completion_tokens=20, cached_tokens=768),
                id="deepseek",
            ),
            pytest.param(
                {
                    "prompt_tokens": 3000,
                    "completion_tokens": 7,
                    "prompt_tokens_details": {
                        "cached_tokens": 0,
                        "cache_creation_input_tokens": 2048,
                    },
                },
                Usage(prompt_tokens=3000, completion_tokens=7, cache_write_tokens=2048),
                id="qwen-dashscope",
            ),
            pytest.param(
                {
                    "input_tokens": 12,
                    "output_tokens": 30,
                    "cache_read_input_tokens": 2000,
                    "cache_creation_input_tokens": 100,
                },
                Usage(
                    prompt_tokens=2112,
                    completion_tokens=30,
                    cached_tokens=2000,
                    cache_write_tokens=100,
                ),
                id="anthropic-native",
            ),
            pytest.param(
                {
                    "input_tokens": 500,
                    "output_tokens": 90,
                    "input_tokens_details": {"cached_tokens": 256},
                    "output_tokens_details": {"reasoning_tokens": 64},
                },
                Usage(
                    prompt_tokens=500,
                    completion_tokens=90,
                    cached_tokens=256,
                    reasoning_tokens=64,
                ),
                id="responses-api",
            ),
            pytest.param(
                {"prompt_tokens": 10, "completion_tokens": 5, "cache_read_input_tokens": 40},
                Usage(prompt_tokens=50, completion_tokens=5, cached_tokens=40),
                id="cache-reported-outside-prompt",
            ),
        ],
    )
    def test_from_openai_provider_shapes(self, payload: dict[str, Any], expected: Usage) -> None:
        """Cache counts from OpenAI-compatible servers land in the right fields."""
        assert Usage.from_openai(payload) == expected

    def test_add(self) -> None:
        """Usages add field by field (e.g. the attempts of a cascade)."""
        a = Usage(prompt_tokens=10, completion_tokens=5, cached_tokens=2, reasoning_tokens=1)
        b = Usage(prompt_tokens=1, completion_tokens=2, cache_write_tokens=1)
        assert a + b == Usage(
            prompt_tokens=11,
            completion_tokens=7,
            cached_tokens=2,
            cache_write_tokens=1,
            reasoning_tokens=1,
        )
        assert (a + b).total_tokens == 18

    @pytest.mark.parametrize(
        "fields",
        [
            {"prompt_tokens": -1, "completion_tokens": 0},
            {
                "prompt_tokens": 10,
                "completion_tokens": 0,
                "cached_tokens": 8,
                "cache_write_tokens": 3,
            },
            {"prompt_tokens": 0, "completion_tokens": 1, "reasoning_tokens": 2},
        ],
    )
    def test_inconsistent_usage_is_rejected(self, fields: dict[str, int]) -> None:
        """Parts larger than their whole, or negative counts, are errors."""
        with pytest.raises(ValueError, match=r"exceed|negative"):
            Usage(**fields)


# --------------------------------------------------------------------------------------------
# Import hygiene
# --------------------------------------------------------------------------------------------


def test_import_reads_no_price_file() -> None:
    """Importing costwise.pricing opens no data file; the loader runs on first use only."""
    script = textwrap.dedent(
        """
        import sys
        opened = []
        sys.addaudithook(
            lambda event, args: opened.append(str(args[0]))
            if event == "open" and args and isinstance(args[0], str)
            else None
        )
        import costwise.pricing as pricing
        assert not [p for p in opened if p.endswith("prices.json")], opened
        assert pricing._bundled_prices.cache_info().currsize == 0
        pricing.PriceTable.default()
        assert [p for p in opened if p.endswith("prices.json")]
        assert pricing._bundled_prices.cache_info().currsize == 1
        pricing.PriceTable.default()
        assert pricing._bundled_prices.cache_info().misses == 1
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


class TestLongContext:
    SHEET: dict[str, Any] = {  # noqa: RUF012 - read-only test data
        "long-1": {
            "input": "1.00",
            "cached_input": "0.10",
            "output": "4.00",
            "batch_discount": "0.5",
            "long_context": {"above": 1000, "input": "2.00", "output": "6.00"},
        }
    }

    def test_the_tier_prices_every_token_of_a_long_request(self) -> None:
        """Past `above` prompt tokens every token costs the tier's rates; at it, the base's."""
        price = PriceTable.from_dict(self.SHEET).lookup("long-1")
        assert price is not None and price.long_context is not None
        at = Usage(prompt_tokens=1000, completion_tokens=10, cached_tokens=100)
        over = Usage(prompt_tokens=1001, completion_tokens=10, cached_tokens=100)
        assert price.cost(at) == (900 * D("1.00") + 100 * D("0.10") + 10 * D("4.00")) / M
        # the tier sets no cached rate: cache reads cost the tier's input rate
        assert price.cost(over) == (901 * D("2.00") + 100 * D("2.00") + 10 * D("6.00")) / M
        assert price.cost(over, batch=True) == price.cost(over) / 2
        for usage in (at, over):
            assert price.cost_nanos(usage) == to_nanos(price.cost(usage))
            assert price.cost_nanos(usage, batch=True) == to_nanos(price.cost(usage, batch=True))

    @pytest.mark.parametrize(
        ("tier", "field", "message"),
        [
            ({"above": 0, "input": 1, "output": 1}, "long_context.above", "positive integer"),
            ({"input": 1, "output": 1}, "long_context.above", "missing"),
            ({"above": 10, "input": -1, "output": 1}, "long_context.input", "non-negative"),
            ({"above": 10, "input": 1, "output": 1, "x": 1}, "long_context.x", "unknown field"),
        ],
    )
    def test_bad_tiers_name_the_field(self, tier: dict[str, Any], field: str, message: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            PriceTable.from_dict({"m": {"input": 1, "output": 1, "long_context": tier}})
        assert f"model 'm': field '{field}':" in str(info.value)
        assert message in str(info.value)

    def test_a_long_gemini_call_is_recorded_at_the_long_rates(self) -> None:
        """Through the client: a 250K-token prompt to gemini-2.5-pro costs the >200K rates."""
        from costwise.ledger import MemoryStore
        from costwise.strategies import ModelOverride
        from costwise.testing import FakeProvider, Reply, fake_client

        msgs: Any = [{"role": "user", "content": "summarise"}]
        for strategies in ([], [ModelOverride(features={"other": "gpt-4o-mini"})]):
            provider = FakeProvider()
            provider.script(Reply("ok", model="gemini-2.5-pro", usage=(250_000, 1_000)))
            client = fake_client(provider, ledger=MemoryStore(), strategies=strategies)
            client.chat.completions.create(model="gemini-2.5-pro", messages=msgs)
            (entry,) = client.ledger.entries()
            expected = (250_000 * D("2.50") + 1_000 * D("15.00")) / M
            assert entry.cost == expected and entry.baseline == expected
