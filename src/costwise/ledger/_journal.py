"""A local append-only journal that makes write-behind ledger writes survive a killed process.

Writing a SQLite transaction per call costs 25 µs at the median and milliseconds at the tail
(WAL checkpoints fsync). The ledger instead appends each finished call to this journal with
one ``write(2)`` (a few µs; no fsync: the bytes live in the OS page cache, so they survive the
process being killed, though not a power cut) and a background thread moves batches into the
store. A journal belongs to one live process, which holds an exclusive ``flock`` on it; any
journal whose lock can be taken belongs to a dead process and is replayed into the store on
the next start. Stores ignore ids they already hold, so a replay never double counts.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ._entry import FIELDS, LedgerEntry

__all__ = ["Journal", "read_orphans"]

_SUFFIX = ".jsonl"


def encode(entries: Sequence[LedgerEntry]) -> bytes:
    lines = []
    for e in entries:
        row: list[Any] = [getattr(e, f) for f in FIELDS]
        row[-1] = dict(e.detail) if e.detail else None
        lines.append(json.dumps(row, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def decode(data: bytes) -> list[LedgerEntry]:
    out = []
    for line in data.splitlines():
        try:
            row = json.loads(line)
            values = dict(zip(FIELDS, row, strict=True))
        except (ValueError, TypeError):
            continue  # a line torn by a kill mid-write: it was never acknowledged to anyone
        values["detail"] = values["detail"] or {}
        out.append(LedgerEntry(**values))
    return out


class Journal:
    """This process's journal file (reopened after a fork)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pid = -1
        self.fd = -1
        self.path = directory
        self._seq = 0

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pid = os.getpid()
        self.path = self.directory / f"{self.pid}-{os.urandom(4).hex()}{_SUFFIX}"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def append(self, entries: Sequence[LedgerEntry]) -> None:
        if self.pid != os.getpid():
            self._open()  # first use, or a forked child: never share the parent's file
        data = encode(entries)
        while data:
            data = data[os.write(self.fd, data) :]

    def rotate(self) -> tuple[Path, int] | None:
        """Start a new file; return the old one (still locked) for the flusher to retire."""
        if self.pid != os.getpid():
            return None
        self._seq += 1
        old = (self.path.with_name(f"{self.path.stem}.{self._seq}.flushing"), self.fd)
        os.rename(self.path, old[0])
        self._open()
        return old

    @staticmethod
    def retire(path: Path, fd: int) -> None:
        """Delete a journal file whose entries are safely in the store."""
        path.unlink(missing_ok=True)
        os.close(fd)

    def close(self) -> None:
        if self.pid == os.getpid() and self.fd >= 0:
            self.retire(self.path, self.fd)
            self.fd, self.pid = -1, -1


def read_orphans(directory: Path) -> Iterator[tuple[Path, int, list[LedgerEntry]]]:
    """Journals left by dead processes: (path, locked fd, entries). Retire each after storing."""
    if not directory.is_dir():
        return
    for path in sorted(directory.iterdir()):
        if path.suffix not in (_SUFFIX, ".flushing"):
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # a live process owns it
            continue
        with open(fd, "rb", closefd=False) as fh:
            entries = decode(fh.read())
        yield path, fd, entries
