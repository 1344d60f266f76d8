"""The request as strategies see it (`Call`) and the per-call record they annotate (`CallTrace`)."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from typing_extensions import Self, override

from ._ids import new_id
from .ledger._entry import ROW_INDEX

__all__ = [
    "AUTH_HEADERS",
    "REMOVE",
    "Call",
    "CallTrace",
    "Method",
    "auth_headers",
    "client_scope",
    "credential_scope",
]

Method = Literal["create", "parse", "embeddings"]
"""Which SDK method the terminal step calls for a `Call`."""


class _Remove:
    __slots__ = ()

    @override
    def __repr__(self) -> str:
        return "costwise.REMOVE"


REMOVE: Any = _Remove()
"""Pass as a value to :meth:`Call.replace` to delete that argument from the request."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def client_scope(api_key: object, base_url: object, *more: object) -> str:
    """A stable, non-reversible id of (API key, base URL[, ...]): the default cache scope.

    The key itself is never stored; only this hash is, so two tenants with different keys
    (or the same key at two providers) never share cache entries.
    """
    digest = hashlib.blake2b(digest_size=16, person=b"costwise-scope")
    digest.update(str(api_key).encode())
    digest.update(b"\0")
    digest.update(str(base_url).rstrip("/").encode())
    for part in more:
        digest.update(b"\0")
        digest.update(str(part).encode())
    return digest.hexdigest()


AUTH_HEADERS = frozenset(
    {"authorization", "api-key", "x-api-key", "openai-organization", "openai-project"}
)
"""Headers that say who is asking: part of a cache scope when a client or a call sets them."""


def auth_headers(headers: object) -> list[tuple[str, str]]:
    """The identity-bearing headers among `headers` (any mapping), lower-cased and sorted."""
    if not isinstance(headers, Mapping):
        return []
    return sorted(
        (str(k).lower(), v)
        for k, v in headers.items()
        if str(k).lower() in AUTH_HEADERS and isinstance(v, str)
    )


def credential_scope(client: Any) -> str | None:
    """The default cache scope of `client`'s requests, or ``None`` when it has none.

    A hash of the API key, the base URL and the identity headers the client sends
    (organization, project, a custom ``Authorization``). ``None`` when the credential is
    not a fixed key: with a callable ``api_key``, workload identity or a ``provider``, the
    SDK resolves it per request, and every such client would otherwise share one scope.
    """
    key = client.api_key
    # The SDK keeps a callable key in `_api_key_provider` and sets `api_key` to what it last
    # returned: a key read from a tenant's context would scope one call by another's key.
    dynamic = (
        getattr(client, "_api_key_provider", None) is not None
        or getattr(client, "_provider", None) is not None
        or getattr(client, "workload_identity", None) is not None
    )
    if not key or dynamic:
        return None
    return client_scope(key, client.base_url, *auth_headers(client.default_headers))


_FINAL = ROW_INDEX["final"]
_COST = ROW_INDEX["cost_nanos"]


class CallTrace:
    """What happened while answering one logical call; the ledger is written from it.

    One `CallTrace` is shared by every `Call` derived from the caller's request (rewrites,
    cascade attempts, side calls), so strategies can leave notes that end up in the ledger:
    which strategy acted, why an attempt was rejected, how many prompt tokens a compressor
    removed. It is created by the client for each call and never shared between calls, so it
    needs no lock for the pipeline itself; `entries` is guarded because a stream may finish on
    another thread.
    """

    __slots__ = (
        "_by_response",
        "_lock",
        "acted",
        "baseline_extra_prompt_tokens",
        "baseline_model",
        "call_id",
        "client_scope",
        "detail",
        "entries",
        "feature",
        "finished",
        "has_final",
        "hit",
        "hit_by",
        "looked_up",
        "started",
        "url",
    )

    def __init__(
        self, *, feature: str, baseline_model: str, url: str = "", client_scope: str = ""
    ) -> None:
        self.call_id = new_id()
        self.feature = feature
        self.baseline_model = baseline_model
        self.started = time.time()
        self.entries: list[list[Any]] = []  # pending entries as rows (LedgerEntry values)
        self.acted: list[str] = []
        self.detail: dict[str, Any] = {}
        self.baseline_extra_prompt_tokens = 0
        self.hit: Any = None
        self.hit_by: str | None = None
        self.looked_up: str | None = None  # a key the first strategy's express lane missed
        self.url = url
        self.client_scope = client_scope
        self.finished = False
        self.has_final = False  # whether the entry closing the call was written
        self._by_response: dict[int, int] = {}
        self._lock = threading.Lock()

    def act(self, strategy: str, **detail: Any) -> None:
        """Note that `strategy` changed or answered this call (shown in the ledger's strategy)."""
        if strategy not in self.acted:
            self.acted.append(strategy)
        self.detail.update(detail)

    def answered(self, strategy: str, completion: Any, **detail: Any) -> None:
        """Note that `strategy` answered without calling upstream, with `completion`.

        The ledger records a zero-cost ``hit`` entry whose baseline is what `completion`'s
        usage costs at the caller's model.
        """
        self.hit, self.hit_by = completion, strategy
        self.act(strategy, **detail)

    def annotate(self, response: object, **fields: Any) -> None:
        """Set ledger fields (``reason=...``) on the entry of the attempt that gave `response`."""
        with self._lock:
            index = self._by_response.get(id(response))
            if index is None or self.finished:  # a finished call's entries are written
                return
            row = self.entries[index]
            for name, value in fields.items():
                position = ROW_INDEX.get(name)
                if position is None:
                    msg = f"annotate() got an unknown ledger field {name!r}"
                    raise TypeError(msg)
                row[position] = value

    def add(self, entry: list[Any], response: object = None) -> bool:
        """Queue a ledger entry's row; `response` links it to the object returned upstream.

        Returns ``False`` when the call has finished already (a stream that ended after a
        strategy raised): the caller must write the row itself, or it is lost.
        """
        with self._lock:
            if self.finished:
                if not self.has_final:  # nothing closed the call: this late entry does
                    self.has_final = True
                    entry[_FINAL] = True  # its baseline stays 0: the call raised
                return False
            if response is not None:
                self._by_response[id(response)] = len(self.entries)
            self.entries.append(entry)
            return True

    def cost_nanos(self) -> int:
        """What this call has cost so far: the known costs of its entries (attempts, side
        calls). Strategies that budget a call read it (`Cascade`'s ``max_budget_usd``)."""
        with self._lock:
            return sum(row[_COST] or 0 for row in self.entries)

    def entry_for(self, response: object) -> int | None:
        """Index of the entry whose upstream attempt produced `response`, if any."""
        return self._by_response.get(id(response))


