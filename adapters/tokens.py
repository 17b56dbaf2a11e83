"""Access-token caches: one refresh at a time, however many requests wait for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from adapters.secrets import Secret

# (token, lifetime in seconds or None for "does not expire")
Fetch = Callable[[], Awaitable[tuple[Secret, float | None]]]


class TokenCache:
    """Holds one bearer token and refreshes it ``margin`` seconds before it expires.

    Concurrent callers share a single in-flight refresh (an asyncio.Lock around fetch); a 401
    calls ``invalidate(token)`` and the next ``get()`` fetches once, however many saw the 401.
    """

    def __init__(self, fetch: Fetch, *, margin: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._fetch = fetch
        self._margin = margin
        self._clock = clock
        self._token: Secret | None = None
        self._expires_at: float | None = None
        self._lock = asyncio.Lock()
        self.refreshes = 0

    def _fresh(self) -> bool:
        if self._token is None:
            return False
        return self._expires_at is None or self._clock() < self._expires_at - self._margin

    async def get(self) -> Secret:
        if self._fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            if not self._fresh():
                token, lifetime = await self._fetch()
                self.refreshes += 1
                self._token = token
                self._expires_at = None if lifetime is None else self._clock() + lifetime
            assert self._token is not None
            return self._token

    def invalidate(self, token: Secret | None = None) -> None:
        """Forget the token, unless another caller already replaced the one that failed."""
        if token is None or token == self._token:
            self._token = None
            self._expires_at = None
