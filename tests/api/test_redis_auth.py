"""Issue 11 (1): Redis without a password. The broker (API and worker) refuses to start over a
Redis that answers clients who did not log in, unless the config allows it, and then warns;
the demo's private redis-server has an ACL user with a fresh password that reaches the other
processes only through 0600 files, never a command line or a log. Real redis-servers."""

from __future__ import annotations

import logging
import re
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from litestar.testing import TestClient

from broker.app import create_app
from broker.cli import main
from broker.demo import Demo, write_private
from broker.store.redis_auth import UnauthenticatedRedis, check, open_to_anyone, redacted
from tests.api.conftest import auth, settings_for
from tests.support.servers import start_redis


@pytest.fixture(scope="module")
def open_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_redis(tmp_path_factory.mktemp("open-redis"), open_access=True)
    try:
        yield url
    finally:
        proc.stop()


def _settings(url: str, allow: bool = False):  # type: ignore[no-untyped-def]
    s = settings_for(url)
    import msgspec

    return msgspec.structs.replace(s, allow_unauthenticated_redis=allow)


def test_the_probe_tells_open_from_protected(open_redis: str, redis_url: str) -> None:
    assert open_to_anyone(open_redis) is True
    assert open_to_anyone(redis_url) is False  # the test fixture's server has an ACL user
    assert "@" in redis_url and redis.Redis.from_url(redis_url).ping()
    assert open_to_anyone("redis://127.0.0.1:9/0", wait=0.3) is None  # nobody there: cannot tell


def test_a_redis_that_answers_is_asked_once_without_waiting(open_redis: str, redis_url: str) -> None:
    """Every start of the API and of a worker probes: an answer, PONG or refusal, is final at
    once (redis-py's default retries took 3-5 s over a refused login: the API answered again
    5 s after a kill instead of 0.7 s)."""
    def connections(url: str) -> int:  # counts the connection it makes itself too
        with redis.Redis.from_url(url) as r:
            return int(r.info("stats")["total_connections_received"])

    for url, verdict in ((redis_url, False), (open_redis, True)):
        before = connections(url)
        assert open_to_anyone(url) is verdict
        check(url, True, "test")
        # one connection per probe (and one for this count): no retries over a refused login
        assert connections(url) - before == 3, url


def test_a_redis_not_up_yet_is_asked_again_until_it_answers(tmp_path: Path) -> None:
    """Started together with Redis: nothing answers at first; the probe asks again (and so
    still refuses an open Redis that comes up a moment later)."""
    from broker.procs import free_port

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    got: list[bool | None] = []
    t = threading.Thread(target=lambda: got.append(open_to_anyone(url, wait=10)))
    t.start()
    time.sleep(0.5)
    proc, _ = start_redis(tmp_path, port=port, open_access=True)
    try:
        t.join(10)
        assert got == [True]
    finally:
        proc.stop()
    assert redacted("redis://superfed:s3cret@127.0.0.1:1/0") == "redis://superfed:***@127.0.0.1:1/0"


def test_the_api_refuses_an_open_redis(open_redis: str) -> None:
    app = create_app(_settings(open_redis))
    with pytest.raises(BaseException) as exc, TestClient(app):
        pass
    found = exc.value if isinstance(exc.value, UnauthenticatedRedis) else None
    if isinstance(exc.value, BaseExceptionGroup):  # the lifespan's task group wraps it
        found = next(iter(exc.value.subgroup(UnauthenticatedRedis).exceptions), None)  # type: ignore[union-attr]
    assert isinstance(found, UnauthenticatedRedis) and "without a password" in str(found)


def test_the_api_runs_over_an_open_redis_when_told_and_warns(open_redis: str) -> None:
    redis.Redis.from_url(open_redis).flushall()
    with TestClient(create_app(_settings(open_redis, allow=True))) as c:
        assert c.get("/api/v1/sites", headers=auth("viewer")).status_code == 200
    # (Litestar re-configures the root logger as the app starts: listen on ours directly)
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("superfed.redis")
    logger.addHandler(handler)
    try:
        check(open_redis, True, "superfed serve")
    finally:
        logger.removeHandler(handler)
    assert any("WITHOUT a password" in m for m in seen), seen


def test_the_worker_refuses_an_open_redis(open_redis: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'redis_url = "{open_redis}"\n')
    assert main(["worker", "--config", str(cfg), "--burst"]) == 1
    assert "accepts clients without a password" in capsys.readouterr().err
    cfg.write_text(f'redis_url = "{open_redis}"\nallow_unauthenticated_redis = true\n')
    assert main(["worker", "--config", str(cfg), "--burst"]) == 0  # told: runs (and warns)


