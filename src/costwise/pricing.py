"""Prices, usage and exact cost arithmetic.

This module answers one question, fast and exactly: *what did this call cost?* It holds

* :class:`Usage`, the token counts of one call (read from the response, never guessed),
* :class:`Price`, one model's dated list price in USD per million tokens,
* :class:`PriceTable`, a per-instance set of prices with model-name normalisation and an
  explicit policy for models it does not know, and
* :func:`to_nanos` / :func:`from_nanos`, the conversion between :class:`~decimal.Decimal`
  dollars (the API unit) and integer nano-dollars (the storage unit).

Money is never a ``float``: prices are :class:`~decimal.Decimal` and costs are computed with
integer arithmetic, so ``0.15`` stays exactly ``0.15`` and a cost does not depend on the
caller's :mod:`decimal` context.

Importing this module reads no file: the bundled ``data/prices.json`` is parsed on the first
call to :meth:`PriceTable.default`, once per process.
"""

from __future__ import annotations

import csv
import datetime
import functools
import io
import json
import os
import re
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, TypeAlias

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from typing_extensions import override

from ._exceptions import ConfigurationError, CostwiseWarning, PricingError, UnknownModelError

if TYPE_CHECKING:
    from openai.types import CompletionUsage
    from typing_extensions import Self

__all__ = [
    "CAPABILITIES",
    "LongContext",
    "OnUnknown",
    "Price",
    "PriceTable",
    "Usage",
    "from_nanos",
    "to_nanos",
]

OnUnknown: TypeAlias = Literal["warn", "raise", "zero"]
"""What a :class:`PriceTable` does for a model it has no price for."""

CAPABILITIES: Final = frozenset({"tools", "json_schema", "vision", "reasoning"})
"""The capability names a :class:`Price` may carry (what the router can ask for)."""

_ON_UNKNOWN: Final = ("warn", "raise", "zero")
_PER_MILLION: Final = 6  # prices are per 10**6 tokens
_NANOS_PER_USD: Final = 9
# A private context for the few Decimal operations that must not depend on the caller's
# thread-local context (a user who set ``getcontext().prec = 4`` must still get exact money).
_EXACT: Final = Context(prec=100, rounding=ROUND_HALF_EVEN)
_BUNDLED_NAME: Final = "costwise/data/prices.json"


# --------------------------------------------------------------------------------------------
# Money helpers
# --------------------------------------------------------------------------------------------


def to_nanos(amount: Decimal) -> int:
    """Convert US dollars to integer nano-dollars (1e-9 USD), rounding half to even.

    Use this when storing money: ledgers and counters keep integers so that atomic
    increments stay exact. Banker's rounding keeps the rounding error of many small
    amounts centred on zero.

    Args:
        amount: a finite amount in USD.

    Returns:
        The amount in nano-dollars.

    Raises:
        ValueError: ``amount`` is NaN or infinite.

    Example:
        >>> to_nanos(Decimal("0.0000015"))
        1500
    """
    if not amount.is_finite():
        msg = f"cannot convert {amount} to nano-dollars"
        raise ValueError(msg)
    scaled = amount.scaleb(_NANOS_PER_USD, context=_EXACT)
    return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN, context=_EXACT))


def from_nanos(nanos: int) -> Decimal:
    """Convert integer nano-dollars back to US dollars, exactly.

    Use this when reading stored amounts back into the Decimal API.

    Args:
        nanos: an amount in nano-dollars.

    Returns:
        The same amount in USD.

    Example:
        >>> from_nanos(1500)
        Decimal('0.000001500')
    """
    return Decimal(nanos).scaleb(-_NANOS_PER_USD, context=_EXACT)


