"""``superfed submit|jobs|job|logs|cancel|status|sites|site|projects|usage|audit|files|token``: the API from a
shell, through the SDK (``broker.client``). ``--json`` on any of them prints the API's body."""

from __future__ import annotations

import argparse
import posixpath
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from broker.cli_output import emit_json, is_tty, paint, table
from broker.client import ApiError, Client
from broker.schemas import Job
from broker.states import STATES

Run = Callable[[argparse.Namespace, Callable[..., int]], int]


def _fail(msg: str) -> ApiError:
    from broker.api.problems import Problem

    return ApiError(Problem(type="about:blank", title="Bad request", status=0, detail=msg))


def job_line(j: Job) -> str:
    """One job in ``superfed jobs``; an exit other than 0 comes with the job's message, which
    says why (a bare ``exit=265`` means nothing to whoever did not write PBS)."""
    return f"{j.id}  {j.state:<9} {j.site or '-':<10} {j.project:<10} {j.name or ''}{_exit(j)}"


def _exit(j: Job) -> str:
    code = "" if j.exit_code is None else f" exit={j.exit_code}"
    if j.exit_code and j.message:
        code += f" ({j.message})"
    return code


def _jobs_table(items: list[Job]) -> None:
    table(
        ["ID", "STATE", "SITE", "PROJECT", "NAME"],
        [[j.id, j.state, j.site or "-", j.project, f"{j.name or ''}{_exit(j)}"] for j in items],
        colour_cols=[1],
        plain=[job_line(j) for j in items],
    )


def _read_job(path: str) -> Any:
    try:
        return msgspec.json.decode(Path(path).read_bytes() if path != "-" else sys.stdin.buffer.read())
    except (OSError, msgspec.DecodeError) as exc:
        raise _fail(f"{path}: not a readable JSON job ({exc})") from None


class _Progress:
    """What ``--wait`` and ``--watch`` show while a job moves: on a TTY one line, rewritten in
    place with the state and the time waited; elsewhere a line per state change on stderr (a
    log, not escapes)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last: str | None = None

    def __call__(self, j: Job) -> None:
        if j.state == self.last:  # the submission's answer, then the first poll: one line
            return
        self.last = j.state
        took = time.monotonic() - self.start
        where = f" at {j.site}" if j.site else ""
        text = f"{j.id}: {paint(j.state) if self.tty else j.state}{where} ({took:.0f} s)"
        if self.tty:
            sys.stderr.write(f"\r\033[K{text}")
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def _follow(c: Client, job_id: str, timeout: float | None, first: Job | None = None) -> Job:
    progress = _Progress()
    if first is not None:  # what the submission answered: NEW shows even if the job moves before a poll
        progress(first)
    try:
        return c.wait(job_id, timeout=timeout, on_change=progress)
    finally:
        progress.done()


def _final(args: argparse.Namespace, j: Job) -> int:
    """Print a finished job; exit 0 only when it COMPLETED (so ``&&`` chains on success)."""
    if args.json:
        emit_json(j)
    else:
        print(f"{j.id} {paint(j.state)}{_exit(j)}")
    return 0 if j.state == "COMPLETED" else 1


def submit(c: Client, args: argparse.Namespace) -> int:
    if args.batch:
        return _submit_batch(c, args)
    body = _read_job(args.file)
    if not isinstance(body, dict):
        raise _fail(f"{args.file}: a job is a JSON object {{project, spec, placement?}}")
    if args.project:
        body["project"] = args.project
    job = c.submit(body, idempotency_key=args.idempotency_key)
    if args.wait:
        return _final(args, _follow(c, job.id, args.timeout, job))
    if args.json:
        emit_json(job)
    elif args.quiet:
        print(job.id)
    else:
        print(f"{job.id} {paint(job.state)} (superfed job {job.id} --watch to follow it)")
    return 0


def _read_lines(path: str) -> list[dict[str, Any]]:
    """A JSON Lines file of jobs (blank lines skipped), each line's mistakes named by its number."""
    try:
        text = Path(path).read_bytes() if path != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        raise _fail(f"{path}: not readable ({exc})") from None
    out: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            body = msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            raise _fail(f"{path}:{n}: not JSON ({exc})") from None
        if not isinstance(body, dict):
            raise _fail(f"{path}:{n}: a job is a JSON object {{project, spec, placement?, idempotency_key?}}")
        out.append(body)
    if not out:
        raise _fail(f"{path}: no jobs in it")
    return out


