"""Concurrent callers of one read share the call in flight instead of each making their own.

A caller that arrives while the read is on the wire gets that read's answer: data read at
most one Redis round trip before it asked. Under load this turns N identical reads a loop
iteration into one; on an idle server it is one extra future."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedCall(Generic[T]):
    def __init__(self, fn: Callable[[], Awaitable[T]]):
        self.fn = fn
        self._waiters: list[asyncio.Future[T]] = []
        self._running = False
        self._task: asyncio.Future[None] | None = None  # held: the loop keeps tasks weakly

    async def __call__(self) -> T:
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if not self._running:
            self._running = True
            self._task = asyncio.ensure_future(self._run())
        # each caller waits on its own future: one that goes away (a client disconnects)
        # cancels only itself, never the shared read
        return await waiter

    async def _run(self) -> None:
        try:
            result = await self.fn()
        except Exception as exc:
            for w in self._take():
                if not w.done():
                    w.set_exception(exc)
            return
        except BaseException:
            for w in self._take():
                w.cancel()
            raise
        for w in self._take():
            if not w.done():
                w.set_result(result)

    def _take(self) -> list[asyncio.Future[T]]:
        waiters, self._waiters = self._waiters, []
        self._running = False
        return waiters
