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
_prefix = ""  # drawn on first use, not at import; cleared in a forked child
_counter: itertools.count[int] = itertools.count()


def _seed() -> str:
    global _prefix, _counter
    with _lock:
        if not _prefix:
            _counter = itertools.count()
            _prefix = os.urandom(8).hex()
        return _prefix


def _forget_in_child() -> None:
    global _prefix, _lock
    _lock = threading.Lock()  # another thread may have held it at fork time
    _prefix = ""


os.register_at_fork(after_in_child=_forget_in_child)


def new_id() -> str:
    """A 32-hex-digit id, unique without coordination."""
    prefix = _prefix or _seed()
    return f"{prefix}{next(_counter):016x}"  # next() on a count is atomic under the GIL
