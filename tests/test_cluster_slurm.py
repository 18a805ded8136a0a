"""The Slurm backend through the real command line, against the Slurm of scripts/slurm.sh.

Run with:  bash scripts/slurm.sh start > slurm.env && . slurm.env &&
RULERUN_SLURM=1 python -m pytest -q tests/test_cluster_slurm.py
Tests marked `slurm` need that Slurm; the scheduler's choice and the set-up errors (with a fake
sbatch on PATH) run anywhere. Runs poll every 0.3 s (--poll) to keep the tests quick.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rulerun.errors import ClusterSetupError
from rulerun.run.cluster.slurm import choose_scheduler
from tests.conftest import written_ids

REPO = Path(__file__).resolve().parent.parent

slurm = pytest.mark.skipif(os.environ.get("RULERUN_SLURM") != "1",
                           reason="needs Slurm: bash scripts/slurm.sh start, then RULERUN_SLURM=1")


def environment(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RULERUN_SCHEDULER",)}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def rulerun(cwd: Path, *args: str, extra: dict | None = None, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "rulerun", "--scheduler", "slurm", "--poll", "0.3",
                           *args], cwd=cwd, env=environment(extra), capture_output=True,
                          text=True, timeout=timeout)


def write(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def squeue_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                         timeout=30).stdout
    return set(out.split())


# ------------------------------------------------------------------------------ choosing the scheduler

def test_scheduler_precedence_option_then_env_then_found(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    sbatch = fake_bin / "sbatch"
    sbatch.write_text("#!/bin/sh\nexit 0\n")
    sbatch.chmod(0o755)
    both = {"DRMAA_LIBRARY_PATH": "/x/libdrmaa.so", "PATH": str(fake_bin),
            "RULERUN_SCHEDULER": "slurm"}
    assert choose_scheduler("drmaa", both) == "drmaa"
    assert choose_scheduler(None, both) == "slurm"
    assert choose_scheduler(None, {**both, "RULERUN_SCHEDULER": ""}) == "drmaa"
    assert choose_scheduler(None, {"PATH": str(fake_bin)}) == "slurm"
    with pytest.raises(ClusterSetupError) as caught:
        choose_scheduler(None, {"PATH": str(tmp_path / "empty")})
    assert "--local" in caught.value.hint and "--scheduler" in caught.value.hint
    with pytest.raises(ClusterSetupError):
        choose_scheduler(None, {"RULERUN_SCHEDULER": "pbs"})


def _fake_slurm(tmp_path: Path, ping_rc: int) -> Path:
    fake_bin = tmp_path / "fakebin"
    fake_bin.mkdir()
    for name, body in {"scontrol": f"echo 'Slurmctld(primary) at x is DOWN' >&2; exit {ping_rc}",
                       "sbatch": "echo 'sbatch: error: Batch job submission failed: "
                                 "Invalid partition name specified' >&2; exit 1",
                       "squeue": "exit 0"}.items():
        path = fake_bin / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return fake_bin


PIPE = {"Pipefile": """\
    task all : a.txt

    a.txt :
        cluster:
        shell: touch {output}
    """}


def test_controller_down_is_a_set_up_error_with_a_hint(tmp_path):
    fake = _fake_slurm(tmp_path, ping_rc=1)
    root = write(tmp_path / "p", PIPE)
    proc = rulerun(root, extra={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("rulerun: Slurm is unreachable") and "--local" in proc.stderr
    assert "Traceback" not in proc.stderr and not (root / "a.txt").exists()


def test_refused_submission_is_reported_with_sbatchs_message(tmp_path):
    fake = _fake_slurm(tmp_path, ping_rc=0)
    root = write(tmp_path / "p", PIPE)
    proc = rulerun(root, extra={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert proc.returncode == 1, proc.stderr
    assert "Slurm refused the job: Batch job submission failed: Invalid partition name" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------ against real Slurm

SAME = {
    "Pipefile": """\
        task all : summary.txt part.txt

        counts/%.count : inputs/%.txt
            cluster: --time=5
            shell: wc -w < {input} | tr -d ' ' > {output}

        summary.txt : counts/*.count
            shell: for f in {input}; do echo "$f $(cat $f)"; done > {output}

        part.txt :
            queue: test
            shell: printf '%s' "${{SLURM_JOB_PARTITION:-here}}" > {output}
        """,
    "inputs/a.txt": "one two three\nfour\n",
    "inputs/b.txt": "zebra\n",
}


@slurm
def test_same_files_as_local_and_the_partition_is_used(tmp_path):
    cluster = write(tmp_path / "cluster", SAME)
    local = write(tmp_path / "local", SAME)
    ok(rulerun(cluster))
    ok(rulerun(local, "--local"))
    for name in ("summary.txt", "counts/a.count", "counts/b.count"):
        assert (cluster / name).read_text() == (local / name).read_text(), name
    assert (cluster / "part.txt").read_text() == "test"
    assert (local / "part.txt").read_text() == "here"
    assert not any((cluster / ".rulerun" / "cluster").iterdir())   # kept only for failures


@slurm
def test_failures_are_relayed_with_job_id_output_and_reason(tmp_path):
    root = write(tmp_path, {"Pipefile": """\
        task all : bad.txt refused.txt cancelled.txt forgetful.txt

        bad.txt :
            cluster:
            retries: 1
            shell: echo "id $SLURM_JOB_ID" >> ids; echo to-stdout; echo to-stderr >&2; exit 3

        refused.txt :
            cluster: --no-such-option
            shell: touch {output}

        cancelled.txt :
            cluster: -J to-cancel
            shell: sleep 60; touch {output}

        forgetful.txt :
            cluster:
            shell: echo "$SLURM_JOB_ID" > forgetful.id
        """})
    canceller = subprocess.Popen(["sh", "-c", "sleep 3; scancel -n to-cancel"])
    try:
        proc = rulerun(root, "-k")
    finally:
        canceller.wait(30)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    err = proc.stderr
    ids = re.findall(r"id (\d+)", (root / "ids").read_text())
    assert len(ids) == 2                             # retries: 1 -> submitted twice
    assert f"cluster job: {ids[1]}" in err
    assert "exit status 3 (failed 2 times)" in err
    announced = re.search(rf"rule 'bad\.txt': attempt 1 of 2 failed: cluster job {ids[0]}: exit status 3; "
                          r"resubmitting \(its output is kept in (\S+)\)\n", err)
    assert announced, err
    log = (root / announced[1]).read_text()                          # both attempts, each said
    assert log.count("to-stdout\n") == 2 and log.startswith("rulerun: attempt 1 of 2 failed: ")
    assert "rulerun: attempt 2 of 2\n" in log
    assert "| to-stdout" in err and "| to-stderr" in err
    assert "Slurm refused the job: sbatch: unrecognized option '--no-such-option'" in err
    # Slurm signals the job's processes in no set order: its script may still write 143 first
    assert re.search(r"cancelled\.txt: (exit status 143: )?cancelled \((sacct|scontrol): CANCELLED", err), err
    forgetful = (root / "forgetful.id").read_text().strip()
    assert f"cluster job {forgetful} succeeded but did not create its declared output 'forgetful.txt'" in err


@slurm
def test_sigint_sigterm_and_sighup_leave_no_job_in_squeue(tmp_path):
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        root = write(tmp_path / sig.name, {"Pipefile": """\
            task all : s/1 s/2

            s/% :
                cluster:
                shell: echo "$SLURM_JOB_ID" > ids/{stem}; sleep 60; touch {output}
            """})
        (root / "ids").mkdir()
        proc = subprocess.Popen([sys.executable, "-m", "rulerun", "--scheduler", "slurm",
                                 "--poll", "0.3"], cwd=root, env=environment(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            # the shell makes each file before echo writes the id into it: wait for both ids
            while time.monotonic() < deadline and len(written_ids(root / "ids")) < 2:
                time.sleep(0.2)
            ids = written_ids(root / "ids")
            assert len(ids) == 2 and ids <= squeue_ids()
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130 and "Traceback" not in err, err
        deadline = time.monotonic() + 5
        while ids & squeue_ids() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert not ids & squeue_ids(), f"{sig.name} left jobs in squeue"


@slurm
def test_named_limit_holds_across_cluster_and_local_rules(tmp_path):
    stamp = 'start=$(date +%s.%N); sleep 1; echo "$start $(date +%s.%N)" > times/{0}{{stem}}'
    root = write(tmp_path, {"Pipefile": f"""\
        limit net = 1
        task all : c/1 c/2 l/1 l/2

        c/% :
            limit: net
            cluster:
            shell: {stamp.format("c")}; touch {{output}}

        l/% :
            limit: net
            shell: {stamp.format("l")}; touch {{output}}
        """})
    (root / "times").mkdir()
    ok(rulerun(root, "-j", "4"))
    spans = sorted(tuple(map(float, p.read_text().split())) for p in (root / "times").iterdir())
    assert len(spans) == 4
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans


@slurm
def test_run_job_with_slurm(tmp_path):
    code = textwrap.dedent("""\
        from rulerun.cluster import ClusterJobError, run_job
        out, err = run_job('echo "id $SLURM_JOB_ID"; echo warn >&2', scheduler="slurm",
                           job_queue_name="test")
        try:
            run_job("echo half; exit 4", scheduler="slurm")
        except ClusterJobError as exc:
            print(out.strip(), err.strip(), exc.exit_status, exc.stdout.strip(), exc.job_id)
        """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"id \d+ warn 4 half \d+\n", proc.stdout), proc.stdout


@slurm
def test_run_job_from_four_threads_of_a_plain_script(tmp_path):
    """Four threads of a plain script share one Slurm session (one poller) that ends with the
    last of their jobs; nothing is left in squeue."""
    from tests.test_cluster_sge import run_threaded_run_job

    ids = run_threaded_run_job(tmp_path, "slurm", "SLURM_JOB_ID", environment())
    assert not set(ids) & squeue_ids()


@slurm
def test_ruffus_keywords_on_slurm(tmp_path):
    from tests.test_cluster_sge import check_ruffus_keywords

    check_ruffus_keywords(tmp_path, "slurm")


@slurm
def test_cluster_and_retries_on_a_python_rule_apply_to_its_run_job_calls(tmp_path):
    from tests.test_cluster_cli import check_python_rule_cluster_lines, python_rule_pipefile

    root = write(tmp_path, python_rule_pipefile("test", "--time=5", "SLURM_JOB_PARTITION",
                                                "SLURM_JOB_NAME", "debug", "--no-such-option"))
    proc = rulerun(root, "-k")
    check_python_rule_cluster_lines(root, proc, "test", "debug", "Slurm refused the job")


@slurm
def test_run_job_in_a_python_action_goes_through_the_run(tmp_path):
    root = write(tmp_path, {"Pipefile": """\
        python:
            from rulerun.cluster import run_job

        result.txt :
            python:
                out, _ = run_job('echo "job ${SLURM_JOB_ID:-none}"')
                with open(output[0], "w") as f:
                    f.write(out)
        """})
    ok(rulerun(root))
    assert re.fullmatch(r"job \d+\n", (root / "result.txt").read_text())


@slurm
def test_a_restart_after_kill_9_does_not_resubmit(tmp_path):
    """docs/guarantees.md: a restart does not resubmit."""
    root = write(tmp_path, {"Pipefile": """\
        task all : s/1 s/2

        s/% :
            cluster:
            shell: echo "$SLURM_JOB_ID" >> ids; sleep 4; echo "$SLURM_JOB_ID {stem}" > {output}
        """})
    first = subprocess.Popen([sys.executable, "-m", "rulerun", "--scheduler", "slurm", "--poll", "0.3"],
                             cwd=root, env=environment(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(_ids(root)) < 2:
        time.sleep(0.2)
    first.kill()                                       # SIGKILL: no clean-up at all
    first.wait(10)
    started = _ids(root)
    assert len(started) == 2 and set(started) <= squeue_ids()
    dry = ok(rulerun(root, "-n"))
    for job_id in started:
        assert f"waiting for cluster job {job_id} from an earlier run" in dry.stdout, dry.stdout
    ok(rulerun(root))
    assert _ids(root) == started                      # nothing was submitted twice
    made = {n: (root / "s" / n).read_text().split() for n in ("1", "2")}
    assert sorted(job_id for job_id, _ in made.values()) == sorted(started)
    assert all(stem == n for n, (_, stem) in made.items())
    assert not any((root / ".rulerun" / "cluster").iterdir())   # the ended jobs' files pruned


def _ids(root: Path) -> list[str]:
    path = root / "ids"
    return path.read_text().split() if path.exists() else []


def late_job(root: Path, seconds: int) -> Path:
    """A project whose one cluster job may not start before `seconds` after its submission."""
    return write(root, {"Pipefile": f"""\
        late.txt :
            cluster: --begin=now+{seconds}
            shell: touch {{output}}
        """})


@slurm
def test_a_job_pending_too_long_is_reported_once_with_the_reason(tmp_path):
    root = late_job(tmp_path, 4)
    proc = ok(rulerun(root, "--pending-warn", "1"))
    lines = [line for line in proc.stderr.splitlines() if "still pending" in line]
    assert len(lines) == 1, proc.stderr
    assert re.search(r"cluster job \d+ \(late\.txt\) still pending after 1s: BeginTime", lines[0]), lines
    assert (root / "late.txt").exists()


@slurm
def test_a_jobs_time_in_the_queue_is_recorded_and_drawn_in_the_report(tmp_path):
    from tests.test_report import queue_times

    root = late_job(tmp_path, 3)
    ok(rulerun(root))
    recorded, drawn = queue_times(root)
    assert len(recorded) == 1 and recorded[0] >= 3, recorded     # held 3 s by --begin
    assert drawn == [pytest.approx(recorded[0], abs=0.01)]


@slurm
def test_a_failed_jobs_files_stay_until_the_next_run_prunes_them(tmp_path):
    failed_files_stay_until_pruned(tmp_path, rulerun)


def failed_files_stay_until_pruned(root: Path, run) -> None:
    """A failed job's files stay (its report names them) until the next run prunes them; a
    successful job's go at once. `run(root, *args)` runs rulerun on one scheduler."""
    write(root, {"Pipefile": """\
        out.txt :
            cluster:
            shell: test -e ready; touch {output}
        """})
    cluster = root / ".rulerun" / "cluster"
    failed = run(root)
    assert failed.returncode == 1 and f"job script: {cluster / 'out.txt.1.sh'}" in failed.stderr
    assert {p.name for p in cluster.iterdir()} >= {"out.txt.1.sh", "out.txt.1.out", "out.txt.1.err"}
    (root / "ready").touch()
    ok(run(root))
    assert not any(cluster.iterdir())       # the failure's files pruned, the success's removed


@slurm
def test_a_job_over_its_time_limit_fails_with_slurms_reason(tmp_path):
    """Slurm's shortest limit is a minute, and it checks limits every 30 s: one slow test."""
    root = write(tmp_path, {"Pipefile": """\
        slow.txt :
            cluster: --time=1
            shell: echo "$SLURM_JOB_ID" > {output}; sleep 300; echo finished >> {output}
        """})
    proc = rulerun(root, timeout=240)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    job_id = (root / ".rulerun" / "failed" / "slow.txt").read_text().strip()     # set aside, unfinished
    assert f"cluster job: {job_id}\n" in proc.stderr
    assert re.search(r"time limit reached \((sacct|scontrol): TIMEOUT", proc.stderr), proc.stderr
    assert not (root / "slow.txt").exists()


# ------------------------------------------------------------------------------ how an ended job went

FAKE_SCONTROL = ("echo 'JobId=7 JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15 "
                 "SubmitTime=2026-01-02T03:04:05 StartTime=2026-01-02T03:04:09'")


def _fake_ending(tmp_path: Path, monkeypatch, sacct: str) -> Path:
    """A fake sacct (shell body `sacct`) and scontrol on PATH; calls are logged to ./calls."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "calls"
    for name, body in {"sacct": sacct, "scontrol": FAKE_SCONTROL}.items():
        path = fake_bin / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\n{body}\n')
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    monkeypatch.setattr("rulerun.run.cluster.slurm._disabled", set())
    return calls


def test_sacct_says_how_a_job_ended_where_slurm_keeps_accounting(tmp_path, monkeypatch):
    from rulerun.run.cluster.slurm import job_end

    calls = _fake_ending(tmp_path, monkeypatch, 'echo "7.batch|CANCELLED|0:15||x|y"; '
                                                'echo "7|CANCELLED by 0|0:15|None|2026-01-02T03:04:05|2026-01-02T03:04:06"')
    end = job_end("7")
    assert (end.state, end.queued, end.source) == ("CANCELLED", 1.0, "sacct")
    assert end.said() == "cancelled (sacct: CANCELLED, exit code 0:15)"
    assert calls.read_text() == "sacct -n -P -X -j 7 -o JobID,State,ExitCode,Reason,Submit,Start\n"


def test_sacct_without_accounting_asks_the_completion_log_then_scontrol(tmp_path, monkeypatch):
    from rulerun.run.cluster.slurm import job_end

    calls = _fake_ending(tmp_path, monkeypatch, """\
        case "$1" in
            --completion) echo "Slurm job completion is disabled" >&2 ;;
            *) echo "Slurm accounting storage is disabled" >&2 ;;
        esac
        exit 1""")
    end = job_end("7")
    assert end.said() == "time limit reached (scontrol: TIMEOUT, TimeLimit, exit code 0:15)"
    assert end.queued == 4.0
    assert [line.split()[:2] for line in calls.read_text().splitlines()] == [
        ["sacct", "-n"], ["sacct", "--completion"], ["scontrol", "-o"]]
    calls.unlink()
    job_end("7")                                        # a source said disabled is not asked again
    assert calls.read_text().split()[0] == "scontrol"


def test_a_job_sacct_has_no_row_for_yet_is_scontrols_to_tell(tmp_path, monkeypatch):
    from rulerun.run.cluster.slurm import job_end

    calls = _fake_ending(tmp_path, monkeypatch, "exit 0")    # accounting lags the job's end
    assert job_end("7").source == "scontrol"
    assert len(calls.read_text().splitlines()) == 3
    assert job_end("7", accounting=False).state == "TIMEOUT"  # a queue time alone: no sacct
    assert calls.read_text().splitlines()[-1].startswith("scontrol")


def completion_log_kept() -> bool:
    """True if the running cell keeps a job completion log (scripts/slurm.sh's jobcomp/filetxt);
    a cell an older script configured has none."""
    proc = subprocess.run(["sacct", "--completion", "-n", "-j", "1"], capture_output=True, text=True, timeout=30)
    return "disabled" not in proc.stderr


@slurm
def test_sacct_of_the_cells_completion_log_tells_how_a_job_went(tmp_path):
    if not completion_log_kept():
        pytest.skip("the running Slurm has no job completion log: restart it with this scripts/slurm.sh")
    name = f"to-cancel-{os.getpid()}"
    root = write(tmp_path, {"Pipefile": f"""\
        cancelled.txt :
            cluster: -J {name}
            shell: echo "$SLURM_JOB_ID" > id; sleep 60; touch {{output}}
        """})
    canceller = subprocess.Popen(["sh", "-c", f"until [ -s id ]; do sleep 0.2; done; scancel -n {name}"], cwd=root)
    try:
        proc = rulerun(root)
    finally:
        canceller.wait(60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    job_id = (root / "id").read_text().strip()
    assert f"cluster job: {job_id}\n" in proc.stderr
    assert re.search(r"(exit status 143: )?cancelled \(sacct: CANCELLED", proc.stderr), proc.stderr
