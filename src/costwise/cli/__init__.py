"""The ``costwise`` command: ``report``, ``export``, ``prune``, ``prices`` and ``demo``.

Every failure the user can fix has its own exit code and a one-line message on stderr that
says what to do, so scripts and CI can tell "no ledger yet" from "corrupt ledger" from "typo
in --since":

====  =========================================================================
code  meaning
====  =========================================================================
0     success
1     unexpected error (a bug; the traceback is printed)
2     bad command line (unknown option or choice; argparse's own code)
3     the ledger does not exist (no calls recorded yet, or a wrong ``--ledger``)
4     the ledger is corrupt, not a costwise ledger, or unreachable (Redis down)
5     a bad date or time range (``--since``/``--until``)
6     an unknown field name (``--fields``)
7     an invalid price sheet (``prices --file``)
8     a model with no price (``prices MODEL``)
====  =========================================================================
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._common import (
    EXIT_BAD_DATE,
    EXIT_BAD_PRICES,
    EXIT_ERROR,
    EXIT_LEDGER_CORRUPT,
    EXIT_LEDGER_MISSING,
    EXIT_OK,
    EXIT_UNKNOWN_FIELD,
    EXIT_UNKNOWN_MODEL,
    EXIT_USAGE,
    CliError,
)

__all__ = [
    "EXIT_BAD_DATE",
    "EXIT_BAD_PRICES",
    "EXIT_ERROR",
    "EXIT_LEDGER_CORRUPT",
    "EXIT_LEDGER_MISSING",
    "EXIT_OK",
    "EXIT_UNKNOWN_FIELD",
    "EXIT_UNKNOWN_MODEL",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

_EPILOG = """exit codes: 0 ok, 2 bad usage, 3 ledger missing, 4 ledger corrupt or unreachable,
5 bad date, 6 unknown field, 7 invalid price sheet, 8 unknown model"""


def _ledger_args(p: argparse.ArgumentParser, *, times: bool = True) -> None:
    p.add_argument(
        "--ledger",
        metavar="PATH|URL",
        help="a SQLite ledger file or a redis://host:port/db URL "
        "(default: $COSTWISE_LEDGER or ~/.local/share/costwise/ledger.sqlite)",
    )
    if not times:
        return
    p.add_argument(
        "--since",
        metavar="WHEN",
        help="from this time: ISO date/datetime (2026-11-01, 2026-11-01T09:00), "
        "'today', 'yesterday', 'month', or an age such as 7d, 24h, 30m",
    )
    p.add_argument("--until", metavar="WHEN", help="before this time (same forms as --since)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``costwise`` command (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="costwise",
        description="See and cut what your LLM calls cost.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    report = sub.add_parser(
        "report",
        help="spend, baseline and savings from a ledger",
        description="Spend, baseline, saved and saved %, calls, tokens by kind, cache hit "
        "rate and escalation rate, grouped by feature, model, strategy or day.",
        epilog=_EPILOG,
    )
    _ledger_args(report)
    report.add_argument(
        "--by",
        choices=["feature", "model", "strategy", "day", "requested_model", "status"],
        default="feature",
        help="how to group rows (default: feature)",
    )
    report.add_argument(
        "--format",
        choices=["table", "csv", "json", "html"],
        default="table",
        help="output format (default: table)",
    )
    report.add_argument(
        "--fields",
        metavar="A,B,...",
        help="columns to show (table/csv/json), e.g. calls,cost_usd,saved_pct; "
        "see docs/cli-and-reports.md",
    )
    report.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")

    export = sub.add_parser(
        "export",
        help="every ledger entry as CSV or JSON lines",
        epilog=_EPILOG,
        description="Write raw ledger entries (one row per upstream attempt, cache hit or "
        "side call); entries never hold message text or API keys.",
    )
    _ledger_args(export)
    export.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    export.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")

    prune = sub.add_parser(
        "prune",
        help="delete whole days of old entries (shows what would go unless --yes)",
        epilog=_EPILOG,
        description="Delete the entries of whole UTC days before --before, with their daily "
        "totals, so a long-running ledger stays bounded. Without --yes it only shows what it "
        "would delete. Export what you want to keep first (costwise export --until ...).",
    )
    _ledger_args(prune, times=False)
    prune.add_argument(
        "--before",
        metavar="WHEN",
        required=True,
        help="delete days before this one: ISO date (2026-09-01), 'today', 'month', or an "
        "age such as 90d (rounded down to its UTC midnight)",
    )
    prune.add_argument("--yes", action="store_true", help="really delete (default: dry run)")

    prices = sub.add_parser(
        "prices",
        help="show the price table, validate a price sheet",
        epilog=_EPILOG,
        description="Show the prices in force (USD per 1M tokens) and how old they are. "
        "With --file, validate a price sheet (JSON or CSV) and show it merged over the "
        "bundled table.",
    )
    prices.add_argument("models", nargs="*", metavar="MODEL", help="models to show (default: all)")
    prices.add_argument("--file", metavar="PATH", help="a price sheet to validate and apply")
    prices.add_argument("--format", choices=["table", "json"], default="table")

    demo = sub.add_parser(
        "demo", help="replay a day of traffic with and without costwise", add_help=False
    )
    demo.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``costwise`` command; returns its exit code.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code (see the module docstring).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "demo":
        # The demo owns its own arguments and heavy imports; load it only when asked.
        from costwise import demo  # type: ignore[attr-defined,unused-ignore]

        return int(demo.main(args_list[1:]))
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse exits on --help (0) and on bad usage (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        if args.command == "report":
            from ._report import run_report

            return run_report(args)
        if args.command == "export":
            from ._report import run_export

            return run_export(args)
        if args.command == "prune":
            from ._prune import run_prune

            return run_prune(args)
        if args.command == "prices":
            from ._prices import run_prices

            return run_prices(args)
    except CliError as exc:
        print(f"costwise {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:  # `costwise report | head`
        return EXIT_OK
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE  # pragma: no cover  (parser.error exits)
