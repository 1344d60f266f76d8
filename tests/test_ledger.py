"""Ledger stores: durability, concurrency, idempotence, reports and bad files."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typing_extensions import override

from costwise import CostwiseWarning, LedgerError
from costwise.ledger import (
    Ledger,
    LedgerEntry,
    MemoryStore,
    SQLiteStore,
    aggregate_entries,
)


def entry(
    i: int,
    *,
    feature: str = "f",
    cost: int | None = 100,
    final: bool = True,
    ts: float | None = None,
    kind: str = "upstream",
    tier: int | None = None,
) -> LedgerEntry:
    return LedgerEntry(
        id=f"id-{os.getpid()}-{i}",
        call_id=f"call-{i}",
        ts=ts if ts is not None else 1_700_000_000.0 + i,
        feature=feature,
        requested_model="gpt-4o",
        model="gpt-4o-mini",
        kind=kind,  # type: ignore[arg-type]
        prompt_tokens=10,
        completion_tokens=5,
        cost_nanos=cost,
        baseline_nanos=300 if final else 0,
        final=final,
        tier=tier,
    )


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryStore | SQLiteStore:
    return MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "l.sqlite")


class TestStores:
    def test_write_is_idempotent(self, store: MemoryStore | SQLiteStore) -> None:
        """Writing the same entry twice stores it once (retries never double count)."""
        e = entry(1)
        store.write([e])
        store.write([e, entry(2)])
        assert [x.id for x in store.entries()] == [e.id, entry(2).id]

    def test_round_trip(self, store: MemoryStore | SQLiteStore) -> None:
        """Every field survives storage."""
        e = LedgerEntry(
            id="x",
            call_id="c",
            ts=1.5,
            feature="f",
            requested_model="a",
            model="b",
            kind="hit",
            status="ok",
            strategy="cache",
            purpose=None,
            prompt_tokens=1,
            completion_tokens=2,
            cached_tokens=3,
            cache_write_tokens=4,
            reasoning_tokens=5,
            cost_nanos=None,
            baseline_nanos=7,
            final=True,
            estimated=True,
            latency_ms=1.25,
            tier=2,
            reason="r",
            detail={"similarity": 0.93},
        )
        store.write([e])
        assert list(store.entries()) == [e]

    def test_aggregate_matches_python(self, store: MemoryStore | SQLiteStore) -> None:
        """The store's totals equal a plain Python sum, for every grouping."""
        entries = [
            entry(
                i,
                feature=f"f{i % 3}",
                cost=None if i == 7 else i * 10,
                final=i % 4 != 0,
                kind="hit" if i % 5 == 0 else "upstream",
                tier=i % 2,
                ts=1_700_000_000 + i * 50_000,
            )
            for i in range(40)
        ]
        store.write(entries)
        for by in ("feature", "model", "strategy", "day"):
            assert store.aggregate(by=by) == aggregate_entries(entries, by)
        since = 1_700_000_000 + 10 * 50_000
        until = 1_700_000_000 + 20 * 50_000
        got = store.aggregate(since=since, until=until)
        assert got == aggregate_entries([e for e in entries if since <= e.ts < until], "feature")
        assert sum(r.calls for r in got) == sum(e.final for e in entries if since <= e.ts < until)

    def test_spent(self, store: MemoryStore | SQLiteStore) -> None:
        """spent_nanos sums known costs since a time, per feature or overall."""
        store.write(
            [
                entry(1, feature="a", cost=5),
                entry(2, feature="b", cost=7),
                entry(3, feature="a", cost=None),
            ]
        )
        assert store.spent_nanos(since=0) == 12
        assert store.spent_nanos(since=0, feature="a") == 5
        assert store.spent_nanos(since=1_700_000_002.5) == 0


class TestSQLiteFaults:
    def test_corrupt_file(self, tmp_path: Path) -> None:
        """A file that is not a database is reported by path at construction."""
        path = tmp_path / "bad.sqlite"
        path.write_bytes(b"this is not sqlite" * 100)
        with pytest.raises(LedgerError, match=r"bad\.sqlite") as err:
            SQLiteStore(path)
        assert err.value.path == str(path)

    def test_other_database(self, tmp_path: Path) -> None:
        """A SQLite file with other tables is not taken over."""
        path = tmp_path / "other.sqlite"
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE users (id INTEGER)")
        with pytest.raises(LedgerError, match="not a costwise ledger"):
            SQLiteStore(path)

    @pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
    def test_unwritable_directory(self, tmp_path: Path) -> None:
        """An unwritable path is reported at construction."""
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(LedgerError, match="locked"):
            SQLiteStore(locked / "sub" / "l.sqlite")

    def test_path_under_a_file(self, tmp_path: Path) -> None:
        """A ledger path whose parent is a file is reported at construction (even as root)."""
        blocker = tmp_path / "afile"
        blocker.write_text("x")
        with pytest.raises(LedgerError, match="afile"):
            SQLiteStore(blocker / "l.sqlite")


