"""costwise: cut what you pay for LLM APIs without changing how you write code.

Swap one import::

    from costwise import CostwiseClient as OpenAI

then tag calls with ``feature="..."`` and read ``client.ledger.report()``.
"""

from __future__ import annotations

import contextlib
from importlib.metadata import PackageNotFoundError, version

from ._call import REMOVE, Call, CallTrace
from ._client import AsyncCostwiseClient, CostwiseClient
from ._exceptions import (
    BatchError,
    BudgetExceededError,
    ConfigurationError,
    CostwiseError,
    CostwiseWarning,
    LedgerError,
    PricingError,
    StrategyError,
    UnknownModelError,
)
from ._feature import current_feature, feature
from ._pipeline import Answer, Blocking, Express, Pipeline
from ._streaming import AsyncCostwiseStream, CostwiseStream

try:
    __version__ = version("costwise")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = [
    "Answer",
    "AsyncCostwiseClient",
    "AsyncCostwiseStream",
    "BatchError",
    "Blocking",
    "BudgetExceededError",
    "Call",
    "CallTrace",
    "ConfigurationError",
    "CostwiseClient",
    "CostwiseError",
    "CostwiseStream",
    "CostwiseWarning",
    "Express",
    "LedgerError",
    "Pipeline",
    "PricingError",
    "REMOVE",
    "StrategyError",
    "UnknownModelError",
    "current_feature",
    "feature",
]

# Show the public names as costwise.X (httpx and openai do the same), not costwise._client.X.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        with contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = "costwise"
del _name, _obj