def _scaled_int(value: Decimal) -> tuple[int, int]:
    """Split a finite Decimal into ``(n, d)`` with ``value == n / 10**d``."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite values only; callers validated
    mantissa = int("".join(map(str, digits)) or "0")
    if sign:
        mantissa = -mantissa
    if exponent >= 0:
        return mantissa * 10**exponent, 0
    return mantissa, -exponent


def _divide_half_even(total: int, divisor: int) -> int:
    """``total / divisor`` rounded half to even, like `to_nanos` (``divisor`` a power of 10)."""
    quotient, remainder = divmod(total, divisor)
    half = divisor // 2
    if remainder > half or (remainder == half and quotient & 1):
        quotient += 1
    return quotient


# --------------------------------------------------------------------------------------------
# Usage
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Usage:
    """The token counts of one call, as the provider billed them.

    Use :meth:`from_openai` to read a response's ``usage``; build one by hand in tests or
    when a provider reports usage in its own shape. ``cached_tokens`` and
    ``cache_write_tokens`` are *part of* ``prompt_tokens`` and ``reasoning_tokens`` is part
    of ``completion_tokens`` (that is how OpenAI counts them), so a cost never counts a token
    twice.

    Args:
        prompt_tokens: every input token, cached or not.
        completion_tokens: every output token, reasoning included.
        cached_tokens: prompt tokens read from the provider's prompt cache.
        cache_write_tokens: prompt tokens written to the provider's prompt cache.
        reasoning_tokens: completion tokens spent on hidden reasoning (billed as output).

    Raises:
        ValueError: a count is negative or a part is larger than its whole.

    Example:
        >>> Usage(prompt_tokens=1200, completion_tokens=300, cached_tokens=1024).total_tokens
        1500
    """

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        if (
            min(
                self.prompt_tokens,
                self.completion_tokens,
                self.cached_tokens,
                self.cache_write_tokens,
                self.reasoning_tokens,
            )
            < 0
        ):
            msg = f"token counts must not be negative: {self!r}"
            raise ValueError(msg)
        if self.cached_tokens + self.cache_write_tokens > self.prompt_tokens:
            msg = (
                f"cached_tokens ({self.cached_tokens}) + cache_write_tokens "
                f"({self.cache_write_tokens}) exceed prompt_tokens ({self.prompt_tokens})"
            )
            raise ValueError(msg)
        if self.reasoning_tokens > self.completion_tokens:
            msg = (
                f"reasoning_tokens ({self.reasoning_tokens}) exceed completion_tokens "
                f"({self.completion_tokens})"
            )
            raise ValueError(msg)

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        """Add two usages field by field, e.g. to total the attempts of a cascade."""
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )

    @classmethod
    def from_openai(cls, usage: CompletionUsage | Mapping[str, Any] | None) -> Usage | None:
        """Read the ``usage`` of a chat completion, whatever OpenAI-compatible server sent it.

        Use this on ``response.usage`` (a pydantic ``CompletionUsage``), on the ``"usage"``
        of a JSON body (a dict), or on the last chunk of a stream. The field names that
        OpenAI-compatible servers use are all read:

        * cache reads: ``prompt_tokens_details.cached_tokens`` (OpenAI, OpenRouter, Gemini,
          Qwen), else top-level ``cache_read_input_tokens`` (Anthropic-compatible gateways
          such as LiteLLM), else ``prompt_cache_hit_tokens`` (DeepSeek);
        * cache writes: ``prompt_tokens_details.cache_write_tokens`` (OpenAI SDK 3.x,
          OpenRouter), ``prompt_tokens_details.cache_creation_input_tokens`` (Qwen
          DashScope), else top-level ``cache_creation_input_tokens`` (Anthropic-compatible);
        * reasoning: ``completion_tokens_details.reasoning_tokens``;
        * the Responses API and Anthropic shapes (``input_tokens``/``output_tokens``).

        In the Anthropic shape ``input_tokens`` excludes cache reads and writes, so they are
        added back. Elsewhere they are part of ``prompt_tokens``; if a server reports more
        cached tokens than prompt tokens it evidently excluded them too, and they are added
        back the same way rather than producing a negative count.

        Args:
            usage: the usage object or mapping, or ``None``.

        Returns:
            The usage, or ``None`` when the response carried none (a stream without
            ``include_usage``, or a server that omits it).

        Example:
            >>> Usage.from_openai({"prompt_tokens": 10, "completion_tokens": 2})
            Usage(prompt_tokens=10, completion_tokens=2, cached_tokens=0, ...)
        """
        if usage is None:
            return None
        fast = _from_sdk_usage(cls, usage)
        if fast is not None:
            return fast
        prompt = _field(usage, "prompt_tokens")
        completion = _field(usage, "completion_tokens")
        anthropic_shape = False
        if prompt is None and completion is None:
            prompt = _field(usage, "input_tokens")
            completion = _field(usage, "output_tokens")
            anthropic_shape = _field(usage, "input_tokens_details") is None
        prompt_details = _field(usage, "prompt_tokens_details") or _field(
            usage, "input_tokens_details"
        )
        completion_details = _field(usage, "completion_tokens_details") or _field(
            usage, "output_tokens_details"
        )

        cached = _first_int(
            _field(prompt_details, "cached_tokens"),
            _field(usage, "cache_read_input_tokens"),
            _field(usage, "prompt_cache_hit_tokens"),
        )
        written = _first_int(
            _field(prompt_details, "cache_write_tokens"),
            _field(prompt_details, "cache_creation_input_tokens"),
            _field(usage, "cache_creation_input_tokens"),
        )
        reasoning = _first_int(_field(completion_details, "reasoning_tokens"))
        prompt_n = _first_int(prompt)
        completion_n = _first_int(completion)
        if anthropic_shape or cached + written > prompt_n:
            prompt_n += cached + written
        if reasoning > completion_n:
            completion_n += reasoning
        return cls(
            prompt_tokens=prompt_n,
            completion_tokens=completion_n,
            cached_tokens=cached,
            cache_write_tokens=written,
            reasoning_tokens=reasoning,
        )


def _from_sdk_usage(cls: type[Usage], usage: object) -> Usage | None:
    """The hot path: a plain SDK ``CompletionUsage`` with no provider extras (about 1 µs).

    Returns ``None`` for anything else, which then takes the general path above; reading
    absent attributes of pydantic models through ``getattr`` costs ~25 µs per usage.
    """
    counts = _sdk_counts(usage)
    if counts is None:
        return None
    prompt, completion, cached, written, reasoning = counts
    return cls(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=reasoning,
    )


_MAX_TOKENS = 10**12
"""No call uses a trillion tokens: a larger count is a server's bug, and counts near 2**63
would not fit the ledger's stores. The meter estimates such an entry from its texts."""


def _sdk_counts(usage: object) -> tuple[int, int, int, int, int] | None:
    """``(prompt, completion, cached, cache_write, reasoning)`` of a plain SDK usage, or ``None``.

    The meter's hot path: the same numbers `Usage.from_openai` gives for a ``CompletionUsage``
    without provider extras, read without building a `Usage`. ``None`` means "not that
    simple shape": use `Usage.from_openai`.
    """
    if type(usage) is not _completion_usage():
        return None
    if usage.model_extra:
        return None
    ptd, ctd = usage.prompt_tokens_details, usage.completion_tokens_details
    if ptd is not None:
        if ptd.model_extra:
            return None
        cached = ptd.cached_tokens or 0
        written = ptd.cache_write_tokens or 0
    else:
        cached = written = 0
    reasoning = (ctd.reasoning_tokens or 0) if ctd is not None else 0
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    if (
        cached + written > prompt
        or reasoning > completion
        or min(cached, written, reasoning) < 0
        or max(prompt, completion) > _MAX_TOKENS
    ):
        return None  # an unusual server: let the general path reconcile the counts
    return prompt, completion, cached, written, reasoning


