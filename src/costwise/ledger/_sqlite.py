"""The embedded default ledger store: one SQLite file in WAL mode."""

from __future__ import annotations

import functools
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from typing_extensions import override

from .._exceptions import LedgerError
from ._entry import FIELDS, LedgerEntry, row_of
from ._store import TOTALS, Group, ReportRow, check_group

__all__ = ["SQLiteStore"]

_SCHEMA_VERSION = 1
_COLUMNS = """
    id TEXT PRIMARY KEY, call_id TEXT NOT NULL, ts REAL NOT NULL, feature TEXT NOT NULL,
    requested_model TEXT NOT NULL, model TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
    strategy TEXT, purpose TEXT, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL, cost_nanos INTEGER, baseline_nanos INTEGER,
    final INTEGER NOT NULL, estimated INTEGER NOT NULL, latency_ms REAL NOT NULL, tier INTEGER,
    reason TEXT, detail TEXT
"""
_INSERT = (
    f"INSERT OR IGNORE INTO ledger ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})"
)
_VALUES = f"({', '.join('?' * len(FIELDS))})"
# Rows per INSERT statement: SQLite binds at most 999 variables per statement before 3.32.
_ROWS_PER_INSERT = 999 // len(FIELDS)


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_many(n: int) -> str:
    """One INSERT of `n` rows. executemany would run one statement per row, and sqlite3
    releases and retakes the GIL around each: from the background flusher that is one
    forced GIL hand-off per entry, paid by the thread making the caller's requests."""
    return _INSERT + "".join([", ", _VALUES] * (n - 1)) if n > 1 else _INSERT


# A day is taken from the time rounded down to the second, as Python's gmtime does
# (strftime(..., ts, 'unixepoch') would first round ts to the nearest millisecond).
_KEY_SQL = {
    "feature": "feature",
    "model": "model",
    "requested_model": "requested_model",
    "status": "status",
    "strategy": "COALESCE(NULLIF(strategy, ''), 'none')",
    "day": "date(CAST(ts AS INTEGER), 'unixepoch')",
}
_AGG_SQL = """
    SELECT {key} AS k, SUM(final), COUNT(*), SUM(prompt_tokens), SUM(completion_tokens),
           SUM(cached_tokens), SUM(reasoning_tokens), SUM(COALESCE(cost_nanos, 0)),
           SUM(COALESCE(baseline_nanos, 0)), SUM(final AND kind = 'hit'),
           SUM(final AND COALESCE(tier, 0) > 0), SUM(status != 'ok'), SUM(cost_nanos IS NULL),
           SUM(estimated)
    FROM ledger {where} GROUP BY k ORDER BY k
"""


# Running daily totals, kept by a trigger inside the transaction of each insert. INSERT OR
# IGNORE does not fire the trigger for an id already stored, so retries never count twice.
# Reports over whole UTC days read this table (one row per day x feature x model x strategy x
# status: thousands, not millions) instead of scanning every entry.
_DAILY_TABLE = f"""
CREATE TABLE IF NOT EXISTS ledger_daily (
    day TEXT NOT NULL, feature TEXT NOT NULL, model TEXT NOT NULL,
    requested_model TEXT NOT NULL, strategy TEXT NOT NULL, status TEXT NOT NULL,
    {", ".join(f"{n} INTEGER NOT NULL" for n in TOTALS)},
    PRIMARY KEY (day, feature, model, requested_model, strategy, status)
) WITHOUT ROWID
"""
_DAILY_TRIGGER = f"""
CREATE TRIGGER IF NOT EXISTS ledger_daily_insert AFTER INSERT ON ledger BEGIN
    INSERT INTO ledger_daily VALUES (
        date(CAST(NEW.ts AS INTEGER), 'unixepoch'), NEW.feature, NEW.model,
        NEW.requested_model, COALESCE(NULLIF(NEW.strategy, ''), 'none'), NEW.status,
        NEW.final, 1, NEW.prompt_tokens, NEW.completion_tokens, NEW.cached_tokens,
        NEW.reasoning_tokens, COALESCE(NEW.cost_nanos, 0), COALESCE(NEW.baseline_nanos, 0),
        NEW.final AND NEW.kind = 'hit', NEW.final AND COALESCE(NEW.tier, 0) > 0,
        NEW.status != 'ok', NEW.cost_nanos IS NULL, NEW.estimated)
    ON CONFLICT DO UPDATE SET {", ".join(f"{n} = {n} + excluded.{n}" for n in TOTALS)};
END
"""
_DAILY_BACKFILL = """
INSERT INTO ledger_daily
SELECT date(CAST(ts AS INTEGER), 'unixepoch'), feature, model, requested_model,
       COALESCE(NULLIF(strategy, ''), 'none'), status,
       SUM(final), COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens),
       SUM(reasoning_tokens), SUM(COALESCE(cost_nanos, 0)), SUM(COALESCE(baseline_nanos, 0)),
       SUM(final AND kind = 'hit'), SUM(final AND COALESCE(tier, 0) > 0), SUM(status != 'ok'),
       SUM(cost_nanos IS NULL), SUM(estimated)
FROM ledger NOT INDEXED GROUP BY 1, 2, 3, 4, 5, 6
"""
_DAILY_AGG_SQL = f"""
    SELECT {{key}} AS k, {", ".join(f"SUM({n})" for n in TOTALS)}
    FROM ledger_daily {{where}} GROUP BY k ORDER BY k
"""
_DAY = 86400


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _values(row: Sequence[Any]) -> tuple[Any, ...]:
    """A ledger row (FIELDS order, ``detail`` a dict or None) as SQL parameters."""
    detail = row[-1]
    return (*row[:-1], json.dumps(dict(detail), separators=(",", ":")) if detail else None)


