"""Mutation testing of the core modules with mutmut: how many mutants the fast tests kill.

Run (not in CI's time budget; the machine is shared, so nicely)::

    .venv/bin/pip install -q -e '.[test,mutation]'
    nice -n 15 .venv/bin/python -m bench.mutation [--modules placement,tags] [--children 2] [--report-only]
    nice -n 15 .venv/bin/python -m bench.mutation --modules submit,jobs --sample 200  # a random sample

What is mutated, and which tests may kill a mutant, is ``[tool.mutmut]`` in pyproject.toml
(the core modules; the fast tests that cover them). mutmut runs those tests once to learn
which tests reach which function, then runs each mutant against only those tests. Mutants
are copied under ``mutants/`` (git-ignored); results accumulate there, so a second run only
runs what changed.

The report (``bench/MUTATION.md``) gives, per module and overall, the share of mutants
killed, and lists every survivor with its diff and, where one has been written, the reason it
survives (``REASONS`` below: an equivalent mutant, or why no test should tell).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from bench.mutation_reasons_adapters import KILLED_BY as _ADAPTER_KILLED_BY
from bench.mutation_reasons_adapters import REASONS as _ADAPTER_REASONS

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = str(Path(sys.executable).with_name("mutmut"))
REPORT = ROOT / "bench" / "MUTATION.md"
SAMPLED = ROOT / "mutants" / "sampled.txt"  # the last sample's mutants (mutants/ is git-ignored)

# short name -> the module's dotted name (mutmut names mutants "<module>.x_<function>__mutmut_<n>")
MODULES = {
    "jobs": "broker.store.jobs",
    "placement": "broker.placement",
    "snapshot": "broker.snapshot",
    "submit": "broker.tasks.submit",
    "poll": "broker.tasks.poll",
    "cancel": "broker.tasks.cancel",
    "auth": "broker.api.auth",
    "tokens": "broker.store.tokens",
    "tags": "adapters.tags",
    "sfapi-translate": "adapters.sfapi.translate",
    "firecrest-translate": "adapters.firecrest.translate",
    "iri-translate": "adapters.iri.translate",
    "slurm": "adapters.slurm",
}

# mutant name -> why it survives (equivalent, or not worth a test: say which)
_EQ_GROUPS = ("equivalent: it changes how resources of a type the function never reports (compute"
              " resources that are not ours, untyped ones) are grouped; only filesystem, storage and"
              " login groups reach the output")
_EQ_ZIP = "equivalent: both lists are built from the same list, so zip's strict flag never matters"
_ADDED = ("killed by tests/adapters/test_translate_health_files.py, added after this run (checked by applying"
          " the mutant's diff and running that file)")
_EQ_FLOOR = "equivalent: at the boundary value both branches give the same number (0 or 1 either way)"
_ADDED_P = ("killed by tests/unit/test_placement.py::test_out_of_range_inputs_score_as_their_floor or"
            " tests/unit/test_snapshot.py::test_placement_request_carries_the_job_and_its_hints, added after"
            " this run (checked by applying the mutant's diff and running those files)")
# (snapshot.site_views was rewritten after the last run, so its survivors need reasons afresh)
REASONS: dict[str, str] = {
    **{f"broker.placement.x__score__mutmut_{n}": _EQ_FLOOR for n in (5, 10, 16, 23, 30)},
    **{f"broker.placement.x__score__mutmut_{n}": _ADDED_P for n in (3, 4, 6, 9, 11, 15, 17, 21, 29)},
    **{f"adapters.sfapi.translate.x_components_of__mutmut_{n}": _EQ_GROUPS for n in (43, 44, 46, 47)},
    **{f"adapters.sfapi.translate.x_components_of__mutmut_{n}": _EQ_ZIP for n in (69, 72, 73)},
    **{f"adapters.sfapi.translate.x__worst__mutmut_{n}": _ADDED for n in (2, 4, 6, 7, 8)},
    **{f"adapters.sfapi.translate.x_components_of__mutmut_{n}": _ADDED for n in (17, 20, 62, 75, 76, 86)},
    **{f"adapters.sfapi.translate.x__detail__mutmut_{n}": _ADDED for n in (2, 5)},
}

# -- the broker's modules ----------------------------------------------------------------------
_J = "broker.store.jobs"
_JS = f"{_J}.xǁJobStoreǁ"
_TK = "broker.store.tokens"
_TS = f"{_TK}.xǁTokenStoreǁ"
_AU = "broker.api.auth"
_PIPE = ("equivalent: the flag of a pipeline of reads (or of WATCH with an explicit MULTI, which redis-py"
         " sends whatever the flag) changes nothing the caller gets back")
_STRICT = "equivalent: a pipeline answers once per command, so zip's strict flag never matters"
_INF = "equivalent: Redis reads '+INF'/'-INF' as it reads '+inf'/'-inf'"
_NEVER_SHOWN = "equivalent: the message is never shown (the API answers its own words for a ValueError here)"
_BATCH = "equivalent for the answer: how many ids a page reads from the index at a time is speed, not what it holds"
_HEADER_CASE = "equivalent: HTTP header names are case-blind (Litestar and httpx compare them lower-cased)"
_POLLED = ("equivalent in every state that reaches it: a polled job was submitted, so its record holds at"
           " least that try; the empty forms ('{}', a missing field) never get here")
_ONE_SYSTEM = ("equivalent here: with no system named, an adapter uses the site's first (system_or_default), and"
               " the simulated sites of the fast tests have one system each")
_DEAD_FIELD = ("equivalent: ensure_safe at the top of sbatch_directives refuses every value that would fail"
               " here, and the integers cannot; the field this second check would name is never reached"
               " (directive's own check is tested directly)")
REASONS.update({
    **{f"{_J}.x_decode_cursor__mutmut_{n}": _NEVER_SHOWN for n in (15, 16, 17)},
    f"{_J}.x_decode_cursor__mutmut_5": ("equivalent: base64 decoding takes surplus '=' padding, and a cursor never"
                                        " lacks what it needs either way"),
    f"{_J}.x_decode_cursor__mutmut_12": "equivalent: job ids hold no ':', so the first and the last are the one",
    f"{_J}.x_encode_cursor__mutmut_5": ("equivalent for the broker's ids: they end in a hex digit, so a cursor's"
                                        " base64 never ends in 'X' (only the '=' are stripped either way)"),
    f"{_J}.x_job_from_hash__mutmut_113": ("equivalent: an empty attempts field was made '[]' on the line before,"
                                          " so '' never reaches this test"),
    f"{_TK}.x_config_token_digest__mutmut_7": ("equivalent: with no variable named, os.environ has neither '' nor"
                                               " 'XXXX', and the same error follows"),
    **{f"{_JS}page_rows__mutmut_{n}": _PIPE for n in (71, 72)},
    **{f"{_JS}page_rows__mutmut_{n}": _STRICT for n in (78, 81, 82)},
    f"{_JS}page_rows__mutmut_56": _INF,
    f"{_JS}page_rows__mutmut_39": "equivalent: typing.cast does nothing at run time",
    **{f"{_JS}page_rows__mutmut_{n}": ("equivalent: a batch shorter than asked for ends the index, and one that"
                                       " reaches its end is followed by an empty read that ends the walk too")
       for n in (108, 109)},
    f"{_JS}page_rows__mutmut_25": _INF,
    **{f"{_JS}page_rows__mutmut_{n}": _BATCH for n in (32, 33, 34)},
    f"{_JS}claim__mutmut_8": ("equivalent: the value of a site's assigned hash is for a person reading Redis;"
                              " the broker only counts and removes its fields"),
    **{f"{_JS}backlogs__mutmut_{n}": _PIPE for n in (3, 4)},
    **{f"{_JS}backlogs__mutmut_{n}": _STRICT for n in (11, 14, 16)},
    **{f"{_JS}throughputs__mutmut_{n}": _PIPE for n in (5, 6)},
    f"{_JS}throughputs__mutmut_15": _INF,
    f"{_JS}set_fields__mutmut_6": ("equivalent in effect: the one caller that clears the inflight mark this way"
                                   " begins a new try at once, which writes the mark afresh"),
    **{f"{_TS}all__mutmut_{n}": _PIPE for n in (1, 2)},
    **{f"{_TS}revoke__mutmut_{n}": _PIPE for n in (2, 3)},
    f"{_TK}.x_new_token__mutmut_4": "equivalent: token_urlsafe's default is 32 bytes",
    f"{_TS}create__mutmut_16": "equivalent: 'api' is the record's default source",
    **{f"{_AU}.x__throttled__mutmut_{n}": _HEADER_CASE for n in (14, 15)},
    **{f"{_AU}.xǁBearerAuthǁ_authenticate__mutmut_{n}": _HEADER_CASE for n in (59, 60)},
    f"{_AU}.x__authorization__mutmut_8": "equivalent: codec names are case-blind ('LATIN-1' is 'latin-1')",
    f"{_AU}.x__authorization__mutmut_9": ("equivalent: a missing header and 'XXXX' are both no bearer token: the"
                                          " same 401, logged with the same reason"),
    **{f"{_AU}.x__opted_out__mutmut_{n}": ("equivalent today: no /api/ route opts out of authentication (the"
                                           " operations routes that do are outside /api/ and excluded by path)")
       for n in (1, 2, 5, 6)},
    f"{_AU}.x_role_check__mutmut_4": ("equivalent: a handler without an operation id has no role either way:"
                                      " 403, fail closed"),
    **{f"broker.tasks.poll.x__count_quick_failure__mutmut_{n}": _POLLED for n in (9, 16, 18, 19)},
    "broker.tasks.poll.x__count_quick_failure__mutmut_30": ("equivalent: the boundary is a float of wall-clock"
                                                             " time, never met exactly"),
    "broker.tasks.poll.x__count_quick_failure__mutmut_34": "equivalent: outcomes.record reads ok as true or not",
    "broker.tasks.submit.x_give_up__mutmut_18": ("equivalent: a field set to null is deleted by the state"
                                                  " change, as one set to '' is"),
    "broker.tasks.submit.x__settle_everywhere__mutmut_4": ("not worth a test: only a site deleted between the"
                                                           " listing and its look-up (a race with an admin) is"
                                                           " skipped there; the mutant stops the search at it"),
    "broker.tasks.submit.x__settle_everywhere__mutmut_8": _ONE_SYSTEM,
    **{f"broker.tasks.cancel.x_run__mutmut_{n}": _ONE_SYSTEM for n in (43, 46)},
    "broker.tasks.cancel.x_run__mutmut_1": ("equivalent: cancel.run does not use its runner (a cancel sent twice is"
                                            " harmless, so cancels are not fenced)"),
    **{f"adapters.slurm.x_sbatch_directives__mutmut_{n}": _DEAD_FIELD
       for n in (11, 18, 19, 23, 30, 31, 35, 42, 43, 47, 54, 55, 59, 66, 67, 70, 76, 77, 81, 96, 97, 101, 108,
                 109, 118, 128, 129, 133, 139, 140, 158, 170, 180, 181, 185, 200, 201, 205, 211, 212, 216, 222,
                 223, 227, 233, 234, 238, 244, 245, 250, 258, 259)},
    **{f"adapters.slurm.x_sbatch_directives__mutmut_{n}": ("equivalent: ensure_safe at the top already refused"
                                                          " every custom attribute this branch refuses (the"
                                                          " broker's own, the spec's, unknown options:"
                                                          " custom_attribute_problem), so neither the test nor"
                                                          " the words of its refusal are reached")
       for n in (145, 146, 147, 151, 152, 153, 154)},
    **{f"adapters.slurm.x_sbatch_directives__mutmut_{n}": ("equivalent: the tag was checked against TAG on"
                                                          " entry (render_sbatch and every adapter), so this"
                                                          " check's field name is never shown")
       for n in (192, 198, 199)},
    **{f"adapters.slurm.x_render_sbatch__mutmut_{n}": ("equivalent: ensure_safe refused every environment name"
                                                      " that would fail here, so the field this second check"
                                                      " names is never shown") for n in (14, 20, 21)},
})

REASONS.update(_ADAPTER_REASONS)
# a survivor of a run made before the test that kills it was written (checked by putting the
# mutant's code in place and running that test): the next run counts it killed
REASONS.update({name: f"killed by {test}, written after this run (checked by applying the mutant)"
                for name, test in _ADAPTER_KILLED_BY.items() if name not in REASONS})

BUGS_MARK = "\n## Deliberate one-line bugs"
_LINE = re.compile(r"^\s+(?P<name>\S+): (?P<status>.+)$")


def module_of(mutant: str) -> str:
    return re.split(r"\.x[_ǁ]", mutant, maxsplit=1)[0]


def ensure_specs() -> Path | None:
    """Tests read the facilities' specs at ``../shared/specs`` from the tree they run in, and
    mutmut runs them from ``mutants/``: lay a link so they find them. Returns the link made."""
    link = ROOT / "shared"
    if link.exists() or not (ROOT.parent / "shared").exists():
        return None
    link.symlink_to(ROOT.parent / "shared")
    return link


def run(modules: list[str], children: int, names: list[str] | None = None) -> int:
    targets = names if names is not None else [f"{MODULES[m]}.*" for m in modules]
    return subprocess.run([MUTMUT, "run", "--max-children", str(children), *targets], cwd=ROOT).returncode


def sample(found: dict[str, str], modules: list[str], n: int, seed: int) -> list[str]:
    """``n`` of the modules' mutants not checked yet, drawn at random (``seed``): a run over
    a module's tests/tasks mutants takes seconds each, so a session may only afford a sample."""
    import random

    wanted = {MODULES[m] for m in modules}
    todo = sorted(k for k, v in found.items() if v == "not checked" and module_of(k) in wanted)
    return random.Random(seed).sample(todo, min(n, len(todo)))