@functools.cache
def _completion_usage() -> type[CompletionUsage]:
    from openai.types import CompletionUsage

    return CompletionUsage


def _field(obj: object, name: str) -> Any:
    """Read ``name`` from a mapping or an object (pydantic models keep extras as attributes)."""
    if obj is None:
        return None
    if type(obj) is dict:  # the common JSON case; isinstance(.., Mapping) is an ABC check
        return obj.get(name)
    if isinstance(obj, Mapping):
        return obj.get(name)
    extra = getattr(obj, "__pydantic_extra__", _NOT_PYDANTIC)
    if extra is not _NOT_PYDANTIC:
        # A missing attribute on a pydantic model costs an exception inside __getattr__;
        # reading the field and extras dicts directly is ~4x faster on this hot path.
        fields = obj.__dict__
        if name in fields:
            return fields[name]
        return extra.get(name) if isinstance(extra, dict) else None
    return getattr(obj, name, None)


_NOT_PYDANTIC: Final = object()


def _first_int(*values: object) -> int:
    """The first value that is a real integer count, else 0 (servers send null for 'none')."""
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


# --------------------------------------------------------------------------------------------
# Price
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class LongContext:
    """Rates that replace a price's own for a whole request whose prompt is long.

    Several providers bill every token of a request at higher rates once its prompt passes
    a size (Gemini 2.5 Pro above 200K tokens, GPT-5.4 above 272K). Without this tier such a
    call would be recorded at half its real cost.

    Attributes:
        above: the tier applies when the prompt (cached tokens included) has more tokens.
        input: price of an uncached prompt token, per million tokens.
        output: price of a completion token, per million tokens.
        cached_input: price of a prompt token read from cache; ``None`` means ``input``.
        cache_write: price of a prompt token written to cache; ``None`` means ``input``.
    """

    above: int
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Price:
    """One model's list price, in USD per million tokens, with the date it was true.

    Use :class:`PriceTable` to get prices; build a ``Price`` yourself only for a model you
    price by hand (or pass a mapping to :meth:`PriceTable.extend`). A ``Price`` also carries
    what a router needs to know about the model: its context window, output limit and
    capabilities.

    Args:
        model: the model name the price is for.
        provider: who sells it at this price (``"openai"``, ``"anthropic"``, an aggregator).
        input: price of an uncached prompt token, per million tokens.
        output: price of a completion token (reasoning included), per million tokens.
        cached_input: price of a prompt token read from cache; ``None`` means ``input``.
        cache_write: price of a prompt token written to cache; ``None`` means ``input``.
        batch_discount: the fraction charged for Batch API calls (``0.5`` at OpenAI);
            ``None`` when the provider has no batch API.
        context_window: the most prompt tokens the model accepts, if known.
        max_output_tokens: the most completion tokens the model can produce, if known.
        capabilities: a subset of :data:`CAPABILITIES`.
        as_of: the day the price was read from its source.
        source: where the price comes from (a URL or a document name).
        note: assumptions or caveats (for example a price tier that is not modelled).
        long_context: the rates of every token of a request whose prompt is longer than
            ``long_context.above`` tokens, for models billed that way.

    Raises:
        ConfigurationError: a price is negative or not a finite Decimal, the batch discount
            is not in (0, 1], or a capability is unknown.

    Example:
        >>> p = Price(model="m", provider="me", input=Decimal("1"), output=Decimal("2"),
        ...           as_of=datetime.date(2026, 11, 1), source="my sheet")
        >>> p.cost(Usage(prompt_tokens=1_000_000, completion_tokens=0))
        Decimal('1')
    """

    model: str
    provider: str
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    batch_discount: Decimal | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    capabilities: frozenset[str] = frozenset()
    as_of: datetime.date
    source: str
    note: str | None = None
    long_context: LongContext | None = None
    # Integer forms of the four rates over a common power of ten, so cost() is plain int
    # arithmetic: exact, independent of the decimal context, and about 1 µs.
    _rates: tuple[int, int, int, int] = field(init=False, repr=False, compare=False)
    _decimals: int = field(init=False, repr=False, compare=False)
    _batch: tuple[int, int] | None = field(init=False, repr=False, compare=False)
    _to_nanos: tuple[int, int] = field(init=False, repr=False, compare=False)  # (mul, div)
    _long: Price | None = field(init=False, repr=False, compare=False)  # the long-prompt tier
    _above: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input", "cache_write"):
            value = getattr(self, name)
            if value is None and name in ("cached_input", "cache_write"):
                continue
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                msg = (
                    f"model {self.model!r}: field {name!r}: must be a non-negative "
                    f"Decimal, got {value!r}"
                )
                raise ConfigurationError(msg)
        if self.batch_discount is not None and not (
            isinstance(self.batch_discount, Decimal)
            and self.batch_discount.is_finite()
            and 0 < self.batch_discount <= 1
        ):
            msg = (
                f"model {self.model!r}: field 'batch_discount': must be a Decimal in (0, 1], "
                f"got {self.batch_discount!r}"
            )
            raise ConfigurationError(msg)
        unknown = set(self.capabilities) - CAPABILITIES
        if unknown:
            msg = (
                f"model {self.model!r}: field 'capabilities': unknown capability "
                f"{sorted(unknown)[0]!r} (expected some of {sorted(CAPABILITIES)})"
            )
            raise ConfigurationError(msg)
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))

        rates = (
            self.input,
            self.cached_input if self.cached_input is not None else self.input,
            self.cache_write if self.cache_write is not None else self.input,
            self.output,
        )
        split = [_scaled_int(rate) for rate in rates]
        decimals = max(d for _, d in split)
        ints = tuple(n * 10 ** (decimals - d) for n, d in split)
        object.__setattr__(self, "_rates", ints)
        object.__setattr__(self, "_decimals", decimals + _PER_MILLION)
        batch = None if self.batch_discount is None else _scaled_int(self.batch_discount)
        object.__setattr__(self, "_batch", batch)
        shift = self._decimals - _NANOS_PER_USD  # a rate total is total / 10**shift nano-dollars
        object.__setattr__(self, "_to_nanos", (10**-shift, 1) if shift <= 0 else (1, 10**shift))
        long, above = None, 0
        if self.long_context is not None:
            tier = self.long_context
            if not isinstance(tier, LongContext):
                msg = f"model {self.model!r}: field 'long_context': must be a LongContext"
                raise ConfigurationError(msg)
            if isinstance(tier.above, bool) or not isinstance(tier.above, int) or tier.above < 1:
                msg = (
                    f"model {self.model!r}: field 'long_context.above': must be a positive "
                    f"number of tokens, got {tier.above!r}"
                )
                raise ConfigurationError(msg)
            # The tier is a Price of its own (same discount and provenance): cost() and the
            # integer path then need one comparison, not a second set of formulas.
            long = Price(
                model=self.model,
                provider=self.provider,
                input=tier.input,
                output=tier.output,
                cached_input=tier.cached_input,
                cache_write=tier.cache_write,
                batch_discount=self.batch_discount,
                as_of=self.as_of,
                source=self.source,
            )
            above = tier.above
        object.__setattr__(self, "_long", long)
        object.__setattr__(self, "_above", above)

    @property
    def effective_cached_input(self) -> Decimal:
        """The rate applied to cache reads (``cached_input``, or ``input`` when unset)."""
        return self.cached_input if self.cached_input is not None else self.input

    @property
    def effective_cache_write(self) -> Decimal:
        """The rate applied to cache writes (``cache_write``, or ``input`` when unset)."""
        return self.cache_write if self.cache_write is not None else self.input

    def cost(self, usage: Usage, *, batch: bool = False) -> Decimal:
        """The exact cost of ``usage`` at this price, in USD.

        Uncached prompt tokens are charged at ``input``, cache reads at ``cached_input``,
        cache writes at ``cache_write`` and every completion token (reasoning included) at
        ``output``; ``batch=True`` then applies ``batch_discount``.

        Args:
            usage: the token counts of the call.
            batch: the call went through the provider's Batch API.

        Returns:
            The cost in USD, exact (no rounding at all).

        Raises:
            PricingError: ``batch=True`` for a model whose provider has no batch API.

        Example:
            >>> gpt4o.cost(Usage(prompt_tokens=1000, completion_tokens=100))
            Decimal('0.0035')
        """
        if self._long is not None and usage.prompt_tokens > self._above:
            return self._long.cost(usage, batch=batch)
        r_in, r_cached, r_write, r_out = self._rates
        uncached = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
        total = (
            uncached * r_in
            + usage.cached_tokens * r_cached
            + usage.cache_write_tokens * r_write
            + usage.completion_tokens * r_out
        )
        decimals = self._decimals
        if batch:
            if self._batch is None:
                msg = f"model {self.model!r}: {self.provider} has no batch API price"
                raise PricingError(msg)
            factor, factor_decimals = self._batch
            total *= factor
            decimals += factor_decimals
        while decimals and not total % 10:  # 0.0035, not 0.00350000
            total //= 10
            decimals -= 1
        # Exact: Decimal(int) never rounds, and _EXACT has room for any realistic total.
        return Decimal(total).scaleb(-decimals, _EXACT)

    def cost_nanos(self, usage: Usage, *, batch: bool = False) -> int:
        """The cost of ``usage`` in integer nano-dollars: exactly ``to_nanos(cost(usage))``.

        Use it to store or add up money: it is plain integer arithmetic (no `Decimal`), and
        rounds half to even like `to_nanos`.

        Args:
            usage: the token counts of the call.
            batch: the call went through the provider's Batch API.

        Returns:
            The cost in nano-dollars.

        Raises:
            PricingError: ``batch=True`` for a model whose provider has no batch API.

        Example:
            >>> gpt4o.cost_nanos(Usage(prompt_tokens=1000, completion_tokens=100))
            3500000
        """
        return self._nanos(
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens,
            usage.cache_write_tokens,
            batch=batch,
        )

    def _nanos(
        self, prompt: int, completion: int, cached: int, written: int, *, batch: bool = False
    ) -> int:
        # The hot path of the meter: token counts straight from the SDK, no Usage object.
        if self._long is not None and prompt > self._above:
            return self._long._nanos(prompt, completion, cached, written, batch=batch)
        r_in, r_cached, r_write, r_out = self._rates
        total = (
            (prompt - cached - written) * r_in
            + cached * r_cached
            + written * r_write
            + completion * r_out
        )
        if batch:
            if self._batch is None:
                msg = f"model {self.model!r}: {self.provider} has no batch API price"
                raise PricingError(msg)
            factor, factor_decimals = self._batch
            shift = self._decimals - _NANOS_PER_USD + factor_decimals
            if shift <= 0:
                multiplier: int = 10**-shift
                return total * factor * multiplier
            return _divide_half_even(total * factor, 10**shift)
        multiplier, divisor = self._to_nanos
        if divisor == 1:
            return total * multiplier
        return _divide_half_even(total, divisor)


