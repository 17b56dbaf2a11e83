"""The README's tour, by the command line: the client commands against a running demo."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Broker
from tests.support.servers import superfed

pytestmark = pytest.mark.slow


def sf(b: Broker, *args: str, role: str = "submitter", stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUPERFED_URL": b.api, "SUPERFED_TOKEN": b.info["tokens"][role]}
    return subprocess.run(superfed(*args), env=env, capture_output=True, text=True, timeout=60, input=stdin)


def test_tour(broker: Broker, tmp_path: Path) -> None:
    info_keys = {"api", "dashboard", "redis", "simulators", "tokens", "config"}
    assert info_keys <= broker.info.keys() and set(broker.info["tokens"]) == {"viewer", "submitter", "admin"}
    st = sf(broker, "status")
    assert st.returncode == 0 and {"nersc", "cscs", "alcf"} <= set(st.stdout.split())
    sites = sf(broker, "sites", role="viewer")
    assert sites.returncode == 0 and "sfapi" in sites.stdout and "firecrest" in sites.stdout and "iri" in sites.stdout

    job = {
        "project": "m0001",
        "spec": {
            "name": "hello",
            "executable": "/bin/bash",
            "arguments": ["-c", "echo hi; sleep 5"],
            "resources": {"node_count": 1},
            "attributes": {"duration": 600},
        },
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    sub = sf(broker, "submit", str(path), "-q")
    assert sub.returncode == 0, sub.stderr
    jid = sub.stdout.strip()

    # --watch follows the job to its end (a bound, not a timing: it returns as soon as it is final)
    watched = sf(broker, "job", jid, "--watch", "--timeout", "50", "--json", role="viewer")
    assert watched.returncode == 0, watched.stderr
    shown: dict[str, Any] = json.loads(watched.stdout)
    assert shown["state"] == "COMPLETED" and "COMPLETED" in watched.stderr
    assert shown["placement"]["ranking"]
    assert jid in sf(broker, "jobs", role="viewer").stdout

    long = json.dumps({**job, "spec": {**job["spec"], "arguments": ["-c", "sleep 600"]}})
    lid = sf(broker, "submit", "-", "-q", stdin=long).stdout.strip()
    canceled = sf(broker, "cancel", lid)
    assert canceled.returncode == 0 and "cancel" in canceled.stdout

    # failures are one line and a non-zero status
    denied = sf(broker, "submit", str(path), role="viewer")
    assert denied.returncode != 0 and "403" in denied.stderr and "Traceback" not in denied.stderr
    missing = sf(broker, "job", "nope")
    assert missing.returncode != 0 and "404" in missing.stderr

    # the docs page works offline
    docs = httpx.get(f"{broker.api}/schema", timeout=10)
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
