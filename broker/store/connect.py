"""Redis clients: pooled, bounded, retrying on connection errors (redis-py 8 gives
``from_url`` clients no retries by default).

``redis_url`` names one Redis or Valkey (``redis://``, ``rediss://``, ``unix://``) or a primary
found through Redis Sentinel::

    redis+sentinel://[USER:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB][?sentinel_password=P&sentinel_username=U]

``USER:PASSWORD`` log in to the primary (the data); ``sentinel_password`` (and
``sentinel_username``) to the sentinels, when they have ``requirepass`` of their own. Ports
default to 26379; ``rediss+sentinel://`` speaks TLS to the primary. Every client, sync and
async (RQ's too), asks the sentinels for the primary when it opens a connection, so after a
failover the next connection goes to the new primary. A connection to a primary that was
demoted answers writes with READONLY: redis-py's sentinel connection turns that into a
ConnectionError, and the clients' retry policy reconnects (through the sentinels) and sends
the command again."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel as syncsentinel
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
PLAIN_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_PORT = 26379
_SENTINEL_PARAMS = ("sentinel_password", "sentinel_username")

# A connection error is retried on a fresh connection (for Sentinel: the primary asked again).
# READONLY too: a plain URL whose name moved to the new primary (a managed Redis's endpoint)
# still has connections to the demoted one; a fresh connection resolves the name again
RETRY_ON = [RedisConnectionError, RedisTimeoutError, ReadOnlyError]
# Sentinel: a failover takes the sentinels' down-after-milliseconds plus an election (about 2 s
# with down-after 1000): up to 6 tries spread over ~3 s let a request in flight reach the new
# primary rather than fail (a plain Redis that is down gets 2 quick ones, as before)
RETRIES_PLAIN, RETRIES_SENTINEL = 2, 6
RECHECK_EVERY = 1.0  # seconds between a pool's questions to the sentinels (see _BlockingSentinelPool)


@dataclass(frozen=True)
class SentinelTarget:
    """A ``redis+sentinel://`` URL, taken apart."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False