# --------------------------------------------------------------------------------------------
# Validation at the I/O boundary (pydantic)
# --------------------------------------------------------------------------------------------


def _show(value: object) -> str:
    """Render a rejected value the way it looked in the file."""
    if isinstance(value, Decimal):
        return str(value)
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _money(value: object) -> Decimal:
    # bool is an int subclass; ``"input": true`` is a typo, not a price of $1.
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        msg = f"must be a non-negative number, got {_show(value)}"
        raise ValueError(msg)  # noqa: TRY004 - pydantic turns ValueError into a field error
    try:
        # str() first: Decimal(0.15) is 0.1499999999999999944..., Decimal("0.15") is 0.15.
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount < 0:
        msg = f"must be a non-negative number, got {_show(value)}"
        raise ValueError(msg)
    return amount


def _optional_money(value: object) -> Decimal | None:
    return None if value is None else _money(value)


def _fraction(value: object) -> Decimal | None:
    if value is None:
        return None
    amount = _money(value)
    if not 0 < amount <= 1:
        msg = f"must be a fraction in (0, 1], got {_show(value)}"
        raise ValueError(msg)
    return amount


def _positive_int(value: object) -> int | None:
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (isinstance(value, str) and value.strip().isdigit()) or (
        isinstance(value, Decimal) and value == value.to_integral_value()
    ):
        number = int(value)
    if number is None or number <= 0:
        msg = f"must be a positive integer, got {_show(value)}"
        raise ValueError(msg)
    return number


