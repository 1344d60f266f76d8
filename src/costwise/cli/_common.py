"""Exit codes, errors, time parsing and ledger opening shared by the subcommands."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

from .._exceptions import LedgerError
from ..ledger import LedgerStore, default_ledger_path, to_timestamp

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
    "CliError",
    "open_store",
    "parse_when",
    "time_range",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_LEDGER_MISSING = 3
EXIT_LEDGER_CORRUPT = 4
EXIT_BAD_DATE = 5
EXIT_UNKNOWN_FIELD = 6
EXIT_BAD_PRICES = 7
EXIT_UNKNOWN_MODEL = 8

_UNIX = re.compile(r"\d{9,}(\.\d+)?$")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class CliError(Exception):
    """A failure the user can fix: printed as one line, exits with `code`."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def parse_when(text: str | None, *, now: float | None = None) -> float | None:
    """Unix seconds from ISO text, ``today``/``yesterday``/``month``, an age (``7d``) or
    Unix seconds themselves.

    Raises:
        CliError: the text is none of those (exit code 5).
    """
    if text is None:
        return None
    now = time.time() if now is None else now
    word = text.strip().lower()
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    if word == "now":
        return now
    if word == "today":
        return today.timestamp()
    if word == "yesterday":
        return (today - dt.timedelta(days=1)).timestamp()
    if word == "month":
        return today.replace(day=1).timestamp()
    m = _AGE.match(word)
    if m:
        return now - float(m.group(1)) * _SECONDS[m.group(2)]
    if _UNIX.match(word):  # Unix seconds, as the API takes (9+ digits: never a YYYYMMDD date)
        return float(word)
    try:
        return to_timestamp(text)
    except ValueError as exc:
        msg = f"{exc}; or use today, yesterday, month, or an age such as 7d, 24h, 30m"
        raise CliError(msg, EXIT_BAD_DATE) from None


def time_range(since: str | None, until: str | None) -> tuple[float | None, float | None]:
    """Parse ``--since``/``--until`` and check the range is not empty."""
    start, end = parse_when(since), parse_when(until)
    if start is not None and end is not None and start >= end:
        msg = f"--since {since!r} is not before --until {until!r}"
        raise CliError(msg, EXIT_BAD_DATE)
    return start, end


def open_store(spec: str | None) -> LedgerStore:
    """Open the ledger named on the command line without creating one by accident.

    Raises:
        CliError: missing (code 3), corrupt or unreachable (code 4).
    """
    if spec is not None and spec.startswith(("redis://", "rediss://", "unix://")):
        try:
            from ..ledger import RedisStore

            redis_store = RedisStore.from_url(spec, spool=None)
            redis_store.ping()
        except ImportError:
            msg = "a redis:// ledger needs redis-py: pip install 'costwise[redis]'"
            raise CliError(msg, EXIT_LEDGER_CORRUPT) from None
        except LedgerError as exc:
            raise CliError(str(exc), EXIT_LEDGER_CORRUPT) from None
        return redis_store
    path = Path(spec).expanduser() if spec else default_ledger_path()
    if not path.exists():
        hint = "" if spec else " (set --ledger or $COSTWISE_LEDGER)"
        msg = f"no ledger at {str(path)!r}{hint}; nothing has been recorded there yet"
        raise CliError(msg, EXIT_LEDGER_MISSING)
    if path.is_dir():
        msg = f"{str(path)!r} is a directory, not a ledger file"
        raise CliError(msg, EXIT_LEDGER_CORRUPT)
    if path.stat().st_size == 0:
        msg = f"the ledger file {str(path)!r} is empty (0 bytes): not a costwise ledger"
        raise CliError(msg, EXIT_LEDGER_CORRUPT)
    from ..ledger import SQLiteStore

    try:
        return SQLiteStore(path)
    except LedgerError as exc:
        raise CliError(str(exc), EXIT_LEDGER_CORRUPT) from None
