"""Prompt compression: tokens and dollars saved, facts preserved, on public long texts.

Corpus (assembled at run time from public material installed on this machine; nothing is
copied into the repository):

- docs:  the long descriptions (README text) in the METADATA of the Python packages installed
         in this virtualenv (``.venv/lib/python3*/site-packages/*.dist-info/METADATA``), body
         after the headers, those of 3,000+ characters, each cut to its first 12,000;
- json:  the CycloneDX SBOM files shipped inside installed wheels
         (``*.dist-info/sboms/*.json``), pretty-printed JSON like a tool's output;
- man:   man pages rendered as text (``MANWIDTH=80 man -P cat NAME | col -b``) for ls, grep,
         tar, sed, gzip, ssh, git, python3, cut to their first 12,000 characters;
- licence: Python's own LICENSE.txt (``/usr/lib/python3.11/LICENSE.txt``).

What is measured:

- The local compressor (real): tokens before and after (tiktoken o200k_base, loaded offline
  from the bpe-openai package), the share of facts (numbers, names, identifiers, links, code)
  still present, and the time it takes. Its defaults were written before this corpus was
  assembled and were not tuned on it.
- The model stage (NOT a model): no model can be called offline, so the `Compressor`
  strategy runs against the FakeProvider with a deterministic stand-in "compressor model"
  that keeps the first sentences of the text up to the target ratio (a naive extractive
  summary). This measures the machinery honestly: how often the fact check rejects a lossy
  rewrite, what the compression calls cost (ledger overhead entries at gpt-4o-mini prices),
  and the net dollars when accepted rewrites are reused. It says nothing about how well a
  real model would compress or whether answers stay as good; that needs an online
  evaluation.

Usage: .venv/bin/python benchmarks/compression.py
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, table

from costwise import CostwiseWarning
from costwise.compression import LocalCompressor, extract_facts
from costwise.ledger import MemoryStore
from costwise.pricing import PriceTable
from costwise.strategies import Compressor
from costwise.testing import FakeProvider, Reply, fake_client
from costwise.tokens import TiktokenTokenizer, offline_tiktoken_cache

ROOT = Path(__file__).resolve().parent.parent
MAX_CHARS = 12_000
MAN_PAGES = ["ls", "grep", "tar", "sed", "gzip", "ssh", "git", "python3"]
RECEIVER = "gpt-4o"
CHEAP = "gpt-4o-mini"


def corpus() -> list[tuple[str, str, str]]:
    """(category, name, text) for every document found."""
    docs: list[tuple[str, str, str]] = []
    site = sorted(glob.glob(str(ROOT / ".venv/lib/python3*/site-packages")))
    if not site:
        sys.exit("no .venv site-packages found: run from the repository root with its .venv")
    for meta in sorted(glob.glob(f"{site[0]}/*.dist-info/METADATA")):
        raw = Path(meta).read_text(encoding="utf-8", errors="replace")
        _, _, body = raw.partition("\n\n")
        if len(body) >= 3000:
            docs.append(("docs", Path(meta).parent.name.split("-")[0], body[:MAX_CHARS]))
    for sbom in sorted(glob.glob(f"{site[0]}/*.dist-info/sboms/*.json")):
        text = Path(sbom).read_text(encoding="utf-8", errors="replace")
        if 2000 <= len(text) <= 60_000:
            docs.append(("json", Path(sbom).name, text))
    env = {**os.environ, "MANWIDTH": "80"}
    for page in MAN_PAGES:
        try:
            rendered = subprocess.run(
                ["man", "-P", "cat", page], capture_output=True, env=env, check=True, timeout=30
            ).stdout
            text = subprocess.run(
                ["col", "-b"], input=rendered, capture_output=True, check=True, timeout=30
            ).stdout.decode(errors="replace")
        except (OSError, subprocess.SubprocessError):
            continue
        if text.strip():
            docs.append(("man", page, text[:MAX_CHARS]))
    for licence in sorted(glob.glob("/usr/lib/python3*/LICENSE.txt"))[:1]:
        docs.append(("licence", "python-LICENSE.txt", Path(licence).read_text(errors="replace")))
    return docs


def naive_standin(ratio: float) -> Any:
    """Stand-in 1 (not a model): keeps leading sentences up to `ratio` of the length."""

    def reply(body: dict[str, Any]) -> Any:
        if not body["messages"][0]["content"].startswith("Rewrite the text"):
            return Reply("ok")
        text = body["messages"][1]["content"]
        placeholders = re.findall(r"\u27e6\d+\u27e7", text)
        out, size = [], 0
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            if size > len(text) * ratio:
                break
            out.append(sentence)
            size += len(sentence) + 1
        kept = " ".join(out)
        return Reply(" ".join([kept, *(p for p in placeholders if p not in kept)]))

    return reply


def fact_aware_standin() -> Any:
    """Stand-in 2 (not a model): drops sentences that carry no fact, keeps all the others."""

    def reply(body: dict[str, Any]) -> Any:
        if not body["messages"][0]["content"].startswith("Rewrite the text"):
            return Reply("ok")
        text = body["messages"][1]["content"]
        kept = []
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
            if extract_facts(sentence).count or "\u27e6" in sentence:
                kept.append(sentence)
        return Reply("\n".join(kept))

    return reply


def run_standin(
    docs: list[tuple[str, str, str]], reply: Any, tok: Any, ratio: float
) -> dict[str, Any]:
    """Send every document as a system prompt through a Compressor backed by `reply`."""
    provider, store = FakeProvider(reply=reply), MemoryStore()
    compressor = Compressor(llm_model=CHEAP, target_ratio=ratio, min_tokens=500)
    client = fake_client(provider, strategies=[compressor], ledger=store, tokenizer=tok)
    local = LocalCompressor()
    rejected = local_saved = 0
    for _cat, _name, text in docs:
        local_saved += max(0, tok.count(text, RECEIVER) - tok.count(local(text), RECEIVER))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CostwiseWarning)
            client.chat.completions.create(
                model=RECEIVER,
                messages=[
                    {"role": "system", "content": text},
                    {"role": "user", "content": "Summarise the key rules."},
                ],
            )
        rejected += sum(1 for w in caught if "lost" in str(w.message))
    entries = list(store.entries())
    overhead = [e for e in entries if e.kind == "overhead"]
    removed = sum(int(e.detail.get("tokens_saved", 0)) for e in entries if e.final)
    return {
        "calls": len(overhead),
        "rejected": rejected,
        "cost": sum((e.cost or Decimal(0)) for e in overhead),
        "model_removed": max(0, removed - local_saved),
    }


def main() -> None:
    os.environ["TIKTOKEN_CACHE_DIR"] = str(
        offline_tiktoken_cache(Path(tempfile.mkdtemp()) / "tiktoken")
    )
    tok = TiktokenTokenizer()
    prices = PriceTable.default()
    docs = corpus()
    local = LocalCompressor()

    # -- local compressor -------------------------------------------------------------------
    per_cat: dict[str, dict[str, float]] = {}
    total_before = total_after = 0
    facts_total = facts_kept = 0
    seconds = 0.0
    chars = 0
    for cat, _name, text in docs:
        t0 = time.perf_counter()
        out = local(text)
        seconds += time.perf_counter() - t0
        chars += len(text)
        before, after = tok.count(text, RECEIVER), tok.count(out, RECEIVER)
        facts = extract_facts(text)
        kept = facts.count - len(facts.missing(out))
        row = per_cat.setdefault(cat, {"docs": 0, "before": 0, "after": 0, "facts": 0, "kept": 0})
        row["docs"] += 1
        row["before"] += before
        row["after"] += after
        row["facts"] += facts.count
        row["kept"] += kept
        total_before += before
        total_after += after
        facts_total += facts.count
        facts_kept += kept
    rows = []
    for cat, r in sorted(per_cat.items()):
        saved = r["before"] - r["after"]
        rows.append(
            [
                cat,
                str(int(r["docs"])),
                f"{int(r['before']):,}",
                f"{int(r['after']):,}",
                f"{saved / r['before']:.1%}",
                f"{r['kept'] / max(r['facts'], 1):.2%}",
            ]
        )
    saved_tokens = total_before - total_after
    rows.append(
        [
            "all",
            str(len(docs)),
            f"{total_before:,}",
            f"{total_after:,}",
            f"{saved_tokens / total_before:.1%}",
            f"{facts_kept / max(facts_total, 1):.2%}",
        ]
    )
    print("Local compressor (real), tokens counted with tiktoken o200k_base")
    print(table(rows, ["corpus", "docs", "tokens before", "tokens after", "saved", "facts kept"]))
    price_in = {m: prices.lookup(m).input for m in (RECEIVER, CHEAP)}  # type: ignore[union-attr]
    per_1k = {m: Decimal(saved_tokens) * p / 10**6 * 1000 for m, p in price_in.items()}
    print(
        f"\nDollars saved if each prompt is sent 1,000 times (compression cost $0, local):"
        f" {RECEIVER} ${per_1k[RECEIVER]:.2f}, {CHEAP} ${per_1k[CHEAP]:.2f}"
    )
    print(
        f"Speed: {chars / 1e6 / seconds:.1f} MB/s of text ({seconds * 1000:.0f} ms for {chars:,} chars)"
    )

    # -- model stage with deterministic stand-ins --------------------------------------------
    ratio = 0.5
    eligible = sum(1 for _c, _n, t in docs if tok.count(local(t), RECEIVER) >= 500)
    print(
        f"\nModel stage with STAND-INS for the compressor model (not models; how well a real"
        f" model compresses, and whether answers stay as good, cannot be measured offline)."
        f"\nReceiver {RECEIVER}, compressor {CHEAP}, target ratio {ratio}, texts >= 500 tokens"
        f" after the local stage: {eligible} of {len(docs)}"
    )
    standins = {"naive": naive_standin(ratio), "fact_aware": fact_aware_standin()}
    results = {name: run_standin(docs, reply, tok, ratio) for name, reply in standins.items()}
    rows = []
    net: dict[str, dict[int, float]] = {}
    for name, r in results.items():
        per_send = Decimal(r["model_removed"]) * price_in[RECEIVER] / 10**6
        net[name] = {}
        for reuse in (1, 10, 100):
            value = per_send * reuse - r["cost"]
            net[name][reuse] = float(round(value, 4))
        rows.append(
            [
                name,
                str(r["calls"]),
                str(r["rejected"]),
                f"{r['model_removed']:,}",
                f"${r['cost']:.4f}",
                *(f"${net[name][k]:.4f}" for k in (1, 10, 100)),
            ]
        )
    print(
        table(
            rows,
            [
                "stand-in",
                "calls",
                "rejected",
                "tokens removed",
                "compress cost",
                "net x1",
                "net x10",
                "net x100",
            ],
        )
    )
    print(
        "(net xN: dollars saved beyond the local stage when each text is sent N times, minus"
        " the one-off compression calls; rejected rewrites are not used and cost their call)"
    )
    emit(
        {
            "benchmark": "compression",
            "docs": len(docs),
            "local_tokens_before": total_before,
            "local_tokens_after": total_after,
            "local_saved_share": round(saved_tokens / total_before, 4),
            "local_facts_preserved": round(facts_kept / max(facts_total, 1), 4),
            "local_usd_saved_per_1k_sends_gpt4o": float(round(per_1k[RECEIVER], 2)),
            "local_mb_per_s": round(chars / 1e6 / seconds, 2),
            "standin_calls": {k: r["calls"] for k, r in results.items()},
            "standin_rejected_by_fact_check": {k: r["rejected"] for k, r in results.items()},
            "standin_compression_cost_usd": {
                k: float(round(r["cost"], 4)) for k, r in results.items()
            },
            "standin_net_usd_by_reuse": net,
        }
    )


if __name__ == "__main__":
    main()
