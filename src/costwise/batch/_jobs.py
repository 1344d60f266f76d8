"""`BatchJobs`: the provider's Batch API (``/v1/files`` + ``/v1/batches``), priced and persisted."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._exceptions import BatchError
from ..ledger import LedgerEntry
from ..pricing import Usage, from_nanos, to_nanos

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion

    from .._client import AsyncCostwiseClient, CostwiseClient

__all__ = ["AsyncBatchJobs", "BatchJob", "BatchJobs", "BatchRequest", "BatchResult"]

_ENDPOINT = "/v1/chat/completions"
_DONE = frozenset({"completed", "expired", "cancelled"})
_STRATEGY = "batch_api"


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchRequest:
    """One chat completion to run in a batch job.

    Args:
        custom_id: your id for the request; results are matched back by it (unique per job).
        body: the ``chat.completions.create`` arguments (``model``, ``messages``, ...).
        feature: the spend tag its cost is recorded under.
    """

    custom_id: str
    body: Mapping[str, Any]
    feature: str = "untagged"


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchResult:
    """The outcome of one request of a batch job.

    Attributes:
        custom_id: the request's id.
        feature: its spend tag.
        response: the chat completion, or ``None`` when the request failed.
        error: why it failed (``batch_expired``, an HTTP status and message, ``missing``).
        cost: what it cost at the batch price (``None`` when unknown or failed).
    """

    custom_id: str
    feature: str
    response: ChatCompletion | None = None
    error: str | None = None
    cost: Decimal | None = None

    @property
    def ok(self) -> bool:
        """Whether the request was answered."""
        return self.response is not None


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchJob:
    """A submitted batch job as last seen (persisted in the state file).

    Attributes:
        id: the provider's batch id.
        status: the provider's status (``validating`` ... ``completed``, ``failed``,
            ``expired``, ``cancelled``).
        model: the one model all its requests use.
        features: custom_id to feature.
        submitted_at: Unix time of submission.
        collected: whether its results were recorded in the ledger.
    """

    id: str
    status: str
    model: str
    input_file_id: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    features: Mapping[str, str] = field(default_factory=dict)
    submitted_at: float = 0.0
    collected: bool = False

    @property
    def finished(self) -> bool:
        """Whether the provider is done with the job (results, if any, can be collected)."""
        return self.status in _DONE or self.status == "failed"


class _State:
    """Submitted jobs in a small SQLite file, so another process (or a restart) can collect."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL,"
                " model TEXT NOT NULL, input_file_id TEXT NOT NULL, output_file_id TEXT,"
                " error_file_id TEXT, features TEXT NOT NULL, submitted_at REAL NOT NULL,"
                " collected INTEGER NOT NULL DEFAULT 0)"
            )

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def save(self, job: BatchJob) -> None:
        with self._lock, self._connect() as db:
            db.execute(
                "INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET"
                " status=excluded.status, output_file_id=excluded.output_file_id,"
                " error_file_id=excluded.error_file_id,"
                " collected=max(jobs.collected, excluded.collected)",
                (
                    job.id,
                    job.status,
                    job.model,
                    job.input_file_id,
                    job.output_file_id,
                    job.error_file_id,
                    json.dumps(dict(job.features)),
                    job.submitted_at,
                    int(job.collected),
                ),
            )

    def load(self, batch_id: str) -> BatchJob | None:
        with self._lock, self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (batch_id,)).fetchone()
        return None if row is None else _job(row)

    def all(self) -> list[BatchJob]:
        with self._lock, self._connect() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY submitted_at").fetchall()
        return [_job(r) for r in rows]


def _job(row: Sequence[Any]) -> BatchJob:
    return BatchJob(
        id=row[0],
        status=row[1],
        model=row[2],
        input_file_id=row[3],
        output_file_id=row[4],
        error_file_id=row[5],
        features=json.loads(row[6]),
        submitted_at=row[7],
        collected=bool(row[8]),
    )


