"""The 30-second tour: swap the import, tag calls, read the report.

Runs against any OpenAI-compatible server: set OPENAI_BASE_URL / OPENAI_API_KEY. Without
them it starts costwise's built-in fake provider on a loopback port, so it works offline.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

from costwise import CostwiseClient as OpenAI  # the one-line change
from costwise.strategies import ModelOverride
from costwise.testing import FakeProvider, serve

QUESTIONS = [
    ("support-bot", "How do I reset the PIN of my debit card?"),
    ("support-bot", "My card payment was declined, why?"),
    ("ticket-triage", "Classify: 'I was charged twice for one purchase'"),
    ("summaries", "Summarise: the customer moved house and wants to update their address."),
]


def main() -> None:
    with ExitStack() as stack:
        if "OPENAI_BASE_URL" not in os.environ:
            server = stack.enter_context(serve(FakeProvider(latency=0.02)))
            os.environ["OPENAI_BASE_URL"] = server.base_url
            os.environ.setdefault("OPENAI_API_KEY", "offline-demo")
        ledger = Path(tempfile.mkdtemp()) / "ledger.sqlite"
        # Move ticket triage to the small model without touching its code; the report
        # still compares it with the model the code asks for.
        client = OpenAI(
            ledger=ledger, strategies=[ModelOverride(features={"ticket-triage": "gpt-4o-mini"})]
        )
        for feature, question in QUESTIONS * 3:
            client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": question}],
                feature=feature,
            )
        print(client.ledger.report())


if __name__ == "__main__":
    main()
