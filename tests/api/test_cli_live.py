"""The CLI's newer verbs against a real broker: following a job (``job --watch``, ``submit
--wait``), ``logs``, ``site drain|enable``, ``audit``, ``files``, ``--json`` for scripts, the
global flags, colour only on a terminal, and the completion script."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from broker import cli_output
from broker.cli import build_parser, main
from broker.cli_completion import script
from tests.api.live_broker import ADMIN, ROOT, Broker, job_body, live

__all__ = ["live"]

ANSI = re.compile(r"\033\[[0-9;]*m")


def _submit(live: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str], **spec: str) -> str:
    f = tmp_path / "job.json"
    f.write_text(json.dumps(job_body("cli", **spec)))
    assert main(["submit", str(f), "-q"]) == 0
    return capsys.readouterr().out.strip()


def _finish_when_seen(live: Broker, final: str) -> threading.Thread:
    """The facility's side: once the broker holds a NEW job, it runs and ends ``final``."""

    def go() -> None:
        import time

        for _ in range(3000):  # a bound, not a timing: the CLI submits within it
            new = live.tasks.in_state("NEW")
            if new:
                jid = next(iter(new))
                live.advance(jid, "QUEUED", site="alcf")
                live.advance(jid, "ACTIVE")
                live.advance(jid, final, exit_code=0 if final == "COMPLETED" else 3)
                return
            time.sleep(0.01)

    t = threading.Thread(target=go)
    t.start()
    return t


