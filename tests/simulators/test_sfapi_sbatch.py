"""The simulator's pure parts: #SBATCH parsing, Slurm time formats, the mini shell."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.common.facility import SimSettings
from simulators.sfapi.commands import run_command
from simulators.sfapi.compute import submit_script
from simulators.sfapi.sbatch import (
    DirectiveError,
    format_squeue_time,
    format_time,
    parse_directives,
    parse_nodes,
    parse_time,
)
from simulators.sfapi.state import SfapiFacility


def test_directive_forms() -> None:
    script = (
        "#!/bin/bash\n"
        "#SBATCH --nodes=2 --time 01:00:00  # trailing comment\n"
        "#SBATCH -J my-job -A m0001\n"
        "#SBATCH -q regular\n"
        "#SBATCH --exclusive\n"
        "#SBATCH --comment=superfed:abc\n"
        "\n"
        "# an ordinary comment\n"
        " #SBATCH --nodes=99\n"
        "srun hostname\n"
        "#SBATCH --time=5\n"
    )
    d = parse_directives(script)
    assert d.options == {
        "nodes": "2",
        "time": "01:00:00",
        "job-name": "my-job",
        "account": "m0001",
        "qos": "regular",
        "exclusive": "",
        "comment": "superfed:abc",
    }
    assert d.body == "srun hostname\n#SBATCH --time=5\n"  # after the first command, #SBATCH is inert


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("#SBATCH --frobnicate=1", "unrecognized option '--frobnicate'"),
        ("#SBATCH -Z 1", "invalid option -- 'Z'"),
        ("#SBATCH --time", "requires an argument"),
        ("#SBATCH -N", "requires an argument"),
    ],
)
def test_directive_errors(line: str, message: str) -> None:
    with pytest.raises(DirectiveError, match=message):
        parse_directives(f"#!/bin/bash\n{line}\n")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 1800),
        ("1:30", 90),
        ("2:00:00", 7200),
        ("1-0", 86400),
        ("1-2:3", 93780),
        ("1-02:03:04", 93784),
        ("infinite", 365 * 86400),
    ],
)
def test_parse_time(text: str, seconds: int) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize("bad", ["", "abc", "1:2:3:4", "-5"])
def test_parse_time_errors(bad: str) -> None:
    with pytest.raises(DirectiveError):
        parse_time(bad)


def test_nodes_and_formats() -> None:
    assert parse_nodes("4") == 4 and parse_nodes("2-8") == 2
    with pytest.raises(DirectiveError):
        parse_nodes("lots")
    assert format_time(93784) == "1-02:03:04" and format_time(59) == "00:00:59"
    assert format_squeue_time(5) == "0:05" and format_squeue_time(3725) == "1:02:05"
    assert format_squeue_time(90000) == "1-01:00:00"


def run(f: SfapiFacility, line: str) -> tuple[dict[str, object], float]:
    return run_command(f, line, host="login01")


def test_shell() -> None:
    f = SfapiFacility(SimSettings(systems=["perlmutter"], nodes=4, user="u", uid=1))
    fs = f.fs
    f.fs.mkdir("/h", parents=True)
    f.fs.remove(f.home, recursive=True)
    f.fs.mkdir(f.home)
    assert run(f, "echo $USER $HOME")[0]["output"] == f"u {f.home}\n"
    assert run(f, "echo -n a; echo b")[0]["output"] == "ab\n"
    assert run(f, "echo x > f; echo y >> f; cat f")[0]["output"] == "x\ny\n"
    assert run(f, "false || echo rescued")[0]["output"] == "rescued\n"
    assert run(f, "false && echo never")[0] == {
        "status": "error",
        "output": "",
        "error": "",
        "exit_code": 1,
    }
    assert run(f, "touch t; ls -a")[0]["output"] == "f\nt\n"
    result, slept = run(f, "sleep 2; sleep 0.5; exit 4")
    assert (result["exit_code"], slept) == (4, 2.5)
    assert run(f, "ls | wc -l")[0]["output"] == "2\n"
    assert run(f, "rm nope")[0]["exit_code"] == 1 and run(f, "rm -f nope")[0]["exit_code"] == 0
    assert "syntax error" in str(run(f, "echo 'unclosed")[0]["error"])
    assert run(f, "")[0]["exit_code"] == 0
    assert run(f, "/usr/bin/whoami")[0]["output"] == "u\n"
    assert run(f, "ls -l f")[0]["output"].startswith("-rw-r--r-- 1 u u        4 ")  # type: ignore[union-attr]
    assert fs.read(f"{f.home}/f") == b"x\ny\n"


_lines = st.sampled_from([
    "#SBATCH --nodes=2", "#SBATCH -N 0", "#SBATCH -t 1-00", "#SBATCH --time=-1", "#SBATCH -q debug",
    "#SBATCH --qos=regular", "#SBATCH -A m0001", "#SBATCH --exclusive", "#SBATCH --comment='a b'",
    "#SBATCH -J", "#SBATCH --job-name=x y", "#SBATCH 'unterminated", "  #SBATCH -N 3", "sleep 1",
    "exit 300", "echo $HOME > out", "bash -c 'exit 2'", "", "#comment", "srun -n", "cd /nowhere",
])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_lines | st.text(max_size=20), max_size=8), st.booleans())
def test_any_script_gets_an_sbatch_answer_never_a_crash(lines: list[str], shebang: bool) -> None:
    f = SfapiFacility(SimSettings(enforce_policy=False, systems=["perlmutter"], nodes=4, time_scale=0.0))
    script = ("#!/bin/bash\n" if shebang else "") + "\n".join(lines) + "\n"
    result = submit_script(f, f.systems["perlmutter"], script, False, [])
    assert result["status"] in ("ok", "error")
    assert (result["jobid"] is None) == (result["status"] == "error")
    assert result["status"] == "ok" or str(result["error"]).startswith("sbatch: ")
    f.systems["perlmutter"].advance()  # jobs end and write their output without raising
