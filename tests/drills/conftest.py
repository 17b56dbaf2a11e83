"""Reliability drills: a whole broker on loopback as separate processes, killed on purpose.

Each part is its own process so that a drill can kill and restart it alone: ``redis-server``
with AOF (``appendfsync everysec``, as deploy/redis.conf), the three simulated facilities,
``superfed serve`` and ``superfed worker`` processes. Credentials and the config file come
from ``broker.demo`` (the same ones ``superfed demo`` writes).

Every drill ends with ``Cluster.audit``: the broker's jobs against ``GET /_sim/jobs`` at every
facility, and one line ``<drill>: N accepted, N finished, 0 lost, 0 duplicated`` with the
recovery times, printed at once and again in pytest's summary ("reliability drills")."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
import tomllib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import tomli_w

from adapters.slurm import tag_from_comment
from adapters.tags import tag_from_name
from broker.demo import Demo, new_redis_password, redis_url_for
from tests.support.servers import Proc, free_port, start_redis, superfed, wait_until

KINDS = ("sfapi", "firecrest", "iri")
SITE_OF_KIND = {"sfapi": "nersc", "firecrest": "cscs", "iri": "alcf"}
KIND_OF_SITE = {v: k for k, v in SITE_OF_KIND.items()}
FINAL = {"COMPLETED", "FAILED", "CANCELED"}

# the drills' worker settings: the default lease (a killed worker's jobs are taken over within
# about 5 s) and a short sweep period, so that each drill takes seconds, not minutes
DRILL_WORKER = """[worker]
abandoned_after = 3
maintenance_interval = 3
"""

DRILL_LINES: list[str] = []
_LINES_FILE = Path(os.environ.get("SUPERFED_DRILL_LINES", "")) if os.environ.get("SUPERFED_DRILL_LINES") else None


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    if DRILL_LINES:
        terminalreporter.section("reliability drills")
        for line in DRILL_LINES:
            terminalreporter.write_line(line)


def spec(command: str, name: str) -> dict[str, Any]:
    return {"name": name, "executable": "/bin/bash", "arguments": ["-c", command], "resources": {"node_count": 1},
            "attributes": {"duration": 3600}}


@dataclass
class Audit:
    drill: str
    accepted: int
    finished: int
    lost: list[str]
    duplicated: list[str]
    untracked: list[str]  # facility jobs tagged with an id the broker does not hold
    jobs: dict[str, dict[str, Any]]
    held: dict[str, list[dict[str, Any]]]
    recovery: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        text = (f"{self.drill}: {self.accepted} accepted, {self.finished} finished, "
                f"{len(self.lost)} lost, {len(self.duplicated)} duplicated")
        if self.recovery:
            text += " (" + "; ".join(f"{k} {v:.1f} s" for k, v in self.recovery.items()) + ")"
        return text

    def report(self, **extra: float) -> str:
        self.recovery.update(extra)
        line = self.line()
        DRILL_LINES.append(line)
        if _LINES_FILE:
            with _LINES_FILE.open("a") as f:
                f.write(line + "\n")
        print("\n" + line, flush=True)
        return line

    def check(self) -> None:
        assert not self.lost, f"lost: {self.lost[:5]} (e.g. {[self.jobs.get(j) for j in self.lost[:2]]})"
        def tries(t: str) -> list[tuple[str, str, str | None]]:
            return [(x["site"], x["outcome"], x.get("error")) for x in self.jobs.get(t, {}).get("attempts", [])]

        assert not self.duplicated, f"duplicated: {self.duplicated[:5]}, e.g. " + "; ".join(
            f"{t}: attempts {tries(t)}" for t in self.duplicated[:2])
        assert not self.untracked, f"facility jobs the broker does not know: {self.untracked[:5]}"


class Cluster:
    """redis-server (AOF), three simulators, API, workers: each a process of its own."""

    def __init__(self, tmp: Path, *, workers: int = 2, time_scale: float = 0.1, worker_toml: str = DRILL_WORKER,
                 edit: Callable[[dict[str, Any]], None] | None = None):
        self.dir = tmp
        self.demo = Demo(tmp)
        self.procs: list[Proc] = []
        self.workers: list[Proc] = []
        self.starts = 0
        self.redis_proc: Proc | None = None
        self.redis_port = free_port()
        self.redis_password = new_redis_password()  # the same across restarts of redis-server
        self.api_port = free_port()
        self.api_proc: Proc | None = None
        try:
            self.start_redis()
            creds = self.demo.make_credentials()
            self.sims = self.demo.start_sims(free_port(), creds, time_scale)
            self.tokens = {r: f"sf_drill_{r}_{secrets.token_urlsafe(12)}" for r in ("viewer", "submitter", "admin")}
            cfg = self.demo.write_config(self.redis_url, self.sims, creds, self.tokens)
            # the demo's config with the drill's worker settings and no rate limit (as TOML,
            # not text: the demo's file may hold any of these tables already)
            data = tomllib.loads(cfg.read_text())
            data["worker"] = {**data.get("worker", {}), **tomllib.loads(worker_toml)["worker"]}
            data["api"] = {**data.get("api", {}), "rate_limit_per_minute": 0}
            if edit is not None:  # the drill's own changes to the config
                edit(data)
            cfg.write_text(tomli_w.dumps(data))
            self.config = cfg
            self.start_api()
            for _ in range(workers):
                self.start_worker()
            self.demo.wait_ready(self.api, self.tokens["viewer"], timeout=60)
        except BaseException:
            self.stop()
            raise

    # -- processes ---------------------------------------------------------------------
    @property
    def redis_url(self) -> str:
        return redis_url_for(self.redis_port, self.redis_password)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start_redis(self) -> Proc:
        self.redis_proc, _ = start_redis(self.dir, port=self.redis_port, aof=True, password=self.redis_password)
        return self.redis_proc

    def start_api(self) -> Proc:
        self.api_proc = Proc(superfed("serve", "--config", str(self.config), "--port", str(self.api_port)),
                             port=self.api_port, log=self.dir / "api.log").wait_ready(30)
        return self.api_proc

    def start_worker(self) -> Proc:
        self.starts += 1
        # a fresh name per start: RQ refuses a name whose previous holder did not die cleanly
        p = Proc(superfed("worker", "--config", str(self.config), "--name", f"drill-w{self.starts}"),
                 log=self.dir / f"worker-{self.starts}.log")
        self.workers.append(p)
        return p

    def stop(self) -> None:
        for p in [*self.workers, *([self.api_proc] if self.api_proc else [])]:
            p.stop()
        self.demo.stop()  # the simulators
        if self.redis_proc:
            self.redis_proc.stop()

    def r(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=5)

    # -- facilities --------------------------------------------------------------------
    def sim(self, kind: str, path: str, body: dict[str, Any]) -> None:
        r = httpx.post(f"{self.sims[kind]}/_sim/{path}", json=body, timeout=10)
        assert r.status_code == 200, r.text

    def chaos(self, kinds: tuple[str, ...] = KINDS, **body: Any) -> None:
        for k in kinds:
            self.sim(k, "chaos", body)

    def held(self) -> dict[str, list[dict[str, Any]]]:
        return {k: httpx.get(f"{url}/_sim/jobs", timeout=30).json()["jobs"] for k, url in self.sims.items()}

    # -- the API -----------------------------------------------------------------------
    def headers(self, role: str = "submitter") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def client(self, role: str = "viewer") -> httpx.Client:
        return httpx.Client(base_url=self.api, headers=self.headers(role), timeout=30)

    def all_jobs(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        cursor = None
        with self.client() as c:
            while True:
                params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
                page = c.get("/api/v1/jobs", params=params).json()
                out.update({j["id"]: j for j in page["items"]})
                cursor = page["next_cursor"]
                if not cursor:
                    return out

    def wait_jobs(self, ids: set[str] | list[str], states: set[str] = FINAL, timeout: float = 120) -> float:
        """Wait until every job is in ``states``; returns when that was (time.monotonic())."""
        want = set(ids)
        jobs: dict[str, dict[str, Any]] = {}
        pending: list[str] = list(want)

        def done_at() -> float | None:
            nonlocal jobs, pending
            try:
                jobs = self.all_jobs()
            except httpx.HTTPError:
                return None  # the API may be down on purpose: ask again
            pending = [j for j in want if j not in jobs or jobs[j]["state"] not in states]
            return None if pending else time.monotonic()

        def sample() -> str:
            return str([(j, jobs.get(j, {}).get("state"), jobs.get(j, {}).get("message")) for j in pending[:5]])

        return wait_until(done_at, timeout=timeout, interval=0.5, what=f"{len(want)} jobs in {states}", last=sample)

    def wait_taken_over(self, rq_id: str, dead: str, timeout: float = 60) -> float:
        """Wait until a worker other than ``dead`` has claimed ``rq_id`` (or it is settled);
        returns when (time.monotonic())."""
        r = self.r()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            owner = r.hget("superfed:claims", rq_id)
            if owner is None and r.hget(f"rq:job:{rq_id}", "status") in ("queued", "finished", "scheduled"):
                return time.monotonic()  # back in its queue (taken over), or already run again
            if owner is not None and owner.rpartition("/")[0] != dead:
                return time.monotonic()
            time.sleep(0.02)
        raise AssertionError(f"{rq_id} was not taken over from {dead} within {timeout} s")

    def post(self, n: int, command: str, prefix: str, **kw: Any) -> dict[str, str]:
        return asyncio.run(self.apost(n, command, prefix, **kw))

    async def apost(self, n: int, command: str, prefix: str, *, concurrency: int = 32, give_up: float = 120,
                    start: int = 0, site: str | None = None, out: dict[str, str] | None = None,
                    at: dict[str, float] | None = None, seen: Counter[str] | None = None,
                    pace: float = 0.0) -> dict[str, str]:
        """POST n jobs with Idempotency-Keys, retrying each until it has a 202 (a client that
        got no answer or a 503 asks again with the same key). Returns key -> job id; ``at``
        gets when each 202 arrived, ``seen`` counts answers by status or transport error."""
        out = {} if out is None else out
        at = {} if at is None else at
        seen = Counter() if seen is None else seen
        sem = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=self.api, headers=self.headers("submitter"), timeout=15,
                                     limits=httpx.Limits(max_connections=concurrency)) as c:
            async def one(i: int) -> None:
                key = f"{prefix}-{i}"
                body: dict[str, Any] = {"project": "m0001", "spec": spec(command, key)}
                if site:
                    body["placement"] = {"site": site}
                deadline = time.monotonic() + give_up
                async with sem:
                    while True:
                        try:
                            r = await c.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})
                            seen[str(r.status_code)] += 1
                            if r.status_code == 202:
                                out[key] = r.json()["id"]
                                at[key] = time.monotonic()
                                if pace:
                                    await asyncio.sleep(pace)
                                return
                            assert r.status_code in (409, 429, 503), (r.status_code, r.text)
                        except httpx.TransportError as exc:
                            seen[type(exc).__name__] += 1
                        if time.monotonic() > deadline:
                            raise AssertionError(f"{key}: no 202 after {give_up} s")
                        await asyncio.sleep(0.2)

            await asyncio.gather(*[one(i) for i in range(start, start + n)])
        return out

    # -- the judge ---------------------------------------------------------------------
    def audit(self, drill: str, accepted: dict[str, str], *, must_survive: set[str] | None = None,
              expect: set[str] | None = frozenset({"COMPLETED"})) -> Audit:  # type: ignore[assignment]
        """Compare the broker's jobs with every facility's. ``accepted``: Idempotency-Key ->
        job id of every 202; ``must_survive``: the ids the contract says must be kept (all of
        them unless a drill says otherwise, e.g. Redis killed inside its fsync window)."""
        ids = set(accepted.values())
        keep = ids if must_survive is None else must_survive
        jobs = self.all_jobs()
        held = self.held()
        by_tag: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for kind, rows in held.items():
            for row in rows:
                tag = tag_from_comment(row.get("comment")) or tag_from_name(row.get("name"))
                if tag:
                    by_tag[tag].append((kind, str(row["id"])))
        lost = []
        for jid in sorted(keep):
            j = jobs.get(jid)
            if j is None or (expect and j["state"] not in expect):
                lost.append(jid)
                continue
            if j.get("native_id"):
                natives = by_tag.get(jid, [])
                want = (KIND_OF_SITE[j["site"]], j["native_id"].split(".")[0])
                if want not in natives:
                    lost.append(jid)  # the broker follows a facility job that does not exist
        duplicated = [t for t, v in by_tag.items() if len(v) > 1]
        names = Counter(j["name"] for j in jobs.values() if j.get("name"))
        duplicated += [f"broker:{n}" for n, c in names.items() if c > 1]
        untracked = [t for t in by_tag if t not in jobs and t not in ids]
        # a job accepted inside Redis's fsync window may be gone, and with it its facility job's record
        untracked = [t for t in untracked if must_survive is None]
        finished = sum(1 for jid in ids if jobs.get(jid, {}).get("state") in FINAL)
        return Audit(drill, len(ids), finished, lost, duplicated, untracked, jobs, held)


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    opts = getattr(request, "param", {}) or {}
    c = Cluster(tmp_path, **opts)
    try:
        yield c
    finally:
        c.stop()


def kill(p: Proc, sig: int = signal.SIGKILL) -> None:
    p.signal(sig)
