"""A PSI/J executor named ``superfed``: PSI/J programs run their jobs through the broker.

    ex = JobExecutor.get_instance("superfed", url="http://broker:8000")
    job = Job(JobSpec(executable="/bin/date", attributes=JobAttributes(account="m0001")))
    ex.submit(job)
    job.wait()

PSI/J finds it through ``psij-descriptors/superfed.py`` (a namespace package PSI/J scans on
``sys.path``), which names this class. PSI/J loads this file by its path, not through the import
system, so it imports nothing of the broker's server side: only httpx and psij.

The broker's API is the whole backend: ``submit`` is ``POST /api/v1/jobs`` (with the PSI/J
job's id as its ``Idempotency-Key``, so a resent request makes no second job), ``cancel`` is
``DELETE``, and one thread per executor polls the jobs it watches and turns broker states into
PSI/J statuses (a job the broker has accepted but not yet placed is QUEUED, since PSI/J's NEW
means "not submitted"; HELD, which PSI/J lacks, is QUEUED too; ``metadata`` says the broker's
own state, the site and the facility's job id). The token comes from the executor's config or
``SUPERFED_TOKEN``; the URL from ``url`` or ``SUPERFED_URL``; the broker project from the job's
``attributes.account`` (what PSI/J charges a job to; the broker charges each site's mapping of
the project), else the config's ``project`` or ``SUPERFED_PROJECT``. Custom
attributes ``superfed.site`` / ``superfed.sites`` (comma-separated) / ``superfed.exclude`` /
``superfed.strategy`` / ``superfed.system`` are placement hints; every other custom attribute
goes to the broker (which lets through what each site's profile allows)."""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from psij import Job, JobExecutor, JobExecutorConfig, JobSpec, JobState, JobStatus
from psij.exceptions import InvalidJobException, SubmitException

log = logging.getLogger("superfed.psij")

# broker state -> PSI/J state (PSI/J has no HELD, and its NEW is a job not yet submitted)
STATES: dict[str, JobState] = {
    "NEW": JobState.QUEUED,
    "QUEUED": JobState.QUEUED,
    "HELD": JobState.QUEUED,
    "ACTIVE": JobState.ACTIVE,
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "CANCELED": JobState.CANCELED,
}
PLACEMENT_KEYS = {"superfed.site": "site", "superfed.sites": "sites", "superfed.exclude": "exclude",
                  "superfed.strategy": "strategy", "superfed.system": "system"}
LISTS = {"sites", "exclude"}


