"""Issue 11: an admin mints tokens only within its own role and projects, revokes only
tokens within them, and the last admin token for every project cannot be revoked (409)."""

from __future__ import annotations

from litestar.testing import TestClient

from tests.api.conftest import auth


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _make(client: TestClient, who: dict[str, str], **body: object):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/tokens", json={"name": "t", **body}, headers=who)


def test_a_project_scoped_admin_cannot_mint_beyond_its_projects(client: TestClient) -> None:
    scoped = _make(client, auth("admin"), role="admin", projects=["m1", "m2"])
    assert scoped.status_code == 201
    sa = _bearer(scoped.json()["token"])
    for body in ({"role": "admin"}, {"role": "admin", "projects": ["*"]}, {"role": "viewer", "projects": ["*"]},
                 {"role": "submitter", "projects": ["m1", "m3"]}):
        r = _make(client, sa, **body)
        assert r.status_code == 403, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert "every project" in _make(client, sa, role="admin", projects=["*"]).json()["detail"]
    assert "m3" in _make(client, sa, role="viewer", projects=["m3"]).json()["detail"]
    # within its reach it works
    ok = _make(client, sa, role="submitter", projects=["m2"])
    assert ok.status_code == 201 and ok.json()["projects"] == ["m2"]
    assert _make(client, sa, role="admin", projects=["m1"]).status_code == 201


def test_a_scoped_admin_cannot_revoke_tokens_beyond_its_projects(client: TestClient) -> None:
    sa = _bearer(_make(client, auth("admin"), role="admin", projects=["m1"]).json()["token"])
    other = _make(client, auth("admin"), role="viewer", projects=["m2"]).json()
    mine = _make(client, sa, role="viewer", projects=["m1"]).json()
    assert client.delete(f"/api/v1/tokens/{other['id']}", headers=sa).status_code == 403
    root = next(t for t in client.get("/api/v1/tokens", headers=auth("admin")).json() if t["name"] == "a")
    assert client.delete(f"/api/v1/tokens/{root['id']}", headers=sa).status_code == 403
    assert client.delete(f"/api/v1/tokens/{mine['id']}", headers=sa).status_code == 204
    assert client.get("/api/v1/sites", headers=_bearer(other["token"])).status_code == 200  # untouched


def test_the_last_admin_for_every_project_cannot_be_revoked(client: TestClient) -> None:
    listing = client.get("/api/v1/tokens", headers=auth("admin")).json()
    root = next(t for t in listing if t["name"] == "a")
    r = client.delete(f"/api/v1/tokens/{root['id']}", headers=auth("admin"))
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "last admin token" in r.json()["detail"]
    assert client.get("/api/v1/sites", headers=auth("admin")).status_code == 200  # still works
    # a project-scoped or expiring admin does not count as a replacement ...
    _make(client, auth("admin"), role="admin", projects=["m1"])
    assert client.delete(f"/api/v1/tokens/{root['id']}", headers=auth("admin")).status_code == 409
    # ... another admin for every project does: then the first may go, and the second is the last
    second = _make(client, auth("admin"), role="admin").json()
    assert client.delete(f"/api/v1/tokens/{root['id']}", headers=_bearer(second["token"])).status_code == 204
    assert client.get("/api/v1/sites", headers=auth("admin")).status_code == 401
    r = client.delete(f"/api/v1/tokens/{second['id']}", headers=_bearer(second["token"]))
    assert r.status_code == 409 and "last admin token" in r.json()["detail"]


def test_what_a_token_may_not_grant_is_said_with_the_projects_listed() -> None:
    from broker.store.tokens import TokenRecord, beyond_reach

    admin = TokenRecord(id="tok-1", name="lab", role="admin", projects=["m1", "m2"], created_at=0.0)
    assert beyond_reach(admin, "viewer", ["*"]) == ("the token 'lab' is limited to projects m1, m2; it cannot"
                                                    " grant every project")
    assert beyond_reach(admin, "viewer", ["m1", "m3", "m4"]) == "the token 'lab' may not act for project(s) m3, m4"
    assert beyond_reach(admin, "viewer", ["m2"]) is None
