"""Is the broker's Redis open to anyone who can reach it?

Whoever can write to the broker's Redis can write an admin token's hash or forge queue
entries, so the broker refuses to start (API and workers alike) when its Redis answers a
client that did not log in, unless the operator says ``allow_unauthenticated_redis = true``
(the demo's embedded fallback, which cannot require a password, is the one case it sets).
The probe connects to the same host and port as ``redis_url`` with no credentials and sends
PING: a PONG means anyone on that network can do what the broker does.

The probe asks once. Only when nothing answers (Redis not up yet: refused, timed out) does it
ask again, for up to ``wait`` seconds; a server that answered, with PONG or with a refusal, is
never asked twice and never waited for (redis-py's own retries are off: its default retried a
refused login, which it counts as a connection error, with a backoff of seconds, and every
start of the API and the workers paid them)."""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import quote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from broker.store import connect

log = logging.getLogger("superfed.redis")


class UnauthenticatedRedis(RuntimeError):
    """The broker's Redis accepts clients without a password, and the config does not allow it."""


def open_to_anyone(url: str, timeout: float = 2.0, wait: float = 5.0) -> bool | None:
    """True: the server answered PING without credentials; False: it asked for them (NOAUTH,
    a disabled default user, WRONGPASS); None: it could not tell (nothing answered, also after
    asking again for ``wait`` seconds, or an answer that says neither)."""
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        verdict, answered = _probe(url, timeout)
        if answered or time.monotonic() + delay > deadline:
            return verdict
        time.sleep(delay)  # not up yet (started together with Redis): ask again shortly
        delay = min(delay * 2, 0.5)


def _probe(url: str, timeout: float) -> tuple[bool | None, bool]:
    """One PING without credentials: (verdict as ``open_to_anyone``'s, whether anything answered).
    Behind Sentinel: each sentinel (whoever can talk to an open one can make the broker follow
    a Redis of their choice: SENTINEL MONITOR/SET/FAILOVER), then the primary they name."""
    if connect.is_sentinel(url):
        return _probe_sentinel(url, timeout)
    parts = urlsplit(url)
    if parts.scheme not in connect.PLAIN_SCHEMES:
        return None, True  # nothing to ask again
    if parts.scheme == "unix":
        return _ping_client(redis.Redis(unix_socket_path=parts.path, **_kwargs(timeout)))  # type: ignore[arg-type]
    return _ping(parts.hostname or "127.0.0.1", parts.port or 6379, parts.scheme == "rediss", timeout)


def _kwargs(timeout: float) -> dict[str, object]:
    return {"socket_connect_timeout": timeout, "socket_timeout": timeout, "retry": Retry(NoBackoff(), 0)}


def _ping(host: str, port: int, ssl: bool, timeout: float) -> tuple[bool | None, bool]:
    return _ping_client(redis.Redis(host=host, port=port, ssl=ssl, **_kwargs(timeout)))  # type: ignore[arg-type]


def _ping_client(client: redis.Redis) -> tuple[bool | None, bool]:
    try:
        return bool(client.ping()), True
    except (redis.AuthenticationError, redis.exceptions.NoPermissionError):
        return False, True
    except redis.ResponseError as exc:  # "NOAUTH ...", "User disabled", "-NOPERM ..."
        text = str(exc).upper()
        if "NOAUTH" in text or "AUTH" in text or "NOPERM" in text or "DISABLED" in text:
            return False, True
        return None, True
    except (redis.ConnectionError, redis.TimeoutError, OSError):  # (AuthenticationError is caught above)
        return None, False
    finally:
        client.close()


def _probe_sentinel(url: str, timeout: float) -> tuple[bool | None, bool]:
    t = connect.parse_sentinel(url)
    answered = False
    for host, port in t.sentinels:
        verdict, said = _ping(host, port, False, timeout)
        if verdict:
            return True, True
        answered = answered or said
    where = connect.primary_address(url, timeout)
    if where is None:  # no sentinel answered, or none knows a primary yet: ask again
        return None, False
    return _ping(where[0], where[1], t.ssl, timeout)


def check(url: str, allow_unauthenticated: bool, who: str) -> None:
    """Refuse (raise) when the Redis at ``url`` needs no password, unless allowed; then warn
    loudly instead. An unreachable Redis is not refused here: the broker waits for it."""
    verdict = open_to_anyone(url)
    if not verdict:
        return
    where = redacted(url)
    if allow_unauthenticated:
        log.warning("!!! %s: Redis at %s accepts clients WITHOUT a password: anyone who can reach it can "
                    "make admin tokens and run jobs. allow_unauthenticated_redis = true says this is "
                    "wanted; configure an ACL user (deploy/redis.conf) for anything but a demo !!!", who, where)
        return
    log.error("%s: refusing to start: Redis at %s accepts clients without a password", who, where)
    raise UnauthenticatedRedis(
        f"Redis at {where} accepts clients without a password: anyone who can reach it could make "
        "admin tokens and run jobs. Give it an ACL user (see deploy/redis.conf) and put the user and "
        "password in redis_url (redis://USER:PASSWORD@host:port/0), or set "
        "allow_unauthenticated_redis = true to run anyway" + (_SENTINEL_HINT if connect.is_sentinel(url) else ""))


_SENTINEL_HINT = (" (behind Sentinel: the sentinels need a requirepass of their own, given as "
                  "?sentinel_password= in the URL, and the primary and replicas an ACL user)")


_SECRET_PARAM = re.compile(r"(?i)([?&]sentinel_password=)[^&#]*")


def redacted(url: str) -> str:
    """``url`` with its passwords replaced, for messages and logs."""
    if connect.is_sentinel(url):
        scheme, _, rest = _SECRET_PARAM.sub(r"\1***", url).partition("://")
        netloc, slash, tail = rest.partition("/")
        user, at, hosts = netloc.rpartition("@")
        if at:
            name, colon, _pw = user.partition(":")
            netloc = f"{name}:***@{hosts}" if colon else f"***@{hosts}"
        return f"{scheme}://{netloc}{slash}{tail}"
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = quote(parts.username or "", safe="")
    netloc = f"{user}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()
