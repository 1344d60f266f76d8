"""The ledger: records every priced attempt and answers "where did the money go?"."""

from __future__ import annotations

import atexit
import contextlib
import csv
import datetime as dt
import json
import logging
import math
import os
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from typing_extensions import override

from .._exceptions import CostwiseWarning, LedgerError
from ._entry import FIELDS, LedgerEntry, entry_from_row, row_of
from ._journal import Journal, read_orphans, retire_orphan
from ._report import Report
from ._store import Group, LedgerStore, MemoryStore

if TYPE_CHECKING:
    import pandas

__all__ = ["Ledger", "default_ledger_path", "to_timestamp"]

logger = logging.getLogger("costwise")


def default_ledger_path() -> Path:
    """Where the default SQLite ledger lives: ``$COSTWISE_LEDGER``, else the user data dir."""
    env = os.environ.get("COSTWISE_LEDGER")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "costwise" / "ledger.sqlite"


def to_timestamp(value: float | int | str | dt.datetime | dt.date | None) -> float | None:
    """Unix seconds from a number, a date (UTC midnight), a datetime (naive = UTC) or ISO text.

    Raises:
        ValueError: the text is not an ISO date or datetime, or the number is not finite.
        TypeError: a bool (``True`` is not a time).
    """
    if isinstance(value, bool):
        msg = f"not a date or time: {value!r}"
        raise TypeError(msg)
    if value is None or isinstance(value, float | int):
        if value is not None and not math.isfinite(value):
            msg = f"not a date or time: {value!r} (a time must be a finite number of seconds)"
            raise ValueError(msg)
        return None if value is None else float(value)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            msg = (
                f"not a date or time: {value!r} (use ISO 8601, e.g. 2026-11-01 or 2026-11-01T09:30)"
            )
            raise ValueError(msg) from None
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


