"""Deliberate one-line bugs, applied one at a time: does the fast suite catch each?

Run: ``nice -n 15 .venv/bin/python -m bench.deliberate_bugs [--only NAME,NAME] [--all-tests]``

Each bug is a textual replacement in one source file (the line as it stands today). The file is
patched in place, the fast tests that cover it run (``-m "not slow and not drill"``; with
``--all-tests`` the whole fast suite), and the file is restored whatever happens. A bug whose
line is no longer in the code (a refactor moved it) is reported as "not applied", never as
caught. Prints one line per bug and a summary; exit status 1 if any applied bug survived.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = ["-m", "not slow and not drill", "-q", "-x", "-p", "no:cacheprovider", "-W", "ignore"]


@dataclass(frozen=True)
class Bug:
    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


TASKS = ("tests/tasks",)
BUGS = (
    Bug("lua-backward", "the Lua state machine allows backward moves", "broker/store/jobs.py",
        "if moves[cur] and moves[cur][new] then", "if moves[cur] and moves[new] and new ~= cur then",
        (*TASKS, "tests/unit/test_states.py", "tests/unit/test_store_fastpaths.py")),
    Bug("lua-final-not-final", "no 'a final state is final' guard", "broker/store/jobs.py",
        "if final[cur] then return 0 end", "",
        (*TASKS, "tests/unit/test_states.py", "tests/unit/test_store_fastpaths.py")),
    Bug("active-set-kept", "finished jobs never leave the site's active set", "broker/store/jobs.py",
        "      redis.call('HDEL', ns .. ':active:' .. site, id)\n", "",
        (*TASKS, "tests/unit/test_states.py", "tests/unit/test_store_fastpaths.py", "tests/api/test_sites_admin.py")),
    Bug("absent-is-completed", "a job missing from a poll is marked COMPLETED", "broker/tasks/poll.py",
        "continue  # absence is not completion: the next poll asks again",
        "moved += await rt.jobs.advance(job_id, 'COMPLETED'); continue", TASKS),
    Bug("cancel-not-sent", "a cancel is never sent to the facility", "broker/tasks/cancel.py",
        "await adapter.cancel(job.native_id, job.system or adapter.systems[0])", "pass", TASKS),
    Bug("timeout-fails-over", "a submission timeout fails over without asking the facility for the tag",
        "broker/tasks/submit.py",
        "        except SiteTimeout as exc:\n",
        "        except SiteTimeout as exc:\n"
        "            await _failed_try(rt, job_id, name, 'retriable', str(exc)); continue  # noqa\n",
        TASKS),
    Bug("idem-not-per-token", "the Idempotency-Key is not scoped per token", "broker/api/jobs.py",
        "st.rkeys.idempotency(token.id, idempotency_key)", "st.rkeys.idempotency('', idempotency_key)",
        ("tests/api/test_idempotency.py", "tests/api/test_jobs_api.py")),
    Bug("priority-rest-by-name", "the priority strategy orders the rest by name", "broker/placement.py",
        "rest = sorted((r for r in eligible if r.site not in rank), key=_by_score)",
        "rest = sorted((r for r in eligible if r.site not in rank), key=_by_name)",
        ("tests/unit/test_placement.py",)),
    Bug("circuit-off-by-one", "the circuit opens one failure late (the status view and placement share the rule)",
        "broker/health.py",
        "return rec is not None and rec.failures >= site.circuit_threshold",
        "return rec is not None and rec.failures > site.circuit_threshold",
        ("tests/unit/test_snapshot.py", "tests/unit/test_placement.py", "tests/unit/test_health_rules.py")),
    Bug("circuit-status-off-by-one", "the status view alone opens the circuit one failure late", "broker/health.py",
        "    if circuit_open(rec, site):",
        "    if rec is not None and rec.failures > site.circuit_threshold:",
        ("tests/unit/test_snapshot.py", "tests/unit/test_health_rules.py")),
    Bug("circuit-placement-off-by-one", "placement alone sees the circuit open one failure late", "broker/snapshot.py",
        "circuit_open=circuit_open(rec, c),",
        "circuit_open=bool(rec and rec.failures > c.circuit_threshold),",
        ("tests/unit/test_snapshot.py", "tests/unit/test_placement.py")),
    Bug("tag-prefix-anywhere", "the tag prefix is matched anywhere in a comment", "adapters/tags.py",
        "if comment and comment.startswith(COMMENT_PREFIX):", "if comment and COMMENT_PREFIX in comment:",
        ("tests/adapters/test_tags.py", "tests/adapters/test_sfapi_translate.py")),
)


def run(bug: Bug, all_tests: bool) -> tuple[str, float, str]:
    path = ROOT / bug.path
    original = path.read_text()
    if bug.old not in original:
        return "not applied (line not found)", 0.0, ""
    path.write_text(original.replace(bug.old, bug.new, 1))
    try:
        t0 = time.monotonic()
        tests = [] if all_tests else [t for t in bug.tests if (ROOT / t).exists()]
        proc = subprocess.run([sys.executable, "-m", "pytest", *FAST, *tests], cwd=ROOT, capture_output=True,
                              text=True, timeout=1800)
        took = time.monotonic() - t0
    finally:
        path.write_text(original)
    failed = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if proc.returncode == 0:
        return "SURVIVED", took, ""
    if proc.returncode in (1, 2) and failed:
        return "caught", took, failed[0]
    return f"pytest exited {proc.returncode}", took, proc.stdout[-300:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated bug names")
    ap.add_argument("--all-tests", action="store_true", help="the whole fast suite per bug, not its subset")
    args = ap.parse_args()
    only = {n for n in args.only.split(",") if n}
    survived = 0
    for bug in BUGS:
        if only and bug.name not in only:
            continue
        verdict, took, by = run(bug, args.all_tests)
        survived += verdict == "SURVIVED"
        print(f"{bug.name:30} {verdict:12} {took:6.0f} s  {bug.what}" + (f"\n{'':30} by {by}" if by else ""),
              flush=True)
    print(f"deliberate bugs: {survived} survived")
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main())
