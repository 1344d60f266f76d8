"""Every priced call lands in the ledger: chat, the Responses API and embeddings.

Strategies run on chat completions; the client's other priced calls are recorded too, under
the feature you tag them with, so the report shows everything the service spends. Then keep
the ledger bounded: export what you keep, prune whole old days.

Runs against any OpenAI-compatible server (OPENAI_BASE_URL / OPENAI_API_KEY); without them
it starts costwise's fake provider on a loopback port, so it works offline.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from contextlib import ExitStack

from costwise import CostwiseClient as OpenAI
from costwise.testing import FakeProvider, serve


def main() -> None:
    with ExitStack() as stack:
        if "OPENAI_BASE_URL" not in os.environ:
            server = stack.enter_context(serve(FakeProvider()))
            os.environ["OPENAI_BASE_URL"] = server.base_url
            os.environ.setdefault("OPENAI_API_KEY", "offline-demo")
        client = stack.enter_context(OpenAI())
        docs = ["Reset your PIN in the app under Cards.", "Disputes take up to 10 days."]
        client.embeddings.create(model="text-embedding-3-small", input=docs, feature="rag-index")
        answer = client.responses.create(
            model="gpt-4o-mini", input="How do I reset my PIN?", feature="support-bot"
        )
        print("responses.create:", answer.output_text[:60], "...")
        stream = client.responses.create(
            model="gpt-4o-mini",
            input="Why was my card declined?",
            stream=True,
            feature="support-bot",
        )
        for _event in stream:  # recorded when the stream ends, from its final usage
            pass
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Classify: 'charged twice'"}],
            feature="ticket-triage",
        )
        print(client.ledger.report(by="feature"))
        # Keep the ledger bounded: archive, then delete whole days older than 90 days.
        kept = client.ledger.export_csv(io.StringIO())
        gone = client.ledger.prune(before=dt.date.today() - dt.timedelta(days=90))
        print(f"exported {kept} entries; pruned {gone} older than 90 days")


if __name__ == "__main__":
    main()
