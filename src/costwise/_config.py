"""A client's costwise configuration, shared by the sync and async resources and by copies."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._call import Call, CallTrace, Method, new_call
from ._compat import OPTIONS_HEADER, raw_mode
from ._exceptions import ConfigurationError, StrategyError, UnknownModelError
from ._feature import UNTAGGED, current_feature, validate_feature
from ._meter import Meter
from ._pipeline import Express, Pipeline, arun, run
from ._streaming import AsyncCostwiseStream, CostwiseStream
from .ledger import Ledger, LedgerEntry, LedgerStore

if TYPE_CHECKING:
    from .pricing import PriceTable
    from .tokens import Tokenizer
    from .typing import StrategyLike

__all__ = ["BUILTIN_OPTIONS", "Config"]

BUILTIN_OPTIONS = frozenset(
    {
        "feature",
        "cache",
        "cache_ttl",
        "cache_refresh",
        "cache_scope",
        "semantic",
        "task",
        "max_budget_usd",
        "buffer_stream",
        "compress",
    }
)
"""Per-call keywords costwise always takes out of ``create``'s arguments (see CostwiseOptions),
whether or not a strategy that reads them is configured, so removing a strategy never turns
them into SDK errors."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_STREAMS = (CostwiseStream, AsyncCostwiseStream)  # a tuple: isinstance is faster than on a union


def _header_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take costwise's options out of the private header a ``.stream()`` helper set."""
    headers = kwargs.get("extra_headers")
    if not headers or OPTIONS_HEADER not in headers:
        return {}
    headers = dict(headers)
    options: dict[str, Any] = json.loads(headers.pop(OPTIONS_HEADER))
    kwargs["extra_headers"] = headers
    return options


def _new_call(
    tag: str,
    kwargs: dict[str, Any],
    options: Mapping[str, Any],
    method: Method,
    is_async: bool,
    raw: bool,
    base_url: str,
    client_scope: str,
) -> Call:
    model = kwargs.get("model")
    trace = CallTrace(
        feature=tag, baseline_model=model or "", url=base_url, client_scope=client_scope
    )
    # Call's fields in order: kwargs, feature, options, method, is_async, raw, purpose,
    # tier, trace (new_call skips the keyword parsing of the dataclass __init__).
    return new_call(
        MappingProxyType(kwargs),
        tag,
        MappingProxyType(options) if options else _EMPTY,
        method,
        is_async,
        raw,
        None,
        None,
        trace,
    )


