"""`Batcher` and `AsyncBatcher`: many small questions, one request, each caller its own answer."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._exceptions import BatchError
from ..ledger import LedgerEntry
from ..pricing import Usage, to_nanos
from ._answers import AnswerCache
from ._packing import ANSWER_SCHEMA, pack_messages, parse_answers, split_exact

if TYPE_CHECKING:
    from .._client import AsyncCostwiseClient, CostwiseClient
    from ..tokens import Tokenizer

__all__ = ["AsyncBatcher", "Batcher"]

logger = logging.getLogger("costwise")

_STRATEGY = "batcher"


@dataclass(slots=True)
class _Item:
    question: str
    feature: str
    future: Any
    call_id: str = field(default_factory=lambda: os.urandom(16).hex())
    ts: float = field(default_factory=time.time)


def _entry_id(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _text(resp: Any) -> str:
    try:
        return str(resp.choices[0].message.content or "")
    except (AttributeError, IndexError, TypeError):
        return ""


class _Core:
    """Everything but I/O: request building, answer parsing, ledger entries."""

    def __init__(
        self,
        client: Any,
        *,
        model: str,
        system: str | None,
        max_size: int,
        max_wait: float,
        structured: bool | None,
        feature: str | None,
        tokenizer: Tokenizer | None,
        create_kwargs: Mapping[str, Any],
    ) -> None:
        if not model:
            msg = "Batcher: model is required"
            raise BatchError(msg)
        if not 1 <= max_size <= 100:
            msg = f"Batcher: max_size must be between 1 and 100, got {max_size}"
            raise BatchError(msg)
        if max_wait < 0:
            msg = f"Batcher: max_wait must not be negative, got {max_wait}"
            raise BatchError(msg)
        for key in ("model", "messages", "stream", "n", "response_format"):
            if key in create_kwargs:
                msg = f"Batcher: {key!r} is set by the batcher and cannot be passed"
                raise BatchError(msg)
        self.client = client
        self.model = model
        self.system = system
        self.max_size = max_size
        self.max_wait = max_wait
        self.feature = feature
        self.create_kwargs = dict(create_kwargs)
        self.prices = client.prices
        price = self.prices.lookup(model)
        self.structured = (
            structured
            if structured is not None
            else (price is not None and "json_schema" in price.capabilities)
        )
        if tokenizer is None:
            meter = getattr(getattr(client, "_costwise", None), "meter", None)
            tokenizer = getattr(meter, "tokenizer", None)
        if tokenizer is None:
            from ..tokens import default_tokenizer

            tokenizer = default_tokenizer()
        self.tokenizer: Tokenizer = tokenizer
        # The client's response cache, for answers asked again (None: no cache, or sampled)
        self.answers = AnswerCache.of(client, self.create_kwargs)

    def feature_of(self, feature: str | None) -> str:
        if feature:
            return feature
        if self.feature:
            return self.feature
        from .._feature import current_feature

        return current_feature() or "untagged"

    def single(self, question: str) -> list[dict[str, Any]]:
        msgs: list[dict[str, Any]] = []
        if self.system:
            msgs.append({"role": "system", "content": self.system})
        msgs.append({"role": "user", "content": question})
        return msgs

    def request(self, questions: Sequence[str]) -> dict[str, Any]:
        kwargs = dict(self.create_kwargs)
        kwargs["model"] = self.model
        if len(questions) == 1:
            kwargs["messages"] = self.single(questions[0])
            return kwargs
        kwargs["messages"] = pack_messages(self.system, questions, structured=self.structured)
        for limit in ("max_tokens", "max_completion_tokens"):
            if isinstance(kwargs.get(limit), int):
                kwargs[limit] *= len(questions)  # the limit was meant per answer
        if self.structured:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answers", "strict": True, "schema": ANSWER_SCHEMA},
            }
        return kwargs

    # -- answers asked again ---------------------------------------------------------------

    def answer_key(self, question: str) -> str | None:
        """The answer cache's key of a question (``None``: no answer cache)."""
        if self.answers is None:
            return None
        return self.answers.key(self.request([question]))

    def lookup(self, item: _Item, key: str | None) -> str | None:
        """A stored answer for `item`, recorded in the ledger as a zero-cost hit."""
        if key is None or self.answers is None:
            return None
        answer = self.answers.get(key)
        if answer is not None:
            self.client.ledger.record([self.hit(item, answer)])
        return answer

    def remember(self, items: Sequence[_Item], answers: Mapping[int, str]) -> None:
        """Store the answers of `items` (by index) for questions asked again."""
        if self.answers is None:
            return
        for k, answer in answers.items():
            key = self.answer_key(items[k].question)
            if key is not None:
                self.answers.put(key, answer)

    def hit(self, item: _Item, answer: str) -> LedgerEntry:
        """The entry of a question answered from the cache: $0, its baseline what it
        would have cost alone (token counts are estimates: nothing was sent)."""
        prompt = self.tokenizer.count_messages(self.single(item.question), self.model)
        completion = self.tokenizer.count(answer, self.model)
        alone = self.prices.cost(
            self.model, Usage(prompt_tokens=prompt, completion_tokens=completion)
        )
        return LedgerEntry(
            id=_entry_id("costwise-batch-hit", item.call_id),
            call_id=item.call_id,
            ts=item.ts,
            feature=item.feature,
            requested_model=self.model,
            model=self.model,
            kind="hit",
            strategy="cache",  # the saving is the cache's; detail says it came via a batcher
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_nanos=0,
            baseline_nanos=None if alone is None else to_nanos(alone),
            final=True,
            estimated=True,
            detail={"batcher": True},
        )

    # -- ledger ---------------------------------------------------------------------------

    def _base(self, item: _Item, **fields: Any) -> LedgerEntry:
        return LedgerEntry(
            call_id=item.call_id,
            ts=item.ts,
            feature=item.feature,
            requested_model=self.model,
            strategy=_STRATEGY,
            **fields,
        )

    def settle(
        self, items: Sequence[_Item], resp: Any, started: float
    ) -> tuple[dict[int, str], list[LedgerEntry]]:
        """The answers by item index, and one ledger entry per caller splitting the cost."""
        n = len(items)
        content = _text(resp)
        if n == 1:
            answers = {0: content}
        else:
            found = parse_answers(content, n, structured=self.structured)
            answers = {i - 1: a for i, a in found.items()}
        usage = Usage.from_openai(getattr(resp, "usage", None))
        estimated = usage is None
        if usage is None:
            usage = Usage(
                prompt_tokens=self.tokenizer.count_messages(
                    self.request([i.question for i in items])["messages"], self.model
                ),
                completion_tokens=self.tokenizer.count(content, self.model),
            )
        model = str(getattr(resp, "model", None) or self.model)
        cost = self.prices.cost(model, usage)
        # What each caller's question would have cost alone (the baseline and the weights).
        alone_prompt = [
            self.tokenizer.count_messages(self.single(it.question), self.model) for it in items
        ]
        alone_completion = [self.tokenizer.count(answers.get(k, ""), self.model) for k in range(n)]
        alone_nanos: list[int | None] = []
        for p, c in zip(alone_prompt, alone_completion, strict=True):
            alone = self.prices.cost(self.model, Usage(prompt_tokens=p, completion_tokens=c))
            alone_nanos.append(None if alone is None else to_nanos(alone))
        weights = (
            [a or 0 for a in alone_nanos]
            if all(a is not None for a in alone_nanos)
            else [p + c for p, c in zip(alone_prompt, alone_completion, strict=True)]
        )
        costs: list[int | None] = (
            [None] * n if cost is None else list(split_exact(to_nanos(cost), weights))
        )
        prompts = split_exact(usage.prompt_tokens, alone_prompt)
        completions = split_exact(
            usage.completion_tokens, alone_completion if any(alone_completion) else weights
        )
        cached = split_exact(usage.cached_tokens, alone_prompt)
        latency = (time.perf_counter() - started) * 1000.0
        entries = []
        resp_id = str(getattr(resp, "id", "") or os.urandom(8).hex())
        for k, item in enumerate(items):
            answered = k in answers
            entries.append(
                self._base(
                    item,
                    id=_entry_id("costwise-pack", resp_id, item.call_id),
                    model=model,
                    prompt_tokens=prompts[k],
                    completion_tokens=completions[k],
                    cached_tokens=cached[k],
                    cost_nanos=costs[k],
                    baseline_nanos=(alone_nanos[k] if n > 1 else costs[k]) if answered else 0,
                    final=answered,
                    estimated=estimated,
                    latency_ms=latency,
                    reason=None if answered else "unanswered",
                    detail={"packed": n, "request_id": resp_id},
                )
            )
        return answers, entries

    def reasked(self, item: _Item, resp: Any, started: float) -> LedgerEntry:
        """The entry of a question asked again on its own (its baseline is its own cost)."""
        usage = Usage.from_openai(getattr(resp, "usage", None))
        estimated = usage is None
        if usage is None:
            usage = Usage(
                prompt_tokens=self.tokenizer.count_messages(self.single(item.question), self.model),
                completion_tokens=self.tokenizer.count(_text(resp), self.model),
            )
        model = str(getattr(resp, "model", None) or self.model)
        cost = self.prices.cost(model, usage)
        nanos = None if cost is None else to_nanos(cost)
        return self._base(
            item,
            id=_entry_id("costwise-reask", str(getattr(resp, "id", "")), item.call_id),
            model=model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            cost_nanos=nanos,
            baseline_nanos=nanos,
            final=True,
            estimated=estimated,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            detail={"reasked": True},
        )

    def failed(
        self, items: Sequence[_Item], exc: BaseException, started: float
    ) -> list[LedgerEntry]:
        latency = (time.perf_counter() - started) * 1000.0
        return [
            self._base(
                item,
                id=os.urandom(16).hex(),
                model=self.model,
                status=type(exc).__name__,
                final=True,
                latency_ms=latency,
            )
            for item in items
        ]


