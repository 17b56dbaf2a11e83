"""The history database: final jobs moved out of Redis (broker/tasks/archive.py) and read back
by the API as if they had stayed (broker/api/jobs.py, broker/usage.py).

SQLite by default (the standard library's sqlite3; one file every process of one host shares),
PostgreSQL by URL (psycopg 3, the ``postgres`` extra; for brokers on several hosts). One table,
keyed by (namespace, job id): a job's row holds its whole Redis hash as JSON (the API decodes it
with ``job_from_hash``, so an archived job reads exactly as it did) and the columns the list's
filters, its cursor order and the usage report need.

The drivers are synchronous: each call runs on this object's own threads, each thread with its
own connection (neither driver's connection may be shared between threads)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import msgspec

from adapters.psij import JobSpec
from broker.states import FINAL

T = TypeVar("T")

TABLE = "superfed_jobs"
_COLUMNS = ("ns", "id", "project", "state", "site", "created_us", "finished_at", "nodes", "run_s", "archived_at",
            "record")
_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (ns TEXT NOT NULL, id TEXT NOT NULL, project TEXT NOT NULL, "
    "state TEXT NOT NULL, site TEXT NOT NULL, created_us BIGINT NOT NULL, finished_at DOUBLE PRECISION NOT NULL, "
    "nodes INTEGER NOT NULL, run_s DOUBLE PRECISION, archived_at DOUBLE PRECISION NOT NULL, record TEXT NOT NULL, "
    "PRIMARY KEY (ns, id))",
    # the list's order (newest first, then id) with and without a project; usage by finish time
    f"CREATE INDEX IF NOT EXISTS {TABLE}_created ON {TABLE} (ns, created_us, id)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_project ON {TABLE} (ns, project, created_us, id)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_finished ON {TABLE} (ns, finished_at)",
)
_IN_CHUNK = 500  # ids per IN (...) list

_UPSERT = (
    f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
    "ON CONFLICT (ns, id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("ns", "id"))
)


class HistoryUnavailable(Exception):
    """The history database cannot be reached or used; the message says why."""


class Row(NamedTuple):
    """One final job as the history keeps it."""

    id: str
    project: str
    state: str
    site: str  # "" when never placed
    created_us: int
    finished_at: float  # unix time of its final state
    nodes: int
    run_s: float | None  # from its first ACTIVE to its final state; None when never seen ACTIVE
    record: str  # the Redis hash, as JSON


class Usage(NamedTuple):
    """A job's share of the usage report."""

    site: str
    project: str
    state: str
    finished_at: float
    nodes: int
    run_s: float | None


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class _History(msgspec.Struct):
    state: str
    at: str


_hist_dec = msgspec.json.Decoder(list[_History])
_spec_dec = msgspec.json.Decoder(JobSpec)


def usage_of(h: dict[str, str]) -> Usage:
    """Where a final job ran, for how long and on how many nodes, from its hash: its run time is
    from the first time it was seen ACTIVE to its final state (a poll sees ACTIVE within a poll
    interval of the start; a job never seen ACTIVE has no run time)."""
    raw = h.get("history") or "[]"
    entries = _hist_dec.decode(raw) if raw != "{}" else []  # cjson writes [] as {}
    finished = next((e.at for e in reversed(entries) if e.state in FINAL), None)
    finished_at = _ts(finished) if finished else float(h["updated"])
    started = next((e.at for e in entries if e.state == "ACTIVE"), None)
    run_s = max(0.0, finished_at - _ts(started)) if started else None
    return Usage(
        site=h.get("site") or "", project=h["project"], state=h["state"], finished_at=finished_at,
        nodes=_spec_dec.decode(h["spec"]).nodes, run_s=run_s,
    )


def row_from_hash(h: dict[str, str]) -> Row:
    u = usage_of(h)
    return Row(
        id=h["id"], project=h["project"], state=h["state"], site=u.site, created_us=int(h["created_us"]),
        finished_at=u.finished_at, nodes=u.nodes, run_s=u.run_s, record=json.dumps(h, separators=(",", ":")),
    )


def sqlite_path(url: str) -> str:
    """``sqlite:///abs/path.db`` -> ``/abs/path.db`` (config.py made relative ones absolute)."""
    rest = url[len("sqlite:"):]
    return "/" + rest.lstrip("/") if rest.startswith("/") else rest


