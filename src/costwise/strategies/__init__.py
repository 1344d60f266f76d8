"""The built-in strategies. Each is an object with a ``flow(call)`` generator method."""

from __future__ import annotations

from ._override import ModelOverride

__all__ = ["ModelOverride"]
