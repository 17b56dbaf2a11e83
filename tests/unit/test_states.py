"""The job state machine: ``broker.states.ALLOWED`` is the rule, and the Lua script that makes
every state change (``broker.store.jobs``) follows it cell by cell on a real Redis, with the
indexes, the site's active set and its backlog moving with the state."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import get_args

import pytest
import redis.asyncio as aioredis

from adapters.psij import JobSpec
from adapters.types import FINAL_STATES
from adapters.types import JobState as AdapterJobState
from broker.states import ALLOWED, FINAL, STATES, JobState
from broker.store import jobs as jobstore
from broker.store.connect import async_client
from broker.store.jobs import ActiveJob, JobStore, index_writes, initial_fields
from broker.store.keys import Keys

N, Q, H, A, C, F, X = STATES
CELLS = list(itertools.product(STATES, STATES))
SITE, SYSTEM, NATIVE = "alpha", "cpu", "4242"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- the rule (pure) ---------------------------------------------------------------------


def test_states_are_the_psij_states_and_the_adapters_vocabulary() -> None:
    assert STATES == ("NEW", "QUEUED", "HELD", "ACTIVE", "COMPLETED", "FAILED", "CANCELED")
    assert get_args(AdapterJobState) == STATES  # adapters may not import broker: kept equal here
    assert FINAL == FINAL_STATES == {C, F, X}
    assert set(ALLOWED) == set(JobState)


def test_the_table_is_the_documented_rule() -> None:
    """Forward by rank; QUEUED/HELD/ACTIVE may move among themselves (hold, release,
    requeue); nothing leaves a final state; staying put is not a move."""
    for current, new in CELLS:
        cur, nxt = JobState(current), JobState(new)
        at_facility = {Q, H, A}
        rule = (
            not cur.final
            and cur is not nxt
            and (nxt.rank > cur.rank or (current in at_facility and new in at_facility))
        )
        assert (nxt in ALLOWED[cur]) is rule, (current, new)
    assert JobState.QUEUED in ALLOWED[JobState.ACTIVE]  # a Slurm requeue shows as QUEUED again


def test_only_plain_names_are_rendered_into_lua() -> None:
    assert jobstore._lua_set(["HELD", "ACTIVE"]) == "{ACTIVE=true, HELD=true}"
    with pytest.raises(ValueError, match="not a state name"):
        jobstore._lua_set(["A}; redis.call('FLUSHALL') --"])


# -- the Lua, on a real Redis ------------------------------------------------------------


@pytest.fixture
async def store(clean_redis: str) -> AsyncIterator[JobStore]:
    r = async_client(clean_redis)
    try:
        yield JobStore(r, Keys("t"))
    finally:
        await r.aclose()


async def _job_in(store: JobStore, state: str) -> str:
    """A job as the broker leaves it in ``state``, written directly (not through the script
    under test): at the facility it has a site, a native id, an active-set entry and a backlog
    claim; a finished one has left them for the site's done set."""
    r, k = store.r, store.keys
    jid = f"j-{state.lower()}"
    f = initial_fields(jid, "p1", JobSpec(executable="/bin/true"), None, "tester", time.time())
    await r.hset(k.job(jid), mapping={**f, "state": state})
    for key, score, member in index_writes(k, f):
        if key != k.jobs_by_state(N):
            await r.zadd(key, {member: score})
    await r.zadd(k.jobs_by_state(state), {jid: float(f["created_us"])})
    if state != N:
        await r.hset(k.job(jid), mapping={"site": SITE, "system": SYSTEM, "native_id": NATIVE})
        await r.zadd(k.jobs_by_site(SITE), {jid: float(f["created_us"])})
        if state in FINAL:
            await r.zadd(k.done(SITE), {jid: time.time()})
        else:
            await r.hset(k.active(SITE), jid, json.dumps({"system": SYSTEM, "native_id": NATIVE}))
            await r.hset(k.assigned(SITE), jid, str(time.time()))
    return jid


