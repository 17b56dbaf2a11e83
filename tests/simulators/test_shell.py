"""The simulators' shell (simulators/common/shell*.py) over a VirtualFS: bash's behaviour for
what batch scripts use, its bounds, and jobs run with the scheduler's environment."""

from __future__ import annotations

import pytest

from simulators.common import jobrun
from simulators.common.files import VirtualFS
from simulators.common.scheduler import COMPLETED, FAILED, TIMEOUT, BatchSystem
from simulators.common.shell import IO, MAX_OUTPUT, Killed, Launch, Shell, Sink


@pytest.fixture
def fs() -> VirtualFS:
    v = VirtualFS(user="u", group="u")
    v.mkdir("/h", parents=True)
    return v


def run(fs: VirtualFS, text: str, **kw: object) -> tuple[int, str, str]:
    sh = Shell(fs=fs, user="u", uid=7, home="/h", host="login01", **kw)  # type: ignore[arg-type]
    out, err = Sink(sh), Sink(sh)
    code = sh.run_script(text, IO(out, err))
    return code, out.text(), err.text()


def test_status_and_expansion(fs: VirtualFS) -> None:
    assert run(fs, "false; echo $?; true; echo $?") == (0, "1\n0\n", "")
    assert run(fs, "X=a; echo '$X' \"$X\" ${X}b ${NOPE:-dflt} ${#X}") == (0, "$X a ab dflt 1\n", "")
    assert run(fs, 'A="1 2"; for w in $A; do echo "<$w>"; done; echo "$A"')[1] == "<1>\n<2>\n1 2\n"
    assert run(fs, "echo $(echo inner) `echo tick` $((6*7))")[1] == "inner tick 42\n"
    assert run(fs, "echo a\\ b 'c  d'")[1] == "a b c  d\n"
    assert run(fs, "bash -c 'echo $0 $1 $#' name one")[1] == "name one 1\n"


def test_unknown_command_fails_like_bash(fs: VirtualFS) -> None:
    code, out, err = run(fs, "echo start\npython3 -c 'print(1)'\n")
    assert (code, out) == (127, "start\n")
    assert err == "bash: line 2: python3: command not found\n"
    assert run(fs, "nosuch || echo rescued") == (0, "rescued\n", "bash: line 1: nosuch: command not found\n")
    assert run(fs, "./missing.sh")[0] == 127


def test_lists_redirections_and_streams(fs: VirtualFS) -> None:
    assert run(fs, "false && echo no || echo yes; echo x > f; echo y >> f; cat f")[1] == "yes\nx\ny\n"
    _, out, err = run(fs, "echo out; echo err >&2; ls nope 2> e.txt; echo both &> b.txt; cat nope 2>&1")
    assert out == "out\ncat: nope: No such file or directory\n" and err == "err\n"
    assert fs.read("/h/e.txt") == b"ls: cannot access 'nope': No such file or directory\n"
    assert fs.read("/h/b.txt") == b"both\n"
    assert run(fs, "echo gone > /dev/null; echo kept")[1] == "kept\n"
    assert run(fs, "printf 'b\\na\\nb\\n' | sort -u | wc -l")[1] == "2\n"
    assert run(fs, "cat <<EOF > doc\nhi $USER\nEOF\ncat doc; cat <<'X'\n$USER\nX\n")[1] == "hi u\n$USER\n"


