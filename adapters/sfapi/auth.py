"""SF API credentials: OAuth2 client credentials with a ``private_key_jwt`` assertion.

The key comes from a file or an environment variable, as NERSC's Iris hands it out: PEM
(optionally with the client id on the first line, sfapi_client's key-file format) or JWK
JSON (``{"client_id": ..., "secret": {<JWK>}}`` or a bare JWK).  A pre-obtained access token
(``access_token_file``/``_env``) is the alternative; it cannot be refreshed.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import jwt
import msgspec

from adapters.errors import AuthFailed
from adapters.secrets import Secret, load_secret

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
NERSC_TOKEN_URLS = {
    "api.nersc.gov": "https://oidc.nersc.gov/c2id/token",
    "api-dev.nersc.gov": "https://oidc-dev.nersc.gov/c2id/token",
}


class Auth(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where the SF API client's credentials live (never the secrets themselves)."""

    client_id: str | None = None  # 13 characters; may instead head the PEM file
    token_url: str | None = None  # default: NERSC's for api.nersc.gov, else {origin}/c2id/token
    private_key_file: str | None = None
    private_key_env: str | None = None
    access_token_file: str | None = None  # alternative: a token obtained elsewhere
    access_token_env: str | None = None
    assertion_ttl: int = 300  # seconds the client assertion is valid


def default_token_url(api_url: str) -> str:
    parts = urlsplit(api_url)
    return NERSC_TOKEN_URLS.get(parts.hostname or "", f"{parts.scheme}://{parts.netloc}/c2id/token")


class ClientKey:
    """The client id and its RSA private key, read once from their configured place."""

    def __init__(self, client_id: str, key: Any):
        self.client_id = client_id
        self._key = key

    def __repr__(self) -> str:
        return f"<ClientKey {self.client_id}>"

    @classmethod
    def load(cls, auth: Auth) -> ClientKey:
        text = load_secret(
            file=auth.private_key_file, env=auth.private_key_env, what="SF API private key"
        ).reveal()
        client_id = auth.client_id
        key: Any  # an RSA key object from a JWK, or the PEM text (PyJWT takes either)
        if text.lstrip().startswith("{"):
            try:
                doc = json.loads(text)
            except ValueError:
                raise AuthFailed("SF API private key: not valid JSON (expected a JWK)") from None
            jwk = doc.get("secret", doc)
            client_id = client_id or doc.get("client_id")
            try:
                key = jwt.algorithms.RSAAlgorithm.from_jwk(
                    jwk if isinstance(jwk, str) else json.dumps(jwk)
                )
            except (ValueError, jwt.InvalidKeyError, KeyError, TypeError) as exc:
                raise AuthFailed(
                    f"SF API private key: unusable JWK ({type(exc).__name__})"
                ) from None
        else:
            first, _, rest = text.partition("\n")
            if not first.startswith("-----BEGIN"):
                client_id = client_id or first.strip()  # sfapi_client key file: id, then PEM
                text = rest
            key = text  # a PEM string: PyJWT accepts it as is
        if not client_id:
            raise AuthFailed("SF API: no client_id configured (set auth.client_id)")
        return cls(client_id.strip(), key)

    def assertion(self, token_url: str, ttl: int) -> str:
        """RS256 client assertion (RFC 7523): iss = sub = client id, aud = token URL."""
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        try:
            return jwt.encode(claims, self._key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise AuthFailed(
                f"SF API private key cannot sign ({type(exc).__name__}); is it an RSA key?"
            ) from None


def token_form(key: ClientKey, token_url: str, ttl: int) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": key.assertion(token_url, ttl),
    }


def static_token(auth: Auth) -> Secret | None:
    if auth.access_token_file or auth.access_token_env:
        return load_secret(
            file=auth.access_token_file, env=auth.access_token_env, what="SF API access token"
        )
    return None


def refusal_reason(body: bytes) -> str:
    """The OAuth2 error of a token endpoint refusal, e.g. ``invalid_client: <description>``."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace").strip() or "no reason given"
    if not isinstance(doc, dict):
        return "no reason given"
    error, desc = doc.get("error"), doc.get("error_description") or doc.get("detail")
    return ": ".join(str(p) for p in (error, desc) if p) or "no reason given"
