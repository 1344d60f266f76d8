"""RedisStore against a real redis-server: atomic, idempotent, totals, and outage spooling."""

from __future__ import annotations

import calendar
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from costwise import CostwiseWarning
from costwise.cli import main
from costwise.ledger import Ledger, LedgerEntry, LedgerStore, MemoryStore, aggregate_entries
from costwise.ledger._journal import decode
from costwise.ledger._redis import RedisStore
from costwise.testing import FakeProvider, fake_async_client, fake_client
from redisserver import redis_url, start_redis

__all__ = ["redis_url"]  # the fixture, re-exported so pytest finds it here

DAY0 = float(calendar.timegm((2026, 11, 20, 0, 0, 0)))


def _prefix() -> str:
    return f"test:{{{os.urandom(4).hex()}}}"


def make_entries(n: int, *, seed: int = 0, start: float = DAY0) -> list[LedgerEntry]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        final = rng.random() < 0.8
        out.append(
            LedgerEntry(
                id=f"{seed:04x}{i:028x}",
                call_id=f"c{i}",
                ts=start + rng.uniform(0, 3 * 86400),
                feature=rng.choice(["chat", "search", "tag=s"]),
                requested_model="gpt-4o",
                model=rng.choice(["gpt-4o", "gpt-4o-mini"]),
                kind=rng.choice(["upstream", "hit", "overhead"]),
                status=rng.choice(["ok", "ok", "RateLimitError"]),
                strategy=rng.choice([None, "cache", "router+cascade"]),
                prompt_tokens=rng.randint(0, 2000),
                completion_tokens=rng.randint(0, 500),
                cached_tokens=rng.randint(0, 100),
                reasoning_tokens=rng.randint(0, 50),
                cost_nanos=rng.choice([None, rng.randint(0, 10**7)]),
                baseline_nanos=rng.randint(0, 10**7) if final else 0,
                final=final,
                estimated=rng.random() < 0.1,
                tier=rng.choice([None, 0, 1]),
                detail={"similarity": 0.93} if rng.random() < 0.1 else {},
            )
        )
    return out


@pytest.fixture
def store(redis_url: str, tmp_path: Path) -> RedisStore:
    return RedisStore(redis_url, prefix=_prefix(), spool=tmp_path / "spool.sqlite")


def test_is_a_ledger_store(store: RedisStore) -> None:
    """RedisStore satisfies the LedgerStore protocol."""
    assert isinstance(store, LedgerStore)


def test_roundtrip_and_idempotent_writes(store: RedisStore) -> None:
    """Entries come back equal and ordered; writing them again stores nothing twice."""
    entries = make_entries(200)
    store.write(entries)
    store.write(entries[:50])
    got = list(store.entries())
    assert sorted(got, key=lambda e: e.id) == sorted(entries, key=lambda e: e.id)
    assert [e.ts for e in got] == sorted(e.ts for e in entries)


@pytest.mark.parametrize("by", ["feature", "model", "strategy", "day", "status"])
def test_totals_match_the_entries(store: RedisStore, by: str) -> None:
    """Aggregates from the running totals equal a Python aggregation of the raw entries."""
    entries = make_entries(300, seed=1)
    store.write(entries)
    store.write(entries[::3])  # retried batches must not move the totals
    assert store.aggregate(by=by) == aggregate_entries(entries, by)  # type: ignore[arg-type]
    day1 = DAY0 + 86400
    window = [e for e in entries if day1 <= e.ts < day1 + 86400]
    assert store.aggregate(by=by, since=day1, until=day1 + 86400) == aggregate_entries(window, by)  # type: ignore[arg-type]


def test_partial_day_ranges_and_spent(store: RedisStore) -> None:
    """Ranges that cut through a day and spent_nanos agree with the in-memory store."""
    entries = make_entries(300, seed=2)
    store.write(entries)
    memory = MemoryStore()
    memory.write(entries)
    since, until = DAY0 + 30_000, DAY0 + 200_000
    assert store.aggregate(since=since, until=until) == memory.aggregate(since=since, until=until)
    for feature in (None, "chat", "tag=s"):
        for t in (DAY0, since, DAY0 + 86400):
            assert store.spent_nanos(since=t, feature=feature) == memory.spent_nanos(
                since=t, feature=feature
            )


def test_concurrent_writers_count_once(store: RedisStore, redis_url: str, tmp_path: Path) -> None:
    """Several writers racing the same entries store each once (the script is atomic)."""
    entries = make_entries(120, seed=3)

    def writer(i: int) -> None:
        own = RedisStore(redis_url, prefix=store.prefix, spool=tmp_path / f"s{i}.sqlite")
        for k in range(0, len(entries), 10):
            own.write(entries[k : k + 10])

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.aggregate(by="feature") == aggregate_entries(entries, "feature")


