"""NERSC's OAuth2 token endpoint (Connect2id at ``/c2id/token``): client credentials with a
``private_key_jwt`` client assertion (RFC 7523), answered with a short-lived access token."""

from __future__ import annotations

from typing import Any

import jwt
import msgspec
from litestar import Request, Response, post

from simulators.sfapi.wire import fac, form

TOKEN_PATH = "/c2id/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _oauth_error(status: int, error: str, description: str) -> Response[bytes]:
    return Response(
        msgspec.json.encode({"error": error, "error_description": description}),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def expected_audience(request: Request[Any, Any, Any]) -> str:
    """The token URL clients were told: ``{public_url}/c2id/token``.  Without a configured
    public URL, the URL this request reached (a test server on a random port)."""
    public = fac(request).settings.public_url
    base = public.rstrip("/") if public else str(request.base_url).rstrip("/")
    return base + TOKEN_PATH


@post(TOKEN_PATH, status_code=200)
async def token(request: Request[Any, Any, Any]) -> Response[bytes]:
    facility = fac(request)
    settings = facility.settings
    data = {k: v[0] for k, v in (await form(request)).items()}
    if data.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported")
    assertion = data.get("client_assertion")
    if not assertion or data.get("client_assertion_type") != ASSERTION_TYPE:
        return _oauth_error(
            400, "invalid_request", "Missing client_assertion or client_assertion_type"
        )
    if not settings.public_key_pem:
        return _oauth_error(
            401, "invalid_client", "Client authentication failed: no client is registered"
        )
    audience = expected_audience(request)
    try:
        claims = jwt.decode(
            assertion,
            settings.public_key_pem,
            algorithms=["RS256"],
            audience=audience,
            options={"require": ["exp", "iss", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        return _oauth_error(
            401, "invalid_client", "Client authentication failed: the client assertion has expired"
        )
    except jwt.InvalidAudienceError:
        return _oauth_error(
            401,
            "invalid_client",
            f"Client authentication failed: bad audience, expected {audience}",
        )
    except jwt.PyJWTError as exc:
        return _oauth_error(401, "invalid_client", f"Client authentication failed: {exc}")
    client_id = claims.get("iss")
    if client_id != claims.get("sub"):
        return _oauth_error(
            401,
            "invalid_client",
            "Client authentication failed: iss and sub must both be the client id",
        )
    if settings.client_id is not None and client_id != settings.client_id:
        return _oauth_error(
            401, "invalid_client", f"Client authentication failed: unknown client {client_id}"
        )
    if not facility.credentials_valid:
        return _oauth_error(
            401,
            "invalid_client",
            "Client authentication failed: the client has expired or was revoked",
        )
    access, ttl = facility.issue_token(
        settings.user, ttl=settings.token_ttl, extra={"client_id": client_id}
    )
    return Response(
        msgspec.json.encode(
            {"access_token": access, "token_type": "Bearer", "expires_in": ttl, "scope": "red"}
        ),
        status_code=200,
        media_type="application/json",
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