async def _where(r: aioredis.Redis, k: Keys, jid: str) -> dict[str, object]:
    states = [s for s in STATES if await r.zscore(k.jobs_by_state(s), jid) is not None]
    return {
        "state": await r.hget(k.job(jid), "state"),
        "indexed_as": states,
        "active": await r.hexists(k.active(SITE), jid),
        "assigned": await r.hexists(k.assigned(SITE), jid),
        "done": await r.zscore(k.done(SITE), jid) is not None,
        "native_state": await r.hget(k.job(jid), "native_state"),
        "history": len(await _history(r, k, jid)),
    }


async def _history(r: aioredis.Redis, k: Keys, jid: str) -> list[object]:
    raw = await r.hget(k.job(jid), "history")
    return list(json.loads(raw)) if raw and raw != "{}" else []


@pytest.mark.parametrize(("current", "new"), CELLS)
async def test_the_lua_makes_exactly_the_allowed_moves(store: JobStore, current: str, new: str) -> None:
    r, k = store.r, store.keys
    jid = await _job_in(store, current)
    before = await _where(r, k, jid)
    moved = await store.advance(jid, new, fields={"native_state": "REPORTED"})
    after = await _where(r, k, jid)

    allowed = JobState(new) in ALLOWED[JobState(current)]
    assert moved == (1 if allowed else 0)
    assert after["state"] == (new if allowed else current)
    assert after["indexed_as"] == [after["state"]]  # in exactly one state index: its own
    assert after["history"] == before["history"] + (1 if allowed else 0)
    if current in FINAL:  # final is final: not even the fields change
        assert after == before
        return
    assert after["native_state"] == "REPORTED"  # a report's fields land whether or not it moves
    at_site = current != N
    finished = allowed and new in FINAL
    # a finished job leaves its site's active set (no more polls) and backlog, and counts as done
    assert after["active"] == (at_site and not finished)
    assert after["assigned"] == (at_site and not finished)
    assert after["done"] == (at_site and finished)


async def test_a_life_with_a_requeue(store: JobStore) -> None:
    r, k = store.r, store.keys
    jid = await _job_in(store, N)
    assert await r.hexists(k.active(SITE), jid) is False
    at = {"site": SITE, "system": SYSTEM, "native_id": NATIVE}
    assert await store.advance(jid, Q, fields=at) == 1
    # the facility's job id puts it in the site's active set (what polls read) and site index
    assert await store.active(SITE) == {jid: ActiveJob(system=SYSTEM, native_id=NATIVE)}
    assert await r.zscore(k.jobs_by_site(SITE), jid) is not None
    assert await store.advance(jid, A) == 1
    assert await store.advance(jid, Q, detail="requeued: node failure") == 1  # Slurm requeue
    assert await store.advance(jid, Q) == 0  # staying put is not a move
    assert await store.active(SITE) == {jid: ActiveJob(system=SYSTEM, native_id=NATIVE)}  # still the facility's job
    assert await store.advance(jid, A) == 1
    assert await store.advance(jid, C, fields={"exit_code": 0}) == 1
    assert await store.active(SITE) == {}
    assert await store.advance(jid, A) == 0  # a late report changes nothing
    job = await store.get(jid)
    assert job is not None and job.state == C and job.exit_code == 0
    assert [(e.state, e.detail) for e in job.history] == [
        (N, None), (Q, None), (A, None), (Q, "requeued: node failure"), (A, None), (C, None)
    ]  # fmt: skip


@pytest.mark.parametrize("word", ["active", "UNKNOWN", "", "__index"])
async def test_unknown_words_never_move_a_job(store: JobStore, word: str) -> None:
    jid = await _job_in(store, Q)
    assert await store.advance(jid, word) == 0
    assert await store.r.hget(store.keys.job(jid), "state") == Q


async def test_a_job_with_a_garbled_state_is_left_alone(store: JobStore) -> None:
    jid = await _job_in(store, Q)
    await store.r.hset(store.keys.job(jid), "state", "garbled")
    assert await store.advance(jid, A) == 0  # no script error, no move
    assert await store.r.hget(store.keys.job(jid), "state") == "garbled"
    assert await store.advance("no-such-job", A) == -1