def test_outage_spools_to_disk_and_flushes_once(tmp_path: Path) -> None:
    """While Redis is down entries go to the disk spool; when it returns they arrive once."""
    with start_redis() as server:
        spool = tmp_path / "spool.sqlite"
        store = RedisStore(server.url, prefix=_prefix(), spool=spool, socket_timeout=0.5)
        during, after = make_entries(40, seed=4), make_entries(10, seed=5)
        server.stop()
        with pytest.warns(CostwiseWarning, match="spooled"):
            store.write(during[:20])
        store.write(during[20:])  # one warning per outage
        assert store.spooled == 40
        # A second process on this host sees the same spool file (a crash-restart).
        assert RedisStore(server.url, prefix=store.prefix, spool=spool).spooled == 40
        server.start()
        store.write(after)
        assert store.spooled == 0
        assert store.aggregate(by="feature") == aggregate_entries([*during, *after], "feature")
        # A crash after Redis stored a batch but before the spool was cleared replays it:
        store._spool(during)
        assert store.flush_spool() == 40
        assert store.aggregate(by="feature") == aggregate_entries([*during, *after], "feature")
        store.close()


def test_without_spool_an_outage_is_a_ledger_error(tmp_path: Path) -> None:
    """spool=None makes an unreachable Redis raise LedgerError (the CLI's read-only mode)."""
    from costwise import LedgerError

    with start_redis() as server:
        store = RedisStore(server.url, prefix=_prefix(), spool=None, socket_timeout=0.5)
        server.stop()
        with pytest.raises(LedgerError, match="cannot write to the Redis ledger"):
            store.write(make_entries(1))
        with pytest.raises(LedgerError):
            store.ping()


def test_client_records_into_redis_and_cli_reads_it(
    store: RedisStore, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A client's calls land in Redis, and `costwise report --ledger redis://` reads them."""
    with fake_client(FakeProvider(), ledger=store) as client:
        for _ in range(3):
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], feature="faq"
            )
    assert store.aggregate()[0].calls == 3
    # The CLI uses the default prefix: write a copy there under a private db instead.
    url = redis_url.rsplit("/", 1)[0] + "/3"
    RedisStore(url, spool=None).write(list(store.entries()))
    assert main(["report", "--ledger", url, "--format", "csv", "--fields", "calls"]) == 0
    assert "faq,3" in capsys.readouterr().out


def test_prune_deletes_whole_days_with_their_totals(store: RedisStore) -> None:
    """Days before the cutoff go, entries and running totals; the days kept report exactly."""
    entries = make_entries(400, seed=5)
    store.write(entries)
    cutoff = DAY0 + 2 * 86400
    kept = [e for e in entries if e.ts >= cutoff]
    assert store.prune(cutoff, chunk=37) == len(entries) - len(kept)  # several chunks
    assert sorted(e.id for e in store.entries()) == sorted(e.id for e in kept)
    for by in ("feature", "day", "status"):
        assert store.aggregate(by=by) == aggregate_entries(kept, by)
    assert store.spent_nanos(since=DAY0) == sum(e.cost_nanos or 0 for e in kept)
    for day in ("2026-11-20", "2026-11-21"):  # no orphaned totals left behind
        assert list(store._redis.scan_iter(f"{store.prefix}:*{day}*")) == []
    assert list(store._redis.scan_iter(f"{store.prefix}:t:2026-11-22:*"))
    assert store.prune(cutoff) == 0
    with pytest.raises(ValueError, match="UTC midnight"):
        store.prune(cutoff + 1)


# -- the write-behind journal ------------------------------------------------------------------

HI: Any = [{"role": "user", "content": "hi"}]


def _journaled(store: RedisStore) -> list[LedgerEntry]:
    assert store.journal_dir is not None
    return [e for f in store.journal_dir.glob("*.cwj") for e in decode(f.read_bytes())]


def test_calls_are_journaled_locally_and_sent_to_redis_in_batches(
    redis_url: str, tmp_path: Path
) -> None:
    """By default a call waits for no Redis round trip: its entry is in the local journal
    when the call returns and reaches Redis with the next batch, once."""
    store = RedisStore(redis_url, prefix=_prefix(), spool=None, journal=tmp_path / "journal")
    ledger = Ledger(store, flush_interval=60)
    reader = RedisStore(redis_url, prefix=store.prefix, spool=None, journal=None)
    client = fake_client(FakeProvider(), ledger=ledger)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o", messages=HI, feature="faq")
    assert len(_journaled(store)) == 3
    assert list(reader.entries()) == []  # not sent yet: the batch waits for the flusher
    ledger.flush()
    assert [r.calls for r in reader.aggregate()] == [3]
    assert _journaled(store) == []  # sent: the journal segment is retired
    ledger.flush()
    assert [r.calls for r in reader.aggregate()] == [3]
    ledger.close()


