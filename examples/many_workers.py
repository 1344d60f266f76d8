"""Many worker processes, one ledger and one cache: the setup for a real service.

Four worker processes answer support questions at once. They share one response cache (a
question one worker paid for is answered at $0 for the others) and write one ledger, read
at the end as one report. With Redis (``REDIS_URL``, or a ``redis-server`` on this machine,
started on a free loopback port) the same code serves workers on many hosts; without it,
the one-host stores are used: a diskcache directory and a SQLite ledger file.

Runs against any OpenAI-compatible server (OPENAI_BASE_URL / OPENAI_API_KEY); without them
it starts costwise's fake provider on a loopback port, so it works offline.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import ExitStack
from typing import Any

from costwise import CostwiseClient as OpenAI
from costwise.testing import FakeProvider, serve

QUESTIONS = [
    "How do I reset my card PIN?",
    "Why was my transfer declined?",
    "How long does a refund take?",
    "Can I change the currency of my account?",
    "Where do I see my card's limits?",
]


def stores(redis_url: str | None, workdir: str, prefix: str) -> tuple[Any, Any]:
    """The shared ledger store and cache store, for one host or for many."""
    if redis_url is not None:
        from costwise.cache import RedisCacheStore
        from costwise.ledger import RedisStore

        # A service keeps the defaults for `journal` and `spool` (a per-host data directory
        # that outlives a worker); this demo keeps them in its temporary directory.
        ledger = RedisStore(
            redis_url,
            prefix=f"{prefix}:{{ledger}}",
            journal=os.path.join(workdir, "ledger-journal"),
            spool=os.path.join(workdir, "ledger-spool.sqlite"),
        )
        return ledger, RedisCacheStore(redis_url, prefix=f"{prefix}:cache:")
    from costwise.cache import DiskCacheStore

    return os.path.join(workdir, "ledger.sqlite"), DiskCacheStore(os.path.join(workdir, "cache"))


def worker(index: int, redis_url: str | None, workdir: str, prefix: str) -> None:
    from costwise.strategies import ResponseCache

    ledger, cache = stores(redis_url, workdir, prefix)
    # Closing the client sends its pending ledger entries; the cache sends queued writes.
    with OpenAI(ledger=ledger, strategies=[ResponseCache(cache)]) as client:
        for round_ in range(3):
            for i, question in enumerate(QUESTIONS):
                if (i + index + round_) % 2:  # each worker asks its own mix
                    continue
                client.chat.completions.create(
                    model="gpt-4o",
                    messages=[{"role": "user", "content": question}],
                    temperature=0,
                    feature="support-bot",
                )
            time.sleep(0.1)  # let the other workers' answers reach the shared cache
    cache.close()


def local_redis(stack: ExitStack) -> str | None:
    """A throwaway redis-server on a free loopback port, if one is installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    stack.callback(proc.wait, 10)
    stack.callback(proc.terminate)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    return None


def main() -> None:
    with ExitStack() as stack:
        if "OPENAI_BASE_URL" not in os.environ:
            server = stack.enter_context(serve(FakeProvider()))
            os.environ["OPENAI_BASE_URL"] = server.base_url
            os.environ.setdefault("OPENAI_API_KEY", "offline-demo")
        redis_url = os.environ.get("REDIS_URL") or local_redis(stack)
        workdir = stack.enter_context(tempfile.TemporaryDirectory())
        prefix = f"costwise-example:{os.getpid()}"  # this run's keys, if REDIS_URL is shared
        print("shared stores:", "Redis" if redis_url else "one host (SQLite + diskcache)")
        spawn = multiprocessing.get_context("spawn")
        workers = [
            spawn.Process(target=worker, args=(i, redis_url, workdir, prefix)) for i in range(4)
        ]
        for p in workers:
            p.start()
        for p in workers:
            p.join(120)
            if p.exitcode != 0:
                raise SystemExit(f"a worker failed (exit code {p.exitcode})")
        ledger, _cache = stores(redis_url, workdir, prefix)
        with OpenAI(ledger=ledger) as reader:
            report = reader.ledger.report()
            print(report)
            calls = report.row("support-bot").calls
            print(f"{calls} calls from 4 processes, {len(QUESTIONS)} distinct questions")


if __name__ == "__main__":
    main()
