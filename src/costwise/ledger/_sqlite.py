"""The embedded default ledger store: one SQLite file in WAL mode."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from typing_extensions import override

from .._exceptions import LedgerError
from ._entry import FIELDS, LedgerEntry
from ._store import GROUPS, Group, ReportRow

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
_KEY_SQL = {
    "feature": "feature",
    "model": "model",
    "requested_model": "requested_model",
    "status": "status",
    "strategy": "COALESCE(strategy, 'none')",
    "day": "strftime('%Y-%m-%d', ts, 'unixepoch')",
}
_AGG_SQL = """
    SELECT {key} AS k, SUM(final), COUNT(*), SUM(prompt_tokens), SUM(completion_tokens),
           SUM(cached_tokens), SUM(reasoning_tokens), SUM(COALESCE(cost_nanos, 0)),
           SUM(COALESCE(baseline_nanos, 0)), SUM(final AND kind = 'hit'),
           SUM(final AND COALESCE(tier, 0) > 0), SUM(status != 'ok'), SUM(cost_nanos IS NULL),
           SUM(estimated)
    FROM ledger {where} GROUP BY k ORDER BY k
"""


def _row(entry: LedgerEntry) -> tuple[Any, ...]:
    values = [getattr(entry, f) for f in FIELDS]
    values[-1] = json.dumps(dict(entry.detail), separators=(",", ":")) if entry.detail else None
    return tuple(values)


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

    def write(self, entries: Sequence[LedgerEntry]) -> None:
        if not entries:
            return
        conn = self._conn()
        try:
            with conn:
                conn.executemany(_INSERT, [_row(e) for e in entries])
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

    def aggregate(
        self, *, by: Group = "feature", since: float | None = None, until: float | None = None
    ) -> list[ReportRow]:
        if by not in GROUPS:
            msg = f"cannot group the ledger by {by!r}; choose one of {', '.join(GROUPS)}"
            raise ValueError(msg)
        where, params = _where(since, until)
        try:
            rows = self._conn().execute(_AGG_SQL.format(key=_KEY_SQL[by], where=where), params)
            return [
                ReportRow(
                    key=str(r[0]),
                    calls=r[1],
                    entries=r[2],
                    prompt_tokens=r[3],
                    completion_tokens=r[4],
                    cached_tokens=r[5],
                    reasoning_tokens=r[6],
                    cost_nanos=r[7],
                    baseline_nanos=r[8],
                    hits=r[9],
                    escalations=r[10],
                    errors=r[11],
                    unknown_cost=r[12],
                    estimated=r[13],
                )
                for r in rows.fetchall()
            ]
        except sqlite3.Error as exc:
            msg_0 = "read"
            raise self._error(msg_0, exc) from exc

    def spent_nanos(self, *, since: float, feature: str | None = None) -> int:
        sql = "SELECT SUM(COALESCE(cost_nanos, 0)) FROM ledger WHERE ts >= ?"
        params: list[Any] = [since]
        if feature is not None:
            sql += " AND feature = ?"
            params.append(feature)
        try:
            value = self._conn().execute(sql, params).fetchone()[0]
        except sqlite3.Error as exc:
            msg = "read"
            raise self._error(msg, exc) from exc
        return int(value or 0)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @override
    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"
