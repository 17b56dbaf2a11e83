"""Tokens: the OIDC client-credentials endpoint (Keycloak's shape), bearer checks (FirecREST v2's).

FirecREST v2 (``lib/auth/authN/OIDC_token_auth.py``) answers 401 with "Not authenticated",
"Access token expired", "Access token is invalid." and, for a token with under
``minTokenTtl`` (30 s) left, "Access token expires too soon (less than 30s remaining).".
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from litestar import Request, Response, post

from simulators.common.control import facility_of
from simulators.common.facility import Facility, TokenError
from simulators.firecrest.errors import FirecrestError

MIN_TOKEN_TTL = 30  # seconds a token must still live for FirecREST v2 to accept it

_TOKEN_MESSAGES = {
    "missing": "Not authenticated",
    "invalid": "Access token is invalid.",
    "expired": "Access token expired",
    # a JWT cannot be revoked; a key rotation makes the signature check fail instead
    "revoked": "Access token is invalid.",
}


def authenticate(request: Request[Any, Any, Any], facility: Facility) -> str:
    """The caller's user name, or a 401 in FirecREST's shape."""
    try:
        claims = facility.verify_token(request.headers.get("authorization"))
    except TokenError as exc:
        raise FirecrestError(
            401, _TOKEN_MESSAGES.get(exc.reason, "Access token is invalid.")
        ) from None
    exp = claims.get("exp")
    if exp is not None and exp - facility.clock() < MIN_TOKEN_TTL:
        raise FirecrestError(
            401, f"Access token expires too soon (less than {MIN_TOKEN_TTL}s remaining)."
        )
    return facility.settings.user


def _oidc_error(status: int, error: str, description: str) -> Response[dict[str, str]]:
    return Response(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _client_credentials(
    request: Request[Any, Any, Any], form: dict[str, str]
) -> tuple[str | None, str | None]:
    """client_secret_basic (Authorization: Basic) or client_secret_post (form fields)."""
    header = request.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        cid, _, secret = raw.partition(":")
        return unquote_plus(cid), unquote_plus(secret)
    return form.get("client_id"), form.get("client_secret")


@post("/auth/token", status_code=200, include_in_schema=False)
async def token_endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
    """Keycloak's ``/protocol/openid-connect/token`` for the client-credentials grant."""
    facility = facility_of(request)
    body = (await request.body()).decode(errors="replace")
    form = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
    grant = form.get("grant_type")
    if not grant:
        return _oidc_error(400, "invalid_request", "Missing form parameter: grant_type")
    if grant != "client_credentials":
        return _oidc_error(400, "unsupported_grant_type", "Unsupported grant_type")
    client_id, secret = _client_credentials(request, form)
    s = facility.settings
    if not client_id or (s.client_id is not None and client_id != s.client_id):
        return _oidc_error(401, "invalid_client", "Invalid client or Invalid client credentials")
    wrong_secret = s.client_secret is not None and not hmac.compare_digest(
        (secret or "").encode(), s.client_secret.encode()
    )
    if wrong_secret or not facility.credentials_valid:
        return _oidc_error(
            401, "unauthorized_client", "Invalid client or Invalid client credentials"
        )
    token, ttl = facility.issue_token(
        f"service-account-{client_id}",
        extra={
            "preferred_username": s.user,
            "clientId": client_id,
            "scope": "profile firecrest email",
        },
    )
    return Response(
        {
            "access_token": token,
            "expires_in": ttl,
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "profile firecrest email",
        },
        status_code=200,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
