"""The DRMAA executor and run_job against a real Grid Engine (scripts/sge.sh).

Run with the cell's environment:  bash scripts/sge.sh start > sge.env && . sge.env &&
RULERUN_SGE=1 python -m pytest -q tests/test_cluster_sge.py
Jobs take about a second each (the scheduler runs every second), so tests submit in parallel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rulerun.run.cluster.python_api import ClusterJobError, run_job
from rulerun.run.cluster.session import ClusterSession
from rulerun.run.executor import JobResult, JobSpec
from rulerun.run.cluster.executor import DrmaaExecutor

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(os.environ.get("RULERUN_SGE") != "1",
                       reason="needs Grid Engine: bash scripts/sge.sh start, then RULERUN_SGE=1"),
]

ROOT = Path(__file__).resolve().parent.parent
JOB_TIMEOUT = 60


# ------------------------------------------------------------------------------ helpers

class Collector:
    """A done() callback that keeps every JobResult and lets a test wait for them."""

    def __init__(self):
        self.results: dict[int, JobResult] = {}
        self.calls = 0
        self._cond = threading.Condition()

    def __call__(self, result: JobResult) -> None:
        with self._cond:
            self.calls += 1
            self.results[result.key] = result
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = JOB_TIMEOUT) -> dict[int, JobResult]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.results) >= n, timeout), \
                f"only {len(self.results)} of {n} jobs reported after {timeout}s"
        return self.results


def spec(key: int, command: str, workdir: Path, rule: str = "rule", **kw) -> JobSpec:
    return JobSpec(key=key, rule=rule, kind="shell", command=command, outputs=kw.pop("outputs", ()),
                   inputs=(), log_path=str(workdir / f"log{key}.txt"), workdir=str(workdir), **kw)


def our_jobs_in_qstat(job_ids) -> set[str]:
    out = subprocess.run(["qstat", "-u", "*"], capture_output=True, text=True).stdout
    listed = {line.split()[0] for line in out.splitlines()[2:] if line.strip()}
    return listed & {str(j) for j in job_ids}


def qstat_ids_named(name: str) -> list[str]:
    out = subprocess.run(["qstat", "-u", "*", "-xml"], capture_output=True, text=True).stdout
    # the xml puts JB_job_number before JB_name within each job
    ids, last = [], None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("<JB_job_number>"):
            last = line.split(">")[1].split("<")[0]
        elif line.startswith("<JB_name>") and line.split(">")[1].split("<")[0] == name:
            ids.append(last)
    return ids


@pytest.fixture
def executor():
    ex = DrmaaExecutor(poll_seconds=1)
    yield ex
    ex.close()


# ------------------------------------------------------------------------------ the executor

def test_job_runs_in_the_project_with_the_submitters_environment(executor, tmp_path, monkeypatch):
    monkeypatch.setenv("RR_VALUE", "a b, c;d")  # the submitter's environment: the job sees it
    done = Collector()
    executor.start(spec(1, 'echo "$RR_VALUE"\npwd\necho to-err >&2\necho made > out.txt',
                        tmp_path, outputs=("out.txt",)), done)
    result = done.wait_for(1)[1]
    assert result.ok, result
    assert result.stdout == f"a b, c;d\n{tmp_path}\n"
    assert result.stderr == "to-err\n"
    assert (tmp_path / "out.txt").read_text() == "made\n"
    assert (tmp_path / "log1.txt").read_text() == result.stdout + result.stderr
    assert result.job_id and done.calls == 1
    # a successful job leaves no script or output files behind
    assert list((tmp_path / ".rulerun" / "cluster").iterdir()) == []


def test_failing_job_relays_exit_status_and_output(executor, tmp_path):
    done = Collector()
    executor.start(spec(1, "echo partial\necho 'it broke' >&2\nexit 3", tmp_path, rule="align",
                        wildcards={"sample": "s/1"}), done)
    executor.start(spec(2, "false\necho not reached", tmp_path, rule="sh_e"), done)
    executor.start(spec(3, "kill -KILL $$", tmp_path, rule="killed"), done)
    results = done.wait_for(3)
    failed = results[1]
    assert not failed.ok and not failed.interrupted
    assert failed.exit_status == 3
    assert failed.stdout == "partial\n" and failed.stderr == "it broke\n"
    assert "rule 'align'" in failed.reason and f"cluster job {failed.job_id}" in failed.reason
    assert "exit status 3" in failed.reason
    assert "exit 3" in failed.detail   # the command
    script = failed.detail.split("job script: ")[1].split("\n")[0]
    assert os.path.basename(script).startswith("align.s_1.")   # sanitised job name
    # bash -e: the first failing command ends the job
    assert results[2].exit_status == 1 and results[2].stdout == ""
    assert results[3].signal == "SIGKILL" and "killed by SIGKILL" in results[3].reason


@pytest.mark.parametrize("native, queue, message", [
    ("-bogus-option", None, 'invalid option argument "-bogus-option"'),
    ("", "nosuch.q", "nosuch.q"),
    ("-l nosuchres=1", None, "nosuchres"),
])
def test_bad_native_spec_is_a_failed_result_naming_rule_and_message(executor, tmp_path, native,
                                                                     queue, message):
    done = Collector()
    executor.start(spec(1, "true", tmp_path, rule="bigmem", native_spec=native, queue=queue), done)
    result = done.wait_for(1)[1]
    assert not result.ok and result.job_id is None
    assert "rule 'bigmem'" in result.reason and "refused" in result.reason
    assert message in result.reason


def test_queue_selection(executor, tmp_path):
    done = Collector()
    executor.start(spec(1, 'echo "$QUEUE"', tmp_path, queue="test.q"), done)
    executor.start(spec(2, 'echo "$QUEUE"', tmp_path), done)
    executor.start(spec(3, 'echo "$NSLOTS"', tmp_path, queue="all.q", native_spec="-pe smp 2"), done)
    results = done.wait_for(3)
    assert [r.stdout for r in (results[1], results[2], results[3])] == ["test.q\n", "all.q\n", "2\n"]


def test_twenty_jobs_in_flight_from_one_session(executor, tmp_path):
    done = Collector()
    t0 = time.monotonic()
    for i in range(20):
        executor.start(spec(i, f"echo job{i} > out{i}.txt\necho {i}\nexit {i % 3}", tmp_path,
                            rule="fan", wildcards={"i": str(i)}, outputs=(f"out{i}.txt",)), done)
    results = done.wait_for(20)
    elapsed = time.monotonic() - t0
    for i in range(20):
        assert results[i].exit_status == i % 3, results[i]
        assert results[i].ok == (i % 3 == 0)
        assert results[i].stdout == f"{i}\n"
        assert (tmp_path / f"out{i}.txt").read_text() == f"job{i}\n"
    assert done.calls == 20
    assert elapsed < 30, f"20 one-second jobs on 10 slots took {elapsed:.1f}s"


def test_abort_terminates_running_and_pending_jobs(tmp_path):
    executor = DrmaaExecutor(poll_seconds=1)
    done = Collector()
    for i in range(3):
        executor.start(spec(i, "echo started\nsleep 120", tmp_path, rule="slow",
                            wildcards={"i": str(i)}), done)
    executor.start(spec(3, "sleep 120", tmp_path, rule="held", native_spec="-h"), done)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(list(tmp_path.glob(".rulerun/cluster/slow*.out"))) < 3:
        time.sleep(0.2)
    job_ids = qstat_ids_named("slow.0") + qstat_ids_named("slow.1") + qstat_ids_named("held")
    assert len(job_ids) == 3, job_ids
    t0 = time.monotonic()
    executor.abort()
    assert time.monotonic() - t0 < 30
    results = done.wait_for(4, timeout=0)     # abort returned only after every done()
    assert all(r.interrupted and not r.ok for r in results.values()), results
    assert not our_jobs_in_qstat(job_ids)
    # an aborted executor submits nothing more
    late = Collector()
    executor.start(spec(9, "true", tmp_path), late)
    assert late.wait_for(1, timeout=0)[9].interrupted
    executor.close()


def test_retries_resubmit_a_failed_job(executor, tmp_path):
    flaky = "if [ -e tried ]; then echo second > out.txt; else touch tried; exit 1; fi"
    done = Collector()
    executor.start(spec(1, flaky, tmp_path, retries=1, outputs=("out.txt",)), done)
    (tmp_path / "b").mkdir()
    executor.start(spec(2, "exit 4", tmp_path / "b", rule="hopeless", retries=1), done)
    results = done.wait_for(2)
    assert results[1].ok and (tmp_path / "out.txt").read_text() == "second\n"
    assert not results[2].ok and "failed 2 times" in results[2].reason
    assert len(list((tmp_path / "b" / ".rulerun" / "cluster").glob("hopeless.*.sh"))) == 2


def test_job_aborted_by_grid_engine_gives_qacct_reason(executor, tmp_path):
    """A job whose working directory vanished before it started is aborted; the reason comes
    from qacct."""
    workdir = tmp_path / "gone"
    workdir.mkdir()
    done = Collector()
    executor.start(spec(1, "true", workdir, rule="orphan", native_spec="-h"), done)
    deadline = time.monotonic() + 20
    while not (ids := qstat_ids_named("orphan")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ids
    subprocess.run(["rm", "-rf", str(workdir)], check=True)
    subprocess.run(["qrls", ids[0]], check=True, capture_output=True)
    result = done.wait_for(1)[1]
    assert not result.ok and not result.interrupted
    assert "aborted by Grid Engine: changing into working directory (qacct: failed 28)" \
        in result.reason, result.reason


# ------------------------------------------------------------------------------ run_job

def test_run_job_from_plain_python(tmp_path):
    """In a fresh process with no rulerun run: the helper opens and closes its own session."""
    code = (
        "from rulerun.cluster import run_job, ClusterJobError\n"
        "out, err = run_job('echo hello; echo warn >&2; touch made', job_name='plain job',"
        " output_files=['made'])\n"
        "assert (out, err) == ('hello\\n', 'warn\\n'), (out, err)\n"
        "try:\n"
        "    run_job('echo some; echo bad >&2; exit 5', job_queue_name='test.q')\n"
        "except ClusterJobError as e:\n"
        "    assert (e.stdout, e.stderr, e.exit_status) == ('some\\n', 'bad\\n', 5), vars(e)\n"
        "    assert e.job_id and 'exit 5' in e.command\n"
        "    print('ok', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=JOB_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok rule 'run_job', cluster job ")
    assert (tmp_path / "made").exists()


def test_run_job_through_given_sessions(tmp_path):
    import drmaa
    session = ClusterSession(poll_seconds=1)
    try:
        assert run_job("echo own", working_directory=str(tmp_path), drmaa_session=session) == ("own\n", "")
        with pytest.raises(ClusterJobError) as caught:
            run_job("exit 2", working_directory=str(tmp_path), job_other_options="-l h_rt=0:1:0")
        assert caught.value.exit_status == 2
    finally:
        session.close()
    raw = drmaa.Session()      # Ruffus style: the caller owns an initialised drmaa.Session
    raw.initialize()
    try:
        assert run_job("echo raw", working_directory=str(tmp_path), drmaa_session=raw) == ("raw\n", "")
    finally:
        raw.exit()


THREADED_RUN_JOB = """\
import sys, threading
from rulerun.cluster import current_session, run_job

