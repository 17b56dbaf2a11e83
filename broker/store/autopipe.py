"""Automatic pipelining: commands that concurrent coroutines issue while a round trip is in
flight are sent together in the next one.

Under load a request handler that makes one Redis call per request spends most of that call
in redis-py (taking a pooled connection, packing, a syscall each way, parsing) rather than in
Redis. Here the first caller sends at once; callers arriving while that batch is on the wire
queue up and go out together when it returns (a group commit). Each command is still its own
command with its own reply or error, so semantics do not change; an idle server pays nothing
but one hop through the event loop.

Scripts go as EVALSHA; a server that does not know the script yet (a restart, a flush) gets
SCRIPT LOAD once and the refused commands are sent again.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


class AutoPipeline:
    def __init__(self, r: aioredis.Redis, max_batch: int = 512):
        self.r = r
        self.max_batch = max_batch
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._running = False
        self._task: asyncio.Future[None] | None = None  # held: the loop keeps tasks weakly
        self._scripts: dict[str, str] = {}  # sha1 -> source

    async def execute(self, *args: Any) -> Any:
        """Run one command (as for ``execute_command``) in the next batch; its reply or error."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((args, fut))
        if not self._running:
            self._running = True
            self._task = asyncio.ensure_future(self._drain())
        return await fut

    def script(self, source: str) -> str:
        """Register a Lua script; returns its SHA1 for ``evalsha``."""
        sha = hashlib.sha1(source.encode()).hexdigest()
        self._scripts[sha] = source
        return sha

    async def evalsha(self, sha: str, keys: list[str], args: list[Any]) -> Any:
        return await self.execute("EVALSHA", sha, len(keys), *keys, *args)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                await self._send(batch)
        finally:
            self._running = False

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]], retry: bool = True,
                    reconnect: bool = True) -> None:
        # packed here and written on a pooled connection directly: redis-py's pipeline packs
        # in pure Python per argument, which cost more than the round trip it saves
        pool = self.r.connection_pool
        try:
            conn = await pool.get_connection()
        except (TimeoutError, RedisError, OSError) as exc:
            _fail(batch, exc)
            return
        results: list[Any] = []
        lost: Exception | None = None
        try:
            await conn.send_packed_command(b"".join(pack(args) for args, _ in batch))
            for _ in batch:
                try:
                    results.append(await conn.read_response())
                except ResponseError as exc:  # that command's error; its reply was consumed
                    results.append(exc)
        except (TimeoutError, RedisError, OSError) as exc:
            await conn.disconnect()  # replies may be left unread: never reuse this socket
            lost = exc
        except BaseException as exc:  # cancelled mid-flight (shutdown)
            await conn.disconnect()
            _fail(batch, exc if isinstance(exc, Exception) else RedisError("cancelled"))
            raise
        finally:
            await pool.release(conn)
        if lost is not None:
            if reconnect and isinstance(lost, RedisConnectionError | RedisTimeoutError | OSError):
                # once more on a fresh connection, as the client's own retry policy would
                await self._send(batch, retry, reconnect=False)
            else:
                _fail(batch, lost)
            return
        again = []
        for (args, fut), res in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(res, NoScriptError) and retry and args[0] == "EVALSHA" and args[1] in self._scripts:
                again.append((args, fut))
            elif isinstance(res, Exception):
                fut.set_exception(res)
            else:
                fut.set_result(res)
        if again:
            try:
                for sha in {a[1] for a, _ in again}:
                    await self.r.script_load(self._scripts[sha])
            except (RedisError, OSError) as exc:
                for _, fut in again:
                    fut.set_exception(exc)
                return
            await self._send(again, retry=False)


def _fail(batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]], exc: Exception) -> None:
    for _, fut in batch:
        if not fut.done():
            fut.set_exception(exc)


def _arg(a: Any) -> bytes:
    if isinstance(a, bytes):
        return a
    if isinstance(a, str):
        return a.encode()
    if isinstance(a, bool):  # as redis-py: refuse what Redis would misread
        raise TypeError("bool is not a Redis argument; use 0/1 or a string")
    if isinstance(a, int | float):
        return repr(a).encode()
    raise TypeError(f"not a Redis argument: {type(a).__name__}")


def pack(args: tuple[Any, ...]) -> bytes:
    """One command in the Redis protocol (RESP): an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = _arg(a)
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)