class HistoryDB:
    """The history of one broker namespace. ``url``: ``sqlite:///path`` or ``postgresql://...``."""

    def __init__(self, url: str, namespace: str, *, threads: int = 2):
        self.url = url
        self.ns = namespace
        scheme = url.partition(":")[0].lower()
        if scheme == "sqlite":
            self.dialect = "sqlite"
        elif scheme in ("postgresql", "postgres"):
            self.dialect = "postgres"
            try:
                import psycopg  # noqa: F401 (the optional extra: said now, not at the first job)
            except ImportError:
                raise HistoryUnavailable(
                    "history.url is a PostgreSQL URL but psycopg is not installed: pip install 'superfed[postgres]'"
                ) from None
        else:
            raise HistoryUnavailable(f"history.url: unknown database scheme {scheme!r} (sqlite or postgresql)")
        self._local = threading.local()
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="superfed-history")

    def where(self) -> str:
        """The database, for messages: a SQLite file's path, or a PostgreSQL URL without its password."""
        if self.dialect == "sqlite":
            return sqlite_path(self.url)
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        return f"postgresql://{parts.username + '@' if parts.username else ''}{host}{parts.path}"

    # -- connections (one per thread) ---------------------------------------------------
    def _connect(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            conn = self._open()
        except Exception as exc:
            raise HistoryUnavailable(f"the history database {self.where()} cannot be opened: {exc}") from exc
        self._local.conn = conn
        with self._lock:
            self._conns.append(conn)
        return conn

    def _open(self) -> Any:
        if self.dialect == "sqlite":
            path = Path(sqlite_path(self.url))
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
            # WAL: readers (the API) never wait for the mover; FULL: a commit is on disk before
            # the mover deletes the jobs from Redis (NORMAL may lose the last one on power loss)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            for stmt in _DDL:
                conn.execute(stmt)
            conn.commit()
            return conn
        import psycopg

        pg = psycopg.connect(self.url, connect_timeout=10)
        try:
            with pg.transaction():
                # two processes creating the table at once: one waits for the other
                pg.execute("SELECT pg_advisory_xact_lock(7462001)")
                for stmt in _DDL:
                    pg.execute(stmt)
        except Exception:
            pg.close()
            raise
        return pg

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            with contextlib.suppress(Exception):  # closing a broken connection
                conn.close()

    def _sql(self, text: str) -> str:
        return text if self.dialect == "sqlite" else text.replace("?", "%s")

    def _call(self, fn: Callable[[Any], T]) -> T:
        """``fn(conn)`` in a transaction; a failed connection is dropped (the next call opens one)."""
        conn = self._connect()
        try:
            out = fn(conn)
            conn.commit()
            return out
        except Exception as exc:
            with contextlib.suppress(Exception):
                conn.rollback()
            if self._unavailable(exc, conn):
                self._drop()
                raise HistoryUnavailable(f"the history database {self.where()}: {exc}") from exc
            raise

    def _unavailable(self, exc: Exception, conn: Any) -> bool:
        """Whether ``exc`` says the database is out of reach (not a bug of the query)."""
        if self.dialect == "sqlite":
            return isinstance(exc, sqlite3.OperationalError)
        import psycopg

        return isinstance(exc, psycopg.OperationalError) or bool(getattr(conn, "closed", False))

    async def _run(self, fn: Callable[[Any], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._call, fn)

    # -- writes ---------------------------------------------------------------------------
    async def upsert(self, rows: Sequence[Row], archived_at: float) -> None:
        """Write (or rewrite: a copy whose Redis delete did not happen is copied again) these
        jobs, committed when this returns."""
        if not rows:
            return
        params = [(self.ns, r.id, r.project, r.state, r.site, r.created_us, r.finished_at, r.nodes, r.run_s,
                   archived_at, r.record) for r in rows]
        sql = self._sql(_UPSERT)

        def write(conn: Any) -> None:
            cur = conn.cursor()
            cur.executemany(sql, params)
            cur.close()

        await self._run(write)

    # -- reads ----------------------------------------------------------------------------
    async def get(self, job_id: str) -> dict[str, str] | None:
        """The job's hash as it was in Redis, or None."""
        sql = self._sql(f"SELECT record FROM {TABLE} WHERE ns = ? AND id = ?")
        ns = self.ns

        def read(conn: Any) -> str | None:
            row = conn.execute(sql, (ns, job_id)).fetchone()
            return row[0] if row else None

        raw = await self._run(read)
        return json.loads(raw) if raw is not None else None

    def _scope(self, projects: Sequence[str] | None, site: str | None) -> tuple[list[str], list[Any]] | None:
        """The WHERE terms (and their arguments) of this namespace, the token's projects and a
        site; None when the token may see no project (nothing to read)."""
        where, args = ["ns = ?"], list[Any]([self.ns])
        if projects is not None:
            if not projects:
                return None
            where.append(f"project IN ({', '.join('?' for _ in projects)})")
            args += list(projects)
        if site is not None:
            where.append("site = ?")
            args.append(site)
        return where, args

    async def page(
        self,
        *,
        projects: Sequence[str] | None,
        state: str | None,
        site: str | None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[tuple[int, str, dict[str, str]]]:
        """Up to ``limit`` jobs as (created_us, id, hash), newest first and then by id
        descending (the order of Redis' ZREVRANGEBYSCORE), strictly after the cursor ``after``."""
        scope = self._scope(projects, site)
        if scope is None:
            return []
        where, args = scope
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if after is not None:
            where.append("(created_us < ? OR (created_us = ? AND id < ?))")
            args += [after[0], after[0], after[1]]
        sql = self._sql(f"SELECT created_us, id, record FROM {TABLE} WHERE {' AND '.join(where)} "
                        "ORDER BY created_us DESC, id DESC LIMIT ?")
        args.append(limit)

        def read(conn: Any) -> list[tuple[int, str, str]]:
            return [(int(a), str(b), str(c)) for a, b, c in conn.execute(sql, args).fetchall()]

        return [(s, i, json.loads(rec)) for s, i, rec in await self._run(read)]

    async def usage(
        self,
        *,
        projects: Sequence[str] | None,
        site: str | None,
        start: float | None,
        end: float | None,
        seen: Sequence[str] = (),
    ) -> tuple[list[tuple[str, str, str, int, float, int]], set[str]]:
        """Per (site, project, state): jobs, node-seconds, jobs without a run time, of the
        jobs finished in [start, end); and, read in the same snapshot, which of the jobs ``seen``
        (read in Redis just before) are here too (moved meanwhile, or copied by a mover that
        stopped before its delete)."""
        scope = self._scope(projects, site)
        if scope is None:
            return [], set()
        where, args = scope
        if start is not None:
            where.append("finished_at >= ?")
            args.append(start)
        if end is not None:
            where.append("finished_at < ?")
            args.append(end)
        cond = " AND ".join(where)
        agg = self._sql(
            f"SELECT site, project, state, COUNT(*), SUM(CASE WHEN run_s IS NULL THEN 0 ELSE nodes * run_s END), "
            f"SUM(CASE WHEN run_s IS NULL THEN 1 ELSE 0 END) FROM {TABLE} WHERE {cond} GROUP BY site, project, state"
        )
        chunks = [list(seen[i:i + _IN_CHUNK]) for i in range(0, len(seen), _IN_CHUNK)]
        pg = self.dialect == "postgres"
        ns = self.ns

        def read(conn: Any) -> tuple[list[tuple[str, str, str, int, float, int]], set[str]]:
            if pg:  # every read in one snapshot (read committed would take one per statement)
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            else:
                conn.execute("BEGIN")  # WAL: the snapshot is taken at the first read and kept
            rows = [(str(a), str(b), str(c), int(d), float(e or 0), int(f or 0))
                    for a, b, c, d, e, f in conn.execute(agg, args).fetchall()]
            found: set[str] = set()
            for ids in chunks:
                sql = self._sql(f"SELECT id FROM {TABLE} WHERE ns = ? AND id IN ({', '.join('?' for _ in ids)})")
                found.update(str(r[0]) for r in conn.execute(sql, [ns, *ids]).fetchall())
            return rows, found

        return await self._run(read)

    async def count(self) -> int:
        sql = self._sql(f"SELECT COUNT(*) FROM {TABLE} WHERE ns = ?")
        ns = self.ns
        return int(await self._run(lambda conn: conn.execute(sql, (ns,)).fetchone()[0]))

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
