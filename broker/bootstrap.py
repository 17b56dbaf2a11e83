"""At start: copy the file's sites and tokens into Redis where Redis has none yet."""

from __future__ import annotations

import redis.asyncio as aioredis

from broker.config import Settings
from broker.store.keys import Keys
from broker.store.sites import SiteStore
from broker.store.tokens import TokenStore


async def seed(r: aioredis.Redis, settings: Settings) -> list[str]:
    keys = Keys(settings.namespace)
    added = await SiteStore(r, keys).seed(settings.sites)
    await TokenStore(r, keys).seed(settings.tokens)
    return added
