"""The configuration file (TOML), validated on load with every problem named by its place.

The file seeds the run-time configuration: sites and tokens are copied into Redis at start
when Redis has none yet, and from then on Redis is authoritative (every API replica and
worker sees an admin's change without a restart).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

from adapters import profile as profiles
from adapters import registry
from adapters.http import HttpSettings
from adapters.profile import SystemProfile
from broker import credentials as creds
from broker import site_hosts
from broker.credentials import CredentialName, CredentialSource
from broker.store.connect import url_problem

SiteName = Annotated[
    str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,31}$(?!\n)", description="lower-case letters, digits, '-'")
]
Role = Literal["viewer", "submitter", "admin"]
ROLES: tuple[str, ...] = ("viewer", "submitter", "admin")


class SiteLimits(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    max_nodes: Annotated[int, msgspec.Meta(ge=1)] = 1_000_000
    max_walltime: Annotated[int, msgspec.Meta(ge=60)] = 7 * 24 * 3600  # seconds
    capacity: Annotated[int, msgspec.Meta(ge=1)] = 100  # broker jobs it should hold at once


class SiteConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    name: SiteName
    kind: Literal["sfapi", "firecrest", "iri"]
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s/?#]+[^\s]*$(?!\n)")]
    systems: Annotated[list[str], msgspec.Meta(min_length=1)]
    # the facility API version (IRI: "v1" as ALCF, "v2" as the reference implementation);
    # unset: the URL's /api/vN if it ends so, else found at first contact (health says which)
    api_version: Literal["v1", "v2"] | None = None
    enabled: bool = True
    draining: bool = False
    weight: Annotated[float, msgspec.Meta(ge=0, le=100)] = 1.0
    limits: SiteLimits = SiteLimits()
    # broker project -> the account charged at this site (default: the same name); a list
    # names the default first and other accounts a job of that project may ask for
    accounts: dict[str, str | Annotated[list[str], msgspec.Meta(min_length=1)]] = {}
    # system -> what it offers and requires (node types, queues, required attributes, the
    # custom attributes users may pass); a system without one takes jobs as they are given
    profiles: dict[str, SystemProfile] = {}
    health_interval: Annotated[float, msgspec.Meta(ge=0.2, le=3600)] = 5.0
    stale_after: Annotated[float, msgspec.Meta(ge=0.5, le=86400)] | None = None  # default 3 intervals
    poll_interval: Annotated[float, msgspec.Meta(ge=0.2, le=3600)] = 2.0
    circuit_threshold: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    auth: Annotated[dict[str, Any], msgspec.Meta(description=(
        "which credentials the site uses, by the names the config file declares ([credentials.NAME]): "
        "token_credential (IRI), client_secret_credential (FirecREST), private_key_credential or "
        "access_token_credential (SF API); plus client_id and token_url where the kind has them. Each "
        "credential must be bound to every host the site sends it to"))] = {}
    http: HttpSettings = HttpSettings()
    # broker project -> the absolute directories under which the files API may list, read and
    # write at this site for that project ("*": for every project; use it only for areas all
    # projects may share); empty (the default) = no file access through the broker (fail closed)
    file_roots: dict[str, list[str]] = {}

    @property
    def staleness(self) -> float:
        return self.stale_after if self.stale_after is not None else 3 * self.health_interval

    def account_for(self, project: str) -> str:
        """The account charged for ``project``'s jobs here."""
        return self.accounts_allowed(project)[0]

    def accounts_allowed(self, project: str) -> list[str]:
        """Every account ``project`` may charge here, the default first."""
        mapped = self.accounts.get(project, project)
        return [mapped] if isinstance(mapped, str) else list(mapped)


class TokenConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A bootstrap API token. Give the token itself (``token``, for demos), its SHA-256
    (``sha256``), or where to read it (``file`` / ``env``)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    role: Role
    projects: Annotated[list[str], msgspec.Meta(min_length=1)] = msgspec.field(default_factory=lambda: ["*"])
    token: str | None = None
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$(?!\n)")] | None = None
    file: str | None = None
    env: str | None = None


class PlacementConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    strategy: Literal["best", "round-robin", "priority"] = "best"
    priority: list[str] = []
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 3  # sites tried per job
    # how long a job waits for an eligible site before it fails
    no_site_timeout: Annotated[float, msgspec.Meta(ge=1)] = 600.0
    # black-hole guard: a site whose last `demote_last` submissions (those of the last
    # `demote_window` seconds) hold at least `demote_min` refused (or failed within seconds),
    # making at least `demote_ratio` of them, is demoted (tried last) until they age out
    demote_last: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    demote_window: Annotated[float, msgspec.Meta(ge=5, le=86400)] = 120.0
    demote_min: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5
    demote_ratio: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5


class ApiConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 1024 * 1024
    max_file_bytes: Annotated[int, msgspec.Meta(ge=1)] = 4 * 1024 * 1024
    idempotency_ttl: Annotated[int, msgspec.Meta(ge=60)] = 24 * 3600
    page_limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    # requests per token per minute (a fixed window in Redis, shared by every replica); 0 = off
    rate_limit_per_minute: Annotated[int, msgspec.Meta(ge=0)] = 6000
    # entries kept in the audit log (a capped Redis list)
    audit_max_entries: Annotated[int, msgspec.Meta(ge=10)] = 10_000
    # HTTP server guards: seconds a client has to send a request's headers (an idle or slow
    # connection is closed after it), seconds an idle kept-alive connection stays open, and
    # connections open at once (one beyond is closed at once)
    header_timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    keep_alive_timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 5.0
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 2048
    # failed authentications one client address may make per minute before it gets 429s (0 = off)
    auth_failures_per_minute: Annotated[int, msgspec.Meta(ge=0)] = 30
    # when set, GET /metrics needs "Authorization: Bearer <token>" with this SHA-256 (hex)
    metrics_token_sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$(?!\n)")] | None = None
    # a log line per request (logger superfed.access: client, method, path, status, ms). Off by
    # default: in production the reverse proxy in front keeps the access log (deploy/nginx), and
    # Python's logging costs a busy status endpoint about a quarter of its rate (bench.status)
    access_log: bool = False
    # Server-Sent Events streams one token may hold open on one API process (429 beyond)
    max_streams_per_token: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 8


class WorkerConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    job_timeout: Annotated[int, msgspec.Meta(ge=5)] = 120
    # seconds a worker's lease lasts (renewed every third of it): a killed worker's jobs are
    # taken over by the others once it runs out, and so are the periodic tasks it ran
    abandoned_after: Annotated[int, msgspec.Meta(ge=2, le=600)] = 3
    # seconds between sweeps for accepted jobs whose submission nothing holds
    maintenance_interval: Annotated[int, msgspec.Meta(ge=1)] = 10
    submit_retries: Annotated[int, msgspec.Meta(ge=0, le=100)] = 20
    # submissions one worker runs at once (the RQ job it took and queued ones it claims)
    submit_concurrency: Annotated[int, msgspec.Meta(ge=1, le=64)] = 8


class TracingConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # OpenTelemetry traces of a job from its API request through the worker to the facility's
    # HTTP calls (broker/tracing.py; needs the ``otel`` extra). Off by default; also turned on
    # by OTEL_TRACES_EXPORTER=otlp|console in the environment, the SDK's own variable.
    enabled: bool = False
    # "otlp": OTLP over HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318);
    # "console": spans as JSON on standard output
    exporter: Literal["otlp", "console"] = "otlp"
    service_name: str = "superfed"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str | float) -> float:
    """Seconds from ``"90s"``, ``"30m"``, ``"1h"``, ``"7d"``, ``"2w"`` or a number of seconds;
    ValueError (in words) otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as \"1h\", \"30m\" or \"7d\", got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(value)
        if not m:
            raise ValueError(f"expected a duration such as \"1h\", \"30m\" or \"7d\", got {value!r}")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2) or "s"]
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"must be a positive duration, got {value!r}")
    return seconds


HISTORY_SCHEMES = ("sqlite", "postgresql", "postgres")


class HistoryConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Final jobs older than ``retention`` move from Redis to this database (broker/store/history.py);
    the API reads them from there as it reads the others."""

    enabled: bool = True
    # sqlite:///ABSOLUTE/PATH.db, sqlite:RELATIVE.db (to the config file's directory), or
    # postgresql://user@host/db (the ``postgres`` extra). Empty: history.db next to the config file
    # (a Settings made in code, with no file, keeps every job in Redis unless a URL is given)
    url: str = ""
    retention: str | float = "1h"  # how long a final job stays in Redis first ("90s", "30m", "1h", "7d")
    interval: str | float = "1m"  # between two runs of the mover (each moves every job due, in batches)
    batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500  # jobs copied and deleted per step

    @property
    def retention_s(self) -> float:
        return parse_duration(self.retention)

    @property
    def interval_s(self) -> float:
        return parse_duration(self.interval)

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.url)


