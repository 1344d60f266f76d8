"""What a cache miss costs with the Redis response cache, against the disk cache and the bare SDK.

A miss looks the request up (one round trip to Redis), calls upstream, then stores the
answer. `RedisCacheStore` queues that store and sends it from a background thread, one
pipelined round trip per batch (``flush_interval``, default 50 ms); ``--write-through``
times the store with ``flush_interval=0`` instead, the caller waiting for the write.

All clients run the real openai SDK over the same in-process ``httpx2.MockTransport``, with
the SQLite ledger on, interleaved call by call in one process; every request is new (a
miss). The Redis is a ``redis-server`` this script starts on a free loopback port (the
Debian package; the script says so and stops when it is not installed). The last line is
a JSON object.

    python benchmarks/redis_miss.py [--calls 1500] [--write-through]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit, interleaved, local_redis, summary, table

from costwise.cache import DiskCacheStore, RedisCacheStore
from costwise.strategies import ResponseCache
from costwise.testing import FakeProvider, bare_client, fake_client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1500, help="timed calls per client")
    parser.add_argument("--write-through", action="store_true", help="flush_interval=0")
    args = parser.parse_args()
    server = local_redis("nothing to measure")
    if server is None:
        return 1
    counter = itertools.count()

    def question() -> Any:
        return [{"role": "user", "content": f"How do I reset my card PIN? (ticket {next(counter)})"}]

    try:
        with tempfile.TemporaryDirectory() as tmp:
            provider = FakeProvider()
            redis_store = RedisCacheStore(
                server.url, timeout=1.0, flush_interval=0 if args.write_through else 0.05
            )
            bare = bare_client(provider)
            red = fake_client(
                provider, strategies=[ResponseCache(redis_store)], ledger=f"{tmp}/a.sqlite"
            )
            disk = fake_client(
                provider,
                strategies=[ResponseCache(DiskCacheStore(f"{tmp}/cache"))],
                ledger=f"{tmp}/b.sqlite",
            )

            def ask(client: Any) -> Any:
                return client.chat.completions.create(
                    model="gpt-4o-mini", messages=question(), temperature=0
                )

            times = interleaved(
                {"bare": lambda: ask(bare), "redis": lambda: ask(red), "disk": lambda: ask(disk)},
                n=args.calls,
                warmup=100,
            )
            red.close()
            disk.close()
            redis_store.close()
    finally:
        server.stop()
    b, r, d = summary(times["bare"]), summary(times["redis"]), summary(times["disk"])
    mode = "write-through" if args.write_through else "queued writes"
    rows = [
        ["bare SDK (B)", f"{b['p50']:.1f}", f"{b['p99']:.1f}", "1.000"],
        [f"miss: redis ({mode})", f"{r['p50']:.1f}", f"{r['p99']:.1f}", f"{r['p50'] / b['p50']:.3f}"],
        ["miss: diskcache", f"{d['p50']:.1f}", f"{d['p99']:.1f}", f"{d['p50'] / b['p50']:.3f}"],
    ]
    print(f"cache misses: {args.calls} interleaved calls per client, SQLite ledger on")
    print(table(rows, ["variant", "p50 us", "p99 us", "p50 / B"]))
    emit(
        {
            "bare_p50_us": round(b["p50"], 1),
            "redis_miss_ratio_p50": round(r["p50"] / b["p50"], 4),
            "redis_miss_ratio_p99": round(r["p99"] / b["p99"], 4),
            "disk_miss_ratio_p50": round(d["p50"] / b["p50"], 4),
            "redis_writes": mode,
            "calls": args.calls,
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