@dataclass(frozen=True, slots=True)
class _Api:
    """An SDK request the job logic needs made: ``client.<path>(**kwargs)``.

    The job logic is written once, as generators that yield these; `BatchJobs` makes the
    requests with a sync client and `AsyncBatchJobs` awaits them with an async one (the
    same design as the strategy flows).
    """

    path: tuple[str, str]
    kwargs: dict[str, Any]


_Flow = Generator[_Api, Any, Any]


class _Jobs:
    """What `BatchJobs` and `AsyncBatchJobs` share: validation, state, results, ledger."""

    def __init__(
        self,
        client: Any,
        *,
        state: str | os.PathLike[str] = "costwise-batches.sqlite",
        max_requests: int = 50_000,
        max_bytes: int = 200 * 2**20,
    ) -> None:
        self.client = client
        self.state = _State(state)
        self.max_requests = max_requests
        self.max_bytes = max_bytes

    def job(self, batch_id: str) -> BatchJob:
        """The job as saved in the state file.

        Raises:
            BatchError: the state file does not know `batch_id`.
        """
        job = self.state.load(batch_id)
        if job is None:
            msg = f"unknown batch job {batch_id!r} (not in {self.state.path})"
            raise BatchError(msg)
        return job

    def unfinished(self) -> list[BatchJob]:
        """Jobs submitted (by any process using this state file) and not collected yet."""
        return [j for j in self.state.all() if not j.collected]

    # -- the job logic, as flows of SDK requests -------------------------------------------

    def _submit_flow(
        self, requests: Iterable[BatchRequest], metadata: Mapping[str, str] | None
    ) -> _Flow:
        reqs = list(requests)
        if not reqs:
            msg = "a batch job needs at least one request"
            raise BatchError(msg)
        if len(reqs) > self.max_requests:
            msg = f"{len(reqs)} requests exceed the {self.max_requests} a batch job may hold"
            raise BatchError(msg)
        ids = [r.custom_id for r in reqs]
        if len(set(ids)) != len(ids) or not all(ids):
            msg = "every request of a batch job needs a unique, non-empty custom_id"
            raise BatchError(msg)
        models = {str(r.body.get("model") or "") for r in reqs}
        if len(models) != 1 or "" in models:
            msg = f"a batch job must use exactly one model, got {sorted(models)}"
            raise BatchError(msg)
        for r in reqs:
            if r.body.get("stream"):
                msg = f"request {r.custom_id!r}: streaming is not available in a batch job"
                raise BatchError(msg)
        data = "".join(
            json.dumps(
                {
                    "custom_id": r.custom_id,
                    "method": "POST",
                    "url": _ENDPOINT,
                    "body": dict(r.body),
                },
                ensure_ascii=False,
            )
            + "\n"
            for r in reqs
        ).encode()
        if len(data) > self.max_bytes:
            msg = f"the batch input is {len(data)} bytes, over the {self.max_bytes} limit"
            raise BatchError(msg)
        uploaded = yield _Api(
            ("files", "create"),
            {"file": ("costwise-batch.jsonl", data, "application/jsonl"), "purpose": "batch"},
        )
        batch = yield _Api(
            ("batches", "create"),
            {
                "input_file_id": uploaded.id,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
                "metadata": dict(metadata) if metadata else None,
            },
        )
        job = BatchJob(
            id=batch.id,
            status=batch.status,
            model=models.pop(),
            input_file_id=uploaded.id,
            features={r.custom_id: r.feature for r in reqs},
            submitted_at=time.time(),
        )
        self.state.save(job)
        return job

    def _poll_flow(self, batch_id: str) -> _Flow:
        job = self.job(batch_id)
        batch = yield _Api(("batches", "retrieve"), {"batch_id": batch_id})
        updated = replace(
            job,
            status=batch.status,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
        )
        self.state.save(updated)
        if batch.status == "failed":
            errors = [e.message for e in (batch.errors.data or [])] if batch.errors else []
            reason = "; ".join(e or "?" for e in errors) or "no reason given"
            msg = f"batch job {batch_id} failed: {reason}"
            raise BatchError(msg)
        return updated

    def _collect_flow(self, batch_id: str) -> _Flow:
        job = yield from self._poll_flow(batch_id)
        if not job.finished:
            return None
        lines: dict[str, dict[str, Any]] = {}
        for file_id in (job.output_file_id, job.error_file_id):
            if file_id:
                content = yield _Api(("files", "content"), {"file_id": file_id})
                for raw in content.text.splitlines():
                    if raw.strip():
                        line = json.loads(raw)
                        lines.setdefault(str(line.get("custom_id")), line)
        results, entries = [], []
        for custom_id, feature in job.features.items():
            result, entry = self._result(job, custom_id, feature, lines.get(custom_id))
            results.append(result)
            entries.append(entry)
        self.client.ledger.record(entries)
        self.state.save(replace(job, collected=True))
        return results

    def _sdk(self, request: _Api) -> Any:
        resource, method = request.path
        return getattr(getattr(self.client, resource), method)(**request.kwargs)

    def _result(
        self, job: BatchJob, custom_id: str, feature: str, line: Mapping[str, Any] | None
    ) -> tuple[BatchResult, LedgerEntry]:
        from openai.types.chat import ChatCompletion

        entry_id = hashlib.sha256(f"costwise-batch\0{job.id}\0{custom_id}".encode()).hexdigest()[
            :32
        ]
        base: dict[str, Any] = {
            "id": entry_id,
            "call_id": entry_id,
            "ts": job.submitted_at,
            "feature": feature,
            "requested_model": job.model,
            "strategy": _STRATEGY,
            "final": True,
            "detail": {"batch_id": job.id, "custom_id": custom_id},
        }
        response = (line or {}).get("response") or {}
        status = response.get("status_code")
        if line is None or status != 200:
            if line is None:
                error = "missing"
            elif line.get("error"):
                error = str(line["error"].get("code") or line["error"].get("message"))
            else:
                message = ((response.get("body") or {}).get("error") or {}).get("message")
                error = f"HTTP {status}: {message}"
            entry = LedgerEntry(
                **base, model=job.model, status=error.split(":")[0], cost_nanos=0, baseline_nanos=0
            )
            return BatchResult(custom_id=custom_id, feature=feature, error=error), entry
        completion = ChatCompletion.model_validate(response["body"])
        usage = Usage.from_openai(completion.usage) or Usage(prompt_tokens=0, completion_tokens=0)
        prices = self.client.prices
        cost = prices.cost(completion.model or job.model, usage, batch=True)
        baseline = prices.cost(job.model, usage)
        entry = LedgerEntry(
            **base,
            model=completion.model or job.model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_nanos=None if cost is None else to_nanos(cost),
            baseline_nanos=None if baseline is None else to_nanos(baseline),
        )
        nanos = entry.cost_nanos
        return (
            BatchResult(
                custom_id=custom_id,
                feature=feature,
                response=completion,
                cost=None if nanos is None else from_nanos(nanos),
            ),
            entry,
        )


