"""Unique ids for calls and ledger entries, cheap enough for the hot path.

``os.urandom`` is a system call (several µs in sandboxes); an id is instead a random
per-process prefix plus a counter: unique across threads, processes and hosts without
coordination, and renewed in a forked child so parent and child never collide.
"""

from __future__ import annotations

import itertools
import os
import threading

__all__ = ["new_id"]

_lock = threading.Lock()
_pid = -1
_prefix = ""
_counter: itertools.count[int] = itertools.count()


def _reseed() -> None:
    global _pid, _prefix, _counter
    with _lock:
        if _pid != os.getpid():
            _prefix = os.urandom(8).hex()
            _counter = itertools.count()
            _pid = os.getpid()


def new_id() -> str:
    """A 32-hex-digit id, unique without coordination."""
    if _pid != os.getpid():
        _reseed()
    return f"{_prefix}{next(_counter):016x}"  # next() on a count is atomic under the GIL
