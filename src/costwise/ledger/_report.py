"""The spend report: rows of totals with a readable table and plain dicts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from typing_extensions import override

from ._store import ReportRow

__all__ = ["Report"]

_NANO = Decimal("1e-9")
_CENT = Decimal("0.0001")


def _usd(nanos: int) -> Decimal:
    """Exact USD without trailing zeros, and never in exponent form ($10, not 1E+1)."""
    if not nanos:
        return Decimal(0)
    value = (nanos * _NANO).normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value  # type: ignore[operator]


def _money(nanos: int) -> str:
    return f"${(nanos * _NANO).quantize(_CENT):,}"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


@dataclass(frozen=True, slots=True)
class Report:
    """Spend grouped by feature (or model, strategy, day): what `Ledger.report` returns.

    ``str(report)`` is a table for people; `to_dicts` gives one dict per row for programs.
    Money is exact: `Decimal` USD, summed from integer nano-dollars.
    """

    rows: Sequence[ReportRow]
    by: str = "feature"

    def __iter__(self) -> Iterator[ReportRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def total(self) -> ReportRow:
        """All rows added up (key ``"total"``)."""
        fields = [f for f in ReportRow.__dataclass_fields__ if f != "key"]
        sums = {f: sum(getattr(r, f) for r in self.rows) for f in fields}
        return ReportRow(key="total", **sums)

    def row(self, key: str) -> ReportRow:
        """The row for one key (a feature name, a model, ...)."""
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(key)

    @staticmethod
    def row_dict(row: ReportRow, by: str) -> dict[str, Any]:
        cost, base = _usd(row.cost_nanos), _usd(row.baseline_nanos)
        return {
            by: row.key,
            "calls": row.calls,
            "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens,
            "cached_tokens": row.cached_tokens,
            "reasoning_tokens": row.reasoning_tokens,
            "cost_usd": cost,
            "baseline_usd": base,
            # with a cost unknown, what was saved is unknown too (not the whole baseline)
            "saved_usd": None if row.unknown_cost else base - cost,
            "saved_pct": (
                float(100 * (base - cost) / base)
                if row.baseline_nanos and not row.unknown_cost
                else None
            ),
            "hits": row.hits,
            "hit_rate": row.hits / row.calls if row.calls else None,
            "escalations": row.escalations,
            "escalation_rate": row.escalations / row.calls if row.calls else None,
            "errors": row.errors,
            "unknown_cost_entries": row.unknown_cost,
            "estimated_entries": row.estimated,
        }

    def to_dicts(self) -> list[dict[str, Any]]:
        """One dict per row: ``feature`` (or the group), ``calls``, ``prompt_tokens``,
        ``completion_tokens``, ``cost_usd``, ``baseline_usd``, ``saved_usd`` and more.

        Money values are `Decimal` USD.
        """
        return [self.row_dict(r, self.by) for r in self.rows]

    @override
    def __str__(self) -> str:
        head = [
            self.by,
            "calls",
            "tokens in",
            "tokens out",
            "spend",
            "baseline",
            "saved",
            "saved %",
            "hit rate",
            "escalated",
        ]
        body = []
        for r in [*self.rows, self.total] if self.rows else []:
            body.append(
                [
                    r.key,
                    f"{r.calls:,}",
                    f"{r.prompt_tokens:,}",
                    f"{r.completion_tokens:,}",
                    _money(r.cost_nanos) + ("*" if r.unknown_cost else ""),
                    _money(r.baseline_nanos),
                    "?" if r.unknown_cost else _money(r.baseline_nanos - r.cost_nanos),
                    "?"
                    if r.unknown_cost
                    else _pct(r.baseline_nanos - r.cost_nanos, r.baseline_nanos),
                    _pct(r.hits, r.calls),
                    _pct(r.escalations, r.calls),
                ]
            )
        if not body:
            return f"(no ledger entries)\n{'  '.join(head)}"
        widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]

        def line(cells: Sequence[str]) -> str:
            first = cells[0].ljust(widths[0])
            rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=False))
            return "  ".join([first, *rest]).rstrip()

        rule = "  ".join("-" * w for w in widths)
        out = [line(head), rule, *(line(b) for b in body[:-1]), rule, line(body[-1])]
        if any(r.unknown_cost for r in self.rows):
            out.append(
                "* includes calls to models with no known price (not counted in spend; "
                "what they saved is unknown: ?)"
            )
        return "\n".join(out)
