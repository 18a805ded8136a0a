"""The local executor: how it runs a shell command (with which shell), and where a shell job's
output goes."""

from __future__ import annotations

import time

import pytest

from rulerun.run import shell as shells
from rulerun.run.local import command_line


@pytest.mark.parametrize("script, direct", [
    ("touch out.txt", ["touch", "out.txt"]),
    ("cp 'a b' 'c;d'", ["cp", "a b", "c;d"]),
])
def test_simple_commands_run_without_a_shell(script, direct):
    assert command_line(script) == direct


@pytest.mark.parametrize("script", [
    "echo hi > a", "cd build", "A=1 env", "touch $HOME", "ls *.c", "true && false", "a\nb",
    "no-such-program-here x", "exit 3", "set -x", "touch `id`", "cat <in", "false | cat", "time make",
])
def test_anything_for_the_shell_goes_through_bash_with_pipefail(script):
    assert command_line(script) == ["bash", "-euo", "pipefail", "-c", script]
    assert command_line(script, ("/bin/sh", "-e")) == ["/bin/sh", "-e", "-c", script]


def _run_shell(tmp_path, script: str, log: str = "logs/r/job.log", while_running=None, linger: float = 0,
               workdir=None):
    """Run `script` through ShellRunner and return its JobResult (after `while_running()`);
    the runner stays open `linger` seconds after the job ended. The job runs in `workdir`, by
    default tmp_path (not the test's current directory: a job started with subprocess)."""
    import queue
    import time

    from rulerun.run.executor import JobSpec
    from rulerun.run.local import ShellRunner

    runner, results = ShellRunner(), queue.Queue()
    spec = JobSpec(key=1, rule="r", kind="shell", command=script, outputs=(), inputs=(),
                   log_path=str(tmp_path / log), workdir=str(workdir or tmp_path))
    try:
        runner.start(spec, results.put)
        if while_running:
            while_running()
        result = results.get(timeout=10)
        time.sleep(linger)
        return result
    finally:
        runner.close()


@pytest.fixture(params=["posix_spawn", "subprocess"])
def job_dir(request, tmp_path, monkeypatch):
    """Where a job runs: rulerun's own directory (it is started with posix_spawn), or another
    one (with subprocess, which can change directory)."""
    if request.param == "posix_spawn":
        monkeypatch.chdir(tmp_path)
        return tmp_path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return elsewhere


def test_a_job_gets_no_descriptor_rulerun_inherited_and_signals_at_their_defaults(tmp_path, job_dir):
    import os

    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)  # as a parent's pipe reaches rulerun
    try:
        assert _run_shell(tmp_path, "grep -E '^Sig(Ign|Blk)' /proc/self/status; ls /proc/self/fd",
                          workdir=job_dir).ok
    finally:
        os.close(read_end)
        os.close(write_end)
    lines = (tmp_path / "logs/r/job.log").read_text().splitlines()
    # Python ignores SIGPIPE: a job that inherited that would see a broken pipe as an error
    # instead of ending quietly, and `yes | head -1` would fail differently
    import signal

    (blk, blocked), (ign, ignored) = (line.split() for line in lines[:2])
    assert (blk, ign, int(blocked, 16)) == ("SigBlk:", "SigIgn:", 0)
    assert int(ignored, 16) & (1 << signal.SIGPIPE - 1 | 1 << signal.SIGXFSZ - 1) == 0
    assert str(write_end) not in lines[2:]
    assert {"0", "1", "2"} <= set(lines[2:])


def test_a_job_killed_by_a_signal_says_which(tmp_path, job_dir):
    result = _run_shell(tmp_path, "kill -TERM $$; sleep 5", workdir=job_dir)
    assert not result.ok and result.signal == "SIGTERM"


def test_a_job_that_prints_keeps_its_log(tmp_path):
    assert _run_shell(tmp_path, "echo hello; echo oops >&2").ok
    assert (tmp_path / "logs/r/job.log").read_text() == "hello\noops\n"


def test_a_silent_successful_job_leaves_no_log_not_even_an_old_one(tmp_path):
    old = tmp_path / "logs/r/job.log"
    old.parent.mkdir(parents=True)
    old.write_text("from an earlier run\n")
    assert _run_shell(tmp_path, "true").ok
    assert not old.exists()


def test_a_failed_job_always_has_its_log(tmp_path):
    result = _run_shell(tmp_path, "exit 3")
    assert not result.ok and result.exit_status == 3
    assert (tmp_path / "logs/r/job.log").read_text() == ""


def test_a_long_job_can_be_followed_while_it_runs(tmp_path):
    import time

    log = tmp_path / "logs/r/job.log"
    seen = []

    def look():
        time.sleep(0.5)
        seen.append(log.exists() and log.read_text())

    assert _run_shell(tmp_path, "echo started; sleep 1", while_running=look).ok
    assert seen == ["started\n"]
    assert log.read_text() == "started\n"


