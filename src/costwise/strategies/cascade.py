"""`Cascade`: try the cheapest model first, check its answer, escalate only when it must."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import openai

from .._call import REMOVE, Call
from .._exceptions import ConfigurationError
from .._streaming import (
    AsyncCostwiseStream,
    CostwiseStream,
    asks_usage,
    replay_chunks,
    synthetic_response,
)
from ..pricing import PriceTable, Usage
from ..typing import Flow
from .checks import Check, CheckFlow, as_check, not_empty, run_check
from .router import required_capabilities

if TYPE_CHECKING:
    import tenacity

    from .._meter import Meter
    from ..tokens import Tokenizer

__all__ = ["ESCALATE_ON", "Cascade", "Tier"]

logger = logging.getLogger("costwise")

ESCALATE_ON: tuple[type[Exception], ...] = (
    openai.RateLimitError,
    openai.APIConnectionError,  # includes openai.APITimeoutError
    openai.InternalServerError,  # every 5xx
)
"""The SDK errors that make a cascade move on to the next tier by default."""

# When neither max_tokens nor an earlier tier's answer tells how long the answer will be.
_DEFAULT_OUTPUT_TOKENS = 256


@dataclass(frozen=True, kw_only=True, slots=True)
class Tier:
    """One step of a cascade: a model and the check its answer must pass.

    Attributes:
        model: the model this tier calls.
        check: what the answer must pass to be returned; ``None`` uses the cascade's
            default check. The last tier's answer is returned without a check (there is
            nothing left to escalate to).
    """

    model: str
    check: Check | None = None


def _no_sleep(seconds: float) -> None:
    # A flow runs inside the async client's event loop and must never block it.
    return None


def _default_retry(escalate_on: tuple[type[BaseException], ...]) -> tenacity.Retrying:
    import tenacity

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(1),
        retry=tenacity.retry_if_exception_type(escalate_on),
        reraise=True,
    )


_NANOS_PER_USD = Decimal(10**9)


class Cascade:
    """Call the cheapest tier first; return its answer if it passes the check, else escalate.

    Use it when most requests are easy enough for a cheap model and you can tell a bad
    answer from a good one after the fact (an empty or truncated answer, broken JSON,
    samples that disagree, a low judge score). Each escalation costs the cheap attempt on
    top of the strong one, so a cascade pays off when the check accepts most cheap answers
    and rejects the wrong ones; when the answer can't be checked, a `Router` (which decides
    from the prompt alone) is cheaper.

    Every attempt is in the ledger with its ``tier``; a rejected one carries the check's
    ``reason``; ``report()`` shows the escalation rate and the saving against the model the
    caller wrote.

    Errors escalate too: a rate limit, a timeout, a connection error or a 5xx on one tier
    moves on to the next (the `retry` policy decides first whether to try the same tier
    again). Other errors (a 400, an authentication error) are raised at once. When every
    tier fails, the last SDK error is raised unchanged. If a cheap answer was rejected and
    every later tier failed, that answer is returned rather than nothing.

    After a `Router`: when a router before the cascade chose one of its tiers (or any
    strategy changed the model to one), the cascade starts at that tier, so a router can
    send the hard prompts straight to the strong model while the easy ones still get
    checked and escalated if needed.

    Streams: a ``stream=True`` call skips the cascade (it goes to the model the caller
    wrote) unless the caller passes ``buffer_stream=True``; then each tier is called without
    streaming and the accepted answer is replayed as a stream of the same shape, so the
    first token arrives only once the whole answer has been checked.

    Per-call options: ``max_budget_usd`` (overrides the constructor's), ``buffer_stream``.

    Args:
        tiers: models cheapest first, as names, ``(model, check)`` pairs or `Tier` objects.
        check: the default check for tiers without their own (default: `not_empty`).
            A plain callable ``(call, response) -> bool | float`` works too.
        max_budget_usd: the most one call may spend: before escalating, the cascade
            estimates the next tier's cost (prompt tokens counted, output as long as
            ``max_tokens`` or the last answer) and stops if the total would exceed it.
        retry: a ``tenacity.Retrying`` deciding whether to retry a failed attempt on the
            same tier before escalating (default: no retry; escalating is the fallback).
            Waits are skipped under the async client, where a flow cannot sleep.
        escalate_on: the SDK errors that escalate (default `ESCALATE_ON`).
        record_prompt: store the last user message (first 4,000 characters) and whether
            the returned answer passed a check in the ledger entry's ``detail``, so
            `costwise.routing.outcomes_from_ledger` can later fit a `LearnedRouter` on the
            cascade's own verdicts. Off by default: prompts may be sensitive.

    Raises:
        ConfigurationError: fewer than two tiers, a tier without a model, and (when the
            client binds it) a tier with no price or tiers more expensive first.

    Example:
        >>> from costwise.strategies.checks import all_of, not_empty, not_truncated
        >>> CostwiseClient(strategies=[
        ...     Cascade(["gpt-4o-mini", "gpt-4o"], check=all_of(not_empty(), not_truncated()))
        ... ])
    """

    name = "cascade"
    streams = True
    options = frozenset({"buffer_stream", "max_budget_usd"})

    def __init__(
        self,
        tiers: Sequence[str | Tier | tuple[str, Any]],
        *,
        check: Check | Any | None = None,
        max_budget_usd: Decimal | float | str | None = None,
        retry: tenacity.Retrying | None = None,
        escalate_on: tuple[type[BaseException], ...] = ESCALATE_ON,
        record_prompt: bool = False,
    ) -> None:
        if isinstance(tiers, str) or len(tiers) < 2:
            msg = "Cascade needs at least two tiers, cheapest first, e.g. ['gpt-4o-mini', 'gpt-4o']"
            raise ConfigurationError(msg)
        default = as_check(check) if check is not None else not_empty()
        built: list[Tier] = []
        for item in tiers:
            if isinstance(item, Tier):
                tier = item
            elif isinstance(item, str):
                tier = Tier(model=item)
            elif isinstance(item, tuple) and len(item) == 2:
                tier = Tier(model=item[0], check=None if item[1] is None else as_check(item[1]))
            else:
                msg = f"Cascade: a tier must be a model name, (model, check) or Tier, got {item!r}"
                raise ConfigurationError(msg)
            if not isinstance(tier.model, str) or not tier.model:
                msg = f"Cascade: tier models must be non-empty strings, got {tier.model!r}"
                raise ConfigurationError(msg)
            built.append(Tier(model=tier.model, check=tier.check or default))
        self.tiers = tuple(built)
        self.max_budget_usd = _budget(max_budget_usd)
        self.escalate_on = tuple(escalate_on)
        self.record_prompt = record_prompt
        self.retry = retry if retry is not None else _default_retry(self.escalate_on)
        self._prices: PriceTable | None = None
        self._tokenizer: Tokenizer | None = None

    def bind(self, meter: Meter) -> None:
        """Take the client's prices and tokenizer; check every tier is priced and ordered.

        Raises:
            ConfigurationError: a tier's model has no price, or a tier costs more than the
                one after it.
        """
        self._prices, self._tokenizer = meter.prices, meter.tokenizer
        rates = []
        for tier in self.tiers:
            price = meter.prices.lookup(tier.model)
            if price is None:
                msg = f"Cascade: tier model {tier.model!r} has no price; add it to the price table"
                raise ConfigurationError(msg)
            rates.append((price.input + price.output, tier.model))
        for (a, model_a), (b, model_b) in itertools.pairwise(rates):
            if a > b:
                msg = (
                    f"Cascade: tiers must go cheapest first, but {model_a!r} costs more than "
                    f"the next tier {model_b!r}"
                )
                raise ConfigurationError(msg)

    # -- the flow --------------------------------------------------------------------------

    def flow(self, call: Call) -> Flow:
        buffered = call.stream and bool(call.option("buffer_stream", False))
        if call.stream and not buffered:
            return (yield call)  # documented: streams skip the cascade unless buffered
        base = call.replace(stream=REMOVE, stream_options=REMOVE) if buffered else call
        budget = _budget(call.option("max_budget_usd", self.max_budget_usd))
        kept: Any = None  # the last answer we got (returned if every later tier fails)
        kept_reason: str | None = None
        last_error: BaseException | None = None
        final: Any = None
        checked = False
        # Tiers whose model lacks a capability the request needs (tools, structured
        # outputs, images) are skipped, as the router never picks one: they would refuse it.
        needs = required_capabilities(base.kwargs)
        order = [
            i
            for i in range(self._start(call), len(self.tiers))
            if not needs or self._capable(self.tiers[i].model, needs)
        ]
        if not order:  # no tier can take it: the call goes as the caller wrote it
            return (yield call)
        last = order[-1]
        for i in order:
            tier = self.tiers[i]
            if i != order[0] and budget is not None:
                estimate = self._estimate(base, tier.model, kept)
                # spent: every entry of this call so far, the checks' side calls (a judge,
                # extra samples) as well as the tiers
                spent = Decimal(call.trace.cost_nanos()) / _NANOS_PER_USD
                if estimate is not None and spent + estimate > budget:
                    logger.debug("cascade: budget stops escalation before tier %d", i)
                    call.trace.act(self.name, budget_stop=i)
                    if kept is not None:
                        call.trace.annotate(kept, reason=f"{kept_reason}; kept: budget")
                        final = kept
                    break
            attempt = self._attempt_call(base, tier, i)
            try:
                resp = yield from self._send(attempt)
            except self.escalate_on as exc:
                logger.debug("cascade: tier %d (%s) failed: %r", i, tier.model, exc)
                last_error = exc
                continue
            if i == last:
                final, checked = resp, False
                break
            check = tier.check or not_empty()
            verdict = yield from self._judge(check, attempt, resp)
            if verdict.passed:
                final, checked = resp, True
                break
            kept, kept_reason = resp, verdict.reason or check.name
            call.trace.annotate(resp, reason=kept_reason)
            logger.debug("cascade: tier %d (%s) rejected: %s", i, tier.model, kept_reason)
        if final is None:
            if kept is None:
                assert last_error is not None
                raise last_error  # the last SDK error, unchanged
            call.trace.annotate(kept, reason=f"{kept_reason}; kept: later tiers failed")
            final = kept
        if self.record_prompt:
            from .router import _last_user

            call.trace.act(self.name, prompt=_last_user(call.messages)[:4000], checked=checked)
        else:
            call.trace.act(self.name)
        if not buffered:
            return final
        chunks = replay_chunks(final, include_usage=asks_usage(call.kwargs))
        response = synthetic_response(call.trace.url)
        if call.is_async:
            return AsyncCostwiseStream.replay(chunks, response=response)
        return CostwiseStream.replay(chunks, response=response)

    def _start(self, call: Call) -> int:
        """The first tier to try: a router before us may already have picked a higher one."""
        if call.model == call.trace.baseline_model and "router" not in call.trace.acted:
            return 0  # the caller's own model: the cascade decides from the cheapest tier
        for i, tier in enumerate(self.tiers):
            if tier.model == call.model:
                return i
        return 0

    def _judge(self, check: Check, call: Call, response: Any) -> CheckFlow:
        return run_check(check, call, response)

    def _attempt_call(self, base: Call, tier: Tier, index: int) -> Call:
        extra = {
            k: v
            for k, v in (tier.check.request if tier.check is not None else {}).items()
            if k not in base.kwargs
        }
        return base.replace(model=tier.model, **extra).evolve(tier=index)

    def _send(self, attempt: Call) -> Flow:
        """One tier: send `attempt`, retried as the tenacity policy says."""
        # reraise=True whatever the caller's policy says: tenacity's RetryError would wrap
        # the SDK's error, escape `escalate_on`, and stop the escalation
        policy = self.retry.copy(reraise=True)
        if attempt.is_async:
            policy = policy.copy(sleep=_no_sleep)
        resp: Any = None
        for state in policy:
            error: Exception | None = None
            # The exception is caught here and re-raised inside tenacity's context manager,
            # so a GeneratorExit at the yield is never swallowed by it.
            try:
                resp = yield attempt
            except Exception as exc:
                error = exc
            with state:
                if error is not None:
                    raise error
        return resp

    # -- money -------------------------------------------------------------------------------

    def _capable(self, model: str, needs: frozenset[str]) -> bool:
        price = self._table().lookup(model)
        return price is None or needs <= price.capabilities  # unknown: it cannot be judged

    def _table(self) -> PriceTable:
        if self._prices is None:  # used outside a client: fall back to the bundled prices
            self._prices = PriceTable.default()
        return self._prices

    def _estimate(self, call: Call, model: str, previous: Any) -> Decimal | None:
        """What the next tier will probably cost: counted prompt, expected output."""
        table = self._table()
        if self._tokenizer is None:
            from ..tokens import default_tokenizer

            self._tokenizer = default_tokenizer()
        prompt = self._tokenizer.count_messages(call.messages, model)
        limit = call.kwargs.get("max_completion_tokens") or call.kwargs.get("max_tokens")
        usage = getattr(previous, "usage", None)
        if limit:
            output = int(limit)
        elif usage is not None and getattr(usage, "completion_tokens", None):
            output = int(usage.completion_tokens)
        else:
            output = _DEFAULT_OUTPUT_TOKENS
        return table.cost(model, Usage(prompt_tokens=prompt, completion_tokens=output))


def _budget(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        budget = Decimal(str(value))
    except InvalidOperation:
        budget = Decimal("NaN")
    if not budget.is_finite() or budget < 0:
        msg = f"max_budget_usd must be a non-negative amount in USD, got {value!r}"
        raise ConfigurationError(msg)
    return budget
