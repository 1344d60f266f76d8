"""Everything that depends on the openai SDK's version lives here.

It is the one module allowed to know SDK internals (by name only: no private imports).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SDK's request-option types, which it does not export publicly
    from openai._types import Body, Headers, Query

__all__ = ["OPTIONS_HEADER", "RAW_HEADER", "Body", "Headers", "Query", "raw_mode"]

RAW_HEADER = "X-Stainless-Raw-Response"
"""The header ``with_raw_response`` ("true") and ``with_streaming_response`` ("stream") set
on the request; checked on openai 3.57 (``openai._constants.RAW_RESPONSE_HEADER``)."""

OPTIONS_HEADER = "X-Costwise-Options"
"""Private header that carries costwise's per-call options through SDK helpers that only
forward known arguments (``.stream()``). It is removed before the request is sent."""


def raw_mode(extra_headers: Mapping[str, Any] | None) -> bool:
    """Whether the SDK asked for a raw response object instead of a parsed one."""
    if not extra_headers:
        return False
    value = extra_headers.get(RAW_HEADER)
    return value is not None and str(value).lower() in ("true", "stream")
