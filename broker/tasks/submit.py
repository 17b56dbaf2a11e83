"""Submission: settle any uncertain earlier try, place, submit, fail over.

A job is never run twice because the broker was unsure: before anything is sent, the job
records which site it is about to try (``inflight``); a later run that finds this mark asks
that facility for the job's tag before trying anything else. A try given up without the
facility confirming it holds no job (it did not answer for long, or a slow one may still make
the job) is never repeated at that site, and the site is watched: a copy that shows up there
later is canceled at once and recorded (broker/tasks/late_copies.py). Under a worker, the try is also
fenced by the worker's claim on the job (``JobStore.begin_try``): a worker that lost the job to
a takeover sends nothing. The job is read once per run into a ``JobRecord`` and passed along."""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from adapters.errors import AdapterError, AuthFailed, SiteTimeout
from adapters.types import SubmitReceipt, SubmitRequest
from broker import portable, queues
from broker.config import SiteConfig
from broker.placement import Decision, Policy, place
from broker.schemas import Attempt, PlacementHints, PlacementRecord, RankedSite
from broker.snapshot import placement_request, site_views
from broker.store import outcomes, primary
from broker.store.jobs import JobRecord, now_iso
from broker.tasks.runtime import Runtime

log = logging.getLogger("superfed.submit")


UNSURE_GIVE_UP = 15.0  # seconds an unverifiable earlier try may hold a job before it is placed again


class TryLater(Exception):
    """Nothing could be done now (no eligible site, all failed retriably, an uncertain try
    could not be settled); RQ retries the job with backoff."""


async def run(rt: Runtime, job_id: str, runner: str = "") -> str:
    """Submit job ``job_id``; ``runner`` is the worker whose claim holds it ('' outside one)."""
    job = await rt.jobs.record(job_id)
    if job is None:
        return "no such job"
    if job.state != "NEW":
        return f"already {job.state}"
    if job.cancel_requested and job.inflight is None:
        await rt.jobs.advance(job_id, "CANCELED", detail="canceled before it reached a facility")
        return "canceled"
    if job.inflight is not None:
        settled = await _settle(rt, job)
        if settled:
            return settled
        job = await rt.jobs.record(job_id) or job  # with the try just given up among its attempts
        if job.cancel_requested:  # asked for while the try was unsettled: no job was made there
            await rt.jobs.advance(job_id, "CANCELED", detail="canceled before it reached a facility")
            return "canceled"
    elif job.created < await primary.since(rt.redis, rt.keys):
        # Redis restarted, or failed over to a replica, since the job was accepted: its last
        # writes (an inflight mark, a QUEUED) may be gone. Ask every site for the tag first.
        settled = await _settle_everywhere(rt, job_id)
        if settled:
            return settled
    return await _place_and_submit(rt, job, runner)


async def give_up(rt: Runtime, job_id: str, error: BaseException) -> None:
    """Out of retries: a job still waiting for a facility fails with the last reason (it never
    silently stays NEW). One already placed is left alone."""
    job = await rt.jobs.record(job_id)
    if job is not None and job.state == "NEW":
        fields = {"message": f"gave up after retries: {error}"}
        if job.inflight is not None:  # its last try may still make a job there: watch for it
            await rt.late.watch(job.inflight.site, job_id, job.inflight.system)
            fields["inflight"] = ""
        await rt.jobs.advance(job_id, "FAILED", fields=fields)


async def _settle_everywhere(rt: Runtime, job_id: str) -> str | None:
    for stored in await rt.sites.all():
        found = await rt.adapters.by_name(stored.config.name)
        if found is None:
            continue
        site, adapter = found
        for system in site.systems:
            try:
                receipt = await adapter.find_by_tag(job_id, system)
            except AdapterError as exc:
                raise TryLater(f"cannot check {site.name} for an earlier try after a Redis restart: {exc}") from None
            if receipt is not None:
                await rt.jobs.claim(site.name, job_id)
                await _submitted(rt, job_id, site, receipt, outcome="settled")
                return f"settled at {site.name} (after a Redis restart)"
    return None