class FlakyStore(MemoryStore):
    """A store that fails its first `failures` writes (an outage), then works."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    @override
    def write(self, entries: Sequence[LedgerEntry]) -> None:
        if self.failures:
            self.failures -= 1
            msg = "disk full"
            raise OSError(msg)
        super().write(entries)


def test_store_failure_buffers_and_retries() -> None:
    """A failing store loses nothing: entries wait in memory and are written once later."""
    flaky = FlakyStore(failures=2)
    ledger = Ledger(flaky)
    with pytest.warns(CostwiseWarning, match="disk full"):
        ledger.record([entry(1)])
    with pytest.warns(CostwiseWarning, match="2 entries"):
        ledger.record([entry(2)])
    assert ledger.pending == 2
    ledger.record([entry(3)])
    assert ledger.pending == 0
    assert sorted(e.id for e in flaky.entries()) == sorted(entry(i).id for i in (1, 2, 3))


def test_hooks_get_entries() -> None:
    """on_record hooks see each stored batch."""
    seen: list[str] = []
    ledger = Ledger(MemoryStore(), on_record=[lambda es: seen.extend(e.id for e in es)])
    ledger.record([entry(1), entry(2)])
    assert seen == [entry(1).id, entry(2).id]


def _writer(path: str, start: int, n: int) -> None:
    store = SQLiteStore(path)
    for i in range(start, start + n):
        store.write([entry(i, cost=1)])


def test_many_processes_and_threads_lose_nothing(tmp_path: Path) -> None:
    """4 processes x 3 threads writing one SQLite ledger: every entry stored exactly once."""
    path = str(tmp_path / "shared.sqlite")
    SQLiteStore(path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_threads, args=(path, p)) for p in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = SQLiteStore(path)
    assert store.spent_nanos(since=0) == 4 * 3 * 50
    assert len({e.id for e in store.entries()}) == 4 * 3 * 50


def _threads(path: str, proc: int) -> None:
    threads = [
        threading.Thread(target=_writer, args=(path, (proc * 3 + t) * 1000, 50)) for t in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_survives_kill(tmp_path: Path) -> None:
    """A call returned to the caller is in the ledger even if the process is killed next."""
    path = tmp_path / "killed.sqlite"
    script = textwrap.dedent(f"""
        import os, signal
        from costwise.testing import FakeProvider, fake_client
        client = fake_client(FakeProvider(), ledger={str(path)!r})
        for i in range(5):
            client.chat.completions.create(model="gpt-4o-mini",
                messages=[{{"role": "user", "content": "hi"}}], feature="killed")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    report = Ledger(path).report()
    assert report.row("killed").calls == 5


def test_report_filters_and_groups(tmp_path: Path) -> None:
    """report() filters by time (ISO dates too) and groups by day."""
    ledger = Ledger(tmp_path / "r.sqlite")
    day = 86_400
    ledger.record([entry(i, ts=1_700_000_000 + i * day) for i in range(5)])
    assert len(ledger.report(by="day")) == 5
    assert ledger.report(since="2023-11-16", until="2023-11-18").total.calls == 2
    with pytest.raises(ValueError, match="not a date"):
        ledger.report(since="yesterday-ish")
    with pytest.raises(ValueError, match="cannot group"):
        ledger.report(by="colour")  # type: ignore[arg-type]


def test_money_is_exact() -> None:
    """Costs are Decimals computed from integer nano-dollars."""
    e = entry(1, cost=123_456_789)
    assert e.cost == Decimal("0.123456789")
    ledger = Ledger(MemoryStore())
    ledger.record([entry(i, cost=1) for i in range(1000)])
    assert ledger.report().to_dicts()[0]["cost_usd"] == Decimal("0.000001")


