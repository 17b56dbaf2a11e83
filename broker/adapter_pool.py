"""One adapter per site per process, rebuilt when the site's config revision changes."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from adapters import registry
from adapters.base import SiteAdapter
from adapters.errors import AuthFailed
from broker import credentials as creds
from broker.config import SiteConfig
from broker.metrics import ADAPTER_LATENCY, Recorder
from broker.site_hosts import resolved_problem
from broker.store.sites import SiteStore


class Refusing:
    """Stands in for the adapter of a site the broker must not talk to: every call fails with
    AuthFailed (the site is unusable until its config is fixed)."""

    def __init__(self, name: str, why: str):
        self.name = name
        self.why = why

    async def aclose(self) -> None:
        return None

    def __getattr__(self, attr: str) -> Any:
        async def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AuthFailed(self.why)

        return refuse


# the calls to a facility (the SiteAdapter protocol's), timed for /metrics by operation
OPERATIONS = frozenset({"health", "submit", "find_by_tag", "statuses", "cancel", "list_dir", "read_file",
                        "write_file", "allocations"})


class Timed:
    """An adapter whose calls to the facility are timed (errors and timeouts included: a slow
    failure is what an operator looks for) into the process' metrics ``Recorder``."""

    def __init__(self, inner: SiteAdapter, site: str, recorder: Recorder):
        self._inner = inner
        self._site = site
        self._recorder = recorder

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._inner, attr)
        if attr not in OPERATIONS:
            return value

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await value(*args, **kwargs)
            finally:
                self._recorder.observe(ADAPTER_LATENCY, (self._site, attr), time.perf_counter() - start)

        return timed


class AdapterPool:
    def __init__(self, sites: SiteStore, allowed_hosts: list[str] | None = None,
                 credentials: creds.Credentials | None = None, recorder: Recorder | None = None):
        self.sites = sites
        self.recorder = recorder
        self.allowed_hosts = allowed_hosts or []
        self.credentials = credentials or {}
        self._adapters: dict[str, tuple[int, SiteAdapter]] = {}

    async def get(self, site: SiteConfig, revision: int) -> SiteAdapter:
        cached = self._adapters.get(site.name)
        if cached and cached[0] == revision:
            return cached[1]
        adapter = await self._build(site)
        self._adapters[site.name] = (revision, adapter)
        if cached:
            await cached[1].aclose()
        return adapter

    async def _build(self, site: SiteConfig) -> SiteAdapter:
        # never build a client (and so never send a credential) for a forbidden host, also one
        # a host name resolves to now, nor with a credential not bound to every host the site
        # sends it to (the config may have changed under a stored site): the stand-in refuses
        # every call, so health checks mark the site down with the reason and submissions go
        # elsewhere
        why = self._credential_problem(site)
        if why:
            return cast(SiteAdapter, Refusing(site.name, f"{why}; nothing is sent to the site"))
        auth, _ = creds.resolve(site.auth, self.credentials)
        for url in registry.endpoints(site.kind, site.url, auth):
            if why := await asyncio.to_thread(resolved_problem, url, self.allowed_hosts):
                return cast(SiteAdapter, Refusing(site.name, f"the site's endpoint {url} {why}; nothing is sent there"))
        built = registry.build(
            site.kind,
            name=site.name,
            url=site.url,
            systems=site.systems,
            auth=auth,
            http=site.http,
            api_version=site.api_version,
        )
        return cast(SiteAdapter, Timed(built, site.name, self.recorder)) if self.recorder else built

    def _credential_problem(self, site: SiteConfig) -> str | None:
        if direct := creds.source_fields(site.auth):
            return (f"the site's auth names {', '.join(direct)} directly, not a credential declared in the "
                    "config file; give <field>_credential = NAME")
        _, unknown = creds.resolve(site.auth, self.credentials)
        problems = unknown or creds.binding_problems(site.kind, site.url, site.auth, self.credentials)
        return problems[0] if problems else None

    async def by_name(self, name: str) -> tuple[SiteConfig, SiteAdapter] | None:
        stored = await self.sites.get(name)
        if stored is None:
            return None
        return stored.config, await self.get(stored.config, stored.revision)

    async def aclose(self) -> None:
        for _, a in self._adapters.values():
            await a.aclose()
        self._adapters.clear()
