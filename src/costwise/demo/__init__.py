"""``costwise demo``: replay a day of mixed traffic, first as written, then through costwise.

The traffic is real public text, not text written to flatter the result:

- support bot, ticket triage, translation, summaries and back-office batch questions are
  customer messages from Banking77 (PolyAI, CC-BY-4.0, Casanueva et al. 2020), read from
  ``../shared/data/banking77_train.csv`` (or ``--data`` / ``$COSTWISE_DEMO_DATA``); customers
  re-asking a question they asked before are modelled by replaying earlier questions;
- code help asks about real functions of Python's standard library (PSF licence), read
  with ``inspect.getsource``.

Both runs go to costwise's fake OpenAI-compatible provider (in-process, with latency) and
are recorded in their own ledgers. The baseline sends every call to one flagship model, as
the code was written; the costwise run adds the whole stack. With ``--live`` and
``OPENAI_API_KEY`` set it runs a small version against a real provider instead.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["main"]

FLAGSHIP = "gpt-4o"
_DATA = "banking77_train.csv"
_SYSTEM_SUPPORT = (
    "You are the support assistant of a retail bank. Answer in two or three sentences. "
    "Never ask for a full card number or a PIN. If the customer reports fraud, tell them "
    "to freeze the card in the app and call the number on the back of the card."
)


def _find_data(explicit: str | None) -> Path | None:
    if explicit:  # a path the user named is the only one tried
        return Path(explicit) if Path(explicit).is_file() else None
    candidates = [os.environ.get("COSTWISE_DEMO_DATA")]
    here = Path(__file__).resolve()
    candidates += [str(p / "shared" / "data" / _DATA) for p in [Path.cwd().parent, *here.parents]]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None


def _load(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [
            (row["text"].strip(), row["category"]) for row in csv.DictReader(fh) if row.get("text")
        ]


def _code_snippets(n: int) -> list[str]:
    import json
    import textwrap

    funcs: list[Callable[..., Any]] = [
        textwrap.dedent,
        textwrap.indent,
        textwrap.shorten,
        json.dumps,
        json.loads,
        os.path.relpath,
        os.path.commonpath,
        random.choices,
        random.sample,
        csv.reader,
    ]
    out = []
    for f in funcs:
        try:
            out.append(inspect.getsource(f))
        except (OSError, TypeError):
            continue
    return [out[i % len(out)] for i in range(n)] if out else []


Request = tuple[str, list[dict[str, str]]]  # (feature, messages)


def build_traffic(
    rows: list[tuple[str, str]], *, scale: float, seed: int = 7
) -> tuple[list[Request], list[str]]:
    """The day's interactive requests, in arrival order, and the back-office questions."""
    rng = random.Random(seed)

    def n(k: int) -> int:
        return max(1, int(k * scale))

    pool = rows[: n(3000)]
    asked: list[str] = []
    reqs: list[Request] = []
    for _ in range(n(420)):
        if asked and rng.random() < 0.25:  # customers re-asking what they asked before
            q = rng.choice(asked)
        else:
            q = rng.choice(pool)[0]
            asked.append(q)
        reqs.append(
            (
                "support-bot",
                [{"role": "system", "content": _SYSTEM_SUPPORT}, {"role": "user", "content": q}],
            )
        )
    cats = sorted({c for _, c in rows})
    for _ in range(n(160)):
        q = rng.choice(pool)[0]
        reqs.append(
            (
                "ticket-triage",
                [
                    {
                        "role": "user",
                        "content": "Classify this support ticket into one of: "
                        + ", ".join(cats)
                        + f".\nTicket: {q}",
                    }
                ],
            )
        )
    for _ in range(n(80)):
        q = rng.choice(pool)[0]
        lang = rng.choice(["French", "German", "Spanish"])
        reqs.append(("translation", [{"role": "user", "content": f"Translate into {lang}: {q}"}]))
    for _ in range(n(60)):
        thread = "\n".join(f"Customer message {i + 1}:   {rng.choice(pool)[0]}\n" for i in range(8))
        reqs.append(
            (
                "summaries",
                [
                    {
                        "role": "system",
                        "content": (
                            "You summarise customer conversations for the bank's "
                            "agents.\n\n\n" + "Keep names, amounts and dates.   \n" * 3
                        ),
                    },
                    {
                        "role": "user",
                        "content": f"Summarize this conversation in two sentences:\n\n{thread}",
                    },
                ],
            )
        )
    for snippet in _code_snippets(n(50)):
        reqs.append(
            (
                "code-help",
                [
                    {
                        "role": "user",
                        "content": (
                            "Explain what this Python function does and suggest a unit test:"
                            f"\n\n```python\n{snippet}```"
                        ),
                    }
                ],
            )
        )
    rng.shuffle(reqs)
    back_office = [rng.choice(pool)[0] for _ in range(n(150))]
    return reqs, back_office


