"""Errors and warnings raised by costwise.

The hierarchy::

    openai.OpenAIError
    └── CostwiseError                        root: ``except costwise.CostwiseError``
        ├── ConfigurationError (+ValueError)  bad strategy config or order, invalid price file
        ├── LedgerError                       the ledger store cannot be opened, read or written
        ├── PricingError
        │   └── UnknownModelError (+KeyError) model absent and ``on_unknown="raise"``
        ├── BudgetExceededError               a budget refused the call before it was sent
        ├── StrategyError                     a strategy broke the flow contract
        └── BatchError                        a batch (packed or provider job) failed as a whole
    CostwiseWarning (UserWarning)            degraded modes: tokenizer fallback, cache outage, ...

The root subclasses :class:`openai.OpenAIError`, so code that already catches
``openai.OpenAIError`` around its calls keeps catching everything costwise adds. SDK errors
(``openai.RateLimitError`` and friends) are never wrapped: they pass through unchanged.
"""

from __future__ import annotations

import threading
import warnings
from decimal import Decimal

import openai
from typing_extensions import override

__all__ = [
    "BatchError",
    "BudgetExceededError",
    "ConfigurationError",
    "CostwiseError",
    "CostwiseWarning",
    "LedgerError",
    "PricingError",
    "StrategyError",
    "UnknownModelError",
]


class CostwiseError(openai.OpenAIError):
    """Base class of every error costwise raises itself."""


class ConfigurationError(CostwiseError, ValueError):
    """A client, strategy or price sheet was configured wrongly.

    Raised at construction time wherever the fault can be seen then.
    """


class LedgerError(CostwiseError):
    """The ledger store cannot be opened, read or written.

    Attributes:
        path: the file or URL of the store at fault, when there is one.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class PricingError(CostwiseError):
    """A price could not be determined or a price sheet is invalid."""


class UnknownModelError(PricingError, KeyError):
    """The model has no price and the table's policy is ``on_unknown="raise"``.

    Attributes:
        model: the model name that was looked up.
    """

    def __init__(self, model: str) -> None:
        msg = (
            f"no price for model {model!r}; add it with PriceTable.extend() or "
            f"PriceTable.from_file(), or use on_unknown='warn'"
        )
        super().__init__(msg)
        self.model = model

    @override
    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class BudgetExceededError(CostwiseError):
    """A budget refused the call before anything was sent upstream.

    Attributes:
        feature: the feature whose budget was hit (``None`` for the overall budget).
        spent: what had been spent in the budget's period, in USD.
        limit: the budget's limit, in USD.
        period: ``"day"`` or ``"month"``.
    """

    def __init__(self, *, feature: str | None, spent: Decimal, limit: Decimal, period: str) -> None:
        scope = f"feature {feature!r}" if feature is not None else "overall"
        msg = f"{scope} budget of ${limit} per {period} is spent (${spent} so far)"
        super().__init__(msg)
        self.feature = feature
        self.spent = spent
        self.limit = limit
        self.period = period


class StrategyError(CostwiseError):
    """A strategy broke the flow protocol (for example it yielded something that is not a Call).

    Attributes:
        strategy: the strategy object at fault.
    """

    def __init__(self, message: str, *, strategy: object) -> None:
        super().__init__(message)
        self.strategy = strategy


class BatchError(CostwiseError):
    """A batch failed as a whole (empty, oversized, mixed models, a failed or expired job)."""


class CostwiseWarning(UserWarning):
    """A degraded mode: a fallback tokenizer, a cache outage, an estimated or unknown cost."""


_warned_once: set[str] = set()
_warned_once_lock = threading.Lock()


def warn_once(key: str, message: str, *, stacklevel: int = 2) -> None:
    """Issue `message` as a `CostwiseWarning` the first time `key` is seen in this process
    (for limits of a kind of call, said once rather than on every call)."""
    with _warned_once_lock:
        if key in _warned_once:
            return
        _warned_once.add(key)
    warnings.warn(message, CostwiseWarning, stacklevel=stacklevel + 1)
