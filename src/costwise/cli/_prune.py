"""``costwise prune``: delete whole UTC days of old entries, after showing what would go."""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import time
from decimal import Decimal

from .._exceptions import LedgerError
from ..ledger import Ledger
from ._common import EXIT_BAD_DATE, EXIT_LEDGER_CORRUPT, EXIT_OK, CliError, open_store, parse_when

__all__ = ["run_prune"]

_DAY = 86400


def run_prune(args: argparse.Namespace) -> int:
    """Run ``costwise prune`` with parsed arguments: a dry run unless ``--yes``."""
    when = parse_when(args.before)
    assert when is not None  # --before is required
    cutoff = math.floor(when / _DAY) * _DAY
    day = dt.datetime.fromtimestamp(cutoff, dt.timezone.utc).date().isoformat()
    if cutoff > time.time():
        msg = f"--before {args.before!r} starts on {day}, in the future: it would delete today"
        raise CliError(msg, EXIT_BAD_DATE)
    store = open_store(args.ledger)
    try:
        ledger = Ledger(store)  # replays a dead process's journal first: it is pruned too
        rows = store.aggregate(by="day", until=float(cutoff))
        entries = sum(r.entries for r in rows)
        calls = sum(r.calls for r in rows)
        cost = Decimal(sum(r.cost_nanos for r in rows)) / 10**9
        span = f"{rows[0].key} to {rows[-1].key}" if rows else "no day"
        summary = f"{entries:,} entries ({calls:,} calls, ${cost:,.4f} spent; {span}) before {day}"
        if not args.yes:
            print(f"would delete {summary}; nothing deleted: pass --yes to delete them")
            return EXIT_OK
        gone = ledger.prune(before=float(cutoff))
        ledger.close()
    except LedgerError as exc:
        raise CliError(str(exc), EXIT_LEDGER_CORRUPT) from None
    finally:
        store.close()
    print(f"deleted {gone:,} entries before {day} (was: {summary})", file=sys.stderr)
    return EXIT_OK
