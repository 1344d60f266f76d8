"""The built-in strategies. Each is an object with a ``flow(call)`` generator method."""

from __future__ import annotations

from ._override import ModelOverride
from .cache import ResponseCache
from .compressor import Compressor
from .semantic import SemanticCache

__all__ = ["Compressor", "ModelOverride", "ResponseCache", "SemanticCache"]
