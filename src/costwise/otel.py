"""Optional OpenTelemetry spans for every ledger entry (``pip install costwise[otel]``).

Example:
    >>> from costwise.otel import instrument
    >>> client = CostwiseClient(on_record=[instrument()])
"""

from __future__ import annotations

from ._otel import instrument

__all__ = ["instrument"]