def _history_problems(h: HistoryConfig) -> list[str]:
    problems = []
    for name in ("retention", "interval"):
        try:
            parse_duration(getattr(h, name))
        except ValueError as exc:
            problems.append(f"history.{name}: {exc}")
    if h.url:
        scheme = h.url.partition(":")[0].lower()
        if scheme not in HISTORY_SCHEMES:
            problems.append("history.url: must start with sqlite: (sqlite:///absolute/path.db) or postgresql://")
        elif scheme == "sqlite" and not h.url[len("sqlite:"):].strip("/"):
            problems.append("history.url: names no file (sqlite:///absolute/path.db or sqlite:relative.db)")
    return problems


class DurabilityConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # what a 202 promises (broker/durability.py; README, Reliability): "default" (in Redis's
    # memory and AOF as the server writes it), "replica" (also acknowledged by `replicas`
    # replicas within `timeout` seconds, else a 503 naming the job), "disk" (fsynced to the
    # primary's AOF before the answer: the server must run appendfsync always)
    level: Literal["default", "replica", "disk"] = "default"
    replicas: Annotated[int, msgspec.Meta(ge=1, le=16)] = 1
    # at most 3 s: the WAIT shares the Redis client's 5 s socket timeout
    timeout: Annotated[float, msgspec.Meta(gt=0, le=3)] = 1.0
    retry_after: Annotated[int, msgspec.Meta(ge=1, le=300)] = 2  # seconds, on the 503