def test_control_flow(fs: VirtualFS) -> None:
    script = "for i in 1 2 3; do\n  if [ $i -eq 2 ]; then continue_=1; else echo n$i; fi\ndone\n"
    assert run(fs, script)[1] == "n1\nn3\n"
    assert run(fs, "n=0; while [ $n -lt 3 ]; do n=$((n+1)); done; echo $n")[1] == "3\n"
    assert run(fs, "set -e; echo a; false; echo b") == (1, "a\n", "")
    assert run(fs, "set -e; false || true; if false; then :; fi; echo ok")[1] == "ok\n"
    assert run(fs, "exit 300; echo never") == (44, "", "")
    assert run(fs, "(exit 3); echo $?; bash -c 'exit 4'; echo $?")[1] == "3\n4\n"
    assert run(fs, "if true; then echo x")[0] == 2  # fi missing: a syntax error, nothing run
    assert run(fs, "[[ ab =~ ^a ]] && echo re; [[ ab != a* ]] || echo glob")[1] == "re\nglob\n"
    assert run(fs, 'f=run.log; if [[ $f == *.log ]]; then echo glob; fi; [[ ! -d $f ]] && echo notdir')[1] == (
        "glob\nnotdir\n"
    )


def test_file_commands(fs: VirtualFS) -> None:
    script = (
        "mkdir -p d/e && echo data > d/e/f && cp -r d copy && mv copy moved && cp d/e/f one\n"
        "ln -s d/e/f link && ln one hard && echo more >> hard\n"
        "tar czf t.tgz d && rm -r d && tar xzf t.tgz && cat d/e/f link one\n"
        "ls; tar tzf t.tgz\n"
    )
    code, out, err = run(fs, script)
    assert (code, err) == (0, "")
    assert out == "data\ndata\ndata\nmore\nd\nhard\nlink\nmoved\none\nt.tgz\nd/\nd/e/\nd/e/f\n"
    assert fs.lstat("/h/link").is_link and fs.read("/h/moved/e/f") == b"data\n"
    assert run(fs, "cp nope x")[2] == "cp: cannot stat 'nope': No such file or directory\n"
    assert run(fs, "cp d x")[2] == "cp: -r not specified; omitting directory 'd'\n"
    assert run(fs, "mv d d/e")[0] == 1 and fs.exists("/h/d/e/f")  # not into itself
    assert run(fs, "rm d")[2] == "rm: cannot remove 'd': Is a directory\n"
    assert run(fs, "ln -s a loop1; ln -s loop1 a; cat a")[0] == 1


def test_launchers_repeat_per_task(fs: VirtualFS) -> None:
    slurm = Launch(nodes=2, ntasks=4, node_names=["n1", "n2"], max_tasks_per_node=2, scheduler="slurm")
    assert run(fs, "srun -n 2 echo hi", launch=slurm)[1] == "hi\nhi\n"
    assert run(fs, "srun bash -c 'echo $SLURM_PROCID $(hostname)'", launch=slurm)[1] == "0 n1\n1 n1\n2 n2\n3 n2\n"
    assert run(fs, "srun -N1 hostname", launch=slurm)[1] == "n1\n"
    code, _, err = run(fs, "srun -n 5 hostname", launch=slurm, env={"SLURM_JOB_ID": "9"})
    assert code == 1 and "More processors requested than permitted" in err
    pbs = Launch(nodes=2, ntasks=2, node_names=["a", "b"], rank_vars=("PMI_RANK",), scheduler="pbs")
    assert run(fs, "mpiexec -n 2 --ppn 1 bash -c 'echo r$PMI_RANK'", launch=pbs)[1] == "r0\nr1\n"
    sh = Shell(fs=fs, user="u", uid=7, home="/h", host="h", launch=slurm)
    sh.run_script("srun -n 4 sleep 10; sleep 1", IO(Sink(sh), Sink(sh)))
    assert sh.slept == 11  # tasks sleep at the same time