class Batcher:
    """Answer many independent questions with fewer requests, from synchronous code.

    Use it for bulk work where many short questions share one model and one system prompt
    (classify these tickets, tag these products): `map` packs up to `max_size` of them into
    each request, so the system prompt and instructions are paid once per pack instead of
    once per question. Answers are read back as a JSON array with ids when the model supports
    structured output (per the price table's ``json_schema`` capability), as numbered text
    otherwise; a missing, duplicated or unparseable answer is asked again on its own, never
    given to another caller. Each caller's share of a packed request is recorded in the
    ledger under its own feature (exact nano-dollar split, summing to the request's cost).

    `submit` is for questions that arrive one at a time from many threads. With the default
    ``max_wait=0`` each is sent at once (interactive traffic is never delayed); with
    ``max_wait > 0`` questions wait up to that many seconds for others to share a request.

    Packed requests go straight to the provider through the SDK, not through the client's
    strategies (a response cache would key on the whole pack). When the client has a
    `ResponseCache` and the requests are repeatable (``temperature=0`` or a seed), each
    answer is stored on its own in that cache's store, and a question asked again is
    answered from it at $0 without being sent (a ledger ``hit`` of the ``cache``).

    Args:
        client: a `CostwiseClient` (its ledger and prices are used).
        model: the model every question goes to.
        system: the shared system prompt.
        max_size: the most questions per request (1-100).
        max_wait: seconds a submitted question may wait for company (0: never).
        structured: force (``True``) or forbid (``False``) JSON answers; ``None`` decides
            from the model's capabilities.
        feature: the default feature of the questions.
        tokenizer: counts tokens for the cost split (default: the client's).
        **create_kwargs: other arguments for ``chat.completions.create`` (``temperature``,
            ``max_tokens`` per answer, ...).

    Raises:
        BatchError: an invalid size or wait, or an argument the batcher sets itself.

    Example:
        >>> with Batcher(client, model="gpt-4o-mini", system="Answer in one word.") as b:
        ...     answers = b.map(["Capital of France?", "Capital of Italy?"])
    """

    def __init__(
        self,
        client: CostwiseClient,
        *,
        model: str,
        system: str | None = None,
        max_size: int = 10,
        max_wait: float = 0.0,
        structured: bool | None = None,
        feature: str | None = None,
        tokenizer: Tokenizer | None = None,
        **create_kwargs: Any,
    ) -> None:
        from openai.resources.chat import Completions

        self._core = _Core(
            client,
            model=model,
            system=system,
            max_size=max_size,
            max_wait=max_wait,
            structured=structured,
            feature=feature,
            tokenizer=tokenizer,
            create_kwargs=create_kwargs,
        )
        # The SDK's own resource on the same client: the packed request skips the strategies.
        self._sdk = Completions(client)
        self._pending: list[_Item] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def structured(self) -> bool:
        """Whether packed answers are requested as JSON (else numbered text)."""
        return self._core.structured

    def submit(self, question: str, *, feature: str | None = None) -> Future[str]:
        """Queue one question; the future resolves to its answer (or to the request's error).

        Raises:
            BatchError: the batcher is closed, or the question is empty.
        """
        item = self._enqueue(question, feature)
        with self._lock:
            ready = self._take_ready()
        for chunk in ready:
            self._executor().submit(self._send, chunk)
        return item.future  # type: ignore[no-any-return]

    def map(self, questions: Iterable[str], *, feature: str | None = None) -> list[str]:
        """Ask every question, packed `max_size` at a time; answers in the same order.

        Raises:
            BatchError: a question is empty, or the batcher is closed.
            openai.OpenAIError: a packed request failed (after every request was tried).
        """
        items = [self._enqueue(q, feature, hold=True) for q in questions]
        self.flush()
        return [item.future.result() for item in items]

    def flush(self) -> None:
        """Send everything queued now and wait until it is answered."""
        with self._lock:
            chunks = self._take_all()
        futures = [self._executor().submit(self._send, chunk) for chunk in chunks]
        for f in futures:
            f.result()

    def close(self) -> None:
        """Send what is queued, then stop accepting questions."""
        self.flush()
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> Batcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="costwise-batch")
            return self._pool

    def _enqueue(self, question: str, feature: str | None, *, hold: bool = False) -> _Item:
        if not isinstance(question, str) or not question.strip():
            msg = "Batcher: a question must be a non-empty string"
            raise BatchError(msg)
        item = _Item(question, self._core.feature_of(feature), Future())
        with self._lock:
            if self._closed:
                msg = "Batcher is closed"
                raise BatchError(msg)
        answer = self._core.lookup(item, self._core.answer_key(question))
        if answer is not None:  # asked before: answered from the cache, not queued
            item.future.set_result(answer)
            return item
        with self._lock:
            self._pending.append(item)
            if not hold and self._core.max_wait > 0 and self._timer is None:
                self._timer = threading.Timer(self._core.max_wait, self._on_timer)
                self._timer.daemon = True
                self._timer.start()
        return item

    def _take_ready(self) -> list[list[_Item]]:
        size = self._core.max_size
        chunks = []
        while len(self._pending) >= size:
            chunks.append(self._pending[:size])
            del self._pending[:size]
        if self._core.max_wait == 0 and self._pending:
            chunks.extend(self._take_all())
        return chunks

    def _take_all(self) -> list[list[_Item]]:
        size = self._core.max_size
        chunks = [self._pending[i : i + size] for i in range(0, len(self._pending), size)]
        self._pending = []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return chunks

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            chunks = self._take_all()
        for chunk in chunks:
            self._send(chunk)

    def _send(self, items: list[_Item]) -> None:
        core = self._core
        started = time.perf_counter()
        try:
            resp = self._sdk.create(**core.request([i.question for i in items]))
        except Exception as exc:
            core.client.ledger.record(core.failed(items, exc, started))
            for item in items:
                item.future.set_exception(exc)
            return
        answers, entries = core.settle(items, resp, started)
        core.client.ledger.record(entries)
        core.remember(items, answers)
        for k, item in enumerate(items):
            if k in answers:
                item.future.set_result(answers[k])
        for k, item in enumerate(items):
            if k not in answers:
                logger.debug("batcher: re-asking question %d of %d on its own", k + 1, len(items))
                self._reask(item)

    def _reask(self, item: _Item) -> None:
        core = self._core
        started = time.perf_counter()
        try:
            resp = self._sdk.create(**core.request([item.question]))
        except Exception as exc:
            core.client.ledger.record(core.failed([item], exc, started))
            item.future.set_exception(exc)
            return
        core.client.ledger.record([core.reasked(item, resp, started)])
        core.remember([item], {0: _text(resp)})
        item.future.set_result(_text(resp))