class Settings(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    # redis://, rediss://, unix:// or redis+sentinel://[USER:PASSWORD@]HOST:26379,HOST:26379/SERVICE[/DB]
    # (broker/store/connect.py); or redis_url_file: a file holding it (a container's secret)
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_url_file: str | None = None
    # the broker refuses to start when its Redis answers clients that did not log in, unless
    # this says that is wanted (the demo's embedded fallback only; see deploy/redis.conf)
    allow_unauthenticated_redis: bool = False
    # hosts a site's url and token_url may name ("api.nersc.gov", "*.cscs.ch", "127.0.0.1");
    # empty: any host. Link-local and cloud-metadata addresses are refused whatever this says.
    allowed_site_hosts: list[str] = []
    # every credential a site may use, each with the hosts it may be sent to (broker/credentials.py);
    # sites name them (``token_credential = "alcf-token"``), the admin API only so
    credentials: dict[CredentialName, CredentialSource] = {}
    namespace: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{1,32}$(?!\n)")] = "superfed"
    sites: list[SiteConfig] = []
    tokens: list[TokenConfig] = []
    placement: PlacementConfig = PlacementConfig()
    api: ApiConfig = ApiConfig()
    worker: WorkerConfig = WorkerConfig()
    tracing: TracingConfig = TracingConfig()
    history: HistoryConfig = HistoryConfig()
    durability: DurabilityConfig = DurabilityConfig()
    source: str | None = None  # the file it came from


class ConfigError(Exception):
    """Every problem of a config, each as 'place: what is wrong'."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(problems))


_PATH_RE = re.compile(r"at `\$(.*?)`")


# what a regex-checked field must look like, in words (msgspec would print the regex)
_PATTERN_WORDS = {
    "name": "must be lower-case letters, digits or '-', start with a letter, at most 32 characters",
    "url": "must be an http:// or https:// URL",
    "namespace": "must be 1-32 lower-case letters, digits, '_' or '-'",
    "sha256": "must be 64 lower-case hex digits (a SHA-256 digest)",
    "hosts": "each must be a host name or address, or *.domain (a bare * would send it anywhere)",
    "env": "must be an environment variable's name (letters, digits, '_'; not starting with a digit)",
}


def _place(err: msgspec.ValidationError, prefix: str = "") -> str:
    """msgspec says "Expected `int`, got `str` - at `$.sites[0].weight`"; say "sites[0].weight: ..."."""
    text = str(err)
    m = _PATH_RE.search(text)
    path = (m.group(1).lstrip(".") if m else "") or ""
    message = _PATH_RE.sub("", text).rstrip(" -")
    full = ".".join(p for p in (prefix, path) if p).replace(".[", "[")
    leaf = full.rsplit(".", 1)[-1].split("[", 1)[0]
    if "matching regex" in message and leaf in _PATTERN_WORDS:
        message = _PATTERN_WORDS[leaf]
    return f"{full or '(top level)'}: {message}"


_MINIMAL_SITE = {"name": "x", "kind": "iri", "url": "http://localhost", "systems": ["s"]}


def _each_field(raw: Any, typ: type, base: dict[str, Any], place: str) -> list[str]:
    """msgspec stops at the first error; checking field by field (each on an otherwise
    valid value) reports every bad field at once."""
    if not isinstance(raw, dict):
        return [f"{place or '(top level)'}: expected a table, got {type(raw).__name__}"]
    problems = []
    for key, value in raw.items():
        try:
            msgspec.convert({**base, key: value}, typ, strict=False)
        except msgspec.ValidationError as exc:
            problems.append(_place(exc, place))
    return problems


def _auth_problems(kind: str, auth: Any, place: str, credentials: creds.Credentials) -> list[str]:
    if isinstance(auth, dict):
        auth, unknown = creds.resolve(auth, credentials, f"{place}.auth")
        if unknown:
            return unknown
    try:
        registry.decode_auth(kind, auth)
    except msgspec.ValidationError as exc:
        return [_place(exc, f"{place}.auth")]
    except ValueError as exc:  # an Auth struct's own cross-field check
        return [f"{place}.auth: {exc}"]
    return []


def validate_site(raw: Any, place: str = "site", allowed_hosts: list[str] | None = None,
                  credentials: creds.Credentials | None = None, *, by_name_only: bool = False) -> SiteConfig:
    """Decode and check one site (as TOML or JSON gives it); raises ConfigError. Its URL and
    token URL must name a host in ``allowed_hosts`` (the operator's ``allowed_site_hosts``;
    empty: any) and never a link-local or metadata address. The credentials its ``auth``
    names must be among ``credentials`` and allow every host the site sends them to;
    ``by_name_only`` (the admin API) refuses files and variables named directly."""
    credentials = credentials or {}
    problems: list[str] = []
    auth_raw = raw.get("auth") if isinstance(raw, dict) else None
    if by_name_only and isinstance(auth_raw, dict) and (direct := creds.source_fields(auth_raw)):
        declared = ", ".join(sorted(credentials)) or "none are declared"
        problems = [
            f"{place}.auth.{key}: name a credential the operator declared in the config file "
            f"({key.rsplit('_', 1)[0]}_credential = NAME; declared: {declared}); files and variables "
            "are not accepted here" for key in direct]
    if isinstance(raw, dict) and isinstance(raw.get("file_roots"), list):
        # the old form (one list for every project) let any project read and write any other's
        raise ConfigError([f"{place}.file_roots: give the roots per project, as "
                           "{ project = [\"/dir\", ...] } (\"*\" for directories every project may share)"])
    try:
        site = msgspec.convert(raw, SiteConfig, strict=False)
    except msgspec.ValidationError as exc:
        problems += _each_field(raw, SiteConfig, _MINIMAL_SITE, place) or [_place(exc, place)]
        kind = raw.get("kind") if isinstance(raw, dict) else None
        auth_checked = any(p.startswith(f"{place}.auth") for p in problems)
        if isinstance(kind, str) and kind in registry.KNOWN_KINDS and not auth_checked:
            problems += _auth_problems(kind, raw.get("auth", {}), place, credentials)
        raise ConfigError(problems) from None
    auth_problems = [] if problems else _auth_problems(site.kind, site.auth, place, credentials)
    problems += auth_problems or creds.binding_problems(site.kind, site.url, site.auth, credentials, f"{place}.auth")
    if site.api_version is not None:
        try:
            registry.check_api_version(site.kind, site.api_version)
        except ValueError as exc:
            problems.append(f"{place}.api_version: {exc}")
    if len(set(site.systems)) != len(site.systems):
        problems.append(f"{place}.systems: a system is listed twice")
    problems += _url_problems(site.url, place)
    for field, url in (("url", site.url), ("auth.token_url", site.auth.get("token_url"))):
        if isinstance(url, str) and (why := site_hosts.url_problem(url, allowed_hosts or [])):
            problems.append(f"{place}.{field}: {why}")
    for project, dirs in site.file_roots.items():
        for i, root in enumerate(dirs):
            if not root.startswith("/") or ".." in root.split("/") or "\x00" in root:
                problems.append(f"{place}.file_roots.{project}[{i}]: must be an absolute path without '..'")
    for system, prof in site.profiles.items():
        if system not in site.systems:
            problems.append(f"{place}.profiles.{system}: not one of the site's systems ({', '.join(site.systems)})")
        problems += profiles.problems(prof, f"{place}.profiles.{system}")
    if problems:
        raise ConfigError(problems)
    roots = {p: [posixpath.normpath(r) for r in dirs] for p, dirs in site.file_roots.items()}
    return msgspec.structs.replace(site, file_roots=roots) if roots != site.file_roots else site


def _url_problems(url: str, place: str) -> list[str]:
    """Only http/https URLs with a host; credentials belong in ``auth``, never in a URL
    (a URL is shown to every viewer)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return [f"{place}.url: must be an http:// or https:// URL"]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"{place}.url: must be an http:// or https:// URL with a host"]
    if parts.username is not None or parts.password is not None:
        return [f"{place}.url: must not hold credentials; name where they are in auth"]
    return []