class BatchJobs(_Jobs):
    """Run many chat completions as provider batch jobs, at the batch discount.

    Use it for work that can wait (up to the provider's 24-hour window): evaluations,
    back-fills, nightly enrichment. OpenAI charges half price for it. `submit` uploads the
    requests as a JSONL file (``/v1/files``) and creates the job (``/v1/batches``); the job
    is written to a state file at once, so a process that restarts can `collect` it later
    (`unfinished` lists them). Results are matched to requests by ``custom_id`` and recorded
    in the ledger once each, priced with the model's ``batch_discount``, against a baseline
    of the interactive price: entry ids derive from the batch id and custom_id, so
    collecting twice never double counts. Requests that failed or expired come back as
    per-item failures; none is dropped silently. `AsyncBatchJobs` is the async twin.

    Args:
        client: a `CostwiseClient` (its ledger and prices are used; its files and batches
            resources make the requests).
        state: the SQLite state file (created if missing).
        max_requests: the most requests per job (OpenAI: 50,000).
        max_bytes: the largest input file (OpenAI: 200 MB).

    Example:
        >>> jobs = BatchJobs(client, state="batches.sqlite")
        >>> job = jobs.submit([BatchRequest(custom_id="t1", body={"model": "gpt-4o-mini",
        ...                    "messages": [{"role": "user", "content": "Tag: ..."}]})])
        >>> results = jobs.wait(job.id, poll_interval=60)
    """

    client: CostwiseClient

    def _run(self, flow: _Flow) -> Any:
        try:
            request = next(flow)
            while True:
                try:
                    value = self._sdk(request)
                except Exception as exc:
                    request = flow.throw(exc)
                else:
                    request = flow.send(value)
        except StopIteration as stop:
            return stop.value

    def submit(
        self,
        requests: Iterable[BatchRequest],
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> BatchJob:
        """Upload `requests` and start one batch job; it is saved to the state file.

        Raises:
            BatchError: no requests, too many or too large, duplicate custom_ids, requests
                for different models, or a request without a model.
        """
        job: BatchJob = self._run(self._submit_flow(requests, metadata))
        return job

    def poll(self, batch_id: str) -> BatchJob:
        """Ask the provider for the job's status; the state file is updated."""
        job: BatchJob = self._run(self._poll_flow(batch_id))
        return job

    def collect(self, batch_id: str) -> list[BatchResult] | None:
        """The job's results, recorded in the ledger; ``None`` while it is still running.

        Every request of the job gets one result, in submission order: answered, failed
        (HTTP error, ``batch_expired``), or ``missing`` when the provider returned nothing
        for it. Collecting again returns the same results and records nothing new.

        Raises:
            BatchError: the job failed as a whole (validation), or is unknown.
        """
        results: list[BatchResult] | None = self._run(self._collect_flow(batch_id))
        return results

    def wait(
        self,
        batch_id: str,
        *,
        poll_interval: float = 60.0,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[BatchResult]:
        """Poll until the job finishes, then `collect` it.

        Raises:
            BatchError: the job failed, or `timeout` seconds passed first (the job keeps
                running and can be collected later).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            results = self.collect(batch_id)
            if results is not None:
                return results
            _check_deadline(batch_id, deadline, timeout)
            sleep(poll_interval)


class AsyncBatchJobs(_Jobs):
    """The async twin of `BatchJobs`, for an `AsyncCostwiseClient` (same state file format).

    Example:
        >>> jobs = AsyncBatchJobs(async_client, state="batches.sqlite")
        >>> job = await jobs.submit(requests)
        >>> results = await jobs.wait(job.id, poll_interval=60)
    """

    client: AsyncCostwiseClient

    async def _run(self, flow: _Flow) -> Any:
        try:
            request = next(flow)
            while True:
                try:
                    value = await self._sdk(request)
                except Exception as exc:
                    request = flow.throw(exc)
                else:
                    request = flow.send(value)
        except StopIteration as stop:
            return stop.value

    async def submit(
        self,
        requests: Iterable[BatchRequest],
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> BatchJob:
        """Upload `requests` and start one batch job (see `BatchJobs.submit`)."""
        job: BatchJob = await self._run(self._submit_flow(requests, metadata))
        return job

    async def poll(self, batch_id: str) -> BatchJob:
        """Ask the provider for the job's status; the state file is updated."""
        job: BatchJob = await self._run(self._poll_flow(batch_id))
        return job

    async def collect(self, batch_id: str) -> list[BatchResult] | None:
        """The job's results, recorded once; ``None`` while it runs (see `BatchJobs.collect`)."""
        results: list[BatchResult] | None = await self._run(self._collect_flow(batch_id))
        return results

    async def wait(
        self,
        batch_id: str,
        *,
        poll_interval: float = 60.0,
        timeout: float | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> list[BatchResult]:
        """Poll until the job finishes, then `collect` it (``sleep`` default: anyio's)."""
        if sleep is None:
            import anyio

            sleep = anyio.sleep
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            results = await self.collect(batch_id)
            if results is not None:
                return results
            _check_deadline(batch_id, deadline, timeout)
            await sleep(poll_interval)


def _check_deadline(batch_id: str, deadline: float | None, timeout: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        msg = f"batch job {batch_id} still running after {timeout} s; collect it later"
        raise BatchError(msg)