def _submit_batch(c: Client, args: argparse.Namespace) -> int:
    """Every line's job, in batches of up to 1,000 (POST /api/v1/jobs/batch); a line's own
    idempotency_key is kept, so running the same file again makes no second job of it."""
    if args.wait or args.idempotency_key:
        raise _fail("--batch takes each job's key from its line (idempotency_key) and does not --wait")
    lines = _read_lines(args.file)
    keys = [str(b.pop("idempotency_key", None) or uuid.uuid4()) for b in lines]
    for b in lines:
        if args.project:
            b["project"] = args.project
    out = c.submit_many(lines, keys=keys)
    if args.json:
        emit_json([x if isinstance(x, Job) else x.problem for x in out])
    for n, x in enumerate(out, 1):
        if isinstance(x, Job):
            if not args.json:
                print(x.id if args.quiet else f"{x.id} {paint(x.state)}")
        else:  # on stderr: stdout stays the accepted ids, one a line, in the file's order
            print(f"{args.file}: job {n}: refused ({x.status} {x.title}): {x.detail}", file=sys.stderr)
    refused = sum(1 for x in out if not isinstance(x, Job))
    if refused:
        print(f"{len(out) - refused} accepted, {refused} refused", file=sys.stderr)
    return 1 if refused else 0


def jobs(c: Client, args: argparse.Namespace) -> int:
    page = c.jobs(project=args.project, state=args.state, site=args.site, limit=args.limit, cursor=args.cursor)
    if args.json:
        emit_json(page)
        return 0
    _jobs_table(page.items)
    if page.next_cursor:
        print(f"(more: --cursor {page.next_cursor})", file=sys.stderr)
    return 0


def _job_text(j: Job) -> None:
    rows = [
        ("id", j.id), ("name", j.name or ""), ("project", j.project), ("state", paint(j.state)),
        ("site", f"{j.site or '-'}" + (f" ({j.system})" if j.system else "")),
        ("native", f"{j.native_id or '-'}" + (f" {j.native_state}" if j.native_state else "")),
        ("exit", "-" if j.exit_code is None else str(j.exit_code)), ("message", j.message or ""),
        ("created", j.created_at), ("updated", j.updated_at),
    ]
    for k, v in rows:
        if v:
            print(f"{k + ':':<9} {v}")
    if j.placement:
        print(f"placement: {j.placement.strategy}")
        for r in j.placement.ranking:
            print(f"  {r.site:<10} {'eligible' if r.eligible else 'no':<8} {'; '.join(r.reasons)}")
    print("history:")
    for h in j.history:
        print(f"  {h.at}  {paint(h.state.ljust(9), h.state)} {h.detail or ''}".rstrip())


def job(c: Client, args: argparse.Namespace) -> int:
    if args.watch:
        return _final(args, _follow(c, args.id, args.timeout))
    j = c.job(args.id)
    if args.json:
        emit_json(j)
    else:
        _job_text(j)
    return 0


def logs(c: Client, args: argparse.Namespace) -> int:
    """The job's stdout (or stderr) file, read through the files API at the job's site."""
    j = c.job(args.id)
    if not j.site:
        raise _fail(f"job {j.id} is {j.state} and has no site yet: no output to read")
    path = j.spec.stderr_path if args.stderr else j.spec.stdout_path
    if not path:
        raise _fail(f"job {j.id} names no {'stderr' if args.stderr else 'stdout'}_path in its spec")
    if not posixpath.isabs(path) and j.spec.directory:  # relative paths are the job's directory's
        path = posixpath.join(j.spec.directory, path)
    data = c.read_file(j.site, path, project=j.project)
    if args.json:
        emit_json({"site": j.site, "path": path, "content": data.decode(errors="replace")})
    else:
        sys.stdout.buffer.write(data)
    return 0


def cancel(c: Client, args: argparse.Namespace) -> int:
    res = c.cancel(args.id)
    if args.json:
        emit_json(res)
    else:
        print(res.detail)
    return 0


