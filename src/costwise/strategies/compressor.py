"""`Compressor`: shorten long system prompts and context before they are sent.

Two stages, each optional. The local stage (`costwise.compression.LocalCompressor`) removes
formatting noise and verbatim repetition; it needs no model and loses no content, so it is on
by default. The model stage asks a cheap model to rewrite a long text to a target ratio,
"preserving all factual content", only when that pays for itself, once per distinct text
(results are cached by content hash), and keeps the rewrite only when every fact of the
original (code, numbers, names, links, ``<<keep>>`` spans) survived.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Generator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from .._call import Call
from .._exceptions import ConfigurationError, CostwiseWarning
from ..compression import LocalCompressor, extract_facts
from ..compression._facts import _FENCE, _INLINE_CODE, _KEEP
from ..typing import Flow

if TYPE_CHECKING:
    from .._meter import Meter
    from ..pricing import PriceTable
    from ..tokens import Tokenizer

__all__ = ["CompressionStore", "Compressor"]

logger = logging.getLogger("costwise")

_INSTRUCTION = (
    "Rewrite the text the user sends so it is about {percent}% of its length, preserving all "
    "factual content: every number, name, identifier, link, rule and instruction. Remove "
    "only redundancy and filler. Copy every placeholder of the form \u27e6N\u27e7 exactly once, "
    "unchanged. Reply with the rewritten text only."
)
_PLACEHOLDER = re.compile(r"\u27e6(\d+)\u27e7")
# Tokens the instruction and message framing of a compression call add to its input.
_CALL_OVERHEAD_TOKENS = 80


class CompressionStore(Protocol):
    """Where model compressions are kept, keyed by content hash (shared across workers).

    Every `costwise.cache.CacheStore` fits (``MemoryCacheStore`` in one process,
    ``DiskCacheStore`` across the processes of a host, ``RedisCacheStore`` across hosts).
    """

    def get(self, key: str) -> bytes | None:
        """The stored UTF-8 text, or ``None``."""
        ...

    def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store `value` under `key`."""
        ...


