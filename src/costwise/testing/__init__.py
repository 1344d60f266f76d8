"""costwise's public test kit: a fake OpenAI-compatible provider and clients wired to it.

Use it to test code that calls OpenAI, with or without costwise, without a network or an
API key. The real ``openai`` SDK talks to `FakeProvider` over ``httpx2.MockTransport``,
so requests, responses, errors and streams go through exactly the code paths they take in
production.

Example:
    >>> from costwise.testing import Error, FakeProvider, bare_client
    >>> provider = FakeProvider().script(Error(429))
    >>> client = bare_client(provider)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx2
import openai

from costwise.testing._builders import chat_completion, chat_completion_chunks, sse
from costwise.testing._provider import (
    Disconnect,
    Error,
    FakeProvider,
    RecordedRequest,
    Reply,
    ScriptItem,
    Timeout,
)
from costwise.testing._replay import PLACEHOLDER, ReplayProvider
from costwise.testing._server import Server, serve

if TYPE_CHECKING:
    from costwise._client import AsyncCostwiseClient, CostwiseClient

__all__ = [
    "Disconnect",
    "Error",
    "FakeProvider",
    "PLACEHOLDER",
    "RecordedRequest",
    "Reply",
    "ReplayProvider",
    "ScriptItem",
    "Server",
    "Timeout",
    "bare_async_client",
    "bare_client",
    "chat_completion",
    "chat_completion_chunks",
    "fake_async_client",
    "fake_client",
    "serve",
    "sse",
]

_BASE_URL = "http://test/v1"


def _options(
    provider: FakeProvider | None, kwargs: dict[str, Any], *, sync: bool
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "api_key": "test",
        "base_url": _BASE_URL,
        "max_retries": 0,
        # Strict validation makes a malformed fake body fail the test instead of passing.
        "_strict_response_validation": True,
        **kwargs,
    }
    if "http_client" not in options:
        handler = provider if provider is not None else FakeProvider()
        options["http_client"] = (
            httpx2.Client(transport=httpx2.MockTransport(handler))
            if sync
            else httpx2.AsyncClient(transport=httpx2.MockTransport(handler.async_handler))
        )
    return options


def fake_client(provider: FakeProvider | None = None, **kwargs: Any) -> CostwiseClient:
    """Build a ``CostwiseClient`` whose requests go to ``provider``, in-process.

    Use it to test code that takes a costwise client. Retries are off and responses are
    validated strictly, so a test sees each scripted failure once and a malformed body
    fails loudly. The ledger is an in-memory ``MemoryStore`` unless ``ledger=`` is given.
    Close the client (or use it as a context manager) when done.

    Args:
        provider: Answers the requests; a fresh ``FakeProvider()`` when omitted.
        **kwargs: Passed to ``CostwiseClient``; they override the test defaults
            (``api_key="test"``, ``base_url="http://test/v1"``, ``max_retries=0``,
            ``http_client``, ``ledger``).

    Returns:
        The client.

    Example:
        >>> provider = FakeProvider()
        >>> with fake_client(provider) as client:
        ...     _ = client.chat.completions.create(
        ...         model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        ...     )
        >>> len(provider.calls())
        1
    """
    from costwise._client import CostwiseClient
    from costwise.ledger import MemoryStore

    # A test must not write to the user's SQLite ledger unless it asks to.
    kwargs.setdefault("ledger", MemoryStore())
    return CostwiseClient(**_options(provider, kwargs, sync=True))


def fake_async_client(provider: FakeProvider | None = None, **kwargs: Any) -> AsyncCostwiseClient:
    """Build an ``AsyncCostwiseClient`` whose requests go to ``provider``, in-process.

    The async twin of `fake_client`; it uses ``provider.async_handler``, so latency
    never blocks the event loop.

    Args:
        provider: Answers the requests; a fresh ``FakeProvider()`` when omitted.
        **kwargs: Passed to ``AsyncCostwiseClient``; they override the test defaults.

    Returns:
        The client.
    """
    from costwise._client import AsyncCostwiseClient
    from costwise.ledger import MemoryStore

    kwargs.setdefault("ledger", MemoryStore())
    return AsyncCostwiseClient(**_options(provider, kwargs, sync=False))


def bare_client(provider: FakeProvider | None = None, **kwargs: Any) -> openai.OpenAI:
    """Build a plain ``openai.OpenAI`` client on the same in-process transport.

    Use it as the baseline when checking that costwise behaves like the bare SDK, or to
    test code that never touches costwise. Same defaults as `fake_client`.

    Args:
        provider: Answers the requests; a fresh ``FakeProvider()`` when omitted.
        **kwargs: Passed to ``openai.OpenAI``; they override the test defaults.

    Returns:
        The client.

    Example:
        >>> client = bare_client(FakeProvider(model_map={"gpt-4o": "gpt-4o-2024-08-06"}))
    """
    return openai.OpenAI(**_options(provider, kwargs, sync=True))


def bare_async_client(provider: FakeProvider | None = None, **kwargs: Any) -> openai.AsyncOpenAI:
    """Build a plain ``openai.AsyncOpenAI`` client on ``provider.async_handler``.

    The async twin of `bare_client`.

    Args:
        provider: Answers the requests; a fresh ``FakeProvider()`` when omitted.
        **kwargs: Passed to ``openai.AsyncOpenAI``; they override the test defaults.

    Returns:
        The client.
    """
    return openai.AsyncOpenAI(**_options(provider, kwargs, sync=False))
