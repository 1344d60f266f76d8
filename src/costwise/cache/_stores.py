"""Where cached responses live: the `CacheStore` protocol, in memory and on disk.

Values are opaque bytes (the completion's JSON); keys are the hex digests of
`costwise.cache.request_key`. Stores know nothing about OpenAI, so a store is easy to write
for any key-value engine.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from typing_extensions import override

from ._write_behind import Item

__all__ = ["CacheStore", "DiskCacheStore", "MemoryCacheStore", "default_cache_dir"]

logger = logging.getLogger("costwise")


@runtime_checkable
class CacheStore(Protocol):
    """A key-value store for cached responses, with expiry and a size limit.

    Implement it to keep the cache in another engine. Every method must be safe to call
    from several threads; `get` is on the hot path of every hit, so keep it to one lookup.
    A store may raise on failure: `ResponseCache` turns any exception into a miss and a
    `CostwiseWarning`. A store whose calls wait on the network sets a class attribute
    ``blocking = True``; the async client then calls it from a worker thread. One that
    queues its writes and returns from `set` at once may say so with ``blocking_writes =
    False`` (its lookups still count as blocking).
    """

    def get(self, key: str) -> bytes | None:
        """The value stored under `key`, or ``None`` if absent or expired."""
        ...

    def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store `value` under `key`, for `ttl` seconds (``None``: the store's default)."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key` if present."""
        ...

    def clear(self) -> None:
        """Remove every entry."""
        ...

    def size(self) -> int:
        """The number of entries (expired ones not yet evicted may be counted)."""
        ...

    def close(self) -> None:
        """Release connections and file handles."""
        ...


