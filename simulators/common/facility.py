"""One simulated facility: its systems, file tree, component states, chaos and credentials."""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt

from simulators.common.files import VirtualFS
from simulators.common.scheduler import BatchSystem, Partition

COMPONENT_STATES = ("up", "degraded", "down")


@dataclass
class Chaos:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    status: int = 503
    garbage_rate: float = 0.0  # 200 answers whose body is not what the protocol says
    retry_after: int | None = None
    only: str = ""  # "submit": job submissions alone are affected; "": every protocol endpoint
    answer_delay_ms: float = 0.0  # the request is carried out at once, its answer held this long

    @property
    def active(self) -> bool:
        return bool(self.latency_ms or self.error_rate or self.garbage_rate or self.answer_delay_ms)


@dataclass
class SimSettings:
    """What ``superfed sim KIND`` is told on its command line."""

    systems: list[str]
    nodes: int = 64
    time_scale: float = 1.0
    user: str = "superfed"
    uid: int = 52000
    projects: dict[str, float] = field(default_factory=lambda: {"m0001": 10_000.0, "m0002": 10_000.0})
    partitions: list[Partition] | None = None
    token_ttl: int = 600
    # credentials the facility accepts (each simulator reads the ones it needs)
    client_id: str | None = None
    client_secret: str | None = None
    public_key_pem: str | None = None  # SF API: the client's RS256 public key
    static_tokens: list[str] = field(default_factory=list)  # IRI bearer tokens
    public_url: str | None = None  # where clients reach it, for token audiences
    # the facility's own submission rules (Perlmutter's -C, CSCS's account); off only for
    # protocol tests that submit bare scripts
    enforce_policy: bool = True


class TokenError(Exception):
    """Why a bearer token is refused: 'missing', 'invalid', 'expired' or 'revoked'."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Facility:
    def __init__(self, kind: str, settings: SimSettings, *, clock: Callable[[], float] = time.time):
        self.kind = kind
        self.settings = settings
        self.clock = clock
        self.components: dict[str, str] = {}
        self.component_notes: dict[str, str] = {}
        self.chaos = Chaos()
        self.credentials_valid = True
        self._signing_key = secrets.token_bytes(32)
        self._token_epoch = 0
        self.started_at = clock()
        self.systems: dict[str, BatchSystem] = {}
        self.fs = VirtualFS(user=settings.user)
        self.reset()

    # -- lifecycle ------------------------------------------------------------------------
    def reset(self) -> None:
        s = self.settings
        self.systems = {
            name: BatchSystem(
                name,
                nodes=s.nodes,
                partitions=[
                    Partition(p.name, p.max_nodes, p.max_walltime_s, p.default_walltime_s) for p in s.partitions
                ]
                if s.partitions
                else None,
                time_scale=s.time_scale,
                clock=self.clock,
                projects=dict(s.projects),
            )
            for name in s.systems
        }
        self.components = {"compute": "up", "filesystem": "up", "login": "up", "scheduler": "up"}
        self.component_notes = {}
        self.chaos = Chaos()
        self.credentials_valid = True
        self.fs = VirtualFS(user=s.user)

    def system(self, name: str) -> BatchSystem | None:
        return self.systems.get(name)

    # -- outages --------------------------------------------------------------------------
    def set_component(self, name: str, state: str, note: str = "") -> None:
        if state not in COMPONENT_STATES:
            raise ValueError(f"state must be one of {', '.join(COMPONENT_STATES)}")
        self.components[name] = state
        if note:
            self.component_notes[name] = note
        else:
            self.component_notes.pop(name, None)
        if name == "compute":
            for sysm in self.systems.values():
                sysm.set_compute(state)

    def component(self, name: str) -> str:
        return self.components.get(name, "up")

    def is_down(self, name: str) -> bool:
        return self.components.get(name, "up") == "down"

    # -- chaos ----------------------------------------------------------------------------
    def roll_error(self) -> bool:
        return self.chaos.error_rate > 0 and random.random() < self.chaos.error_rate

    def roll_garbage(self) -> bool:
        return self.chaos.garbage_rate > 0 and random.random() < self.chaos.garbage_rate

    # -- tokens ---------------------------------------------------------------------------
    def issue_token(
        self, subject: str, *, ttl: int | None = None, extra: dict[str, Any] | None = None
    ) -> tuple[str, int]:
        """A signed JWT (HS256, this facility's private key) and its lifetime in seconds."""
        ttl = self.settings.token_ttl if ttl is None else ttl
        now = int(self.clock())
        claims = {
            "sub": subject,
            "iat": now,
            "exp": now + ttl,
            "ep": self._token_epoch,
            "jti": secrets.token_hex(8),
            "iss": f"superfed-sim-{self.kind}",
            **(extra or {}),
        }
        return jwt.encode(claims, self._signing_key, algorithm="HS256"), ttl

    def verify_token(self, authorization: str | None) -> dict[str, Any]:
        """Claims of a valid ``Authorization: Bearer`` token, or TokenError with the reason."""
        if not authorization:
            raise TokenError("missing")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise TokenError("invalid")
        if not self.credentials_valid:
            raise TokenError("revoked")
        if token in self.settings.static_tokens:
            return {"sub": self.settings.user, "static": True}
        try:
            claims = jwt.decode(token, self._signing_key, algorithms=["HS256"], options={"verify_aud": False})
        except jwt.ExpiredSignatureError:
            raise TokenError("expired") from None
        except jwt.PyJWTError:
            raise TokenError("invalid") from None
        if claims.get("ep") != self._token_epoch:
            raise TokenError("revoked")
        return claims

    def revoke_tokens(self) -> None:
        """Every token issued so far stops working (clients must fetch new ones)."""
        self._token_epoch += 1
