"""`CostwiseClient` and `AsyncCostwiseClient`: the SDK's clients with costwise inside."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from openai import AsyncOpenAI, OpenAI
from typing_extensions import Self, override

from ._config import Config
from ._resources import AsyncCostwiseChat, CostwiseChat

if TYPE_CHECKING:
    from ._recorded import (
        AsyncCostwiseEmbeddings,
        AsyncCostwiseResponses,
        CostwiseEmbeddings,
        CostwiseResponses,
    )
    from .ledger import Ledger, LedgerEntry, LedgerStore
    from .pricing import PriceTable
    from .tokens import Tokenizer
    from .typing import StrategyLike

__all__ = ["AsyncCostwiseClient", "CostwiseClient"]


class _CostwiseMixin:
    """What both clients add: configuration, copies that keep it, and accessors."""

    _costwise: Config

    def _init_costwise(
        self,
        config: Config | None,
        strategies: Sequence[StrategyLike],
        ledger: Ledger | LedgerStore | str | os.PathLike[str] | None,
        prices: PriceTable | None,
        tokenizer: Tokenizer | None,
        on_record: Sequence[Callable[[Sequence[LedgerEntry]], None]],
    ) -> None:
        self._costwise = config or Config.build(
            strategies=strategies,
            ledger=ledger,
            prices=prices,
            tokenizer=tokenizer,
            on_record=on_record,
        )

    @property
    def ledger(self) -> Ledger:
        """The ledger every call of this client (and of its copies) is recorded in."""
        return self._costwise.meter.ledger

    @property
    def prices(self) -> PriceTable:
        """The price table this client prices calls with."""
        return self._costwise.meter.prices

    @property
    def strategies(self) -> tuple[Any, ...]:
        """The configured strategies, outermost first."""
        return tuple(self._costwise.pipeline)


class CostwiseClient(_CostwiseMixin, OpenAI):
    """A drop-in `openai.OpenAI` that records spend per feature and runs cost strategies.

    Use it wherever you use ``openai.OpenAI``: ``from costwise import CostwiseClient as
    OpenAI``. With no strategies it behaves exactly like the SDK (same return types,
    streams, raw responses, errors) and records every call in the ledger. Add strategies
    (a cache, a router, a cascade, ...) to change what is sent.

    Args:
        strategies: strategy objects, outermost first (see `costwise.typing.Strategy`).
        ledger: a `Ledger`, a `LedgerStore`, or a path for a SQLite ledger. Default: the
            SQLite file at `costwise.ledger.default_ledger_path` (``$COSTWISE_LEDGER``).
        prices: the `PriceTable` for this client (default: the bundled table). Load your
            provider's sheet with ``PriceTable.from_file(...)``.
        tokenizer: estimates tokens when the API reports no usage (streams without a
            usage chunk). Default: tiktoken when its encodings load, else a heuristic.
        on_record: callables given each batch of ledger entries after it is stored.
        **kwargs: everything ``openai.OpenAI`` takes (``api_key``, ``base_url``,
            ``http_client``, ``max_retries``, ...).

    Raises:
        ConfigurationError: a strategy or the price table is invalid.
        LedgerError: the ledger file cannot be opened or is corrupt.

    Example:
        >>> client = CostwiseClient(base_url="https://api.example.com/v1", api_key=key)
        >>> client.chat.completions.create(model="gpt-4o-mini", messages=msgs, feature="bot")
        >>> print(client.ledger.report())
    """

    def __init__(
        self,
        *,
        strategies: Sequence[StrategyLike] = (),
        ledger: Ledger | LedgerStore | str | os.PathLike[str] | None = None,
        prices: PriceTable | None = None,
        tokenizer: Tokenizer | None = None,
        on_record: Sequence[Callable[[Sequence[LedgerEntry]], None]] = (),
        _costwise_config: Config | None = None,
        **kwargs: Any,
    ) -> None:
        # Validate costwise's configuration before the SDK reads the environment, so a bad
        # strategy list is reported as such even when no API key is set.
        self._init_costwise(_costwise_config, strategies, ledger, prices, tokenizer, on_record)
        super().__init__(**kwargs)

    @cached_property
    @override
    def chat(self) -> CostwiseChat:
        return CostwiseChat(self)

    @cached_property
    @override
    def embeddings(self) -> CostwiseEmbeddings:
        from ._recorded import CostwiseEmbeddings  # the SDK module is imported on first use

        return CostwiseEmbeddings(self)

    @cached_property
    @override
    def responses(self) -> CostwiseResponses:
        from ._recorded import CostwiseResponses  # the SDK module is imported on first use

        return CostwiseResponses(self)

    @override
    def copy(self, **kwargs: Any) -> Self:
        """The SDK's ``copy``/``with_options``, keeping costwise's configuration and ledger."""
        extra = {"_costwise_config": self._costwise, **kwargs.pop("_extra_kwargs", {})}
        return super().copy(**kwargs, _extra_kwargs=extra)

    with_options = copy

    def with_feature(self, name: str) -> Self:
        """A copy whose calls are tagged `name` unless they pass ``feature=``."""
        return super().copy(_extra_kwargs={"_costwise_config": self._costwise.with_feature(name)})

    @override
    def close(self) -> None:
        """The SDK's ``close``; also writes this client's pending ledger entries to the store,
        so other processes see every call made before it (the ledger stays open for copies)."""
        self._costwise.meter.ledger.flush()
        super().close()


class AsyncCostwiseClient(_CostwiseMixin, AsyncOpenAI):
    """A drop-in `openai.AsyncOpenAI`; see `CostwiseClient`. Same strategies, same ledger."""

    def __init__(
        self,
        *,
        strategies: Sequence[StrategyLike] = (),
        ledger: Ledger | LedgerStore | str | os.PathLike[str] | None = None,
        prices: PriceTable | None = None,
        tokenizer: Tokenizer | None = None,
        on_record: Sequence[Callable[[Sequence[LedgerEntry]], None]] = (),
        _costwise_config: Config | None = None,
        **kwargs: Any,
    ) -> None:
        self._init_costwise(_costwise_config, strategies, ledger, prices, tokenizer, on_record)
        super().__init__(**kwargs)

    @cached_property
    @override
    def chat(self) -> AsyncCostwiseChat:
        return AsyncCostwiseChat(self)

    @cached_property
    @override
    def embeddings(self) -> AsyncCostwiseEmbeddings:
        from ._recorded import AsyncCostwiseEmbeddings  # the SDK module is imported on first use

        return AsyncCostwiseEmbeddings(self)

    @cached_property
    @override
    def responses(self) -> AsyncCostwiseResponses:
        from ._recorded import AsyncCostwiseResponses  # the SDK module is imported on first use

        return AsyncCostwiseResponses(self)

    @override
    def copy(self, **kwargs: Any) -> Self:
        """The SDK's ``copy``/``with_options``, keeping costwise's configuration and ledger."""
        extra = {"_costwise_config": self._costwise, **kwargs.pop("_extra_kwargs", {})}
        return super().copy(**kwargs, _extra_kwargs=extra)

    with_options = copy

    def with_feature(self, name: str) -> Self:
        """A copy whose calls are tagged `name` unless they pass ``feature=``."""
        return super().copy(_extra_kwargs={"_costwise_config": self._costwise.with_feature(name)})

    @override
    async def close(self) -> None:
        """The SDK's ``close``; also writes pending ledger entries (see the sync twin), from a
        worker thread so the event loop keeps running while the store writes."""
        import anyio.to_thread  # the SDK's own dependency; asyncio and trio

        await anyio.to_thread.run_sync(self._costwise.meter.ledger.flush)
        await super().close()
