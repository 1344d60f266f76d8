"""How fast `costwise report` answers over a 1,000,000-entry SQLite ledger (target: < 2 s).

Builds a synthetic ledger (30 days, 12 features, 6 models, the built-in strategy names,
cascade attempts, cache hits, side calls, a few errors) with executemany in large
transactions, then times the command end to end as a user runs it (a fresh
``python -m costwise report`` process: interpreter start, imports, query, formatting) and
in-process (query + formatting only), for each grouping and output format.

Usage: .venv/bin/python benchmarks/report.py [--entries N] [--runs R] [--keep PATH]
Needs no data from ../shared/data (the ledger's content does not affect the query plan).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from costwise.cli import main
from costwise.ledger import SQLiteStore
from costwise.ledger._entry import FIELDS

FEATURES = [
    "support-bot",
    "ticket-classify",
    "summarise",
    "translate",
    "code-help",
    "backoffice",
    "search",
    "faq",
    "extract",
    "moderation",
    "email-draft",
    "sql-help",
]
MODELS = [
    ("gpt-4o", 2500, 10000),
    ("gpt-4o-mini", 150, 600),
    ("gpt-4.1", 2000, 8000),
    ("gpt-4.1-mini", 400, 1600),
    ("o4-mini", 1100, 4400),
    ("gpt-4.1-nano", 100, 400),
]
STRATEGIES = [
    None,
    "cache",
    "semantic_cache",
    "router",
    "cascade",
    "compressor",
    "compressor+router",
    "router+cascade",
    "batching",
]


def build(path: Path, n: int, seed: int = 0) -> float:
    """Write `n` entries to a new SQLite ledger at `path`; returns seconds taken."""
    started = time.perf_counter()
    SQLiteStore(path).close()  # the real schema and indexes
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    rng = random.Random(seed)
    now = time.time()
    sql = f"INSERT INTO ledger ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})"
    chunk = 100_000
    for lo in range(0, n, chunk):
        rows = []
        for _ in range(min(chunk, n - lo)):
            feature = FEATURES[min(int(rng.expovariate(0.35)), len(FEATURES) - 1)]
            strategy = rng.choice(STRATEGIES)
            model, pin, pout = rng.choice(MODELS)
            p, c = rng.randint(50, 4000), rng.randint(5, 800)
            kind = (
                "hit"
                if strategy in ("cache", "semantic_cache")
                else ("overhead" if rng.random() < 0.04 else "upstream")
            )
            cost = 0 if kind == "hit" else (p * pin + c * pout)
            status = "ok" if rng.random() > 0.01 else "RateLimitError"
            final = kind != "overhead" and status == "ok"
            baseline = (p * 2500 + c * 10000) if final else 0
            rows.append(
                (
                    f"{rng.getrandbits(128):032x}",
                    f"{rng.getrandbits(64):016x}",
                    now - rng.uniform(0, 30 * 86400),
                    feature,
                    "gpt-4o",
                    model,
                    kind,
                    status,
                    strategy,
                    "judge" if kind == "overhead" else None,
                    p,
                    c,
                    rng.choice((0, 0, 0, p // 2)),
                    0,
                    0,
                    None if rng.random() < 0.001 else cost,
                    baseline,
                    int(final),
                    int(rng.random() < 0.02),
                    rng.uniform(80, 2500),
                    rng.choice((None, None, 0, 1)) if strategy and "cascade" in strategy else None,
                    None,
                    None,
                )
            )
        with conn:
            conn.executemany(sql, rows)
    conn.close()
    return time.perf_counter() - started


def time_process(args: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "costwise", *args], capture_output=True, text=True, check=False
        )
        out.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise SystemExit(f"costwise {' '.join(args)} failed: {proc.stderr}")
    return out


def time_inprocess(args: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        buf = io.StringIO()
        t = time.perf_counter()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            code = main(args)
        out.append(time.perf_counter() - t)
        assert code == 0, code
    return out


def main_(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="build (or reuse) the ledger at this path")
    a = ap.parse_args(argv)
    tmp = tempfile.TemporaryDirectory()
    path = a.keep or Path(tmp.name) / "ledger.sqlite"
    if path.exists():
        build_s = 0.0
        print(f"reusing {path}")
    else:
        build_s = build(path, a.entries)
        print(
            f"built {a.entries:,} entries in {build_s:.1f} s ({path.stat().st_size / 1e6:.0f} MB)"
        )
    # Warm the OS page cache once, as a second `costwise report` in a row would find it.
    time_inprocess(["report", "--ledger", str(path)], 1)
    cases = [
        ("report (by feature, table)", ["report", "--ledger", str(path)]),
        ("report --by day", ["report", "--ledger", str(path), "--by", "day"]),
        ("report --by strategy", ["report", "--ledger", str(path), "--by", "strategy"]),
        (
            "report --by model --format json",
            ["report", "--ledger", str(path), "--by", "model", "--format", "json"],
        ),
        ("report --since 7d", ["report", "--ledger", str(path), "--since", "7d"]),
        (
            "report --format html",
            ["report", "--ledger", str(path), "--format", "html", "--out", os.devnull],
        ),
    ]
    results = {}
    print(f"\n{'command':34} {'process median':>15} {'process max':>12} {'in-process':>11}")
    for label, args in cases:
        proc = time_process(args, a.runs)
        inproc = time_inprocess(args, a.runs)
        results[label] = (statistics.median(proc), max(proc), statistics.median(inproc))
        print(
            f"{label:34} {results[label][0]:>14.3f}s {results[label][1]:>11.3f}s "
            f"{results[label][2]:>10.3f}s"
        )
    headline = results["report (by feature, table)"]
    worst = max(r[1] for r in results.values())
    print(
        f"\ntarget < 2 s per report: {'met' if worst < 2 else 'NOT met'} "
        f"(slowest single run {worst:.2f} s; {a.runs} runs each; 2-core machine)"
    )
    print(
        json.dumps(
            {
                "entries": a.entries,
                "build_s": round(build_s, 2),
                "report_feature_median_s": round(headline[0], 3),
                "report_feature_max_s": round(headline[1], 3),
                "report_feature_inprocess_s": round(headline[2], 3),
                "slowest_case_max_s": round(worst, 3),
                "html_median_s": round(results["report --format html"][0], 3),
                "target_met": worst < 2,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main_())
