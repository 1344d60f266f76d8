"""Benchmark of the exact response cache (issue 3).

Speed: the bare openai SDK and costwise clients with a `ResponseCache` answer from one
in-process `FakeProvider` over ``httpx2.MockTransport``, interleaved call by call in one
process, so machine noise hits every variant alike. B is the bare SDK's p50 per call.

- miss: every request is new; diskcache store + SQLite ledger (the defaults).
- hit memory / disk / redis: the same request again; ledger in memory, so the row measures
  the cache. ``hit memory + sqlite ledger`` shows what a durable ledger adds to a hit.
- redis: a real ``redis-server`` on loopback, started here; PING p50 is measured
  interleaved with the hits.
- key: `request_key` on a ~2,000-token request.

Real traffic: needs ``../shared/data/banking77_train.csv`` (``--data``). The 10,003 real
customer questions are sent in file order through a costwise client with an empty exact
cache; the hit rate is the share of questions that are exact repeats of an earlier one.
Nothing is fitted, so there is nothing to split.

Run: ``.venv/bin/python benchmarks/cache.py [--calls 2000] [--data PATH]``. The last line
printed is a JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the redis-server helper the tests use

from costwise.cache import (  # noqa: E402
    DiskCacheStore,
    MemoryCacheStore,
    RedisCacheStore,
    is_hit,
    request_key,
)
from costwise.ledger import MemoryStore  # noqa: E402
from costwise.strategies import ResponseCache  # noqa: E402
from costwise.testing import FakeProvider, bare_client, fake_client  # noqa: E402

QUESTION: Any = [{"role": "user", "content": "How do I reset my card PIN?"}]


class ConstantAnswer:
    """The cheapest possible hit: a prebuilt answer, no key, no store, no rebuild.

    Its row is what the costwise pipeline and ledger cost on any hit; the cache rows minus
    this one are what the cache itself costs.
    """

    name = "cache"

    def __init__(self) -> None:
        from openai.types.chat import ChatCompletion

        from costwise.testing import chat_completion

        self.answer = ChatCompletion.model_validate(chat_completion("PIN reset steps..."))

    def flow(self, call: Any) -> Any:
        call.trace.answered(self.name, self.answer)
        return self.answer
        yield call


class PrebuiltLane(ConstantAnswer):
    """The cheapest possible hit through the express lane: the same prebuilt answer, given
    before any `Call` is built. What is left is costwise's own bookkeeping of a hit (taking
    the options out, the ledger entry and its journal frame): the floor under any exact-cache
    hit with the ledger on."""

    def express(self, kwargs: Any, scope: str) -> Any:
        from costwise import Express

        return Express("prebuilt", self.answer, self.answer)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def speed(calls: int, workdir: Path) -> dict[str, Any]:
    from redisserver import RedisServer, redis_binary  # type: ignore[import-not-found]  # tests/ on sys.path

    provider = FakeProvider()
    bare = bare_client(provider)
    miss_client = fake_client(
        provider,
        strategies=[ResponseCache(DiskCacheStore(workdir / "miss-cache"))],
        ledger=str(workdir / "ledger.sqlite"),
    )

    def hit_client(store: Any, ledger: Any = None) -> Any:
        client = fake_client(
            provider, strategies=[ResponseCache(store)], ledger=ledger or MemoryStore()
        )
        first = client.chat.completions.create(
            model="gpt-4o-mini", messages=QUESTION, temperature=0
        )
        again = client.chat.completions.create(
            model="gpt-4o-mini", messages=QUESTION, temperature=0
        )
        assert not is_hit(first) and is_hit(again), "warm-up did not hit"
        return client

    floor = fake_client(provider, strategies=[ConstantAnswer()], ledger=MemoryStore())
    lane_floor = fake_client(
        provider, strategies=[PrebuiltLane()], ledger=str(workdir / "floor-ledger.sqlite")
    )
    mem = hit_client(MemoryCacheStore())
    mem_sqlite = hit_client(MemoryCacheStore(), str(workdir / "hit-ledger.sqlite"))
    disk = hit_client(DiskCacheStore(workdir / "hit-cache"))

    server = None
    binary = redis_binary()
    variants: dict[str, Callable[[int], Any]] = {}
    n = 0

    def unique(i: int) -> Any:
        return [{"role": "user", "content": f"How do I reset my card PIN? (ticket {i})"}]

    variants["bare SDK (B)"] = lambda i: bare.chat.completions.create(
        model="gpt-4o-mini", messages=unique(i), temperature=0
    )
    variants["miss: diskcache + sqlite ledger"] = lambda i: miss_client.chat.completions.create(
        model="gpt-4o-mini", messages=unique(i), temperature=0
    )
    variants["spine floor: any hit, no cache"] = lambda i: floor.chat.completions.create(
        model="gpt-4o-mini", messages=QUESTION, temperature=0
    )
    variants["lane floor: prebuilt hit, sqlite ledger"] = lambda i: (
        lane_floor.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, temperature=0)
    )
    variants["hit: memory"] = lambda i: mem.chat.completions.create(
        model="gpt-4o-mini", messages=QUESTION, temperature=0
    )
    variants["hit: memory + sqlite ledger"] = lambda i: mem_sqlite.chat.completions.create(
        model="gpt-4o-mini", messages=QUESTION, temperature=0
    )
    variants["hit: diskcache"] = lambda i: disk.chat.completions.create(
        model="gpt-4o-mini", messages=QUESTION, temperature=0
    )
    if binary is not None:
        server = RedisServer(binary)
        server.start()
        rstore = RedisCacheStore(server.url, timeout=1.0)
        red = hit_client(rstore)
        variants["hit: redis"] = lambda i: red.chat.completions.create(
            model="gpt-4o-mini", messages=QUESTION, temperature=0
        )
        variants["redis PING"] = lambda i: rstore.redis.ping()
    else:
        print("redis-server not installed: skipping the Redis rows", file=sys.stderr)

    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(50):  # warm-up
        for name in names:
            variants[name](10**9 + i)
    gc.collect()
    for i in range(calls):
        order = names[i % len(names) :] + names[: i % len(names)]  # rotate who goes first
        for name in order:
            start = time.perf_counter()
            variants[name](i)
            times[name].append(time.perf_counter() - start)
        n += 1
    if server is not None:
        server.close()

    text = (
        "Our support team received a long message from a customer describing how the card "
        "stopped working abroad, what they tried, which merchants declined it, and asking "
        "for a replacement and a refund of the fees. "
    ) * 40
    kw = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful banking assistant."},
            {"role": "user", "content": text},
        ],
        "temperature": 0,
        "max_tokens": 300,
    }
    try:
        from costwise.tokens import default_tokenizer

        tokens = default_tokenizer().count_messages(kw["messages"], "gpt-4o-mini")  # type: ignore[arg-type]
    except Exception:
        tokens = len(text) // 4
    key_times = []
    for _ in range(5000):
        start = time.perf_counter()
        request_key(kw, "0123456789abcdef0123456789abcdef")
        key_times.append(time.perf_counter() - start)
    return {"times": times, "calls": n, "key_times": key_times, "key_tokens": tokens}


def banking77(path: Path) -> dict[str, Any]:
    with path.open(newline="") as f:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(f)]
    provider = FakeProvider()
    client = fake_client(provider, strategies=[ResponseCache(MemoryCacheStore(max_entries=10**6))])
    normalized = {re.sub(r"\\s+", " ", t.strip().lower()).rstrip("?.! ") for t, _ in rows}
    first_intent: dict[str, str] = {}
    hits = false_hits = 0
    for text, category in rows:
        resp = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}], temperature=0
        )
        if is_hit(resp):
            hits += 1
            false_hits += first_intent[text] != category
        else:
            first_intent[text] = category
    report = client.ledger.report().row("untagged")
    return {
        "questions": len(rows),
        "hits": hits,
        "false_hits": false_hits,
        "upstream": len(provider.requests),
        "hit_rate": hits / len(rows),
        "ledger_hits": report.hits,
        "normalized_repeats": len(rows) - len(normalized),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per variant (>= 2000)")
    parser.add_argument("--data", type=Path, default=ROOT / "../shared/data/banking77_train.csv")
    args = parser.parse_args()
    if not args.data.exists():
        print(
            f"error: {args.data} not found. This benchmark needs banking77_train.csv from the "
            "shared data directory (see ../shared/data/README.md); pass --data PATH.",
            file=sys.stderr,
        )
        return 2

    with tempfile.TemporaryDirectory() as tmp:
        try:  # real token counts without the network, as in the tests
            from costwise.tokens import offline_tiktoken_cache

            os.environ["TIKTOKEN_CACHE_DIR"] = str(offline_tiktoken_cache(Path(tmp) / "tiktoken"))
        except ImportError:
            pass
        result = speed(args.calls, Path(tmp))
    times = result["times"]
    base = statistics.median(times["bare SDK (B)"])
    print(f"\nSpeed: {result['calls']} interleaved calls per variant, B = bare SDK p50\n")
    print(f"{'variant':40} {'p50 µs':>9} {'p99 µs':>9} {'p50 / B':>8}")
    print("-" * 70)
    for name, values in times.items():
        p50 = statistics.median(values)
        print(f"{name:40} {p50 * 1e6:9.1f} {pct(values, 0.99) * 1e6:9.1f} {p50 / base:8.3f}")
    key_p50 = statistics.median(result["key_times"]) * 1e6
    print(
        f"{'request_key, ' + str(result['key_tokens']) + ' tokens':40} {key_p50:9.1f} "
        f"{pct(result['key_times'], 0.99) * 1e6:9.1f}"
    )

    b77 = banking77(args.data)
    print(
        f"\nbanking77_train.csv in file order, empty exact cache: {b77['questions']} questions, "
        f"{b77['hits']} exact repeats answered from the cache "
        f"({100 * b77['hit_rate']:.2f}%), {b77['false_hits']} with a different intent; "
        f"{b77['upstream']} upstream calls; ledger hits {b77['ledger_hits']}.\n"
        f"For comparison, {b77['normalized_repeats']} questions repeat an earlier one after "
        "lower-casing and trimming spaces and final punctuation (not served: exact cache)."
    )

    def ratio(name: str) -> float | None:
        return round(statistics.median(times[name]) / base, 4) if name in times else None

    redis_minus_ping = (
        round(
            (statistics.median(times["hit: redis"]) - statistics.median(times["redis PING"])) * 1e6,
            1,
        )
        if "hit: redis" in times
        else None
    )
    headline = {
        "bare_p50_us": round(base * 1e6, 1),
        "miss_ratio_p50": ratio("miss: diskcache + sqlite ledger"),
        "hit_memory_ratio_p50": ratio("hit: memory"),
        "hit_memory_sqlite_ledger_ratio_p50": ratio("hit: memory + sqlite ledger"),
        "hit_disk_ratio_p50": ratio("hit: diskcache"),
        "hit_redis_minus_ping_us": redis_minus_ping,
        "redis_ping_p50_us": (
            round(statistics.median(times["redis PING"]) * 1e6, 1)
            if "redis PING" in times
            else None
        ),
        "key_2k_us": round(key_p50, 2),
        "key_tokens": result["key_tokens"],
        "banking77_exact_hit_rate": round(b77["hit_rate"], 4),
        "banking77_false_hits": b77["false_hits"],
        "banking77_normalized_repeats": b77["normalized_repeats"],
        "spine_floor_hit_ratio_p50": ratio("spine floor: any hit, no cache"),
        "lane_floor_hit_ratio_p50": ratio("lane floor: prebuilt hit, sqlite ledger"),
        "calls_per_variant": result["calls"],
    }
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
