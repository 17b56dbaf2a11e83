"""Bearer tokens, roles and project scopes.

``ROUTE_ROLES`` is the one table saying which role each route needs (by operation id); the
authentication middleware checks it for every ``/api/`` route (``role_guard``), and a test walks it.
The check is in the middleware rather than a Litestar guard: Litestar copies the route handler
for every guard call, per request."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import Receive, Scope, Send

from broker.api.authfail import AuthFailures
from broker.api.problems import ApiError
from broker.store.tokens import ROLE_RANK, TokenRecord, TokenStore

ROUTE_ROLES: dict[str, str] = {
    "listSites": "viewer",
    "getSite": "viewer",
    "getStatus": "viewer",
    "getSiteStatus": "viewer",
    "streamStatusEvents": "viewer",
    "getOverview": "viewer",
    "listJobs": "viewer",
    "getJob": "viewer",
    "createJob": "submitter",
    "createJobs": "submitter",
    "cancelJob": "submitter",
    "previewPlacement": "submitter",
    "listFiles": "viewer",
    "readFile": "viewer",
    "writeFile": "submitter",
    "listProjects": "viewer",
    "getUsage": "viewer",  # jobs and node-hours of the token's projects only (broker/api/usage.py)
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
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The common case, an /api/ request, is decided here without Litestar's general
        # bypass checks (exclude patterns, methods, route opts) or an ASGIConnection; anything
        # else (OPTIONS, docs, operations routes) takes the general path.
        path = scope["path"]
        if path.startswith("/api/") and scope.get("method") != "OPTIONS" and not _opted_out(scope):
            rec = await self._authenticate(scope["litestar_app"].state, _authorization(scope), _client(scope))
            role_check(scope["route_handler"], rec)
            scope["user"] = rec
            scope["auth"] = rec.id
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        # a route outside /api/ that is not excluded: a good token, no role (every /api/ route
        # is checked in __call__, with its role; OPTIONS Litestar does not authenticate)
        rec = await self._authenticate(connection.app.state, connection.headers.get("authorization", ""),
                                       _client(connection.scope))
        return AuthenticationResult(user=rec, auth=rec.id)

    @staticmethod
    async def _authenticate(state: Any, header: str, client: str) -> TokenRecord:
        failures: AuthFailures = state.auth_failures
        wait = failures.blocked_for(client)
        if wait:
            raise _throttled(wait)
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await _failed(failures, client, "no bearer token")
            raise NotAuthorizedException("send Authorization: Bearer <token>")
        store: TokenStore = state.tokens
        limit = state.settings.api.rate_limit_per_minute
        # one round trip: the lookup, the rate-limit count and the last-used note together
        rec, verdict = await store.authenticate(token.strip(), limit)
        if rec is None:
            await _failed(failures, client, "unknown, revoked or expired token")
            raise NotAuthorizedException("the token is unknown, revoked or expired")
        if verdict.limited:
            raise ApiError(
                429,
                "Too many requests",
                f"the token {rec.name!r} may make {limit} requests a minute; try again in {verdict.retry_after} s",
                headers={"Retry-After": str(verdict.retry_after)},
            )
        # the secret itself is not kept on the connection: nothing downstream needs it
        return rec


def _throttled(wait: int) -> ApiError:
    return ApiError(429, "Too many requests",
                    f"too many failed authentications from this address; try again in {wait} s",
                    headers={"Retry-After": str(wait)})


async def _failed(failures: AuthFailures, client: str, why: str) -> None:
    wait = await failures.failed(client, why)  # logged and counted there, never with the token
    if wait:
        raise _throttled(wait)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _authorization(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")
    return ""


def _opted_out(scope: Scope) -> bool:
    return bool(scope["route_handler"].opt.get("exclude_from_auth"))


def role_check(handler: BaseRouteHandler, user: TokenRecord) -> None:
    """The role ROUTE_ROLES names for the handler's operation, or 403 (also for a route it lacks)."""
    needed = ROUTE_ROLES.get(handler.operation_id or "")  # type: ignore[attr-defined]
    if needed is None:
        raise PermissionDeniedException("this route has no role assigned")  # fail closed
    if ROLE_RANK[user.role] < ROLE_RANK[needed]:
        raise PermissionDeniedException(f"this needs the {needed} role; the token {user.name!r} is {user.role}")


def require_project(token: TokenRecord, project: str) -> None:
    if not token.may_see(project):
        raise PermissionDeniedException(f"the token {token.name!r} may not act for project {project!r}")