class Ledger:
    """Records what every call cost and would have cost, and reports spend.

    Each client has one (``client.ledger``); copies made by ``with_options`` share it. It
    writes through a `LedgerStore`: SQLite by default, `MemoryStore` in tests, `RedisStore`
    for many hosts. If the store fails, entries are kept in memory, a `CostwiseWarning` is
    issued, and the next write retries them: none is lost, and stores ignore repeated ids,
    so none is counted twice.

    Args:
        store: a store, or a path for a `SQLiteStore`. ``None`` uses `default_ledger_path`.
        on_record: callables given each batch of entries after it is stored (httpx-style
            event hooks). A hook that raises propagates its error.

    Example:
        >>> print(client.ledger.report())
    """

    def __init__(
        self,
        store: LedgerStore | str | os.PathLike[str] | None = None,
        *,
        on_record: Sequence[Callable[[Sequence[LedgerEntry]], None]] = (),
        flush_interval: float = 0.25,
        write_behind: bool | None = None,
    ) -> None:
        if store is None or isinstance(store, str | os.PathLike):
            from ._sqlite import SQLiteStore

            store = SQLiteStore(default_ledger_path() if store is None else store)
        elif not isinstance(store, LedgerStore):
            msg = f"ledger store {store!r} lacks the LedgerStore methods (write, entries, ...)"
            raise TypeError(msg)
        self.store: LedgerStore = store
        self._hooks = tuple(on_record)
        self._pending: list[LedgerEntry] = []
        # Journaled entries not yet in the store, kept as rows (see `_record_rows`): their
        # LedgerEntry objects are built by the flusher, off the caller's thread.
        self._rows: list[list[Any]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._interval = flush_interval
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_pid = -1
        self._retired: list[Any] = []  # journal segments whose entries await the store
        self._outage = False
        journal_dir = getattr(store, "journal_dir", None)
        if write_behind is None:
            write_behind = journal_dir is not None
        if write_behind and journal_dir is None:
            msg = f"write_behind=True needs a store with a journal_dir; {store!r} has none"
            raise ValueError(msg)
        self._journal = Journal(Path(journal_dir)) if write_behind and journal_dir else None
        self._memory = store if isinstance(store, MemoryStore) else None
        self.write_through = not write_behind
        """Write each call to the store before returning (set by strategies that read spend,
        such as `Budget`, so every worker sees every finished call at once)."""
        self._recovered_at = 0.0
        _ledgers.add(self)
        if self._journal is not None:
            # Dropped without `close`: let go of the journal's files without deleting them,
            # so the next ledger to start replays what was not stored yet.
            weakref.finalize(self, _release, self._journal, self._retired)
            self._recover()

    @classmethod
    def memory(cls) -> Ledger:
        """A ledger kept in memory (tests, notebooks)."""
        return cls(MemoryStore())

    def _recover(self) -> None:
        """Replay journals that dead processes left behind (their entries were acknowledged).

        Run when the ledger starts, and every half minute by the flusher, so a worker that
        was killed is accounted for without waiting for a restart. A journal the store
        does not take, or that cannot be read to its end (a newer version's), is kept for
        the next try with a warning: never deleted unread, never in the way of a start.
        """
        assert self._journal is not None
        self._recovered_at = time.monotonic()
        for path, fd, entries, complete in read_orphans(self._journal.directory):
            try:
                self.store.write(entries)
            except Exception as exc:
                os.close(fd)
                _warn(
                    f"cannot replay the ledger journal {str(path)!r} into {self.store!r} "
                    f"({exc}); it is kept and tried again"
                )
                continue
            if not complete:
                os.close(fd)
                _warn(
                    f"the ledger journal {str(path)!r} has entries this version cannot read; "
                    f"{len(entries)} before them were stored, and the file is kept"
                )
                continue
            retire_orphan(path, fd)
            logger.info("costwise: replayed %d ledger entries from %s", len(entries), path)

    def _forget_in_child(self) -> None:
        """In a forked child: fresh locks (another thread may have held them at the fork),
        no flusher, and nothing of the parent's: its pending entries and journal files stay
        the parent's to store (the child's own calls go to a journal of its own)."""
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread, self._thread_pid = None, -1
        self._pending, self._rows = [], []
        for segment in self._retired:
            segment.release()
        self._retired.clear()
        if self._journal is not None:
            self._journal.release()

    def record(self, entries: Sequence[LedgerEntry]) -> None:
        """Record entries: durable when this returns, counted once, whatever the store does.

        With a journaling store (SQLite) the entries are appended to this process's journal
        and written to the store in the background within ``flush_interval`` seconds (or at
        once by `flush`, `report`, `entries` and at exit). Otherwise they are written
        through, and kept for a retry if the store fails.
        """
        if self._journal is not None and not self.write_through:
            with self._lock:
                self._journal.append(entries)
                self._pending.extend(entries)
                if self._thread_pid != os.getpid():
                    self._start_flusher()
                if len(self._pending) >= 512 and not self._wake.is_set():
                    self._wake.set()
        else:
            with self._lock:
                batch = [*self._pending, *entries] if self._pending else list(entries)
                try:
                    self.store.write(batch)
                except Exception as exc:  # any store failure: keep the entries, never lose them
                    self._pending = batch
                    where = "in memory"
                    if self._journal is not None:  # durable until the store takes them
                        self._journal.append(entries)
                        if self._thread_pid != os.getpid():
                            self._start_flusher()
                        where = "in the local journal"
                    warnings.warn(
                        f"ledger store {self.store!r} failed ({exc}); {len(batch)} entries are "
                        f"kept {where} and retried on the next write",
                        CostwiseWarning,
                        stacklevel=3,
                    )
                    return
                self._pending = []
        for hook in self._hooks:
            hook(entries)

    def _record_rows(self, rows: list[list[Any]]) -> None:
        """`record` for the meter: entries as rows in FIELDS order (``detail`` may be None).

        The rows are journaled as they are; building their `LedgerEntry` objects waits for
        the flusher, unless something needs them now (hooks, write-through).
        """
        if self._hooks or self._journal is None or self.write_through:
            if self._memory is not None and not self._hooks:
                self._memory.write_rows(rows)  # it keeps them as they are, and cannot fail
                return
            self.record([entry_from_row(row) for row in rows])
            return
        with self._lock:
            self._journal.append_rows(rows)
            self._rows += rows
            if self._thread_pid != os.getpid():
                self._start_flusher()
            # is_set first: set() takes a lock and notifies, and until the flusher runs every
            # call would pay for it again
            if len(self._rows) >= 512 and not self._wake.is_set():
                self._wake.set()

    def _start_flusher(self) -> None:
        self._thread_pid = os.getpid()
        ref = weakref.ref(self)
        self._thread = threading.Thread(
            target=_flusher,
            args=(ref, self._wake, self._interval),
            daemon=True,
            name="costwise-ledger",
        )
        self._thread.start()
        atexit.register(_flush_at_exit, ref)

    def _flush_journal(self) -> None:
        assert self._journal is not None
        with self._flush_lock:
            with self._lock:
                if not self._pending and not self._rows:
                    return
                batch, self._pending = self._pending, []
                rows, self._rows = self._rows, []
                self._retired.extend(self._journal.rotate())
            try:
                self._write_rows([*map(row_of, batch), *rows])
            except Exception as exc:  # the store is down: keep entries (and their journal)
                with self._lock:
                    self._pending[:0] = batch
                    self._rows[:0] = rows
                if not self._outage:
                    self._outage = True
                    _warn(
                        f"ledger store {self.store!r} failed ({exc}); {len(batch) + len(rows)} "
                        f"entries are kept in the local journal and retried"
                    )
                return
            self._outage = False
            for segment in self._retired:
                segment.retire()
            self._retired.clear()

    def _write_rows(self, rows: list[list[Any]]) -> None:
        """Write rows to the store. A row the store refuses as data (a number too large for
        it, a value of the wrong type: an error that no retry will cure) must not block
        every later batch: the rows are then written one by one, and the refused ones are
        set aside, with a warning, in ``rejected-<pid>.json`` lines beside the journal."""
        try:
            self._store_rows(rows)
        except _DATA_ERRORS:
            if len(rows) == 1:
                raise
        else:
            return
        refused: list[tuple[list[Any], str]] = []
        for row in rows:
            try:
                self._store_rows([row])
            except _DATA_ERRORS as exc:
                refused.append((row, repr(exc)))
        if refused:
            assert self._journal is not None
            path = self._journal.directory / f"rejected-{os.getpid()}.json"
            with path.open("a") as fh:
                for row, error in refused:
                    fh.write(json.dumps({"row": row, "error": error}, default=repr) + "\n")
            _warn(
                f"ledger store {self.store!r} refused {len(refused)} entries as data "
                f"({refused[0][1]}); they are kept in {str(path)!r}"
            )

    def _store_rows(self, rows: list[list[Any]]) -> None:
        write_rows = getattr(self.store, "write_rows", None)
        if write_rows is not None:  # rows as they are: no LedgerEntry per row
            write_rows(rows)
        else:
            self.store.write([entry_from_row(row) for row in rows])

    @property
    def pending(self) -> int:
        """Entries waiting to be written after a store failure."""
        return len(self._pending) + len(self._rows)

    def flush(self) -> None:
        """Write pending entries to the store now (they are durable already)."""
        for meter_pending in BEFORE_FLUSH:  # e.g. streams dropped unfinished, queued to meter
            meter_pending()
        if self._journal is not None and (self._pending or self._rows or self._retired):
            self._flush_journal()
        elif self._pending:
            self.record(())

    def prune(self, *, before: float | str | dt.date | dt.datetime) -> int:
        """Delete the entries of whole UTC days before `before`; returns how many went.

        Use it to keep a long-running service's ledger bounded, say to 90 days, after
        exporting what you want to keep (`export_csv`, ``costwise export``). Entries are
        deleted with their running daily totals, so reports over the days kept are
        unchanged. `before` is rounded down to its UTC midnight: only whole days go, never
        part of one. Pending entries are flushed first. The ``costwise prune`` command does
        the same and shows what it would delete before it does.

        Args:
            before: a date, a datetime (naive = UTC), ISO text or Unix seconds.

        Returns:
            How many entries were deleted.

        Raises:
            ValueError: `before` is not a date or time, or its midnight is in the future.
            LedgerError: the store cannot prune (a custom store without ``prune``), or it
                failed.

        Example:
            >>> client.ledger.prune(before=datetime.date.today() - datetime.timedelta(days=90))
        """
        ts = to_timestamp(before)
        assert ts is not None
        cutoff = math.floor(ts / 86400) * 86400
        if cutoff > time.time():
            msg = f"prune: before={before!r} is in the future; it would delete today's entries"
            raise ValueError(msg)
        prune = getattr(self.store, "prune", None)
        if not callable(prune):
            msg = f"{self.store!r} cannot prune: it has no prune(before) method"
            raise LedgerError(msg, path=repr(self.store))
        self.flush()
        return int(prune(float(cutoff)))

    def report(
        self,
        *,
        by: Group = "feature",
        since: float | str | dt.datetime | dt.date | None = None,
        until: float | str | dt.datetime | dt.date | None = None,
    ) -> Report:
        """Spend, baseline and savings grouped by feature, model, strategy or day.

        Args:
            by: ``"feature"``, ``"model"``, ``"strategy"`` or ``"day"`` (UTC).
            since: include entries at or after this time (unix seconds, date, datetime, ISO).
            until: include entries before this time.

        Returns:
            A `Report`: ``print()`` it, or call ``to_dicts()``.
        """
        self.flush()
        rows = self.store.aggregate(by=by, since=to_timestamp(since), until=to_timestamp(until))
        return Report(rows, by)

    def entries(
        self,
        *,
        since: float | str | dt.datetime | dt.date | None = None,
        until: float | str | dt.datetime | dt.date | None = None,
    ) -> Iterator[LedgerEntry]:
        """Every entry in the time range, oldest first."""
        self.flush()
        return self.store.entries(since=to_timestamp(since), until=to_timestamp(until))

    def export_csv(self, out: str | os.PathLike[str] | IO[str], **when: Any) -> int:
        """Write entries as CSV (one row per entry); returns how many were written."""
        return self._export(out, "csv", **when)

    def export_jsonl(self, out: str | os.PathLike[str] | IO[str], **when: Any) -> int:
        """Write entries as JSON lines; returns how many were written."""
        return self._export(out, "jsonl", **when)

    def _export(self, out: str | os.PathLike[str] | IO[str], fmt: str, **when: Any) -> int:
        if isinstance(out, str | os.PathLike):
            with open(out, "w", newline="", encoding="utf-8") as fh:
                return self._export(fh, fmt, **when)
        n = 0
        writer = csv.DictWriter(out, fieldnames=FIELDS) if fmt == "csv" else None
        if writer is not None:
            writer.writeheader()
        for entry in self.entries(**when):
            row = entry.to_dict()
            if writer is not None:
                row["detail"] = json.dumps(row["detail"]) if row["detail"] else ""
                writer.writerow(row)
            else:
                out.write(json.dumps(row, separators=(",", ":")) + "\n")
            n += 1
        return n

    def to_dataframe(self, **when: Any) -> pandas.DataFrame:
        """Entries as a pandas DataFrame (needs pandas installed)."""
        try:
            import pandas as pd
        except ImportError as exc:
            msg = "Ledger.to_dataframe() needs pandas: pip install pandas"
            raise ImportError(msg) from exc
        rows = [e.to_dict() for e in self.entries(**when)]
        frame: pandas.DataFrame = pd.DataFrame(rows, columns=list(FIELDS))
        return frame

    def close(self) -> None:
        """Flush pending entries and close the store.

        Raises:
            LedgerError: entries could not be written (they stay in the journal, if any).
        """
        for _ in range(3):  # calls finishing in other threads meanwhile are flushed too
            self.flush()
            with self._lock:  # no entry can be journaled between this check and the close
                if not self._pending and not self._rows:
                    if self._journal is not None:
                        self._journal.close()
                    break
        else:
            why = "could not be written to" if self._outage else "were still arriving for"
            msg = f"{self.pending} ledger entries {why} {self.store!r} at close"
            raise LedgerError(msg)
        self._wake.set()
        self.store.close()

    @override
    def __repr__(self) -> str:
        return f"Ledger({self.store!r})"


def _warn(message: str) -> None:
    # Called from the flusher thread, where an exception (a warning turned into an error by a
    # filter) would kill the thread: log it too, and never let it escape.
    logger.warning("costwise: %s", message)
    with contextlib.suppress(Exception):
        warnings.warn(message, CostwiseWarning, stacklevel=2)


def _flusher(ref: weakref.ReferenceType[Ledger], wake: threading.Event, interval: float) -> None:
    while True:
        wake.wait(interval)
        wake.clear()
        ledger = ref()
        if ledger is None or ledger._thread_pid != os.getpid():
            return
        try:
            ledger.flush()
            if time.monotonic() - ledger._recovered_at > _RECOVER_EVERY:
                ledger._recover()  # journals of workers killed since
        except Exception:  # keep flushing; flush() already kept the entries
            logger.exception("costwise: ledger flush failed")
        if ledger._journal is None or ledger._journal.pid != os.getpid():
            return
        del ledger


def _flush_at_exit(ref: weakref.ReferenceType[Ledger]) -> None:
    ledger = ref()
    if ledger is not None and ledger._journal is not None and ledger._thread_pid == os.getpid():
        ledger.flush()
        with ledger._lock:  # what is still pending stays in the journal, replayed later
            if not ledger._pending and not ledger._rows:
                ledger._journal.close()


def _release(journal: Journal, retired: list[Any]) -> None:
    for segment in retired:
        segment.release()
    if journal.pid == os.getpid():
        journal.release()


BEFORE_FLUSH: list[Callable[[], None]] = []
"""Called at the start of every `Ledger.flush` (so before every read): work that ends in
ledger entries and waits for a safe moment, such as metering dropped streams."""
_DATA_ERRORS = (OverflowError, TypeError, ValueError)  # a refused value, not a store outage
_RECOVER_EVERY = 30.0  # seconds between the flusher's looks for dead processes' journals
_ledgers: weakref.WeakSet[Ledger] = weakref.WeakSet()


def _forget_ledgers_in_child() -> None:
    for ledger in list(_ledgers):
        ledger._forget_in_child()


os.register_at_fork(after_in_child=_forget_ledgers_in_child)
