"""What costwise adds per call: bare SDK vs CostwiseClient (no strategies, SQLite ledger on).

Both clients run the real openai SDK over the same in-process httpx2.MockTransport (the
costwise.testing fake provider), interleaved call by call in one process, so machine noise
hits both alike. Reports per-call p50/p99 and the ratios; the last line is a JSON object.

    python benchmarks/overhead.py [--calls 3000] [--ledger sqlite|redis|redis-write-through]

``--ledger redis`` records into a `RedisStore` on a redis-server this script starts on a
free loopback port (the Debian package; skipped with a message when it is not installed):
with its default local journal, or with ``journal=None`` (a Redis round trip per call).
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit, interleaved, local_redis, summary, table

from costwise.ledger import SQLiteStore
from costwise.testing import FakeProvider, bare_client, fake_client

MSGS = [
    {"role": "system", "content": "You are a concise assistant for a bank's support desk."},
    {"role": "user", "content": "How do I reset the PIN of my debit card?"},
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per client")
    parser.add_argument(
        "--ledger", choices=["sqlite", "redis", "redis-write-through"], default="sqlite"
    )
    args = parser.parse_args()
    server = None

    provider = FakeProvider(reply=lambda _req: "Open the app, choose Cards, then Reset PIN.")
    with tempfile.TemporaryDirectory() as tmp:
        store: Any = SQLiteStore(Path(tmp) / "ledger.sqlite")
        if args.ledger != "sqlite":
            from costwise.ledger import RedisStore

            server = local_redis("no Redis ledger to time")
            if server is None:
                return 1
            journal = Path(tmp) / "journal" if args.ledger == "redis" else None
            store = RedisStore(server.url, spool=Path(tmp) / "spool.sqlite", journal=journal)
        bare = bare_client(provider)
        cw = fake_client(provider, ledger=store)

        def call_bare() -> None:
            bare.chat.completions.create(model="gpt-4o-mini", messages=MSGS)  # type: ignore[arg-type]

        def call_cw() -> None:
            cw.chat.completions.create(model="gpt-4o-mini", messages=MSGS, feature="bench")  # type: ignore[arg-type]

        gc.collect()
        times = interleaved({"bare": call_bare, "costwise": call_cw}, n=args.calls, warmup=300)
        recorded = sum(r.calls for r in cw.ledger.report())
        cw.close()
        if server is not None:
            server.stop()
    b, c = summary(times["bare"]), summary(times["costwise"])
    rows = [
        ["bare SDK", f"{b['p50']:.1f}", f"{b['p90']:.1f}", f"{b['p99']:.1f}"],
        ["CostwiseClient", f"{c['p50']:.1f}", f"{c['p90']:.1f}", f"{c['p99']:.1f}"],
        ["ratio", f"{c['p50'] / b['p50']:.3f}", f"{c['p90'] / b['p90']:.3f}", f"{c['p99'] / b['p99']:.3f}"],
    ]
    print(f"overhead: {args.calls} interleaved calls each after warm-up; {args.ledger} ledger; "
          f"python {platform.python_version()}, {platform.machine()}")
    print(table(rows, ["client", "p50 us", "p90 us", "p99 us"]))
    print(f"added per call at p50: {c['p50'] - b['p50']:.1f} us; ledger rows written: {recorded}")
    emit({
        "bare_p50_us": round(b["p50"], 1),
        "bare_p99_us": round(b["p99"], 1),
        "costwise_p50_us": round(c["p50"], 1),
        "costwise_p99_us": round(c["p99"], 1),
        "added_p50_us": round(c["p50"] - b["p50"], 1),
        "ratio_p50": round(c["p50"] / b["p50"], 4),
        "ratio_p99": round(c["p99"] / b["p99"], 4),
        "calls": args.calls,
        "ledger": args.ledger,
        "ledger_rows": recorded,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