@dataclass(frozen=True, kw_only=True, slots=True)
class Call:
    """One request on its way through the strategy pipeline. Immutable.

    Strategies never edit a `Call`; they derive a new one with :meth:`replace` (SDK
    arguments) or :meth:`evolve` (costwise fields). The caller's own objects are never
    mutated: `kwargs` is a read-only view of a copy.

    Attributes:
        kwargs: the SDK keyword arguments, exactly as they will be sent (minus costwise's own).
        feature: the spend tag the call is recorded under.
        options: costwise's per-call options (``cache=False``, ``task="classify"``, ...).
        method: which SDK method the terminal step calls.
        is_async: the call came from `AsyncCostwiseClient`.
        raw: the call came through ``with_raw_response`` or ``with_streaming_response``;
            only request-side strategies run.
        purpose: ``None`` for the caller's request; a word such as ``"judge"`` or
            ``"compress"`` for a side call a strategy makes. Side calls skip the strategies
            below the one that made them and are recorded as overhead.
        tier: the cascade tier this attempt belongs to, when a cascade made it.
        trace: the shared record of the logical call (see `CallTrace`).
    """

    kwargs: Mapping[str, Any]
    feature: str
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    method: Method = "create"
    is_async: bool = False
    raw: bool = False
    purpose: str | None = None
    tier: int | None = None
    trace: CallTrace = field(compare=False, repr=False)

    @property
    def model(self) -> str:
        """The model this call will be sent to."""
        return str(self.kwargs.get("model", ""))

    @property
    def messages(self) -> list[Any]:
        """The request's messages (a list; do not edit it, use `replace`)."""
        msgs = self.kwargs.get("messages", ())
        return msgs if isinstance(msgs, list) else list(msgs)

    @property
    def stream(self) -> bool:
        """Whether the caller asked for a stream."""
        return self.kwargs.get("stream") is True

    def option(self, name: str, default: Any = None) -> Any:
        """A per-call costwise option, or `default`."""
        return self.options.get(name, default)

    def replace(self, **changes: Any) -> Self:
        """A copy with SDK arguments changed; pass `costwise.REMOVE` to delete one.

        Example:
            >>> cheaper = call.replace(model="gpt-4o-mini")
        """
        kwargs = dict(self.kwargs)
        for key, value in changes.items():
            if value is REMOVE:
                kwargs.pop(key, None)
            else:
                kwargs[key] = value
        return dataclasses.replace(self, kwargs=MappingProxyType(kwargs))

    def evolve(self, **changes: Any) -> Self:
        """A copy with costwise fields (`purpose`, `tier`, `options`, ...) changed."""
        if "options" in changes:
            changes["options"] = MappingProxyType(dict(changes["options"]))
        return dataclasses.replace(self, **changes)

    def side_call(self, purpose: str, *, method: Method = "create", **kwargs: Any) -> Self:
        """A new side request made on behalf of this call (a judge, a compression, ...).

        It shares this call's feature and trace, is recorded as overhead, and goes straight
        upstream without passing through the remaining strategies. Use
        ``method="embeddings"`` for an embeddings request.
        """
        return dataclasses.replace(
            self,
            kwargs=MappingProxyType(kwargs),
            options=_EMPTY,
            method=method,
            raw=False,
            purpose=purpose,
            tier=None,
        )


_CALL_SETTERS = tuple(Call.__dict__[name].__set__ for name in Call.__dataclass_fields__)


def new_call(*values: Any) -> Call:
    """A `Call` from all its field values in declaration order; the client's hot path.

    Equal to ``Call(kwargs=..., feature=..., ...)`` without the keyword-argument parsing.
    """
    call: Call = object.__new__(Call)
    for set_field, value in zip(_CALL_SETTERS, values, strict=True):
        set_field(call, value)
    return call
