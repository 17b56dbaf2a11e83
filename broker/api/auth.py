"""Bearer tokens, roles and project scopes.

``ROUTE_ROLES`` is the one table saying which role each route needs (by operation id); the
guard reads it, and a test walks it."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from broker.api.problems import ApiError
from broker.store.tokens import ROLE_RANK, TokenRecord, TokenStore

ROUTE_ROLES: dict[str, str] = {
    "listSites": "viewer",
    "getSite": "viewer",
    "getStatus": "viewer",
    "getSiteStatus": "viewer",
    "streamStatusEvents": "viewer",
    "listJobs": "viewer",
    "getJob": "viewer",
    "createJob": "submitter",
    "cancelJob": "submitter",
    "previewPlacement": "submitter",
    "listFiles": "viewer",
    "readFile": "viewer",
    "writeFile": "submitter",
    "listProjects": "viewer",
    # administration (broker/api/admin.py)
    "createSite": "admin",
    "getSiteConfig": "admin",
    "replaceSite": "admin",
    "deleteSite": "admin",
    "drainSite": "admin",
    "enableSite": "admin",
    "listAudit": "admin",
    "createToken": "admin",
    "listTokens": "admin",
    "revokeToken": "admin",
}


class BearerAuth(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("send Authorization: Bearer <token>")
        store: TokenStore = connection.app.state.tokens
        limit = connection.app.state.settings.api.rate_limit_per_minute
        # one round trip: the lookup, the rate-limit count and the last-used note together
        rec, verdict = await store.authenticate(token.strip(), limit)
        if rec is None:
            raise NotAuthorizedException("the token is unknown, revoked or expired")
        if verdict.limited:
            raise ApiError(429, "Too many requests",
                           f"the token {rec.name!r} may make {limit} requests a minute; "
                           f"try again in {verdict.retry_after} s",
                           headers={"Retry-After": str(verdict.retry_after)})
        # the secret itself is not kept on the connection: nothing downstream needs it
        return AuthenticationResult(user=rec, auth=rec.id)


def role_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    needed = ROUTE_ROLES.get(handler.operation_id or "")  # type: ignore[attr-defined]
    if needed is None:
        raise PermissionDeniedException("this route has no role assigned")  # fail closed
    user: TokenRecord = connection.user
    if ROLE_RANK[user.role] < ROLE_RANK[needed]:
        raise PermissionDeniedException(f"this needs the {needed} role; the token {user.name!r} is {user.role}")


def require_project(token: TokenRecord, project: str) -> None:
    if not token.may_see(project):
        raise PermissionDeniedException(f"the token {token.name!r} may not act for project {project!r}")