def _bar(done: int, total: int, label: str) -> None:
    width = 32
    filled = int(width * done / max(total, 1))
    end = "\r" if sys.stderr.isatty() else "\n"
    if not sys.stderr.isatty() and done % (max(total // 4, 1)) and done < total:
        return  # in a log, a line per quarter is enough
    sys.stderr.write(f"  {label:<9} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{end}")
    if done >= total and end == "\r":
        sys.stderr.write("\n")
    sys.stderr.flush()


def _run(label: str, client: Any, reqs: Sequence[Request], workers: int) -> None:
    done = 0
    total = len(reqs)

    def one(req: Request) -> None:
        feature, messages = req
        client.chat.completions.create(
            model=FLAGSHIP, messages=messages, feature=feature, temperature=0
        )

    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(one, reqs):
            done += 1
            if done % 10 == 0 or done == total:
                _bar(done, total, label)


CHEAP_REFUSAL_SHARE = 20
"""Per cent of questions the demo's cheap model declines: an assumption standing in for the
quality gap between a small and a flagship model (the fake provider has no real quality)."""


def _stand_in_quality(body: dict[str, Any]) -> Any:
    """The fake provider's answers, except that gpt-4o-mini declines some questions."""
    import hashlib

    from costwise.testing import Reply

    if body.get("model") == "gpt-4o-mini":
        text = str((body.get("messages") or [{}])[-1].get("content", ""))
        if int(hashlib.sha1(text.encode()).hexdigest(), 16) % 100 < CHEAP_REFUSAL_SHARE:
            return Reply("I'm sorry, I can't help with that request.")
    return Reply()  # the provider's own realistic answer


def _stack(store_dir: Path) -> list[Any]:
    from costwise.cache import DiskCacheStore
    from costwise.strategies.cache import ResponseCache
    from costwise.strategies.cascade import Cascade
    from costwise.strategies.checks import all_of, no_refusal, not_empty, not_truncated
    from costwise.strategies.compressor import Compressor
    from costwise.strategies.router import Router
    from costwise.strategies.semantic import SemanticCache

    strategies: list[Any] = [ResponseCache(DiskCacheStore(store_dir / "cache"))]
    try:
        strategies.append(SemanticCache(DiskCacheStore(store_dir / "semantic")))
    except Exception as exc:  # the local embedding model is an optional extra
        print(f"  (semantic cache off: {exc})", file=sys.stderr)
    strategies += [
        Compressor(),
        Router(
            tasks={
                "classify": "gpt-4o-mini",
                "translate": "Qwen-MT-Turbo",
                "summarize": "gpt-4o-mini",
                "code": "deepseek-coder",
            }
        ),
        Cascade(
            ["gpt-4o-mini", FLAGSHIP], check=all_of(not_empty(), no_refusal(), not_truncated())
        ),
    ]
    return strategies


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit code."""
    parser = argparse.ArgumentParser(prog="costwise demo", description=__doc__.split("\n")[0])
    parser.add_argument("--data", help=f"Banking77 CSV (default: ../shared/data/{_DATA})")
    parser.add_argument(
        "--out", default="costwise-demo", help="directory for ledgers and the HTML report"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="traffic volume (1.0 = about 800 calls)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.03, help="fake provider latency, seconds"
    )
    parser.add_argument("--live", action="store_true", help="a small run against OPENAI_BASE_URL")
    args = parser.parse_args(argv)

    data = _find_data(args.data)
    if data is None:
        print(
            f"costwise demo needs the Banking77 questions ({_DATA}, CC-BY-4.0): pass --data PATH "
            "or set COSTWISE_DEMO_DATA. The repository does not ship third-party data.",
            file=sys.stderr,
        )
        return 2
    from costwise import CostwiseClient
    from costwise.batch import Batcher
    from costwise.ledger import SQLiteStore
    from costwise.testing import FakeProvider, fake_client

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _offline_tokenizer(out)
    for old in out.iterdir():  # every run starts from empty caches and ledgers
        if old.name.endswith((".sqlite", ".sqlite-wal", ".sqlite-shm")) or old.name in (
            "cache",
            "semantic",
            "baseline.sqlite.journal",
            "costwise.sqlite.journal",
        ):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    scale = 0.05 if args.live else args.scale
    reqs, back_office = build_traffic(_load(data), scale=scale)
    print(
        f"costwise demo: {len(reqs)} interactive calls + {len(back_office)} back-office "
        f"questions of real traffic ({data.name})"
    )

    def client(ledger: Path, strategies: list[Any]) -> Any:
        if args.live:
            if not os.environ.get("OPENAI_API_KEY"):
                msg = "--live needs OPENAI_API_KEY (and optionally OPENAI_BASE_URL)"
                raise SystemExit(msg)
            return CostwiseClient(ledger=SQLiteStore(ledger), strategies=strategies)
        provider = FakeProvider(latency=args.latency, reply=_stand_in_quality)
        return fake_client(provider, ledger=SQLiteStore(ledger), strategies=strategies)

    started = time.perf_counter()
    base = client(out / "baseline.sqlite", [])
    _run("baseline", base, reqs, workers=16)
    for q in back_office:  # written as one call per question
        base.chat.completions.create(
            model=FLAGSHIP, feature="back-office", messages=[{"role": "user", "content": q}]
        )
    cw = client(out / "costwise.sqlite", _stack(out))
    _run("costwise", cw, reqs, workers=16)
    with Batcher(cw, model="gpt-4o-mini", max_size=10) as batcher:
        futures = [batcher.submit(q, feature="back-office") for q in back_office]
    for f in futures:
        f.result()
    base.ledger.flush()
    cw.ledger.flush()
    _print_comparison(base.ledger.report(), cw.ledger.report(), cw.ledger.report(by="strategy"))
    from costwise.ledger._html import render_html

    html = out / "report.html"
    html.write_text(
        render_html(cw.ledger.store, title="costwise demo: a day of traffic"), encoding="utf-8"
    )
    print(f"\nHTML report: {html}   ledgers: {out}/baseline.sqlite, {out}/costwise.sqlite")
    print(f"finished in {time.perf_counter() - started:.1f} s")
    return 0


def _offline_tokenizer(out: Path) -> None:
    """Use real tiktoken encodings from the bpe-openai package when the network is absent."""
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    try:
        from costwise.tokens import offline_tiktoken_cache

        os.environ["TIKTOKEN_CACHE_DIR"] = str(offline_tiktoken_cache(out / "tiktoken"))
    except Exception:  # no bpe-openai: costwise falls back to its heuristic, with a warning
        return


def _print_comparison(base: Any, cw: Any, by_strategy: Any) -> None:
    nano = Decimal("1e-9")
    rows = {r.key: r for r in base}
    mine = {r.key: r for r in cw}
    print("\nper feature (every call to gpt-4o as written vs the costwise stack)")
    print(f"{'feature':<14}{'calls':>7}{'as written':>13}{'costwise':>12}{'saved':>9}")
    total_b = total_c = 0
    for key in sorted(set(rows) | set(mine)):
        b = rows[key].cost_nanos if key in rows else 0
        c = mine[key].cost_nanos if key in mine else 0
        total_b, total_c = total_b + b, total_c + c
        calls = rows[key].calls if key in rows else mine[key].calls
        pct = f"{100 * (b - c) / b:.0f}%" if b else "-"
        as_written, mine_usd = "$" + format(b * nano, ".4f"), "$" + format(c * nano, ".4f")
        print(f"{key:<14}{calls:>7}{as_written:>13}{mine_usd:>12}{pct:>9}")
    pct = f"{100 * (total_b - total_c) / total_b:.0f}%" if total_b else "-"
    print(
        f"{'total':<14}{'':>7}{'$' + format(total_b * nano, '.4f'):>13}"
        f"{'$' + format(total_c * nano, '.4f'):>12}{pct:>9}"
    )
    share = CHEAP_REFUSAL_SHARE
    print(f"\nAssumption: the fake provider's gpt-4o-mini declines {share}% of questions (the")
    print("cascade then escalates to gpt-4o); other answers are equally good for every model.")
    print("benchmarks/routing.py measures routing and cascades on real models' recorded answers.")
    print("\nper strategy (costwise run; saved = baseline of those calls - what they cost)")
    print(f"{'strategy':<28}{'calls':>7}{'spend':>11}{'saved':>11}")
    for r in by_strategy:
        print(
            f"{r.key:<28}{r.calls:>7}{'$' + format(r.cost_nanos * nano, '.4f'):>11}"
            f"{'$' + format((r.baseline_nanos - r.cost_nanos) * nano, '.4f'):>11}"
        )
