"""The ``superfed`` command line (API.md §2). Exit 0 on success, non-zero with a one-line reason."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from broker import logs


def _fail(msg: str, code: int = 1) -> int:
    print(f"superfed: {msg}", file=sys.stderr)
    return code


def _load(path: str) -> Any:
    from broker.config import load

    return load(path)


def cmd_serve(args: argparse.Namespace) -> int:
    from broker import serving

    settings = _load(args.config)  # a bad file fails here, with every problem, before the server starts
    logs.setup(args.log_format)  # the app's lines (uvicorn keeps its own, at warning)
    os.environ["SUPERFED_CONFIG"] = str(args.config)
    serving.run("broker.serving:app_from_env", host=args.host, port=args.port, server=args.server,
                limits=settings.api)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from broker.worker import run

    return run(_load(args.config), burst=args.burst, name=args.name, log_format=args.log_format)


def cmd_config_check(args: argparse.Namespace) -> int:
    from broker.config import ConfigError, load

    try:
        s = load(args.file)
    except ConfigError as exc:
        if args.json:  # for a deploy script: the problems as a list, still exit 1
            _json({"file": args.file, "ok": False, "problems": list(exc.problems)})
            return 1
        print(f"{args.file}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for p in exc.problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    if args.json:
        _json({"file": args.file, "ok": True, "sites": [x.name for x in s.sites], "tokens": len(s.tokens),
               "placement": s.placement.strategy,
               "credentials": {n: {"source": "file" if c.file else "env", "hosts": list(c.hosts)}
                               for n, c in sorted(s.credentials.items())}})
        return 0
    print(
        f"{args.file}: ok ({len(s.sites)} sites: {', '.join(x.name for x in s.sites) or 'none'}; "
        f"{len(s.tokens)} tokens; placement {s.placement.strategy})"
    )
    for name, cred in sorted(s.credentials.items()):  # what an operator checks: where each secret may go
        print(f"  credential {name}: {'file' if cred.file else 'env'} -> {', '.join(cred.hosts)}")
    return 0


def _json(obj: Any) -> None:
    import json

    print(json.dumps(obj, indent=2, ensure_ascii=False))


def cmd_config_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from broker.config_export import export

    text = export(_load(args.config))
    if args.output:
        out = Path(args.output)
        out.write_text(text)
        out.chmod(0o600)  # it names where the secrets are, and token hashes
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from broker.demo import run

    return run(
        port=args.port,
        info=args.info,
        workers=args.workers,
        time_scale=args.time_scale,
        workdir=args.workdir,
        embedded_redis=args.embedded_redis,
    )


def cmd_sim(args: argparse.Namespace) -> int:
    from simulators import cli as sim_cli

    return sim_cli.run(args)


def _client(args: argparse.Namespace, fn: Callable[..., int]) -> int:
    from broker import client

    url = getattr(args, "url", None) or os.environ.get("SUPERFED_URL", "http://127.0.0.1:8000")
    token = getattr(args, "token", None) or os.environ.get("SUPERFED_TOKEN")
    if not token:
        return _fail("set SUPERFED_TOKEN or pass --token (and SUPERFED_URL or --url, default http://127.0.0.1:8000)")
    args.json = getattr(args, "json", False)
    try:
        with client.Client(url, token) as c:
            return fn(c, args)
    except client.ApiError as exc:
        return _fail(str(exc))
    except TimeoutError as exc:  # --wait / --watch with --timeout: the job is still going
        return _fail(str(exc))


def cmd_completion(args: argparse.Namespace) -> int:
    from broker.cli_completion import script

    sys.stdout.write(script(build_parser(), args.shell))
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("superfed")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def _log_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=logs.FORMATS, default=os.environ.get("SUPERFED_LOG_FORMAT", "json"),
                   help="json: one JSON object a line, for a log shipper (the default; also SUPERFED_LOG_FORMAT); "
                        "text: for people (the demo's)")


def build_parser() -> argparse.ArgumentParser:
    from broker import cli_api
    from simulators import cli as sim_cli

    p = argparse.ArgumentParser(prog="superfed", description="One API over several HPC facilities.",
                                parents=[cli_api.connection_options()])
    p.add_argument("--version", action="version", version=f"superfed {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the API server")
    s.add_argument("--config", required=True, help="the config file (TOML)")
    s.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="the port to listen on (default 8000)")
    s.add_argument(
        "--server",
        choices=["uvicorn", "granian"],
        default="uvicorn",
        help="the HTTP server (one worker process; see bench/README.md)",
    )
    _log_format(s)
    s.set_defaults(func=cmd_serve)

    w = sub.add_parser("worker", help="run a background worker (submission, polls, health checks)")
    w.add_argument("--config", required=True, help="the config file (TOML)")
    w.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    w.add_argument("--name", help="worker name (default: RQ's)")
    _log_format(w)
    w.set_defaults(func=cmd_worker)

    d = sub.add_parser("demo", help="everything on one machine: Redis, three simulated facilities, API, workers")
    d.add_argument("--port", type=int, default=8000, help="the API's port (default 8000)")
    d.add_argument("--info", help="write the URLs, tokens and config path here as JSON once ready")
    d.add_argument("--workers", type=int, default=2, help="background workers to run (default 2)")
    d.add_argument("--time-scale", type=float, default=1.0, help="scales `sleep S` at the simulated facilities")
    d.add_argument("--workdir", help="where to keep the demo's config, keys and logs (default: a temp dir)")
    d.add_argument(
        "--embedded-redis", action="store_true", help="use the embedded Redis even when redis-server is installed"
    )
    d.set_defaults(func=cmd_demo)

    c = sub.add_parser("config", help="configuration tools")
    csub = c.add_subparsers(dest="config_command", required=True)
    cc = csub.add_parser("check", help="validate a config file")
    cc.add_argument("file", help="the config file to check")
    cc.add_argument("--json", action="store_true", help="the result as JSON (ok, problems or sites), for scripts")
    cc.set_defaults(func=cmd_config_check)
    ce = csub.add_parser("export", help="write the live config (sites from Redis, the rest from FILE) as TOML")
    ce.add_argument("--config", required=True, help="the config file the broker runs with (for Redis and the rest)")
    ce.add_argument("--output", "-o", help="write here (default: standard output)")
    ce.set_defaults(func=cmd_config_export)

    sim = sub.add_parser("sim", help="run one simulated facility")
    sim_cli.add_arguments(sim)
    sim.set_defaults(func=cmd_sim)

    cli_api.add_commands(sub, _client)

    comp = sub.add_parser("completion", help="print a shell completion script",
                          description="print a shell completion script: "
                                      "eval \"$(superfed completion bash)\" in ~/.bashrc, or zsh in ~/.zshrc")
    comp.add_argument("shell", choices=["bash", "zsh"], help="the shell to complete in")
    comp.set_defaults(func=cmd_completion)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except BrokenPipeError:
        # the reader went away (`superfed jobs | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line, not a traceback
        from broker.config import ConfigError

        if isinstance(exc, ConfigError):
            return _fail("; ".join([f"{exc.source}: {len(exc.problems)} problem(s)", *exc.problems]))
        return _fail(f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
