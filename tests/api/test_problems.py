"""Every error is one RFC 9457 document on the wire (broker/api/problems.py): its fields in one
order, `instance` the request's path, `errors` only when there are some, the headers each kind
needs, never a traceback; whether the API raised it or Litestar, the auth or Redis did."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar import get
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException, ValidationException
from litestar.params import FromPath
from litestar.testing import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker.api.problems import ApiError, FieldError
from broker.app import create_app
from tests.api.conftest import auth, settings_for


def _watch_lost_context() -> WatchError:
    """What redis-py raises when the connection of a WATCHing pipeline drops (intake's
    idempotent path, at a Redis or Sentinel failover): a WatchError raised while handling the
    ConnectionError."""
    exc = WatchError("A ConnectionError occurred while watching one or more keys")
    exc.__context__ = RedisConnectionError("Connection closed by server.")
    return exc


RAISED: dict[str, BaseException] = {
    "api": ApiError(409, "Conflict", "busy", headers={"Retry-After": "1"}),
    "fields": ApiError(422, "Validation failed", "a: b",
                       errors=[FieldError(field="a", message="b", source="body"), FieldError(field="c", message="d")]),
    "redis": RedisConnectionError("refused"),
    "redis-slow": RedisTimeoutError("timed out"),
    "watch-lost": _watch_lost_context(),
    "watch-bug": WatchError("Watched variable changed."),
    "readonly": ReadOnlyError("You can't write against a read only replica."),
    "deep": RecursionError(),
    "bug": RuntimeError("a secret in the message"),
    "no-token": NotAuthorizedException("nope"),
    "denied": PermissionDeniedException("no"),
    "teapot": HTTPException(status_code=418),
    "params": ValidationException("bad", extra=[{"key": "q", "message": "m", "source": "query"}]),
}


@get("/probe/{kind:str}", sync_to_thread=False, include_in_schema=False)
def probe(kind: FromPath[str]) -> None:
    raise RAISED[kind]


@pytest.fixture
def client(clean_redis: str) -> Iterator[TestClient]:
    app = create_app(settings_for(clean_redis))
    app.register(probe)  # outside /api/v1: any token, no role
    with TestClient(app) as c:
        yield c


def _type(status: int) -> str:
    return f"https://superfed.dev/problems/{status}"


@pytest.mark.parametrize(("kind", "status", "title", "detail", "headers"), [
    ("api", 409, "Conflict", "busy", {"retry-after": "1"}),
    ("redis", 503, "Service unavailable", "the job store (Redis) is not reachable; try again shortly",
     {"retry-after": "2"}),
    ("redis-slow", 503, "Service unavailable", "the job store (Redis) is not reachable; try again shortly",
     {"retry-after": "2"}),
    ("watch-lost", 503, "Service unavailable", "the job store (Redis) is not reachable; try again shortly",
     {"retry-after": "2"}),
    ("readonly", 503, "Service unavailable", "the job store (Redis) is not reachable; try again shortly",
     {"retry-after": "2"}),
    ("watch-bug", 500, "Internal error", "the broker failed to handle this request; it has been logged", {}),
    ("deep", 400, "Invalid request", "the JSON body is nested too deeply (or is otherwise too deep to read)", {}),
    ("bug", 500, "Internal error", "the broker failed to handle this request; it has been logged", {}),
    ("no-token", 401, "Not authenticated", "nope", {"www-authenticate": 'Bearer realm="superfed"'}),
    ("denied", 403, "Forbidden", "no", {}),
    ("teapot", 418, "Error", "I'm a Teapot", {}),
])
def test_each_error_is_one_problem_document(client: TestClient, kind: str, status: int, title: str, detail: str,
                                            headers: dict[str, str]) -> None:
    r = client.get(f"/probe/{kind}", headers=auth("viewer"))
    assert r.status_code == status and r.headers["content-type"] == "application/problem+json"
    assert r.json() == {"type": _type(status), "title": title, "status": status, "detail": detail,
                        "instance": f"/probe/{kind}"}
    assert {k: r.headers.get(k) for k in headers} == headers
    assert "secret" not in r.text and "Traceback" not in r.text


def test_the_fields_and_their_order(client: TestClient) -> None:
    r = client.get("/probe/fields", headers=auth("viewer"))
    assert r.text == (
        '{"type":"https://superfed.dev/problems/422","title":"Validation failed","status":422,"detail":"a: b",'
        '"errors":[{"field":"a","message":"b","source":"body"},{"field":"c","message":"d"}],'
        '"instance":"/probe/fields"}')


def test_a_bad_parameter_is_a_400_naming_it_and_where_it_is(client: TestClient) -> None:
    r = client.get("/api/v1/jobs?limit=0", headers=auth("viewer"))
    assert r.status_code == 400
    assert r.json() == {"type": _type(400), "title": "Invalid request", "status": 400,
                        "detail": "limit: Expected `int` >= 1", "instance": "/api/v1/jobs",
                        "errors": [{"field": "limit", "message": "Expected `int` >= 1", "source": "query"}]}
    assert client.get("/probe/params", headers=auth("viewer")).json()["errors"] == [
        {"field": "q", "message": "m", "source": "query"}]


def test_a_bad_body_is_a_422_naming_each_field(client: TestClient) -> None:
    r = client.post("/api/v1/jobs", json={"project": "p", "spec": {"executable": 3}}, headers=auth("submitter"))
    assert r.status_code == 422 and r.json()["title"] == "Validation failed"
    assert r.json()["errors"] == [{"field": "spec.executable", "message": "Expected `str`, got `int`",
                                   "source": "body"}]


def test_litestar_s_own_errors_are_problems_too(client: TestClient) -> None:
    r = client.patch("/api/v1/jobs", headers=auth("admin"))
    assert r.status_code == 405 and r.json()["title"] == "Method not allowed" and "GET" in r.headers["allow"]
    r = client.get("/api/v1/nope", headers=auth("admin"))
    assert r.json() == {"type": _type(404), "title": "Not found", "status": 404, "detail": "Not Found",
                        "instance": "/api/v1/nope"}
    r = client.post("/api/v1/jobs", content=b"{not json", headers=auth("submitter"))
    assert r.status_code == 400 and r.json()["title"] == "Bad request"
    r = client.get("/api/v1/jobs")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="superfed"'
    assert r.json()["detail"] == "send Authorization: Bearer <token>"
