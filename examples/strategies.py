"""Add strategies: a response cache and a task router, then read what each saved.

Runs against OPENAI_BASE_URL / OPENAI_API_KEY when set; otherwise it starts costwise's fake
provider on a loopback port, so it works offline.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

from costwise import CostwiseClient as OpenAI
from costwise.strategies import ResponseCache, Router
from costwise.testing import FakeProvider, serve

REQUESTS = [
    ("support-bot", "How do I reset the PIN of my debit card?"),
    ("support-bot", "How do I reset the PIN of my debit card?"),  # a repeat: served at $0
    ("triage", "Classify this ticket: 'I was charged twice for one purchase'"),
    ("localise", "Translate into French: your card is on its way."),
]


def main() -> None:
    with ExitStack() as stack:
        if "OPENAI_BASE_URL" not in os.environ:
            server = stack.enter_context(serve(FakeProvider()))
            os.environ["OPENAI_BASE_URL"] = server.base_url
            os.environ.setdefault("OPENAI_API_KEY", "offline-demo")
        work = Path(tempfile.mkdtemp())
        client = OpenAI(
            ledger=work / "ledger.sqlite",
            strategies=[
                ResponseCache(work / "cache"),  # repeated requests at $0
                Router(tasks={"classify": "gpt-4o-mini", "translate": "Qwen-MT-Turbo"}),
            ],
        )
        for feature, question in REQUESTS:
            client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": question}],
                temperature=0,  # repeatable, so the cache may answer it again
                feature=feature,
            )
        print(client.ledger.report())
        print()
        print(client.ledger.report(by="strategy"))


if __name__ == "__main__":
    main()
