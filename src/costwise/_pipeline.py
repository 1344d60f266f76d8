"""The strategy pipeline: an ordered, validated tuple of strategies and its two drivers.

`run` and `arun` are the only code written twice for sync and async. Each drives the first
strategy's flow generator, sends the calls it yields down the rest of the chain, and
treats the end of the chain as the terminal step (the real SDK call, metered). Strategies
themselves are written once (see `costwise.typing`).
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from typing_extensions import override

from ._call import Call
from ._exceptions import ConfigurationError, CostwiseWarning, StrategyError
from .typing import Flow, StrategyLike

__all__ = ["Answer", "Blocking", "Express", "Pipeline", "Step", "arun", "run"]


@dataclass(frozen=True, slots=True)
class Answer:
    """What an ``async_flow`` yields last: its final response (async generators can't return)."""

    response: Any


@dataclass(frozen=True, init=False, slots=True)
class Blocking:
    """Yield it from a flow to make a blocking call (network I/O) without blocking a loop.

    The sync client calls ``fn(*args)`` in place; the async client runs it in a worker
    thread, so the event loop keeps serving other requests meanwhile. Either way the flow
    is sent its return value, or its exception is thrown in at the ``yield``. Use it for
    calls that wait on the network (a Redis round trip), not for fast local work, which
    a thread hop would only slow down.

    Example:
        >>> raw = yield Blocking(store.get, key)
    """

    fn: Callable[..., Any]
    args: tuple[Any, ...]

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "args", args)


@dataclass(frozen=True, slots=True)
class Express:
    """What a first strategy's ``express`` lane found for a plain request (see `costwise.typing`).

    A hit carries the `response` for the caller and the `completion` the ledger prices it
    from; a miss carries only the `key` it looked up, which the strategy's flow then reads
    from ``call.trace.looked_up`` instead of looking up again.
    """

    key: str
    response: Any = None
    completion: Any = None


