"""Issue 13: a worker's lines about a job are JSON objects naming the job and the site."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from functools import partial

from broker import logs
from broker.worker import Worker
from tests.tasks.conftest import Tasks


def test_a_workers_line_about_a_job_names_the_job_and_the_site_in_json(healthy: Tasks) -> None:
    t = healthy
    for f in t.sim.values():
        f.slow.busy = True  # every submission answered 503: the job waits for a retry, and the worker says so
    jid = t.create()  # enqueued as the API does
    # every line one JSON object
    lines = _json_lines(lambda: t.call(partial(Worker(t.settings, "logs-w1").main, burst=True)))
    about = [rec for rec in lines if rec.get("job_id") == jid]
    assert about, lines
    line = next(rec for rec in about if "every eligible site failed" in rec["msg"])
    assert line["site"] in {"alpha", "beta"} and line["logger"] == "superfed.worker" and line["level"] == "INFO"
    assert {"ts", "msg"} <= line.keys()
    # lines about no job carry no job id (a job's binding does not leak into the worker's own lines)
    assert all("job_id" not in rec for rec in lines if rec["logger"] == "superfed.worker" and jid not in rec["msg"])


def test_text_lines_name_the_job_and_site_too() -> None:
    out = io.StringIO()
    h = logs.handler("text", out)
    rec = logging.LogRecord("superfed.poll", logging.WARNING, __file__, 1, "status unknown", None, None)
    rec.job_id, rec.site = "j1", "alpha"
    h.handle(rec)
    assert out.getvalue().rstrip().endswith("status unknown [job_id=j1 site=alpha]")


def test_setup_keeps_handlers_it_did_not_install() -> None:
    """An embedding program's (or pytest's) handler stays; a second setup replaces only its own."""
    import logging

    from broker import logs

    root = logging.getLogger()
    foreign = logging.NullHandler()
    root.addHandler(foreign)
    before = list(root.handlers)
    try:
        logs.setup("text")
        logs.setup("json")
        ours = [h for h in root.handlers if getattr(h, "superfed", False)]
        assert foreign in root.handlers and len(ours) == 1
        assert isinstance(ours[0].formatter, logs.JsonFormatter)
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)
        root.removeHandler(foreign)


def _json_lines(run: Callable[[], object]) -> list[dict]:
    out = io.StringIO()
    h = logs.handler("json", out)
    logger = logging.getLogger("superfed")
    logger.addHandler(h)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        run()
    finally:
        logger.removeHandler(h)
        logger.setLevel(old)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_workers_log_tells_each_jobs_way(healthy: Tasks) -> None:
    """Issue 13: worker logs were empty after 15 jobs. A job it ran says where it went, and
    a poll that moves a job says to what, both naming the job and the site."""
    t = healthy
    jid = t.create()

    def work() -> None:
        t.call(partial(Worker(t.settings, "logs-w2").main, burst=True))
        site = t.job(jid)["site"]
        t.poll_until(jid, {"COMPLETED"}, site)

    lines = _json_lines(work)
    mine = [rec for rec in lines if rec.get("job_id") == jid]
    submitted = [rec for rec in mine if rec["msg"].startswith(f"{jid}: submitted to ")]
    assert submitted and submitted[0]["logger"] == "superfed.worker", mine
    moved = [rec for rec in mine if rec["msg"].startswith(f"{jid}: COMPLETED at ")]
    assert moved and moved[0]["site"] == t.job(jid)["site"], mine


def test_the_api_keeps_an_access_log_without_tokens(clean_redis: str) -> None:
    import msgspec
    from litestar.testing import TestClient

    from broker.app import create_app
    from tests.api.conftest import TOKENS, auth, settings_for

    base = settings_for(clean_redis)

    def requests(on: bool) -> None:
        settings = msgspec.structs.replace(base, api=msgspec.structs.replace(base.api, access_log=on))
        with TestClient(create_app(settings)) as c:
            assert c.get("/api/v1/jobs?limit=1", headers=auth("viewer")).status_code == 200
            assert c.get("/api/v1/jobs/nope", headers=auth("viewer")).status_code == 404

    # off by default (the reverse proxy keeps it in production); the demo turns it on
    default = _json_lines(partial(requests, base.api.access_log))
    assert not [rec for rec in default if rec["logger"] == "superfed.access"]
    lines = [rec for rec in _json_lines(partial(requests, True)) if rec["logger"] == "superfed.access"]
    assert [rec["msg"].split()[1:4] for rec in lines] == [["GET", "/api/v1/jobs", "200"],
                                                          ["GET", "/api/v1/jobs/nope", "404"]]
    assert not any(tok in rec["msg"] for rec in lines for tok in TOKENS.values())
