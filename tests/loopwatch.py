"""Checks that an event loop keeps running while a coroutine waits on slow I/O."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

TICK = 0.01


class Watch:
    """How often the loop got to run a 10 ms ticker, and over how long."""

    def __init__(self) -> None:
        self.ticks = 0
        self.elapsed = 0.0
        self.longest_stall = 0.0
        """The longest time the loop went without running the ticker, in seconds."""

    def loop_kept_running(self, share: float = 0.3) -> bool:
        """Whether the ticker ran at least `share` of the times it could have.

        A loop blocked by synchronous I/O ticks about zero times; `share` leaves room for a
        busy machine.
        """
        return self.ticks >= self.elapsed / TICK * share


@asynccontextmanager
async def watch_loop() -> AsyncIterator[Watch]:
    """Run a ticker task beside the block; the `Watch` says whether the loop stalled."""
    watch = Watch()

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await anyio.sleep(TICK)
            now = time.perf_counter()
            watch.longest_stall = max(watch.longest_stall, now - last)
            last = now
            watch.ticks += 1

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ticker)
        start = time.perf_counter()
        yield watch
        watch.elapsed = time.perf_counter() - start
        tasks.cancel_scope.cancel()