class Compressor:
    """Compress long system prompts, developer and tool messages before they are sent.

    Use it when prompts carry long, repetitive or heavily formatted context (instructions
    pasted from documents, retrieved pages, pretty-printed JSON tool output). The local stage
    is lossless and costs nothing, so it is safe to enable everywhere. Turn on the model
    stage (`llm_model`) for long prompts that are sent many times: it is used only when the
    expected saving (tokens saved x input price of the receiving model x expected reuse)
    exceeds the compression call's cost, each distinct text is compressed once (cached by
    content hash in `store`), the call is recorded in the ledger as overhead under the
    caller's feature, and a rewrite that loses any fact is rejected with a
    `CostwiseWarning` (the original is sent).

    User messages are never compressed unless the call passes ``compress=True``;
    ``compress=False`` skips compression for the call. Wrap text that must reach the model
    verbatim in ``<<keep>>...<</keep>>`` (the markers are removed, the text is not touched).
    Removed tokens are added to the ledger baseline, so ``report()`` shows the saving.

    Args:
        local: the local compressor, or ``None`` to skip the local stage.
        llm_model: the cheap model that rewrites long texts; ``None`` (default) disables
            the model stage.
        target_ratio: the length the model is asked for, as a share of the input (0-1).
        min_tokens: texts shorter than this are left alone by the model stage.
        expected_reuse: how many times a text is expected to be sent; texts seen more often
            in this process use the observed count instead.
        roles: message roles compressed by default (``user`` only with ``compress=True``).
        store: where model compressions are cached (a `costwise.cache.CacheStore`); an
            in-process ``MemoryCacheStore`` by default. Pass a ``DiskCacheStore`` or
            ``RedisCacheStore`` to share them across workers.

    Raises:
        ConfigurationError: `target_ratio` is not in (0, 1) or `min_tokens` is negative.

    Example:
        >>> CostwiseClient(strategies=[Compressor(llm_model="gpt-4o-mini", expected_reuse=100)])
    """

    name = "compressor"
    request_only = True
    options = frozenset({"compress"})

    def __init__(
        self,
        *,
        local: LocalCompressor | None = LocalCompressor(),  # noqa: B008  (immutable value)
        llm_model: str | None = None,
        target_ratio: float = 0.5,
        min_tokens: int = 500,
        expected_reuse: float = 1.0,
        roles: Sequence[str] = ("system", "developer", "tool"),
        store: CompressionStore | None = None,
    ) -> None:
        if not 0 < target_ratio < 1:
            msg = f"Compressor: target_ratio must be in (0, 1), got {target_ratio!r}"
            raise ConfigurationError(msg)
        if min_tokens < 0 or expected_reuse < 0:
            msg = "Compressor: min_tokens and expected_reuse must not be negative"
            raise ConfigurationError(msg)
        self.local = local
        self._local = None if local is None else dataclasses.replace(local, strip_markers=False)
        self.llm_model = llm_model
        self.target_ratio = target_ratio
        self.min_tokens = min_tokens
        self.expected_reuse = expected_reuse
        self.roles = frozenset(roles)
        if store is None:
            from ..cache import MemoryCacheStore

            store = MemoryCacheStore()
        self.store: CompressionStore = store
        self._prices: PriceTable | None = None
        self._tokenizer: Tokenizer | None = None
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def bind(self, meter: Meter) -> None:
        """Take the client's prices and tokenizer (called once by the client)."""
        self._prices = meter.prices
        self._tokenizer = meter.tokenizer

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            from ..tokens import HeuristicTokenizer

            self._tokenizer = HeuristicTokenizer()
        return self._tokenizer

    def flow(self, call: Call) -> Flow:
        wanted = call.option("compress")
        if wanted is False or call.method != "create" or call.purpose is not None:
            return (yield call)
        roles = self.roles | {"user"} if wanted is True else self.roles
        messages = call.messages
        new: list[Any] = list(messages)
        removed = 0
        for i, message in enumerate(messages):
            if not isinstance(message, Mapping) or message.get("role") not in roles:
                continue
            content = message.get("content")
            if isinstance(content, str):
                text = yield from self._compress(call, content)
                if text != content:
                    new[i] = {**message, "content": text}
                    removed += self._saved(content, text, call.model)
            elif isinstance(content, list):
                parts = list(content)
                for j, part in enumerate(parts):
                    if isinstance(part, Mapping) and part.get("type") == "text":
                        before = str(part.get("text", ""))
                        text = yield from self._compress(call, before)
                        if text != before:
                            parts[j] = {**part, "text": text}
                            removed += self._saved(before, text, call.model)
                if parts != content:
                    new[i] = {**message, "content": parts}
        if new == messages:
            return (yield call)
        call.trace.baseline_extra_prompt_tokens += removed
        call.trace.act(self.name, tokens_saved=removed)
        logger.debug("compressor: %d prompt tokens removed", removed)
        return (yield call.replace(messages=new))

    def _saved(self, before: str, after: str, model: str) -> int:
        return max(0, self.tokenizer.count(before, model) - self.tokenizer.count(after, model))

    def _compress(self, call: Call, text: str) -> Generator[Call, Any, str]:
        # Markers stay on until the model stage is done, so kept spans can be hidden from it.
        marked = self._local(text) if self._local is not None else text
        out = _KEEP.sub(lambda m: m.group(1), marked)
        if self.llm_model is None:
            return out
        tokens = self.tokenizer.count(out, call.model)
        if tokens < self.min_tokens:
            return out
        key = hashlib.sha256(
            f"costwise-compress\0{self.llm_model}\0{self.target_ratio}\0{out}".encode()
        ).hexdigest()
        cached = self.store.get(key)
        if cached is not None:
            return cached.decode()
        if not self.pays(tokens, receiving_model=call.model, reuse=self._sighting(key)):
            return out
        masked, spans = _mask(marked)
        instruction = _INSTRUCTION.format(percent=round(self.target_ratio * 100))
        try:
            resp = yield call.side_call(
                "compress",
                model=self.llm_model,
                messages=[
                    {"role": "system", "content": instruction},
                    {"role": "user", "content": masked},
                ],
                temperature=0,
            )
        except Exception as exc:  # a failed side call must never fail the caller's call
            warnings.warn(
                f"compression call failed ({exc!r}); sending the text uncompressed",
                CostwiseWarning,
                stacklevel=2,
            )
            return out
        candidate = _unmask(_content_of(resp), spans)
        if candidate is not None:
            candidate = _KEEP.sub(lambda m: m.group(1), candidate)
        missing = ["placeholders"] if candidate is None else extract_facts(text).missing(candidate)
        if candidate is None or missing:
            warnings.warn(
                f"compressed text lost {len(missing)} fact(s) (e.g. {missing[:3]}); "
                "sending the original",
                CostwiseWarning,
                stacklevel=2,
            )
            self.store.set(key, out.encode())  # do not pay for the same rejection again
            return out
        if self.tokenizer.count(candidate, call.model) >= tokens:
            candidate = out
        self.store.set(key, candidate.encode())
        return candidate

    def _sighting(self, key: str) -> int:
        with self._lock:
            count = self._seen.pop(key, 0) + 1
            self._seen[key] = count
            if len(self._seen) > 65536:
                self._seen.popitem(last=False)
            return count

    def pays(self, tokens: int, *, receiving_model: str, reuse: float = 1.0) -> bool:
        """Whether compressing a `tokens`-long text is expected to save more than it costs.

        Saving: ``tokens x (1 - target_ratio) x input price of receiving_model x reuse``
        (reuse is the larger of `expected_reuse` and `reuse`). Cost: the compression call
        (the text plus instructions in, ``tokens x target_ratio`` out) at `llm_model`'s
        prices. Unknown prices never pay.
        """
        if self.llm_model is None or self._prices is None:
            return False
        receiving = self._prices.lookup(receiving_model)
        compressor = self._prices.lookup(self.llm_model)
        if receiving is None or compressor is None:
            return False
        ratio = Decimal(str(self.target_ratio))
        saved = Decimal(tokens) * (1 - ratio) * receiving.input
        value = saved * Decimal(str(max(self.expected_reuse, reuse)))
        cost = (
            Decimal(tokens + _CALL_OVERHEAD_TOKENS) * compressor.input
            + Decimal(tokens) * ratio * compressor.output
        )
        return value > cost


def _content_of(resp: Any) -> str:
    try:
        return str(resp.choices[0].message.content or "")
    except (AttributeError, IndexError, TypeError):
        return ""


def _mask(text: str) -> tuple[str, list[str]]:
    """Replace code blocks, inline code and kept spans by numbered placeholders."""
    spans: list[str] = []

    def hide(m: re.Match[str]) -> str:
        spans.append(m.group(0))
        return f"\u27e6{len(spans) - 1}\u27e7"

    for pattern in (_KEEP, _FENCE, _INLINE_CODE):
        text = pattern.sub(hide, text)
    return text, spans


def _unmask(text: str, spans: list[str]) -> str | None:
    """Put the hidden spans back; ``None`` when a placeholder is missing or repeated."""
    found = _PLACEHOLDER.findall(text)
    if sorted(int(n) for n in found) != list(range(len(spans))):
        return None
    # spans may themselves contain placeholders of earlier patterns: undo in reverse order
    for index in reversed(range(len(spans))):
        text = text.replace(f"\u27e6{index}\u27e7", spans[index], 1)
    return text