class SuperfedExecutorConfig(JobExecutorConfig):
    """``token`` (default ``SUPERFED_TOKEN``), ``project`` (default ``SUPERFED_PROJECT``: the
    broker project of jobs whose ``account`` is unset), seconds between status polls, and
    the HTTP timeout."""

    def __init__(self, token: str | None = None, project: str | None = None, poll_interval: float = 1.0,
                 timeout: float = 30.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.token = token or os.environ.get("SUPERFED_TOKEN")
        self.project = project or os.environ.get("SUPERFED_PROJECT")
        self.poll_interval = poll_interval
        self.timeout = timeout


def _problem(r: httpx.Response) -> str:
    """The broker's problem document in one line (its title/detail and field errors)."""
    try:
        doc = r.json()
    except ValueError:
        return f"HTTP {r.status_code}: {r.text[:200]}"
    text = str(doc.get("detail") or doc.get("title") or r.status_code)
    errors = doc.get("errors") or []
    if errors:
        text += ": " + "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors[:5])
    return text


def broker_body(spec: JobSpec, default_project: str | None) -> dict[str, Any]:
    """The ``POST /api/v1/jobs`` body for a PSI/J spec (PSI/J's field names are the broker's)."""
    if not spec.executable:
        raise InvalidJobException("the job has no executable")
    for field in ("stdin_path", "pre_launch", "post_launch"):
        if getattr(spec, field) is not None:
            raise InvalidJobException(f"{field}: the broker's facilities run the executable from their own "
                                      "batch script and take no such file")
    if spec.launcher not in (None, "single"):
        raise InvalidJobException(f"launcher {spec.launcher!r}: the facility's batch script starts the executable "
                                  "itself; give the launcher (srun, mpiexec) as the executable")
    out: dict[str, Any] = {
        "executable": spec.executable,
        "arguments": [str(a) for a in spec.arguments or []],
        "inherit_environment": spec.inherit_environment,
    }
    if spec.name:  # PSI/J names a job by its executable when it has no name: keep the file's name
        out["name"] = Path(spec.name).name if "/" in spec.name else spec.name
    if spec.environment:
        out["environment"] = {k: str(v) for k, v in spec.environment.items()}
    for field in ("directory", "stdout_path", "stderr_path"):
        value = getattr(spec, field)
        if value is not None:
            out[field] = str(value)
    r = spec.resources
    if r is not None:
        if r.version != 1:
            raise InvalidJobException(f"resources version {r.version}: only version 1 is known")
        res: dict[str, Any] = {"exclusive_node_use": bool(getattr(r, "exclusive_node_use", False))}
        for field in ("node_count", "process_count", "processes_per_node", "cpu_cores_per_process",
                      "gpu_cores_per_process", "memory"):
            value = getattr(r, field, None)
            if value is not None:
                res[field] = int(value)
        out["resources"] = res
    a = spec.attributes
    attrs: dict[str, Any] = {}
    placement: dict[str, Any] = {}
    project = default_project
    if a is not None:
        # PSI/J's account (project_name is its deprecated alias) is what the job is charged to:
        # for the broker that is its project, which each site maps to an account of its own
        project = a.account or default_project
        if a.duration is not None:
            attrs["duration"] = max(1, int(a.duration.total_seconds()))
        for field in ("queue_name", "reservation_id"):
            value = getattr(a, field, None)
            if value:
                attrs[field] = str(value)
        custom = {}
        for key, value in (a.custom_attributes or {}).items():
            if key in PLACEMENT_KEYS:
                hint = PLACEMENT_KEYS[key]
                placement[hint] = [s.strip() for s in str(value).split(",") if s.strip()] if hint in LISTS \
                    else str(value)
            else:
                custom[key] = str(value)
        if custom:
            attrs["custom_attributes"] = custom
    if attrs:
        out["attributes"] = attrs
    if not project:
        raise InvalidJobException("no broker project: set attributes.account, the executor config's "
                                  "project, or SUPERFED_PROJECT")
    body: dict[str, Any] = {"project": project, "spec": out}
    if placement:
        body["placement"] = placement
    return body


def psij_status(doc: dict[str, Any]) -> JobStatus:
    """A broker job's current state as a PSI/J status."""
    state = STATES.get(str(doc.get("state")), JobState.QUEUED)
    meta = {k: doc[k] for k in ("site", "system", "native_id", "native_state") if doc.get(k) is not None}
    meta["broker_state"] = doc.get("state")
    message = doc.get("message")
    if state == JobState.QUEUED and doc.get("state") == "NEW" and not message:
        message = "accepted by the broker; waiting for a facility"
    return JobStatus(state, message=message, exit_code=doc.get("exit_code"), metadata=meta)


def psij_statuses(doc: dict[str, Any]) -> list[JobStatus]:
    """Every state the broker recorded for the job (its ``history``), oldest first, as PSI/J
    statuses at the broker's times, ending with the current one: a job that ran and ended
    between two polls still shows ACTIVE to PSI/J's callbacks (PSI/J fills in only the
    state before COMPLETED, not the one before FAILED or CANCELED)."""
    out = []
    for entry in doc.get("history") or []:
        state = STATES.get(str(entry.get("state")))
        if state is None or state.final:
            continue  # the final one is the current status, with its exit code and message
        try:
            at = datetime.fromisoformat(str(entry["at"]).replace("Z", "+00:00")).timestamp()
        except (KeyError, ValueError):
            at = None
        out.append(JobStatus(state, time=at, message=entry.get("detail")))
    return [*out, psij_status(doc)]


class SuperfedJobExecutor(JobExecutor):
    """PSI/J's ``JobExecutor`` over the broker's HTTP API (see the module's docstring)."""

    def __init__(self, url: str | None = None, config: JobExecutorConfig | None = None) -> None:
        cfg = config if isinstance(config, SuperfedExecutorConfig) else SuperfedExecutorConfig()
        url = url or os.environ.get("SUPERFED_URL")
        if not url:
            raise ValueError("the superfed executor needs the broker's URL (url=... or SUPERFED_URL)")
        if not cfg.token:
            raise ValueError("the superfed executor needs an API token (config token=... or SUPERFED_TOKEN)")
        super().__init__(url=url, config=cfg)
        self._cfg = cfg
        base = url.rstrip("/")
        base = base[: -len("/api/v1")] if base.endswith("/api/v1") else base
        self._http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {cfg.token}"},
                                  timeout=cfg.timeout)
        self._watched: dict[str, Job] = {}  # broker job id -> the PSI/J job, until it ends
        self._lock = threading.Lock()
        self._poller: threading.Thread | None = None

    # -- PSI/J's JobExecutor ------------------------------------------------------------
    def submit(self, job: Job) -> None:
        spec = self._check_job(job)
        try:
            body = broker_body(spec, self._cfg.project)
        except InvalidJobException:
            job.executor = None  # not submitted: the job may be fixed and submitted again
            raise
        try:
            # the PSI/J job's id as the key: a request resent after a lost answer makes no second job
            r = self._http.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": job.id})
        except httpx.HTTPError as exc:
            job.executor = None
            raise SubmitException(f"cannot reach the broker at {self.url}: {exc}") from exc
        if r.status_code != 202:
            job.executor = None
            if r.status_code in (400, 422):
                raise InvalidJobException(f"the broker refused the job: {_problem(r)}")
            raise SubmitException(f"the broker answered {r.status_code}: {_problem(r)}")
        doc = r.json()
        job._native_id = doc["id"]  # PSI/J's own executors set it so; Job has no setter
        self._report(job, doc)
        self._watch(job)

    def cancel(self, job: Job) -> None:
        if job.native_id is None:  # never reached the broker
            self._set_job_status(job, JobStatus(JobState.CANCELED))
            return
        try:
            r = self._http.delete(f"/api/v1/jobs/{job.native_id}")
        except httpx.HTTPError as exc:
            raise SubmitException(f"cannot reach the broker at {self.url}: {exc}") from exc
        if r.status_code != 202:
            raise SubmitException(f"the broker refused the cancel ({r.status_code}): {_problem(r)}")
        # the job reads CANCELED once the facility confirms; the poller reports it

    def list(self) -> list[str]:
        """The ids of the broker jobs this token may see."""
        ids: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            r = self._http.get("/api/v1/jobs", params=params)
            if r.status_code != 200:
                raise SubmitException(f"cannot list jobs ({r.status_code}): {_problem(r)}")
            page = r.json()
            ids += [str(j["id"]) for j in page["items"]]
            cursor = page.get("next_cursor")
            if not cursor:
                return ids

    def attach(self, job: Job, native_id: str) -> None:
        if job.status.state != JobState.NEW:
            raise InvalidJobException("Job must be in NEW state")
        r = self._http.get(f"/api/v1/jobs/{native_id}")
        if r.status_code != 200:
            raise InvalidJobException(f"no broker job {native_id} for this token ({r.status_code})")
        job.executor = self
        job._native_id = native_id
        self._report(job, r.json())
        self._watch(job)

    # -- status --------------------------------------------------------------------------
    def _watch(self, job: Job) -> None:
        if job.status.final:
            return
        with self._lock:
            self._watched[str(job.native_id)] = job
            if self._poller is None or not self._poller.is_alive():
                # one daemon thread per executor, only while it has jobs to watch
                self._poller = threading.Thread(target=self._poll, name="superfed-psij-poll", daemon=True)
                self._poller.start()

    def _poll(self) -> None:
        while True:
            time.sleep(self._cfg.poll_interval)
            with self._lock:
                jobs = list(self._watched.items())
                if not jobs:
                    self._poller = None
                    return
            for jid, job in jobs:
                try:
                    r = self._http.get(f"/api/v1/jobs/{jid}")
                except httpx.HTTPError as exc:  # the broker away for a while: try again next round
                    log.warning("superfed executor: cannot poll %s: %s", jid, exc)
                    continue
                if r.status_code == 404:
                    status = JobStatus(JobState.FAILED, message=f"the broker no longer knows job {jid}")
                    self._set_job_status(job, status)
                elif r.status_code != 200:
                    log.warning("superfed executor: polling %s: %s %s", jid, r.status_code, _problem(r))
                    continue
                else:
                    status = self._report(job, r.json())
                if status.final:
                    with self._lock:
                        self._watched.pop(jid, None)

    def _report(self, job: Job, doc: dict[str, Any]) -> JobStatus:
        """Tell PSI/J every state of the broker job's history, then its current one. PSI/J
        ignores a state that is not ahead of the job's (one already told, or a requeued job's
        QUEUED after ACTIVE), so each is reported once, in order."""
        statuses = psij_statuses(doc)
        for status in statuses:
            self._set_job_status(job, status)
        return statuses[-1]