def _credentials(raw: Any) -> tuple[dict[str, CredentialSource], list[str]]:
    """The ``[credentials.NAME]`` tables, each problem named by its credential (msgspec would
    say ``credentials[...]``)."""
    if not isinstance(raw, dict):
        return {}, ["credentials: expected a table of [credentials.NAME] tables"]
    out: dict[str, CredentialSource] = {}
    problems = []
    for name, table in raw.items():
        place = f"credentials.{name}"
        try:
            msgspec.convert(name, CredentialName)
        except msgspec.ValidationError:
            problems.append(f"{place}: a credential's name is lower-case letters, digits, '.', '_' or '-', "
                            "starting with a letter (at most 64)")
            continue
        try:
            out[name] = msgspec.convert(table, CredentialSource, strict=False)
        except msgspec.ValidationError as exc:
            problems.append(_place(exc, place))
    return out, problems


def validate(raw: dict[str, Any], source: str | None = None) -> Settings:
    problems: list[str] = []
    sites_raw = raw.get("sites", [])
    base = {k: v for k, v in raw.items() if k not in ("sites", "credentials")}
    try:
        settings = msgspec.convert(base, Settings, strict=False)
    except msgspec.ValidationError as exc:
        problems.extend(_each_field(base, Settings, {}, "") or [_place(exc)])
        settings = Settings()
    if "redis_url" in raw and "redis_url_file" in raw:
        problems.append("redis_url_file: give redis_url or redis_url_file, not both")
    elif isinstance(raw.get("redis_url"), str) and (why := url_problem(raw["redis_url"])):
        problems.append(f"redis_url: {why}")
    sites: list[SiteConfig] = []
    if not isinstance(sites_raw, list):
        problems.append("sites: expected an array of tables ([[sites]])")
        sites_raw = []
    explicit, cred_problems = _credentials(raw.get("credentials", {}))
    problems += cred_problems
    settings = msgspec.structs.replace(settings, credentials=explicit)
    declared = dict(explicit)
    for i, item in enumerate(sites_raw):
        try:
            site = validate_site(item, f"sites[{i}]", settings.allowed_site_hosts, settings.credentials)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        # a file or variable written in the site itself is the operator's declaration too:
        # it becomes a credential bound to this site's hosts, and the site names it
        auth, inline = creds.declare_inline(site.name, site.kind, site.url, site.auth)
        for name in sorted(inline.keys() & declared.keys()):
            problems.append(f"sites[{i}].auth: the credential {name!r} it declares is also in [credentials]")
        declared.update(inline)
        sites.append(msgspec.structs.replace(site, auth=auth) if inline else site)
    names = [s.name for s in sites]
    raw_names: list[str] = [
        item["name"] for item in sites_raw if isinstance(item, dict) and isinstance(item.get("name"), str)
    ]
    for name in sorted({n for n in raw_names if raw_names.count(n) > 1}):
        problems.append(f"sites: the name {name!r} is used by more than one site")
    for i, tok in enumerate(settings.tokens):
        given = [x for x in (tok.token, tok.sha256, tok.file, tok.env) if x]
        if len(given) != 1:
            problems.append(f"tokens[{i}] ({tok.name}): give exactly one of token, sha256, file, env")
    problems += _weak_token_problems(settings.tokens)
    problems += _history_problems(settings.history)
    for name in settings.placement.priority:
        if name not in names and not any(p.startswith("sites[") for p in problems):
            problems.append(f"placement.priority: no site is named {name!r}")
    if problems:
        raise ConfigError(problems, source)
    return msgspec.structs.replace(settings, sites=sites, credentials=declared, source=source)


