"""A running SF API simulator with a fresh RSA client key, shared by the sfapi tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from simulators.common.facility import SimSettings
from simulators.sfapi import create_app
from tests.support.servers import ThreadedServer, free_port

CLIENT_ID = "abcdefghijklm"  # sfapi_client wants 13 characters
USER = "elvis"
HOME = f"/global/homes/{USER[0]}/{USER}"


def rsa_keypair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass
class SfapiSim:
    url: str
    private_pem: str
    settings: SimSettings

    @property
    def api(self) -> str:
        return f"{self.url}/api/v1.2"

    @property
    def token_url(self) -> str:
        return f"{self.url}/c2id/token"

    def control(self, what: str, body: dict[str, object] | None = None) -> httpx.Response:
        r = httpx.post(f"{self.url}/_sim/{what}", json=body or {}, timeout=10)
        r.raise_for_status()
        return r


def running_sim(**overrides: object) -> Iterator[SfapiSim]:
    private, public = rsa_keypair()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = SimSettings(
        systems=["perlmutter"],
        nodes=8,
        time_scale=0.01,
        user=USER,
        client_id=CLIENT_ID,
        public_key_pem=public,
        public_url=url,
        # protocol tests submit bare scripts; Perlmutter's own rules (-C, QOS limits) are
        # tested with the rules on in tests/simulators/test_facility_rules.py
        enforce_policy=False,
    )
    for k, v in overrides.items():
        setattr(settings, k, v)
    with ThreadedServer(create_app(settings), port=port):
        yield SfapiSim(url, private, settings)
