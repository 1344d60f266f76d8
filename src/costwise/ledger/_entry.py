"""One row of the ledger."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal

__all__ = ["FIELDS", "ROW_INDEX", "EntryKind", "LedgerEntry", "entry_from_row", "row_of"]

EntryKind = Literal["upstream", "hit", "overhead"]

_NANO = Decimal("1e-9")


@dataclass(frozen=True, kw_only=True, slots=True)
class LedgerEntry:
    """One upstream attempt, one answer served without calling upstream, or one side call.

    Money is stored as integer nano-dollars (``cost_nanos``); read it as `Decimal` through
    `cost` and `baseline`. A logical call (what the caller's ``create`` returned) may own
    several entries (cascade attempts, a judge call): exactly one of them has ``final=True``
    and carries the call's baseline, so sums over entries never count a baseline twice.
    Entries never hold message text or API keys.
    """

    id: str
    """Unique id (hex); stores ignore a second write of the same id."""
    call_id: str
    """The logical call this entry belongs to."""
    ts: float
    """Unix time the call started, in seconds."""
    feature: str
    requested_model: str
    """The model the caller wrote (the baseline model)."""
    model: str
    """The model that answered (as the API reported it), or that was attempted."""
    kind: EntryKind = "upstream"
    """``upstream`` attempt, cache ``hit``, or ``overhead`` side call made by a strategy."""
    status: str = "ok"
    """``ok``, or the class name of the error the attempt raised."""
    strategy: str | None = None
    """The strategies that acted on the call, ``+``-joined (``cache``, ``router+cascade``)."""
    purpose: str | None = None
    """For overhead entries: what the side call was for (``judge``, ``compress``, ...)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nanos: int | None = 0
    """What this entry cost, nano-dollars; ``None`` when the model has no known price."""
    baseline_nanos: int | None = 0
    """What the call would have cost as written (only on the final entry, else 0)."""
    final: bool = False
    estimated: bool = False
    """Token counts are tokenizer estimates (a stream without a usage chunk)."""
    latency_ms: float = 0.0
    tier: int | None = None
    """Cascade tier of the attempt (0 = cheapest), when a cascade made it."""
    reason: str | None = None
    """Why a strategy rejected this attempt's answer (for example ``refusal``)."""
    detail: Mapping[str, Any] = field(default_factory=dict)
    """Small extra facts (similarity of a semantic hit, ...); JSON-serialisable."""

    @property
    def cost(self) -> Decimal | None:
        """What the entry cost, in USD (``None`` if unknown)."""
        return None if self.cost_nanos is None else self.cost_nanos * _NANO

    @property
    def baseline(self) -> Decimal | None:
        """What the call would have cost as written, in USD (0 on non-final entries)."""
        return None if self.baseline_nanos is None else self.baseline_nanos * _NANO

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of every field."""
        out = asdict(self)
        out["detail"] = dict(self.detail)
        return out


FIELDS: tuple[str, ...] = tuple(LedgerEntry.__dataclass_fields__)
"""Field names in storage order."""

# The hot path keeps an entry as a list of values in FIELDS order (a "row") until it is
# stored: the journal encodes rows as they are, and the LedgerEntry is built once, later.
ROW_INDEX: dict[str, int] = {name: i for i, name in enumerate(FIELDS)}
_SETTERS = tuple(LedgerEntry.__dict__[name].__set__ for name in FIELDS)
_new = object.__new__


def entry_from_row(row: Sequence[Any]) -> LedgerEntry:
    """The `LedgerEntry` of a row (``detail`` may be ``None``), without keyword parsing.

    Equal to ``LedgerEntry(**dict(zip(FIELDS, row)))``; about half the cost.
    """
    entry: LedgerEntry = _new(LedgerEntry)
    for set_field, value in zip(_SETTERS, row, strict=True):
        set_field(entry, value)
    if row[-1] is None:
        _SETTERS[-1](entry, {})
    return entry


def row_of(entry: LedgerEntry) -> list[Any]:
    """The row of an entry, as the journal stores it (an empty ``detail`` as ``None``)."""
    row = [getattr(entry, name) for name in _FIELDS_BUT_DETAIL]
    row.append(dict(entry.detail) if entry.detail else None)
    return row


_FIELDS_BUT_DETAIL = FIELDS[:-1]
