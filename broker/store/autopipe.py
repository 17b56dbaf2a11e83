"""Automatic pipelining: commands that concurrent coroutines issue while a round trip is in
flight are sent together in the next one.

Under load a request handler that makes one Redis call per request spends most of that call
in redis-py (taking a pooled connection, packing, a syscall each way, parsing) rather than in
Redis. Here the first caller sends at once; callers arriving while that batch is on the wire
queue up and go out together when it returns (a group commit). Each command is still its own
command with its own reply or error, so semantics do not change; an idle server pays nothing
but one hop through the event loop.

A group of commands (``transaction``: MULTI ... EXEC) goes out contiguously on the one
connection, so it is the same transaction it would be on a connection of its own.

Scripts go as EVALSHA; a server that does not know the script yet (a restart, a flush) gets
SCRIPT LOAD once and the refused commands are sent again. A batch refused with READONLY (the
server was demoted to replica) is sent once more on a fresh connection, then fails as a
ConnectionError (the API's 503).
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ExecAbortError, NoScriptError, ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = tuple[Any, ...]


@dataclass(slots=True)
class _Entry:
    cmds: list[Command]
    fut: asyncio.Future[Any]
    group: bool  # a list of replies (a transaction) rather than one reply


class AutoPipeline:
    def __init__(self, r: aioredis.Redis, max_batch: int = 512):
        self.r = r
        self.max_batch = max_batch
        self._pending: list[_Entry] = []
        self._running = False
        self._task: asyncio.Future[None] | None = None  # held: the loop keeps tasks weakly
        self._scripts: dict[str, str] = {}  # sha1 -> source

    def _submit(self, cmds: list[Command], group: bool) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(_Entry(cmds, fut, group))
        if not self._running:
            self._running = True
            self._task = asyncio.ensure_future(self._drain())
        return fut

    async def execute(self, *args: Any) -> Any:
        """Run one command (as for ``execute_command``) in the next batch; its reply or error."""
        return await self._submit([args], False)

    async def many(self, cmds: list[Command]) -> list[Any]:
        """``cmds`` in the next batch, one after the other (not a transaction: another
        connection's commands may run in between); their replies. Raises the first error."""
        replies = await self._submit(cmds, True)
        for r in replies:
            if isinstance(r, Exception):
                raise r
        return list(replies)

    async def transaction(self, cmds: list[Command]) -> list[Any]:
        """MULTI, ``cmds``, EXEC in the next batch; the EXEC replies. Raises the first error
        (a command Redis refused to queue aborts the whole transaction, as it should)."""
        replies = await self._submit([("MULTI",), *cmds, ("EXEC",)], True)
        for r in replies[1:-1]:
            if isinstance(r, ResponseError):
                raise r
        result = replies[-1]
        if isinstance(result, Exception):
            raise result
        if result is None:  # only a WATCH aborts a transaction with a nil reply; we never WATCH
            raise ExecAbortError("transaction aborted")
        for r in result:
            if isinstance(r, Exception):
                raise r
        return list(result)

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

    async def _send(self, batch: list[_Entry], retry: bool = True, reconnect: bool = True) -> None:
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
        demoted = False
        try:
            await conn.send_packed_command(b"".join(pack(c) for e in batch for c in e.cmds))
            for e in batch:
                replies = []
                for _ in e.cmds:
                    try:
                        replies.append(await conn.read_response())
                    except ReadOnlyError as exc:
                        # a primary demoted under us (a managed Redis whose endpoint moved, a
                        # failover): nothing was written there; the batch goes again on a fresh
                        # connection, as the clients' retry policy does (connect.RETRY_ON)
                        replies.append(exc)
                        demoted = True
                    except ResponseError as exc:  # that command's error; its reply was consumed
                        replies.append(exc)
                results.append(replies if e.group else replies[0])
            if demoted:
                raise RedisConnectionError("READONLY: the server is no longer the primary")
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
        for e, res in zip(batch, results, strict=True):
            if e.fut.done():
                continue
            if isinstance(res, NoScriptError) and retry and e.cmds[0][0] == "EVALSHA" and e.cmds[0][1] in self._scripts:
                again.append(e)
            elif isinstance(res, Exception):
                e.fut.set_exception(res)
            else:
                e.fut.set_result(res)
        if again:
            try:
                for sha in {e.cmds[0][1] for e in again}:
                    await self.r.script_load(self._scripts[sha])
            except (RedisError, OSError) as exc:
                _fail(again, exc)
                return
            await self._send(again, retry=False)


def _fail(batch: list[_Entry], exc: Exception) -> None:
    for e in batch:
        if not e.fut.done():
            e.fut.set_exception(exc)


def _arg(a: Any) -> bytes:
    if isinstance(a, bytes):
        return a
    if isinstance(a, str):  # str subclasses too (RQ's JobStatus), as redis-py encodes them
        return str.encode(a)
    if isinstance(a, bool):  # as redis-py: refuse what Redis would misread
        raise TypeError("bool is not a Redis argument; use 0/1 or a string")
    if isinstance(a, int | float):
        return repr(a).encode()
    raise TypeError(f"not a Redis argument: {type(a).__name__}")


_pack_c: Any
try:  # redis-py's optional C parser also packs; twice as fast on a long command (a batch's script call)
    from hiredis import pack_command as _pack_c
except ImportError:  # pragma: no cover - hiredis is a dependency, but redis-py runs without it
    _pack_c = None

LONG = 64  # arguments; below, the C call saves less than it costs to check for


def pack(args: Command) -> bytes:
    """One command in the Redis protocol (RESP): an array of bulk strings."""
    if _pack_c is not None and len(args) > LONG:
        return bytes(_pack_c(args))  # refuses bool and None, as _arg does (TypeError)
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = _arg(a)
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


_shared: weakref.WeakKeyDictionary[aioredis.Redis, AutoPipeline] = weakref.WeakKeyDictionary()


def shared(r: aioredis.Redis) -> AutoPipeline:
    """The one AutoPipeline of a client, so that all its callers share round trips."""
    pipe = _shared.get(r)
    if pipe is None:
        pipe = _shared[r] = AutoPipeline(r)
    return pipe
