"""The cluster layer's error paths, with no Grid Engine: import failures, names, results.

Fakes stand in only where a real failure can't be produced on demand; a real drmaa library
(when installed) is used for the import checks that can be made real.
"""

from __future__ import annotations

import builtins
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

import pytest

from rulerun.run.cluster import job as cluster_job
from rulerun.run.cluster import python_api
from rulerun.run.cluster import session as cluster
from rulerun.run.cluster.job import job_environment, job_name, make_request, native_specification
from rulerun.run.cluster.python_api import ClusterJobError, run_job
from rulerun.run.cluster.session import ClusterSession, interpret, is_no_rusage, load_drmaa, reexec_with_tls_fix
from rulerun.errors import ClusterSetupError
from rulerun.run.executor import JobSpec
from rulerun.run.cluster.executor import DrmaaExecutor

ROOT = Path(__file__).resolve().parent.parent
JobInfo = namedtuple("JobInfo", "jobId hasExited hasSignal terminatedSignal hasCoreDump "
                                "wasAborted exitStatus resourceUsage")


# ------------------------------------------------------------------------------ load_drmaa

def _import_raising(monkeypatch, exc):
    real = builtins.__import__

    def fake(name, *args, **kw):
        if name == "drmaa":
            raise exc
        return real(name, *args, **kw)
    monkeypatch.setattr(builtins, "__import__", fake)


def test_missing_package_says_pip_install_or_local(monkeypatch):
    monkeypatch.setitem(sys.modules, "drmaa", None)   # makes `import drmaa` an ImportError
    with pytest.raises(ClusterSetupError) as caught:
        load_drmaa()
    assert "'drmaa' is not installed" in caught.value.message
    assert "pip install 'rulerun[cluster]'" in caught.value.hint
    assert "--local" in caught.value.hint


def test_missing_library_names_drmaa_library_path(monkeypatch):
    _import_raising(monkeypatch, RuntimeError("Could not find drmaa library.  Please specify its "
                                              "full path using the environment variable DRMAA_LIBRARY_PATH"))
    with pytest.raises(ClusterSetupError) as caught:
        load_drmaa()
    assert "DRMAA library was not found" in caught.value.message
    assert "DRMAA_LIBRARY_PATH" in caught.value.hint and "--local" in caught.value.hint


def test_static_tls_failure_names_glibc_tunables(monkeypatch):
    _import_raising(monkeypatch, OSError("/lib/x86_64-linux-gnu/libjemalloc.so.2: cannot allocate "
                                         "memory in static TLS block"))
    with pytest.raises(ClusterSetupError) as caught:
        load_drmaa()
    assert "static TLS" in caught.value.message
    assert "GLIBC_TUNABLES=glibc.rtld.optional_static_tls=8192" in caught.value.hint
    assert "--local" in caught.value.hint


def test_other_load_failure_names_the_path(monkeypatch):
    monkeypatch.setenv("DRMAA_LIBRARY_PATH", "/nowhere/libdrmaa.so")
    _import_raising(monkeypatch, OSError("/nowhere/libdrmaa.so: cannot open shared object file"))
    with pytest.raises(ClusterSetupError) as caught:
        load_drmaa()
    assert "/nowhere/libdrmaa.so" in caught.value.message