def is_sentinel(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SENTINEL_SCHEMES


def parse_sentinel(url: str) -> SentinelTarget:
    """Take a ``redis+sentinel://`` URL apart; ValueError says what is wrong (never echoing
    the password)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SENTINEL_SCHEMES:
        raise ValueError(f"must start with {' or '.join(s + '://' for s in SENTINEL_SCHEMES)}")
    rest, _, fragment = rest.partition("#")
    if fragment:
        raise ValueError("must not have a #fragment")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
        if not colon:  # "redis://secret@host" is how some tools write a bare password
            username, password = None, unquote(user)
    sentinels = [_host_port(h) for h in hostlist.split(",")] if hostlist else []
    if not sentinels:
        raise ValueError("names no sentinel (redis+sentinel://HOST:26379,HOST:26379/SERVICE)")
    parts = [p for p in path.split("/")]
    if not parts or not parts[0]:
        raise ValueError("names no service (the sentinels' master name: .../SERVICE[/DB])")
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise ValueError("path must be /SERVICE or /SERVICE/DB (DB a number)")
    service = unquote(parts[0])
    if not service.isprintable() or any(c.isspace() for c in service):
        raise ValueError("the service name must be printable, without spaces")
    params = parse_qs(query, keep_blank_values=True, strict_parsing=False) if query else {}
    unknown = sorted(k for k in params if k not in _SENTINEL_PARAMS)
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(_SENTINEL_PARAMS)}")

    def param(name: str) -> str | None:
        values = params.get(name)
        return values[-1] if values else None

    return SentinelTarget(
        sentinels=sentinels, service=service, db=int(parts[1]) if len(parts) == 2 else 0,
        username=username, password=password, sentinel_username=param("sentinel_username"),
        sentinel_password=param("sentinel_password"), ssl=scheme.lower() == "rediss+sentinel")


def _host_port(item: str) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [v6::addr]:port
        host, close, tail = item[1:].partition("]")
        if not close or (tail and not tail.startswith(":")):
            raise ValueError(f"sentinel {item!r}: an IPv6 address goes in brackets: [::1]:26379")
        port_text = tail[1:]
    else:
        host, _, port_text = item.partition(":")
    if not host or not all(c.isalnum() or c in ".-_:" for c in host):
        raise ValueError(f"sentinel {item!r}: not a host name or address")
    if not port_text:
        return host, SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"sentinel {item!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as ``redis_url`` (None: nothing), for the config check."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in SENTINEL_SCHEMES:
        try:
            parse_sentinel(url)
        except ValueError as exc:
            return str(exc)
        return None
    if scheme not in PLAIN_SCHEMES:
        return ("must be redis://, rediss://, unix:// or redis+sentinel://HOST:26379,HOST:26379/SERVICE "
                "(see the README's Redis section)")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if scheme != "unix" and not parts.hostname:
        return "names no host"
    return None


def _common(decode: bool, socket_timeout: float, sentinel: bool) -> dict[str, Any]:
    return {
        "decode_responses": decode,
        "socket_connect_timeout": 2,
        "socket_timeout": socket_timeout,
        "health_check_interval": 30,
        "retry_on_error": RETRY_ON,
        "_retries": RETRIES_SENTINEL if sentinel else RETRIES_PLAIN,
    }


def _sentinel_kwargs(t: SentinelTarget, retry: Any) -> dict[str, Any]:
    # the sentinels: quick to give up on one that is down, as the next one is asked (redis-py's
    # default retries a sentinel with a backoff of seconds, a refused login too)
    return {"username": t.sentinel_username, "password": t.sentinel_password,
            "socket_connect_timeout": 0.5, "socket_timeout": 1.0, "retry": retry}


class _BlockingSentinelPool(syncsentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """Sentinel's pool (asks the sentinels for the primary at each connect, drops connections
    to a primary that moved) with BlockingConnectionPool's bound: a caller waits up to
    ``timeout`` for a free connection rather than failing with "Too many connections".

    redis-py asks the sentinels only when it opens a connection, so an open connection to a
    primary that was replaced while still up (a SENTINEL FAILOVER, a partition) would keep
    writing there until it is demoted, writes the new primary never sees. So at most every
    ``RECHECK_EVERY`` seconds a connection handed out first asks where the primary is; when it
    moved, idle connections are dropped (redis-py's own doing) and this one reconnects."""

    _checked = 0.0

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        conn = super().get_connection(*args, **kwargs)
        now = time.monotonic()
        if now - self._checked < RECHECK_EVERY:
            return conn
        self._checked = now
        try:
            where = self.get_master_address()
            if (conn.host, conn.port) != where:
                conn.disconnect()
                conn.connect()
        except (RedisConnectionError, RedisTimeoutError):
            pass  # no sentinel answered: the connection's own errors decide
        except BaseException:
            self.release(conn)
            raise
        return conn


class _AsyncBlockingSentinelPool(aiosentinel.SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """The asyncio twin of ``_BlockingSentinelPool``."""

    _checked = 0.0

    async def ensure_connection(self, connection: Any) -> None:
        now = time.monotonic()
        if now - self._checked >= RECHECK_EVERY:
            self._checked = now
            try:
                where = await self.get_master_address()
                if connection.host is not None and (connection.host, connection.port) != where:
                    await connection.disconnect()
            except (RedisConnectionError, RedisTimeoutError):
                pass
        await super().ensure_connection(connection)


def async_client(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    from redis.asyncio.retry import Retry

    kw = _common(True, 5, is_sentinel(url))
    retry = Retry(ExponentialWithJitterBackoff(0.01, 0.5), kw.pop("_retries"))
    if is_sentinel(url):
        t = parse_sentinel(url)
        manager = aiosentinel.Sentinel(t.sentinels, sentinel_kwargs=_sentinel_kwargs(t, Retry(NoBackoff(), 0)))
        pool: aioredis.ConnectionPool = _AsyncBlockingSentinelPool(
            t.service, manager, is_master=True, max_connections=max_connections, timeout=5, retry=retry,
            db=t.db, username=t.username, password=t.password, ssl=t.ssl, **kw)
    else:
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=5,
                                                        retry=retry, **kw)
    return aioredis.Redis(connection_pool=pool)


def sync_client(url: str, *, max_connections: int = 32, decode: bool = False) -> redis.Redis:
    """A blocking client; RQ needs ``decode_responses=False``."""
    from redis.retry import Retry

    kw = _common(decode, 10, is_sentinel(url))
    retry = Retry(ExponentialWithJitterBackoff(0.01, 0.5), kw.pop("_retries"))
    if is_sentinel(url):
        t = parse_sentinel(url)
        manager = syncsentinel.Sentinel(t.sentinels, sentinel_kwargs=_sentinel_kwargs(t, Retry(NoBackoff(), 0)))
        pool: redis.ConnectionPool = _BlockingSentinelPool(
            t.service, manager, is_master=True, max_connections=max_connections, timeout=5, retry=retry,
            db=t.db, username=t.username, password=t.password, ssl=t.ssl, **kw)
    else:
        pool = redis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=5,
                                                     retry=retry, **kw)
    return redis.Redis(connection_pool=pool)


def primary_address(url: str, timeout: float = 2.0) -> tuple[str, int] | None:
    """Where the primary is now, as the sentinels say (None: no sentinel answered, or none
    knows a healthy primary). Only for ``redis+sentinel://`` URLs."""
    from redis.retry import Retry

    t = parse_sentinel(url)
    kw = {**_sentinel_kwargs(t, Retry(NoBackoff(), 0)), "socket_connect_timeout": timeout, "socket_timeout": timeout}
    manager = syncsentinel.Sentinel(t.sentinels, sentinel_kwargs=kw)
    try:
        host, port = manager.discover_master(t.service)
        return str(host), int(port)
    except (RedisConnectionError, RedisTimeoutError):  # MasterNotFoundError is a ConnectionError
        return None
    finally:
        for s in manager.sentinels:
            s.close()
