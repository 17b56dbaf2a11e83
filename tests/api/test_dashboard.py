"""The dashboard page and its assets (served locally, their own strict CSP), and the overview
route it reads per site."""

from __future__ import annotations

import re
import time

import msgspec
import redis
from litestar.testing import TestClient

from broker.api.overview import PROBE_TEXT
from broker.health import HealthRecord
from broker.store.keys import Keys
from tests.api.conftest import auth


def test_dashboard_page_and_assets_are_local_and_under_a_strict_policy(client: TestClient) -> None:
    page = client.get("/dashboard")  # no token: the page holds no data, it asks for one
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp and "connect-src 'self'" in csp
    html = page.text
    # no inline script (the policy would block it) and nothing from another host
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"""(src|href)=["']https?:""", html)
    refs = re.findall(r"""(?:src|href)=["'](/dashboard/assets/[^"']+)""", html)
    assert sorted(refs) == ["/dashboard/assets/dashboard.css", "/dashboard/assets/dashboard.js"]
    for ref in refs:
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert client.get("/dashboard/assets/dashboard.js").headers["content-type"].split(";")[0] in (
        "text/javascript", "application/javascript")
    # the API keeps its own, stricter policy
    api = client.get("/api/v1/status", headers=auth("viewer"))
    assert api.headers["content-security-policy"].startswith("default-src 'none'; frame-ancestors 'none'")


def _healthy(r: redis.Redis, site: str) -> None:
    now = time.time()
    rec = HealthRecord(site=site, state="up", checked_at=now, ok_at=now, latency_ms=5.0)
    r.set(Keys().health(site), msgspec.json.encode(rec))


def test_overview_counts_rates_and_placement_now(client: TestClient, clean_redis: str) -> None:
    assert client.get("/api/v1/overview").status_code == 401
    r = redis.Redis.from_url(clean_redis)
    _healthy(r, "alpha")
    # the per-site job counts the state-change script keeps (metrics family "jobs")
    r.hset(Keys().metrics("jobs"), mapping={
        "QUEUED\talpha": 2, "HELD\talpha": 1, "ACTIVE\talpha": 4, "COMPLETED\talpha": 3, "FAILED\talpha": 1,
        "CANCELED\talpha": 5, "COMPLETED\tbeta": 7,
    })
    r.close()
    doc = client.get("/api/v1/overview", headers=auth("viewer")).json()
    assert doc["probe"] == PROBE_TEXT and doc["strategy"] == "best"
    by = {s["site"]: s for s in doc["sites"]}
    a, b = by["alpha"], by["beta"]
    assert a["jobs"] == {"queued": 3, "active": 4, "completed": 3, "failed": 1, "canceled": 5}
    assert a["failure_rate"] == 0.25
    assert b["jobs"] == {"queued": 0, "active": 0, "completed": 7, "failed": 0, "canceled": 0}
    assert b["failure_rate"] == 0.0
    assert a["placement"]["eligible"] and a["placement"]["rank"] == 1 and a["placement"]["score"] > 0
    assert "compute up" in a["placement"]["reasons"][0]
    # beta was never checked: placement says so
    assert not b["placement"]["eligible"] and b["placement"]["rank"] is None
    assert any("never checked" in why for why in b["placement"]["reasons"])

    assert client.post("/api/v1/sites/alpha/drain", headers=auth("admin")).status_code == 200
    a = {s["site"]: s for s in client.get("/api/v1/overview", headers=auth("viewer")).json()["sites"]}["alpha"]
    assert not a["placement"]["eligible"]
    assert any("draining" in why for why in a["placement"]["reasons"])


def test_the_page_and_assets_ship_in_the_package() -> None:
    # a directory without __init__.py is left out of the wheel (packages.find), and with it the
    # page: only an editable install would serve it
    import tomllib
    from pathlib import Path

    from setuptools import find_packages

    root = Path(__file__).resolve().parents[2]
    conf = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "broker.dashboard" in find_packages(str(root), include=conf["packages"]["find"]["include"])
    data = conf["package-data"]["*"]
    for name in ("index.html", "dashboard.js", "dashboard.css"):
        assert (root / "broker" / "dashboard" / name).exists()
        assert "*." + name.rsplit(".", 1)[1] in data
