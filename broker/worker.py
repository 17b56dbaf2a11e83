"""``superfed worker``: an RQ worker with superfed's runtime, plus the periodic schedule.

The schedule lives in Redis, not in any one process: every worker runs a small ticker that
tries ``SET key NX PX interval`` per site and task; whoever wins enqueues that period's
health check or poll.  Workers can come and go (or be killed) and the schedule goes on."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from rq import SimpleWorker
from rq.job import Job as RQJob

from broker.bootstrap import seed
from broker.config import Settings
from broker.store.connect import sync_client
from broker.tasks import queues
from broker.tasks.runtime import Runtime, install

log = logging.getLogger("superfed.worker")
SWEEP_EVERY = 10.0  # seconds between checks for NEW jobs whose submission was lost
SWEEP_GRACE = 30.0  # a NEW job older than this with no RQ job is re-enqueued


class Ticker(threading.Thread):
    def __init__(self, rt: Runtime, conn: Any, stop: threading.Event):
        super().__init__(name="superfed-ticker", daemon=True)
        self.rt = rt
        self.conn = conn
        self.stop = stop

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                self.tick()
            except Exception as exc:  # Redis away, a bad record: log, keep ticking
                log.warning("ticker: %s", exc)
                self.stop.wait(1.0)

    def tick(self) -> None:
        k = self.rt.keys
        sites = self.rt.call(self.rt.sites.all)
        for stored in sites:
            s = stored.config
            if self.conn.set(k.tick("health", s.name), "1", nx=True, px=int(s.health_interval * 1000)):
                queues.queue(self.conn, queues.HEALTH).enqueue_call(
                    queues.HEALTH_FN, args=(s.name,), timeout=60, result_ttl=0, failure_ttl=300
                )
            if self.conn.hlen(k.active(s.name)) and self.conn.set(
                k.tick("poll", s.name), "1", nx=True, px=int(s.poll_interval * 1000)
            ):
                queues.queue(self.conn, queues.POLL).enqueue_call(
                    queues.POLL_FN, args=(s.name,), timeout=120, result_ttl=0, failure_ttl=300
                )
        if self.conn.set(k.tick("sweep", "all"), "1", nx=True, px=int(SWEEP_EVERY * 1000)):
            self.sweep()

    def sweep(self) -> None:
        """A 202 means the job will be worked on: re-enqueue NEW jobs whose RQ job is gone."""
        k = self.rt.keys
        cutoff_us = int((time.time() - SWEEP_GRACE) * 1_000_000)
        for raw in self.conn.zrangebyscore(k.jobs_by_state("NEW"), "-inf", cutoff_us, start=0, num=500):
            job_id = raw.decode() if isinstance(raw, bytes) else raw
            status = None
            try:
                status = RQJob.fetch(f"submit-{job_id}", connection=self.conn).get_status()
            except Exception:
                status = None
            if status is None or status.value in ("finished", "failed", "stopped", "canceled"):
                log.info("sweeper: re-enqueueing the submission of %s (rq status %s)", job_id, status)
                queues.enqueue_submit(
                    self.conn,
                    job_id,
                    retries=self.rt.settings.worker.submit_retries,
                    timeout=self.rt.settings.worker.job_timeout,
                )


def run(settings: Settings, *, burst: bool = False, name: str | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per facility request is noise
    rt = Runtime(settings)
    install(rt)
    rt.call(seed, rt.redis, settings)
    conn = sync_client(settings.redis_url)
    stop = threading.Event()
    ticker = Ticker(rt, conn, stop)
    ticker.start()
    w = settings.worker
    worker = SimpleWorker(
        [queues.queue(conn, q) for q in queues.ALL_QUEUES],
        connection=conn,
        name=name,
        maintenance_interval=w.maintenance_interval,
        job_monitoring_interval=5,
        default_result_ttl=300,
    )

    try:
        worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
    finally:
        stop.set()
        rt.close()
    return 0
