"""The ledger: every upstream attempt and every cache hit, priced, tagged and totalled.

Stores: `SQLiteStore` (the default, one host), `MemoryStore` (tests), `RedisStore` (many
hosts; needs ``costwise[redis]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._entry import LedgerEntry
from ._ledger import Ledger, default_ledger_path, to_timestamp
from ._report import Report
from ._sqlite import SQLiteStore
from ._store import LedgerStore, MemoryStore, ReportRow, aggregate_entries

if TYPE_CHECKING:
    from ._redis import RedisStore

__all__ = [
    "Ledger",
    "LedgerEntry",
    "LedgerStore",
    "MemoryStore",
    "RedisStore",
    "Report",
    "ReportRow",
    "SQLiteStore",
    "aggregate_entries",
    "default_ledger_path",
    "to_timestamp",
]


def __getattr__(name: str) -> Any:
    # RedisStore imports redis-py, which plain users never need: load it on first use.
    if name == "RedisStore":
        from ._redis import RedisStore

        return RedisStore
    raise AttributeError(name)
