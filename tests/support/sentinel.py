"""A Redis Sentinel set on loopback for tests: a primary, replicas and sentinels, each a
``redis-server`` process of its own (Debian's ``redis-server`` is a sentinel when started with
``--sentinel``; ``redis-sentinel`` may not be on PATH).

Every data node has the ACL users of ``broker.demo.redis_server_args`` (the broker's user and
``default``, both with ``password``) and logs in to its primary with them (``masterauth``),
the old primary too once it comes back as a replica. The sentinels have a password of their
own (``requirepass``, ``sentinel sentinel-pass`` between them) and log in to the data nodes as
``default``."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from urllib.parse import quote

import redis

from broker.demo import REDIS_USER, new_redis_password, redis_server_args, write_private
from broker.procs import Proc, free_port, wait_until

SERVICE = "superfed-test"


class SentinelSet:
    def __init__(self, tmp: Path, *, replicas: int = 1, sentinels: int = 3, down_after_ms: int = 1000,
                 failover_timeout_ms: int = 3000, aof: bool = True, sentinel_auth: bool = True):
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not on PATH (apt-get install -y redis-server)")
        self.exe = exe
        self.dir = tmp
        self.aof = aof
        self.password = new_redis_password()
        # None: sentinels anyone may talk to (the broker refuses those)
        self.sentinel_password = new_redis_password() if sentinel_auth else None
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.nodes: dict[int, Proc] = {}  # port -> data node
        self.sentinels: dict[int, Proc] = {}
        try:
            self.first_primary = self.start_node(free_port())
            for _ in range(replicas):
                self.start_node(free_port(), replica_of=self.first_primary)
            quorum = sentinels // 2 + 1
            for _ in range(sentinels):
                self.start_sentinel(free_port(), quorum)
            if sentinels:  # (none: a primary and its replicas alone)
                self.wait_stable()
        except BaseException:
            self.stop()
            raise

    # -- processes -------------------------------------------------------------------
    def start_node(self, port: int, replica_of: int | None = None) -> int:
        d = self.dir / f"redis-{port}"
        d.mkdir(exist_ok=True)
        args = redis_server_args(self.exe, port, d, aof=self.aof, password=self.password)
        # log in to the primary (also as the old primary, once it is back as a replica)
        args += ["--masteruser", "default", "--masterauth", self.password, "--repl-diskless-sync", "no",
                 "--appendfsync", "everysec"]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.nodes[port] = Proc(args, port=port, log=d / "redis.log").wait_ready()
        return port

    def start_sentinel(self, port: int, quorum: int) -> int:
        d = self.dir / f"sentinel-{port}"
        d.mkdir(exist_ok=True)
        conf = d / "sentinel.conf"  # a sentinel rewrites its file: one each, writable
        write_private(conf, "\n".join([
            f"port {port}", "bind 127.0.0.1", f"dir {d}",
            *([f"requirepass {self.sentinel_password}", f"sentinel sentinel-pass {self.sentinel_password}"]
              if self.sentinel_password else []),
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.first_primary} {quorum}",
            f"sentinel auth-user {SERVICE} default",
            f"sentinel auth-pass {SERVICE} {self.password}",
            f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}",
            f"sentinel failover-timeout {SERVICE} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {SERVICE} 1",
        ]) + "\n")
        self.sentinels[port] = Proc([self.exe, str(conf), "--sentinel"], port=port, log=d / "sentinel.log").wait_ready()
        return port

    def stop(self) -> None:
        for p in [*self.sentinels.values(), *self.nodes.values()]:
            p.stop()

    # -- addresses -------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The broker's ``redis_url``: its ACL user at the primary, the sentinels' own password."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        auth = f"?sentinel_password={quote(self.sentinel_password, safe='')}" if self.sentinel_password else ""
        return f"redis+sentinel://{REDIS_USER}:{quote(self.password, safe='')}@{hosts}/{SERVICE}/0{auth}"

    def sentinel(self, port: int | None = None) -> redis.Redis:
        return redis.Redis(port=port or next(iter(self.sentinels)), password=self.sentinel_password,
                           decode_responses=True, socket_timeout=2)

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, username=REDIS_USER, password=self.password, decode_responses=True,
                           socket_timeout=2)

    def primary(self) -> int:
        """The primary's port as the sentinels see it (all of them agreeing)."""
        seen = {int(self.sentinel(p).sentinel_get_master_addr_by_name(SERVICE)[1]) for p in self.sentinels}
        if len(seen) != 1:
            raise AssertionError(f"the sentinels disagree on the primary: {seen}")
        return seen.pop()

    def wait_stable(self, timeout: float = 30) -> None:
        """Until every sentinel knows the others and a replica, and the replicas are in sync."""
        def ready() -> bool:
            for p in self.sentinels:
                m = self.sentinel(p).sentinel_master(SERVICE)
                if int(m["num-other-sentinels"]) < len(self.sentinels) - 1 or int(m["num-slaves"]) < 1:
                    return False
                # a replica the sentinel has not read INFO from yet cannot be promoted (NOGOODSLAVE)
                replicas = self.sentinel(p).sentinel_slaves(SERVICE)
                if not any(r.get("master-link-status") == "ok" and not r.get("is_sdown") for r in replicas):
                    return False
            info = self.node(self.primary()).info("replication")
            return int(info["connected_slaves"]) >= len(self.nodes) - 1
        wait_until(ready, timeout=timeout, interval=0.1, what="the sentinels to see each other and a replica")

    def kill_primary(self) -> int:
        port = self.primary()
        self.nodes[port].kill()
        return port

    def wait_new_primary(self, old: int, timeout: float = 60) -> float:
        """Until the sentinels name a primary other than ``old`` and it takes writes; when (monotonic)."""
        def moved() -> float | None:
            try:
                now = self.primary()
                if now != old and self.node(now).info("replication")["role"] == "master":
                    return time.monotonic()
            except (redis.RedisError, AssertionError):
                pass
            return None
        return wait_until(moved, timeout=timeout, interval=0.05, what=f"a primary other than port {old}")
