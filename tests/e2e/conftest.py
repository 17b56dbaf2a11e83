"""A whole broker on loopback: `superfed demo` (private redis-server, three simulated
facilities, the API, two workers) as a subprocess, torn down after the module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import Proc, free_port, superfed, wait_until


@dataclass
class Broker:
    info: dict[str, Any]
    proc: Proc
    workdir: Path

    @property
    def api(self) -> str:
        return str(self.info["api"])

    def headers(self, role: str = "submitter") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.info['tokens'][role]}"}

    def sim(self, kind: str) -> str:
        return str(self.info["simulators"][kind])

    def client(self, role: str = "submitter") -> httpx.Client:
        return httpx.Client(base_url=self.api, headers=self.headers(role), timeout=30)

    def wait_jobs(self, ids: list[str], states: set[str], timeout: float = 120) -> dict[str, dict[str, Any]]:
        """Poll until every job is in one of ``states``; returns the jobs by id."""
        pending = set(ids)
        seen: dict[str, dict[str, Any]] = {}
        with self.client("viewer") as c:

            def all_there() -> bool:
                for jid in list(pending):
                    seen[jid] = c.get(f"/api/v1/jobs/{jid}").json()
                    if seen[jid]["state"] in states:
                        pending.discard(jid)
                return not pending

            def sample() -> str:
                return str({j: (seen[j]["state"], seen[j]["message"]) for j in list(pending)[:5]})

            wait_until(all_there, timeout=timeout, interval=0.5, what=f"{len(ids)} jobs in {states}", last=sample)
        return seen


def start_demo(tmp: Path, *, workers: int = 2, time_scale: float = 0.1, extra: tuple[str, ...] = ()) -> Broker:
    info = tmp / "info.json"
    port = free_port()
    proc = Proc(
        superfed(
            "demo",
            "--port",
            str(port),
            "--info",
            str(info),
            "--workers",
            str(workers),
            "--time-scale",
            str(time_scale),
            "--workdir",
            str(tmp / "demo"),
            *extra,
        ),
        log=tmp / "demo.log",
    )

    def up() -> bool:
        if proc.returncode is not None:
            raise RuntimeError(f"demo exited with {proc.returncode}: {proc.tail()}")
        return info.exists()

    try:
        wait_until(up, timeout=90, interval=0.2, what="the demo writing its info file")
    except BaseException:
        proc.stop()
        raise
    return Broker(json.loads(info.read_text()), proc, tmp / "demo")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = start_demo(tmp_path_factory.mktemp("e2e"))
    try:
        yield b
    finally:
        b.proc.stop()
