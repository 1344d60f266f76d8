"""``costwise report`` and ``costwise export``."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import IO, Any

from .._exceptions import LedgerError
from ..ledger import Ledger, LedgerStore, Report
from ._common import (
    EXIT_LEDGER_CORRUPT,
    EXIT_OK,
    EXIT_UNKNOWN_FIELD,
    CliError,
    open_store,
    time_range,
)

__all__ = ["FIELDS", "TABLE_FIELDS", "run_export", "run_report"]

FIELDS: tuple[str, ...] = (
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "baseline_usd",
    "saved_usd",
    "saved_pct",
    "hits",
    "hit_rate",
    "escalations",
    "escalation_rate",
    "errors",
    "unknown_cost_entries",
    "estimated_entries",
)
"""Columns ``--fields`` may name (the group key column is always first)."""

TABLE_FIELDS: tuple[str, ...] = (
    "calls",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cost_usd",
    "baseline_usd",
    "saved_usd",
    "saved_pct",
    "hit_rate",
    "escalation_rate",
)
_LABELS = {
    "calls": "calls",
    "prompt_tokens": "tokens in",
    "cached_tokens": "cached in",
    "completion_tokens": "tokens out",
    "reasoning_tokens": "reasoning",
    "cost_usd": "spend",
    "baseline_usd": "baseline",
    "saved_usd": "saved",
    "saved_pct": "saved %",
    "hits": "hits",
    "hit_rate": "hit rate",
    "escalations": "escalations",
    "escalation_rate": "escalated",
    "errors": "errors",
    "unknown_cost_entries": "unpriced",
    "estimated_entries": "estimated",
}
_CENT = Decimal("0.0001")


def _fields(spec: str | None, default: Sequence[str]) -> list[str]:
    if not spec:
        return list(default)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in FIELDS]
    if unknown or not names:
        msg = (
            f"unknown field {unknown[0]!r}" if unknown else "--fields is empty"
        ) + f"; choose from {', '.join(FIELDS)}"
        raise CliError(msg, EXIT_UNKNOWN_FIELD)
    return names


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    try:
        fh = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115  (closed below)
    except OSError as exc:
        msg = f"cannot write {path!r}: {exc.strerror}"
        raise CliError(msg, 1) from None
    with fh:
        yield fh


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name.endswith("_usd"):
        return f"${Decimal(value).quantize(_CENT):,}"
    if name == "saved_pct":
        return f"{value:.1f}%"
    if name.endswith("_rate"):
        return f"{100 * value:.1f}%"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(report: Report, fields: Sequence[str]) -> str:
    by = report.by
    rows = [Report.row_dict(r, by) for r in report.rows]
    if not rows:
        return "(no ledger entries in this period)"
    total = Report.row_dict(report.total, by)
    head = [by, *(_LABELS[f] for f in fields)]
    body = [[str(r[by]), *(_cell(f, r[f]) for f in fields)] for r in rows]
    foot = ["total", *(_cell(f, total[f]) for f in fields)]
    widths = [max(len(h), *(len(b[i]) for b in [*body, foot])) for i, h in enumerate(head)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line(head), rule, *(line(b) for b in body), rule, line(foot)]
    if report.total.unknown_cost:
        out.append(
            f"note: {report.total.unknown_cost:,} entries are for models with no known price; "
            "their cost is not in spend (add prices with `costwise prices --file`)"
        )
    return "\n".join(out)


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _json(report: Report, fields: Sequence[str], since: float | None, until: float | None) -> str:
    by = report.by

    def pick(row: dict[str, Any]) -> dict[str, Any]:
        return {by: row[by], **{f: _plain(row[f]) for f in fields}}

    doc = {
        "by": by,
        "since": since,
        "until": until,
        "rows": [pick(Report.row_dict(r, by)) for r in report.rows],
        "total": pick(Report.row_dict(report.total, by)),
    }
    return json.dumps(doc, indent=2)


def _csv(report: Report, fields: Sequence[str]) -> str:
    by = report.by
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([by, *fields])
    for r in [*report.rows, report.total] if report.rows else []:
        d = Report.row_dict(r, by)
        writer.writerow([d[by], *("" if d[f] is None else _plain(d[f]) for f in fields)])
    return buf.getvalue()


def _aggregate(store: LedgerStore, by: Any, since: float | None, until: float | None) -> Report:
    try:
        return Report(store.aggregate(by=by, since=since, until=until), by)
    except LedgerError as exc:
        raise CliError(str(exc), EXIT_LEDGER_CORRUPT) from None


def run_report(args: argparse.Namespace) -> int:
    """Run ``costwise report`` with parsed arguments."""
    since, until = time_range(args.since, args.until)
    fields = _fields(args.fields, FIELDS if args.format in ("csv", "json") else TABLE_FIELDS)
    store = open_store(args.ledger)
    try:
        if args.format == "html":
            from ..ledger._html import collect, render_html

            try:
                text = render_html(collect(store, since=since, until=until))
            except LedgerError as exc:
                raise CliError(str(exc), EXIT_LEDGER_CORRUPT) from None
        else:
            report = _aggregate(store, args.by, since, until)
            if args.format == "json":
                text = _json(report, fields, since, until) + "\n"
            elif args.format == "csv":
                text = _csv(report, fields)
            else:
                text = _table(report, fields) + "\n"
    finally:
        store.close()
    with _output(args.out) as out:
        out.write(text)
    if args.out is not None:
        print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    """Run ``costwise export`` with parsed arguments."""
    since, until = time_range(args.since, args.until)
    store = open_store(args.ledger)
    ledger = Ledger(store)
    try:
        with _output(args.out) as out:
            if args.format == "csv":
                n = ledger.export_csv(out, since=since, until=until)
            else:
                n = ledger.export_jsonl(out, since=since, until=until)
    except LedgerError as exc:
        raise CliError(str(exc), EXIT_LEDGER_CORRUPT) from None
    finally:
        store.close()
    print(f"exported {n:,} entries", file=sys.stderr)
    return EXIT_OK