def test_submit_wait_follows_the_job_to_its_end(live: Broker, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "job.json"
    f.write_text(json.dumps(job_body("w")))
    t = _finish_when_seen(live, "COMPLETED")
    assert main(["submit", str(f), "--wait", "--json"]) == 0
    t.join()
    out = capsys.readouterr()
    assert json.loads(out.out)["state"] == "COMPLETED"
    assert "NEW" in out.err and "COMPLETED" in out.err  # the progress, a line per move off a terminal
    t = _finish_when_seen(live, "FAILED")
    assert main(["submit", str(f), "--wait"]) == 1  # a job that did not complete is a failure for `&&`
    t.join()
    assert "FAILED exit=3" in capsys.readouterr().out


def test_job_watch_and_its_timeout(live: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jid = _submit(live, tmp_path, capsys)
    assert main(["job", jid, "--watch", "--timeout", "0"]) == 1
    err = capsys.readouterr().err
    assert "still NEW" in err and err.count("\n") == 2  # the one progress line, then the reason
    t = _finish_when_seen(live, "COMPLETED")
    assert main(["job", jid, "--watch"]) == 0
    t.join()
    assert capsys.readouterr().out.split()[:2] == [jid, "COMPLETED"]


def test_logs_reads_the_jobs_stdout_at_its_site(live: Broker, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    jid = _submit(live, tmp_path, capsys, stdout_path="out.txt", stderr_path=f"{ROOT}/err.txt", directory=ROOT)
    assert main(["logs", jid]) == 1
    assert "no site yet" in capsys.readouterr().err
    live.advance(jid, "QUEUED", site="alcf")
    (tmp_path / "out").write_text("hello from the job\n")
    assert main(["files", "put", "alcf", f"{ROOT}/out.txt", str(tmp_path / "out"), "--project", "m1"]) == 0
    capsys.readouterr()
    assert main(["logs", jid]) == 0  # a relative stdout_path is the job's directory's
    assert capsys.readouterr().out == "hello from the job\n"
    assert main(["logs", jid, "--stderr"]) == 1  # not written: the facility's 404, in one line
    assert "404" in capsys.readouterr().err


def test_files_and_site_admin_verbs(live: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.txt"
    src.write_bytes(b"data\n")
    assert main(["files", "put", "alcf", f"{ROOT}/in.txt", str(src), "--project", "m1"]) == 0
    assert main(["files", "ls", "alcf", ROOT, "--project", "m1", "--json"]) == 0
    out = capsys.readouterr().out
    assert "in.txt" in [e["name"] for e in json.loads(out[out.index("["):])]
    assert main(["files", "get", "alcf", f"{ROOT}/in.txt", "--project", "m1", "-o", str(tmp_path / "back")]) == 0
    assert (tmp_path / "back").read_bytes() == b"data\n"
    assert main(["files", "get", "alcf", "/etc/passwd", "--project", "m1"]) == 1
    assert "403" in capsys.readouterr().err

    assert main(["site", "drain", "alcf"]) == 0
    assert "alcf: draining" in capsys.readouterr().out
    assert main(["sites"]) == 0
    assert "draining" in capsys.readouterr().out
    assert main(["site", "enable", "alcf", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["draining"] is False
    assert main(["audit"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in lines[:3]] == ["site.enable", "site.drain", "file.write"]
    assert main(["site", "drain", "nowhere"]) == 1
    assert "404" in capsys.readouterr().err


def test_json_on_the_listing_commands_and_the_global_flags(live: Broker, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    jid = _submit(live, tmp_path, capsys)
    monkeypatch.delenv("SUPERFED_URL")
    monkeypatch.delenv("SUPERFED_TOKEN")
    assert main(["jobs"]) == 1
    assert "SUPERFED_TOKEN or pass --token" in capsys.readouterr().err
    flags = ["--url", live.url, "--token", ADMIN]
    assert main([*flags, "--json", "jobs"]) == 0  # before the command
    assert [j["id"] for j in json.loads(capsys.readouterr().out)["items"]] == [jid]
    assert main(["status", *flags, "--json"]) == 0  # or after it
    assert json.loads(capsys.readouterr().out)["sites"][0]["site"] == "alcf"
    assert main(["sites", *flags, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "alcf"
    assert main(["cancel", jid, *flags, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == jid


def test_events_follows_the_stream(live: Broker, capsys: pytest.CaptureFixture[str]) -> None:
    import redis

    from broker.store.keys import Keys

    r = redis.Redis.from_url(live.settings.redis_url)
    got = threading.Event()
    msg = b'{"site":"alcf","component":"compute","state":"down","previous":"up","at":"2026-01-01T00:00:00.000Z"}'

    def publish() -> None:  # until the command has one (it subscribes when it connects)
        while not got.wait(0.05):
            r.publish(Keys(live.settings.namespace).events, msg)

    t = threading.Thread(target=publish)
    t.start()
    try:
        assert main(["events", "--count", "2", "--json"]) == 0
        assert main(["events", "--count", "1"]) == 0
    finally:
        got.set()
        t.join()
        r.close()
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["state"] for line in lines[:2]] == ["down", "down"]  # one JSON object a line
    assert lines[2] == "2026-01-01T00:00:00.000Z  alcf/compute         up -> down"


def test_a_terminal_gets_a_header_colours_and_rows_that_fit(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    rows = [["j1", "COMPLETED", "a long name " * 10], ["j2", "FAILED", "short"]]
    cli_output.table(["ID", "STATE", "NAME"], rows, colour_cols=[1])
    assert capsys.readouterr().out.splitlines() == ["j1  COMPLETED  " + ("a long name " * 10).strip(),
                                                    "j2  FAILED  short"]  # a pipe: plain, whole, no header
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "40")  # what shutil.get_terminal_size reads first
    cli_output.table(["ID", "STATE", "NAME"], rows, colour_cols=[1])
    lines = capsys.readouterr().out.splitlines()
    assert ANSI.sub("", lines[0]).split() == ["ID", "STATE", "NAME"]
    assert "\033[32mCOMPLETED" in lines[1] and "\033[31mFAILED" in lines[2]
    assert all(len(ANSI.sub("", line)) <= 40 for line in lines)
    assert ANSI.sub("", lines[1]).endswith("…")
    monkeypatch.setenv("NO_COLOR", "1")
    cli_output.table(["ID"], [["j1"]])
    assert "\033" not in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_completion_completes_commands_subcommands_and_options(tmp_path: Path) -> None:
    (tmp_path / "c.sh").write_text(script(build_parser(), "bash"))
    probe = """source c.sh
t(){ COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _superfed_complete; echo "${COMPREPLY[*]}"; }
t superfed jo; t superfed site ''; t superfed --json files g; t superfed jobs --st; t superfed submit x --w
"""
    out = subprocess.run(["bash", "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["job jobs", "--help -h drain enable", "get", "--state", "--wait"]
    assert "bashcompinit" in script(build_parser(), "zsh")


def test_version_and_help_on_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("superfed ")

    def walk(p: object, where: str) -> list[str]:
        import argparse

        assert isinstance(p, argparse.ArgumentParser)
        bare = [f"{where} {a.dest}" for a in p._actions
                if not a.help and not isinstance(a, argparse._SubParsersAction)]
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, child in a.choices.items():
                    bare += walk(child, f"{where} {name}")
        return bare

    assert walk(build_parser(), "superfed") == []


def test_projects_shows_each_projects_allocation_per_site(live: Broker,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["projects", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [(p["project"], [(s["site"], s["allocated"], s["unit"]) for s in p["sites"]]) for p in found] == [
        ("m0001", [("alcf", 10000.0, "node_hours")]), ("m0002", [("alcf", 10000.0, "node_hours")])]
    assert main(["projects"]) == 0  # not a terminal: plain lines, one a project and site
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [
        ["m0001", "alcf", "10000", "0", "node_hours"], ["m0002", "alcf", "10000", "0", "node_hours"]]


def test_submit_batch_from_json_lines(live: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "jobs.jsonl"
    bad = job_body("bad", attributes={"account": "someone-else"})
    lines = [json.dumps({**job_body("l1"), "idempotency_key": "line-1"}), "", json.dumps(job_body("l2")),
             json.dumps(bad)]
    f.write_text("\n".join(lines) + "\n")
    assert main(["submit", "--batch", str(f), "-q"]) == 1  # one job refused
    out = capsys.readouterr()
    ids = out.out.split()
    assert len(ids) == 2
    assert "job 3: refused (422" in out.err and "spec.attributes.account" in out.err
    assert "2 accepted, 1 refused" in out.err
    # the line's own key: the same line again is the same job
    f.write_text(lines[0] + "\n")
    assert main(["submit", "--batch", str(f), "-q"]) == 0
    assert capsys.readouterr().out.split() == [ids[0]]
    f.write_text("{not json\n")
    assert main(["submit", "--batch", str(f)]) != 0
    assert f"{f}:1: not JSON" in capsys.readouterr().err


def test_usage_counts_finished_jobs_per_site_and_project(live: Broker, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    t = _finish_when_seen(live, "FAILED")
    _submit(live, tmp_path, capsys)
    t.join()
    assert main(["usage", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["totals"]["jobs"] == 1 and rep["totals"]["failed"] == 1
    assert [(r["site"], r["project"], r["jobs"]) for r in rep["rows"]] == [("alcf", "m1", 1)]
    assert main(["usage", "--project", "m1", "--from", "2000-01-01"]) == 0
    out = capsys.readouterr()
    lines = [line.split() for line in out.out.splitlines()]  # not a terminal: plain lines
    assert lines[0][:6] == ["alcf", "m1", "1", "0", "1", "0"] and lines[-1][:2] == ["total", "1"]
    assert "final jobs from 2000-01-01T00:00:00.000Z to now" in out.err
    assert main(["usage", "--to", "2026-11-30T12:00:00"]) == 1  # no zone: the API says so
    assert "time zone" in capsys.readouterr().err


def test_an_archived_job_shows_cancels_and_reads_its_logs_as_before(live: Broker, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the mover has taken a job out of Redis, ``job``, ``cancel`` and ``logs`` answer as
    they did: the job from the history, its output from the facility (files are never the broker's)."""
    import asyncio

    import msgspec

    from broker.app import create_app
    from broker.config import HistoryConfig
    from broker.tasks import archive
    from broker.tasks.runtime import Runtime
    from tests.support.servers import ThreadedServer

    jid = _submit(live, tmp_path, capsys, stdout_path=f"{ROOT}/archived.txt")
    for state in ("QUEUED", "ACTIVE", "COMPLETED"):
        live.advance(jid, state, **({"site": "alcf"} if state == "QUEUED" else {}))
    (tmp_path / "out").write_text("output of an archived job\n")
    assert main(["files", "put", "alcf", f"{ROOT}/archived.txt", str(tmp_path / "out"), "--project", "m1"]) == 0
    settings = msgspec.structs.replace(
        live.settings, history=HistoryConfig(url=f"sqlite://{tmp_path / 'h.db'}", retention=0.001))

    async def move() -> str:
        rt = Runtime(settings)
        try:
            assert rt.history is not None
            return await archive.Mover(rt, rt.history).run()
        finally:
            await rt.aclose()

    time.sleep(0.01)  # past the (1 ms) retention
    assert asyncio.run(move()) == "1 final jobs moved to the history"
    with ThreadedServer(create_app(settings)) as srv:
        monkeypatch.setenv("SUPERFED_URL", srv.url)
        capsys.readouterr()
        assert main(["job", jid, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "COMPLETED"
        assert main(["cancel", jid]) == 0
        assert "already COMPLETED" in capsys.readouterr().out
        assert main(["logs", jid]) == 0
        assert capsys.readouterr().out == "output of an archived job\n"