# Tokens anyone would try first (and the example values this project's docs once carried):
# refused as a `token`, and as the `sha256` of one, so a copied example never guards a broker.
_WEAK_WORDS = (
    "", "test", "testing", "password", "passw0rd", "admin", "administrator", "root", "secret", "token",
    "changeme", "change_me", "change-me", "letmein", "welcome", "default", "example", "demo", "superfed",
    "viewer", "submitter", "123456", "12345678", "123456789", "1234567890", "qwerty", "hunter2", "foo", "bar",
    "sf_demo_viewer_change_me", "sf_demo_submitter_change_me", "sf_demo_admin_change_me",
)
WEAK_DIGESTS = frozenset(hashlib.sha256(w.encode()).hexdigest() for w in _WEAK_WORDS)
MIN_TOKEN_LENGTH = 16


def weak_token(value: str) -> str | None:
    """Why a literal token value is too easy to guess, or None."""
    if hashlib.sha256(value.encode()).hexdigest() in WEAK_DIGESTS or "change_me" in value or "changeme" in value:
        return ("is a well-known example value; make one with "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if len(value) < MIN_TOKEN_LENGTH:
        return f"is shorter than {MIN_TOKEN_LENGTH} characters; make a long random one"
    return None


def _weak_token_problems(tokens: list[TokenConfig]) -> list[str]:
    problems = []
    for i, tok in enumerate(tokens):
        if tok.token is not None and (why := weak_token(tok.token)):
            problems.append(f"tokens[{i}].token ({tok.name}): {why}")
        if tok.sha256 is not None and tok.sha256 in WEAK_DIGESTS:
            problems.append(f"tokens[{i}].sha256 ({tok.name}): is the digest of a well-known example value "
                            "(such as 'test'); make a long random token and give its SHA-256")
    return problems


def load(path: str | Path) -> Settings:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"cannot read the file: {exc.strerror}"], str(path)) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(path)) from None
    settings = validate(raw, str(path))
    return _resolve_relative(settings, path.parent)


def _resolve_relative(settings: Settings, base: Path) -> Settings:
    """Secret files named relative to the config file are read relative to it."""
    credentials = {
        name: msgspec.structs.replace(c, file=str((base / c.file).resolve()))
        if c.file and not Path(c.file).expanduser().is_absolute()
        else c
        for name, c in settings.credentials.items()
    }
    tokens = [
        msgspec.structs.replace(t, file=str((base / t.file).resolve()))
        if t.file and not Path(t.file).expanduser().is_absolute()
        else t
        for t in settings.tokens
    ]
    settings = msgspec.structs.replace(settings, credentials=credentials, tokens=tokens,
                                       history=_history_url(settings.history, base))
    if settings.redis_url_file:
        settings = _read_redis_url(settings, base)
    return settings


def _read_redis_url(settings: Settings, base: Path) -> Settings:
    """``redis_url`` from the file ``redis_url_file`` names (relative: to the config file)."""
    path = Path(settings.redis_url_file or "").expanduser()
    path = path if path.is_absolute() else (base / path).resolve()
    try:
        url = path.read_text().strip()
    except OSError as exc:
        raise ConfigError([f"redis_url_file: cannot read {path}: {exc.strerror}"], settings.source) from None
    if why := url_problem(url):
        raise ConfigError([f"redis_url_file: the URL in {path} {why}"], settings.source)
    return msgspec.structs.replace(settings, redis_url=url, redis_url_file=str(path))


def _history_url(h: HistoryConfig, base: Path) -> HistoryConfig:
    """The history database next to the config file by default; a relative SQLite path is the
    config file's directory's (as secret files are)."""
    if not h.url:
        return msgspec.structs.replace(h, url=f"sqlite://{(base / 'history.db').resolve()}")
    if h.url.startswith("sqlite:") and not h.url.startswith("sqlite:/"):
        return msgspec.structs.replace(h, url=f"sqlite://{(base / h.url[len('sqlite:'):]).resolve()}")
    return h
