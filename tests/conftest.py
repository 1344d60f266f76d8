"""Shared fixtures: a clean environment, offline tokenizers, the anyio backend."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from redisserver import redis_url  # noqa: F401  (one real redis-server for the whole run)


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test can reach a real endpoint or write to the user's ledger by accident."""
    for name in list(os.environ):
        if name.startswith("OPENAI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COSTWISE_LEDGER", str(tmp_path / "default-ledger.sqlite"))
    # Default spools, journals and caches go under the test's directory, not the user's.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("COSTWISE_CACHE_DIR", raising=False)


@pytest.fixture(scope="session", autouse=True)
def _offline_tiktoken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Real tiktoken encodings without the network, from the bpe-openai package's data."""
    from costwise.tokens import offline_tiktoken_cache

    cache = offline_tiktoken_cache(tmp_path_factory.mktemp("tiktoken"))
    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    yield
    if old is None:
        os.environ.pop("TIKTOKEN_CACHE_DIR", None)
    else:
        os.environ["TIKTOKEN_CACHE_DIR"] = old


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
