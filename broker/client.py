"""``superfed submit|jobs|job|cancel|status|sites|token``: the API from a shell."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from broker.states import STATES


class ClientError(Exception):
    pass


def base_url(url: str) -> str:
    """The broker's root URL. The demo's banner shows the API as ``.../api/v1``; people paste
    that into SUPERFED_URL, so a trailing API prefix is dropped rather than doubled."""
    url = url.rstrip("/")
    return url.removesuffix("/api/v1")


class Client:
    def __init__(self, url: str, token: str):
        self.http = httpx.Client(base_url=base_url(url), headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach {self.http.base_url}: {exc}") from None
        if r.status_code >= 400:
            try:
                body = r.json()
                msg = body.get("detail") or body.get("title") or r.text
            except ValueError:
                msg = r.text[:200]
            raise ClientError(f"HTTP {r.status_code}: {msg}")
        return r.json() if r.content else None


def _print(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)  # placement reasons use arrows, names any script
    sys.stdout.write("\n")


def submit(c: Client, args: argparse.Namespace) -> int:
    try:
        body = json.loads(Path(args.file).read_text() if args.file != "-" else sys.stdin.read())
    except (OSError, ValueError) as exc:
        raise ClientError(f"{args.file}: not a readable JSON job ({exc})") from None
    if args.project:
        body["project"] = args.project
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    job = c.call("POST", "/api/v1/jobs", json=body, headers=headers)
    if args.quiet:
        print(job["id"])
    else:
        _print(job)
    return 0


def job_line(j: dict[str, Any]) -> str:
    """One job in ``superfed jobs``; an exit other than 0 comes with the job's message, which
    says why (a bare ``exit=265`` means nothing to whoever did not write PBS)."""
    code = "" if j["exit_code"] is None else f" exit={j['exit_code']}"
    if j["exit_code"] and j.get("message"):
        code += f" ({j['message']})"
    return f"{j['id']}  {j['state']:<9} {j['site'] or '-':<10} {j['project']:<10} {j['name'] or ''}{code}"


def jobs(c: Client, args: argparse.Namespace) -> int:
    params = {
        k: v
        for k, v in {
            "project": args.project,
            "state": args.state,
            "site": args.site,
            "limit": args.limit,
            "cursor": args.cursor,
        }.items()
        if v
    }
    page = c.call("GET", "/api/v1/jobs", params=params)
    for j in page["items"]:
        print(job_line(j))
    if page["next_cursor"]:
        print(f"(more: --cursor {page['next_cursor']})", file=sys.stderr)
    return 0


def job(c: Client, args: argparse.Namespace) -> int:
    _print(c.call("GET", f"/api/v1/jobs/{args.id}"))
    return 0


def cancel(c: Client, args: argparse.Namespace) -> int:
    res = c.call("DELETE", f"/api/v1/jobs/{args.id}")
    print(res["detail"])
    return 0


def status(c: Client, args: argparse.Namespace) -> int:
    rep = c.call("GET", "/api/v1/status")
    for s in rep["sites"]:
        comps = ", ".join(f"{x['name']}={x['state']}" for x in s["components"])
        age = "-" if s["age_s"] is None else f"{s['age_s']:.1f}s ago"
        print(f"{s['site']:<12} {s['state']:<9} checked {age:<10} {comps}")
    return 0


def sites(c: Client, args: argparse.Namespace) -> int:
    for s in c.call("GET", "/api/v1/sites"):
        flags = ("" if s["enabled"] else " disabled") + (" draining" if s["draining"] else "")
        print(f"{s['name']:<12} {s['kind']:<10} {s['health']:<9} {','.join(s['systems'])}  {s['url']}{flags}")
    return 0


def token_create(c: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "name": args.name,
        "role": args.role,
        "projects": [p.strip() for p in args.projects.split(",") if p.strip()],
    }
    if args.expires_at:
        body["expires_at"] = args.expires_at
    made = c.call("POST", "/api/v1/tokens", json=body)
    if args.quiet:
        print(made["token"])
    else:
        print(f"id:      {made['id']}\nname:    {made['name']} ({made['role']}; projects {','.join(made['projects'])})")
        print(f"expires: {made['expires_at'] or 'never'}\ntoken:   {made['token']}")
        print("(the token is shown this once; only its hash is kept)", file=sys.stderr)
    return 0


def token_list(c: Client, args: argparse.Namespace) -> int:
    for t in c.call("GET", "/api/v1/tokens"):
        print(
            f"{t['id']:<18} {t['name']:<20} {t['role']:<9} {','.join(t['projects']):<16} "
            f"expires {t['expires_at'] or 'never':<24} last used {t['last_used_at'] or 'never'}"
        )
    return 0


def token_revoke(c: Client, args: argparse.Namespace) -> int:
    c.call("DELETE", f"/api/v1/tokens/{args.id}")
    print(f"revoked {args.id}")
    return 0


def add_commands(sub: Any, run: Callable[[argparse.Namespace, Callable[..., int]], int]) -> None:
    def add(name: str, fn: Callable[..., int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.set_defaults(func=lambda a, fn=fn: run(a, fn))
        return p

    p = add("submit", submit, "submit a job from a JSON file ({project, spec, placement?}; - for stdin)")
    p.add_argument("file")
    p.add_argument("--project", help="override the file's project")
    p.add_argument("--idempotency-key")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the job id")
    p = add("jobs", jobs, "list jobs, newest first")
    p.add_argument("--project")
    p.add_argument("--state", type=str.upper, choices=STATES, help="any case")
    p.add_argument("--site")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--cursor", help="where the previous page ended (printed after a full page)")
    add("job", job, "show one job").add_argument("id")
    add("cancel", cancel, "cancel a job").add_argument("id")
    add("status", status, "every site's health")
    tok = sub.add_parser("token", help="API tokens (admin): create, list, revoke")
    tsub = tok.add_subparsers(dest="token_command", required=True)
    p = tsub.add_parser("create", help="make a token; it is printed this once")
    p.add_argument("name")
    p.add_argument("--role", choices=["viewer", "submitter", "admin"], default="viewer")
    p.add_argument("--projects", default="*", help="comma-separated projects it may act for (* = all)")
    p.add_argument("--expires-at", help="ISO 8601 time with a zone, e.g. 2030-01-01T00:00:00Z")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the token")
    p.set_defaults(func=lambda a: run(a, token_create))
    tsub.add_parser("list", help="every token (never the secret)").set_defaults(func=lambda a: run(a, token_list))
    p = tsub.add_parser("revoke", help="revoke a token by its id")
    p.add_argument("id")
    p.set_defaults(func=lambda a: run(a, token_revoke))
    add("sites", sites, "every site")