@pytest.mark.parametrize("state", STATES)
async def test_a_try_records_its_placement_only_on_an_unfinished_job(store: JobStore, state: str) -> None:
    jid = await _job_in(store, state)
    await store.begin_try(jid, SITE, SYSTEM, placement='{"site": "alpha"}')
    placed = await store.r.hget(store.keys.job(jid), "placement")
    assert (placed is not None) is (state not in FINAL)


async def test_a_move_declaring_another_site_writes_nothing_there_and_is_made_at_the_jobs_own(
        store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """_ADVANCE touches only the keys it is given: one declaring the wrong site's keys (a store
    that has not seen the job) writes nothing and is told the job's site; the move is then made
    with that site's keys, once."""
    r, k = store.r, store.keys
    jid = await _job_in(store, A)
    calls: list[list[str]] = []
    real = store._pipe.evalsha

    async def counting(sha: str, keys: list[str], args: list[object]) -> object:
        calls.append(keys)
        return await real(sha, keys, args)

    monkeypatch.setattr(store._pipe, "evalsha", counting)
    assert await store.advance(jid, C, site="elsewhere", fields={"exit_code": 0}) == 1
    assert len(calls) == 2 and k.done("elsewhere") in calls[0] and k.done(SITE) in calls[1]
    assert await r.exists(k.done("elsewhere"), k.active("elsewhere"), k.assigned("elsewhere")) == 0
    assert await _where(r, k, jid) == {"state": C, "indexed_as": [C], "active": False, "assigned": False,
                                       "done": True, "native_state": None, "history": 2}
    # the store remembers where the job is: the next move declares it at once
    jid2 = await _job_in(store, Q)
    await store.get(jid2)
    calls.clear()
    assert await store.advance(jid2, F) == 1
    assert len(calls) == 1 and not await r.hexists(k.active(SITE), jid2)


# -- the read path: one job, a page of jobs, cursors ---------------------------------------


async def _written(store: JobStore, jid: str, project: str, created: float, site: str | None = None) -> None:
    r, k = store.r, store.keys
    f = initial_fields(jid, project, JobSpec(executable="/bin/true"), None, "tester", created)
    await r.hset(k.job(jid), mapping=f)
    for key, score, member in index_writes(k, f):
        await r.zadd(key, {member: score})
    if site:
        await r.hset(k.job(jid), mapping={"site": site})
        await r.zadd(k.jobs_by_site(site), {jid: float(f["created_us"])})


async def test_an_unknown_job_reads_as_none(store: JobStore) -> None:
    assert await store.get("j-nothing-here") is None


async def test_a_page_holds_exactly_the_callers_projects(store: JobStore) -> None:
    """A token of two projects lists both, and never a third's; one of one project lists that."""
    t = 1_700_000_000.0
    for i, project in enumerate(["p1", "p2", "p3", "p1", "p2", "p3"]):
        await _written(store, f"j{i}", project, t + i)

    async def ids(projects: list[str] | None, **kw: object) -> list[str]:
        rows, _more = await store.page_rows(projects=projects, state=kw.get("state"), site=kw.get("site"),  # type: ignore[arg-type]
                                            limit=10, after=None)
        return [jid for _s, jid, _job in rows]

    assert await ids(["p1", "p2"]) == ["j4", "j3", "j1", "j0"]
    assert await ids(["p3"]) == ["j5", "j2"]
    assert await ids(None) == ["j5", "j4", "j3", "j2", "j1", "j0"]
    assert await ids(["p2"], state="NEW") == ["j4", "j1"]


async def test_a_page_by_site_reads_that_sites_jobs(store: JobStore) -> None:
    t = 1_700_000_000.0
    await _written(store, "ja", "p1", t, site="alpha")
    await _written(store, "jb", "p1", t + 1, site="beta")
    await _written(store, "jc", "p1", t + 2)
    rows, more = await store.page_rows(projects=None, state=None, site="alpha", limit=10, after=None)
    assert [jid for _s, jid, _j in rows] == ["ja"] and not more


@pytest.mark.parametrize("n", range(1, 9))
def test_a_cursor_is_url_safe_and_gives_back_what_it_holds(n: int) -> None:
    """Every length of id (each leaves base64 a different padding): no '=' to escape in a query
    string, and decoding gives the score and the id back."""
    jid = "j" + "abc123"[: n % 6] + "x" * n
    cursor = jobstore.encode_cursor(1_764_518_400_123_456.0, jid)
    assert "=" not in cursor and cursor.replace("-", "").replace("_", "").isalnum()
    assert jobstore.decode_cursor(cursor) == (1_764_518_400_123_456, jid)


def test_every_cursor_gives_back_its_id() -> None:
    for k in range(400):  # ids whose base64 ends in every letter, padded or not
        jid = f"j{k:x}{'q' * (k % 5)}"
        assert jobstore.decode_cursor(jobstore.encode_cursor(1_700_000_000_000_000 + k, jid)) == (
            1_700_000_000_000_000 + k, jid)


def test_a_cursor_this_api_did_not_make_is_a_value_error() -> None:
    import base64

    for bad in (base64.urlsafe_b64encode(b"12345").decode(), "%%%"):
        with pytest.raises(ValueError):
            jobstore.decode_cursor(bad)


def test_a_record_reads_as_the_job_the_api_shows_field_by_field() -> None:
    """``job_from_hash``: every field of a job that was placed, tried, failed and asked to
    cancel; and the empty forms (a new job's, and cjson's '{}' for an empty list)."""
    from broker.schemas import Attempt, HistoryEntry
    from broker.store.jobs import now_iso

    spec = JobSpec(executable="/bin/true", name="n")
    f = initial_fields("j1", "p1", spec, None, "tester", 1_700_000_000.25)
    placement = {"site": "alpha", "strategy": "balanced", "ranking": [], "decided_at": "2026-01-01T00:00:00Z"}
    tries = [{"site": "beta", "at": "2026-01-01T00:00:01Z", "outcome": "retriable", "error": "503"},
             {"site": "alpha", "at": "2026-01-01T00:00:02Z", "outcome": "submitted", "native_id": "42"}]
    full = {**f, "state": "FAILED", "site": "alpha", "system": "cpu", "native_id": "42", "native_state": "FAILED",
            "exit_code": "3", "message": "exited 3", "updated": "1700000060.5", "placement": json.dumps(placement),
            "attempts": json.dumps(tries), "cancel_requested": "1",
            "history": json.dumps([{"state": "NEW", "at": "a"}, {"state": "FAILED", "at": "b", "detail": "d"}])}
    job = jobstore.job_from_hash(full)
    assert (job.id, job.project, job.name, job.state) == ("j1", "p1", "n", "FAILED")
    assert (job.site, job.system, job.native_id, job.native_state) == ("alpha", "cpu", "42", "FAILED")
    assert (job.exit_code, job.message, job.cancel_requested) == (3, "exited 3", True)
    assert job.created_at == now_iso(1_700_000_000.25) and job.updated_at == now_iso(1_700_000_060.5)
    assert job.placement is not None and (job.placement.site, job.placement.strategy) == ("alpha", "balanced")
    assert job.attempts == [Attempt(site="beta", at="2026-01-01T00:00:01Z", outcome="retriable", error="503"),
                            Attempt(site="alpha", at="2026-01-01T00:00:02Z", outcome="submitted", native_id="42")]
    assert job.history == [HistoryEntry(state="NEW", at="a"), HistoryEntry(state="FAILED", at="b", detail="d")]
    assert job.spec == spec
    # a new job: nothing placed, tried or said yet, and empty lists as cjson writes them
    new = jobstore.job_from_hash({**f, "attempts": "{}", "history": "{}", "exit_code": "", "site": "",
                                  "cancel_requested": "0"})
    assert (new.site, new.system, new.native_id, new.native_state, new.exit_code, new.message) == (None,) * 6
    assert (new.placement, new.attempts, new.history, new.cancel_requested) == (None, [], [], False)
    assert jobstore.job_from_hash({**f, "attempts": "", "name": ""}).attempts == []
    assert jobstore.job_from_hash({**f, "name": ""}).name is None
    assert jobstore.job_from_hash({k: v for k, v in f.items() if k != "attempts"}).attempts == []
    assert jobstore.job_from_hash({**f, "exit_code": "0"}).exit_code == 0
    assert jobstore.job_from_hash({**f, "history": ""}).history == []


async def test_pages_walk_every_job_once_across_index_batches(store: JobStore) -> None:
    """A page reads the index 50 ids or more at a time: filtered jobs (another project),
    records already gone (moved to history while their index entry waits) and pages that end
    on a batch's end all leave the walk complete, in order, each job once, ``more`` exact."""
    t = 1_700_000_000.0
    for i in range(130):  # alternating projects: a two-project token filters half of the index
        await _written(store, f"j{i:03d}", "p1" if i % 2 else "p2", t + i)
    for gone in ("j007", "j011"):  # old ones: beyond the first batches
        await store.r.delete(store.keys.job(gone))
    expected = [f"j{i:03d}" for i in range(129, -1, -1) if i % 2 and i not in (7, 11)]
    rows, more = await store.page_rows(projects=["p1", "p3"], state=None, site=None, limit=25, after=None)
    assert [jid for _s, jid, _j in rows] == expected[:25] and more  # the page ended where a batch did
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        rows, more = await store.page_rows(projects=["p1", "p3"], state=None, site=None, limit=7, after=after)
        seen += [jid for _s, jid, _j in rows]
        pages += 1
        if not more:
            break
        assert len(rows) == 7
        after = (rows[-1][0], rows[-1][1])
    assert seen == expected and pages == -(-len(expected) // 7)


async def test_a_page_by_site_and_state_reads_only_those(store: JobStore) -> None:
    t = 1_700_000_000.0
    for i in range(60):
        await _written(store, f"s{i:02d}", "p1", t + i, site="alpha")
        if i % 3 == 0:
            await store.r.hset(store.keys.job(f"s{i:02d}"), "state", "QUEUED")
    # a job still in alpha's index whose record now names another site is not alpha's
    await store.r.hset(store.keys.job("s57"), "site", "beta")
    rows, more = await store.page_rows(projects=None, state="QUEUED", site="alpha", limit=100, after=None)
    assert [jid for _s, jid, _j in rows] == [f"s{i:02d}" for i in range(59, -1, -1) if i % 3 == 0 and i != 57]
    assert not more


async def test_a_page_that_needs_many_batches_reads_each_row_once(store: JobStore) -> None:
    """One job in five is the caller's: 25 of them take three batches of the index."""
    t = 1_700_000_000.0
    for i in range(150):
        await _written(store, f"m{i:03d}", "p1" if i % 5 == 0 else "p2", t + i)
    rows, more = await store.page_rows(projects=["p1", "p9"], state=None, site=None, limit=25, after=None)
    assert [jid for _s, jid, _j in rows] == [f"m{i:03d}" for i in range(149, -1, -1) if i % 5 == 0][:25] and more


async def test_pages_walk_a_batch_of_jobs_that_share_their_time(store: JobStore) -> None:
    """A batch's jobs share their creation time: the cursor's tie-break (the id) carries a walk
    through 120 equal scores, past index batches whose rows it mostly skips."""
    for i in range(120):
        await _written(store, f"b{i:03d}", "p1", 1_700_000_000.0)
    seen: list[str] = []
    after = None
    while True:
        rows, more = await store.page_rows(projects=None, state=None, site=None, limit=7, after=after)
        seen += [jid for _s, jid, _j in rows]
        if not more:
            break
        after = (rows[-1][0], rows[-1][1])
    assert seen == [f"b{i:03d}" for i in range(119, -1, -1)]
