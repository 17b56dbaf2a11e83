"""``superfed demo``: everything on one machine, and nothing left running afterwards.

Redis (a private ``redis-server`` when one is on PATH, else an embedded server other
processes can reach over TCP), one simulated facility per protocol, the API, N workers.
Credentials for the facilities are made fresh for each run: an RSA key pair for the SF API,
a client secret for FirecREST, a bearer token for IRI."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from broker.config_export import dumps as toml_dumps
from broker.procs import Proc, Procs, Restart, free_port, port_taken, wait_port, wait_until

SFAPI_CLIENT_ID = "superfeddemo1"  # 13 characters, as NERSC's client ids are
DEMO_PROJECT = "m0001"  # the project whose file roots the demo sets (they are per project)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (0600 from the start: it holds tokens and the
    Redis password), replacing any older one."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


REDIS_USER = "superfed"  # the ACL user a private redis-server gets (its default user is off)


def redis_server_args(
    exe: str, port: int, workdir: Path, *, aof: bool = False, password: str | None = None
) -> list[str]:
    """A private redis-server on loopback; AOF with fsync every second when asked (drills).

    With ``password``, nobody gets in without it: the ACL user ``REDIS_USER`` (``redis_url_for``
    makes its URL) and the default user both need it. The users go
    in a 0600 file in ``workdir`` named as the server's config file, so the password is
    never on a command line (which any local user can read in ``ps``)."""
    args = [exe]
    if password is not None:
        users = workdir / "redis-users.conf"
        # the default user needs a password and every permission rather than being off: Redis 7.0
        # replays the AOF's MULTI/EXEC blocks as the default user, and refuses them when it is off
        write_private(users, f"user default on >{password} ~* &* +@all\nuser {REDIS_USER} on >{password} ~* &* +@all\n")
        args.append(str(users))
    args += ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)]
    return args + (["--appendonly", "yes", "--appendfsync", "everysec"] if aof else ["--appendonly", "no"])


def redis_url_for(port: int, password: str | None = None) -> str:
    """The URL of a private redis-server on loopback (with its ACL user when it has one)."""
    auth = f"{REDIS_USER}:{quote(password, safe='')}@" if password is not None else ""
    return f"redis://{auth}127.0.0.1:{port}/0"


def new_redis_password() -> str:
    return secrets.token_urlsafe(24)


# The API, the workers and the simulators hold nothing that a restart loses but a simulator's
# jobs (the broker's state is in Redis), so one that fails is started again, as systemd's
# Restart=on-failure would: 0.5 s later, doubling up to 8 s, and at most 5 times a minute (a
# process that dies at once every time stops the demo with its reason within about 16 s).
# Redis is not restarted: the demo's keeps nothing on disk, so every job would be lost.
RESTART = Restart(delay=0.5, max_delay=8.0, burst=5, interval=60.0)


class Demo:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.procs = Procs(workdir)
        self.embedded: Any = None

    def spawn(self, name: str, args: list[str], *, port: int | None = None, restart: bool = True) -> Proc:
        return self.procs.spawn(name, args, port=port, restart=RESTART if restart else None)

    # -- parts ----------------------------------------------------------------------------
    def start_redis(self, *, embedded: bool = False) -> tuple[str, str]:
        """(its URL, a note for people). A redis-server gets a fresh ACL user and password; the
        URL holding them reaches the API and workers only through the 0600 config file."""
        port = free_port()
        exe = None if embedded else shutil.which("redis-server")
        if exe:
            password = new_redis_password()
            self.spawn("redis", redis_server_args(exe, port, self.dir, password=password), port=port, restart=False)
            return redis_url_for(port, password), f"private redis-server on port {port}, ACL user {REDIS_USER}"
        from fakeredis import TcpFakeServer

        server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
        # a client's thread can wait in a blocking command (BLPOP ... 0) for as long as it
        # likes: closing the server must not wait for them (socketserver joins them by default)
        server.daemon_threads = True
        server.block_on_close = False
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.embedded = server
        wait_port(port, None, "embedded Redis")
        why = "as asked" if embedded else "redis-server is not on PATH"
        # fakeredis cannot require a password: the config says so (allow_unauthenticated_redis)
        return redis_url_for(port), f"embedded Redis (fakeredis) on port {port}: {why}; NO PASSWORD, loopback only"

    def make_credentials(self) -> dict[str, Path]:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        files = {
            "sfapi_key": self.dir / "sfapi-client.pem",
            "sfapi_pub": self.dir / "sfapi-client.pub.pem",
            "firecrest_secret": self.dir / "firecrest-secret",
            "iri_token": self.dir / "iri-token",
        }
        files["sfapi_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        files["sfapi_pub"].write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        files["firecrest_secret"].write_text(secrets.token_urlsafe(24))
        files["iri_token"].write_text(secrets.token_urlsafe(32))
        for f in files.values():
            f.chmod(0o600)
        return files

    def start_sims(self, base_port: int, creds: dict[str, Path], time_scale: float) -> dict[str, str]:
        me = [sys.executable, "-m", "broker.cli", "sim"]
        urls = {}
        extra = {
            "sfapi": ["--client-id", SFAPI_CLIENT_ID, "--public-key", str(creds["sfapi_pub"])],
            "firecrest": ["--client-id", "superfed-demo", "--client-secret-file", str(creds["firecrest_secret"])],
            "iri": ["--token-file", str(creds["iri_token"])],
        }
        started = []
        for i, kind in enumerate(("sfapi", "firecrest", "iri"), start=1):
            port = free_port(base_port + i)
            proc = self.spawn(
                f"sim-{kind}", [*me, kind, "--port", str(port), "--time-scale", str(time_scale), *extra[kind]]
            )
            started.append((kind, port, proc))
            urls[kind] = f"http://127.0.0.1:{port}"
        for kind, port, proc in started:  # all three start at once; then wait for each
            wait_port(port, proc.proc, f"the {kind} simulator")
        return urls

    def write_config(
        self, redis_url: str, sims: dict[str, str], creds: dict[str, Path], tokens: dict[str, str]
    ) -> Path:
        cfg = self.dir / "superfed.toml"
        from broker import facility_profiles as fp

        # the simulators have 64 nodes per system; walltime limits are each facility's longest
        def limits(hours: int) -> dict[str, int]:
            return {"max_nodes": 64, "max_walltime": hours * 3600, "capacity": 100}

        # a broker project whose facility account has another name, at every site
        every = {"health_interval": 2.0, "poll_interval": 1.0, "accounts": {"beamline": "m0002"}}
        sites = [
            {
                "name": "nersc",
                "kind": "sfapi",
                "url": f"{sims['sfapi']}/api/v1.2",
                "systems": ["perlmutter"],
                **every,
                "limits": limits(48),
                "profiles": {"perlmutter": fp.PERLMUTTER},
                "file_roots": {DEMO_PROJECT: ["/global/homes/s/superfed", "/pscratch/sd/s/superfed"]},
                "auth": {
                    "client_id": SFAPI_CLIENT_ID,
                    "token_url": f"{sims['sfapi']}/c2id/token",
                    "private_key_file": str(creds["sfapi_key"]),
                },
            },
            {
                "name": "cscs",
                "kind": "firecrest",
                "url": sims["firecrest"],
                "systems": ["daint"],
                **every,
                "limits": limits(24),
                "profiles": {"daint": fp.DAINT},
                "file_roots": {DEMO_PROJECT: ["/home/superfed", "/scratch/superfed"]},
                "auth": {
                    "client_id": "superfed-demo",
                    "token_url": f"{sims['firecrest']}/auth/token",
                    "client_secret_file": str(creds["firecrest_secret"]),
                },
            },
            {
                "name": "alcf",
                "kind": "iri",
                "url": sims["iri"],
                "systems": ["polaris"],
                **every,
                "limits": limits(72),
                "profiles": {"polaris": fp.POLARIS},
                "file_roots": {DEMO_PROJECT: ["/home/superfed", "/eagle"]},
                "auth": {"token_file": str(creds["iri_token"])},
            },
        ]
        data = {
            "redis_url": redis_url,
            # only the embedded fallback (fakeredis) has no password; it listens on loopback
            "allow_unauthenticated_redis": "@" not in redis_url,
            # the simulators listen on loopback: no site (nor its credentials) may go elsewhere
            "allowed_site_hosts": ["127.0.0.1"],
            "placement": {"strategy": "best", "max_attempts": 3},
            "worker": {"abandoned_after": 3},
            "api": {"access_log": True},  # a person watching the demo sees each request
            "tokens": [
                {"name": f"demo-{role}", "role": role, "projects": ["*"], "token": tok} for role, tok in tokens.items()
            ],
            "sites": sites,
        }
        write_private(cfg, toml_dumps(data, "written by `superfed demo`; see config/ for annotated examples"))
        return cfg

    def exited(self) -> str | None:
        """Why the demo cannot go on, if one of its processes has ended for good; restarts
        those that failed and may be, saying so on stderr."""
        return self.procs.supervise(lambda line: print(f"superfed demo: {line}", file=sys.stderr, flush=True))

    def wait_ready(self, api: str, token: str, timeout: float = 60) -> None:
        """Until every site's health is known (the workers have checked each once)."""
        last = ""

        def ready() -> bool:
            nonlocal last
            if (why := self.exited()) is not None:
                raise RuntimeError(why)
            try:
                r = httpx.get(f"{api}/api/v1/status", headers={"Authorization": f"Bearer {token}"}, timeout=2)
            except httpx.HTTPError as exc:
                last = str(exc)
                return False
            if r.status_code != 200:
                last = f"HTTP {r.status_code}"
                return False
            states = {s["site"]: s["state"] for s in r.json()["sites"]}
            last = str(states)
            return bool(states) and all(v != "unknown" for v in states.values())

        try:
            wait_until(ready, timeout=timeout, interval=0.2, what="every site's health known")
        except TimeoutError:
            raise RuntimeError(f"the demo did not become ready in {timeout:.0f} s (last: {last})") from None

    def stop(self) -> None:
        self.procs.stop()
        if self.embedded is not None:
            self.embedded.shutdown()
            self.embedded.server_close()