async def _settle(rt: Runtime, job: JobRecord) -> str | None:
    """An earlier try may have reached the facility: look for the tag there first."""
    assert job.inflight is not None
    job_id, site_name, system, since = job.id, job.inflight.site, job.inflight.system, job.inflight.at
    found = await rt.adapters.by_name(site_name)
    if found is None:  # the site was removed meanwhile: nothing can be running there for us
        await rt.jobs.set_fields(job_id, inflight="")
        return None
    site, adapter = found
    try:
        receipt = await adapter.find_by_tag(job_id, system)
    except AdapterError as exc:
        unsure_for = time.time() - since
        if unsure_for < UNSURE_GIVE_UP or _pinned(job.hints):
            # (a job pinned to this site has nowhere else to go: it waits for the facility's
            # answer until its retries run out; give_up then watches the site for a late copy)
            raise TryLater(f"cannot settle the earlier try at {site_name}: {exc}") from None
        # the facility has not answered for a long while: place the job elsewhere rather than
        # hold it forever, and watch this one for a copy made late
        log.warning("%s: %s unanswerable for %.0f s; placing the job elsewhere", job_id, site_name, unsure_for)
        await _abandon(
            rt, job_id, site_name, system, f"could not check for {unsure_for:.0f} s whether the try made a job: {exc}"
        )
        return None
    if receipt is not None:
        await _submitted(rt, job_id, site, receipt, outcome="settled")
        return f"settled at {site_name}"
    # a request sent moments ago may still be on its way through a slow facility
    window = site.http.connect_timeout + site.http.read_timeout
    if time.time() - since < window:
        raise TryLater(f"the earlier try at {site_name} may still be under way; will check again")
    if _pinned(job.hints):
        # the one site it may run at confirmed it holds no job: try there again
        await rt.jobs.set_fields(job_id, inflight="")
        await rt.jobs.release(site_name, job_id)
        return None
    # absent now, but a facility that got the request may still make the job late: another
    # try here could make a second one, so the job goes elsewhere and this site is watched
    await _abandon(rt, job_id, site_name, system, f"no job {window:.0f} s after a try with no answer")
    return None


async def _abandon(rt: Runtime, job_id: str, site_name: str, system: str, why: str) -> None:
    """Give up a try whose outcome the facility never confirmed. The watch is written first: a
    crash before the rest leaves the inflight mark, and the next run settles it again."""
    await rt.late.watch(site_name, job_id, system)
    await rt.jobs.advance(
        job_id,
        fields={"inflight": ""},
        attempt=Attempt(site=site_name, at=now_iso(), outcome="abandoned", error=why),
    )
    await rt.jobs.release(site_name, job_id)


def _pinned(hints: PlacementHints | None) -> bool:
    """A job that names one site fails with that site's words; any other fails over."""
    return bool(hints and (hints.site or (hints.sites is not None and len(hints.sites) == 1)))