def test_bounds(fs: VirtualFS) -> None:
    sh = Shell(fs=fs, user="u", uid=7, home="/h", host="h")
    with pytest.raises(Killed, match="too many commands"):
        sh.run_script("while true; do echo $((1+1)); done", IO(Sink(sh), Sink(sh)))
    sh = Shell(fs=fs, user="u", uid=7, home="/h", host="h")
    out = Sink(sh)
    fs.write("/h/big", b"x" * (1 << 20))
    sh.run_script("cat big big big big big big", IO(out, Sink(sh)))
    assert len(out.data()) == MAX_OUTPUT
    assert run(fs, "echo $((9**9**9))")[0] == 1  # no huge arithmetic
    assert run(fs, "seq 1 100000000")[0] == 1
    assert run(fs, "(" * 5000 + "true" + ")" * 5000)[0] == 2  # deep nesting: refused, no crash
    fs.write("/h/self.sh", b"source self.sh\n")
    with pytest.raises(Killed, match="nesting"):
        run(fs, "source self.sh")
    sh = Shell(fs=fs, user="u", uid=7, home="/h", host="h", budget=30)
    with pytest.raises(Killed, match="time limit"):
        sh.run_script("sleep 20; echo half; sleep 20; echo never", IO(out, Sink(sh)))


def _job_system(fs: VirtualFS, time_scale: float = 0.0) -> tuple[BatchSystem, list[float]]:
    clock = [1000.0]
    sysm = BatchSystem("m", nodes=4, time_scale=time_scale, clock=lambda: clock[0])

    def runner(job, budget):  # type: ignore[no-untyped-def]
        spec = jobrun.JobRun(
            script=job.script,
            user="u",
            uid=7,
            home="/h",
            cwd="/h",
            host="nid0",
            env=jobrun.slurm_environment(job, cluster="m", submit_dir="/h", ntasks=job.nodes, names=["nid0"]),
            launch=Launch(nodes=job.nodes, ntasks=job.nodes, node_names=["nid0"] * job.nodes, scheduler="slurm"),
            stdout=f"/h/slurm-{job.id}.out",
            stderr=f"/h/slurm-{job.id}.err",
        )
        return jobrun.run(fs, spec, budget)[0]

    sysm.runner = runner
    return sysm, clock


def test_jobs_run_when_they_end_with_slurm_variables(fs: VirtualFS) -> None:
    sysm, clock = _job_system(fs, time_scale=1.0)
    script = "#!/bin/bash\necho $SLURM_JOB_ID $SLURM_NNODES $SLURM_SUBMIT_DIR; sleep 10; echo done > marker\nnope\n"
    job = sysm.submit(name="j", user="u", script=script, nodes=2, walltime_s=60)
    clock[0] += 5
    assert sysm.get(job.id).state == "RUNNING" and not fs.exists("/h/marker")  # type: ignore[union-attr]
    clock[0] += 6
    assert sysm.get(job.id).state == FAILED and job.exit_code == 127  # type: ignore[union-attr]
    assert fs.read(f"/h/slurm-{job.id}.out") == f"{job.id} 2 /h\n".encode()
    assert fs.read(f"/h/slurm-{job.id}.err") == b"bash: line 3: nope: command not found\n"
    assert fs.read("/h/marker") == b"done\n"


def test_job_exit_code_comes_from_the_script(fs: VirtualFS) -> None:
    sysm, _ = _job_system(fs)
    ok = sysm.submit(name="a", user="u", script="false || true\n")
    bad = sysm.submit(name="b", user="u", script="echo 'exit 0 in text'; false\n")
    sysm.advance()
    assert (ok.state, bad.state, bad.exit_code) == (COMPLETED, FAILED, 1)


def test_a_script_outliving_its_walltime_times_out(fs: VirtualFS) -> None:
    sysm, clock = _job_system(fs, time_scale=1.0)
    # the sleeps add up past the walltime only when the loop runs
    job = sysm.submit(name="t", user="u", script="for i in 1 2 3; do echo $i; sleep 20; done\n", walltime_s=50)
    clock[0] += 21
    assert sysm.get(job.id).state == "RUNNING"  # type: ignore[union-attr]
    clock[0] += 40
    assert sysm.get(job.id).state == TIMEOUT  # type: ignore[union-attr]
    assert fs.read(f"/h/slurm-{job.id}.out") == b"1\n2\n3\n"
    assert job.end_time == 1050.0