class _Stop(BaseException):
    """Raised by the signal handler to leave any wait at once."""


def run(
    *,
    port: int = 8000,
    info: str | None = None,
    workers: int = 2,
    time_scale: float = 1.0,
    workdir: str | None = None,
    embedded_redis: bool = False,
) -> int:
    if port_taken(port):
        # said before starting anything: otherwise the API exits at once while whatever holds
        # the port answers in its place, and its log goes with the temporary folder
        print(f"superfed demo: port {port} is in use (by another process); pass --port or stop it", file=sys.stderr)
        return 1
    own_dir = workdir is None
    d = Path(workdir or tempfile.mkdtemp(prefix="superfed-demo-"))
    d.mkdir(parents=True, exist_ok=True)
    demo = Demo(d)
    stopping = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        # the first Ctrl-C/SIGTERM interrupts whatever runs (start-up included) and unwinds
        # into the cleanup below; further ones are ignored so the cleanup can finish
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stopping.set()
        raise _Stop

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        redis_url, redis_note = demo.start_redis(embedded=embedded_redis)
        creds = demo.make_credentials()
        sims = demo.start_sims(port, creds, time_scale)
        tokens = {role: f"sf_demo_{role}_{secrets.token_urlsafe(12)}" for role in ("viewer", "submitter", "admin")}
        cfg = demo.write_config(redis_url, sims, creds, tokens)
        api_port = port
        demo.spawn(
            "api", [sys.executable, "-m", "broker.cli", "serve", "--config", str(cfg), "--port", str(api_port),
             "--log-format", "text"],  # the demo's lines are read by people
            port=api_port,
        )
        for i in range(workers):
            demo.spawn(
                f"worker-{i + 1}",
                [
                    sys.executable,
                    "-m",
                    "broker.cli",
                    "worker",
                    "--config",
                    str(cfg),
                    "--name",
                    f"demo-worker-{i + 1}-{os.getpid()}",
                    "--log-format",
                    "text",
                ],
            )
        api_url = f"http://127.0.0.1:{api_port}"
        demo.wait_ready(api_url, tokens["viewer"])
        doc = {"api": api_url, "dashboard": f"{api_url}/dashboard", "redis": redis_url, "simulators": sims,
               "tokens": tokens, "config": str(cfg)}
        if info:
            write_private(Path(info), json.dumps(doc, indent=2) + "\n")
        print(
            f"""superfed demo is up ({redis_note}).

  API          {api_url}/api/v1      docs: {api_url}/schema
  dashboard    {api_url}/dashboard   (paste a token below)
  simulators   SF API {sims["sfapi"]}   FirecREST {sims["firecrest"]}   IRI {sims["iri"]}
  config       {cfg}
  logs         {d}

  tokens       viewer     {tokens["viewer"]}
               submitter  {tokens["submitter"]}
               admin      {tokens["admin"]}

Try:  export SUPERFED_URL={api_url} SUPERFED_TOKEN={tokens["submitter"]}
      superfed status
Press Ctrl-C to stop everything.""",
            flush=True,
        )
        while not stopping.wait(0.5):
            if (why := demo.exited()) is not None:
                print(f"superfed demo: {why}; stopping", file=sys.stderr)
                return 1
        return 0
    except _Stop:
        return 0
    except RuntimeError as exc:
        print(f"superfed demo: {exc}", file=sys.stderr)
        return 1
    finally:
        print("superfed demo: stopping…", file=sys.stderr, flush=True)
        demo.stop()
        if own_dir:
            shutil.rmtree(d, ignore_errors=True)