def test_without_a_journal_every_call_writes_through(redis_url: str, tmp_path: Path) -> None:
    """``journal=None``: the entry is in Redis before the call returns."""
    store = RedisStore(redis_url, prefix=_prefix(), spool=None, journal=None)
    reader = RedisStore(redis_url, prefix=store.prefix, spool=None, journal=None)
    client = fake_client(FakeProvider(), ledger=store)
    client.chat.completions.create(model="gpt-4o", messages=HI, feature="faq")
    assert [r.calls for r in reader.aggregate()] == [1]
    assert not (tmp_path / "xdg-data").exists()  # no journal directory was made


def test_closing_the_client_sends_its_entries(redis_url: str, tmp_path: Path) -> None:
    """``with client:`` (and ``close()``) writes the client's pending entries to Redis."""
    store = RedisStore(redis_url, prefix=_prefix(), spool=None, journal=tmp_path / "j")
    reader = RedisStore(redis_url, prefix=store.prefix, spool=None, journal=None)
    with fake_client(FakeProvider(), ledger=Ledger(store, flush_interval=60)) as client:
        client.chat.completions.create(model="gpt-4o", messages=HI, feature="faq")
    assert [r.calls for r in reader.aggregate()] == [1]


@pytest.mark.anyio
async def test_closing_the_async_client_sends_its_entries(redis_url: str, tmp_path: Path) -> None:
    """The async twin: ``async with client:`` writes the pending entries too."""
    store = RedisStore(redis_url, prefix=_prefix(), spool=None, journal=tmp_path / "j")
    reader = RedisStore(redis_url, prefix=store.prefix, spool=None, journal=None)
    ledger = Ledger(store, flush_interval=60)
    async with fake_async_client(FakeProvider(), ledger=ledger) as client:
        await client.chat.completions.create(model="gpt-4o", messages=HI, feature="faq")
    assert [r.calls for r in reader.aggregate()] == [1]


def test_a_killed_workers_journal_is_replayed_into_redis_once(
    redis_url: str, tmp_path: Path
) -> None:
    """Calls returned to a worker that is then killed reach Redis when the next ledger on
    that host starts; starting again does not count them twice."""
    prefix, journal = _prefix(), tmp_path / "journal"
    script = textwrap.dedent(f"""
        import os, signal
        from costwise.ledger import Ledger
        from costwise.ledger._redis import RedisStore
        from costwise.testing import FakeProvider, fake_client
        store = RedisStore({redis_url!r}, prefix={prefix!r}, spool=None, journal={str(journal)!r})
        client = fake_client(FakeProvider(), ledger=Ledger(store, flush_interval=60))
        for i in range(4):
            client.chat.completions.create(model="gpt-4o-mini",
                messages=[{{"role": "user", "content": "hi"}}], feature="killed")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    reader = RedisStore(redis_url, prefix=prefix, spool=None, journal=None)
    assert list(reader.entries()) == []
    for _ in range(2):
        Ledger(RedisStore(redis_url, prefix=prefix, spool=None, journal=journal)).close()
        assert [(r.key, r.calls) for r in reader.aggregate()] == [("killed", 4)]
    assert not list(journal.glob("*.cwj"))


def test_default_local_paths_are_per_server_and_prefix(redis_url: str) -> None:
    """Default spool and journal paths are shared by the workers of one ledger, and never
    by another server, database or prefix (a replay must reach the Redis it was meant for)."""
    import redis

    a = RedisStore(redis_url, prefix="p:{x}")
    assert a.journal_dir == RedisStore(redis_url, prefix="p:{x}").journal_dir
    assert a.journal_dir is not None and a.spool_path is not None
    assert a.journal_dir.parent == a.spool_path.parent
    other_db = redis_url.rsplit("/", 1)[0] + "/5"
    client = redis.Redis.from_url(other_db)
    dirs = {
        a.journal_dir,
        RedisStore(redis_url, prefix="p:{y}").journal_dir,
        RedisStore(redis_url, prefix="p-{x}").journal_dir,  # the same once made file-safe
        RedisStore(other_db, prefix="p:{x}").journal_dir,
        RedisStore(client, prefix="p:{x}").journal_dir,
    }
    assert len(dirs) == 5
    assert RedisStore(redis.Redis.from_url(other_db), prefix="p:{x}").journal_dir in dirs
    assert RedisStore(redis_url, journal=None).journal_dir is None
    secret = RedisStore("redis://user:s3cret@127.0.0.1:1/0", socket_timeout=0.1)
    assert secret.journal_dir is not None and secret.spool_path is not None
    assert "s3cret" not in str(secret.journal_dir) + str(secret.spool_path)
    assert secret.journal_dir == RedisStore("redis://127.0.0.1:1/0").journal_dir
