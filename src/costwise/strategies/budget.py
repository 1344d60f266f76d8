"""`Budget`: cap spend per feature and overall, per UTC day or month.

Budgets read the spend from the client's own ledger store (``store.spent_nanos``), so every
worker that writes to the same SQLite file or Redis ledger sees, and is capped by, the same
spend. The check happens before the request is sent; nothing is reserved while a call is in
flight.

Worst-case overshoot: a call is counted only when it finishes (its ledger entries are written
then), so callers that pass the check while others are still in flight can all spend. With
``N`` calls in flight across all workers sharing the ledger and ``c_max`` the most one logical
call can cost (all its cascade attempts and side calls included), the spend recorded for a
period never exceeds::

    limit + N * c_max        (strictly: limit - 1 n$ + N * c_max)

because a call is only sent while recorded spend is below the limit, and at most ``N`` calls
can be sent before the first of them is recorded. With one caller at a time (``N = 1``) the
overshoot is at most one call. `tests/test_budget.py` checks the bound with concurrent
threads. A call that starts just before the period boundary is counted in the period it
started in (entries carry the call's start time).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from .._call import Call
from .._exceptions import BudgetExceededError, ConfigurationError, CostwiseWarning
from ..pricing import from_nanos, to_nanos
from ..typing import Flow

if TYPE_CHECKING:
    from .._meter import Meter
    from ..ledger import LedgerStore

__all__ = ["Budget", "BudgetLimit"]

logger = logging.getLogger("costwise")

Period = Literal["day", "month"]
Action = Literal["warn", "downgrade", "refuse"]
_PERIODS = ("day", "month")
_ACTIONS = ("warn", "downgrade", "refuse")


def _usd(value: Decimal | float | int | str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0:
        msg = f"a budget must be a non-negative amount of USD, got {value!r}"
        raise ConfigurationError(msg)
    return amount


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetLimit:
    """One spending cap: an amount per day or month, overall or for one feature.

    Use it to mix periods and actions in one `Budget` (warn at $50/day, refuse at $1000/month).

    Args:
        usd: the cap, in USD.
        period: ``"day"`` or ``"month"`` (UTC calendar periods).
        feature: the feature it caps; ``None`` caps all features together.
        action: ``"warn"`` (a `CostwiseWarning`, the call proceeds), ``"downgrade"`` (send the
            call to `downgrade_to`), or ``"refuse"`` (raise `BudgetExceededError`, nothing sent).
        downgrade_to: the cheaper model for ``action="downgrade"``.
    """

    usd: Decimal
    period: Period = "day"
    feature: str | None = None
    action: Action = "refuse"
    downgrade_to: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "usd", _usd(self.usd))
        if self.period not in _PERIODS:
            msg = f"budget period must be 'day' or 'month', got {self.period!r}"
            raise ConfigurationError(msg)
        if self.action not in _ACTIONS:
            msg = f"budget action must be one of {list(_ACTIONS)}, got {self.action!r}"
            raise ConfigurationError(msg)
        if self.action == "downgrade" and not self.downgrade_to:
            msg = "a budget with action='downgrade' needs downgrade_to='<cheaper model>'"
            raise ConfigurationError(msg)


def period_start(period: Period, now: float) -> float:
    """Unix time of the start of the UTC day or month containing `now`."""
    t = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    t = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        t = t.replace(day=1)
    return t.timestamp()


class Budget:
    """Cap spend per feature and overall, per day or month: warn, downgrade or refuse.

    Use it as the outermost strategy when a runaway loop or a traffic spike must not turn into
    a surprise bill. Spend is read from the client's ledger store, so workers that share a
    SQLite or Redis ledger share the budget. The check runs before anything is sent; see the
    module docstring for the worst-case overshoot with concurrent callers. It only rewrites
    (or refuses) the request, so it also runs for streams and raw responses.

    Args:
        usd: the overall cap (all features together); ``None`` for no overall cap.
        period: the period of `usd` and of `features`: ``"day"`` or ``"month"`` (UTC).
        action: what happens once a cap is reached: ``"warn"``, ``"downgrade"`` or ``"refuse"``.
        downgrade_to: the cheaper model used by ``action="downgrade"``.
        features: per-feature caps, ``{"chat": "5.00"}``, with the same period and action.
        limits: further `BudgetLimit`s, each with its own period and action.
        store: the ledger store to read spend from (default: the client's, set in `bind`).
        clock: returns the current unix time (tests pass a fixed clock).

    Raises:
        ConfigurationError: no cap at all, a negative cap, or a bad period/action.

    Example:
        >>> CostwiseClient(strategies=[Budget(100, features={"chat": 20}, action="refuse")])
    """

    needs_current_spend = True
    """The pipeline then writes the ledger synchronously, so spend read here is current."""

    name = "budget"
    request_only = True

    def __init__(
        self,
        usd: Decimal | float | int | str | None = None,
        *,
        period: Period = "day",
        action: Action = "refuse",
        downgrade_to: str | None = None,
        features: Mapping[str, Decimal | float | int | str] | None = None,
        limits: Sequence[BudgetLimit] = (),
        store: LedgerStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        made: list[BudgetLimit] = []
        if usd is not None:
            made.append(
                BudgetLimit(usd=_usd(usd), period=period, action=action, downgrade_to=downgrade_to)
            )
        for feat, amount in (features or {}).items():
            made.append(
                BudgetLimit(
                    usd=_usd(amount),
                    period=period,
                    feature=feat,
                    action=action,
                    downgrade_to=downgrade_to,
                )
            )
        made.extend(limits)
        if not made:
            msg = "Budget needs an overall cap (usd=...), per-feature caps, or limits"
            raise ConfigurationError(msg)
        # Refusals first: a call that one cap refuses must not be downgraded or warned first.
        rank = {"refuse": 0, "downgrade": 1, "warn": 2}
        self.limits: tuple[BudgetLimit, ...] = tuple(sorted(made, key=lambda lim: rank[lim.action]))
        self.store = store
        self._clock = clock

    def bind(self, meter: Meter) -> None:
        """Read spend from the client's ledger store unless a store was given."""
        if self.store is None:
            self.store = meter.ledger.store

    def spent(self, limit: BudgetLimit) -> Decimal:
        """What has been recorded against `limit` in its current period, in USD."""
        if self.store is None:
            msg = "Budget is not bound to a client; pass it in strategies=[...] or give store="
            raise ConfigurationError(msg)
        since = period_start(limit.period, self._clock())
        return from_nanos(self.store.spent_nanos(since=since, feature=limit.feature))

    def flow(self, call: Call) -> Flow:
        if call.purpose is not None:  # side calls belong to a call that already passed
            return (yield call)
        for limit in self.limits:
            if limit.feature is not None and limit.feature != call.feature:
                continue
            spent = self.spent(limit)
            if to_nanos(spent) < to_nanos(limit.usd):
                continue
            scope = f"feature {limit.feature!r}" if limit.feature else "overall"
            logger.debug(
                "budget: %s %s budget $%s spent ($%s): %s",
                scope,
                limit.period,
                limit.usd,
                spent,
                limit.action,
            )
            if limit.action == "refuse":
                raise BudgetExceededError(
                    feature=limit.feature, spent=spent, limit=limit.usd, period=limit.period
                )
            if limit.action == "downgrade" and limit.downgrade_to != call.model:
                call.trace.act(
                    self.name, budget=f"{scope}/{limit.period}", downgraded_from=call.model
                )
                return (yield call.replace(model=limit.downgrade_to))
            if limit.action == "warn":
                warnings.warn(
                    f"{scope} budget of ${limit.usd} per {limit.period} is spent "
                    f"(${spent} so far); the call proceeds",
                    CostwiseWarning,
                    stacklevel=2,
                )
        return (yield call)