def test_export(tmp_path: Path) -> None:
    """CSV and JSON lines exports hold every entry and no message text."""
    ledger = Ledger(MemoryStore())
    ledger.record([entry(i) for i in range(3)])
    assert ledger.export_csv(tmp_path / "l.csv") == 3
    assert ledger.export_jsonl(tmp_path / "l.jsonl") == 3
    rows = [json.loads(line) for line in (tmp_path / "l.jsonl").read_text().splitlines()]
    assert rows[0]["feature"] == "f" and "messages" not in rows[0]
    assert (tmp_path / "l.csv").read_text().splitlines()[0].startswith("id,call_id,ts")


def test_report_under_load_is_fast_enough_to_call(tmp_path: Path) -> None:
    """Smoke: 10k entries aggregate (timing lives in benchmarks/report.py)."""
    store = SQLiteStore(tmp_path / "big.sqlite")
    store.write([entry(i, feature=f"f{i % 7}", ts=time.time()) for i in range(10_000)])
    assert sum(r.calls for r in store.aggregate()) == 10_000


def test_rows_round_trip_to_entries_and_journal_frames() -> None:
    """A row (the meter's pending form) is the entry's values: same entry, same journal frame."""
    from costwise.ledger._entry import FIELDS, ROW_INDEX, entry_from_row, row_of
    from costwise.ledger._journal import decode, encode, encode_rows

    plain = entry(1)
    detailed = LedgerEntry(
        id="a", call_id="b", ts=1.5, feature="f", requested_model="m", model="m",
        strategy="cache", detail={"similarity": 0.97, "note": "é"}, latency_ms=0.1234567,
    )  # fmt: skip
    assert list(ROW_INDEX) == list(FIELDS)
    for e in (plain, detailed):
        row = row_of(e)
        assert entry_from_row(row) == e
        assert entry_from_row(row).detail == dict(e.detail)
        assert decode(encode_rows([row])) == [e]
    assert encode([plain, detailed]) == encode_rows([row_of(plain), row_of(detailed)])
    assert decode(encode([plain, detailed])) == [plain, detailed]
    assert decode(encode([plain]) + encode([detailed]) + bytes(64)) == [plain, detailed]


def test_journal_frames_hold_what_marshal_cannot() -> None:
    """A str subclass (an enum feature) or a numpy-like float in detail falls back to JSON."""
    import enum

    from costwise.ledger._journal import decode, encode

    class Feature(str, enum.Enum):
        SUPPORT = "support"

    class Score(float):
        pass

    odd = LedgerEntry(
        id="a", call_id="b", ts=1.5, feature=Feature.SUPPORT, requested_model="m", model="m",
        detail={"similarity": Score(0.5)},
    )  # fmt: skip
    (back,) = decode(encode([odd]))
    assert back.feature == "support" and back.detail == {"similarity": 0.5}


def test_a_torn_journal_frame_is_dropped_and_ends_the_replay() -> None:
    """A frame cut short or with zeroed bytes (a kill mid-copy) fails its CRC: only the
    frames written whole before it are replayed, never a miscounted one."""
    from costwise.ledger._journal import decode, encode

    first, second = encode([entry(1)]), encode([entry(2), entry(3)])
    assert decode(first + second[: len(second) - 7] + bytes(7)) == [entry(1)]
    zeroed = bytearray(second)
    zeroed[40:48] = bytes(8)  # inside the rows: marshal alone could read zeros as values
    assert decode(first + bytes(zeroed)) == [entry(1)]
    assert decode(first[:5]) == []


def test_journals_of_the_earlier_json_lines_format_are_replayed(tmp_path: Path) -> None:
    """A JSON-lines journal left by a process of an earlier version is still replayed."""
    from costwise.ledger._entry import row_of
    from costwise.ledger._journal import _ENCODER

    journal_dir = tmp_path / "old.sqlite.journal"
    journal_dir.mkdir()
    lines = [_ENCODER.encode(row_of(entry(i))) for i in range(3)]
    (journal_dir / "123-abcd-1.jsonl").write_bytes(
        ("\n".join(lines) + "\n").encode() + b'["torn",' + bytes(100)
    )
    ledger = Ledger(tmp_path / "old.sqlite")
    assert sorted(e.id for e in ledger.entries()) == sorted(entry(i).id for i in range(3))
    assert not list(journal_dir.glob("*.jsonl"))
    ledger.close()


