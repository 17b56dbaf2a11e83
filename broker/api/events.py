"""Server-Sent Events fan-out: one Redis subscription per API process, shared by its streams.

A subscription per stream would hold one of the API's pooled Redis connections for as long as
the stream is open, so a few dozen streams (from one viewer token) would leave none for other
requests (issue 11: every other request answered 503). Here one task per process subscribes
to the health channel and to the token-revocation channel and hands each message to every
open stream's queue. A token has at most ``[api] max_streams_per_token`` streams open on one
process (429 beyond); a stream ends when its token is revoked (announced on the channel, and
re-checked every ``RECHECK`` seconds in case an announcement was missed) or expires."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from litestar.response import ServerSentEventMessage

from broker.store.keys import Keys
from broker.store.tokens import TokenRecord

log = logging.getLogger("superfed.events")
KEEPALIVE = 15.0  # seconds of silence before a comment line (proxies close silent streams)
RECHECK = 15.0  # seconds between checks that a stream's token still exists
QUEUE = 256  # messages a slow stream may fall behind before it is ended


class TooManyStreams(Exception):
    def __init__(self, limit: int):
        super().__init__(limit)
        self.limit = limit


@dataclass(eq=False)
class _Stream:
    token_id: str
    queue: asyncio.Queue[tuple[str, str]] = field(default_factory=lambda: asyncio.Queue(QUEUE))
    ended: str | None = None


class EventHub:
    def __init__(self, redis: aioredis.Redis, keys: Keys, max_per_token: int):
        self.redis = redis
        self.keys = keys
        self.max_per_token = max_per_token
        self._streams: dict[str, set[_Stream]] = {}
        self._task: asyncio.Task[None] | None = None

    def open_count(self, token_id: str) -> int:
        return len(self._streams.get(token_id, ()))

    def _join(self, token_id: str) -> _Stream:
        mine = self._streams.setdefault(token_id, set())
        if len(mine) >= self.max_per_token:
            raise TooManyStreams(self.max_per_token)
        s = _Stream(token_id)
        mine.add(s)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="superfed-events")
        return s

    def _leave(self, s: _Stream) -> None:
        mine = self._streams.get(s.token_id)
        if mine is not None:
            mine.discard(s)
            if not mine:
                del self._streams[s.token_id]

    def stream(self, token: TokenRecord, digest: str) -> AsyncGenerator[ServerSentEventMessage, None]:
        """The event stream for one request (raises TooManyStreams at once, before any byte)."""
        s = self._join(token.id)
        return self._run(s, token, digest)

    async def _run(self, s: _Stream, token: TokenRecord, digest: str) -> AsyncGenerator[ServerSentEventMessage, None]:
        try:
            yield ServerSentEventMessage(comment="subscribed", data=None)
            last_check = time.monotonic()
            while True:
                wait = KEEPALIVE
                if token.expires_at is not None:
                    wait = min(wait, max(0.0, token.expires_at - time.time()))
                try:
                    kind, data = await asyncio.wait_for(s.queue.get(), timeout=wait)
                except TimeoutError:
                    kind, data = "tick", ""
                if kind == "end" or s.ended:
                    yield ServerSentEventMessage(event="end", data=s.ended or data)
                    return
                if token.expires_at is not None and token.expires_at <= time.time():
                    yield ServerSentEventMessage(event="end", data="the token expired")
                    return
                if kind == "health":
                    yield ServerSentEventMessage(data=data, event="health")
                else:
                    yield ServerSentEventMessage(comment="keep-alive", data=None)
                if time.monotonic() - last_check > RECHECK:
                    last_check = time.monotonic()
                    if not await self.redis.hexists(self.keys.tokens, digest):
                        yield ServerSentEventMessage(event="end", data="the token was revoked")
                        return
        finally:
            self._leave(s)

    def _end_token(self, token_id: str, why: str) -> None:
        for s in list(self._streams.get(token_id, ())):
            s.ended = why
            with contextlib.suppress(asyncio.QueueFull):
                s.queue.put_nowait(("end", why))

    def _fan_out(self, data: str) -> None:
        for streams in self._streams.values():
            for s in list(streams):
                try:
                    s.queue.put_nowait(("health", data))
                except asyncio.QueueFull:  # a reader this far behind is ended, not waited for
                    s.ended = "the stream fell too far behind"

    async def _listen(self) -> None:
        """The one subscription; resubscribes after a Redis error; stops when no stream is left."""
        delay = 0.2
        while self._streams:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.keys.events, self.keys.token_events)
                delay = 0.2
                while self._streams:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is None or msg.get("type") != "message":
                        continue
                    channel, data = _text(msg["channel"]), _text(msg["data"])
                    if channel == self.keys.token_events:
                        self._end_token(data, "the token was revoked")
                    else:
                        self._fan_out(data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: streams stay open, the hub resubscribes
                log.warning("event subscription lost (%s); resubscribing", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
