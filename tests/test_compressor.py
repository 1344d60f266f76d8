"""The Compressor strategy: local by default, model compression only when it pays, facts kept."""

from __future__ import annotations

from typing import Any

import pytest

from costwise import CostwiseWarning
from costwise.cache import MemoryCacheStore
from costwise.compression import KEEP_CLOSE, KEEP_OPEN
from costwise.ledger import LedgerEntry, MemoryStore
from costwise.strategies import Compressor
from costwise.testing import Error, FakeProvider, Reply, fake_async_client, fake_client

FILLER = "This sentence is only here to make the prompt long and says nothing new. " * 60
FACTS = "The refund window at Acme Corp is 14 days and the hotline is 555-0100."
CODE = "```python\nprint( 'keep me' )\n```"
SYSTEM = f"{FACTS}   \n\n\n\n{CODE}\n\n{FILLER}"


def compressing_reply(*, lossy: bool = False) -> Any:
    """A provider answer: the 'cheap model' keeps the first sentence and the placeholders."""

    def reply(body: dict[str, Any]) -> Any:
        system = body["messages"][0]["content"]
        if not system.startswith("Rewrite the text"):
            return Reply()
        text = body["messages"][1]["content"]
        keep = [line for line in text.split("\n") if "\u27e6" in line]
        first = "The refund window is two weeks." if lossy else FACTS
        return "\n".join([first, *keep])

    return reply


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def send(
    mode: str,
    provider: FakeProvider,
    compressor: Compressor,
    store: MemoryStore,
    *,
    model: str = "gpt-4o",
    messages: list[Any] | None = None,
    **kw: Any,
) -> Any:
    """One call through a sync or async client with `compressor`."""
    msgs = messages or [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"}]
    if mode == "sync":
        client: Any = fake_client(provider, strategies=[compressor], ledger=store)
        return client.chat.completions.create(model=model, messages=msgs, **kw)
    aclient: Any = fake_async_client(provider, strategies=[compressor], ledger=store)
    return await aclient.chat.completions.create(model=model, messages=msgs, **kw)


def sent_messages(provider: FakeProvider, model: str = "gpt-4o") -> list[Any]:
    return [c.json["messages"] for c in provider.calls() if c.json["model"] == model]


def entries(store: MemoryStore) -> list[LedgerEntry]:
    return list(store.entries())


@pytest.mark.anyio
async def test_local_compression_by_default(mode: str) -> None:
    """The system prompt is folded locally; the ledger baseline counts the removed tokens."""
    provider, store = FakeProvider(), MemoryStore()
    await send(mode, provider, Compressor(), store)
    (msgs,) = sent_messages(provider)
    assert len(msgs[0]["content"]) < len(SYSTEM)
    assert CODE in msgs[0]["content"]
    assert msgs[1] == {"role": "user", "content": "Hi"}
    (entry,) = entries(store)
    assert entry.strategy == "compressor"
    assert entry.detail["tokens_saved"] > 0
    assert entry.baseline_nanos is not None and entry.cost_nanos is not None
    assert entry.baseline_nanos > entry.cost_nanos


@pytest.mark.anyio
async def test_user_messages_need_opt_in(mode: str) -> None:
    """User text is sent as typed unless compress=True; compress=False skips everything."""
    user = {"role": "user", "content": "Please    look   at this\n\n\n\n\nthing"}
    system = {"role": "system", "content": "Be   brief."}
    provider, store = FakeProvider(), MemoryStore()
    await send(mode, provider, Compressor(), store, messages=[system, user])
    await send(mode, provider, Compressor(), store, messages=[system, user], compress=True)
    await send(mode, provider, Compressor(), store, messages=[system, user], compress=False)
    plain, opted, off = sent_messages(provider)
    assert plain == [{"role": "system", "content": "Be brief."}, user]
    assert opted[1]["content"] == "Please look at this\n\nthing"
    assert off == [system, user]


@pytest.mark.anyio
async def test_keep_markers_and_text_parts(mode: str) -> None:
    """Kept spans reach the model verbatim, without markers; text parts are compressed too."""
    content = [{"type": "text", "text": f"Quote:   {KEEP_OPEN}a    b{KEEP_CLOSE}"}]
    provider, store = FakeProvider(), MemoryStore()
    await send(
        mode,
        provider,
        Compressor(),
        store,
        messages=[{"role": "system", "content": content}, {"role": "user", "content": "x"}],
    )
    (msgs,) = sent_messages(provider)
    assert msgs[0]["content"] == [{"type": "text", "text": "Quote: a    b"}]


@pytest.mark.anyio
async def test_llm_compression_once_per_text(mode: str) -> None:
    """A long prompt is compressed once by the cheap model, cached, and the saving recorded."""
    provider, store = FakeProvider(reply=compressing_reply()), MemoryStore()
    compressor = Compressor(llm_model="gpt-4o-mini", min_tokens=100)
    for _ in range(3):
        await send(mode, provider, compressor, store)
    side = sent_messages(provider, "gpt-4o-mini")
    assert len(side) == 1  # compressed once, then served from the store
    sent = sent_messages(provider)
    assert all(m[0]["content"] == f"{FACTS}\n{CODE}" for m in sent)
    rows = entries(store)
    overhead = [e for e in rows if e.kind == "overhead"]
    assert [e.purpose for e in overhead] == ["compress"]
    assert overhead[0].feature == "untagged"
    report = store.aggregate(by="feature", since=None, until=None)
    assert report, "the ledger has rows"
    total_cost = sum(e.cost_nanos or 0 for e in rows)
    total_baseline = sum(e.baseline_nanos or 0 for e in rows)
    assert total_baseline > total_cost  # net of the compression call's cost


@pytest.mark.anyio
async def test_lossy_compression_is_rejected(mode: str) -> None:
    """A rewrite that drops a number or a name is not used; the original goes, with a warning."""
    provider, store = FakeProvider(reply=compressing_reply(lossy=True)), MemoryStore()
    compressor = Compressor(llm_model="gpt-4o-mini", min_tokens=100)
    with pytest.warns(CostwiseWarning, match="lost"):
        await send(mode, provider, compressor, store)
    await send(mode, provider, compressor, store)  # the rejection is remembered: no warning
    assert len(sent_messages(provider, "gpt-4o-mini")) == 1
    first, second = sent_messages(provider)
    assert "14 days" in first[0]["content"]
    assert first == second


@pytest.mark.anyio
async def test_compression_only_when_it_pays(mode: str) -> None:
    """Compressing for a model as cheap as the compressor, used once, is not worth it."""
    provider, store = FakeProvider(reply=compressing_reply()), MemoryStore()
    compressor = Compressor(llm_model="gpt-4o-mini", min_tokens=100)
    await send(mode, provider, compressor, store, model="gpt-4o-mini")
    assert len(provider.calls()) == 1  # no compression side call
    assert compressor.pays(1000, receiving_model="gpt-4o")
    assert not compressor.pays(1000, receiving_model="gpt-4o-mini")
    assert compressor.pays(1000, receiving_model="gpt-4o-mini", reuse=10)
    assert not compressor.pays(1000, receiving_model="no-such-model")


@pytest.mark.anyio
async def test_failed_compression_call_sends_original(mode: str) -> None:
    """A failing side call never fails the caller: the text goes uncompressed."""
    provider = FakeProvider(reply=compressing_reply()).script(Error(500), model="gpt-4o-mini")
    store = MemoryStore()
    compressor = Compressor(llm_model="gpt-4o-mini", min_tokens=100)
    with pytest.warns(CostwiseWarning, match="compression call failed"):
        resp = await send(mode, provider, compressor, store)
    assert resp.choices[0].message.content
    failed = [e for e in entries(store) if e.kind == "overhead"]
    assert failed[0].status == "InternalServerError"


def test_shared_store_serves_other_workers() -> None:
    """A compression cached by one client's compressor is reused by another (a second worker)."""
    shared = MemoryCacheStore()
    provider = FakeProvider(reply=compressing_reply())
    for _ in range(2):
        compressor = Compressor(llm_model="gpt-4o-mini", min_tokens=100, store=shared)
        fake_client(provider, strategies=[compressor]).chat.completions.create(
            model="gpt-4o", messages=[{"role": "system", "content": SYSTEM}]
        )
    assert len(sent_messages(provider, "gpt-4o-mini")) == 1


def test_streams_are_compressed() -> None:
    """The compressor only rewrites the request, so streamed calls are compressed too."""
    provider = FakeProvider()
    client = fake_client(provider, strategies=[Compressor()])
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "system", "content": "a     b"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert sent_messages(provider)[0][0]["content"] == "a b"


def test_bad_configuration() -> None:
    """Ratios outside (0, 1) are refused."""
    from costwise import ConfigurationError

    with pytest.raises(ConfigurationError):
        Compressor(target_ratio=1.5)
