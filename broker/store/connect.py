"""Redis clients: pooled, bounded, retrying on connection errors (redis-py 8 gives
``from_url`` clients no retries by default)."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


def async_client(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    from redis.asyncio.retry import Retry

    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
        retry=Retry(ExponentialWithJitterBackoff(0.01, 0.5), 2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return aioredis.Redis(connection_pool=pool)


def sync_client(url: str, *, max_connections: int = 32, decode: bool = False) -> redis.Redis:
    """A blocking client; RQ needs ``decode_responses=False``."""
    from redis.retry import Retry

    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        decode_responses=decode,
        socket_connect_timeout=2,
        socket_timeout=10,
        health_check_interval=30,
        retry=Retry(ExponentialWithJitterBackoff(0.01, 0.5), 2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return redis.Redis(connection_pool=pool)
