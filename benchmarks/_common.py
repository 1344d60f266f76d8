"""Helpers shared by the benchmarks: interleaved timing, percentiles, the JSON last line."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def percentile(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) of samples, by linear interpolation."""
    xs = sorted(samples)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def interleaved(
    fns: dict[str, Callable[[], Any]], *, n: int, warmup: int = 200
) -> dict[str, list[float]]:
    """Time each function n times, round-robin, so machine noise hits all of them alike.

    Returns microseconds per call for each name.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out: dict[str, list[float]] = {name: [] for name in fns}
    clock = time.perf_counter_ns
    for _ in range(n):
        for name, fn in fns.items():
            t0 = clock()
            fn()
            out[name].append((clock() - t0) / 1000.0)
    return out


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": statistics.median(samples),
        "p90": percentile(samples, 0.90),
        "p99": percentile(samples, 0.99),
        "mean": statistics.fmean(samples),
    }


def table(rows: list[list[str]], head: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in pairs)

    return "\n".join([line(head), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def emit(figures: dict[str, Any]) -> None:
    """Print the one-line JSON object of headline figures (always the last line)."""
    print(json.dumps(figures, sort_keys=True))


def local_redis(why: str) -> Any:
    """A started ``redis-server`` on a free loopback port (the tests' helper), or ``None``
    after saying on stderr that it is not installed and what `why` then cannot measure.
    Stop it with ``.stop()``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from redisserver import RedisServer, redis_binary  # type: ignore[import-not-found]

    binary = redis_binary()
    if binary is None:
        print(f"redis-server is not installed: {why}", file=sys.stderr)
        return None
    server = RedisServer(binary)
    server.start()
    return server