def test_meter_rows_are_journaled_then_stored_once(tmp_path: Path) -> None:
    """Rows recorded by the meter are in the journal at once and in the store after a flush."""
    from costwise.ledger._entry import row_of

    ledger = Ledger(tmp_path / "rows.sqlite", flush_interval=60)
    entries = [entry(i) for i in range(3)]
    ledger._record_rows([row_of(e) for e in entries])
    assert ledger.pending == 3
    from costwise.ledger._journal import decode

    journal = (tmp_path / "rows.sqlite.journal").glob("*")
    assert len([e for p in journal for e in decode(p.read_bytes())]) == 3, (
        "rows must be durable before record returns"
    )
    ledger.flush()
    assert ledger.pending == 0
    ledger.flush()
    assert sorted(ledger.entries(), key=lambda e: e.id) == sorted(entries, key=lambda e: e.id)
    ledger.close()


def test_meter_rows_reach_hooks_as_entries() -> None:
    """With on_record hooks, rows become LedgerEntry objects before the hooks run."""
    from costwise.ledger._entry import row_of

    seen: list[LedgerEntry] = []
    ledger = Ledger(MemoryStore(), on_record=[seen.extend])
    ledger._record_rows([row_of(entry(1))])
    assert seen == [entry(1)]
    assert list(ledger.entries()) == [entry(1)]


