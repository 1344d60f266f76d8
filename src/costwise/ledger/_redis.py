"""`RedisStore`: one ledger shared by many workers on many hosts, with running totals.

Layout (every key starts with the prefix, default ``costwise:{ledger}``; the braces are a
Redis Cluster hash tag, so all keys live in one slot and one Lua script may touch them all):

- ``<p>:entries``  hash  entry id -> the entry as compact JSON
- ``<p>:ts``       zset  entry id scored by its ``ts`` (time-range reads)
- ``<p>:days``     set   UTC days (``YYYY-MM-DD``) that have entries
- ``<p>:k:<day>``  set   ``dim=key`` names of that day's totals (``feature=chat``, ``all=*``)
- ``<p>:t:<day>:<dim>=<key>``  hash  running totals of that day and group: ``calls``,
  ``entries``, ``prompt_tokens``, ``completion_tokens``, ``cached_tokens``,
  ``reasoning_tokens``, ``cost_nanos``, ``baseline_nanos``, ``hits``, ``escalations``,
  ``errors``, ``unknown_cost``, ``estimated`` (the fields of `ReportRow`)

A `write` is one Lua script: for each entry ``HSETNX`` the id (skip it if already there),
then add it to the time index and ``HINCRBY`` its day's totals for each group (feature,
model, requested model, strategy, status, all). Redis runs a script atomically, so the entry
and its totals appear together, and a retried write never counts twice.

Per call, nothing waits on Redis: the `Ledger` copies each call's entries into a local
write-behind journal (`journal_dir`, the same memory-mapped journal the SQLite store uses)
and a background thread sends them in batches, one script per batch. A process killed in
between leaves its journal behind, and the next ledger opened with this store on the same
host replays it (the script skips ids Redis has, so a replay never doubles). Budgets switch
the ledger to write-through, as they do for SQLite.

Outages: when Redis cannot be reached, `write` appends the entries to a local SQLite spool
file (keyed by entry id) and returns; the next write (or `flush_spool`) replays the spool
through the same idempotent script and only then deletes what Redis acknowledged. A crash
between the two steps replays entries Redis already has, which the script skips: none is
lost, none is doubled.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from typing_extensions import override

from .._exceptions import CostwiseWarning, LedgerError
from ._entry import LedgerEntry
from ._store import TOTALS, Group, ReportRow, aggregate_entries, check_group

if TYPE_CHECKING:
    import redis

__all__ = ["RedisStore"]

logger = logging.getLogger("costwise")

_DIMS = ("feature", "model", "requested_model", "strategy", "status")
_DAY = 86400

# ARGV[1]: JSON list of [id, json, ts, day, [dim=key, ...], [n1, ..., n13] as strings].
_WRITE_LUA = """
local p = KEYS[1]
local names = cjson.decode(ARGV[2])
local written = 0
for _, e in ipairs(cjson.decode(ARGV[1])) do
  if redis.call('HSETNX', p .. ':entries', e[1], e[2]) == 1 then
    redis.call('ZADD', p .. ':ts', e[3], e[1])
    redis.call('SADD', p .. ':days', e[4])
    for _, k in ipairs(e[5]) do
      redis.call('SADD', p .. ':k:' .. e[4], k)
      local h = p .. ':t:' .. e[4] .. ':' .. k
      for i, n in ipairs(e[6]) do
        if n ~= '0' then redis.call('HINCRBY', h, names[i], n) end
      end
    end
    written = written + 1
  end
