"""`RedisCacheStore`: one response cache shared by many workers on many hosts."""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from typing_extensions import override

from .._exceptions import CostwiseWarning

__all__ = ["RedisCacheStore"]

logger = logging.getLogger("costwise")

# Store one entry and keep the index of live entries under the cap, atomically. The index
# is a sorted set scored by expiry time: expired members are trimmed first, then the
# entries closest to expiry (with one TTL for all, the oldest) until the cap holds.
_SET_SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if over > 0 then
  local old = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #old, 2 do redis.call('DEL', old[i]) end
end
return 0
"""


class RedisCacheStore:
    """A cache in Redis, for many workers on many hosts.

    Use it when several hosts should share answers. Every entry has a TTL (Redis expires
    it) and the store keeps at most `max_entries` of its own entries: each write trims an
    index (a sorted set at ``{prefix}index``) and deletes the entries closest to expiry.
    Also give the Redis server a ``maxmemory`` with ``maxmemory-policy volatile-lru`` so
    memory stays bounded whatever else shares the server.

    Redis never fails a call: any Redis error or a reply slower than `timeout` is a miss
    (and a skipped write). The first failure of an outage emits one `CostwiseWarning`;
    the store then leaves Redis alone for `retry_after` seconds instead of paying the
    timeout on every call, and logs when Redis answers again.

    Args:
        url: a redis-py URL (``redis://host:6379/0``, ``rediss://...``, ``unix://...``).
        client: an existing ``redis.Redis`` to use instead of `url`.
        prefix: the prefix of every key this store writes.
        ttl: default lifetime of an entry in seconds (required: 7 days by default).
        max_entries: the most entries this store keeps.
        timeout: the socket connect and read timeout in seconds (default 50 ms).
        retry_after: seconds to skip Redis after a failure.
        clock: the time source for `retry_after`.

    Example:
        >>> ResponseCache(RedisCacheStore("redis://cache.internal:6379/0", ttl=86_400))
    """

    blocking = True
    """Each call waits on a network round trip: the async client calls it from a worker
    thread (see `costwise.Blocking`), so a slow Redis never stalls the event loop."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "costwise:cache:",
        ttl: float = 7 * 86_400,
        max_entries: int = 1_000_000,
        timeout: float = 0.05,
        retry_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis

        if client is None:
            if url is None:
                msg = "RedisCacheStore needs a url or a client"
                raise ValueError(msg)
            client = redis.Redis.from_url(
                url, socket_connect_timeout=timeout, socket_timeout=timeout
            )
        if ttl <= 0 or max_entries < 1:
            msg = "RedisCacheStore: ttl and max_entries must be positive"
            raise ValueError(msg)
        self.redis = client
        self.prefix = prefix
        self.ttl = ttl
        self.max_entries = max_entries
        self.retry_after = retry_after
        self._clock = clock
        self._index = f"{prefix}index"
        self._script = client.register_script(_SET_SCRIPT)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._down_until = 0.0
        self._down = False
        self._lock = threading.Lock()

    # -- outage handling ----------------------------------------------------------------

    def _available(self) -> bool:
        return not self._down or self._clock() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            first = not self._down
            self._down = True
            self._down_until = self._clock() + self.retry_after
        if first:
            warnings.warn(
                f"Redis cache unavailable ({type(exc).__name__}: {exc}); serving cache misses "
                f"until it answers again",
                CostwiseWarning,
                stacklevel=4,
            )
        logger.debug("redis cache error: %r", exc)

    def _ok(self) -> None:
        if self._down:
            with self._lock:
                self._down = False
            logger.info("Redis cache is answering again")

    # -- the CacheStore protocol --------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        if not self._available():
            return None
        try:
            value = self.redis.get(self.prefix + key)
        except self._errors as exc:
            self._failed(exc)
            return None
        self._ok()
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        if not self._available():
            return
        ttl = self.ttl if ttl is None else ttl
        ms = max(1, int(ttl * 1000))
        now = time.time()
        try:
            self._script(
                keys=[self.prefix + key, self._index],
                args=[value, ms, now + ttl, now, self.max_entries],
            )
        except self._errors as exc:
            self._failed(exc)
            return
        self._ok()

    def delete(self, key: str) -> None:
        if not self._available():
            return
        try:
            self.redis.delete(self.prefix + key)
            self.redis.zrem(self._index, self.prefix + key)
        except self._errors as exc:
            self._failed(exc)

    def clear(self) -> None:
        """Delete every entry under this store's prefix (SCAN, so it never blocks Redis)."""
        batch: list[Any] = []
        for name in self.redis.scan_iter(match=f"{self.prefix}*", count=1000):
            batch.append(name)
            if len(batch) >= 1000:
                self.redis.delete(*batch)
                batch.clear()
        if batch:
            self.redis.delete(*batch)

    def size(self) -> int:
        """Live entries in the index (expired ones are trimmed first)."""
        self.redis.zremrangebyscore(self._index, "-inf", time.time())
        return int(self.redis.zcard(self._index))

    def ping(self) -> bool:
        """Whether Redis answers now (ignores the outage back-off)."""
        try:
            return bool(self.redis.ping())
        except self._errors:
            return False

    def close(self) -> None:
        self.redis.close()

    @override
    def __repr__(self) -> str:
        return f"RedisCacheStore(prefix={self.prefix!r})"