class AsyncBatcher:
    """The async twin of `Batcher`: ``await batcher.ask(question)``.

    Use it in async services. Questions asked concurrently in the same event-loop turn
    (``asyncio.gather``) are packed together even with the default ``max_wait=0``, which
    adds no waiting time; a positive `max_wait` lets questions arriving within that many
    seconds share a request. Arguments are those of `Batcher`.

    Example:
        >>> b = AsyncBatcher(aclient, model="gpt-4o-mini")
        >>> answers = await asyncio.gather(*(b.ask(q) for q in questions))
    """

    def __init__(
        self,
        client: AsyncCostwiseClient,
        *,
        model: str,
        system: str | None = None,
        max_size: int = 10,
        max_wait: float = 0.0,
        structured: bool | None = None,
        feature: str | None = None,
        tokenizer: Tokenizer | None = None,
        **create_kwargs: Any,
    ) -> None:
        from openai.resources.chat import AsyncCompletions

        self._core = _Core(
            client,
            model=model,
            system=system,
            max_size=max_size,
            max_wait=max_wait,
            structured=structured,
            feature=feature,
            tokenizer=tokenizer,
            create_kwargs=create_kwargs,
        )
        self._sdk = AsyncCompletions(client)
        self._pending: list[_Item] = []
        self._scheduled: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def structured(self) -> bool:
        """Whether packed answers are requested as JSON (else numbered text)."""
        return self._core.structured

    async def ask(self, question: str, *, feature: str | None = None) -> str:
        """Ask one question; returns its answer.

        Raises:
            BatchError: the question is empty.
            openai.OpenAIError: the request carrying it failed.
        """
        if not isinstance(question, str) or not question.strip():
            msg = "AsyncBatcher: a question must be a non-empty string"
            raise BatchError(msg)
        loop = asyncio.get_running_loop()
        core = self._core
        item = _Item(question, core.feature_of(feature), loop.create_future())
        key = core.answer_key(question)
        if key is not None:
            answer = await self._in_place_or_thread(core.lookup, item, key)
            if answer is not None:  # asked before: answered from the cache, not queued
                return str(answer)
        self._pending.append(item)
        if len(self._pending) >= self._core.max_size:
            self._dispatch()
        elif self._scheduled is None:
            if self._core.max_wait == 0:
                self._scheduled = loop.call_soon(self._dispatch)
            else:
                self._scheduled = loop.call_later(self._core.max_wait, self._dispatch)
        return str(await item.future)

    async def map(self, questions: Iterable[str], *, feature: str | None = None) -> list[str]:
        """Ask every question, packed `max_size` at a time; answers in the same order."""
        return list(await asyncio.gather(*(self.ask(q, feature=feature) for q in questions)))

    async def flush(self) -> None:
        """Send everything queued now and wait for every request in flight."""
        self._dispatch()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _dispatch(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        size = self._core.max_size
        while self._pending:
            chunk, self._pending = self._pending[:size], self._pending[size:]
            task = asyncio.ensure_future(self._send(chunk))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, items: list[_Item]) -> None:
        core = self._core
        started = time.perf_counter()
        try:
            resp = await self._sdk.create(**core.request([i.question for i in items]))
        except Exception as exc:
            core.client.ledger.record(core.failed(items, exc, started))
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        answers, entries = core.settle(items, resp, started)
        core.client.ledger.record(entries)
        await self._in_place_or_thread(core.remember, items, answers)
        for k, item in enumerate(items):
            if k in answers and not item.future.done():
                item.future.set_result(answers[k])
        missing = [item for k, item in enumerate(items) if k not in answers]
        await asyncio.gather(*(self._reask(item) for item in missing))

    async def _reask(self, item: _Item) -> None:
        core = self._core
        started = time.perf_counter()
        try:
            resp = await self._sdk.create(**core.request([item.question]))
        except Exception as exc:
            core.client.ledger.record(core.failed([item], exc, started))
            if not item.future.done():
                item.future.set_exception(exc)
            return
        core.client.ledger.record([core.reasked(item, resp, started)])
        await self._in_place_or_thread(core.remember, [item], {0: _text(resp)})
        if not item.future.done():
            item.future.set_result(_text(resp))

    async def _in_place_or_thread(self, fn: Any, *args: Any) -> Any:
        """Call a cache operation: in place, or from a worker thread when the store waits
        on the network (a slow Redis must not stall the loop; see `costwise.Blocking`)."""
        answers = self._core.answers
        if answers is not None and answers.blocking:
            import anyio.to_thread

            return await anyio.to_thread.run_sync(lambda: fn(*args))
        return fn(*args)