def _capabilities(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):  # CSV cells: "tools;vision" or "tools vision"
        items: list[object] = [v for v in re.split(r"[;,|\s]+", value) if v]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    else:
        msg = f"must be a list of capabilities, got {_show(value)}"
        raise ValueError(msg)  # noqa: TRY004 - pydantic turns ValueError into a field error
    for item in items:
        if item not in CAPABILITIES:
            msg = f"unknown capability {_show(item)} (expected some of {sorted(CAPABILITIES)})"
            raise ValueError(msg)
    return frozenset(str(item) for item in items)


def _day(value: object) -> datetime.date | None:
    if value is None or isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
    msg = f"must be a date as YYYY-MM-DD, got {_show(value)}"
    raise ValueError(msg)


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    msg = f"must be a string, got {_show(value)}"
    raise ValueError(msg)


_Money = Annotated[Decimal, BeforeValidator(_money)]
_OptMoney = Annotated[Decimal | None, BeforeValidator(_optional_money)]
_Fraction = Annotated[Decimal | None, BeforeValidator(_fraction)]
_PosInt = Annotated[int | None, BeforeValidator(_positive_int)]
_Caps = Annotated[frozenset[str], BeforeValidator(_capabilities)]
_Day = Annotated[datetime.date | None, BeforeValidator(_day)]
_Text = Annotated[str | None, BeforeValidator(_text)]


class _LongEntry(BaseModel):
    """The ``long_context`` object of an entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    above: Annotated[int, BeforeValidator(_positive_int)]
    input: _Money
    output: _Money
    cached_input: _OptMoney = None
    cache_write: _OptMoney = None


class _Entry(BaseModel):
    """One model's entry in a price sheet (JSON object or CSV row)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: _Text = None
    input: _Money
    output: _Money
    cached_input: _OptMoney = None
    cache_write: _OptMoney = None
    batch_discount: _Fraction = None
    context_window: _PosInt = None
    max_output_tokens: _PosInt = None
    capabilities: _Caps = frozenset()
    as_of: _Day = None
    source: _Text = None
    note: _Text = None
    long_context: _LongEntry | None = None


