"""The ledger store protocol, the aggregate row, and the in-memory store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from ._entry import LedgerEntry, entry_from_row

__all__ = [
    "GROUPS",
    "TOTALS",
    "Group",
    "LedgerStore",
    "MemoryStore",
    "ReportRow",
    "aggregate_entries",
    "check_group",
]

Group = Literal["feature", "model", "strategy", "day", "requested_model", "status"]
GROUPS: tuple[str, ...] = ("feature", "model", "strategy", "day", "requested_model", "status")


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportRow:
    """Totals of one group of ledger entries (one feature, one model, one day, ...)."""

    key: str
    calls: int
    """Logical calls (what callers' ``create`` returned or raised)."""
    entries: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_nanos: int
    baseline_nanos: int
    hits: int
    """Calls answered without calling upstream (exact or semantic cache)."""
    escalations: int
    """Calls whose answer came from a cascade tier above the first."""
    errors: int
    unknown_cost: int
    """Entries whose model had no price (their cost is not in ``cost_nanos``)."""
    estimated: int
    """Entries whose token counts are estimates."""


TOTALS: tuple[str, ...] = tuple(f for f in ReportRow.__dataclass_fields__ if f != "key")
"""The summable columns of a report row, in order (stores keep running totals of these)."""


@runtime_checkable
class LedgerStore(Protocol):
    """Where ledger entries live. Implementations: `MemoryStore`, `SQLiteStore`, `RedisStore`.

    A store must make `write` atomic (all entries or none) and idempotent on ``entry.id``
    (writing an entry twice stores it once), so the ledger can retry after a failure without
    double counting.

    A store may also define ``prune(before: float) -> int``: delete the entries (and any
    running totals) with ``ts < before``, a UTC midnight, and return how many entries went.
    `Ledger.prune` uses it; the bundled stores all have it.
    """

    def write(self, entries: Sequence[LedgerEntry]) -> None:
        """Store entries atomically; entries whose id is already stored are skipped."""
        ...

    def entries(
        self, *, since: float | None = None, until: float | None = None
    ) -> Iterator[LedgerEntry]:
        """Entries with ``since <= ts < until``, oldest first."""
        ...

    def aggregate(
        self, *, by: Group = "feature", since: float | None = None, until: float | None = None
    ) -> list[ReportRow]:
        """Totals grouped by `by`, for entries with ``since <= ts < until``."""
        ...

    def spent_nanos(self, *, since: float, feature: str | None = None) -> int:
        """Known cost of entries since `since` (for one feature, or all), in nano-dollars."""
        ...

    def close(self) -> None:
        """Release connections; the store may not be used afterwards."""
        ...


def _key(entry: LedgerEntry, by: str) -> str:
    if by == "day":
        return time.strftime("%Y-%m-%d", time.gmtime(entry.ts))
    if by == "strategy":
        return entry.strategy or "none"
    return str(getattr(entry, by))


def check_group(by: str) -> None:
    """Raise ValueError naming the choices when `by` is not a grouping every store supports."""
    if by not in GROUPS:
        msg = f"cannot group the ledger by {by!r}; choose one of {', '.join(GROUPS)}"
        raise ValueError(msg)


def aggregate_entries(entries: Iterable[LedgerEntry], by: str) -> list[ReportRow]:
    """Group and total entries in Python (the in-memory store and the tests' oracle)."""
    check_group(by)
    acc: dict[str, list[int]] = {}
    for e in entries:
        a = acc.setdefault(_key(e, by), [0] * 13)
        a[0] += e.final
        a[1] += 1
        a[2] += e.prompt_tokens
        a[3] += e.completion_tokens
        a[4] += e.cached_tokens
        a[5] += e.reasoning_tokens
        a[6] += e.cost_nanos or 0
        a[7] += e.baseline_nanos or 0
        a[8] += e.final and e.kind == "hit"
        a[9] += e.final and (e.tier or 0) > 0
        a[10] += e.status != "ok"
        a[11] += e.cost_nanos is None
        a[12] += e.estimated
    return [
        ReportRow(
            key=k,
            calls=a[0],
            entries=a[1],
            prompt_tokens=a[2],
            completion_tokens=a[3],
            cached_tokens=a[4],
            reasoning_tokens=a[5],
            cost_nanos=a[6],
            baseline_nanos=a[7],
            hits=a[8],
            escalations=a[9],
            errors=a[10],
            unknown_cost=a[11],
            estimated=a[12],
        )
        for k, a in sorted(acc.items())
    ]


def _in_range(e: LedgerEntry, since: float | None, until: float | None) -> bool:
    return (since is None or e.ts >= since) and (until is None or e.ts < until)


class MemoryStore:
    """Keeps entries in a list. For tests and short scripts; nothing survives the process.

    Example:
        >>> client = CostwiseClient(ledger=MemoryStore())
    """

    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []
        self._ids: set[str] = set()
        # The meter's rows, kept as they are until something reads the store: building a
        # LedgerEntry per call costs ~10 µs in place on an exact-cache hit (half of it).
        self._rows: list[Sequence[Any]] = []
        self._lock = threading.Lock()

    def write(self, entries: Sequence[LedgerEntry]) -> None:
        with self._lock:
            self._settle()
            self._add(entries)

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """`write` for entries given as rows (FIELDS order; ``detail`` a dict or None)."""
        with self._lock:
            self._rows += rows

    def _add(self, entries: Iterable[LedgerEntry]) -> None:
        for e in entries:
            if e.id not in self._ids:
                self._ids.add(e.id)
                self._entries.append(e)

    def _settle(self) -> None:
        """Turn the rows written so far into entries (under the lock), in order."""
        if self._rows:
            rows, self._rows = self._rows, []
            self._add(map(entry_from_row, rows))

    def prune(self, before: float) -> int:
        """Delete entries with ``ts < before``; returns how many (see `Ledger.prune`)."""
        with self._lock:
            self._settle()
            keep = [e for e in self._entries if e.ts >= before]
            gone = len(self._entries) - len(keep)
            self._entries = keep
            self._ids = {e.id for e in keep}
        return gone

    def entries(
        self, *, since: float | None = None, until: float | None = None
    ) -> Iterator[LedgerEntry]:
        with self._lock:
            self._settle()
            snapshot = sorted(self._entries, key=lambda e: e.ts)
        return (e for e in snapshot if _in_range(e, since, until))

    def aggregate(
        self, *, by: Group = "feature", since: float | None = None, until: float | None = None
    ) -> list[ReportRow]:
        return aggregate_entries(self.entries(since=since, until=until), by)

    def spent_nanos(self, *, since: float, feature: str | None = None) -> int:
        with self._lock:
            self._settle()
            return sum(
                e.cost_nanos or 0
                for e in self._entries
                if e.ts >= since and (feature is None or e.feature == feature)
            )

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        with self._lock:
            self._settle()
            return len(self._entries)