def status(c: Client, args: argparse.Namespace) -> int:
    rep = c.status()
    if args.json:
        emit_json(rep)
        return 0
    rows, plain = [], []
    for s in rep.sites:
        comps = ", ".join(f"{x.name}={x.state}" for x in s.components)
        age = "-" if s.age_s is None else f"{s.age_s:.1f}s ago"
        rows.append([s.site, s.state, age, comps])
        plain.append(f"{s.site:<12} {s.state:<9} checked {age:<10} {comps}")
    table(["SITE", "STATE", "CHECKED", "COMPONENTS"], rows, colour_cols=[1], plain=plain)
    return 0


def sites(c: Client, args: argparse.Namespace) -> int:
    found = c.sites()
    if args.json:
        emit_json(found)
        return 0
    rows, plain = [], []
    for s in found:
        flags = ("" if s.enabled else " disabled") + (" draining" if s.draining else "")
        rows.append([s.name, s.kind, s.health, flags.strip() or "open", ",".join(s.systems), s.url])
        plain.append(f"{s.name:<12} {s.kind:<10} {s.health:<9} {','.join(s.systems)}  {s.url}{flags}")
    table(["SITE", "KIND", "HEALTH", "PLACING", "SYSTEMS", "URL"], rows, colour_cols=[2, 3], plain=plain)
    return 0


def projects(c: Client, args: argparse.Namespace) -> int:
    found = c.projects()
    if args.json:
        emit_json(found)
        return 0
    rows = [[p.project, s.site, f"{s.allocated:g}", f"{s.used:g}", s.unit + (f" ({s.note})" if s.note else "")]
            for p in found for s in p.sites]
    table(["PROJECT", "SITE", "ALLOCATED", "USED", "UNIT"], rows)
    return 0


def usage(c: Client, args: argparse.Namespace) -> int:
    """Final jobs, node-hours and failures per site and project (``GET /api/v1/usage``)."""
    rep = c.usage(project=args.project, site=args.site, start=getattr(args, "from"), end=args.to)
    if args.json:
        emit_json(rep)
        return 0
    t = rep.totals
    rows = [[u.site or "-", u.project, str(u.jobs), str(u.completed), str(u.failed), str(u.canceled),
             f"{u.node_hours:.2f}"] for u in rep.rows]
    rows.append(["total", "", str(t.jobs), str(t.completed), str(t.failed), str(t.canceled), f"{t.node_hours:.2f}"])
    table(["SITE", "PROJECT", "JOBS", "COMPLETED", "FAILED", "CANCELED", "NODE-HOURS"], rows)
    window = f"{rep.start or 'the start'} to {rep.end or 'now'}"
    note = f"; {t.unmeasured} never seen running (no node-hours)" if t.unmeasured else ""
    print(f"final jobs from {window}{note}", file=sys.stderr)
    return 0


def events(c: Client, args: argparse.Namespace) -> int:
    """Health changes as they happen, a line each (``--json``: one JSON object a line), until
    Ctrl-C, ``--count`` of them, or the broker ends the stream (the token expired or was revoked)."""
    for seen, ev in enumerate(c.events(), start=1):
        if args.json:
            print(msgspec.json.encode(ev).decode(), flush=True)
        else:
            what = ev.site + (f"/{ev.component}" if ev.component else "")
            print(f"{ev.at}  {what:<20} {ev.previous or '-'} -> {paint(ev.state)}  {ev.detail}".rstrip(), flush=True)
        if args.count and seen >= args.count:
            break
    return 0


def site_toggle(c: Client, args: argparse.Namespace) -> int:
    s = c.drain_site(args.name) if args.action == "drain" else c.enable_site(args.name)
    if args.json:
        emit_json(s)
    else:
        state = "draining (no new jobs; running ones are left alone)" if s.draining else "open for new jobs"
        print(f"{s.name}: {state}")
    return 0


def audit(c: Client, args: argparse.Namespace) -> int:
    page = c.audit(limit=args.limit, offset=args.offset)
    if args.json:
        emit_json(page)
        return 0
    table(["AT", "ACTOR", "ACTION", "TARGET"], [[e.at, e.actor, e.action, e.target] for e in page.items])
    if page.total > len(page.items) + (args.offset or 0):
        print(f"({page.total} in all: --offset {len(page.items) + (args.offset or 0)} for more)", file=sys.stderr)
    return 0