class _Sheet(BaseModel):
    """The top level of a JSON price sheet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: Literal[1] = Field(default=1, alias="schema")
    as_of: _Day = None
    notes: _Text = None
    source: _Text = None
    models: dict[str, dict[str, Any]]


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    """Turn one pydantic error into ``(field, message)``."""
    loc = error.get("loc") or ()
    name = ".".join(str(part) for part in loc) if loc else "?"
    kind = error.get("type")
    if kind == "missing":
        return name, "missing required field"
    if kind == "extra_forbidden":
        return name, "unknown field"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if kind in {"literal_error", "dict_type", "model_type"}:
        message = f"{message}, got {_show(error.get('input'))}"
    return name, message


def _parse_entries(
    models: Mapping[str, object],
    *,
    origin: str,
    default_as_of: datetime.date,
    default_source: str,
    require_dated: bool,
) -> dict[str, Price]:
    """Validate raw entries and build Prices; every error names origin, model and field."""
    problems: list[str] = []
    prices: dict[str, Price] = {}
    for name, raw in models.items():
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{origin}: model {name!r}: model names must be non-empty strings")
            continue
        if isinstance(raw, Price):
            prices[name] = raw
            continue
        if not isinstance(raw, Mapping):
            problems.append(
                f"{origin}: model {name!r}: entry must be an object of fields, got {_show(raw)}"
            )
            continue
        try:
            entry = _Entry.model_validate(dict(raw))
        except ValidationError as exc:
            for error in exc.errors():
                where, message = _describe(error)
                problems.append(f"{origin}: model {name!r}: field {where!r}: {message}")
            continue
        if require_dated:
            for required in ("as_of", "source"):
                if getattr(entry, required) is None:
                    problems.append(
                        f"{origin}: model {name!r}: field {required!r}: missing required field"
                    )
            if entry.as_of is None or entry.source is None:
                continue
        prices[name] = Price(
            model=name,
            provider=entry.provider or "unknown",
            input=entry.input,
            output=entry.output,
            cached_input=entry.cached_input,
            cache_write=entry.cache_write,
            batch_discount=entry.batch_discount,
            context_window=entry.context_window,
            max_output_tokens=entry.max_output_tokens,
            capabilities=entry.capabilities,
            as_of=entry.as_of or default_as_of,
            source=entry.source or default_source,
            note=entry.note,
            long_context=None
            if entry.long_context is None
            else LongContext(**entry.long_context.model_dump()),
        )
    if problems:
        raise ConfigurationError("\n".join(problems))
    return prices


def _parse_document(
    document: object, *, origin: str, require_dated: bool = False
) -> dict[str, Price]:
    """Parse a sheet: either ``{"schema": 1, "models": {...}}`` or a bare ``{name: entry}``."""
    if not isinstance(document, Mapping):
        msg = f"{origin}: a price sheet must be a JSON object, got {type(document).__name__}"
        raise ConfigurationError(msg)
    if "models" not in document:
        return _parse_entries(
            document,
            origin=origin,
            default_as_of=datetime.date.today(),
            default_source=origin,
            require_dated=require_dated,
        )
    try:
        sheet = _Sheet.model_validate(dict(document))
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where, message = _describe(error)
            lines.append(f"{origin}: field {where!r}: {message}")
        raise ConfigurationError("\n".join(lines)) from None
    return _parse_entries(
        sheet.models,
        origin=origin,
        default_as_of=sheet.as_of or datetime.date.today(),
        default_source=sheet.source or origin,
        require_dated=require_dated,
    )


_CSV_REQUIRED: Final = ("model", "input", "output")


def _parse_csv(text: str, *, origin: str) -> dict[str, Price]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [column for column in _CSV_REQUIRED if column not in header]
    if missing:
        msg = f"{origin}: CSV header must have columns {list(_CSV_REQUIRED)}; missing {missing}"
        raise ConfigurationError(msg)
    rows: dict[str, object] = {}
    for line, row in enumerate(reader, start=2):
        cells = {
            (key or "").strip(): (value.strip() if isinstance(value, str) else value)
            for key, value in row.items()
        }
        name = cells.pop("model", None)
        if not name:
            msg = f"{origin}: line {line}: field 'model': missing required field"
            raise ConfigurationError(msg)
        if isinstance(name, list):  # DictReader's overflow cell
            msg = f"{origin}: line {line}: more cells than header columns"
            raise ConfigurationError(msg)
        rows[name] = {k: v for k, v in cells.items() if v not in (None, "")}
    return _parse_entries(
        rows,
        origin=origin,
        default_as_of=datetime.date.today(),
        default_source=origin,
        require_dated=False,
    )


def _loads(text: str, *, origin: str) -> object:
    try:
        # parse_float=Decimal keeps 0.15 exactly 0.15 from the file onwards.
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        msg = f"{origin}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise ConfigurationError(msg) from None


@functools.cache
def _bundled_prices() -> Mapping[str, Price]:
    """Parse the bundled ``data/prices.json``; runs at most once per process."""
    text = resources.files("costwise").joinpath("data/prices.json").read_text("utf-8")
    prices = _parse_document(
        _loads(text, origin=_BUNDLED_NAME), origin=_BUNDLED_NAME, require_dated=True
    )
    return MappingProxyType(prices)  # shared by every default table: read-only


# --------------------------------------------------------------------------------------------
# Model-name normalisation
# --------------------------------------------------------------------------------------------

# Suffixes that name a *snapshot* of a model, not a different model. Each is stripped on its
# own, breadth first, so "gpt-4o-realtime-preview-2024-12-17" can reach either
# "gpt-4o-realtime-preview" or (via "-preview-DATE") "gpt-4o-realtime". Nothing here can turn
# "gpt-4o-mini" into "gpt-4o": only version-like tails are removed, never a family word.
_SNAPSHOT_SUFFIXES: Final = (
    re.compile(r"@[\w.\-]+$"),  # Vertex AI style: claude-opus-4-5@20251101, gemini-x@001
    re.compile(r"-preview-\d{4}-\d{2}-\d{2}$"),
    re.compile(r"-preview-\d{2}-\d{2}$"),  # Gemini style: gemini-2.5-pro-preview-06-05
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # gpt-4o-2024-08-06
    re.compile(r"-\d{8}$"),  # claude-haiku-4-5-20251001
    re.compile(r"-\d{4}$"),  # gpt-4-0613, mistral-large-2411
    re.compile(r"-latest$"),
)
_LOOKUP_CACHE_LIMIT: Final = 4096


def _prefix_candidates(name: str) -> Iterator[str]:
    """``a/b/c`` -> ``a/b/c``, ``b/c``, ``c`` (provider and router prefixes, outermost first)."""
    yield name
    rest = name
    while "/" in rest:
        rest = rest.split("/", 1)[1]
        if rest:
            yield rest


def _snapshot_candidates(name: str) -> list[str]:
    seen = [name]
    frontier = [name]
    while frontier:
        current = frontier.pop(0)
        for pattern in _SNAPSHOT_SUFFIXES:
            match = pattern.search(current)
            if match and match.start() > 0:
                shorter = current[: match.start()]
                if shorter not in seen:
                    seen.append(shorter)
                    frontier.append(shorter)
    return seen


# --------------------------------------------------------------------------------------------
# PriceTable
# --------------------------------------------------------------------------------------------

_PriceSource: TypeAlias = "Mapping[str, Price | Mapping[str, Any]] | PriceTable"


class PriceTable:
    """A set of model prices with name normalisation and a policy for unknown models.

    Use :meth:`default` for the bundled, dated prices, and :meth:`extend`,
    :meth:`from_file` or :meth:`from_dict` to add your own negotiated or provider-specific
    prices. Every method returns a *new* table; the default table of other clients is never
    changed.

    :meth:`lookup` tries, in order: the exact name; the name ignoring case; the name without
    provider prefixes (``openai/gpt-4o``); and the name without a snapshot suffix
    (``gpt-4o-2024-08-06`` → ``gpt-4o``, also ``-YYYYMMDD``, ``-MMDD``, ``-latest``,
    ``-preview-DATE`` and ``@version``). It never guesses across model families:
    ``gpt-4o-mini`` is never priced as ``gpt-4o``. Results are cached per table, so repeated
    lookups are a dictionary hit.

    Args:
        prices: the prices, keyed by model name (or an iterable of :class:`Price`).
        on_unknown: what :meth:`price` and :meth:`cost` do for a model with no price:
            ``"warn"`` (default) warns once per model with :class:`CostwiseWarning` and
            returns ``None``; ``"raise"`` raises :class:`UnknownModelError`; ``"zero"``
            prices it at $0 (for tests and free local models).

    Raises:
        ConfigurationError: ``on_unknown`` is not one of the three policies.

    Example:
        >>> table = PriceTable.default().extend({"my-ft-model": {"input": "0.3", "output": "1.2"}})
        >>> table.cost("gpt-4o-2024-08-06", Usage(prompt_tokens=1000, completion_tokens=100))
        Decimal('0.0035')
    """

    __slots__ = (
        "__weakref__",
        "_by_lower",
        "_cache",
        "_lock",
        "_on_unknown",
        "_prices",
        "_warned",
        "_zero",
    )

    def __init__(
        self,
        prices: Mapping[str, Price] | Iterable[Price] = (),
        *,
        on_unknown: OnUnknown = "warn",
    ) -> None:
        if on_unknown not in _ON_UNKNOWN:
            msg = f"on_unknown must be one of {list(_ON_UNKNOWN)}, got {on_unknown!r}"
            raise ConfigurationError(msg)
        if isinstance(prices, Mapping):
            table = dict(prices)
        else:
            table = {price.model: price for price in prices}
        for name, price in table.items():
            if not isinstance(price, Price):
                msg = f"model {name!r}: expected a Price, got {type(price).__name__}"
                raise ConfigurationError(msg)
        self._prices: Mapping[str, Price] = table
        self._on_unknown: OnUnknown = on_unknown
        by_lower: dict[str, str] = {}
        for name in table:
            by_lower.setdefault(name.lower(), name)
        self._by_lower = by_lower
        self._cache: dict[str, Price | None] = {}
        self._warned: set[str] = set()
        self._zero: dict[str, Price] = {}
        self._lock = threading.Lock()

    # -- constructors ------------------------------------------------------------------------

    @classmethod
    def default(cls, *, on_unknown: OnUnknown = "warn") -> PriceTable:
        """The bundled price table (``costwise/data/prices.json``).

        Use it as the base of every client unless you have your own price sheet. The file
        is parsed on the first call in a process and shared read-only afterwards; each call
        returns a new table, so policies and caches stay per client.

        Args:
            on_unknown: the unknown-model policy of the new table.

        Returns:
            A new table holding the bundled prices.
        """
        return cls(_bundled_prices(), on_unknown=on_unknown)

    @classmethod
    def from_dict(
        cls,
        mapping: Mapping[str, Any],
        *,
        base: PriceTable | None = None,
        on_unknown: OnUnknown | None = None,
    ) -> PriceTable:
        """Build a table from a mapping shaped like a price sheet.

        Use it for prices kept in code or in your own config system. ``mapping`` is either
        ``{model: {"input": ..., "output": ..., ...}}`` or a whole sheet
        (``{"schema": 1, "as_of": ..., "models": {...}}``). Prices may be numbers or
        strings; ``as_of`` defaults to the sheet's ``as_of`` or today, ``source`` to
        ``"from_dict"``.

        Args:
            mapping: the entries.
            base: a table whose prices the new ones are added to (the new ones win).
            on_unknown: policy of the new table; defaults to ``base``'s, else ``"warn"``.

        Returns:
            A new table.

        Raises:
            ConfigurationError: an entry is invalid; the message names the model and field.
        """
        prices = _parse_document(mapping, origin="from_dict")
        return cls._combine(base, prices, on_unknown)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        base: PriceTable | None = None,
        on_unknown: OnUnknown | None = None,
    ) -> PriceTable:
        """Load a price sheet from a JSON or CSV file.

        Use it to price with your provider's or your own negotiated rates. JSON files have
        the shape of the bundled sheet (or a bare ``{model: entry}`` object); CSV files
        (``.csv``) have a header with at least ``model,input,output`` and optionally
        ``cached_input,cache_write,batch_discount,context_window,max_output_tokens,
        capabilities,as_of,source,provider,note`` (capabilities separated by ``;``).

        Args:
            path: the file.
            base: a table the file's prices are added to (the file wins), e.g.
                ``PriceTable.default()``; ``None`` means the file's prices only.
            on_unknown: policy of the new table; defaults to ``base``'s, else ``"warn"``.

        Returns:
            A new table.

        Raises:
            ConfigurationError: the file cannot be read, is not valid JSON/CSV, or an entry
                is invalid; the message names the file, the model and the field.

        Example:
            >>> table = PriceTable.from_file("prices.csv", base=PriceTable.default())
        """
        origin = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            msg = f"{origin}: cannot read price file: {reason}"
            raise ConfigurationError(msg) from exc
        if origin.lower().endswith(".csv"):
            prices = _parse_csv(text, origin=origin)
        else:
            prices = _parse_document(_loads(text, origin=origin), origin=origin)
        return cls._combine(base, prices, on_unknown)

    @classmethod
    def _combine(
        cls, base: PriceTable | None, prices: Mapping[str, Price], on_unknown: OnUnknown | None
    ) -> PriceTable:
        merged: dict[str, Price] = dict(base._prices) if base is not None else {}
        merged.update(prices)
        policy = on_unknown or (base._on_unknown if base is not None else "warn")
        return cls(merged, on_unknown=policy)

    def extend(self, prices: _PriceSource) -> PriceTable:
        """A new table with ``prices`` added; on a name clash the new price wins.

        Use it to add or override a few models on top of the bundled table, for one client
        only.

        Args:
            prices: another table, or a mapping of model name to :class:`Price` or to a
                sheet entry (``{"input": "0.3", "output": "1.2", ...}``).

        Returns:
            A new table with this table's policy.

        Raises:
            ConfigurationError: an entry is invalid.

        Example:
            >>> cheap = PriceTable.default().extend({"gpt-4o": {"input": 2, "output": 8}})
        """
        if isinstance(prices, PriceTable):
            new = dict(prices._prices)
        else:
            new = _parse_document(prices, origin="extend")
        return self._combine(self, new, self._on_unknown)

    def with_policy(self, on_unknown: OnUnknown) -> PriceTable:
        """The same prices with another unknown-model policy (e.g. ``"raise"`` in CI)."""
        return PriceTable(self._prices, on_unknown=on_unknown)

    # -- queries -----------------------------------------------------------------------------

    @property
    def on_unknown(self) -> OnUnknown:
        """This table's policy for models it has no price for."""
        return self._on_unknown

    @property
    def as_of(self) -> datetime.date | None:
        """The oldest ``as_of`` in the table: how stale its prices may be (``None`` if empty)."""
        return min((price.as_of for price in self._prices.values()), default=None)

    def models(self) -> list[str]:
        """The model names the table prices exactly, in the order they were added."""
        return list(self._prices)

    def lookup(self, model: str) -> Price | None:
        """The price for ``model`` after normalisation, or ``None``; never warns or raises.

        Use it when you want to decide yourself what an unknown model means (the router
        does this to skip models it cannot price).

        Args:
            model: the model name as sent or as returned in ``response.model``.

        Returns:
            The price, or ``None`` when no normalisation step finds one.
        """
        try:
            return self._cache[model]
        except KeyError:
            pass
        found = self._resolve(model)
        if len(self._cache) >= _LOOKUP_CACHE_LIMIT:
            # Model names are few; a flood of distinct ones is a bug elsewhere, so bound memory.
            self._cache.clear()
        self._cache[model] = found
        return found

    def _resolve(self, model: str) -> Price | None:
        exact = self._prices.get(model)
        if exact is not None:
            return exact
        for candidate in _prefix_candidates(model):
            for name in _snapshot_candidates(candidate):
                key = self._by_lower.get(name.lower())
                if key is not None:
                    return self._prices[key]
        return None

    def price(self, model: str) -> Price | None:
        """The price for ``model``, applying the table's unknown-model policy.

        Args:
            model: the model name.

        Returns:
            The price; for an unknown model ``None`` under ``"warn"`` and a $0 price under
            ``"zero"``.

        Raises:
            UnknownModelError: the model is unknown and the policy is ``"raise"``.

        Warns:
            CostwiseWarning: the model is unknown and the policy is ``"warn"`` (once per
                model per table).
        """
        found = self.lookup(model)
        if found is not None:
            return found
        if self._on_unknown == "raise":
            raise UnknownModelError(model)
        if self._on_unknown == "zero":
            return self._zero_price(model)
        with self._lock:
            first = model not in self._warned
            self._warned.add(model)
        if first:
            warnings.warn(
                f"no price for model {model!r}; its cost is recorded as unknown. Add it with "
                f"PriceTable.extend() or PriceTable.from_file()",
                CostwiseWarning,
                stacklevel=2,
            )
        return None

    def _zero_price(self, model: str) -> Price:
        zero = self._zero.get(model)
        if zero is None:
            zero = Price(
                model=model,
                provider="unknown",
                input=Decimal(0),
                output=Decimal(0),
                as_of=datetime.date.min,
                source="costwise on_unknown='zero' policy",
                note="not a real price: the model is unknown and the table prices it at $0",
            )
            self._zero[model] = zero
        return zero

    def cost(self, model: str, usage: Usage, *, batch: bool = False) -> Decimal | None:
        """The exact cost of a call to ``model``, or ``None`` if it cannot be priced.

        ``None`` means *unknown*, never $0: under ``"warn"`` an unknown model warns once and
        costs ``None``, so totals do not silently shrink.

        Args:
            model: the model that served the call (prefer ``response.model``).
            usage: the call's token counts.
            batch: the call went through the provider's Batch API.

        Returns:
            The cost in USD, or ``None`` for an unknown model under ``"warn"``.

        Raises:
            UnknownModelError: unknown model under ``"raise"``.
            PricingError: ``batch=True`` for a model with no batch API.
        """
        price = self.lookup(model)
        if price is None:
            price = self.price(model)
            if price is None:
                return None
        return price.cost(usage, batch=batch)

    def cost_nanos(self, model: str, usage: Usage, *, batch: bool = False) -> int | None:
        """`cost` in integer nano-dollars: exactly ``to_nanos(cost(...))``, or ``None``.

        Use it where money is stored or summed (ledgers, budgets): integer arithmetic only,
        rounded half to even like `to_nanos`, with the same unknown-model policy as `cost`.

        Args:
            model: the model that served the call.
            usage: the call's token counts.
            batch: the call went through the provider's Batch API.

        Returns:
            The cost in nano-dollars, or ``None`` for an unknown model under ``"warn"``.

        Raises:
            UnknownModelError: unknown model under ``"raise"``.
            PricingError: ``batch=True`` for a model with no batch API.
        """
        return self._nanos(
            model,
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens,
            usage.cache_write_tokens,
            batch=batch,
        )

    def _nanos(
        self,
        model: str,
        prompt: int,
        completion: int,
        cached: int,
        written: int,
        *,
        batch: bool = False,
    ) -> int | None:
        price = self._cache.get(model)
        if price is None:
            price = self.lookup(model)
            if price is None:
                price = self.price(model)
                if price is None:
                    return None
        return price._nanos(prompt, completion, cached, written, batch=batch)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.lookup(model) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    @override
    def __repr__(self) -> str:
        return (
            f"PriceTable({len(self._prices)} models, as_of={self.as_of}, "
            f"on_unknown={self._on_unknown!r})"
        )

    def __copy__(self) -> Self:
        return self  # immutable: sharing is safe and keeps the lookup cache warm

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self
