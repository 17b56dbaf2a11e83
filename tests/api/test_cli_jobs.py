"""``superfed jobs|job|submit`` as a newcomer uses them: the banner's API URL as SUPERFED_URL,
paging with the suggested ``--cursor``, states in any case, names in any script, and a pipe
to ``head`` that closes early."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker.app import create_app
from broker.cli import main
from broker.config import load
from tests.api.conftest import TOKENS
from tests.support.servers import ThreadedServer


@pytest.fixture
def api(clean_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    cfg = tmp_path / "superfed.toml"
    cfg.write_text(f"""
redis_url = "{clean_redis}"

[[tokens]]
name = "root"
role = "admin"
token = "{TOKENS["admin"]}"
""")
    with ThreadedServer(create_app(load(cfg))) as srv:
        monkeypatch.setenv("SUPERFED_URL", srv.url)
        monkeypatch.setenv("SUPERFED_TOKEN", TOKENS["admin"])
        yield srv.url


def _post(url: str, name: str) -> str:
    body = {"project": "m1", "spec": {"name": name, "executable": "/bin/true"}}
    r = httpx.post(f"{url}/api/v1/jobs", json=body, headers={"Authorization": f"Bearer {TOKENS['admin']}"})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def test_the_suggested_cursor_gives_the_next_page(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    ids = [_post(api, f"j{i}") for i in range(3)]  # newest first: j2, j1, j0
    assert main(["jobs", "--limit", "2"]) == 0
    out = capsys.readouterr()
    assert [line.split()[0] for line in out.out.splitlines()] == ids[:0:-1]
    hint = out.err.strip()
    assert hint.startswith("(more: --cursor ")
    cursor = hint.removeprefix("(more: --cursor ").rstrip(")")
    assert main(["jobs", "--limit", "2", "--cursor", cursor]) == 0
    out = capsys.readouterr()
    assert [line.split()[0] for line in out.out.splitlines()] == ids[:1]
    assert out.err == ""


def test_state_in_any_case_and_a_clear_refusal(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    job_id = _post(api, "j")
    assert main(["jobs", "--state", "new"]) == 0
    assert capsys.readouterr().out.split()[0] == job_id
    assert main(["jobs", "--state", "Completed"]) == 0
    assert capsys.readouterr().out == ""
    with pytest.raises(SystemExit) as exc:
        main(["jobs", "--state", "done"])
    assert exc.value.code == 2
    assert "COMPLETED" in capsys.readouterr().err  # the choices are listed


def test_the_banners_api_url_works_as_superfed_url(
    api: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = _post(api, "j")
    monkeypatch.setenv("SUPERFED_URL", f"{api}/api/v1/")
    assert main(["job", job_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == job_id


def test_names_are_printed_as_written(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    job_id = _post(api, "µ-scan→β")
    assert main(["job", job_id, "--json"]) == 0
    out = capsys.readouterr().out
    assert '"µ-scan→β"' in out and "\\u" not in out
    assert main(["job", job_id]) == 0
    assert "name:     µ-scan→β" in capsys.readouterr().out


def test_a_closed_pipe_is_not_a_traceback(api: str) -> None:
    for i in range(5):
        _post(api, f"j{i}")
    env = {**os.environ, "SUPERFED_URL": api, "SUPERFED_TOKEN": TOKENS["admin"]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker.cli", "jobs"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line, as with `| head -0`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err