async def _place_and_submit(rt: Runtime, job: JobRecord, runner: str) -> str:
    job_id, spec, hints = job.id, job.spec, job.hints
    pc = rt.settings.placement
    refused = job.refused()  # sites that refused it in earlier rounds, read with the job
    abandoned = job.abandoned()  # sites where a try was given up unconfirmed (they are watched)
    last_error = ""
    tries = 0
    # each round places the job afresh without the sites that refused it; a round ends at a
    # refusal (fail over at once) or when every eligible site failed for a passing reason
    for _round in range(64):
        stored, views = await site_views(rt.sites, rt.health, rt.jobs, pc)
        by_name = {s.config.name: s for s in stored}
        fitted = portable.fits([s.config for s in stored], job.project, spec, hints.system if hints else None)
        strategy = (hints and hints.strategy) or pc.strategy
        rr = int(await rt.redis.incr(rt.keys.rr)) if strategy == "round-robin" else 0
        request = placement_request(job.project, spec, hints)
        policy = Policy(strategy=pc.strategy, priority=pc.priority)
        decision = place(
            msgspec.structs.replace(request, refused={**abandoned, **refused}),
            views,
            policy,
            now=time.time(),
            rr=rr,
            fits=portable.views(fitted),
        )
        if not decision.eligible and abandoned.keys() - refused.keys():
            # no other site can take it: a site where a try was given up is better than none;
            # the watch there cancels a late copy that is not the one this try makes
            retry = place(
                msgspec.structs.replace(request, refused=refused),
                views,
                policy,
                now=time.time(),
                rr=rr,
                fits=portable.views(fitted),
            )
            if retry.eligible:
                decision = retry
        record = _record(decision)
        if not decision.eligible:
            await rt.jobs.advance(job_id, fields={"placement": record})
            why = "; ".join(f"{r.site}: {', '.join(r.reasons)}" for r in decision.ranking) or "no sites are configured"
            if not decision.waiting:
                # nothing that may change by itself: every site refused the job or cannot run it
                head = "every eligible site refused the job" if refused else "no site can take the job"
                await rt.jobs.advance(job_id, "FAILED", fields={"message": f"{head} ({why})"})
                return f"failed: {head}"
            waited = time.time() - job.created
            if waited > pc.no_site_timeout:
                await rt.jobs.advance(
                    job_id, "FAILED", fields={"message": f"no eligible site after {waited:.0f} s ({why})"}
                )
                return "failed: no eligible site"
            raise TryLater(f"no eligible site yet ({why})")
        placement: str | None = record  # written with the first try's claim, in one round trip
        refused_now = False
        for name in decision.eligible:
            if tries >= pc.max_attempts:
                break
            stored_site = by_name[name]
            site = stored_site.config
            translation = fitted[name].translation
            assert translation is not None  # an eligible site has one
            adapter = await rt.adapters.get(site, stored_site.revision)
            system = translation.system
            # the spec in the site's words, charged to the site's mapping of the project
            # the account is always the site's mapping of the project (or one it lists for
            # the project); the adapter refuses a spec naming any other
            req = SubmitRequest(
                tag=job_id, spec=translation.spec, system=system, project=job.project, account=fitted[name].account
            )
            if not await rt.jobs.begin_try(
                job_id, name, system, placement=placement, rq_id=queues.submit_rq_id(job_id), runner=runner
            ):
                log.warning("%s: taken over by another worker; %s sends nothing", job_id, runner)
                return "taken over by another worker"
            placement = None
            tries += 1
            receipt: SubmitReceipt | None
            try:
                receipt = await adapter.submit(req)
            except SiteTimeout as exc:
                # the request may have reached the facility: ask before trying anywhere else
                try:
                    receipt = await adapter.find_by_tag(job_id, system)
                except AdapterError:
                    raise TryLater(f"{name}: {exc}; the outcome is unknown, will check again") from None
                if receipt is None:
                    # not there yet is not "never": a slow facility may still create it. Keep the
                    # inflight mark; the next run settles it once the request cannot be pending
                    await rt.jobs.advance(
                        job_id,
                        fields={"message": str(exc)},
                        attempt=Attempt(site=name, at=now_iso(), outcome="uncertain", error=str(exc)),
                    )  # type: ignore[arg-type]
                    raise TryLater(f"{name}: {exc}; the outcome is unknown, will check again") from None
                await _submitted(rt, job_id, site, receipt, outcome="settled")
                return f"submitted to {name} (settled after a timeout)"
            except AdapterError as exc:
                if exc.retriable and not isinstance(exc, AuthFailed):
                    # a submission can be several requests (SF API: the POST, then its task): one
                    # failing after the job was made must not send it to a second facility too
                    try:
                        receipt = await adapter.find_by_tag(job_id, system)
                    except AdapterError:
                        # cannot tell: keep the inflight mark, the next run settles it (_settle)
                        await rt.jobs.advance(
                            job_id,
                            fields={"message": str(exc)},
                            attempt=Attempt(site=name, at=now_iso(), outcome="uncertain", error=str(exc)),
                        )  # type: ignore[arg-type]
                        raise TryLater(
                            f"{name}: {exc}; cannot check whether the job was made; will check again"
                        ) from None
                    if receipt is not None:
                        await _submitted(rt, job_id, site, receipt, outcome="settled")
                        return f"submitted to {name} (settled after: {exc})"
                if exc.retriable or isinstance(exc, AuthFailed):
                    outcome = "auth" if isinstance(exc, AuthFailed) else "retriable"
                    await _failed_try(rt, job_id, name, outcome, str(exc))
                    if isinstance(exc, AuthFailed):
                        await _mark_credentials_refused(rt, site, str(exc))
                    last_error = str(exc)
                    continue
                # the site refused this job for a reason of its own (validation, limits, a
                # missing attribute): another site may well take it
                await _failed_try(rt, job_id, name, "rejected", str(exc))
                await outcomes.record(rt.redis, rt.keys, name, ok=False, last=pc.demote_last)
                if _pinned(hints):
                    await rt.jobs.advance(
                        job_id, "FAILED", fields={"message": f"{name} rejected the job: {exc.message}"}
                    )
                    return f"rejected by {name}"
                refused[name] = exc.message
                refused_now = True
                break
            # both in the same round trip: neither needs the other's answer
            await asyncio.gather(
                _submitted(rt, job_id, site, receipt, outcome="submitted"),
                outcomes.record(rt.redis, rt.keys, name, ok=True, last=pc.demote_last),
            )
            return f"submitted to {name} as {receipt.native_id}"
        if not refused_now:
            break
    raise TryLater(f"every eligible site failed this round; last: {last_error}")