@dataclass(frozen=True, slots=True)
class Config:
    """Everything costwise adds to a client. Immutable; copies of a client share it."""

    pipeline: Pipeline
    meter: Meter
    option_names: frozenset[str]
    default_feature: str | None = None
    direct: bool = False
    """No strategy is configured: a plain ``create`` goes through `Meter.direct`."""

    @classmethod
    def build(
        cls,
        *,
        strategies: Sequence[StrategyLike],
        ledger: Ledger | LedgerStore | str | os.PathLike[str] | None,
        prices: PriceTable | None,
        tokenizer: Tokenizer | None,
        on_record: Sequence[Callable[[Sequence[LedgerEntry]], None]],
    ) -> Config:
        from .pricing import PriceTable
        from .tokens import default_tokenizer

        if prices is None:
            prices = PriceTable.default()
        elif not isinstance(prices, PriceTable):
            msg = f"prices must be a costwise.pricing.PriceTable, got {type(prices).__name__}"
            raise ConfigurationError(msg)
        if not isinstance(ledger, Ledger):
            ledger = Ledger(ledger, on_record=on_record)
        elif on_record:
            msg = "pass on_record= to Ledger(...) when you pass a Ledger object"
            raise ConfigurationError(msg)
        pipeline = Pipeline(strategies)
        meter = Meter(ledger=ledger, prices=prices, tokenizer=tokenizer or default_tokenizer())
        for strategy in pipeline:
            if getattr(strategy, "needs_current_spend", False):
                # It reads spend before each call: write-behind would hide recent calls.
                ledger.flush()
                ledger.write_through = True
            bind = getattr(strategy, "bind", None)
            if callable(bind):  # strategies that need prices/tokenizer/ledger get them here
                bind(meter)
        return cls(pipeline, meter, BUILTIN_OPTIONS | pipeline.options, direct=not pipeline.steps)

    def with_feature(self, name: str) -> Config:
        return replace(self, default_feature=validate_feature(name))

    def plain_call(self, kwargs: dict[str, Any]) -> str | None:
        """The feature of a plain ``create`` that may skip the pipeline, or ``None``.

        Two kinds of client skip it: one with no strategies (`Meter.direct` sends and
        records the call) and one whose first strategy has an express lane (`express`).
        Takes ``feature`` (and, without strategies, every costwise option) out of `kwargs`
        (a fresh dict) and returns the call's tag; ``None``, with `kwargs` untouched, for
        streams, calls with extra headers (raw responses, ``.stream()`` options) and, for
        the express lane, calls with costwise options other than ``feature``: all of these
        take the general path.
        """
        if self.direct:
            if kwargs.get("stream") or "extra_headers" in kwargs:
                return None
            tag = kwargs.pop("feature", None)
            self._drop_options(kwargs, None)
            return self._tag(tag, kwargs)
        if self.pipeline.front is None or kwargs.get("stream") or "extra_headers" in kwargs:
            return None
        names = self.option_names
        if not names.isdisjoint(kwargs) and (
            len(names.intersection(kwargs)) > 1 or "feature" not in kwargs
        ):
            return None
        return self._tag(kwargs.pop("feature", None), kwargs)

    def express(self, feature: str, kwargs: dict[str, Any], scope: str) -> Express | None:
        """Run the first strategy's express lane for a plain ``create`` (see `plain_call`).

        A hit is recorded in the ledger here; the caller returns ``found.response``.
        Otherwise the call takes the pipeline, with ``found.key`` (a key already looked up)
        on its trace.
        """
        front = self.pipeline.front
        assert front is not None
        ts = time.time()
        found = front(kwargs, scope)
        if found is not None and (type(found) is not Express or found.response is not None):
            self._record_hit(feature, kwargs, found, ts)
        return found

    async def aexpress(self, feature: str, kwargs: dict[str, Any], scope: str) -> Express | None:
        """The async twin of `express`: a lane that waits on the network runs in a thread."""
        front = self.pipeline.front
        assert front is not None
        ts = time.time()
        if self.pipeline.front_blocks:
            import anyio.to_thread  # the SDK's own dependency; asyncio and trio

            found = await anyio.to_thread.run_sync(front, kwargs, scope)
        else:
            found = front(kwargs, scope)
        if found is not None and (type(found) is not Express or found.response is not None):
            self._record_hit(feature, kwargs, found, ts)
        return found

    def _record_hit(self, feature: str, kwargs: dict[str, Any], found: Any, ts: float) -> None:
        step = self.pipeline.steps[0]
        if not isinstance(found, Express) or getattr(found.completion, "usage", False) is False:
            msg = (
                f"strategy {step.name!r}: express() must return None or a costwise.Express "
                f"(with the completion it answered from), got {found!r}"
            )
            raise StrategyError(msg, strategy=step.strategy)
        model = kwargs.get("model") or ""
        self.meter.hit(feature, ts, model, found.completion, step.name)

    def make_call(
        self,
        kwargs: dict[str, Any],
        *,
        method: Method,
        is_async: bool,
        base_url: str,
        client_scope: str = "",
    ) -> Call:
        """Split costwise's options out of `kwargs` (a fresh dict) and build the `Call`."""
        options = _header_options(kwargs)
        headers = kwargs.get("extra_headers")
        # The usual option, popped first so the common call builds no set; the keyword wins
        # over the header, even when it is None.
        if "feature" in kwargs:
            tag = kwargs.pop("feature")
            if options:
                options.pop("feature", None)
        else:
            tag = options.pop("feature", None) if options else None
        self._drop_options(kwargs, options)
        tag = self._tag(tag, kwargs)
        return _new_call(
            tag, kwargs, options, method, is_async, raw_mode(headers), base_url, client_scope
        )

    def call_after(
        self,
        found: Express | None,
        feature: str,
        kwargs: dict[str, Any],
        *,
        is_async: bool,
        base_url: str,
        client_scope: str = "",
    ) -> Call:
        """The `Call` of a plain ``create`` the express lane did not answer.

        `kwargs` hold no costwise option (`plain_call` took the feature out); the key the
        lane looked up goes on the trace, so the strategy does not look it up twice.
        """
        call = _new_call(feature, kwargs, _EMPTY, "create", is_async, False, base_url, client_scope)
        if found is not None:
            call.trace.looked_up = found.key
        return call

    def _drop_options(self, kwargs: dict[str, Any], into: dict[str, Any] | None) -> None:
        """Move costwise's per-call options out of `kwargs` (into `into`, or drop them)."""
        names = self.option_names
        if not names.isdisjoint(kwargs):
            for name in names.intersection(kwargs):
                value = kwargs.pop(name)
                if into is not None:
                    into[name] = value

    def feature_of(self, kwargs: dict[str, Any]) -> str:
        """Take ``feature=`` (or the one a ``.stream()`` helper put in the private options
        header) out of `kwargs` and return the call's feature: for the recorded-only
        endpoints, which take no other costwise option."""
        tag = kwargs.pop("feature", None)
        options = _header_options(kwargs)
        if tag is None:
            tag = options.get("feature")
        return self._tag(tag, kwargs)

    def _tag(self, tag: object, kwargs: dict[str, Any]) -> str:
        """The call's feature (`tag` if given, else the context's or the client's), checked."""
        model = kwargs.get("model")
        if model is not None and not isinstance(model, str):
            msg = f"model must be a string, got {type(model).__name__}"
            raise TypeError(msg)
        prices = self.meter.prices
        if model and prices.on_unknown == "raise" and prices.lookup(model) is None:
            raise UnknownModelError(model)  # before anything is sent, so nothing is billed
        if tag is None:
            return current_feature() or self.default_feature or UNTAGGED
        return validate_feature(tag)

    def stream_options_header(self, kwargs: dict[str, Any], feature: str | None) -> None:
        """Move costwise options of a ``.stream()`` call into the private header (in place)."""
        options = {name: kwargs.pop(name) for name in self.option_names.intersection(kwargs)}
        if feature is not None:
            options["feature"] = validate_feature(feature)
        elif "feature" in options:
            validate_feature(options["feature"])
        else:
            tag = current_feature()  # .stream() sends when entered: capture the tag now
            if tag is not None:
                options["feature"] = tag
        if options:
            headers = dict(kwargs.get("extra_headers") or {})
            headers[OPTIONS_HEADER] = json.dumps(options, default=str)
            kwargs["extra_headers"] = headers

    def _settle(self, call: Call, result: Any) -> Any:
        trace, meter = call.trace, self.meter
        if isinstance(result, _STREAMS) and trace.hit is None:
            key = result.ledger_key  # holding the stream itself would keep it from being collected
            result.add_done_callback(lambda _chunks, _ok: meter.finish(trace, key))
        else:
            meter.finish(trace, result)
        return result

    def run(self, call: Call, sdk: Callable[[Method], Callable[..., Any]]) -> Any:
        """Answer `call` through the pipeline; `sdk(method)` gives the bound SDK method."""
        meter = self.meter
        steps = self.pipeline.steps
        try:
            if steps:
                result = run(steps, call, lambda c: meter.send(c, sdk(c.method)))
            else:  # no strategies: the terminal step is the whole pipeline
                result = meter.send(call, sdk(call.method))
        except BaseException:
            meter.finish(call.trace, None)
            raise
        return self._settle(call, result)

    async def arun(self, call: Call, sdk: Callable[[Method], Callable[..., Any]]) -> Any:
        """The async twin of `run`."""
        meter = self.meter

        async def terminal(c: Call) -> Any:
            return await meter.asend(c, sdk(c.method))

        steps = self.pipeline.steps
        try:
            if steps:
                result = await arun(steps, call, terminal)
            else:
                result = await meter.asend(call, sdk(call.method))
        except BaseException:
            meter.finish(call.trace, None)
            raise
        return self._settle(call, result)
