"""Issue 11 (6): facility error text was shown verbatim to viewers. Non-admin callers now see
its category and a short sanitised text (no URLs, markup, addresses or credential-looking
words, one line, bounded); admins see what was recorded."""

from __future__ import annotations

import json

import redis
from litestar.testing import TestClient

from broker.sanitise import MAX_CHARS, sanitise
from tests.api.conftest import auth

VERBATIM = ("sbatch: error: <b>Batch job submission failed</b> on login07.int.nersc.gov, see "
            "https://internal.nersc.gov/debug?session=abc123 token=eyJhbGciOi.secret mail ops@nersc.gov\n"
            "#SBATCH --account=m9999\x1b[31m" + " padding" * 40)


def test_the_sanitiser() -> None:
    out = sanitise(VERBATIM)
    assert out is not None and len(out) <= MAX_CHARS and "\n" not in out and "\x1b" not in out
    for leak in ("https://", "<b>", "ops@nersc.gov", "eyJhbGciOi", "session=abc123"):
        assert leak not in out, (leak, out)
    assert out.startswith("sbatch: error: Batch job submission failed")
    assert sanitise(None) is None and sanitise("plain words") == "plain words"


def test_viewers_see_the_sanitised_text_admins_the_record(client: TestClient, clean_redis: str) -> None:
    made = client.post("/api/v1/jobs", json={"project": "m1", "spec": {"executable": "/bin/true"}},
                       headers=auth("submitter"))
    assert made.status_code == 202
    jid = made.json()["id"]
    r = redis.Redis.from_url(clean_redis)
    attempt = {"site": "alpha", "at": "2026-11-30T00:00:00Z", "outcome": "rejected", "error": VERBATIM}
    r.hset(f"superfed:job:{jid}", mapping={"message": VERBATIM, "attempts": json.dumps([attempt])})
    for who in ("viewer", "submitter"):
        for job in (client.get(f"/api/v1/jobs/{jid}", headers=auth(who)).json(),
                    client.get("/api/v1/jobs", headers=auth(who)).json()["items"][0]):
            assert job["message"] == sanitise(VERBATIM), who
            assert job["attempts"][0]["error"] == sanitise(VERBATIM)
            assert job["attempts"][0]["outcome"] == "rejected"  # the category
    full = client.get(f"/api/v1/jobs/{jid}", headers=auth("admin")).json()
    assert full["message"] == VERBATIM and full["attempts"][0]["error"] == VERBATIM
