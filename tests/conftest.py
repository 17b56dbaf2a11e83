"""Shared fixtures: a private redis-server per session (never the machine's shared one); the
facilities' specs (``tests/support/specs.py``) required under ``SUPERFED_REQUIRE_SPECS``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, settings

from tests.support import specs
from tests.support.servers import start_redis

# No wall-clock limits in property tests either: on a loaded machine (two cores shared by several
# suites) Hypothesis's per-example deadline and its "input generation is slow" check fail
# correct code. What a test asserts is the property, never how fast it was checked.
settings.register_profile("superfed", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("superfed")


def pytest_sessionstart(session: pytest.Session) -> None:
    if specs.REQUIRED and not specs.SPECS.is_dir():
        pytest.exit(f"{specs.MISSING}, and SUPERFED_REQUIRE_SPECS is set", returncode=3)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Every skip for want of the specs is reported at one place, so the summary folds them
    into one line (a skip raised in a fixture is otherwise reported at each test)."""
    report: pytest.TestReport = yield
    if report.skipped and isinstance(report.longrepr, tuple) and specs.MISSING in str(report.longrepr[2]):
        report.longrepr = (specs.HERE, specs.SKIP_LINE, report.longrepr[2])
    return report


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[str]:
    """The private server, emptied before the test (it is ours alone)."""
    r = redis.Redis.from_url(redis_url)
    r.flushall()
    r.close()
    yield redis_url


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL for this session (tests/support/postgres.py says which)."""
    from tests.support.postgres import postgres_url

    with postgres_url() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty history database: a SQLite file in tmp_path, or the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'history.db'}"
    url: str = request.getfixturevalue("postgres_server")
    import psycopg

    from broker.store.history import TABLE

    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"DROP TABLE IF EXISTS {TABLE}")
    return url
