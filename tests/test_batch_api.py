"""The provider Batch API: submit, poll, collect at the batch discount, restart-safe, idempotent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from costwise import BatchError
from costwise.batch import AsyncBatchJobs, BatchJobs, BatchRequest
from costwise.ledger import MemoryStore
from costwise.pricing import Usage
from costwise.testing import FakeProvider, fake_async_client, fake_client


def requests(n: int, *, model: str = "gpt-4o-mini") -> list[BatchRequest]:
    return [
        BatchRequest(
            custom_id=f"req-{i}",
            body={"model": model, "messages": [{"role": "user", "content": f"Tag item {i}"}]},
            feature="tagging" if i % 2 else "search",
        )
        for i in range(n)
    ]


def jobs_for(provider: FakeProvider, tmp_path: Path, store: MemoryStore | None = None) -> BatchJobs:
    client = fake_client(provider, ledger=store if store is not None else MemoryStore())
    return BatchJobs(client, state=tmp_path / "batches.sqlite")


def no_sleep(_: float) -> None:
    """Polling in tests does not wait."""


def test_submit_wait_collect(tmp_path: Path) -> None:
    """Results come back matched by custom_id, recorded once each at half price."""
    provider, store = FakeProvider(), MemoryStore()
    jobs = jobs_for(provider, tmp_path, store)
    job = jobs.submit(requests(4), metadata={"run": "test"})
    assert job.status == "validating"
    results = jobs.wait(job.id, poll_interval=0, sleep=no_sleep)
    assert [r.custom_id for r in results] == ["req-0", "req-1", "req-2", "req-3"]
    assert all(r.ok and r.error is None for r in results)
    entries = list(store.entries())
    assert len(entries) == 4
    assert {e.feature for e in entries} == {"tagging", "search"}
    for e in entries:
        usage = Usage(prompt_tokens=e.prompt_tokens, completion_tokens=e.completion_tokens)
        full = jobs.client.prices.cost("gpt-4o-mini", usage)
        half = jobs.client.prices.cost("gpt-4o-mini", usage, batch=True)
        assert full is not None and half is not None and half < full
        assert e.cost == half and e.baseline == full
        assert e.strategy == "batch_api" and e.final
    batch_lines = [r for r in provider.calls() if r.headers.get("x-costwise-batch") == job.id]
    assert len(batch_lines) == 4


def test_collect_is_idempotent(tmp_path: Path) -> None:
    """Collecting a job twice returns the same results and records nothing new."""
    store = MemoryStore()
    jobs = jobs_for(FakeProvider(), tmp_path, store)
    job = jobs.submit(requests(3))
    first = jobs.wait(job.id, poll_interval=0, sleep=no_sleep)
    second = jobs.collect(job.id)
    assert second is not None and [r.custom_id for r in second] == [r.custom_id for r in first]
    assert len(list(store.entries())) == 3
    assert jobs.job(job.id).collected


def test_restarted_process_collects(tmp_path: Path) -> None:
    """A job submitted by one process is found in the state file and collected by another."""
    provider = FakeProvider()
    job = jobs_for(provider, tmp_path).submit(requests(2))
    store = MemoryStore()
    later = jobs_for(provider, tmp_path, store)  # a new client and BatchJobs: a restart
    assert [j.id for j in later.unfinished()] == [job.id]
    assert later.collect(job.id) is None  # first poll: still in progress
    results = later.wait(job.id, poll_interval=0, sleep=no_sleep)
    assert len(results) == 2 and all(r.ok for r in results)
    assert later.unfinished() == []
    assert len(list(store.entries())) == 2


def test_expired_job_gives_per_item_failures(tmp_path: Path) -> None:
    """An expired job returns what finished and a failure for each request that did not."""
    provider, store = FakeProvider(), MemoryStore()
    provider.batches.expire_next(completed=2)
    jobs = jobs_for(provider, tmp_path, store)
    job = jobs.submit(requests(5))
    results = jobs.wait(job.id, poll_interval=0, sleep=no_sleep)
    assert [r.ok for r in results] == [True, True, False, False, False]
    assert {r.error for r in results if not r.ok} == {"batch_expired"}
    entries = {e.detail["custom_id"]: e for e in store.entries()}
    assert len(entries) == 5
    assert entries["req-4"].status == "batch_expired" and entries["req-4"].cost_nanos == 0


def test_failed_line_is_a_per_item_failure(tmp_path: Path) -> None:
    """A request the provider answered with an HTTP error is reported, the others are fine."""
    provider = FakeProvider()
    provider.batches.fail_line("req-1", status=500, message="boom")
    jobs = jobs_for(provider, tmp_path)
    results = jobs.wait(jobs.submit(requests(3)).id, poll_interval=0, sleep=no_sleep)
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error == "HTTP 500: boom"


def test_failed_job_raises(tmp_path: Path) -> None:
    """A job the provider rejects as a whole raises BatchError with its reason."""
    provider = FakeProvider()
    provider.batches.fail_next("line 1 is not valid")
    jobs = jobs_for(provider, tmp_path)
    job = jobs.submit(requests(2))
    with pytest.raises(BatchError, match="line 1 is not valid"):
        jobs.wait(job.id, poll_interval=0, sleep=no_sleep)


def test_wait_timeout(tmp_path: Path) -> None:
    """A job still running when the timeout passes raises; it can be collected later."""
    provider = FakeProvider()
    provider.batches.steps = 100
    jobs = jobs_for(provider, tmp_path)
    job = jobs.submit(requests(1))
    with pytest.raises(BatchError, match="still running"):
        jobs.wait(job.id, poll_interval=0, timeout=0, sleep=no_sleep)


@pytest.mark.parametrize(
    ("reqs", "match"),
    [
        ([], "at least one"),
        ([*requests(2), requests(1)[0]], "unique"),
        ([*requests(1), *requests(2, model="gpt-4o")[1:]], "one model"),
        (
            [BatchRequest(custom_id="s", body={"model": "gpt-4o", "stream": True, "messages": []})],
            "streaming",
        ),
    ],
)
def test_bad_batches_are_refused(tmp_path: Path, reqs: list[Any], match: str) -> None:
    """Empty, duplicate-id, mixed-model and streaming batches are refused before upload."""
    provider = FakeProvider()
    with pytest.raises(BatchError, match=match):
        jobs_for(provider, tmp_path).submit(reqs)
    assert provider.requests == []


def test_oversized_batch_is_refused(tmp_path: Path) -> None:
    """Too many requests or too many bytes for one job are refused."""
    provider = FakeProvider()
    jobs = BatchJobs(fake_client(provider), state=tmp_path / "s.sqlite", max_requests=2)
    with pytest.raises(BatchError, match="exceed"):
        jobs.submit(requests(3))
    small = BatchJobs(fake_client(provider), state=tmp_path / "s.sqlite", max_bytes=10)
    with pytest.raises(BatchError, match="bytes"):
        small.submit(requests(1))
    with pytest.raises(BatchError, match="unknown batch job"):
        small.job("batch_nope")


# -- AsyncBatchJobs: the same job logic through an async client ----------------------------


def async_jobs_for(
    provider: FakeProvider, tmp_path: Path, store: MemoryStore | None = None
) -> AsyncBatchJobs:
    client = fake_async_client(provider, ledger=store if store is not None else MemoryStore())
    return AsyncBatchJobs(client, state=tmp_path / "batches.sqlite")


async def no_async_sleep(_: float) -> None:
    """Polling in tests does not wait."""


@pytest.mark.anyio
async def test_async_submit_wait_collect_once(tmp_path: Path) -> None:
    """The async twin: results matched by custom_id, recorded once each at the batch price."""
    provider, store = FakeProvider(), MemoryStore()
    jobs = async_jobs_for(provider, tmp_path, store)
    job = await jobs.submit(requests(4), metadata={"run": "test"})
    results = await jobs.wait(job.id, poll_interval=0, sleep=no_async_sleep)
    assert [r.custom_id for r in results] == ["req-0", "req-1", "req-2", "req-3"]
    assert all(r.ok for r in results)
    again = await jobs.collect(job.id)
    assert again is not None and [r.custom_id for r in again] == [r.custom_id for r in results]
    entries = list(store.entries())
    assert len(entries) == 4 and all(e.strategy == "batch_api" for e in entries)
    for e in entries:
        usage = Usage(prompt_tokens=e.prompt_tokens, completion_tokens=e.completion_tokens)
        assert e.cost == jobs.client.prices.cost("gpt-4o-mini", usage, batch=True)
        assert e.baseline == jobs.client.prices.cost("gpt-4o-mini", usage)


@pytest.mark.anyio
async def test_async_collects_a_job_a_sync_process_submitted(tmp_path: Path) -> None:
    """Both twins share the state file: a sync worker submits, an async service collects."""
    provider, store = FakeProvider(), MemoryStore()
    job = jobs_for(provider, tmp_path).submit(requests(2))
    jobs = async_jobs_for(provider, tmp_path, store)
    assert [j.id for j in jobs.unfinished()] == [job.id]
    results = await jobs.wait(job.id, poll_interval=0, sleep=no_async_sleep)
    assert len(results) == 2 and jobs.unfinished() == [] and len(list(store.entries())) == 2


@pytest.mark.anyio
async def test_async_failures(tmp_path: Path) -> None:
    """Per-item failures, a rejected job and a timeout behave as in the sync twin."""
    provider = FakeProvider()
    provider.batches.fail_line("req-1", status=500, message="boom")
    jobs = async_jobs_for(provider, tmp_path)
    results = await jobs.wait(
        (await jobs.submit(requests(3))).id, poll_interval=0, sleep=no_async_sleep
    )
    assert [r.ok for r in results] == [True, False, True] and results[1].error == "HTTP 500: boom"
    provider.batches.fail_next("line 1 is not valid")
    job = await jobs.submit(requests(2))
    with pytest.raises(BatchError, match="line 1 is not valid"):
        await jobs.wait(job.id, poll_interval=0, sleep=no_async_sleep)
    provider.batches.steps = 100
    job = await jobs.submit(requests(1))
    with pytest.raises(BatchError, match="still running"):
        await jobs.wait(job.id, poll_interval=0, timeout=0, sleep=no_async_sleep)
    with pytest.raises(BatchError, match="at least one"):
        await jobs.submit([])