def test_journal_rolls_over_full_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Full segments are sealed and new ones opened; a batch bigger than a segment gets a
    segment of its own (one frame: one call's entries stay together); none lost."""
    from costwise.ledger import _journal
    from costwise.ledger._entry import row_of

    monkeypatch.setattr(_journal, "_SEGMENT", 2048)
    journal = _journal.Journal(tmp_path / "j")
    entries = [entry(i) for i in range(60)]
    for e in entries[:30]:
        journal.append_rows([row_of(e)])
    journal.append_rows([row_of(e) for e in entries[30:]])  # bigger than one segment
    huge = LedgerEntry(**{**entry(60).to_dict(), "detail": {"note": "x" * 5000}})
    journal.append_rows([row_of(huge)])  # one row bigger than a segment
    entries.append(huge)
    files = sorted((tmp_path / "j").iterdir(), key=lambda f: int(f.stem.rsplit("-", 1)[1]))
    assert len(files) >= 4
    assert [len(_journal.decode(f.read_bytes())) for f in files[-2:]] == [30, 1]
    stored = [e for f in files for e in _journal.decode(f.read_bytes())]
    assert sorted(e.id for e in stored) == sorted(e.id for e in entries)
    assert stored == entries  # in order, once each
    journal.close()
    assert not list((tmp_path / "j").iterdir())


def test_ids_are_unique_and_renewed_in_a_forked_child() -> None:
    """Entry ids never repeat, and a forked child draws a new prefix (no shared counters)."""
    import warnings

    from costwise._ids import new_id

    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(len(i) == 32 for i in ids)
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert len(child) == 32
    assert child[:16] != ids[0][:16]
    assert new_id()[:16] == ids[0][:16]


class FlakySQLite(SQLiteStore):
    """A SQLite ledger whose first `failures` batch writes fail (a locked or full disk)."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures

    @override
    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        if self.failures:
            self.failures -= 1
            msg = "database is locked"
            raise LedgerError(msg)
        super().write_rows(rows)


def test_journaled_rows_survive_a_failed_flush(tmp_path: Path) -> None:
    """Meter rows whose flush fails stay pending (and journaled) and are stored once later."""
    from costwise.ledger._entry import row_of

    store = FlakySQLite(tmp_path / "l.sqlite", failures=1)
    ledger = Ledger(store, flush_interval=60)
    ledger.record([entry(0)])  # an entry object, beside the rows
    ledger._record_rows([row_of(entry(i)) for i in range(1, 4)])
    with pytest.warns(CostwiseWarning, match="4 entries are kept"):
        ledger.flush()
    assert ledger.pending == 4
    assert list((tmp_path / "l.sqlite.journal").iterdir()), "the journal must stay"
    ledger.flush()
    assert ledger.pending == 0
    assert sorted(ledger.entries(), key=lambda e: e.id) == [entry(i) for i in range(4)]
    ledger.close()


def test_rows_and_entries_store_the_same() -> None:
    """write_rows (the flusher's path) stores exactly what write stores."""
    from costwise.ledger._entry import row_of

    detailed = LedgerEntry(
        id="d", call_id="c", ts=2.5, feature="f", requested_model="m", model="m",
        strategy="cache", detail={"similarity": 0.97, "note": "é"}, latency_ms=0.5,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        a, b = SQLiteStore(Path(tmp) / "a.sqlite"), SQLiteStore(Path(tmp) / "b.sqlite")
        a.write([entry(1), detailed])
        b.write_rows([row_of(entry(1)), row_of(detailed)])
        assert list(a.entries()) == list(b.entries()) == [detailed, entry(1)]  # by time
        assert a.aggregate() == b.aggregate()


# -- pruning: whole UTC days, entries with their daily totals ------------------------------

DAY = 86400.0
MIDNIGHT = 1_700_006_400.0  # 2023-11-15T00:00:00Z
assert MIDNIGHT % DAY == 0


def _days_of_entries(n_days: int = 5, per_day: int = 7) -> list[LedgerEntry]:
    return [
        entry(d * 100 + i, feature=f"f{i % 2}", cost=d * 10 + i, ts=MIDNIGHT + d * DAY + i * 3000.0)
        for d in range(n_days)
        for i in range(per_day)
    ]


class TestPrune:
    def test_store_prune_deletes_whole_days_and_keeps_the_rest_exact(
        self, store: MemoryStore | SQLiteStore
    ) -> None:
        entries = _days_of_entries()
        store.write(entries)
        cutoff = MIDNIGHT + 2 * DAY
        assert store.prune(cutoff) == 14
        kept = [e for e in entries if e.ts >= cutoff]
        assert list(store.entries()) == sorted(kept, key=lambda e: e.ts)
        for by in ("feature", "day", "model"):  # the daily totals went with the entries
            assert store.aggregate(by=by) == aggregate_entries(kept, by)
        assert store.spent_nanos(since=0) == sum(e.cost_nanos or 0 for e in kept)
        assert store.prune(cutoff) == 0  # nothing left before it
        store.write(entries[:3])  # a late retry of a pruned entry is stored once again
        assert len(list(store.entries())) == len(kept) + 3

    def test_sqlite_prune_wants_a_midnight(self, tmp_path: Path) -> None:
        store = SQLiteStore(tmp_path / "l.sqlite")
        with pytest.raises(ValueError, match="UTC midnight"):
            store.prune(MIDNIGHT + 5)

    def test_ledger_prune_rounds_down_flushes_first_and_checks_its_input(
        self, tmp_path: Path
    ) -> None:
        ledger = Ledger(SQLiteStore(tmp_path / "l.sqlite"))
        entries = _days_of_entries()
        ledger.record(entries)  # journaled, not yet in the store
        assert ledger.pending > 0
        # a time in the middle of day 3 prunes days 0-2 (14:00 is rounded down to midnight)
        gone = ledger.prune(before=dt.datetime(2023, 11, 17, 14, tzinfo=dt.timezone.utc))
        assert gone == 14 and ledger.pending == 0
        assert {e.id for e in ledger.entries()} == {e.id for e in entries[14:]}
        assert ledger.prune(before="2023-11-17") == 0
        with pytest.raises(ValueError, match="future"):
            ledger.prune(before=dt.date.today() + dt.timedelta(days=2))
        with pytest.raises(ValueError, match="not a date"):
            ledger.prune(before="last tuesday")
        ledger.close()

    def test_a_store_without_prune_is_named(self) -> None:
        class Minimal:
            def write(self, entries: Any) -> None: ...
            def entries(self, **_: Any) -> Any:
                return iter(())

            def aggregate(self, **_: Any) -> Any:
                return []

            def spent_nanos(self, **_: Any) -> int:
                return 0

            def close(self) -> None: ...

            @override
            def __repr__(self) -> str:
                return "Minimal()"

        ledger = Ledger(Minimal())
        with pytest.raises(LedgerError, match=r"Minimal\(\) cannot prune"):
            ledger.prune(before="2023-11-17")


def test_memory_store_rows_are_read_as_entries_at_once() -> None:
    """Rows the meter writes to a MemoryStore are seen by every reader, in order, once."""
    from costwise.ledger._entry import row_of

    store = MemoryStore()
    ledger = Ledger(store)
    ledger._record_rows([row_of(entry(1, ts=10.0)), row_of(entry(2, ts=20.0, cost=50))])
    assert len(store) == 2
    assert [e.id for e in ledger.entries()] == [entry(1).id, entry(2).id]
    assert store.spent_nanos(since=15.0) == 50
    store.write([entry(2, ts=20.0, cost=50), entry(3, ts=30.0)])  # id 2 is held already
    ledger._record_rows([row_of(entry(4, ts=40.0))])
    assert [r.calls for r in store.aggregate()] == [4]
    assert store.prune(before=25.0) == 2
    assert [e.id for e in store.entries()] == [entry(3).id, entry(4).id]


# -- found in review: forks, races, poison rows, dropped ledgers ------------------------------


def test_a_child_forked_while_the_flusher_writes_does_not_hang(tmp_path: Path) -> None:
    """A fork while the ledger's locks are held: the child's ledger still records, flushes
    and exits; it stores only its own entries, the parent's stay the parent's to store."""
    from costwise.ledger._entry import row_of

    path = tmp_path / "f.sqlite"
    ledger = Ledger(path, flush_interval=60)
    ledger._record_rows([row_of(entry(i)) for i in range(5)])
    read, write = os.pipe()
    with ledger._flush_lock, ledger._lock:  # as if the flusher were mid-write at the fork
        pid = os.fork()
        if pid == 0:
            try:
                ledger._record_rows([row_of(entry(100))])
                ledger.flush()  # would wait forever on the inherited locks
                os.write(write, str(len(list(ledger.entries()))).encode())
            finally:
                os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    seen = os.read(read, 16)
    os.close(read)
    assert status == 0 and int(seen) == 1  # its own entry only
    ledger.flush()
    ids = [e.id for e in ledger.entries()]  # entry ids carry the pid that made them
    assert sorted(i for i in ids if not i.endswith("-100")) == sorted(entry(i).id for i in range(5))
    assert len([i for i in ids if i.endswith("-100")]) == 1


def test_a_forked_child_does_not_keep_a_killed_parents_journal_locked(tmp_path: Path) -> None:
    """The child lets go of the journal files it inherited: when the parent is killed, its
    acknowledged entries are replayed while the child still runs."""
    path = tmp_path / "k.sqlite"
    script = textwrap.dedent(f"""
        import os, signal, time
        from costwise.testing import FakeProvider, fake_client
        from costwise.ledger import Ledger
        client = fake_client(FakeProvider(), ledger=Ledger({str(path)!r}, flush_interval=60))
        for i in range(5):
            client.chat.completions.create(model="gpt-4o-mini",
                messages=[{{"role": "user", "content": "hi"}}], feature="parent")
        if os.fork() == 0:
            time.sleep(30)  # a worker that lives on
            os._exit(0)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    assert proc.wait(timeout=60) == -signal.SIGKILL
    try:
        assert Ledger(path).report().row("parent").calls == 5
    finally:
        subprocess.run(["pkill", "-f", str(path)], check=False)


def test_a_segment_being_made_is_never_taken_for_a_dead_processs(tmp_path: Path) -> None:
    """Segments are locked before they get their journal name: a ledger starting at that
    moment cannot replay and delete one under its owner. Only an old unlocked leftover of
    a process that died making one is removed."""
    from costwise.ledger._entry import row_of

    journal_dir = tmp_path / "s.sqlite.journal"
    journal_dir.mkdir()
    stale = journal_dir / "1-dead-1.new"
    stale.write_bytes(b"")
    os.utime(stale, (time.time() - 120, time.time() - 120))
    young = journal_dir / "2-live-1.new"
    young.write_bytes(b"")
    writer = Ledger(tmp_path / "s.sqlite", flush_interval=60)
    writer._record_rows([row_of(entry(1))])
    Ledger(tmp_path / "s.sqlite").close()  # a second process starting up
    names = sorted(p.name for p in journal_dir.iterdir())
    assert "1-dead-1.new" not in names and "2-live-1.new" in names
    assert len([n for n in names if n.endswith(".cwj")]) == 1  # the writer's, untouched
    writer.close()
    assert [e.id for e in Ledger(tmp_path / "s.sqlite").entries()] == [entry(1).id]


def test_write_through_failures_are_journaled_not_only_kept_in_memory(tmp_path: Path) -> None:
    """Write-through (what a budget turns on) with the store failing: the entry is in the
    journal before `record` returns, so a kill cannot lose it."""
    from costwise.ledger._journal import decode

    path = tmp_path / "w.sqlite"
    ledger = Ledger(SQLiteStore(path, timeout=0.05), flush_interval=60)
    ledger.write_through = True
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    with pytest.warns(CostwiseWarning, match="kept in the local journal"):
        ledger.record([entry(1)])
    segments = (tmp_path / "w.sqlite.journal").glob("*.cwj")
    journal = [e for p in segments for e in decode(p.read_bytes())]
    assert [e.id for e in journal] == [entry(1).id]
    blocker.rollback()
    blocker.close()
    ledger.flush()
    assert [e.id for e in ledger.entries()] == [entry(1).id] and ledger.pending == 0
    ledger.close()


def test_a_dropped_ledger_lets_go_of_its_journal_for_the_next_to_replay(tmp_path: Path) -> None:
    """A ledger garbage-collected with unflushed entries leaves its journal unlocked and on
    disk: another ledger on the same file replays it (the entries were acknowledged)."""
    import gc

    from costwise.ledger._entry import row_of

    path = tmp_path / "g.sqlite"
    ledger = Ledger(path, flush_interval=60)
    ledger._record_rows([row_of(entry(7))])
    del ledger
    gc.collect()
    assert [e.id for e in Ledger(path).entries()] == [entry(7).id]


def test_a_journal_frame_this_version_cannot_read_keeps_its_file(tmp_path: Path) -> None:
    """A frame with a valid CRC but rows of another shape (a newer version's) stops the
    replay: what came before is stored, and the file is kept, not deleted unread."""
    import marshal
    import struct
    import zlib

    from costwise.ledger._entry import row_of
    from costwise.ledger._journal import encode_rows

    journal_dir = tmp_path / "n.sqlite.journal"
    journal_dir.mkdir()
    newer = marshal.dumps([[*row_of(entry(2)), "a field this version lacks"]], 4)
    frame = struct.pack("<IIB", len(newer), zlib.crc32(newer), 1) + newer
    orphan = journal_dir / "999-dead-1.cwj"
    orphan.write_bytes(encode_rows([row_of(entry(1))]) + frame + encode_rows([row_of(entry(3))]))
    with pytest.warns(CostwiseWarning, match="cannot read"):
        ledger = Ledger(tmp_path / "n.sqlite")
    assert [e.id for e in ledger.entries()] == [entry(1).id]
    assert orphan.exists()
    ledger.close()


def test_a_row_the_store_refuses_does_not_block_the_others(tmp_path: Path) -> None:
    """A number too large for SQLite fails its own write, not every later batch: the other
    entries are stored and the refused one is set aside with a warning."""
    import dataclasses

    ledger = Ledger(tmp_path / "p.sqlite", flush_interval=60)
    ledger.record([dataclasses.replace(entry(0), prompt_tokens=2**64)])
    ledger.record([entry(i) for i in range(1, 4)])
    with pytest.warns(CostwiseWarning, match="refused 1 entries"):
        ledger.flush()
    assert ledger.pending == 0
    assert sorted(e.id for e in ledger.entries()) == sorted(entry(i).id for i in range(1, 4))
    (rejected,) = (tmp_path / "p.sqlite.journal").glob("rejected-*.json")
    assert json.loads(rejected.read_text())["row"][0] == entry(0).id
    ledger.record([entry(9)])
    ledger.close()
    assert entry(9).id in {e.id for e in Ledger(tmp_path / "p.sqlite").entries()}


class _DownStore(MemoryStore):
    """A real in-memory store behind a journal, that can be taken down (as a store behind a
    network is): what the ledger does when its store refuses writes."""

    def __init__(self, journal_dir: Path) -> None:
        super().__init__()
        self.journal_dir = journal_dir
        self.down = True

    @override
    def write(self, entries: Sequence[LedgerEntry]) -> None:
        if self.down:
            msg = "the store is down"
            raise LedgerError(msg)
        super().write(entries)


def test_a_store_that_cannot_take_a_replay_does_not_stop_the_ledger_starting(
    tmp_path: Path,
) -> None:
    """An orphan journal the store refuses is kept, with a warning; the ledger starts, and
    the flusher's periodic look stores it once the store is back."""
    from costwise.ledger._entry import row_of
    from costwise.ledger._journal import encode_rows

    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    orphan = journal_dir / "999-dead-1.cwj"
    orphan.write_bytes(encode_rows([row_of(entry(1))]))
    store = _DownStore(journal_dir)
    with pytest.warns(CostwiseWarning, match="kept and tried again"):
        ledger = Ledger(store)
    assert orphan.exists() and len(store) == 0
    store.down = False
    ledger._recover()  # what the flusher does every half minute
    assert [e.id for e in ledger.entries()] == [entry(1).id] and not orphan.exists()
    ledger.close()


def test_an_entry_in_the_last_millisecond_of_a_day_counts_in_that_day(tmp_path: Path) -> None:
    """SQLite rounds a time to the millisecond before taking its day; the ledger takes the
    day from the time rounded down, as every other store does: by day, by range and for
    budgets, an entry just before midnight is in its own day, once. A ledger whose daily
    totals were kept the earlier way is recounted when opened."""
    import dataclasses

    midnight = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    late = [dataclasses.replace(entry(1, ts=midnight - 0.0004), cost_nanos=1000)]
    early = [dataclasses.replace(entry(2, ts=midnight + 10), cost_nanos=10)]
    path = tmp_path / "m.sqlite"
    stores: list[Any] = [MemoryStore(), SQLiteStore(path)]
    for store in stores:
        store.write([*late, *early])
    for store in stores:
        by_day = [(r.key, r.calls) for r in store.aggregate(by="day")]
        assert by_day == [("2025-12-31", 1), ("2026-01-01", 1)], store
        day = store.aggregate(since=midnight, until=midnight + 86400)
        assert [r.cost_nanos for r in day] == [10], store
        spanning = store.aggregate(since=midnight - 3600, until=midnight + 86400)
        assert sum(r.cost_nanos for r in spanning) == 1010, store
        assert store.spent_nanos(since=midnight) == 10, store

    # the totals an earlier version kept: the late entry under the next day
    from costwise.ledger import _sqlite

    old_day = "strftime('%Y-%m-%d', ts, 'unixepoch')"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DROP TRIGGER ledger_daily_insert")
        conn.execute(
            "CREATE TRIGGER ledger_daily_insert AFTER INSERT ON ledger BEGIN "
            "SELECT strftime('%Y-%m-%d', NEW.ts, 'unixepoch'); END"
        )
        conn.execute("DELETE FROM ledger_daily")
        conn.execute(
            _sqlite._DAILY_BACKFILL.replace("date(CAST(ts AS INTEGER), 'unixepoch')", old_day)
        )
    stale = conn.execute("SELECT day, calls FROM ledger_daily ORDER BY day").fetchall()
    conn.close()
    assert stale == [("2026-01-01", 2)]  # what the earlier version had
    reopened = SQLiteStore(path)
    assert [(r.key, r.calls) for r in reopened.aggregate(by="day")] == [
        ("2025-12-31", 1),
        ("2026-01-01", 1),
    ]
    assert reopened.spent_nanos(since=midnight) == 10


def test_report_money_is_plain_decimal_and_unknown_costs_leave_savings_unknown(
    tmp_path: Path,
) -> None:
    """$10 is ``10`` in dicts and the CLI (not ``1E+1``); a group with a call of unknown
    cost has unknown savings, not the whole baseline saved."""
    import dataclasses

    from costwise.ledger._html import render_html

    store = MemoryStore()
    store.write([dataclasses.replace(entry(1), cost_nanos=10 * 10**9, baseline_nanos=10**11)])
    (row,) = Ledger(store).report().to_dicts()
    assert str(row["cost_usd"]) == "10" and str(row["baseline_usd"]) == "100"
    assert str(row["saved_usd"]) == "90" and row["saved_pct"] == 90.0

    unknown = MemoryStore()
    unknown.write([dataclasses.replace(entry(2), cost_nanos=None, baseline_nanos=5 * 10**9)])
    report = Ledger(unknown).report()
    (row,) = report.to_dicts()
    assert row["saved_usd"] is None and row["saved_pct"] is None
    text = str(report)
    assert "$0.0000*" in text and "100.0%" not in text and "?" in text
    page = render_html(unknown)
    assert "$0.00*" in page and "100.0%" not in page


def test_a_time_is_never_a_bool_or_a_non_finite_number() -> None:
    """``True`` or NaN as a report bound is a mistake, said as such, in every store."""
    from costwise.ledger._ledger import to_timestamp

    with pytest.raises(TypeError, match="not a date or time"):
        to_timestamp(True)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            Ledger(MemoryStore()).report(since=bad)
    assert to_timestamp(1767225600) == 1767225600.0