def _python(code: str, env_changes: dict, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DRMAA_LIBRARY_PATH", "GLIBC_TUNABLES")}
    env.update(env_changes, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


LOAD = ("from rulerun.run.cluster.session import load_drmaa\nfrom rulerun.errors import ClusterSetupError\n"
        "try:\n    load_drmaa()\nexcept ClusterSetupError as e:\n    print(e.show())\n")


def test_real_import_without_library_path(tmp_path):
    if importlib.util.find_spec("drmaa") is None:
        pytest.skip("the drmaa package is not installed")
    proc = _python(LOAD, {}, tmp_path)
    assert "DRMAA_LIBRARY_PATH" in proc.stdout, proc.stderr


def test_real_static_tls_failure(tmp_path):
    lib = "/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0"
    if not os.path.exists(lib):
        pytest.skip("Debian's libdrmaa is not installed")
    if importlib.util.find_spec("drmaa") is None:
        pytest.skip("the drmaa package is not installed")
    proc = _python(LOAD, {"DRMAA_LIBRARY_PATH": lib}, tmp_path)
    assert "GLIBC_TUNABLES=glibc.rtld.optional_static_tls=8192" in proc.stdout, proc.stderr


def test_run_locally_and_touch_only_need_no_drmaa(tmp_path):
    code = ("import sys\nsys.modules['drmaa'] = None\n"
            "from rulerun.cluster import run_job, ClusterJobError\n"
            "assert run_job('echo out; echo err >&2', run_locally=True) == ('out\\n', 'err\\n')\n"
            "assert run_job('exit 99', touch_only=True, output_files=['a/t1', 't2']) == ('', '')\n"
            "try:\n    run_job('echo x; exit 7', run_locally=True)\n"
            "except ClusterJobError as e:\n    print(e.exit_status, repr(e.stdout), e)\n"
            "assert 'drmaa' not in sys.modules or sys.modules['drmaa'] is None\n")
    proc = _python(code, {}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "7 'x\\n' local job failed: exit status 7\n"
    assert (tmp_path / "a" / "t1").exists() and (tmp_path / "t2").exists()


# ------------------------------------------------------------------------------ reexec

def test_reexec_adds_the_tunable_once(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "execve", lambda *a: calls.append(a))
    monkeypatch.setenv("DRMAA_LIBRARY_PATH", "/x/libdrmaa.so")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    monkeypatch.delenv(cluster.REEXEC_MARKER, raising=False)
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "rulerun", "-j", "2", "all"])
    monkeypatch.setattr(sys, "argv", ["/src/rulerun/__main__.py", "-j", "2", "all"])
    reexec_with_tls_fix()
    (exe, argv, env), = calls
    assert exe == sys.executable and argv == ["python", "-m", "rulerun", "-j", "2", "all"]
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.rtld.optional_static_tls=8192"
    assert env[cluster.REEXEC_MARKER] == "1"
    calls.clear()
    monkeypatch.setenv(cluster.REEXEC_MARKER, "1")    # already restarted once: never loop
    reexec_with_tls_fix()
    monkeypatch.delenv(cluster.REEXEC_MARKER)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.rtld.optional_static_tls=4096")
    reexec_with_tls_fix()
    monkeypatch.setenv("GLIBC_TUNABLES", "")
    monkeypatch.delenv("DRMAA_LIBRARY_PATH")
    reexec_with_tls_fix()
    assert calls == []


# ------------------------------------------------------------------------------ requests

@pytest.mark.parametrize("rule, wildcards, stem, expected", [
    ("align", {"sample": "s1", "lane": "2"}, None, "align.s1.2"),
    ("a/b:c", None, None, "a_b_c"),
    ("%.o", None, "lib/x y", "_.o.lib_x_y"),
    ("2pass", None, None, "r2pass"),
    ("-x", None, None, "r-x"),
    ("r", {"f": "we@ird*name"}, None, "r.we_ird_name"),
    ("", None, None, "job"),
])
def test_job_name_is_sanitised(rule, wildcards, stem, expected):
    assert job_name(rule, wildcards, stem) == expected


def test_long_job_names_are_bounded_and_distinct():
    a, b = job_name("r", {"w": "x" * 300 + "a"}), job_name("r", {"w": "x" * 300 + "b"})
    assert len(a) == len(b) == cluster_job.NAME_MAX and a != b


def test_job_environment_drops_per_job_and_odd_variables():
    env = {"PATH": "/venv/bin:/bin", "HOME": "/root", "JOB_ID": "12", "QUEUE": "all.q",
           "SGE_O_HOST": "vm", "SGE_ROOT": "/var/lib/gridengine", "TMPDIR": "/tmp/12.1.all.q",
           "BASH_FUNC_f%%": "() { :; }", "MULTI": "a\nb", "COMMA": "a,b"}
    assert job_environment(env) == {"PATH": "/venv/bin:/bin", "HOME": "/root",
                                    "SGE_ROOT": "/var/lib/gridengine", "COMMA": "a,b"}
    assert job_environment({"TMPDIR": "/scratch"}) == {"TMPDIR": "/scratch"}  # not in a job


def test_native_specification():
    assert native_specification("test.q", " -l h_vmem=4G ") == "-q test.q -l h_vmem=4G"
    assert native_specification(None, "") == ""


# ------------------------------------------------------------------------------ results

@pytest.mark.parametrize("info, expected", [
    (JobInfo("1", True, False, "", False, False, 3, {}), ("exited", 3, None)),
    (JobInfo("1", False, True, "SIGKILL", False, False, 0, {}), ("signal", None, "SIGKILL")),
    (JobInfo("1", False, False, "", False, True, 0, {}), ("aborted", None, None)),
])
def test_interpret(info, expected):
    assert interpret(info) == expected


def test_code_24_is_told_apart():
    assert is_no_rusage(Exception("code 24: no usage information was returned for the completed job"))
    assert not is_no_rusage(Exception("code 23: timeout"))
    assert not is_no_rusage(ValueError("code 24: x"))


# ------------------------------------------------------------------------------ a fake DRMAA

class DrmaaException(Exception):
    pass


class ExitTimeoutException(DrmaaException):
    pass


class DeniedByDrmException(DrmaaException):
    pass


class DrmCommunicationException(DrmaaException):
    pass


class AlreadyActiveSessionException(DrmaaException):
    pass


class FakeSession:
    """A drmaa.Session whose wait() outcomes are scripted per submission."""

    JOB_IDS_SESSION_ALL = "ALL"
    init_error: Exception | None = None

    def __init__(self, outcomes=None):
        self.outcomes = list(outcomes or [])    # per job: a list of JobInfo / exceptions
        self.submitted, self.controls, self.jobs = [], [], {}

    def initialize(self):
        if FakeSession.init_error:
            raise FakeSession.init_error

    def exit(self):
        pass

    def createJobTemplate(self):
        return SimpleNamespace()

    def deleteJobTemplate(self, template):
        pass

    def runJob(self, template):
        if "-bogus" in getattr(template, "nativeSpecification", ""):
            raise DeniedByDrmException('code 17: denied: invalid option argument "-bogus"')
        job_id = str(len(self.submitted) + 1)
        self.submitted.append(template)
        self.jobs[job_id] = list(self.outcomes.pop(0))
        return job_id

    def wait(self, job_id, timeout):
        step = self.jobs[job_id].pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    def control(self, job_id, action):
        self.controls.append((job_id, action))


FAKE_DRMAA = SimpleNamespace(
    Session=FakeSession, JobControlAction=SimpleNamespace(TERMINATE="terminate"),
    errors=SimpleNamespace(DrmaaException=DrmaaException, ExitTimeoutException=ExitTimeoutException,
                           DeniedByDrmException=DeniedByDrmException,
                           DrmCommunicationException=DrmCommunicationException,
                           AlreadyActiveSessionException=AlreadyActiveSessionException))

EXIT0 = JobInfo("x", True, False, "", False, False, 0, {})
EXIT1 = JobInfo("x", True, False, "", False, False, 1, {})
ABORTED = JobInfo("x", False, False, "", False, True, 0, {})
CODE24 = Exception("code 24: no usage information was returned for the completed job")


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(cluster, "load_drmaa", lambda: FAKE_DRMAA)
    monkeypatch.setattr(cluster, "qacct_failure", lambda job_id: None)
    monkeypatch.setattr(FakeSession, "init_error", None)

    def make(*outcomes):
        return ClusterSession(settle_seconds=0, drmaa_session=FakeSession(outcomes))
    return make


def request(tmp_path, **kw):
    return make_request(kw.pop("command", "echo hi"), rule=kw.pop("rule", "rule"),
                        workdir=str(tmp_path), env={}, **kw)


def test_job_deleted_before_it_ran(fake, tmp_path):
    result = fake([ExitTimeoutException("code 23"), CODE24]).run(request(tmp_path, rule="align"))
    assert not result.ok and result.job_id == "1"
    assert result.reason == "rule 'align', cluster job 1: deleted before it ran"


def test_refused_submission_is_a_result_and_not_retried(fake, tmp_path):
    session = fake()
    result = session.run(request(tmp_path, rule="bigmem", native_spec="-bogus", retries=3))
    assert not result.ok and result.job_id is None
    assert result.reason == 'rule \'bigmem\': Grid Engine refused the job: denied: invalid option argument "-bogus"'
    assert not list((tmp_path / ".rulerun" / "cluster").iterdir())


def test_retries_until_success_but_not_beyond(fake, tmp_path):
    session = fake([EXIT1], [EXIT0])
    assert session.run(request(tmp_path, retries=2)).ok
    assert len(session._session.submitted) == 2
    session = fake([EXIT1], [EXIT1])
    result = session.run(request(tmp_path, retries=1))
    assert not result.ok and result.reason.endswith("exit status 1 (failed 2 times)")


def test_shutdown_terminates_the_job_and_marks_it_interrupted(fake, tmp_path):
    shutdown = threading.Event()
    shutdown.set()
    session = fake([ABORTED])
    job = cluster_job.JobFiles(request(tmp_path))
    info = session.wait(session.submit(request(tmp_path), job), shutdown)
    assert info is ABORTED and session._session.controls == [("1", "terminate")]
    assert session.run(request(tmp_path, retries=5), shutdown).interrupted   # and no retry


def test_aborted_job_reason_comes_from_qacct(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "qacct_failure",
                        lambda job_id: "searching requested shell (qacct: failed 27)")
    result = fake([ABORTED]).run(request(tmp_path))
    assert result.reason == ("rule 'rule', cluster job 1: aborted by Grid Engine: "
                             "searching requested shell (qacct: failed 27)")


def test_scheduler_unreachable(monkeypatch, tmp_path):
    monkeypatch.setattr(cluster, "load_drmaa", lambda: FAKE_DRMAA)
    monkeypatch.setattr(FakeSession, "init_error", DrmCommunicationException(
        "code 2: cannot reach qmaster"))
    with pytest.raises(ClusterSetupError) as caught:
        ClusterSession().open()
    assert caught.value.message == "scheduler unreachable: cannot reach qmaster"
    assert "sge_qmaster running" in caught.value.hint and "--local" in caught.value.hint


def test_a_forked_child_may_not_use_the_session(fake, tmp_path):
    session = fake()
    session._pid = os.getpid() + 1     # as seen from a child forked after the session opened
    with pytest.raises(ClusterSetupError, match="forked"):
        session.run(request(tmp_path))


def test_result_names_the_command_and_keeps_output(fake, tmp_path):
    session = fake([EXIT1])
    req = request(tmp_path, command="echo a\nfalse", rule="r")
    real_init = cluster_job.JobFiles.__init__

    def init_and_fill(self, request):
        real_init(self, request)
        Path(self.stdout).write_text("a\n")
        Path(self.stderr).write_text("oops\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cluster_job.JobFiles, "__init__", init_and_fill)
        result = session.run(req)
    assert (result.stdout, result.stderr, result.exit_status) == ("a\n", "oops\n", 1)
    assert "command:\n    echo a\n    false" in result.detail
    template = session._session.submitted[0]
    assert template.outputPath.startswith(":") and template.jobName == "r"


@pytest.mark.parametrize("shell, expected", [
    (None, (shutil.which("bash"), "-euo", "pipefail")),   # a path: an execution host has its own PATH
    (("/bin/sh", "-e"), ("/bin/sh", "-e")),
])
def test_the_job_script_runs_with_the_pipefiles_shell(fake, tmp_path, shell, expected):
    session = fake([EXIT1])
    session.run(request(tmp_path, command="false | cat", shell=shell))
    template = session._session.submitted[0]
    script = template.args[-1]
    assert (template.remoteCommand, *template.args[:-1]) == expected
    assert script.endswith(".sh") and Path(script).read_text() == "false | cat\n"


# ------------------------------------------------------------------------------ seams

def test_run_job_uses_the_submitter_hook(tmp_path):
    seen = []

    def submitter(req):
        seen.append(req)
        ok = "exit" not in req.command
        return cluster.JobResult(req.key, ok, reason="" if ok else "rule 'x', cluster job 9: exit status 2",
                                 stdout="o", stderr="e", exit_status=0 if ok else 2, job_id="9")
    previous = python_api.set_submitter(submitter)
    try:
        assert run_job("echo", job_queue_name="test.q", working_directory=str(tmp_path)) == ("o", "e")
        with pytest.raises(ClusterJobError) as caught:
            run_job("exit 2")
    finally:
        python_api.set_submitter(previous)
    assert seen[0].native_spec == "-q test.q" and seen[0].workdir == str(tmp_path)
    assert (caught.value.exit_status, caught.value.job_id, caught.value.stderr) == (2, "9", "e")


def test_executor_refuses_python_actions_and_reports_once(fake, tmp_path):
    executor = DrmaaExecutor(session_factory=lambda: fake())
    results = []
    executor.start(JobSpec(1, "r", "python", "pass", (), (), "", str(tmp_path)), results.append)
    assert len(results) == 1 and not results[0].ok and "only shell actions" in results[0].reason
    executor.close()


def test_cluster_job_error_pickles_with_what_it_carries():
    """It may cross a process boundary (a worker's call to the rulerun process) whole."""
    import pickle

    error = ClusterJobError("rule 'x', cluster job 9: exit status 2", stdout="o", stderr="e",
                            exit_status=2, job_id="9", command="exit 2")
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.stdout, again.stderr, again.exit_status, again.job_id, again.command) \
        == (str(error), "o", "e", 2, "9", "exit 2")


def test_the_lent_session_is_opened_once_and_closed_by_its_last_borrower():
    from rulerun.run.cluster.shared import LentSession

    events = []

    class Session:
        def open(self):
            events.append("open")
            return self

        def close(self):
            events.append("close")

    lent = LentSession(Session)
    with lent.borrowed() as first:
        with lent.borrowed() as second:
            assert second is first and lent.holds(first)
        assert events == ["open"]            # the first borrower still holds it
    assert events == ["open", "close"] and not lent.holds(first)
    with lent.borrowed() as third:           # a later caller gets a new one
        assert third is not first
    assert events == ["open", "close", "open", "close"]


@pytest.fixture
def submitted():
    """run_job's requests, answered by a hook as the cluster would (a command with 'exit' fails)."""
    seen = []

    def submitter(req):
        seen.append(req)
        ok = "exit" not in req.command
        return cluster.JobResult(req.key, ok, reason="" if ok else f"rule '{req.rule}', cluster job 9: exit status 2",
                                 stdout="job out\n", stderr="job err\n", exit_status=0 if ok else 2, job_id="9")
    previous = python_api.set_submitter(submitter)
    yield seen
    python_api.set_submitter(previous)


def test_ruffus_positional_order_is_accepted(submitted, tmp_path):
    """Ruffus's order: cmd_str, job_name, job_other_options, job_script_directory, ..."""
    run_job("echo", "named", "-l h_rt=0:1:0", str(tmp_path / "scripts"), {"X": "1"}, str(tmp_path))
    request = submitted[0]
    assert (request.name, request.native_spec, request.script_dir, request.workdir, request.env["X"]) \
        == ("named", "-l h_rt=0:1:0", str(tmp_path / "scripts"), str(tmp_path), "1")


def test_verbose_logs_submission_and_end_through_the_logger(submitted, caplog):
    import logging

    logger = logging.getLogger("test.ruffus")
    with caplog.at_level(logging.INFO, logger="test.ruffus"):
        run_job("echo hi", job_name="talk", job_queue_name="test.q", logger=logger, verbose=1)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert said == ["submitting talk (queue test.q): echo hi", "cluster job 9 (talk) succeeded"]


def test_verbose_without_a_logger_says_it_on_stderr(submitted, capsys):
    run_job("echo hi", job_name="talk")
    assert capsys.readouterr().err == ""                      # not verbose: nothing
    with pytest.raises(ClusterJobError):
        run_job("exit 2", job_name="talk", verbose=True)
    assert capsys.readouterr().err.splitlines() == [
        "run_job: submitting talk (no options): exit 2",
        "run_job: cluster job 9 (talk) failed: rule 'talk', cluster job 9: exit status 2"]


def test_local_echo_of_a_cluster_job_shows_its_output_once_it_ended(submitted, capsys):
    assert run_job("echo", local_echo=True) == ("job out\n", "job err\n")
    assert capsys.readouterr() == ("job out\n", "job err\n")
    run_job("echo")
    assert capsys.readouterr() == ("", "")


def test_local_echo_with_run_locally_echoes_as_the_command_runs(tmp_path):
    """Each line reaches the caller's stdout when printed, not when the command ended."""
    code = ("from rulerun.cluster import run_job\n"
            "out, err = run_job('echo first; sleep 3; echo second; echo oops >&2', run_locally=True,"
            " local_echo=True)\n"
            "print('returned', repr(out), repr(err), flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)))
    first = proc.stdout.readline()
    at_first = time.monotonic()
    rest = proc.stdout.read()
    gap = time.monotonic() - at_first
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    assert first == "first\n" and gap > 2, (first, gap)
    assert rest == "second\nreturned 'first\\nsecond\\n' 'oops\\n'\n", rest
    assert proc.stderr.read() == "oops\n"


def test_pruning_takes_the_files_of_ended_jobs_only(tmp_path):
    """What the restart of a run that died finds: the files of a job still recorded (to be
    judged), of jobs already judged, of a job kept on purpose, and a stranger's file."""
    from rulerun.store.cluster_jobs import Submitted, SubmittedJobs

    folder = tmp_path / ".rulerun" / "cluster"
    (folder / "kept").mkdir(parents=True)
    names = ["live.1.sh", "live.1.out", "live.1.sbatch", "done.txt.1.sh", "done.txt.1.out",
             "done.txt.1.err", "done.txt.2.status", "done.txt.2.status.tmp", "kept/mine.1.sh", "notes"]
    for name in names:
        (folder / name).write_text("x")
    record = SubmittedJobs(str(tmp_path / ".rulerun" / "state.db"))
    record.add(Submitted("k", "17", "slurm", ("live",), str(folder / "live.1")))
    assert record.prune() == 5
    record.close()
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert left == ["kept/mine.1.sh", "live.1.out", "live.1.sbatch", "live.1.sh", "notes"]
