"""A real PostgreSQL server for the history tests: a private one the tests start (Debian's
binaries, ``initdb`` and ``pg_ctl``, a data directory of its own on a free port, stopped and
removed after the session); failing that, a database of its own, made and dropped, on the
server at ``SUPERFED_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``).

Neither there: the tests are skipped with the reason, or fail under ``CI=true`` (a CI run that
silently tested no PostgreSQL would pass for the wrong reason)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.procs import free_port


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _as_user() -> list[str]:
    """initdb and postgres refuse to run as root: run them as ``postgres`` then."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root and there is no 'postgres' user to run PostgreSQL as") from None
    return ["runuser", "-u", "postgres", "--"]


@contextlib.contextmanager
def private_server(bin_dir: Path) -> Iterator[str]:
    """initdb + pg_ctl start in a fresh directory (trust auth, loopback only, no fsync: test data)."""
    sudo = _as_user()
    base = Path(tempfile.mkdtemp(prefix="superfed-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if sudo:
        uid = pwd.getpwnam("postgres").pw_uid
        for d in (base, sock):
            os.chown(d, uid, -1)
    port = free_port()
    log = base / "server.log"
    try:
        subprocess.run([*sudo, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120)
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run([*sudo, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w",
                        "-t", "60", "start"], check=True, capture_output=True, timeout=90)
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*sudo, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def database_on(url: str) -> Iterator[str]:
    """A database of this session's own on a running server, dropped afterwards."""
    import psycopg

    name = f"superfed_test_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def unavailable(why: str) -> None:
    text = f"no PostgreSQL for the history tests: {why}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(text + " (CI=true: install postgresql, or set SUPERFED_TEST_POSTGRES)", pytrace=False)
    pytest.skip(text)


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    """A URL of an empty PostgreSQL database for this session."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install -e '.[test]')")
    problems = []
    bin_dir = _bin_dir()
    ctx: contextlib.AbstractContextManager[str] | None = None
    url = ""
    if bin_dir is not None and not os.environ.get("SUPERFED_TEST_POSTGRES"):
        try:
            ctx = private_server(bin_dir)
            url = ctx.__enter__()
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            err = getattr(exc, "stderr", b"") or b""
            problems.append(f"a private server with {bin_dir} did not start: {exc} {err.decode(errors='replace')}")
            ctx = None
    elif bin_dir is None:
        problems.append("no PostgreSQL binaries (/usr/lib/postgresql/*/bin)")
    if ctx is None:
        shared = os.environ.get("SUPERFED_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
        try:
            ctx = database_on(shared)
            url = ctx.__enter__()
        except Exception as exc:
            problems.append(f"{shared}: {exc}")
            unavailable("; ".join(problems))
    assert ctx is not None
    try:
        yield url
    finally:
        ctx.__exit__(None, None, None)