def _cmdlines() -> list[str]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                out.append((d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return out


def test_the_demo_redis_has_a_password_kept_out_of_sight(tmp_path: Path) -> None:
    demo = Demo(tmp_path)
    try:
        url, note = demo.start_redis()
        password = redis.connection.parse_url(url)["password"]
        assert password and len(password) >= 24 and "ACL user" in note and password not in note
        assert open_to_anyone(url) is False  # no way in without the password
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(url.replace(password, "wrong")).ping()
        assert redis.Redis.from_url(url).ping()
        assert not any(password in c for c in _cmdlines())  # not on any command line (ps)
        for f in tmp_path.iterdir():  # only in 0600 files
            if f.is_file() and password in f.read_text(errors="replace"):
                assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        cfg = demo.write_config(url, {"sfapi": "http://127.0.0.1:1", "firecrest": "http://127.0.0.1:2",
                                      "iri": "http://127.0.0.1:3"}, demo.make_credentials(),
                                {"admin": "sf_demo_admin_" + "x" * 20})
        assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
        text = cfg.read_text()
        assert password in text and "allow_unauthenticated_redis = false" in text
        assert not any(password in p.tail(10**6) for p in demo.procs)  # nor in any log
    finally:
        demo.stop()


def test_private_files_are_0600_from_the_start(tmp_path: Path) -> None:
    info = tmp_path / "info.json"
    info.write_text("old")
    info.chmod(0o644)
    write_private(info, '{"tokens": {}}')
    assert stat.S_IMODE(info.stat().st_mode) == 0o600 and info.read_text() == '{"tokens": {}}'


def test_the_test_fixtures_redis_refuses_strangers(redis_url: str) -> None:
    stranger = redis.Redis(host="127.0.0.1", port=redis.connection.parse_url(redis_url)["port"])
    with pytest.raises((redis.exceptions.ResponseError, redis.exceptions.AuthenticationError)):
        stranger.set("superfed:tokens", "x")




def test_the_deploy_acl_user_is_enough_for_the_api_and_a_worker(tmp_path: Path) -> None:
    """deploy/redis.conf's `superfed` ACL line, as it is (with a known password's hash): the
    API takes jobs, cancels, tokens, audit, metrics and the event stream, and a worker runs
    RQ's loop and maintenance, without one command or key refused (ACL LOG stays empty)."""
    import hashlib
    import shutil

    from broker.demo import free_port
    from tests.support.servers import Proc

    root = Path(__file__).resolve().parents[2]
    lines = [x for x in (root / "deploy" / "redis.conf").read_text().splitlines() if x.startswith("user ")]
    assert {x.split()[1] for x in lines} == {"default", "superfed"}
    password, ops_password = "deploy-acl-test-" + "x" * 16, "ops-password-0000"
    lines = [re.sub(r"#[0-9a-f]{64}", "#" + hashlib.sha256((ops_password if x.split()[1] == "default" else password)
                                                            .encode()).hexdigest(), x) for x in lines]
    users = tmp_path / "users.conf"
    users.write_text("\n".join(lines) + "\n")
    port = free_port()
    exe = shutil.which("redis-server")
    assert exe
    proc = Proc([exe, str(users), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path),
                 "--appendonly", "no"], port=port, log=tmp_path / "redis.log").wait_ready()
    try:
        url = f"redis://superfed:{password}@127.0.0.1:{port}/0"
        ops = redis.Redis(host="127.0.0.1", port=port, password=ops_password)  # the default user
        assert open_to_anyone(f"redis://127.0.0.1:{port}/0") is False
        with TestClient(create_app(settings_for(url))) as c:
            spec = {"executable": "/bin/true", "resources": {"node_count": 1}}
            made = c.post("/api/v1/jobs", json={"project": "m1", "spec": spec}, headers=auth("submitter"))
            assert made.status_code == 202, made.text
            assert c.delete(f"/api/v1/jobs/{made.json()['id']}", headers=auth("submitter")).status_code == 202
            tok = c.post("/api/v1/tokens", json={"name": "x", "role": "viewer"}, headers=auth("admin")).json()
            assert c.delete(f"/api/v1/tokens/{tok['id']}", headers=auth("admin")).status_code == 204
            for path, who in (("/api/v1/jobs", "viewer"), ("/api/v1/audit", "admin"), ("/api/v1/status", "viewer")):
                assert c.get(path, headers=auth(who)).status_code == 200, path
            assert c.get("/metrics").status_code == 200 and c.get("/readyz").status_code == 200
        # the event stream's channel (the SSE route subscribes to it as this user)
        sub = redis.Redis.from_url(url).pubsub()
        sub.subscribe("superfed:events")
        assert sub.get_message(timeout=5)["type"] == "subscribe"
        sub.close()
        cfg = tmp_path / "w.toml"
        cfg.write_text(f'redis_url = "{url}"\n[worker]\nmaintenance_interval = 1\n')
        assert main(["worker", "--config", str(cfg), "--burst"]) == 0
        assert ops.acl_log() == [], ops.acl_log()
        assert ops.dbsize() > 0  # the work really happened under that user
    finally:
        proc.stop()