def sample_section(found: dict[str, str], drawn: list[str], seed: int) -> str:
    """The sample's result, with a 95 % (Wilson) interval for the killed share of what it was
    drawn from."""
    import math

    done = [found[k] for k in drawn if found.get(k) not in ("not checked", None)]
    killed = sum(1 for st in done if st in ("killed", "timeout"))
    n = len(done)
    if not n:
        return ""
    p, z = killed / n, 1.96
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    by_module: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for k in drawn:
        if found.get(k) not in ("not checked", None):
            by_module[module_of(k)][0] += found[k] in ("killed", "timeout")
            by_module[module_of(k)][1] += 1
    rows = ", ".join(f"`{m}` {a}/{b}" for m, (a, b) in sorted(by_module.items()))
    return (f"\n## Sample of the unchecked\n\nA random sample (seed {seed}) of the mutants the full run had not"
            f" reached: {killed} of {n} killed ({100 * p:.1f} %, 95 % interval {100 * (mid - half):.1f} to "
            f"{100 * (mid + half):.1f} %); by module: {rows}. They are counted in the table above.\n")


def results() -> dict[str, str]:
    out = subprocess.run([MUTMUT, "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    found = {}
    for line in out.splitlines():
        m = _LINE.match(line)
        if m:
            found[m["name"]] = m["status"]
    return found


def report(found: dict[str, str], modules: list[str]) -> str:
    by_module: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, status in found.items():
        by_module[module_of(name)][status].append(name)
    rows = []
    total_killed = total = 0
    survivors: list[str] = []
    for short in modules:
        statuses = by_module.get(MODULES[short], {})
        killed = len(statuses.get("killed", [])) + len(statuses.get("timeout", []))
        unrun = ("not checked", "skipped", "check was interrupted by user")
        n = sum(len(v) for k, v in statuses.items() if k not in unrun)
        unchecked = sum(len(statuses.get(k, [])) for k in unrun)
        total_killed += killed
        total += n
        survivors += sorted(statuses.get("survived", []) + statuses.get("no tests", []))
        share = f"{100 * killed / n:.1f} %" if n else "-"
        rows.append(f"| `{MODULES[short]}` | {n} | {killed} | {share} |"
                    f" {len(statuses.get('survived', []))} | {len(statuses.get('no tests', []))} | {unchecked} |")
    overall = f"{100 * total_killed / total:.1f} %" if total else "-"
    out = [
        "# Mutation testing",
        "",
        f"`nice -n 15 .venv/bin/python -m bench.mutation`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, mutmut "
        f"{_mutmut_version()}. Killed = a fast test failed (or timed out) with the mutant in place;",
        "'no tests' = no selected fast test reaches the mutated function; 'not checked' = not run yet.",
        "",
        "| module | mutants | killed | killed share | survived | no tests | not checked |",
        "|---|---|---|---|---|---|---|",
        *rows,
        f"| **overall** | **{total}** | **{total_killed}** | **{overall}** | | | |",
        "",
        "## Survivors",
        "",
    ]
    out += ["Each with its status and reason; `.venv/bin/mutmut show NAME` prints its diff.", ""]
    for name in survivors:
        why = REASONS.get(name, "(no reason written yet)")
        out.append(f"- `{name}` ({found[name]}): {why}")
    return "\n".join(out) + "\n"


def _mutmut_version() -> str:
    return subprocess.run([MUTMUT, "--version"], capture_output=True, text=True).stdout.strip().split()[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", default=",".join(MODULES), help=f"comma-separated, of: {', '.join(MODULES)}")
    ap.add_argument("--children", type=int, default=2)
    ap.add_argument("--report-only", action="store_true", help="write the report from the results so far")
    ap.add_argument("--sample", type=int, default=0, help="run only this many unchecked mutants, drawn at random")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--survivors", action="store_true",
                    help="run again only the modules' survivors (after tests were added to kill them)")
    args = ap.parse_args()
    modules = [m for m in args.modules.split(",") if m]
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        ap.error(f"unknown modules: {', '.join(unknown)}")
    link = ensure_specs()
    extra = ""
    try:
        if not args.report_only:
            os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
            drawn = sample(results(), modules, args.sample, args.seed) if args.sample else None
            if drawn is not None:
                SAMPLED.write_text("\n".join(drawn) + "\n")
            if args.survivors:
                wanted = {MODULES[m] for m in modules}
                drawn = [k for k, v in results().items() if v == "survived" and module_of(k) in wanted]
            run(modules, args.children, drawn)
        found = results()
        text = report(found, list(MODULES) if args.report_only or args.sample or args.survivors else modules)
        if SAMPLED.exists():
            extra = sample_section(found, SAMPLED.read_text().split(), args.seed)
    finally:
        if link is not None:
            link.unlink()
    # the deliberate-bug results (bench/deliberate_bugs.py) are kept as they were written
    kept = REPORT.read_text().partition(BUGS_MARK)[2] if REPORT.exists() else ""
    REPORT.write_text(text + extra + (BUGS_MARK + kept if kept else ""))
    print(text.split("## Survivors")[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