class _Rewrite:
    """Adapts a plain ``Call -> Call`` function into a request-only strategy."""

    request_only = True

    def __init__(self, fn: Callable[[Call], Call]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", type(fn).__name__)

    def flow(self, call: Call) -> Flow:
        new = self.fn(call)
        if not isinstance(new, Call):
            msg = f"strategy function {self.name!r} returned {type(new).__name__}, not a Call"
            raise StrategyError(msg, strategy=self.fn)
        if new.kwargs != call.kwargs:
            call.trace.act(self.name)
        return (yield new)


@dataclass(frozen=True, slots=True)
class Step:
    """One validated strategy in a pipeline, with what the drivers need to know about it."""

    strategy: Any
    name: str
    flow: Callable[[Call], Flow]
    async_flow: Callable[[Call], Any] | None
    request_only: bool
    streams: bool

    def applies(self, call: Call) -> bool:
        # Raw responses and streams are only given to strategies that can handle them.
        if call.raw:
            return self.request_only
        if call.stream:
            return self.request_only or self.streams
        return True


def _step(obj: Any) -> Step:
    if isinstance(obj, type):
        msg = f"strategy {obj.__name__} is a class; pass an instance, e.g. {obj.__name__}(...)"
        raise ConfigurationError(msg)
    flow = getattr(obj, "flow", None)
    if flow is None:
        if not callable(obj):
            msg = (
                f"{obj!r} is not a strategy: it needs a flow(call) generator method, "
                f"or must be a function Call -> Call"
            )
            raise ConfigurationError(msg)
        obj = _Rewrite(obj)
        flow = obj.flow
    elif not callable(flow):
        msg = f"strategy {obj!r} has a 'flow' attribute that is not callable"
        raise ConfigurationError(msg)
    name = getattr(obj, "name", None) or type(obj).__name__.lower()
    async_flow = getattr(obj, "async_flow", None)
    return Step(
        strategy=obj,
        name=str(name),
        flow=flow,
        async_flow=async_flow if callable(async_flow) else None,
        request_only=bool(getattr(obj, "request_only", False)),
        streams=bool(getattr(obj, "streams", False)),
    )


# Kinds whose relative order matters; outermost first (see Pipeline).
_ORDER = ("budget", "cache", "semantic_cache", "compressor", "router", "cascade")


class Pipeline:
    """An immutable, validated, ordered sequence of strategies (outermost first).

    The recommended order is ``Budget → ResponseCache → SemanticCache → Compressor → Router →
    Cascade``: caches see the request as the caller wrote it, and the cascade is innermost
    because it makes several upstream attempts. Two strategies of the same kind are an error;
    an unusual order (a cache inside a cascade caches every attempt) is a warning.

    Raises:
        ConfigurationError: an item is not a strategy, or a kind appears twice.
    """

    __slots__ = ("front", "options", "steps")

    def __init__(self, strategies: Sequence[StrategyLike] = ()) -> None:
        if isinstance(strategies, str | bytes) or not isinstance(strategies, Sequence):
            msg = f"strategies must be a list of strategy objects, got {type(strategies).__name__}"
            raise ConfigurationError(msg)
        steps = tuple(_step(s) for s in strategies)
        seen: dict[str, Step] = {}
        for step in steps:
            if isinstance(step.strategy, _Rewrite):
                continue
            if step.name in seen:
                msg = f"two strategies of kind {step.name!r} in one pipeline; keep one"
                raise ConfigurationError(msg)
            seen[step.name] = step
        ranked = [_ORDER.index(s.name) for s in steps if s.name in _ORDER]
        if ranked != sorted(ranked):
            order = " → ".join(s.name for s in steps)
            warnings.warn(
                f"unusual strategy order {order}; the recommended order is "
                f"{' → '.join(_ORDER)} (outermost first)",
                CostwiseWarning,
                stacklevel=3,
            )
        options: set[str] = set()
        for step in steps:
            options.update(getattr(step.strategy, "options", ()) or ())
        self.steps = steps
        self.options = frozenset(options)
        express = getattr(steps[0].strategy, "express", None) if steps else None
        self.front: Callable[..., Express | None] | None = express if callable(express) else None
        """The first strategy's express lane (an exact cache's lookup), if it has one."""

    @property
    def front_blocks(self) -> bool:
        """Whether the express lane waits on the network (the async client runs it in a thread)."""
        return bool(getattr(self.steps[0].strategy, "blocking", False))

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Any:
        return (s.strategy for s in self.steps)

    @override
    def __repr__(self) -> str:
        return f"Pipeline([{', '.join(s.name for s in self.steps)}])"


def _result(step: Step, value: Any) -> Any:
    if value is None:
        msg = f"strategy {step.name!r} returned None instead of a response"
        raise StrategyError(msg, strategy=step.strategy)
    return value


def _not_a_call(step: Step, value: Any) -> StrategyError:
    msg = (
        f"strategy {step.name!r} yielded {type(value).__name__}, "
        f"not a costwise Call (or costwise.Blocking)"
    )
    return StrategyError(msg, strategy=step.strategy)


def run(steps: tuple[Step, ...], call: Call, terminal: Callable[[Call], Any]) -> Any:
    """Drive `call` through `steps` (sync); `terminal` makes the real upstream request."""
    n = len(steps)

    def at(i: int, call: Call) -> Any:
        if call.purpose is not None:  # a strategy's side call goes straight upstream
            return terminal(call)
        while i < n and not steps[i].applies(call):
            i += 1
        if i == n:
            return terminal(call)
        step = steps[i]
        gen = step.flow(call)
        try:
            out = next(gen)
            while True:
                if isinstance(out, Call):
                    try:
                        resp = at(i + 1, out)
                    except Exception as exc:
                        out = gen.throw(exc)
                    else:
                        out = gen.send(resp)
                elif isinstance(out, Blocking):
                    try:
                        value = out.fn(*out.args)
                    except Exception as exc:
                        out = gen.throw(exc)
                    else:
                        out = gen.send(value)
                else:
                    gen.close()
                    raise _not_a_call(step, out)
        except StopIteration as stop:
            return _result(step, stop.value)

    return at(0, call)


async def arun(
    steps: tuple[Step, ...], call: Call, terminal: Callable[[Call], Awaitable[Any]]
) -> Any:
    """Drive `call` through `steps` (async); prefers a strategy's ``async_flow`` if it has one."""
    n = len(steps)

    async def at(i: int, call: Call) -> Any:
        if call.purpose is not None:
            return await terminal(call)
        while i < n and not steps[i].applies(call):
            i += 1
        if i == n:
            return await terminal(call)
        step = steps[i]
        if step.async_flow is not None:
            return await _agen(step, i, call, at)
        gen = step.flow(call)
        try:
            out = next(gen)
            while True:
                if isinstance(out, Call):
                    try:
                        resp = await at(i + 1, out)
                    except Exception as exc:
                        out = gen.throw(exc)
                    else:
                        out = gen.send(resp)
                elif isinstance(out, Blocking):
                    try:
                        value = await _in_thread(out)
                    except Exception as exc:
                        out = gen.throw(exc)
                    else:
                        out = gen.send(value)
                else:
                    gen.close()
                    raise _not_a_call(step, out)
        except StopIteration as stop:
            return _result(step, stop.value)

    return await at(0, call)


async def _in_thread(blocking: Blocking) -> Any:
    import anyio.to_thread  # the SDK's own dependency; works under asyncio and trio

    return await anyio.to_thread.run_sync(lambda: blocking.fn(*blocking.args))


async def _agen(step: Step, i: int, call: Call, at: Callable[[int, Call], Awaitable[Any]]) -> Any:
    assert step.async_flow is not None
    agen = step.async_flow(call)
    try:
        out = await agen.__anext__()
        while not isinstance(out, Answer):
            if not isinstance(out, Call):
                raise _not_a_call(step, out)
            try:
                resp = await at(i + 1, out)
            except Exception as exc:
                out = await agen.athrow(exc)
            else:
                out = await agen.asend(resp)
    except StopAsyncIteration:
        msg = f"strategy {step.name!r}: async_flow ended without yielding costwise.Answer(...)"
        raise StrategyError(msg, strategy=step.strategy) from None
    await agen.aclose()
    return _result(step, out.response)