def files_ls(c: Client, args: argparse.Namespace) -> int:
    entries = c.list_files(args.site, args.path, project=args.project)
    if args.json:
        emit_json(entries)
        return 0
    table(["PERMS", "SIZE", "MTIME", "NAME"],
          [[e.permissions or "-", str(e.size), e.mtime or "-", e.name + ("/" if e.type == "directory" else "")]
           for e in entries])
    return 0


def files_get(c: Client, args: argparse.Namespace) -> int:
    data = c.read_file(args.site, args.path, project=args.project)
    if args.output:
        Path(args.output).write_bytes(data)
        print(f"wrote {args.output} ({len(data)} bytes)", file=sys.stderr)
    elif args.json:
        emit_json({"path": args.path, "content": data.decode(errors="replace")})
    else:
        sys.stdout.buffer.write(data)
    return 0


def files_put(c: Client, args: argparse.Namespace) -> int:
    try:
        data = Path(args.local).read_bytes() if args.local != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        raise _fail(f"{args.local}: {exc.strerror}") from None
    c.write_file(args.site, args.path, data, project=args.project)
    if args.json:
        emit_json({"site": args.site, "path": args.path, "bytes": len(data)})
    else:
        print(f"wrote {args.site}:{args.path} ({len(data)} bytes)")
    return 0


def token_create(c: Client, args: argparse.Namespace) -> int:
    made = c.create_token(args.name, role=args.role,
                          projects=[p.strip() for p in args.projects.split(",") if p.strip()],
                          expires_at=args.expires_at)
    if args.json:
        emit_json(made)
    elif args.quiet:
        print(made.token)
    else:
        print(f"id:      {made.id}\nname:    {made.name} ({made.role}; projects {','.join(made.projects)})")
        print(f"expires: {made.expires_at or 'never'}\ntoken:   {made.token}")
        print("(the token is shown this once; only its hash is kept)", file=sys.stderr)
    return 0


def token_list(c: Client, args: argparse.Namespace) -> int:
    found = c.tokens()
    if args.json:
        emit_json(found)
        return 0
    table(
        ["ID", "NAME", "ROLE", "PROJECTS", "EXPIRES", "LAST USED"],
        [[t.id, t.name, t.role, ",".join(t.projects), t.expires_at or "never", t.last_used_at or "never"]
         for t in found],
        plain=[f"{t.id:<18} {t.name:<20} {t.role:<9} {','.join(t.projects):<16} "
               f"expires {t.expires_at or 'never':<24} last used {t.last_used_at or 'never'}" for t in found],
    )
    return 0


def token_revoke(c: Client, args: argparse.Namespace) -> int:
    c.revoke_token(args.id)
    if args.json:
        emit_json({"id": args.id, "revoked": True})
    else:
        print(f"revoked {args.id}")
    return 0