async def _submitted(rt: Runtime, job_id: str, site: SiteConfig, receipt: SubmitReceipt, *, outcome: str) -> None:
    # the cancel flag comes back from the same atomic step: a cancel asked for before it is
    # seen here; one asked for after it finds the job QUEUED at the site and cancels it there
    _, cancel_requested = await rt.jobs.advance_and_cancel_flag(
        job_id,
        "QUEUED",
        fields={
            "site": site.name,
            "system": receipt.system,
            "native_id": receipt.native_id,
            "native_state": "submitted",
            "inflight": "",
        },
        attempt=Attempt(site=site.name, at=now_iso(), outcome=outcome, native_id=receipt.native_id),  # type: ignore[arg-type]
    )
    if cancel_requested:
        from broker.tasks import cancel

        await cancel.run(rt, job_id)


async def _failed_try(rt: Runtime, job_id: str, site: str, outcome: str, error: str) -> None:
    await rt.jobs.advance(
        job_id,
        fields={"inflight": "", "message": error},
        attempt=Attempt(site=site, at=now_iso(), outcome=outcome, error=error),  # type: ignore[arg-type]
    )
    await rt.jobs.release(site, job_id)


async def _mark_credentials_refused(rt: Runtime, site: SiteConfig, error: str) -> None:
    """Refused credentials make a site unusable until they are fixed: say so in its health,
    in words a person understands, so placement stops sending jobs there."""
    from broker.tasks.health import store_result

    prev = await rt.health.get(site.name)
    await store_result(rt, site, prev, None, error=f"credentials refused: {error}", down=True, latency_ms=None)


def _record(decision: Decision) -> str:
    rec = PlacementRecord(
        site=decision.chosen,
        strategy=decision.strategy,
        ranking=[
            RankedSite(
                site=r.site, eligible=r.eligible, score=r.score, reasons=list(r.reasons), translated=r.translated
            )
            for r in decision.ranking
        ],
        decided_at=now_iso(),
    )
    return msgspec.json.encode(rec).decode()