barrier, results = threading.Barrier(4), {}

def one(i):
    barrier.wait()   # all four call run_job at the same moment
    try:   # staggered: the first ends while the others still wait on their jobs
        results[i] = run_job(f"sleep {i}; echo job{i} > out{i}.txt; echo ${ID_VAR}",
                             job_name=f"threaded{i}", output_files=[f"out{i}.txt"],
                             scheduler=sys.argv[1])
    except BaseException as exc:
        results[i] = exc

threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
bad = {i: f"{type(r).__name__}: {r}" for i, r in results.items() if isinstance(r, BaseException)}
assert not bad, bad
assert current_session() is None, "the shared session outlived its last borrower"
print(" ".join(results[i][0].strip() for i in range(4)))
"""


def run_threaded_run_job(tmp_path: Path, scheduler: str, id_var: str, env: dict) -> list[str]:
    """THREADED_RUN_JOB in a plain Python process (no rulerun run); the four job ids, after
    checking each job wrote its own output."""
    script = tmp_path / "threaded.py"
    script.write_text(THREADED_RUN_JOB.replace("{ID_VAR}", id_var))
    proc = subprocess.run([sys.executable, str(script), scheduler], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=JOB_TIMEOUT * 2)
    assert proc.returncode == 0, proc.stderr
    assert "already open" not in proc.stderr
    ids = proc.stdout.split()
    assert len(ids) == 4 and len(set(ids)) == 4 and all(i.isdigit() for i in ids), proc.stdout
    for i in range(4):
        assert (tmp_path / f"out{i}.txt").read_text() == f"job{i}\n"
    return ids


def test_run_job_from_four_threads_of_a_plain_script(tmp_path):
    """Four threads, no run and no session of their own: they share one session that stays
    open until the last job ended (no "already open", no orphaned job)."""
    ids = run_threaded_run_job(tmp_path, "drmaa", "JOB_ID", dict(os.environ, PYTHONPATH=str(ROOT)))
    assert not our_jobs_in_qstat(ids)
    # closed once the last caller was done: the script could open a session of its own now
    code = ("import drmaa\nfrom rulerun.cluster import run_job\n"
            "assert run_job('echo one') == ('one\\n', '')\n"
            "s = drmaa.Session(); s.initialize(); s.exit(); print('closed')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=JOB_TIMEOUT)
    assert proc.stdout == "closed\n", proc.stderr


def test_run_job_from_threads_uses_the_callers_own_session(tmp_path):
    """A session the caller opened is used by every thread and left open for it."""
    session = ClusterSession(poll_seconds=1).open()
    try:
        outs = {}
        threads = [threading.Thread(target=lambda i=i: outs.__setitem__(
            i, run_job(f"echo {i}", working_directory=str(tmp_path)))) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outs == {i: (f"{i}\n", "") for i in range(3)}
        from rulerun.cluster import current_session
        assert current_session() is session                 # not closed under its owner
        assert run_job("echo after", drmaa_session=session) == ("after\n", "")
    finally:
        session.close()


def check_ruffus_keywords(tmp_path: Path, scheduler: str) -> None:
    """job_script_directory (with and without retain_job_scripts) and resubmit, on `scheduler`."""
    scripts, where = tmp_path / "scripts", {"working_directory": str(tmp_path), "scheduler": scheduler}
    out, _ = run_job("echo kept", job_name="kept", job_script_directory=str(scripts),
                     retain_job_scripts=True, **where)
    assert out == "kept\n"
    assert (scripts / "kept.1.sh").read_text() == "echo kept\n"   # the script, in that directory
    assert (scripts / "kept.1.out").read_text() == "kept\n"       # and its output beside it
    assert not (tmp_path / ".rulerun").exists()                     # nothing in the default place
    run_job("echo gone", job_name="gone", job_script_directory=str(scripts), **where)
    assert not list(scripts.glob("gone.*"))                         # not retained: removed
    flaky = "echo x >> attempts; [ $(wc -l < attempts) -ge 2 ]"    # fails on its first attempt
    assert run_job(flaky, resubmit=1, **where) == ("", "")
    assert (tmp_path / "attempts").read_text() == "x\nx\n"
    with pytest.raises(ClusterJobError) as caught:
        run_job("echo y >> tries; exit 3", resubmit=2, **where)
    assert (tmp_path / "tries").read_text() == "y\ny\ny\n" and "failed 3 times" in str(caught.value)


def test_ruffus_keywords_on_grid_engine(tmp_path):
    check_ruffus_keywords(tmp_path, "drmaa")