def test_cancelled_job_ran_as_far_as_its_time(fs: VirtualFS) -> None:
    sysm, clock = _job_system(fs, time_scale=1.0)
    job = sysm.submit(name="c", user="u", script="echo a; sleep 100; echo b\n", nodes=4, walltime_s=600)
    waiting = sysm.submit(name="w", user="u", script="echo never > ran\n", nodes=4)
    clock[0] += 10
    assert waiting.state == "PENDING"
    sysm.cancel(waiting.id)
    sysm.cancel(job.id)
    assert fs.read(f"/h/slurm-{job.id}.out") == b"a\n"  # killed in its sleep: "b" never printed
    assert not fs.exists(f"/h/slurm-{waiting.id}.out") and not fs.exists("/h/ran")


def test_iri_job_runs_its_psij_spec_with_the_pbs_environment() -> None:
    from simulators.common.facility import SimSettings
    from simulators.iri import pbs
    from simulators.iri.state import IriFacility

    f = IriFacility(SimSettings(systems=["polaris"], nodes=4, time_scale=0.0, user="u"))
    spec = {
        "executable": "/bin/bash",
        "arguments": ["-c", "echo $PBS_JOBID in $PBS_O_WORKDIR; wc -l < $PBS_NODEFILE; mpiexec hostname; ls nope"],
        "directory": "/home/u",
        "stdout_path": "out.txt",
        "resources": {"node_count": 2},
    }
    sysm = f.systems["polaris"]
    job = sysm.submit(
        name="j", user="u", script="qsub ...", nodes=2, workdir="/home/u", stdout_path="out.txt",
        extra={"spec": spec},
    )
    sysm.advance()
    assert job.state == FAILED and job.exit_code == 2  # ls's code, the last command's
    nodes = [n.split(".")[0] for n in f.fs.read(f"/var/spool/pbs/aux/{pbs.job_id(job)}").decode().split()]
    assert f.fs.read("/home/u/out.txt").decode() == f"{pbs.job_id(job)} in /home/u\n2\n" + "".join(
        f"{n}\n" for n in nodes
    )
    assert f.fs.read(f"/home/u/j.e{job.id}") == b"ls: cannot access 'nope': No such file or directory\n"


def test_staging_area_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from simulators.firecrest import staging

    monkeypatch.setattr(staging, "MAX_OBJECT", 1000)  # small bounds: the same code, less memory
    monkeypatch.setattr(staging, "MAX_STAGED", 4000)
    area = staging.StagingArea()
    first = area.new(1)
    for _ in range(staging.MAX_OBJECTS):
        area.new(1)
    assert first.token not in area.objects and len(area.objects) == staging.MAX_OBJECTS
    with pytest.raises(ValueError, match="too large"):
        area.new(staging.MAX_OBJECT + 1)
    big = area.new(0)
    with pytest.raises(ValueError, match="too large"):
        area.put(big, b"x" * (staging.MAX_OBJECT + 1))
    for _ in range(staging.MAX_STAGED // staging.MAX_OBJECT + 1):  # old objects make room for new
        area.put(area.new(0), b"x" * staging.MAX_OBJECT)
    assert area.used() <= staging.MAX_STAGED


def test_merged_streams_keep_their_order(fs: VirtualFS) -> None:
    spec = jobrun.JobRun(
        script="echo a\nls nope\necho b >&2\necho c\n",
        user="u", uid=7, home="/h", cwd="/h", host="n", env={}, launch=Launch(),
        stdout="/h/job.out", stderr="/h/job.out",
    )  # fmt: skip
    assert jobrun.run(fs, spec, None)[0] == 0
    assert fs.read("/h/job.out") == b"a\nls: cannot access 'nope': No such file or directory\nb\nc\n"
    spec.stdout = "/nowhere/x.out"  # a directory that does not exist: that stream is lost, the job runs
    assert jobrun.run(fs, spec, None)[0] == 0 and fs.read("/h/job.out").endswith(b"b\n")
