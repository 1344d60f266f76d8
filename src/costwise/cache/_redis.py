"""`RedisCacheStore`: one response cache shared by many workers on many hosts."""

from __future__ import annotations

import logging
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from typing_extensions import override

from .._exceptions import CostwiseWarning
from ._write_behind import Item

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

    Writes are queued and sent by a background thread every `flush_interval` seconds, one
    pipelined round trip per batch, so a miss does not wait for a second round trip after
    its lookup. This process reads its queued entries at once; other workers see them
    within `flush_interval`; `close`, `flush` and interpreter exit send the queue. A process
    killed in between loses those few entries (later requests are misses).

    Args:
        url: a redis-py URL (``redis://host:6379/0``, ``rediss://...``, ``unix://...``).
        client: an existing ``redis.Redis`` to use instead of `url`.
        prefix: the prefix of every key this store writes.
        ttl: default lifetime of an entry in seconds (required: 7 days by default).
        max_entries: the most entries this store keeps.
        timeout: the socket connect and read timeout in seconds (default 50 ms).
        retry_after: seconds to skip Redis after a failure.
        clock: the time source for `retry_after`.
        flush_interval: seconds between background writes; ``0`` writes each entry in the
            caller's thread before `set` returns.

    Example:
        >>> ResponseCache(RedisCacheStore("redis://cache.internal:6379/0", ttl=86_400))
    """

    blocking = True
    """A lookup waits on a network round trip: the async client calls it from a worker
    thread (see `costwise.Blocking`), so a slow Redis never stalls the event loop."""

    @property
    def blocking_writes(self) -> bool:
        """Whether `set` waits on the network: only without the write queue."""
        return self._queue is None

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
        flush_interval: float = 0.05,
    ) -> None:
        import redis

        from ._write_behind import WriteBehind

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
        if flush_interval < 0:
            msg = f"RedisCacheStore: flush_interval must be >= 0, got {flush_interval!r}"
            raise ValueError(msg)
        self.redis = client
        self.prefix = prefix
        self.ttl = ttl
        self.max_entries = max_entries
        self.retry_after = retry_after
        self._index = f"{prefix}index"
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._health = _Health(retry_after, clock)
        # The writer holds the client and the health, not the store, so a store nobody
        # references is collected (and its queue sent) as soon as it is dropped.
        self._send = _sender(
            client, prefix, self._index, ttl, max_entries, self._errors, self._health
        )
        self._queue = WriteBehind(self._send, interval=flush_interval) if flush_interval else None
        if self._queue is not None:  # at garbage collection or exit: send what is queued
            self._finalizer = weakref.finalize(self, self._queue.close)

    # -- the CacheStore protocol --------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        if self._queue is not None and self._queue.items:
            queued, queued_value = self._queue.get(key)
            if queued:
                return queued_value
        health = self._health
        if not health.available():
            return None
        sent_at = health.clock()
        try:
            value = self.redis.get(self.prefix + key)
        except self._errors as exc:
            health.failed(exc)
            return None
        health.ok(sent_at)
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        ttl = self.ttl if ttl is None else ttl
        if self._queue is not None:
            self._queue.put(key, value, ttl)
            return
        self._send([(key, value, time.time() + ttl)], in_caller=True)

    def flush(self) -> None:
        """Send the queued writes now (other workers see them from here on)."""
        if self._queue is not None:
            self._queue.flush()

    def delete(self, key: str) -> None:
        """Remove `key`, queued or stored. Tried even while lookups skip an unavailable
        Redis: an invalidation that silently did nothing would serve the answer later.

        Raises:
            redis.RedisError: Redis did not confirm the delete.
        """
        if self._queue is not None:
            self._queue.discard(key)
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(self.prefix + key)
        pipe.zrem(self._index, self.prefix + key)
        pipe.execute()

    def clear(self) -> None:
        """Delete every entry this store wrote (the members of its index, 1,000 at a time,
        so it never blocks Redis); keys of other stores, even under a longer prefix, stay."""
        if self._queue is not None:
            self._queue.discard(None)
        while names := self.redis.zrange(self._index, 0, 999):
            pipe = self.redis.pipeline(transaction=False)
            pipe.delete(*names)
            pipe.zrem(self._index, *names)
            pipe.execute()

    def size(self) -> int:
        """Live entries in the index (expired ones are trimmed first)."""
        self.flush()
        self.redis.zremrangebyscore(self._index, "-inf", time.time())
        return int(self.redis.zcard(self._index))

    def ping(self) -> bool:
        """Whether Redis answers now (ignores the outage back-off)."""
        try:
            return bool(self.redis.ping())
        except self._errors:
            return False

    def close(self) -> None:
        if self._queue is not None:
            self._finalizer()  # sends the queue, once
        self.redis.close()

    @override
    def __repr__(self) -> str:
        return f"RedisCacheStore(prefix={self.prefix!r})"


class _Health:
    """A store's view of Redis: after a failure, leave it alone for `retry_after` seconds
    instead of paying the timeout on every call; one `CostwiseWarning` per outage, raised in
    a caller's thread (a failure the background writer meets is logged, and marks Redis
    down all the same)."""

    def __init__(self, retry_after: float, clock: Callable[[], float]) -> None:
        self.retry_after = retry_after
        self.clock = clock
        self.down = False
        self.warned = False
        self.down_until = 0.0
        self.failed_at = float("-inf")
        self.lock = threading.Lock()

    def available(self) -> bool:
        return not self.down or self.clock() >= self.down_until

    def failed(self, exc: BaseException, *, warn: bool = True) -> None:
        with self.lock:
            self.down = True
            self.failed_at = now = self.clock()
            self.down_until = now + self.retry_after
            first = warn and not self.warned
            self.warned = self.warned or warn
        if first:
            warnings.warn(
                f"Redis cache unavailable ({type(exc).__name__}: {exc}); serving cache misses "
                f"until it answers again",
                CostwiseWarning,
                stacklevel=4,
            )
        logger.debug("redis cache error: %r", exc)

    def ok(self, sent_at: float) -> None:
        """A reply to a request sent at `sent_at` (this health's clock) came back. A reply to
        a request sent before the latest failure says nothing about Redis now."""
        if self.down or self.warned:
            with self.lock:
                if sent_at < self.failed_at:
                    return
                self.down = self.warned = False
            logger.info("Redis cache is answering again")


class _Send(Protocol):
    def __call__(self, batch: Sequence[Item], *, in_caller: bool = False) -> None: ...


def _sender(
    client: Any,
    prefix: str,
    index: str,
    ttl: float,
    max_entries: int,
    errors: tuple[type[BaseException], ...],
    health: _Health,
) -> _Send:
    """Store entries in one pipelined round trip: the write queue's writer, or one `set`.

    Only a transport failure (no connection, a timeout, Redis loading) marks Redis down:
    a write Redis refuses (out of memory with ``noeviction``, a read-only replica after a
    failover) is logged and leaves lookups alone, which may still be answered.
    """
    import redis

    script = client.register_script(_SET_SCRIPT)
    transport = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, OSError)
    last_log = [float("-inf")]

    def log(message: str, *args: object) -> None:
        now = time.monotonic()
        if now - last_log[0] >= 60:  # a failing writer would otherwise log every batch
            last_log[0] = now
            logger.warning(message, *args)

    def send(batch: Sequence[Item], *, in_caller: bool = False) -> None:
        if not health.available():
            if not in_caller:
                log("costwise: %d response cache entries not sent: Redis is down", len(batch))
            return
        sent_at, now = health.clock(), time.time()
        try:
            if len(batch) == 1:  # the script alone (a pipeline costs more than it saves)
                key, value, expires = batch[0]
                script(keys=[prefix + key, index], args=_args(value, expires, now))
            else:
                _pipelined(
                    client, script, [(prefix + k, index, *_args(v, e, now)) for k, v, e in batch]
                )
        except errors as exc:
            if isinstance(exc, transport):
                health.failed(exc, warn=in_caller)
            if not in_caller or not isinstance(exc, transport):
                log(
                    "costwise: %d response cache entries not sent to Redis (%s: %s)",
                    len(batch),
                    type(exc).__name__,
                    exc,
                )
            return
        health.ok(sent_at)

    def _args(value: bytes, expires: float | None, now: float) -> list[Any]:
        left = ttl if expires is None else expires - now
        return [value, max(1, int(left * 1000)), now + left, now, max_entries]

    return send


def _pipelined(client: Any, script: Any, calls: list[tuple[Any, ...]]) -> None:
    """Run the script once per call in one round trip: EVALSHA, loading the script only
    if Redis does not have it (redis-py's own script pipelining would first ask with a
    SCRIPT EXISTS round trip on every batch). Raises the first error a call met."""
    from redis.exceptions import NoScriptError

    results = _evalsha(client, script.sha, calls)
    missing = [c for c, r in zip(calls, results, strict=True) if isinstance(r, NoScriptError)]
    if missing:  # a restarted or flushed Redis: load the script, send those calls again
        client.script_load(_SET_SCRIPT)
        results = [r for r in results if not isinstance(r, NoScriptError)]
        results += _evalsha(client, script.sha, missing)
    for result in results:
        if isinstance(result, Exception):
            raise result


def _evalsha(client: Any, sha: str, calls: list[tuple[Any, ...]]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for key, index, *args in calls:
        pipe.evalsha(sha, 2, key, index, *args)
    return list(pipe.execute(raise_on_error=False))
