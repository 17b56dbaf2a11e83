"""Every Redis key superfed writes, in one place. ``ns`` is the configured namespace."""

from __future__ import annotations


class Keys:
    def __init__(self, ns: str = "superfed"):
        self.ns = ns

    # jobs
    def job(self, job_id: str) -> str:
        return f"{self.ns}:job:{job_id}"

    @property
    def jobs_all(self) -> str:
        return f"{self.ns}:jobs:all"

    def jobs_by_project(self, project: str) -> str:
        return f"{self.ns}:jobs:project:{project}"

    def jobs_by_state(self, state: str) -> str:
        return f"{self.ns}:jobs:state:{state}"

    def jobs_by_site(self, site: str) -> str:
        return f"{self.ns}:jobs:site:{site}"

    def active(self, site: str) -> str:
        """hash job id -> "system|native id" of the broker's unfinished jobs held by a site"""
        return f"{self.ns}:active:{site}"

    def assigned(self, site: str) -> str:
        """hash job id -> time: jobs placed at a site and not finished (the backlog counter)"""
        return f"{self.ns}:assigned:{site}"

    def done(self, site: str) -> str:
        """zset job id -> finish time, recent completions (throughput)"""
        return f"{self.ns}:done:{site}"

    def outcomes(self, site: str) -> str:
        """list of a site's latest submission outcomes, newest first: "ok:<time>" (accepted) or
        "bad:<time>" (refused, or failed within seconds): the black-hole guard's record"""
        return f"{self.ns}:outcomes:{site}"

    @property
    def durability_mark(self) -> str:
        """a counter intake increments before WAIT ([durability] level replica: broker/durability.py)"""
        return f"{self.ns}:durability:mark"

    def idempotency(self, owner: str, key: str) -> str:
        return f"{self.ns}:idem:{owner}:{key}"

    # sites and health
    @property
    def sites(self) -> str:
        """hash site name -> config JSON (with its revision)"""
        return f"{self.ns}:sites"

    @property
    def sites_version(self) -> str:
        return f"{self.ns}:sites:version"

    def health(self, site: str) -> str:
        return f"{self.ns}:health:{site}"

    @property
    def events(self) -> str:
        """pub/sub channel of health changes"""
        return f"{self.ns}:events"

    def auth_failures(self, address: str) -> str:
        """failed authentications from one client address in the current minute"""
        return f"{self.ns}:authfail:{address}"

    @property
    def auth_failures_total(self) -> str:
        """every failed authentication ever (a counter for /metrics)"""
        return f"{self.ns}:metrics:auth_failures"

    def metrics(self, family: str) -> str:
        """hash of one metrics family's counters (broker/metrics.py says what is in it)"""
        return f"{self.ns}:metrics:{family}"

    @property
    def token_events(self) -> str:
        """pub/sub channel: the id of each revoked token (open event streams of it end)"""
        return f"{self.ns}:events:tokens"

    @property
    def rr(self) -> str:
        return f"{self.ns}:placement:rr"

    @property
    def audit(self) -> str:
        """capped list of audit entries (JSON), newest first"""
        return f"{self.ns}:audit"

    # tokens
    @property
    def tokens(self) -> str:
        """hash sha256(token) -> token record JSON"""
        return f"{self.ns}:tokens"

    @property
    def tokens_last_used(self) -> str:
        """hash sha256(token) -> unix time it was last used (written at most once a minute)"""
        return f"{self.ns}:tokens:last_used"

    @property
    def tokens_revoked(self) -> str:
        """set of sha256(token) of revoked config-file tokens, so a restart does not revive them"""
        return f"{self.ns}:tokens:revoked"

    def rate(self, digest: str) -> str:
        """counter of a token's requests in the current rate-limit window (expires with it)"""
        return f"{self.ns}:rate:{digest}"

    # workers (broker/worker.py)
    def lease(self, what: str, site: str) -> str:
        """a periodic task's lease (one owner per site and task): the owner's token, with a TTL"""
        return f"{self.ns}:lease:{what}:{site}"

    def primary_since(self, replid: str) -> str:
        """when the Redis primary with this replication id was first seen promoted (primary.py)"""
        return f"{self.ns}:primary:{replid}"

    def worker_lease(self, name: str) -> str:
        """a worker's lease: while it exists, the jobs it claimed are its own"""
        return f"{self.ns}:lease:worker:{name}"

    @property
    def claims(self) -> str:
        """hash RQ job id -> the worker running it"""
        return f"{self.ns}:claims"

    @property
    def sweep_suspects(self) -> str:
        """hash job id -> when the sweeper first found its submission held by nothing"""
        return f"{self.ns}:sweep:suspects"

    def watched(self, site: str) -> str:
        """hash job id -> a try at ``site`` given up unconfirmed (JSON ``Watch``): a copy of the
        job that shows up there later is canceled (broker/tasks/late_copies.py)"""
        return f"{self.ns}:watched:{site}"
