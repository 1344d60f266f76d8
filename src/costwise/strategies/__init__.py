"""The built-in strategies. Each is an object with a ``flow(call)`` generator method."""

from __future__ import annotations

from ._override import ModelOverride
from .budget import Budget, BudgetLimit
from .cache import ResponseCache
from .cascade import Cascade, Tier
from .compressor import Compressor
from .router import Router
from .semantic import SemanticCache

__all__ = [
    "Budget",
    "BudgetLimit",
    "Cascade",
    "Compressor",
    "ModelOverride",
    "ResponseCache",
    "Router",
    "SemanticCache",
    "Tier",
]
