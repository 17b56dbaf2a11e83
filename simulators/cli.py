"""``superfed sim {sfapi,firecrest,iri} --port P``: run one simulated facility."""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

from simulators.common.facility import SimSettings

SIM_APPS = {
    "firecrest": "simulators.firecrest:create_app",
    "iri": "simulators.iri:create_app",
    "sfapi": "simulators.sfapi:create_app",
}
DEFAULT_SYSTEMS = {"firecrest": ["daint"], "iri": ["polaris"], "sfapi": ["perlmutter"]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=sorted(SIM_APPS), help="which facility protocol to speak")
    p.add_argument("--port", type=int, required=True, help="the port to listen on")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    p.add_argument("--nodes", type=int, default=64, help="nodes per system (default 64)")
    p.add_argument("--systems", help="comma-separated system names (default per kind)")
    p.add_argument("--time-scale", type=float, default=1.0, help="multiplies every `sleep S` (default 1)")
    p.add_argument("--user", default="superfed", help="the user every credential maps to")
    p.add_argument(
        "--projects",
        default="m0001=10000,m0002=10000",
        help="project=node_hours allocations, comma-separated",
    )
    p.add_argument("--token-ttl", type=int, default=600, help="lifetime of issued tokens in seconds")
    p.add_argument("--client-id", help="OAuth client id accepted (sfapi, firecrest)")
    p.add_argument("--client-secret", help="client secret accepted (firecrest); prefer --client-secret-file")
    p.add_argument("--client-secret-file", help="file holding the client secret (firecrest)")
    p.add_argument("--public-key", help="PEM file of the client's RS256 public key (sfapi)")
    p.add_argument("--token", action="append", default=[], help="static bearer token accepted (iri); repeatable")
    p.add_argument("--token-file", help="file with one accepted bearer token per line (iri)")
    p.add_argument("--public-url", help="base URL clients use, for token audiences (default http://HOST:PORT)")


def settings_from_args(args: argparse.Namespace) -> SimSettings:
    projects: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in args.projects.split(","))):
        name, _, hours = item.partition("=")
        projects[name] = float(hours or 10000)
    secret = args.client_secret
    if args.client_secret_file:
        secret = Path(args.client_secret_file).read_text().strip()
    tokens = list(args.token)
    if args.token_file:
        tokens += [t.strip() for t in Path(args.token_file).read_text().splitlines() if t.strip()]
    return SimSettings(
        systems=args.systems.split(",") if args.systems else DEFAULT_SYSTEMS[args.kind],
        nodes=args.nodes,
        time_scale=args.time_scale,
        user=args.user,
        projects=projects,
        token_ttl=args.token_ttl,
        client_id=args.client_id,
        client_secret=secret or os.environ.get("SUPERFED_SIM_CLIENT_SECRET"),
        public_key_pem=Path(args.public_key).read_text() if args.public_key else None,
        static_tokens=tokens,
        public_url=args.public_url or f"http://{args.host}:{args.port}",
    )


def create_app(kind: str, settings: SimSettings):  # -> Litestar
    module, _, attr = SIM_APPS[kind].partition(":")
    return getattr(importlib.import_module(module), attr)(settings)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    settings = settings_from_args(args)
    app = create_app(args.kind, settings)
    print(f"superfed sim {args.kind}: {', '.join(settings.systems)} on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=2,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="superfed sim")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