def _gone(pid_file) -> bool:
    """Whether the process whose pid `pid_file` holds has ended (a zombie has)."""
    try:
        with open(f"/proc/{int(pid_file.read_text())}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_process_the_job_left_running_is_stopped_before_the_job_is_reported(tmp_path):
    result = _run_shell(tmp_path, "(sleep 0.5; echo late > late.txt) & echo $! > bg.pid")
    assert result.ok and _gone(tmp_path / "bg.pid")
    time.sleep(0.8)
    assert not (tmp_path / "late.txt").exists()


def test_a_double_forked_process_in_a_session_of_its_own_is_stopped_when_its_job_fails(tmp_path):
    script = "(setsid sh -c 'echo $$ > bg.pid; sleep 0.5; echo late > late.txt' &); sleep 0.1; exit 1"
    result = _run_shell(tmp_path, script)
    assert not result.ok and _gone(tmp_path / "bg.pid")
    time.sleep(0.8)
    assert not (tmp_path / "late.txt").exists()


def test_what_a_left_process_prints_while_it_is_stopped_reaches_the_log(tmp_path):
    script = ("(trap 'echo stopped; exit 0' TERM; touch ready; for i in $(seq 40); do sleep 0.05; done) & "
              "while [ ! -e ready ]; do sleep 0.01; done; echo early")
    assert _run_shell(tmp_path, script, linger=0.3).ok
    log = (tmp_path / "logs/r/job.log").read_text()
    assert log.startswith("early\n") and log.endswith("stopped\n")


def test_a_job_ending_stops_only_what_it_left_not_what_a_running_job_left(tmp_path):
    """Both jobs leave a double-forked process in a session of its own (so re-parented to
    rulerun while their jobs run): each is stopped when its own job ends, not before."""
    import queue

    from rulerun.run.executor import JobSpec
    from rulerun.run.local import ShellRunner

    scripts = {1: "(setsid sh -c 'echo $$ > a.pid; sleep 0.5; echo late > a.late' &); sleep 0.1",
               2: "(setsid sh -c 'echo $$ > b.pid; sleep 5' &); sleep 0.6; "
                  "kill -0 $(cat b.pid) && echo alive > b.alive"}
    runner, results = ShellRunner(), queue.Queue()
    try:
        for key, script in scripts.items():
            runner.start(JobSpec(key=key, rule="r", kind="shell", command=script, outputs=(), inputs=(),
                                 log_path=str(tmp_path / f"{key}.log"), workdir=str(tmp_path)), results.put)
        first, second = results.get(timeout=10), results.get(timeout=10)
    finally:
        runner.close()
    assert (first.key, first.ok, second.key, second.ok) == (1, True, 2, True)
    assert (tmp_path / "b.alive").exists()  # a's end spared b's process
    assert _gone(tmp_path / "a.pid") and _gone(tmp_path / "b.pid")
    time.sleep(0.3)
    assert not (tmp_path / "a.late").exists()


def test_without_pidfds_jobs_write_their_logs_directly(tmp_path, monkeypatch):
    from rulerun.run import local

    monkeypatch.setattr(local, "_have_pidfds", lambda: False)
    assert _run_shell(tmp_path, "echo hello").ok
    assert (tmp_path / "logs/r/job.log").read_text() == "hello\n"
    assert _run_shell(tmp_path, "true").ok
    assert not (tmp_path / "logs/r/job.log").exists()
    assert not _run_shell(tmp_path, "exit 2").ok
    assert (tmp_path / "logs/r/job.log").read_text() == ""


def test_a_job_that_cannot_be_watched_is_stopped_and_reported_as_not_started(tmp_path, monkeypatch):
    import queue

    from rulerun.run.executor import JobSpec
    from rulerun.run.local import ShellRunner, _Reaper

    def no_fds(*args):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(_Reaper, "watch", no_fds)
    runner = ShellRunner()
    spec = JobSpec(key=1, rule="r", kind="shell", command="sleep 5; touch late", outputs=(), inputs=(),
                   log_path=str(tmp_path / "job.log"), workdir=str(tmp_path))
    try:
        with pytest.raises(OSError):
            runner.start(spec, queue.Queue().put)
        assert not runner._any_running()
    finally:
        runner.close()


def test_a_failing_command_in_a_pipe_fails_the_job(tmp_path):
    result = _run_shell(tmp_path, "false | cat > out")
    assert not result.ok and result.exit_status == 1


def test_an_unset_variable_fails_the_job(tmp_path):
    result = _run_shell(tmp_path, 'echo "$RULERUN_NO_SUCH_VARIABLE" > out')
    assert not result.ok
    assert "RULERUN_NO_SUCH_VARIABLE: unbound variable" in (tmp_path / "logs/r/job.log").read_text()


def test_the_pipefiles_shell_variable_names_the_shell(project):
    from rulerun.app import load
    from rulerun.options import Options

    project.write("myshell", '#!/bin/sh\nprintf "%s\\n" "$@" > shell.args\nexec /bin/sh "$@"\n').chmod(0o755)
    project.write("Pipefile", 'SHELL = "./myshell -e"\nout :\n    shell: echo hi > {output}\n')
    assert load(Options()).shell == (str(project.root / "myshell"), "-e")
    result = project.run("out")
    assert result.returncode == 0, result.stderr
    assert project.read("shell.args") == "-e\n-c\necho hi > out\n" and project.read("out") == "hi\n"


@pytest.mark.parametrize("setting, message", [
    (None, "bash was not found"),
    ('SHELL = "no-such-shell -e"', "the shell named by SHELL = 'no-such-shell -e' was not found"),
    ('SHELL = ["bash"]', "SHELL must be a string"),
    ('SHELL = ""', "SHELL is empty"),
])
def test_a_shell_that_cannot_be_used_is_said_when_the_pipefile_loads(project, setting, message):
    project.write("Pipefile", (setting or "") + "\nout :\n    shell: touch out\n")
    result = project.run("out", env={"PATH": str(project.root / "empty")})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr and "hint:" in result.stderr and 'SHELL = "/bin/sh -e"' in result.stderr
    assert not project.exists("out")


def test_a_pipefile_without_shell_actions_needs_no_bash(project):
    project.write("Pipefile", "out :\n    python:\n        open(output[0], 'w').write('made')\n")
    result = project.run("out", env={"PATH": str(project.root / "empty")})
    assert result.returncode == 0, result.stderr
    assert project.read("out") == "made"


def test_run_job_commands_run_with_the_pipefiles_shell(project):
    project.write("myshell", '#!/bin/sh\nprintf "%s\\n" "$@" > shell.args\nexec /bin/sh "$@"\n').chmod(0o755)
    project.write("Pipefile", 'SHELL = "./myshell -e"\n'
                  "out :\n    python:\n        from rulerun.cluster import run_job\n"
                  "        open(output[0], 'w').write(run_job('echo hi | cat')[0])\n")
    result = project.run("--local", "out")
    assert result.returncode == 0, result.stderr
    assert project.read("shell.args") == "-e\n-c\necho hi | cat\n" and project.read("out") == "hi\n"


def test_run_job_fails_on_a_failing_command_in_a_pipe(project):
    project.write("Pipefile", "out :\n    python:\n        from rulerun.cluster import run_job\n"
                  "        run_job('false | cat', run_locally=True)\n        open(output[0], 'w').close()\n")
    result = project.run("--local", "out")
    assert result.returncode == 1 and "ClusterJobError: local job failed: exit status 1" in result.stderr
    assert not project.exists("out")


def test_with_the_loops_poller_a_jobs_end_is_handled_by_the_thread_that_waits(tmp_path):
    """The run loop's case: no reaper thread; the job's end (and its output, in its log) is
    taken in by whoever waits on the inbox."""
    import threading

    from rulerun.run.executor import JobSpec
    from rulerun.run.local import ShellRunner
    from rulerun.run.loop import Inbox
    from rulerun.run.poller import Poller

    poller = Poller()
    runner, inbox = ShellRunner(poller), Inbox(poller)
    threads_before = threading.active_count()
    spec = JobSpec(key=7, rule="r", kind="shell", command="echo said; exit 3", outputs=(), inputs=(),
                   log_path=str(tmp_path / "job.log"), workdir=str(tmp_path))
    try:
        runner.start(spec, inbox.put)
        assert threading.active_count() == threads_before
        results = inbox.wait(lambda: False)
        assert [(r.key, r.ok, r.exit_status) for r in results] == [(7, False, 3)]
        assert (tmp_path / "job.log").read_text() == "said\n"
    finally:
        runner.close()
        poller.close()


def test_with_the_loops_poller_an_abort_reaps_its_jobs_itself(tmp_path):
    """While the loop waits for an abort, nobody else polls: the abort must take in the ends of
    the jobs it stopped, or it would wait out its whole grace and leave them unreported."""
    import time

    from rulerun.run.executor import JobSpec
    from rulerun.run.local import ShellRunner
    from rulerun.run.loop import Inbox
    from rulerun.run.poller import Poller

    poller = Poller()
    runner, inbox = ShellRunner(poller), Inbox(poller)
    spec = JobSpec(key=1, rule="r", kind="shell", command="sleep 30", outputs=(), inputs=(),
                   log_path=str(tmp_path / "job.log"), workdir=str(tmp_path))
    try:
        runner.start(spec, inbox.put)
        began = time.monotonic()
        runner.abort()
        # SIGTERM ends sleep at once; unreaped, the abort would wait out its grace and then
        # 5 s more for a job it can't see end (6 s)
        assert time.monotonic() - began < 3.0
        results = inbox.wait(lambda: True, timeout=0)
        assert [(r.key, r.interrupted) for r in results] == [(1, True)]
    finally:
        runner.close()
        poller.close()
