"""Batching: pack many small questions into one request, or run them as provider batch jobs.

Two ways to pay less for bulk work, neither of them a per-call strategy:

- `Batcher` / `AsyncBatcher` pack independent questions that share a model and a system
  prompt into one request (the shared prompt is paid once per pack), give each caller its
  own answer, re-ask anything the model did not answer cleanly, and split the request's
  cost exactly across the callers' features in the ledger.
- `BatchJobs` / `AsyncBatchJobs` run requests through the provider's Batch API
  (``/v1/files`` + ``/v1/batches``) at its batch discount (50% at OpenAI), with the job
  persisted so a restarted process can collect it.
"""

from __future__ import annotations

from ._batcher import AsyncBatcher, Batcher
from ._jobs import AsyncBatchJobs, BatchJob, BatchJobs, BatchRequest, BatchResult
from ._packing import pack_messages, parse_answers, split_exact

__all__ = [
    "AsyncBatchJobs",
    "AsyncBatcher",
    "BatchJob",
    "BatchJobs",
    "BatchRequest",
    "BatchResult",
    "Batcher",
    "pack_messages",
    "parse_answers",
    "split_exact",
]