class MemoryCacheStore:
    """An in-process LRU cache: a bounded dict with expiry.

    Use it in tests, notebooks and single-process services where losing the cache on
    restart is fine. It is the fastest store (a hit is one dict lookup). Entries past
    `max_entries` or `max_bytes` evict the least recently used ones.

    Args:
        max_entries: the most entries kept.
        max_bytes: the most value bytes kept.
        ttl: default lifetime of an entry in seconds (``None``: until evicted).
        clock: the time source (inject one in tests instead of sleeping).

    Example:
        >>> ResponseCache(MemoryCacheStore(max_entries=1_000))
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 256 * 2**20,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            msg = "MemoryCacheStore: max_entries and max_bytes must be positive"
            raise ValueError(msg)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._clock = clock
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            value, expires = item
            if expires is not None and self._clock() >= expires:
                self._drop(key)
                return None
            self._data.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        ttl = self.ttl if ttl is None else ttl
        expires = None if ttl is None else self._clock() + ttl
        with self._lock:
            if key in self._data:
                self._drop(key)
            if len(value) > self.max_bytes:
                return
            self._data[key] = (value, expires)
            self._bytes += len(value)
            while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._data)))

    def _drop(self, key: str) -> None:
        value, _ = self._data.pop(key)
        self._bytes -= len(value)

    def delete(self, key: str) -> None:
        with self._lock:
            if key in self._data:
                self._drop(key)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def size(self) -> int:
        return len(self._data)

    def close(self) -> None:
        self.clear()

    @override
    def __repr__(self) -> str:
        return f"MemoryCacheStore({len(self._data)} entries, {self._bytes} bytes)"


_CULL_EVERY = 32


def default_cache_dir() -> Path:
    """The default directory of the disk cache: ``$COSTWISE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/costwise/responses`` (``~/.cache/costwise/responses``)."""
    env = os.environ.get("COSTWISE_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "costwise" / "responses"


def _disk_writer(cache: Any) -> Callable[[Sequence[Item]], None]:
    """The write queue's writer for a diskcache: one transaction per batch, then the size
    limit every `_CULL_EVERY` entries. It holds the cache, not the store, so a store nobody
    references is collected (and its queue written) as soon as it is dropped."""
    written = 0

    def write(batch: Sequence[Item]) -> None:
        nonlocal written  # one batch at a time: the queue writes under its lock
        now = time.time()
        with cache.transact():
            for key, value, expires in batch:
                cache.set(key, value, expire=None if expires is None else expires - now)
        before, written = written, written + len(batch)
        if before // _CULL_EVERY != written // _CULL_EVERY:
            try:
                cache.cull()
            except Exception as exc:
                logger.warning("costwise: response cache cull failed (%s)", exc)

    return write


class DiskCacheStore:
    """A cache in a local directory (SQLite plus files, via ``diskcache``): the default.

    Use it for one host: it survives restarts and is safe for many threads and processes
    at once (SQLite WAL and atomic writes), e.g. several gunicorn workers sharing one
    directory. For many hosts, use `RedisCacheStore`. When the directory grows past
    `size_limit` bytes, entries are culled by `eviction_policy` (checked every 32 writes
    of this instance, so it may overshoot by that many entries) and expired ones first.

    Writes are queued and stored by a background thread every `flush_interval` seconds, one
    transaction per batch, so a miss does not wait for the disk. This process reads its
    queued entries at once; other processes see them within `flush_interval`; `close`,
    `flush` and interpreter exit write the queue. A process killed in between loses those
    few entries (later requests are misses), never a stored one.

    Args:
        directory: the cache directory (created if missing); default `default_cache_dir()`.
        size_limit: the most bytes the cache may hold before eviction (default 1 GiB).
        ttl: default lifetime of an entry in seconds (``None``: until evicted).
        eviction_policy: a diskcache policy. The default ``"least-recently-stored"``
            keeps reads read-only (fast, no write lock); ``"least-recently-used"`` evicts
            better for skewed traffic but turns every hit into a write.
        timeout: seconds to wait for SQLite's lock before failing (the failure is a miss).
        flush_interval: seconds between background writes; ``0`` writes each entry in the
            caller's thread before `set` returns.

    Example:
        >>> ResponseCache(DiskCacheStore("/var/cache/myapp/llm", size_limit=2**30))
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        size_limit: int = 2**30,
        ttl: float | None = None,
        eviction_policy: str = "least-recently-stored",
        timeout: float = 1.0,
        flush_interval: float = 0.05,
    ) -> None:
        import diskcache

        from ._write_behind import WriteBehind

        if flush_interval < 0:
            msg = f"DiskCacheStore: flush_interval must be >= 0, got {flush_interval!r}"
            raise ValueError(msg)

        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.ttl = ttl
        # cull_limit=0: diskcache would otherwise check the size inside every write's
        # transaction; culling every `_CULL_EVERY` writes keeps writes ~30% cheaper and
        # overshoots the limit by at most that many entries.
        self._cache: Any = diskcache.Cache(
            str(self.directory),
            size_limit=size_limit,
            eviction_policy=eviction_policy,
            timeout=timeout,
            cull_limit=0,
        )
        self._get = self._cache.get
        self._writes = itertools.count(1)
        self._queue = (
            WriteBehind(_disk_writer(self._cache), interval=flush_interval)
            if flush_interval
            else None
        )
        if self._queue is not None:  # at garbage collection or exit: store what is queued
            self._finalizer = weakref.finalize(self, self._queue.close)

    def get(self, key: str) -> bytes | None:
        if self._queue is not None and self._queue.items:
            queued, value = self._queue.get(key)
            if queued:
                return value
        value = self._get(key)
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        ttl = self.ttl if ttl is None else ttl
        if self._queue is not None:
            self._queue.put(key, value, ttl)
            return
        self._cache.set(key, value, expire=ttl)
        if next(self._writes) % _CULL_EVERY == 0:
            self._cache.cull()

    def flush(self) -> None:
        """Store the queued writes now (other processes see them from here on)."""
        if self._queue is not None:
            self._queue.flush()

    def delete(self, key: str) -> None:
        if self._queue is not None:
            self._queue.discard(key)
        self._cache.delete(key)

    def clear(self) -> None:
        if self._queue is not None:
            self._queue.discard(None)
        self._cache.clear()

    def size(self) -> int:
        self.flush()
        return len(self._cache)

    def volume(self) -> int:
        """Bytes used on disk (what `size_limit` bounds)."""
        self.flush()
        return int(self._cache.volume())

    def close(self) -> None:
        if self._queue is not None:
            self._finalizer()  # writes the queue, once
        self._cache.close()

    @override
    def __repr__(self) -> str:
        return f"DiskCacheStore({str(self.directory)!r})"
