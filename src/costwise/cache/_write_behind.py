"""Writes of a cache store, queued in memory and stored in batches by a background thread.

Storing one entry in diskcache is one SQLite transaction, about 100 µs on the caller's
thread, most of it the commit's ``write(2)`` to the WAL; storing one in Redis is a network
round trip and a script (~300 µs on loopback here, in place). A miss already waits for the
upstream answer; it should not also wait for the store. Queued entries are visible to this
process at once (the store's `get` looks here first); a thread writes them every
``interval`` seconds, one batch at a time (one transaction, or one pipelined round trip),
with the I/O outside the GIL. Other processes see an entry after at most ``interval``
seconds, and a process killed in between loses at most those entries: a cache can afford
that (the next request is a miss), the ledger cannot, which is why the ledger journals
instead.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence

Item = tuple[str, bytes, float | None]
"""A queued write: key, value, absolute expiry time (``None``: the store's own)."""

__all__ = ["Item", "WriteBehind"]

logger = logging.getLogger("costwise")

_BATCH = 256  # entries that wake the writer before its interval is up
_start_lock = threading.Lock()
_queues: weakref.WeakSet[WriteBehind] = weakref.WeakSet()
# Set on writer threads: a close() the garbage collector runs there must not wait for a
# batch (its own writer's, or one a writer waiting on this thread would never finish).
_writer_thread = threading.local()


def _forget_in_child() -> None:
    global _start_lock
    _start_lock = threading.Lock()  # another thread may have held it at fork time
    for queue in list(_queues):
        queue._forget()


os.register_at_fork(after_in_child=_forget_in_child)


class WriteBehind:
    """The write queue of one store. Thread-safe; a forked child starts with an empty queue
    of its own (the parent writes what it had queued).

    `write` stores one batch (the store's own transaction or pipeline) and may raise: a
    failed batch is logged and dropped, which costs later misses, nothing more.
    """

    def __init__(self, write: Callable[[Sequence[Item]], None], *, interval: float) -> None:
        self.write = write
        self.interval = interval
        # key -> (value, absolute expiry time or None); read without a lock (a dict get is
        # atomic), changed under `lock`.
        self.items: dict[str, tuple[bytes, float | None]] = {}
        self._pid = -1
        self._closed = False
        self._reset()
        _queues.add(self)

    def _reset(self) -> None:
        # Fresh locks and event: after a fork another thread may have held the parent's.
        self.lock = threading.Lock()
        self.writing = threading.Lock()  # one batch at a time; delete/clear wait for it
        self.wake = threading.Event()

    def _forget(self) -> None:
        """In a forked child: drop the parent's queue (the parent writes it) and its writer.
        Left in place, the child would serve entries the parent then deleted, and store
        them again on its first write."""
        self.items = {}
        self._reset()
        self._pid = -1

    def _ensure_writer(self) -> None:
        with _start_lock:
            if self._pid == os.getpid():
                return
            self._reset()
            self._pid = os.getpid()
            thread = threading.Thread(
                target=_run, args=(self,), daemon=True, name="costwise-cache-writer"
            )
            thread.start()

    def put(self, key: str, value: bytes, ttl: float | None) -> None:
        """Queue `value` under `key`, expiring `ttl` seconds from now."""
        expires = None if ttl is None else time.time() + ttl
        if self._closed:  # no writer any more: store it now rather than queue it forever
            self._write([(key, value, expires)])
            return
        if self._pid != os.getpid():
            self._ensure_writer()
        with self.lock:
            self.items[key] = (value, expires)
            full = len(self.items) >= _BATCH
        if full:
            self.wake.set()

    def get(self, key: str) -> tuple[bool, bytes | None]:
        """``(queued, value)``: whether `key` is queued, and its value unless expired."""
        item = self.items.get(key)
        if item is None:
            return False, None
        value, expires = item
        return True, (value if expires is None or expires > time.time() else None)

    def discard(self, key: str | None) -> None:
        """Forget a queued entry (``None``: all of them), after any batch being written."""
        if self._pid != os.getpid():
            self._ensure_writer()
        with self.writing, self.lock:
            if key is None:
                self.items.clear()
            else:
                self.items.pop(key, None)

    def flush(self) -> None:
        """Write every queued entry now (one batch)."""
        if self._pid != os.getpid() and self.items:
            self._ensure_writer()
        with self.writing:
            with self.lock:
                batch = list(self.items.items())
            if not batch:
                return
            now = time.time()
            self._write(
                [
                    (key, value, expires)
                    for key, (value, expires) in batch
                    if expires is None or expires > now
                ]
            )
            with self.lock:  # entries stay readable here until they are stored
                for key, item in batch:
                    if self.items.get(key) is item:
                        del self.items[key]

    def _write(self, batch: list[Item]) -> None:
        if not batch:
            return
        try:
            self.write(batch)
        except Exception as exc:  # a cache write failure costs a future miss, nothing more
            logger.warning(
                "costwise: %d response cache entries not stored (%s: %s)",
                len(batch),
                type(exc).__name__,
                exc,
            )

    def close(self) -> None:
        """Write what is queued and stop the writer thread.

        Called by the store's finalizer, which the garbage collector may run on any thread,
        the writer included, even in the middle of a batch: there it only asks the writer to
        finish (a last flush after its loop), as waiting for its own batch would never end.
        """
        if self._closed:
            return
        if getattr(_writer_thread, "active", False):  # this queue's writer, or another's
            self._closed = True
            self.wake.set()
            return
        self.flush()
        self._closed = True
        self.wake.set()


def _run(queue: WriteBehind) -> None:
    _writer_thread.active = True
    pid = os.getpid()
    while not queue._closed and queue._pid == pid:
        queue.wake.wait(queue.interval)
        queue.wake.clear()
        try:
            queue.flush()
        except Exception:  # pragma: no cover - flush logs its own failures
            logger.exception("costwise: the response cache writer failed")
    if queue._pid == pid:
        queue.flush()  # what was queued before a close that ran on this thread