def _entry(row: Sequence[Any]) -> LedgerEntry:
    data = dict(zip(FIELDS, row, strict=False))
    data["final"] = bool(data["final"])
    data["estimated"] = bool(data["estimated"])
    data["detail"] = json.loads(data["detail"]) if data["detail"] else {}
    return LedgerEntry(**data)


def _where(since: float | None, until: float | None) -> tuple[str, list[float]]:
    clauses, params = [], []
    if since is not None:
        clauses.append("ts >= ?")
        params.append(since)
    if until is not None:
        clauses.append("ts < ?")
        params.append(until)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


class SQLiteStore:
    """A ledger in one SQLite file (WAL mode): safe for many threads and processes on one host.

    Use it on a single machine; it is the default. Every `write` is one transaction. With
    ``synchronous=NORMAL`` a committed write survives the process being killed (it is in the
    WAL, which the OS holds) without an fsync per call; only a power loss can drop the last
    few. Each thread (and each forked process) gets its own connection.

    Args:
        path: the database file; parent directories are created.
        timeout: seconds to wait for another process's write lock.

    Raises:
        LedgerError: the path cannot be created or written, or the file is not a costwise
            ledger (corrupt, or another database).

    Example:
        >>> client = CostwiseClient(ledger=SQLiteStore("spend.sqlite"))
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self._timeout = timeout
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"cannot create the ledger directory {str(self.path.parent)!r}: {exc.strerror}"
            raise LedgerError(msg, path=str(self.path)) from exc
        self._setup(self._conn())

    @property
    def journal_dir(self) -> Path:
        """Where the ledger's write-behind journals for this file live."""
        return self.path.with_name(self.path.name + ".journal")

    def _wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs an exclusive lock, and SQLite does not wait for it
        # (no busy handler for this pragma): retry while other workers open the same file.
        deadline = time.monotonic() + self._timeout
        delay = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            else:
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            try:
                conn = sqlite3.connect(self.path, timeout=self._timeout, check_same_thread=False)
                self._wal(conn)
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                msg = "open"
                raise self._error(msg, exc) from exc
            local.conn, local.pid = conn, os.getpid()
        return conn

    def _error(self, action: str, exc: sqlite3.Error) -> LedgerError:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            msg = f"the ledger file {str(self.path)!r} is corrupt or not a SQLite ledger ({text})"
        else:
            msg = f"cannot {action} the ledger file {str(self.path)!r}: {text}"
        return LedgerError(msg, path=str(self.path))

    def _setup(self, conn: sqlite3.Connection) -> None:
        # BEGIN IMMEDIATE serialises set-up across the threads and processes that open a new
        # ledger file at the same moment; the second one then finds the table in place.
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._create(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            action = "open"
            raise self._error(action, exc) from exc

    def _create(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "ledger" not in tables:
            if tables:
                msg = (
                    f"{str(self.path)!r} is a SQLite database but not a costwise ledger "
                    f"(it has tables {sorted(tables)})"
                )
                raise LedgerError(msg, path=str(self.path))
            conn.execute(f"CREATE TABLE ledger ({_COLUMNS})")
            conn.execute("CREATE INDEX ledger_ts ON ledger (ts)")
            conn.execute("CREATE INDEX ledger_feature_ts ON ledger (feature, ts)")
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        elif version != _SCHEMA_VERSION:
            msg = (
                f"the ledger {str(self.path)!r} has schema version {version}; "
                f"this costwise reads version {_SCHEMA_VERSION}"
            )
            raise LedgerError(msg, path=str(self.path))
        trigger = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'ledger_daily_insert'"
        ).fetchone()
        if "ledger_daily" in tables and (trigger is None or "strftime" in trigger[0]):
            # Totals kept by an earlier version, which let SQLite round a time to the
            # millisecond before taking its day: an entry in the last half millisecond of a
            # day was filed under the next one. Recount them, once.
            conn.execute("DROP TRIGGER IF EXISTS ledger_daily_insert")
            conn.execute("DROP TABLE ledger_daily")
            tables.discard("ledger_daily")
        if "ledger_daily" not in tables:
            # New ledgers, and a one-time backfill of ledgers made before the daily totals.
            conn.execute(_DAILY_TABLE)
            conn.execute(_DAILY_TRIGGER)
            conn.execute(_DAILY_BACKFILL)

    def write(self, entries: Sequence[LedgerEntry]) -> None:
        self.write_rows([row_of(e) for e in entries])

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """`write` for entries given as rows (FIELDS order; ``detail`` a dict or None).

        The ledger's background flusher calls it with the meter's rows as they are: building
        a `LedgerEntry` per row first would hold the GIL a few µs longer per entry, time the
        caller's threads wait for.
        """
        if not rows:
            return
        conn = self._conn()
        try:
            values = [_values(row) for row in rows]
            step = _ROWS_PER_INSERT
            with conn:
                for start in range(0, len(values), step):
                    chunk = values[start : start + step]
                    conn.execute(_insert_many(len(chunk)), [v for row in chunk for v in row])
        except sqlite3.Error as exc:
            msg = "write to"
            raise self._error(msg, exc) from exc

    def entries(
        self, *, since: float | None = None, until: float | None = None
    ) -> Iterator[LedgerEntry]:
        where, params = _where(since, until)
        sql = f"SELECT {', '.join(FIELDS)} FROM ledger {where} ORDER BY ts"
        try:
            cursor = self._conn().execute(sql, params)
        except sqlite3.Error as exc:
            msg = "read"
            raise self._error(msg, exc) from exc
        return (_entry(row) for row in cursor)

    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            msg = "read"
            raise self._error(msg, exc) from exc

    def aggregate(
        self, *, by: Group = "feature", since: float | None = None, until: float | None = None
    ) -> list[ReportRow]:
        check_group(by)
        # Whole UTC days come from the daily totals; partial days at either end from entries.
        lo = None if since is None else math.ceil(since / _DAY) * _DAY
        hi = None if until is None else math.floor(until / _DAY) * _DAY
        parts: list[list[Any]] = []
        if lo is not None and hi is not None and lo >= hi:
            where, params = _where(since, until)
            parts.append(self._query(_AGG_SQL.format(key=_KEY_SQL[by], where=where), params))
        else:
            clauses, days = [], []
            if lo is not None:
                clauses.append("day >= ?")
                days.append(_day(lo))
            if hi is not None:
                clauses.append("day < ?")
                days.append(_day(hi))
            where = "WHERE " + " AND ".join(clauses) if clauses else ""
            parts.append(self._query(_DAILY_AGG_SQL.format(key=by, where=where), days))
            for a, b in ((since, lo), (hi, until)):
                if a is not None and b is not None and a < b:
                    w, p = _where(a, b)
                    parts.append(self._query(_AGG_SQL.format(key=_KEY_SQL[by], where=w), p))
        merged: dict[str, list[int]] = {}
        for part in parts:
            for r in part:
                acc = merged.setdefault(str(r[0]), [0] * len(TOTALS))
                for k, v in enumerate(r[1:]):
                    acc[k] += int(v or 0)
        return [
            ReportRow(key=k, **dict(zip(TOTALS, v, strict=True))) for k, v in sorted(merged.items())
        ]

    def prune(self, before: float) -> int:
        """Delete entries with ``ts < before`` (a UTC midnight) and those days' totals.

        One transaction: entries and daily totals go together. The file keeps its size
        (SQLite reuses the freed pages); ``VACUUM`` it offline to shrink it.
        """
        if before % _DAY:
            msg = f"SQLiteStore.prune: before must be a UTC midnight, got {before!r}"
            raise ValueError(msg)
        conn = self._conn()
        try:
            with conn:
                gone = conn.execute("DELETE FROM ledger WHERE ts < ?", (before,)).rowcount
                conn.execute("DELETE FROM ledger_daily WHERE day < ?", (_day(before),))
        except sqlite3.Error as exc:
            msg = "prune"
            raise self._error(msg, exc) from exc
        return int(gone)

    def spent_nanos(self, *, since: float, feature: str | None = None) -> int:
        # Budgets ask from the start of a UTC day or month: the daily totals answer alone.
        lo = math.ceil(since / _DAY) * _DAY
        feat = " AND feature = ?" if feature is not None else ""
        extra: list[Any] = [feature] if feature is not None else []
        sql = f"SELECT SUM(cost_nanos) FROM ledger_daily WHERE day >= ?{feat}"
        total = int(self._query(sql, [_day(lo), *extra])[0][0] or 0)
        if since < lo:
            sql = f"SELECT SUM(COALESCE(cost_nanos, 0)) FROM ledger WHERE ts >= ? AND ts < ?{feat}"
            total += int(self._query(sql, [since, lo, *extra])[0][0] or 0)
        return total

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @override
    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"
