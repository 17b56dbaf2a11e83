"""The authentication middleware guards every route that is not excluded, including one outside
``/api/`` (which takes Litestar's general path, ``BearerAuth.authenticate_request``): no token or
a wrong one is 401 and counts as a failed authentication, a good one is let through as its
token's record."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get
from litestar.testing import TestClient

from broker.app import create_app
from tests.api.conftest import TOKENS, auth, settings_for


@get("/private", sync_to_thread=False)
def private(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return {"name": request.user.name, "role": request.user.role, "auth": request.auth}


def _client(redis_url: str, **api: object) -> TestClient:
    s = settings_for(redis_url)
    app = create_app(msgspec.structs.replace(s, api=msgspec.structs.replace(s.api, **api)))
    app.register(private)
    return TestClient(app)


def test_a_route_outside_the_api_needs_a_token_too(clean_redis: str) -> None:
    with _client(clean_redis) as c:
        r = c.get("/private")
        assert r.status_code == 401 and "Authorization: Bearer" in r.json()["detail"]
        r = c.get("/private", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert r.status_code == 401  # another scheme is no bearer token
        r = c.get("/private", headers={"Authorization": "Bearer not-a-token-000000"})
        assert r.status_code == 401 and "unknown, revoked or expired" in r.json()["detail"]
        ok = c.get("/private", headers=auth("submitter"))
        assert ok.status_code == 200
        body = ok.json()
        assert (body["name"], body["role"]) == ("s", "submitter") and body["auth"]
        assert TOKENS["submitter"] not in ok.text  # the secret is not kept on the request


def test_failures_there_are_throttled_like_the_apis(clean_redis: str) -> None:
    with _client(clean_redis, auth_failures_per_minute=3) as c:
        codes = [c.get("/private", headers={"Authorization": f"Bearer wrong-{i}-0000000000"}).status_code
                 for i in range(5)]
        assert codes[:3] == [401, 401, 401] and 429 in codes[3:]
        r = c.get("/private", headers=auth("viewer"))  # from the same address, even a good token waits
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert "too many failed authentications" in r.json()["detail"]
        assert r.json()["title"] == "Too many requests" and r.json()["status"] == 429