def connection_options() -> argparse.ArgumentParser:
    """``--url``, ``--token``, ``--json`` on every API command, after its name as well as before
    it (SUPPRESS: a subcommand that was not given one keeps what the top level parsed)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--url", default=argparse.SUPPRESS,
                   help="the broker (default: $SUPERFED_URL, else http://127.0.0.1:8000; may end in /api/v1)")
    p.add_argument("--token", default=argparse.SUPPRESS, help="the API token (default: $SUPERFED_TOKEN)")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print the API's JSON body instead of text, for scripts")
    return p


def add_commands(sub: Any, run: Run) -> None:
    common = connection_options()

    def add(parent: Any, name: str, fn: Callable[..., int], help_: str) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_, description=help_, parents=[common])
        p.set_defaults(func=lambda a, fn=fn: run(a, fn))
        return p

    def timeout(p: argparse.ArgumentParser) -> None:
        p.add_argument("--timeout", type=float, help="give up waiting after this many seconds (exit 1)")

    p = add(sub, "submit", submit, "submit a job from a JSON file ({project, spec, placement?}; - for stdin)")
    p.add_argument("file", help="the job as JSON; - reads standard input")
    p.add_argument("--project", help="override the file's project")
    p.add_argument("--idempotency-key", help="the key for this submission (default: a new one; "
                   "the same key and body never makes a second job)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the job id")
    p.add_argument("--batch", action="store_true",
                   help="FILE is JSON Lines, a job a line (each may carry its own idempotency_key), sent "
                   "1,000 a request; prints each accepted id in order, each refusal on stderr; exit 1 if any")
    p.add_argument("--wait", action="store_true",
                   help="follow the job until it is final; exit 0 only if it COMPLETED")
    timeout(p)

    p = add(sub, "jobs", jobs, "list jobs, newest first")
    p.add_argument("--project", help="only this project's jobs")
    p.add_argument("--state", type=str.upper, choices=STATES, help="only jobs in this state (any case)")
    p.add_argument("--site", help="only jobs at this site")
    p.add_argument("--limit", type=int, default=20, help="jobs per page (default 20)")
    p.add_argument("--cursor", help="where the previous page ended (printed after a full page)")

    p = add(sub, "job", job, "show one job")
    p.add_argument("id", help="the job's id")
    p.add_argument("--watch", action="store_true",
                   help="follow the job live until it is final; exit 0 only if it COMPLETED")
    timeout(p)

    p = add(sub, "logs", logs, "print a job's output (its stdout_path, read through the files API)")
    p.add_argument("id", help="the job's id")
    p.add_argument("--stderr", action="store_true", help="its stderr_path instead")

    add(sub, "cancel", cancel, "cancel a job").add_argument("id", help="the job's id")
    add(sub, "status", status, "every site's health")
    add(sub, "sites", sites, "every site")
    add(sub, "projects", projects, "each project's allocation and use at every site (the token's projects)")
    p = add(sub, "usage", usage, "final jobs, node-hours and failures per site and project (the token's projects)")
    p.add_argument("--project", help="only this project")
    p.add_argument("--site", help="only this site")
    p.add_argument("--from", dest="from", metavar="TIME",
                   help="jobs that ended at or after TIME (ISO 8601 with a zone, e.g. 2026-11-01T00:00:00Z, or a date)")
    p.add_argument("--to", metavar="TIME", help="jobs that ended before TIME")
    p = add(sub, "events", events, "follow health changes as they happen (the status event stream)")
    p.add_argument("--count", type=int, help="stop after this many events")

    site = sub.add_parser("site", help="drain or enable a site (admin)", description="drain or enable a site (admin)")
    ssub = site.add_subparsers(dest="site_command", required=True)
    for action, text in (("drain", "stop placing new jobs at a site; its running jobs are left alone"),
                         ("enable", "place jobs at a site again (enabled, not draining)")):
        p = add(ssub, action, site_toggle, text)
        p.add_argument("name", help="the site's name")
        p.set_defaults(action=action)

    p = add(sub, "audit", audit, "who changed what and when, newest first (admin)")
    p.add_argument("--limit", type=int, default=50, help="entries to show (default 50)")
    p.add_argument("--offset", type=int, help="skip this many of the newest first")

    files = sub.add_parser("files", help="files at a site: ls, get, put", description="files at a site")
    fsub = files.add_subparsers(dest="files_command", required=True)
    for name, fn, text in (("ls", files_ls, "list a directory"), ("get", files_get, "print or save a small file"),
                           ("put", files_put, "upload a small file")):
        p = add(fsub, name, fn, text)
        p.add_argument("site", help="the site's name")
        p.add_argument("path", help="an absolute path under one of the project's file roots there")
        p.add_argument("--project", required=True, help="the project the access is for")
        if name == "get":
            p.add_argument("-o", "--output", help="write to this local file instead of standard output")
        if name == "put":
            p.add_argument("local", help="the local file to upload; - reads standard input")

    tok = sub.add_parser("token", help="API tokens (admin): create, list, revoke", description="API tokens (admin)")
    tsub = tok.add_subparsers(dest="token_command", required=True)
    p = add(tsub, "create", token_create, "make a token; it is printed this once")
    p.add_argument("name", help="a name for people (who or what uses it)")
    p.add_argument("--role", choices=["viewer", "submitter", "admin"], default="viewer", help="default viewer")
    p.add_argument("--projects", default="*", help="comma-separated projects it may act for (* = all)")
    p.add_argument("--expires-at", help="ISO 8601 time with a zone, e.g. 2030-01-01T00:00:00Z")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the token")
    add(tsub, "list", token_list, "every token (never the secret)")
    add(tsub, "revoke", token_revoke, "revoke a token by its id").add_argument("id", help="the token's id")


__all__ = ["add_commands", "connection_options", "is_tty", "job_line"]