end
return written
"""

_SPOOL_SCHEMA = "CREATE TABLE IF NOT EXISTS spool (id TEXT PRIMARY KEY, body TEXT NOT NULL)"


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _day_start(day: str) -> float:
    return float(calendar.timegm(time.strptime(day, "%Y-%m-%d")))


def _group_key(e: LedgerEntry, dim: str) -> str:
    if dim == "strategy":
        return e.strategy or "none"
    return str(getattr(e, dim))


def _aligned(t: float | None) -> bool:
    return t is None or t % _DAY == 0


def _numbers(e: LedgerEntry) -> list[str]:
    values = (
        int(e.final),
        1,
        e.prompt_tokens,
        e.completion_tokens,
        e.cached_tokens,
        e.reasoning_tokens,
        e.cost_nanos or 0,
        e.baseline_nanos or 0,
        int(e.final and e.kind == "hit"),
        int(e.final and (e.tier or 0) > 0),
        int(e.status != "ok"),
        int(e.cost_nanos is None),
        int(e.estimated),
    )
    return [str(v) for v in values]


def _encode(e: LedgerEntry) -> str:
    return json.dumps(e.to_dict(), separators=(",", ":"))


def _decode(text: str | bytes) -> LedgerEntry:
    return LedgerEntry(**json.loads(text))


def _row(key: str, totals: dict[str, int]) -> ReportRow:
    return ReportRow(key=key, **{n: totals.get(n, 0) for n in TOTALS})


class RedisStore:
    """A ledger in Redis with per-day running totals; many workers on many hosts share it.

    Use it when several processes or machines make calls and you want one report and one
    budget across all of them. Writes are atomic and idempotent (a Lua script), reports over
    whole UTC days read the running totals instead of the entries, and an outage never loses
    an entry: it is spooled to a local SQLite file and replayed when Redis is back.

    Args:
        client: a ``redis.Redis[bytes]`` client, or a URL (``redis://host:6379/0``).
        prefix: the key prefix; keep the ``{...}`` hash tag for Redis Cluster.
        spool: the local file for entries written during an outage; ``None`` turns the
            spool off (writes then raise `LedgerError`, as a read-only reporter wants).
            Default: ``$XDG_DATA_HOME/costwise/redis-spool-<server and prefix>.sqlite``.
        journal: the local directory of the ledger's write-behind journals, so a call does
            not wait for a Redis round trip (~0.3 ms on loopback here, a network round trip
            between hosts); other workers see its entries within the ledger's flush interval
            (0.25 s). ``None``: every call writes through to Redis before it returns.
            Default: ``$XDG_DATA_HOME/costwise/redis-journal-<server and prefix>/``.
        socket_timeout: seconds before an unresponsive Redis counts as an outage.

    Raises:
        ImportError: redis-py is not installed (``pip install 'costwise[redis]'``).

    Example:
        >>> client = CostwiseClient(ledger=RedisStore("redis://cache:6379/0"))
    """

    def __init__(
        self,
        client: redis.Redis[bytes] | str = "redis://localhost:6379/0",
        *,
        prefix: str = "costwise:{ledger}",
        spool: str | os.PathLike[str] | Literal[True] | None = True,
        journal: str | os.PathLike[str] | Literal[True] | None = True,
        socket_timeout: float = 2.0,
    ) -> None:
        import redis as redis_mod

        self._errors: tuple[type[BaseException], ...] = (
            redis_mod.ConnectionError,
            redis_mod.TimeoutError,
            redis_mod.BusyLoadingError,
        )
        if isinstance(client, str):
            self.url: str | None = client
            client = redis_mod.Redis.from_url(
                client, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
        else:
            self.url = None
        self._redis: redis.Redis[bytes] = client
        self.prefix = prefix
        self._script = client.register_script(_WRITE_LUA)
        self._names = json.dumps(list(TOTALS))
        if spool is True:
            spool = self._local_path("redis-spool", ".sqlite")
        self.spool_path: Path | None = None if spool is None else Path(spool)
        if journal is True:
            journal = self._local_path("redis-journal", "")
        self.journal_dir: Path | None = None
        """Where the ledger's write-behind journals live (``None``: write-through)."""
        if journal is not None:
            self.journal_dir = Path(journal)
        self._spool_lock = threading.Lock()
        # Checked once here (a spool left by a crashed process) and set when we spool, so a
        # healthy write costs no file system call.
        self._maybe_spooled = self.spool_path is not None and self.spool_path.exists()
        self._outage = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "costwise:{ledger}",
        spool: str | os.PathLike[str] | Literal[True] | None = True,
        journal: str | os.PathLike[str] | Literal[True] | None = True,
    ) -> RedisStore:
        """A store for the Redis at `url` (``redis://``, ``rediss://`` or ``unix://``)."""
        return cls(url, prefix=prefix, spool=spool, journal=journal)

    def _local_path(self, kind: str, suffix: str) -> Path:
        """A default per-host path named after the server and prefix: every process of this
        host writing to the same ledger shares it (so a restarted worker sends on what a dead
        one left), and a different server or prefix never does."""
        base = os.environ.get("XDG_DATA_HOME") or os.path.join(
            os.path.expanduser("~"), ".local", "share"
        )
        where = self.url
        if where is not None and "@" in where:  # never a password in a file name
            parts = urllib.parse.urlsplit(where)
            where = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        if where is None:  # a client object: name it by where it connects
            kw = self._redis.connection_pool.connection_kwargs
            host = kw.get("path") or f"{kw.get('host', '')}:{kw.get('port', '')}"
            where = f"{host}/{kw.get('db', 0)}"
        name = f"{where}_{self.prefix}"
        safe = "".join(c if c.isalnum() else "_" for c in name)
        # The readable part maps `team-a` and `team_a` alike: the digest keeps them apart.
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        return Path(base) / "costwise" / f"{kind}-{safe}-{digest}{suffix}"

    def _fail(self, exc: BaseException, action: str) -> LedgerError:
        where = self.url or repr(self._redis)
        return LedgerError(f"cannot {action} the Redis ledger at {where}: {exc}", path=where)

    def ping(self) -> None:
        """Check Redis answers.

        Raises:
            LedgerError: it does not.
        """
        try:
            self._redis.ping()
        except self._errors as exc:
            raise self._fail(exc, "reach") from exc

    # -- writing ------------------------------------------------------------------------------

    def _send(self, entries: Sequence[LedgerEntry]) -> int:
        batch = []
        for e in entries:
            dims = [f"{d}={_group_key(e, d)}" for d in _DIMS]
            batch.append([e.id, _encode(e), repr(e.ts), _day(e.ts), [*dims, "all=*"], _numbers(e)])
        result = self._script(keys=[self.prefix], args=[json.dumps(batch), self._names])
        return int(result)

    def write(self, entries: Sequence[LedgerEntry]) -> None:
        """Store entries atomically and idempotently; spool them locally if Redis is down."""
        if self.spool_path is not None and self._spool_pending():
            self.flush_spool()
        if not entries:
            return
        try:
            self._send(entries)
        except self._errors as exc:
            if self.spool_path is None:
                raise self._fail(exc, "write to") from exc
            self._spool(entries)
            if not self._outage:
                self._outage = True
                warnings.warn(
                    f"Redis ledger unreachable ({exc}); entries are spooled to "
                    f"{str(self.spool_path)!r} and sent when it is back",
                    CostwiseWarning,
                    stacklevel=3,
                )
            return
        if self._outage:
            self._outage = False
            logger.info("costwise: Redis ledger is reachable again")

    def _spool_conn(self) -> sqlite3.Connection:
        assert self.spool_path is not None
        self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.spool_path, timeout=10.0)
        conn.execute(_SPOOL_SCHEMA)
        return conn

    def _spool(self, entries: Sequence[LedgerEntry]) -> None:
        with self._spool_lock:
            conn = self._spool_conn()
            try:
                with conn:
                    conn.executemany(
                        "INSERT OR IGNORE INTO spool (id, body) VALUES (?, ?)",
                        [(e.id, _encode(e)) for e in entries],
                    )
                self._maybe_spooled = True
            finally:
                conn.close()

    def _spool_pending(self) -> bool:
        return self._maybe_spooled and self.spooled > 0

    @property
    def spooled(self) -> int:
        """Entries waiting in the local spool for Redis to come back."""
        if self.spool_path is None or not self.spool_path.exists():
            return 0
        with self._spool_lock:
            conn = self._spool_conn()
            try:
                return int(conn.execute("SELECT COUNT(*) FROM spool").fetchone()[0])
            finally:
                conn.close()

    def flush_spool(self, *, chunk: int = 500) -> int:
        """Send spooled entries to Redis; returns how many were sent (0 if still down).

        Entries are deleted from the spool only after Redis stored them; Redis skips ids it
        already has, so replaying after a crash never double counts.
        """
        if self.spool_path is None or not self.spool_path.exists():
            return 0
        sent = 0
        with self._spool_lock:
            conn = self._spool_conn()
            try:
                while True:
                    rows = conn.execute("SELECT id, body FROM spool LIMIT ?", (chunk,)).fetchall()
                    if not rows:
                        break
                    try:
                        self._send([_decode(body) for _, body in rows])
                    except self._errors:
                        return sent
                    with conn:
                        conn.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i, _ in rows])
                    sent += len(rows)
                self._maybe_spooled = False
            finally:
                conn.close()
        if sent:
            logger.info("costwise: flushed %d spooled ledger entries to Redis", sent)
        return sent

    # -- reading ------------------------------------------------------------------------------

    def prune(self, before: float, *, chunk: int = 1000) -> int:
        """Delete entries with ``ts < before`` (a UTC midnight) and those days' totals.

        Entries go in chunks of `chunk` ids, each one ``MULTI`` transaction, so Redis is
        never blocked for long; a day's running totals go after its entries. An interrupted
        prune leaves whole totals over some of the entries; running it again finishes it.
        """
        if before % _DAY:
            msg = f"RedisStore.prune: before must be a UTC midnight, got {before!r}"
            raise ValueError(msg)
        self._flush_before_read()
        r, p = self._redis, self.prefix
        gone = 0
        try:
            while True:
                ids = r.zrangebyscore(f"{p}:ts", "-inf", f"({before!r}", start=0, num=chunk)
                if not ids:
                    break
                pipe = r.pipeline(transaction=True)
                pipe.hdel(f"{p}:entries", *ids)
                pipe.zrem(f"{p}:ts", *ids)
                deleted, _ = pipe.execute()
                gone += int(deleted)
            for day in self._days(None, before):
                names = r.smembers(f"{p}:k:{day}")
                pipe = r.pipeline(transaction=True)
                for name in names:
                    text = name.decode() if isinstance(name, bytes) else str(name)
                    pipe.delete(f"{p}:t:{day}:{text}")
                pipe.delete(f"{p}:k:{day}")
                pipe.srem(f"{p}:days", day)
                pipe.execute()
        except self._errors as exc:
            raise self._fail(exc, "prune") from exc
        return gone

    def _flush_before_read(self) -> None:
        if self.spool_path is not None and self._spool_pending():
            self.flush_spool()

    def entries(
        self, *, since: float | None = None, until: float | None = None
    ) -> Iterator[LedgerEntry]:
        self._flush_before_read()
        lo = "-inf" if since is None else repr(since)
        hi = "+inf" if until is None else f"({until!r}"
        try:
            ids = self._redis.zrangebyscore(f"{self.prefix}:ts", lo, hi)
        except self._errors as exc:
            raise self._fail(exc, "read") from exc
        return self._load(ids)

    def _load(self, ids: list[Any], page: int = 1000) -> Iterator[LedgerEntry]:
        for start in range(0, len(ids), page):
            try:
                bodies = self._redis.hmget(f"{self.prefix}:entries", ids[start : start + page])
            except self._errors as exc:
                raise self._fail(exc, "read") from exc
            for body in bodies:
                if body is not None:
                    yield _decode(body)

    def _days(self, since: float | None, until: float | None) -> list[str]:
        days = sorted(
            d.decode() if isinstance(d, bytes) else str(d)
            for d in self._redis.smembers(f"{self.prefix}:days")
        )
        first = None if since is None else _day(since)
        last = None if until is None else _day(until - 1)
        return [d for d in days if (first is None or d >= first) and (last is None or d <= last)]

    def _totals(
        self, dim: str, days: Sequence[str], feature: str | None = None
    ) -> dict[str, dict[str, int]]:
        """Running totals per group key of `dim`, summed over `days`."""
        r = self._redis
        wanted: list[tuple[str, str]] = []
        for day in days:
            if dim == "day":
                wanted.append((day, "all=*"))
            elif feature is not None:
                wanted.append((day, f"{dim}={feature}"))
            else:
                members = r.smembers(f"{self.prefix}:k:{day}")
                for m in members:
                    text = m.decode() if isinstance(m, bytes) else str(m)
                    if text.split("=", 1)[0] == dim:
                        wanted.append((day, text))
        pipe = r.pipeline(transaction=False)
        for day, name in wanted:
            pipe.hgetall(f"{self.prefix}:t:{day}:{name}")
        out: dict[str, dict[str, int]] = {}
        for (day, name), h in zip(wanted, pipe.execute(), strict=True):
            key = day if dim == "day" else name.split("=", 1)[1]
            acc = out.setdefault(key, {})
            for f, v in h.items():
                field = f.decode() if isinstance(f, bytes) else str(f)
                acc[field] = acc.get(field, 0) + int(v)
        return out

    def aggregate(
        self, *, by: Group = "feature", since: float | None = None, until: float | None = None
    ) -> list[ReportRow]:
        """Totals grouped by `by`; from the running totals when the range is whole UTC days."""
        check_group(by)
        self._flush_before_read()
        if not (_aligned(since) and _aligned(until)):
            return aggregate_entries(self.entries(since=since, until=until), by)
        try:
            totals = self._totals(by, self._days(since, until))
        except self._errors as exc:
            raise self._fail(exc, "read") from exc
        return [_row(k, t) for k, t in sorted(totals.items()) if t.get("entries", 0)]

    def feature_day_costs(
        self, *, since: float | None = None, until: float | None = None
    ) -> dict[tuple[str, str], int]:
        """Cost in nano-dollars per (UTC day, feature): the HTML report's time series."""
        if not (_aligned(since) and _aligned(until)):
            out: dict[tuple[str, str], int] = {}
            for e in self.entries(since=since, until=until):
                k = (_day(e.ts), e.feature)
                out[k] = out.get(k, 0) + (e.cost_nanos or 0)
            return out
        self._flush_before_read()
        result: dict[tuple[str, str], int] = {}
        for day in self._days(since, until):
            for feat, t in self._totals("feature", [day]).items():
                result[(day, feat)] = t.get("cost_nanos", 0)
        return result

    def spent_nanos(self, *, since: float, feature: str | None = None) -> int:
        """Known cost since `since`: whole days from the totals, a partial day from entries."""
        try:
            start_day = _day(since)
            first_full = since if _aligned(since) else _day_start(start_day) + _DAY
            days = self._days(first_full, None)
            dim = "all" if feature is None else "feature"
            key = "*" if feature is None else feature
            wanted = [(d, f"{dim}={key}") for d in days]
            pipe = self._redis.pipeline(transaction=False)
            for d, name in wanted:
                pipe.hget(f"{self.prefix}:t:{d}:{name}", "cost_nanos")
            total = sum(int(v) for v in pipe.execute() if v is not None)
        except self._errors as exc:
            raise self._fail(exc, "read") from exc
        if first_full > since:  # the partial first day, from its entries
            for e in self.entries(since=since, until=first_full):
                if feature is None or e.feature == feature:
                    total += e.cost_nanos or 0
        return total

    def close(self) -> None:
        """Send what the spool holds if Redis is back, and close the connection pool."""
        if self.spool_path is not None:
            self.flush_spool()  # returns quietly if Redis is still down
        self._redis.close()

    @override
    def __repr__(self) -> str:
        return f"RedisStore({self.url or self._redis!r}, prefix={self.prefix!r})"
