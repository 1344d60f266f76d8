"""Packing questions: input tokens and dollars saved by 2..10 questions per call, and re-asks.

Needs ``../shared/data/banking77_train.csv`` (``--data PATH``): real customer questions to a
bank (PolyAI Banking77, CC-BY-4.0). Nothing is fitted on the data; the benchmark reads a
fixed, evenly spaced sample of ``--questions`` questions from it.

Setup: every question goes to gpt-4o-mini with the same system prompt (a short one and a
realistic ~300-token support-bot one), first one request per question (the baseline), then
packed 2, 3, 5, 8 and 10 per request by `costwise.batch.Batcher`, with answers as a JSON array
with ids (gpt-4o-mini supports json_schema) and as numbered text. The FakeProvider answers:
each question gets the same deterministic ~40-token answer alone or packed, and a fixed share
of packed replies is spoiled on purpose (one answer missing in 6%, an id answered twice in 3%,
an unparseable reply in 2%, chosen by a hash of the request), so the re-ask path is exercised.
Token counts are the provider's usage (the same counter for baseline and packed); dollars are
gpt-4o-mini list prices. What this does not measure: whether a real model answers packed
questions as well as single ones (that needs an online evaluation), and latency.

Usage: .venv/bin/python benchmarks/batching.py [--data PATH] [--questions 300]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, table

from costwise.batch import Batcher
from costwise.ledger import MemoryStore
from costwise.testing import FakeProvider, Reply, fake_client
from costwise.tokens import offline_tiktoken_cache

MODEL = "gpt-4o-mini"
SHORT_SYSTEM = "You are a bank's support assistant. Answer briefly."
LONG_SYSTEM = (
    "You are the customer support assistant of a retail bank's mobile app. Answer the "
    "customer's question in two or three short sentences, in plain English, without "
    "greetings or sign-offs. Follow these rules. Never ask for or repeat a full card number, "
    "PIN, password or one-time code. For a lost or stolen card, tell the customer to freeze "
    "the card in the app (Cards > Freeze) and to order a replacement. For a transfer or "
    "payment that has not arrived, explain that bank transfers can take up to one working "
    "day and card payments up to three, and to contact support with the reference if it is "
    "later. For fees and exchange rates, point to the Fees page in the app and never quote "
    "numbers you are not sure of. For identity verification, explain that a photo ID and a "
    "selfie are needed and that checks usually finish within a few hours. For top-ups, "
    "explain the supported methods (card, bank transfer) and that a pending top-up can take "
    "a few minutes. If a question is about something the app cannot do, say so and suggest "
    "contacting support from the Help section. Do not give legal, tax or investment advice. "
    "If the customer seems to be a victim of fraud, tell them to freeze the card at once and "
    "contact support. Keep a calm, factual tone."
)
SIZES = [2, 3, 5, 8, 10]


def answer_for(question: str) -> str:
    words = " ".join(question.split()[:6])
    return (
        f"About \u201c{words}\u201d: open the app, go to Help, and follow the steps shown for "
        "this topic; if that does not solve it, contact support from the Help section."
    )


def spoil_kind(content: str) -> str | None:
    h = int(hashlib.sha256(content.encode()).hexdigest()[:8], 16) % 100
    return "missing" if h < 6 else "duplicate" if h < 9 else "garbage" if h < 11 else None


def reply(body: dict[str, Any]) -> Any:
    """The fake model: answers single and packed prompts, spoiling a fixed share of packs."""
    user = body["messages"][-1]["content"]
    structured = (body.get("response_format") or {}).get("type") == "json_schema"
    if user.startswith("[1] "):
        pairs = [
            (m.group(1), answer_for(m.group(2)))
            for m in re.finditer(r"^\[(\d+)\] (.*)$", user, re.MULTILINE)
        ]
    else:
        return Reply(answer_for(user))
    kind = spoil_kind(user)
    if kind == "garbage":
        return Reply("I'm sorry, I can only answer one question at a time.")
    if kind == "missing":
        pairs = pairs[:-1]
    elif kind == "duplicate":
        pairs = [*pairs, (pairs[0][0], "another answer")]
    if structured:
        return Reply(
            json.dumps({"answers": [{"id": i, "answer": a} for i, a in pairs]}, ensure_ascii=False)
        )
    return Reply("\n".join(f"[{i}] {a}" for i, a in pairs))


def run(questions: list[str], size: int, *, structured: bool, system: str) -> dict[str, Any]:
    provider, store = FakeProvider(reply=reply), MemoryStore()
    client = fake_client(provider, ledger=store)
    with Batcher(client, model=MODEL, system=system, max_size=size, structured=structured) as b:
        answers = b.map(questions)
    wrong = sum(a != answer_for(q) for a, q in zip(answers, questions, strict=True))
    entries = list(store.entries())
    return {
        "requests": len(provider.calls()),
        "input": sum(e.prompt_tokens for e in entries),
        "output": sum(e.completion_tokens for e in entries),
        "cost": sum((e.cost or Decimal(0)) for e in entries),
        "reasked": sum(1 for e in entries if e.detail.get("reasked")),
        "wrong": wrong,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", default="../shared/data/banking77_train.csv")
    parser.add_argument("--questions", type=int, default=300)
    args = parser.parse_args()
    path = Path(args.data)
    if not path.exists():
        sys.exit(
            f"batching benchmark: {path} not found. It needs the Banking77 questions "
            "(../shared/data/banking77_train.csv, see ../shared/data/README.md); pass --data PATH."
        )
    with path.open(newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    step = max(1, len(texts) // args.questions)
    questions = texts[::step][: args.questions]

    # exact token counts for the cost split, offline (tiktoken data from bpe-openai)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(offline_tiktoken_cache(Path(tempfile.mkdtemp())))
    figures: dict[str, Any] = {"benchmark": "batching", "questions": len(questions), "model": MODEL}
    wrong_total = 0
    for label, system in (("short", SHORT_SYSTEM), ("long", LONG_SYSTEM)):
        base = run(questions, 1, structured=False, system=system)
        rows = [
            [
                "1 (baseline)",
                "-",
                str(base["requests"]),
                f"{base['input']:,}",
                f"{base['output']:,}",
                f"${base['cost']:.5f}",
                "-",
                "-",
                "0.0%",
            ]
        ]
        best: dict[str, Any] = {}
        for fmt, structured in (("json", True), ("numbered", False)):
            for size in SIZES:
                r = run(questions, size, structured=structured, system=system)
                wrong_total += r["wrong"]
                in_saved = 1 - r["input"] / base["input"]
                usd_saved = float(1 - r["cost"] / base["cost"])
                reask = r["reasked"] / len(questions)
                rows.append(
                    [
                        str(size),
                        fmt,
                        str(r["requests"]),
                        f"{r['input']:,}",
                        f"{r['output']:,}",
                        f"${r['cost']:.5f}",
                        f"{in_saved:.1%}",
                        f"{usd_saved:.1%}",
                        f"{reask:.1%}",
                    ]
                )
                figures[f"{label}_{fmt}_{size}"] = {
                    "input_saved": round(in_saved, 4),
                    "usd_saved": round(usd_saved, 4),
                    "reasked": round(reask, 4),
                }
                if not best or usd_saved > best["usd_saved"]:
                    best = {
                        "size": size,
                        "format": fmt,
                        "usd_saved": round(usd_saved, 4),
                        "input_saved": round(in_saved, 4),
                    }
        print(
            f"\nSystem prompt: {label} ({len(system)} chars); {len(questions)} Banking77 questions"
        )
        print(
            table(
                rows,
                [
                    "per call",
                    "format",
                    "requests",
                    "input tok",
                    "output tok",
                    "cost",
                    "input saved",
                    "$ saved",
                    "re-asked",
                ],
            )
        )
        figures[f"{label}_best"] = best
    figures["answers_given_to_wrong_caller"] = wrong_total
    print(f"\nAnswers given to the wrong caller, all runs: {wrong_total}")
    emit(figures)


if __name__ == "__main__":
    main()
