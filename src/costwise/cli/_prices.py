"""``costwise prices``: the price table in force, a user's sheet validated, and its age."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from decimal import Decimal

from .._exceptions import ConfigurationError
from ..pricing import Price, PriceTable
from ._common import EXIT_BAD_PRICES, EXIT_OK, EXIT_UNKNOWN_MODEL, CliError

__all__ = ["STALE_DAYS", "run_prices"]

STALE_DAYS = 90
"""Prices older than this get a warning line: list prices change a few times a year."""


def _rate(value: Decimal | None) -> str:
    return "-" if value is None else f"{value.normalize():f}"


def _opt(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _row(p: Price) -> list[str]:
    return [
        p.model,
        p.provider,
        _rate(p.input),
        _rate(p.effective_cached_input),
        _rate(p.output),
        _rate(p.batch_discount),
        f"{p.context_window:,}" if p.context_window else "-",
        p.as_of.isoformat(),
    ]


def _age(as_of: dt.date | None, today: dt.date) -> str:
    if as_of is None:
        return "the table is empty"
    days = (today - as_of).days
    line = f"prices as of {as_of.isoformat()} ({days} day{'s' if days != 1 else ''} old)"
    if days > STALE_DAYS:
        line += f"; older than {STALE_DAYS} days: check your provider's page, or pass --file"
    return line


def run_prices(args: argparse.Namespace) -> int:
    """Run ``costwise prices`` with parsed arguments."""
    bundled = PriceTable.default()
    table = bundled
    if args.file:
        try:
            sheet = PriceTable.from_file(args.file)
        except ConfigurationError as exc:
            msg = f"invalid price sheet: {exc}"
            raise CliError(msg, EXIT_BAD_PRICES) from None
        print(f"{args.file}: valid, {len(sheet)} models", file=sys.stderr)
        table = PriceTable.from_file(args.file, base=bundled)
    names = list(args.models) or table.models()
    found: list[Price] = []
    missing: list[str] = []
    for name in names:
        price = table.lookup(name)
        if price is None:
            missing.append(name)
        else:
            found.append(price)
    today = dt.datetime.now(dt.timezone.utc).date()
    if args.format == "json":
        doc = {
            "as_of": None if bundled.as_of is None else bundled.as_of.isoformat(),
            "models": {
                n: {
                    "model": p.model,
                    "provider": p.provider,
                    "input": str(p.input),
                    "cached_input": str(p.effective_cached_input),
                    "output": str(p.output),
                    "batch_discount": None if p.batch_discount is None else str(p.batch_discount),
                    "context_window": p.context_window,
                    "long_context": None
                    if p.long_context is None
                    else {
                        "above": p.long_context.above,
                        "input": str(p.long_context.input),
                        "cached_input": _opt(p.long_context.cached_input),
                        "cache_write": _opt(p.long_context.cache_write),
                        "output": str(p.long_context.output),
                    },
                    "as_of": p.as_of.isoformat(),
                    "source": p.source,
                }
                for n, p in zip([n for n in names if n not in missing], found, strict=True)
            },
            "missing": missing,
        }
        print(json.dumps(doc, indent=2))
    else:
        head = ["model", "provider", "input", "cached", "output", "batch", "context", "as of"]
        body = [_row(p) for p in found]
        widths = [
            max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)
        ]
        print("USD per 1M tokens")
        for cells in [head, *body]:
            pairs = enumerate(zip(cells, widths, strict=True))
            print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs))
        for p in found:
            tier = p.long_context
            if tier is not None:
                print(
                    f"{p.model}: prompts over {tier.above:,} tokens bill every token at "
                    f"{_rate(tier.input)} in / "
                    f"{_rate(tier.cached_input if tier.cached_input is not None else tier.input)} "
                    f"cached / {_rate(tier.output)} out"
                )
        dated = [p.as_of for p in map(bundled.lookup, bundled.models()) if p is not None]
        if dated:
            print(
                f"bundled prices: newest read {max(dated).isoformat()}; oldest entry's "
                f"{_age(min(dated), today)}"
            )
        if args.file:
            print(f"{args.file}: {_age(PriceTable.from_file(args.file).as_of, today)}")
    if missing:
        msg = (
            f"no price for {', '.join(repr(m) for m in missing)}; add it with a price sheet "
            "(--file prices.csv with model,input,output columns)"
        )
        raise CliError(msg, EXIT_UNKNOWN_MODEL)
    return EXIT_OK
