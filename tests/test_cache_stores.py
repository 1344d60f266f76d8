"""Cache stores: memory, diskcache and a real Redis; limits, expiry, outages, concurrency."""

from __future__ import annotations

import multiprocessing
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from costwise import CostwiseWarning
from costwise.cache import CacheStore, DiskCacheStore, MemoryCacheStore, RedisCacheStore
from redisserver import redis_url, start_redis

__all__ = ["redis_url"]  # the fixture, re-exported so pytest finds it here

_prefixes = iter(range(10**6))


def _prefix() -> str:
    return f"test:{time.time_ns()}:{next(_prefixes)}:"


@pytest.fixture(params=["memory", "disk", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CacheStore]:
    """Each store kind, empty."""
    made: CacheStore
    if request.param == "memory":
        made = MemoryCacheStore()
    elif request.param == "disk":
        made = DiskCacheStore(tmp_path / "cache")
    else:
        made = RedisCacheStore(request.getfixturevalue("redis_url"), prefix=_prefix(), timeout=1.0)
    yield made
    made.clear()
    made.close()


def test_protocol(store: CacheStore) -> None:
    """Every store is a CacheStore: set, get, delete, clear, size."""
    assert isinstance(store, CacheStore)
    assert store.get("k") is None
    store.set("k", b'{"a":1}')
    store.set("j", b"two")
    assert store.get("k") == b'{"a":1}'
    assert store.size() == 2
    store.set("k", b"new")
    assert store.get("k") == b"new"
    assert store.size() == 2
    store.delete("k")
    assert store.get("k") is None
    store.delete("missing")
    store.clear()
    assert store.size() == 0
    assert store.get("j") is None


def test_threads_lose_nothing(store: CacheStore) -> None:
    """Eight threads writing and reading one store at once lose no entry."""
    errors: list[str] = []

    def work(t: int) -> None:
        for i in range(40):
            store.set(f"t{t}-{i}", f"value-{t}-{i}".encode())
            store.set(f"shared-{i}", b"shared")
            if store.get(f"t{t}-{i}") != f"value-{t}-{i}".encode():
                errors.append(f"t{t}-{i}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert store.size() == 8 * 40 + 40


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_ttl_and_lru() -> None:
    """The memory store expires entries and evicts the least recently used."""
    clock = Clock()
    store = MemoryCacheStore(max_entries=3, clock=clock)
    store.set("a", b"1", ttl=10)
    store.set("b", b"2")
    store.set("c", b"3")
    assert store.get("a") == b"1"  # a is now the most recently used
    store.set("d", b"4")  # evicts b
    assert store.get("b") is None
    assert {k for k in "acd" if store.get(k)} == set("acd")
    clock.now += 11
    assert store.get("a") is None


def test_memory_byte_limit() -> None:
    """The memory store stays under max_bytes, and skips a value larger than the limit."""
    store = MemoryCacheStore(max_bytes=100)
    for i in range(10):
        store.set(str(i), b"x" * 30)
    assert store.size() == 3
    store.set("huge", b"x" * 101)
    assert store.get("huge") is None


def test_memory_rejects_bad_limits() -> None:
    """Non-positive limits are configuration errors."""
    with pytest.raises(ValueError, match="positive"):
        MemoryCacheStore(max_entries=0)


def test_disk_size_limit_evicts(tmp_path: Path) -> None:
    """The disk store culls entries once its directory passes size_limit."""
    store = DiskCacheStore(tmp_path / "c", size_limit=200_000)
    for i in range(100):
        store.set(f"k{i}", bytes([i % 250]) * 10_000)
    assert store.size() < 100
    assert store.volume() < 400_000
    assert store.get("k99") == bytes([99]) * 10_000
    store.close()


def test_disk_ttl(tmp_path: Path) -> None:
    """A disk entry is gone after its TTL."""
    store = DiskCacheStore(tmp_path / "c")
    store.set("k", b"v", ttl=0.05)
    assert store.get("k") == b"v"
    time.sleep(0.1)
    assert store.get("k") is None
    store.close()


def test_disk_survives_reopen(tmp_path: Path) -> None:
    """Entries persist across store instances (a restart)."""
    DiskCacheStore(tmp_path / "c").set("k", b"v")
    assert DiskCacheStore(tmp_path / "c").get("k") == b"v"


@pytest.mark.parametrize("flush_interval", [0, 0.05], ids=["write-through", "queued"])
def test_redis_ttl_and_cap(redis_url: str, flush_interval: float) -> None:
    """Redis entries carry a TTL, and the store keeps at most max_entries, whether each
    write is sent at once or queued and sent in one pipelined batch."""
    import redis

    prefix = _prefix()
    store = RedisCacheStore(
        redis_url, prefix=prefix, max_entries=5, ttl=60, timeout=1.0, flush_interval=flush_interval
    )
    store.set("short", b"v", ttl=2.5)
    store.flush()
    raw = redis.Redis.from_url(redis_url)
    assert 0 < raw.pttl(prefix + "short") <= 2500
    for i in range(10):
        store.set(f"k{i}", b"v")
    assert store.size() == 5  # size() sends the queue first
    # The entries closest to expiry went first: the short one, then the oldest.
    assert store.get("short") is None
    assert [store.get(f"k{i}") is not None for i in range(10)] == [False] * 5 + [True] * 5
    store.clear()
    raw.close()


def test_redis_rejects_bad_config() -> None:
    """A Redis store needs a URL or a client, and positive limits."""
    with pytest.raises(ValueError, match="url or a client"):
        RedisCacheStore()
    with pytest.raises(ValueError, match="positive"):
        RedisCacheStore("redis://127.0.0.1:1/0", ttl=0)


def test_redis_outage_is_a_miss_with_one_warning() -> None:
    """A Redis outage: misses and skipped writes, one warning, recovery when it is back
    (writes sent at once: the queued writer's outage is the next test)."""
    clock = Clock()
    with start_redis() as server:
        store = RedisCacheStore(
            server.url, timeout=0.05, retry_after=5, clock=clock, flush_interval=0
        )
        store.set("k", b"v")
        assert store.get("k") == b"v"
        server.stop()
        with pytest.warns(CostwiseWarning, match="Redis cache unavailable"):
            assert store.get("k") is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no second warning during the same outage
            assert store.get("k") is None
            store.set("k", b"v2")
            clock.now += 10
            assert store.get("k") is None  # retried, still down: no new warning
        server.start()
        clock.now += 10
        assert store.get("k") is None  # back, and empty (no persistence)
        store.set("k", b"v3")
        assert store.get("k") == b"v3"
        assert store.ping()
        store.close()


def test_redis_queued_writes_are_read_back_at_once_and_seen_by_others_soon(
    redis_url: str,
) -> None:
    """A queued entry is read back by its own store at once and reaches another worker's
    store within the flush interval, without anyone flushing; delete and clear reach it."""
    prefix = _prefix()
    mine = RedisCacheStore(redis_url, prefix=prefix, timeout=1.0, flush_interval=0.05)
    theirs = RedisCacheStore(redis_url, prefix=prefix, timeout=1.0, flush_interval=0.05)
    assert not mine.blocking_writes and mine.blocking
    mine.set("k", b"v")
    assert mine.get("k") == b"v"
    deadline = time.monotonic() + 5
    while theirs.get("k") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert theirs.get("k") == b"v"
    mine.set("gone", b"x")
    mine.delete("gone")  # queued, then deleted: never stored
    mine.set("short", b"s", ttl=0.05)
    time.sleep(0.06)
    assert mine.get("short") is None  # expired while queued
    mine.flush()
    assert theirs.get("gone") is None and theirs.get("short") is None
    mine.set("x", b"1")
    mine.clear()
    mine.flush()
    assert theirs.get("x") is None and theirs.get("k") is None
    mine.close()
    theirs.close()


def test_redis_queued_writes_during_an_outage_are_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The writer meeting a Redis outage loses only the queued entries (later misses), logs
    them, marks Redis down so callers skip it, and leaves the one warning to a caller."""
    clock = Clock()
    with start_redis() as server:
        store = RedisCacheStore(
            server.url, timeout=0.05, retry_after=5, clock=clock, flush_interval=60
        )
        store.set("k", b"v")
        server.stop()
        with warnings.catch_warnings(), caplog.at_level("WARNING", logger="costwise"):
            warnings.simplefilter("error")  # no warning from the writer
            store.flush()
            assert store.get("k") is None  # down: skipped, no round trip, no warning
        assert "1 response cache entries not sent to Redis" in caplog.text
        clock.now += 10
        with pytest.warns(CostwiseWarning, match="Redis cache unavailable"):
            assert store.get("k") is None  # a caller meets the outage: the one warning
        server.start()
        clock.now += 10
        assert store.get("k") is None  # the queued entry was dropped, never stored late
        store.set("k", b"v2")
        store.flush()
        assert store.get("k") == b"v2"
        store.close()


def test_a_dropped_redis_store_sends_its_queue(redis_url: str) -> None:
    """A store nobody references any more sends what it queued when it is collected."""
    import gc

    prefix = _prefix()
    store = RedisCacheStore(redis_url, prefix=prefix, timeout=1.0, flush_interval=60)
    store.set("k", b"v")
    del store
    gc.collect()
    other = RedisCacheStore(redis_url, prefix=prefix, timeout=1.0, flush_interval=0)
    assert other.get("k") == b"v"
    other.clear()


def test_slow_redis_times_out() -> None:
    """A Redis that accepts but never answers costs one short timeout, then a miss."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        store = RedisCacheStore(f"redis://127.0.0.1:{port}/0", timeout=0.05)
        start = time.perf_counter()
        with pytest.warns(CostwiseWarning, match="TimeoutError|Timeout"):
            assert store.get("k") is None
        assert time.perf_counter() - start < 1.0
        assert store.get("k") is None  # within retry_after: not even tried
        assert not store.ping()
        store.close()


# -- several processes --------------------------------------------------------------------


def _hammer(kind: str, target: str, worker: int, n: int) -> list[str]:
    """Run in a child process: write own and shared keys, read them back."""
    store: Any = (
        DiskCacheStore(target)
        if kind == "disk"
        else RedisCacheStore(target.split("|")[0], prefix=target.split("|")[1], timeout=5.0)
    )
    bad = []
    for i in range(n):
        store.set(f"w{worker}-{i}", f"value-{worker}-{i}".encode())
        store.set(f"shared-{i}", f"shared-{i}".encode())
        if store.get(f"w{worker}-{i}") != f"value-{worker}-{i}".encode():
            bad.append(f"w{worker}-{i}")
    store.close()
    return bad


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    """Three spawned worker processes, shared by the multi-process tests."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=3, mp_context=ctx) as executor:
        yield executor


@pytest.mark.parametrize("kind", ["disk", "redis"])
def test_processes_lose_nothing(
    kind: str, pool: ProcessPoolExecutor, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Three processes hammering one diskcache directory or one Redis lose and corrupt nothing."""
    n = 60
    if kind == "disk":
        target = str(tmp_path / "shared")
        check: CacheStore = DiskCacheStore(target)
    else:
        url, prefix = request.getfixturevalue("redis_url"), _prefix()
        target = f"{url}|{prefix}"
        check = RedisCacheStore(url, prefix=prefix, timeout=5.0)
    futures = [pool.submit(_hammer, kind, target, w, n) for w in range(3)]
    assert [f.result(timeout=120) for f in futures] == [[], [], []]
    for w in range(3):
        for i in range(n):
            assert check.get(f"w{w}-{i}") == f"value-{w}-{i}".encode()
    for i in range(n):
        assert check.get(f"shared-{i}") == f"shared-{i}".encode()
    assert check.size() == 3 * n + n
    check.clear()
    check.close()


# -- the disk store's write-behind queue --------------------------------------------------


def _wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def test_disk_writes_are_read_at_once_here_and_soon_elsewhere(tmp_path: Path) -> None:
    """A queued entry is read back at once by its process, by others after the interval."""
    writer = DiskCacheStore(tmp_path / "c", flush_interval=0.05)
    other = DiskCacheStore(tmp_path / "c", flush_interval=0.05)  # another process's view
    writer.set("k", b"v")
    assert writer.get("k") == b"v"
    assert _wait_for(lambda: other.get("k") == b"v"), "the writer thread never stored it"
    writer.close()
    other.close()


def test_disk_synchronous_writes(tmp_path: Path) -> None:
    """flush_interval=0 stores each entry before set returns."""
    writer = DiskCacheStore(tmp_path / "c", flush_interval=0)
    other = DiskCacheStore(tmp_path / "c", flush_interval=0)
    writer.set("k", b"v")
    assert other.get("k") == b"v"
    with pytest.raises(ValueError, match="flush_interval"):
        DiskCacheStore(tmp_path / "d", flush_interval=-1)


def test_disk_delete_and_clear_reach_queued_entries(tmp_path: Path) -> None:
    """A deleted or cleared entry that was still queued never reaches the disk."""
    store = DiskCacheStore(tmp_path / "c", flush_interval=60)
    other = DiskCacheStore(tmp_path / "c", flush_interval=0)
    store.set("gone", b"1")
    store.set("kept", b"2")
    store.delete("gone")
    assert store.get("gone") is None and store.get("kept") == b"2"
    store.flush()
    assert other.get("gone") is None and other.get("kept") == b"2"
    store.set("queued", b"3")
    store.clear()
    store.flush()
    assert store.get("queued") is None and other.get("queued") is None and store.size() == 0
    store.close()


def test_disk_queued_entry_expires(tmp_path: Path) -> None:
    """A queued entry's TTL runs from set(), not from when it reaches the disk."""
    store = DiskCacheStore(tmp_path / "c", flush_interval=60)
    store.set("k", b"v", ttl=0.05)
    assert store.get("k") == b"v"
    time.sleep(0.1)
    assert store.get("k") is None
    store.flush()  # written after it expired: not stored at all
    assert DiskCacheStore(tmp_path / "c", flush_interval=0).get("k") is None
    store.close()


_EXIT_WITHOUT_CLOSE = """
import sys
from costwise.cache import DiskCacheStore
store = DiskCacheStore(sys.argv[1], flush_interval=60)
for i in range(50):
    store.set(f"k{i}", b"v%d" % i)
# no close(): a worker that simply exits
"""


def test_disk_queue_is_written_when_a_process_exits(tmp_path: Path) -> None:
    """A worker that exits without closing its store still stores what it queued."""
    import subprocess
    import sys

    target = tmp_path / "c"
    subprocess.run([sys.executable, "-c", _EXIT_WITHOUT_CLOSE, str(target)], check=True)
    check = DiskCacheStore(target, flush_interval=0)
    assert [check.get(f"k{i}") for i in range(50)] == [b"v%d" % i for i in range(50)]


def test_disk_queue_in_a_forked_child(tmp_path: Path) -> None:
    """A forked child gets its own writer; what it stores reaches the shared directory."""
    import os

    store = DiskCacheStore(tmp_path / "c", flush_interval=0.05)
    store.set("parent", b"p")
    pid = os.fork()
    if pid == 0:  # the child: write through its own queue, then exit like a worker
        try:
            store.set("child", b"c")
            store.close()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    other = DiskCacheStore(tmp_path / "c", flush_interval=0)
    assert other.get("child") == b"c"
    assert _wait_for(lambda: other.get("parent") == b"p")
    store.close()


def test_a_forked_child_does_not_inherit_the_parents_queue(tmp_path: Path) -> None:
    """The parent stores what it queued; the child starts empty, so it neither serves an
    entry the parent then deletes nor stores it again."""
    import os

    store = DiskCacheStore(tmp_path / "c", flush_interval=60)
    store.set("old", b"stale")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it sees queued, then write once and exit
        try:
            os.write(write, b"queued" if store._queue and store._queue.items else b"empty")
            store.set("child", b"c")
            store.close()
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert status == 0 and os.read(read, 16) == b"empty"
    os.close(read)
    store.delete("old")
    store.close()
    other = DiskCacheStore(tmp_path / "c", flush_interval=0)
    assert other.get("old") is None and other.get("child") == b"c"


def test_a_close_on_the_writer_thread_does_not_wait_for_its_own_batch() -> None:
    """The garbage collector may finalize a store on its writer's thread in the middle of a
    batch: the close there only asks the writer to finish, which then writes the rest."""
    import threading

    from costwise.cache._write_behind import WriteBehind

    written: list[str] = []
    closed_inside = threading.Event()

    def write(batch: Any) -> None:
        if not closed_inside.is_set():
            closed_inside.set()
            queue.close()  # what a finalizer run by the GC on this thread does
            queue.put("late", b"x", None)  # after the close: stored at once, not lost
        written.extend(key for key, _, _ in batch)

    queue = WriteBehind(write, interval=0.01)
    queue.put("first", b"v", None)
    assert _wait_for(lambda: "late" in written)
    done = threading.Event()

    def discard_all() -> None:
        queue.discard(None)
        done.set()

    threading.Thread(target=discard_all, daemon=True).start()
    assert done.wait(5), "the queue's lock was never released"
    assert sorted(written) == ["first", "late"]


def test_a_closed_queue_stores_writes_at_once() -> None:
    """After close there is no writer: a write is stored before `set` returns, not queued."""
    from costwise.cache._write_behind import WriteBehind

    written: list[str] = []
    queue = WriteBehind(lambda batch: written.extend(k for k, _, _ in batch), interval=60)
    queue.put("a", b"1", None)
    queue.close()
    queue.put("b", b"2", None)
    assert written == ["a", "b"] and not queue.items


def test_redis_delete_is_tried_during_the_back_off(redis_url: str) -> None:
    """An invalidation while lookups skip Redis still deletes (or raises): never a silent
    no-op that would serve the answer once the back-off ends."""
    clock = Clock()
    prefix = _prefix()
    store = RedisCacheStore(redis_url, prefix=prefix, timeout=1.0, clock=clock, flush_interval=0)
    store.set("k", b"v")
    store._health.failed(ConnectionError("a blip"), warn=False)  # as the writer records one
    assert store.get("k") is None  # backing off
    store.delete("k")
    clock.now += 10
    assert store.get("k") is None
    with start_redis() as server:
        gone = RedisCacheStore(server.url, timeout=0.05, flush_interval=0)
        server.stop()
        with pytest.raises(redis.ConnectionError):
            gone.delete("k")


def test_a_late_reply_does_not_end_a_newer_outage() -> None:
    """A reply to a request sent before the latest failure says nothing about Redis now."""
    from costwise.cache._redis import _Health

    clock = Clock()
    health = _Health(retry_after=5, clock=clock)
    sent_before = clock()
    clock.now += 1
    with pytest.warns(CostwiseWarning):
        health.failed(ConnectionError("down"))
    health.ok(sent_before)
    assert health.down and not health.available()
    clock.now += 1
    health.ok(clock())
    assert not health.down and health.available()


def test_redis_clear_deletes_only_its_own_entries(redis_url: str) -> None:
    """`clear` leaves other stores' keys alone, under a longer prefix or glob characters."""
    import redis as redis_mod

    base = _prefix()
    mine = RedisCacheStore(redis_url, prefix=base, timeout=1.0, flush_interval=0)
    tenant = RedisCacheStore(redis_url, prefix=base + "tenant-b:", timeout=1.0, flush_interval=0)
    globby = RedisCacheStore(redis_url, prefix=base + "app[12]:", timeout=1.0, flush_interval=0)
    raw = redis_mod.Redis.from_url(redis_url)
    raw.set(base + "app1:other", b"not ours")
    for store in (mine, tenant, globby):
        store.set("k", b"v")
    mine.clear()
    globby.clear()
    assert mine.get("k") is None and globby.get("k") is None and mine.size() == 0
    assert tenant.get("k") == b"v" and raw.get(base + "app1:other") == b"not ours"
    tenant.clear()
    raw.delete(base + "app1:other")
    raw.close()


def test_redis_batches_take_one_round_trip_and_survive_a_script_flush(redis_url: str) -> None:
    """A batch is EVALSHA calls in one pipeline, with no SCRIPT EXISTS round trip; after
    Redis forgets the script (a restart, SCRIPT FLUSH) the batch loads it and is stored."""
    import redis as redis_mod

    raw = redis_mod.Redis.from_url(redis_url)
    store = RedisCacheStore(redis_url, prefix=_prefix(), timeout=1.0, flush_interval=60)
    raw.config_resetstat()
    for i in range(5):
        store.set(f"a{i}", b"v")
    store.flush()
    raw.script_flush()
    for i in range(5):
        store.set(f"b{i}", b"v")
    store.flush()
    stats = raw.info("commandstats")
    assert "cmdstat_script|exists" not in stats
    assert stats["cmdstat_script|load"]["calls"] == 1
    assert store.size() == 10
    store.clear()
    raw.close()


def test_a_write_redis_refuses_leaves_lookups_alone(caplog: pytest.LogCaptureFixture) -> None:
    """Out of memory with `noeviction` (or a read-only replica) refuses writes, not reads:
    the writer logs it and stored answers keep being served, with no outage warning."""
    with start_redis() as server:
        store = RedisCacheStore(server.url, timeout=1.0, flush_interval=60)
        store.set("k", b"v")
        store.flush()
        admin = redis.Redis.from_url(server.url)
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        with warnings.catch_warnings(), caplog.at_level("WARNING", logger="costwise"):
            warnings.simplefilter("error")
            store.set("new", b"x")
            store.flush()
            assert [store.get("k") for _ in range(5)] == [b"v"] * 5
        assert "not sent to Redis (OutOfMemoryError" in caplog.text
        assert not store._health.down
        admin.config_set("maxmemory", 0)
        admin.close()
        store.close()
