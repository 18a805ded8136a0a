"""The runner end to end, through the CLI in a separate process: concurrency and limits, up-to-date
decisions, --touch, -k, failures that leave nothing half-made, kill -9, Ctrl-C, Python actions
that fail in every way a process boundary allows, and the run lock."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

SEED_TIMED = """
python:
    import time

    def stamp(event, what):
        with open("times.log", "a") as log:
            log.write(f"{event} {what} {time.time()}\\n")

limit ftp = 3

*stage1 :
    python:
        for i in range(10):
            kind = "small" if i < 5 else "big"
            open(f"{i}.{kind}_stage1", "w").close()

%.stage2 : %.small_stage1
    name: stage1_small
    limit: ftp
    shell:
        echo "start stage1 {stem} $(date +%s.%N)" >> times.log
        sleep 0.3
        echo "end stage1 {stem} $(date +%s.%N)" >> times.log
        touch {output}

%.stage2 : %.big_stage1
    name: stage1_big
    limit: ftp
    shell: echo "start stage1 {stem} $(date +%s.%N)" >> times.log && sleep 0.3 && echo "end stage1 {stem} $(date +%s.%N)" >> times.log && touch {output}

%.stage3 : %.stage2
    name: stage2
    limit: 5
    python:
        stamp("start", "stage2 " + stem)
        time.sleep(1.0)
        stamp("end", "stage2 " + stem)
        open(output[0], "w").close()

task all : *.stage3
"""


def intervals(project, kind):
    """(start, end, stem) of each job of `kind` from the timestamps the jobs wrote."""
    starts, ends = {}, {}
    for line in project.read("times.log").splitlines():
        event, what, stem, stamp = line.split()
        if what == kind:
            (starts if event == "start" else ends)[stem] = float(stamp)
    return {stem: (starts[stem], ends[stem]) for stem in starts}


def max_overlap(spans):
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_seed_pipeline_concurrency_follows_the_limits(project):
    project.write("Pipefile", SEED_TIMED)
    result = project.run("-j", "10", "all")
    assert result.returncode == 0, result.stderr
    stage1 = intervals(project, "stage1")
    stage2 = intervals(project, "stage2")
    assert sorted(stage1) == sorted(stage2) == [str(i) for i in range(10)]
    assert max_overlap(stage1.values()) == 3          # shared by the two stage1 rules
    assert max_overlap(stage2.values()) == 5          # limit: 5
    for stem, (start, _) in stage2.items():           # never before what it depends on
        assert start >= stage1[stem][1]
    assert all(project.exists(f"{i}.stage3") for i in range(10))


def test_named_limit_is_shared_and_j_caps_everything(project):
    project.write("Pipefile", SEED_TIMED)
    result = project.run("-j", "2", "all")
    assert result.returncode == 0, result.stderr
    assert max_overlap(intervals(project, "stage1").values()) <= 2
    both = list(intervals(project, "stage1").values()) + list(intervals(project, "stage2").values())
    assert max_overlap(both) == 2


COUNTED = """
GREETING = "hello"

%.out : %.in
    shell:
        echo {stem} >> runs.log
        echo {GREETING} > {output}
        cat {input} >> {output}

task all : a.out b.out
"""


def runs(project):
    return project.read("runs.log").split() if project.exists("runs.log") else []


@pytest.fixture
def counted(project):
    project.write("Pipefile", COUNTED)
    project.write("a.in", "A\n")
    project.write("b.in", "B\n")
    assert project.run("all").returncode == 0
    assert sorted(runs(project)) == ["a", "b"]
    (project.root / "runs.log").unlink()
    return project


def test_nothing_runs_when_up_to_date(counted):
    result = counted.run("all")
    assert result.returncode == 0 and runs(counted) == []
    assert "nothing to do" in result.stdout


def test_missing_output_reruns_only_that_job(counted):
    (counted.root / "a.out").unlink()
    dry = counted.run("-n", "all")
    assert "output 'a.out' is missing" in dry.stdout and "b.out" not in dry.stdout
    assert counted.run("all").returncode == 0
    assert runs(counted) == ["a"]


def test_newer_input_reruns_only_that_job(counted):
    later = time.time() + 5
    os.utime(counted.root / "b.in", (later, later))
    assert "input 'b.in' is newer than output 'b.out'" in counted.run("-n", "all").stdout
    counted.run("all")
    assert runs(counted) == ["b"]


def test_changed_action_reruns(counted):
    counted.write("Pipefile", COUNTED.replace("cat {input}", "cat -- {input}"))
    assert "its action changed" in counted.run("-n", "all").stdout
    counted.run("all")
    assert sorted(runs(counted)) == ["a", "b"]


def test_changed_variable_reruns_and_says_which(counted):
    dry = counted.run("-n", "all", "GREETING=bye")
    assert "variable 'GREETING' changed" in dry.stdout
    counted.run("all", "GREETING=bye")
    assert sorted(runs(counted)) == ["a", "b"]
    assert counted.read("a.out") == "bye\nA\n"


def test_forced_reruns_everything(counted):
    assert "forced (-B)" in counted.run("-n", "-B", "all").stdout
    counted.run("-B", "all")
    assert sorted(runs(counted)) == ["a", "b"]


def test_touch_brings_outputs_up_to_date_without_running(project):
    project.write("Pipefile", COUNTED.replace("task all : a.out b.out", "task all : a.final\n\n"
                                              "%.final : %.out\n    shell: cp {input} {output}"))
    project.write("a.in", "A\n")
    result = project.run("--touch", "all")
    assert result.returncode == 0, result.stderr
    assert runs(project) == [] and project.exists("a.out") and project.exists("a.final")
    assert project.read("a.out") == ""
    assert os.stat(project.root / "a.final").st_mtime_ns >= os.stat(project.root / "a.out").st_mtime_ns
    assert "nothing to do" in project.run("all").stdout


FAILING = """
ok1 :
    shell: touch ok1
bad :
    shell:
        echo half-made > {output}
        echo "something broke" >&2
        exit 3
needs_bad : bad
    shell: touch needs_bad
ok2 : ok1
    shell: sleep 0.2; touch ok2
task all : needs_bad ok2
"""


def test_failed_job_is_reported_and_leaves_no_output(project):
    project.write("Pipefile", FAILING)
    result = project.run("-j", "1", "all")
    assert result.returncode == 1
    err = result.stderr
    assert "FAILED: rule 'bad' making bad" in err
    assert "exit status 3" in err and "exit 3" in err          # how it ended, and the command
    assert "something broke" in err                            # the log's tail
    assert ".rulerun/logs/bad/" in err
    assert not project.exists("bad")
    assert project.read(".rulerun/failed/bad") == "half-made\n"
    assert not project.exists("needs_bad")


def test_a_failing_command_in_a_pipe_fails_the_job_and_leaves_no_output(project):
    project.write("Pipefile", "out :\n    shell: echo partial | grep -q no-such-text | cat > {output}\n")
    result = project.run("out")
    assert result.returncode == 1 and "FAILED: rule 'out'" in result.stderr
    assert not project.exists("out") and project.exists(".rulerun/failed/out")


def test_without_k_running_jobs_finish_and_no_new_ones_start(project):
    project.write("Pipefile", FAILING.replace("ok1 :\n    shell: touch ok1", "ok1 :\n    shell: sleep 0.5; touch ok1"))
    result = project.run("-j", "2", "all")
    assert result.returncode == 1
    assert project.exists("ok1")            # was running when 'bad' failed: finished
    assert not project.exists("ok2")        # would have started after: never did


def test_keep_going_runs_everything_not_depending_on_the_failure(project):
    project.write("Pipefile", FAILING)
    result = project.run("-k", "-j", "1", "all")
    assert result.returncode == 1
    assert project.exists("ok1") and project.exists("ok2") and not project.exists("needs_bad")
    assert "1 job(s) failed" in result.stderr and "not run because they need a failed job" in result.stderr


def test_an_index_past_a_jobs_inputs_fails_that_job_only(project):
    """`{input[1]}` of a job with one input can't be checked at load (a glob or pattern decides
    the count): it fails that job with the reason, and with -k the rest goes on (was a traceback
    that stopped everything)."""
    project.write("Pipefile", "a.txt : x\n    shell: echo {input[1]} > {output}\n"
                              "needs_a : a.txt\n    shell: touch needs_a\n"
                              "b.txt :\n    shell: touch b.txt\n"
                              "task all : needs_a b.txt\n")
    project.write("x")
    result = project.run("-k", "-j", "1", "all")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1
    assert "FAILED: rule 'a.txt' making a.txt" in result.stderr
    assert "its command can't be made: {input[1]}: this job has 1 input (x)" in result.stderr
    assert project.exists("b.txt") and not project.exists("a.txt") and not project.exists("needs_a")
    assert "1 not run because they need a failed job" in result.stderr


def test_missing_declared_output_is_a_failure_naming_it(project):
    project.write("Pipefile", "out.txt :\n    shell: echo forgot\n")
    result = project.run("out.txt")
    assert result.returncode == 1
    assert "did not create its declared output 'out.txt'" in result.stderr


def test_missing_input_exits_2_naming_target_and_rule(project):
    project.write("Pipefile", "prog : main.o\n    name: link\n    shell: touch prog\n")
    result = project.run("prog")
    assert result.returncode == 2
    assert "no rule to make 'main.o', needed by 'prog' (rule 'link', Pipefile:1:1)" in result.stderr
    assert "Traceback" not in result.stderr


def test_pipefile_error_exits_2_with_location(project):
    project.write("Pipefile", "a :\n    shel: touch a\n")
    result = project.run("a")
    assert result.returncode == 2
    assert result.stderr.startswith("Pipefile:2:5:") and "^" in result.stderr
    assert "Traceback" not in result.stderr


SLOW_CHAIN = """
%.done : %.src
    shell:
        echo {stem} >> runs.log
        echo partial > {output}
        sleep {DELAY}
        echo complete >> {output}
DELAY = "0.05"
task all : a.done b.done c.done d.done
"""


def test_os_exit_in_top_level_python_is_an_error_not_a_silent_success(project):
    """os._exit(0) while the Pipefile loads ended rulerun at once with status 0, nothing built."""
    project.write("Pipefile", "python:\n    import os\n    os._exit(0)\nout :\n    shell: touch out\n")
    result = project.run("out")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("Pipefile:3:5: error in Python block: the Pipefile's Python called os._exit(0)\n")
    assert "Traceback" not in result.stderr and not project.exists("out")


def test_kill_9_then_rerun_reruns_exactly_the_unfinished(project):
    for name in "abcd":
        project.write(f"{name}.src")
    project.write("slow.src")
    project.write("hold")
    project.write("Pipefile", SLOW_CHAIN.replace("task all : a.done", "task all : slow.done a.done")
                  + "\nslow.done : slow.src\n    shell: echo slow >> runs.log; echo partial > slow.done; "
                    "while [ -e hold ]; do sleep 0.05; done; echo complete >> slow.done\n")
    proc = subprocess.Popen([sys.executable, "-m", "rulerun", "-j", "2", "all"], cwd=project.root,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 20
    while time.time() < deadline and not all(project.exists(f"{n}.done") for n in "abcd"):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.kill()                                   # kill -9 while slow.done is half-made
    proc.wait()
    (project.root / "hold").unlink()              # the orphaned job now completes its output
    deadline = time.time() + 10
    while time.time() < deadline and "complete" not in project.read("slow.done"):
        time.sleep(0.05)
    before = runs(project)
    assert sorted(before) == ["a", "b", "c", "d", "slow"]
    dry = project.run("-n", "all")
    assert "rule slow.done: slow.done\n    because it was interrupted before it finished" in dry.stdout
    assert "a.done" not in dry.stdout
    result = project.run("all")
    assert result.returncode == 0, result.stderr
    assert runs(project)[len(before):] == ["slow"]  # only the unfinished job ran again


def test_interrupt_stops_jobs_cleans_outputs_and_exits_130(project):
    nap = f"sleep 30.{os.getpid()}{int(time.time() * 1000) % 100000}"   # a marker only this test's jobs have
    project.write("Pipefile", f"a :\n    shell: echo partial > a; {nap}\nb :\n    shell: echo partial > b; {nap}\n"
                  "task all : a b\n")
    proc = subprocess.Popen([sys.executable, "-m", "rulerun", "-j", "2", "all"], cwd=project.root,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while time.time() < deadline and not (project.exists("a") and project.exists("b")):
        time.sleep(0.05)
    started = time.time()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert time.time() - started < 5
    assert not project.exists("a") and not project.exists("b")
    assert project.read(".rulerun/failed/a") == "partial\n"
    assert "Traceback" not in err
    assert subprocess.run(["pgrep", "-f", nap], capture_output=True).stdout == b""
    assert "it was interrupted" not in project.run("-n", "all").stdout   # state consistent: cleared


def test_sigterm_behaves_like_ctrl_c(project):
    project.write("Pipefile", "a :\n    shell: echo partial > a; sleep 30\n")
    proc = subprocess.Popen([sys.executable, "-m", "rulerun", "a"], cwd=project.root,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while time.time() < deadline and not project.exists("a"):
        time.sleep(0.05)
    proc.terminate()
    proc.communicate(timeout=20)
    assert proc.returncode == 130 and not project.exists("a")


def _marked_sleep() -> str:
    """A sleep command only this test's job runs, to find its process by."""
    return f"sleep 30.{os.getpid()}{int(time.time() * 1000) % 100000}"


def _pids_of(command: str) -> bytes:
    return subprocess.run(["pgrep", "-f", command], capture_output=True).stdout


def _start_slow_run(project, **popen):
    nap = _marked_sleep()
    project.write("Pipefile", f"a :\n    shell: echo partial > a; {nap}\n")
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.Popen([sys.executable, "-m", "rulerun", "a"], cwd=project.root,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), text=True, **popen)
    deadline = time.time() + 20
    while time.time() < deadline and not _pids_of(nap):
        time.sleep(0.02)
    assert _pids_of(nap)
    return proc, nap


def _stops_within(proc, nap: str, seconds: float) -> float:
    """Seconds until the job `nap` was gone, at most `seconds` (then the job is killed)."""
    started = time.time()
    while _pids_of(nap) and time.time() - started < seconds:
        time.sleep(0.02)
    took = time.time() - started
    for pid in _pids_of(nap).split():
        os.kill(int(pid), signal.SIGKILL)   # the job of a run that failed to stop it
    proc.wait(timeout=20)
    return took


def test_sighup_behaves_like_sigterm(project):
    proc, nap = _start_slow_run(project)
    proc.send_signal(signal.SIGHUP)   # a dropped ssh session: the job, in a session of its own, gets nothing
    assert _stops_within(proc, nap, 5) < 2
    assert proc.returncode == 130 and "Traceback" not in proc.stderr.read()
    assert not project.exists("a") and project.read(".rulerun/failed/a") == "partial\n"


def test_sighup_after_the_terminal_went_away_still_stops_the_jobs(project):
    import pty

    terminal, tty = pty.openpty()
    proc, nap = _start_slow_run(project, stdout=tty, stderr=tty)
    os.close(tty)
    os.close(terminal)   # the ssh session dropped: writing to the terminal now fails with EIO
    proc.send_signal(signal.SIGHUP)
    assert _stops_within(proc, nap, 5) < 2
    assert proc.returncode == 130 and not project.exists("a")


def test_sighup_is_ignored_under_nohup(project):
    project.write("Pipefile", "a :\n    shell: touch started; until [ -e go ]; do sleep 0.02; done; "
                              "touch a\n")
    proc = subprocess.Popen([sys.executable, "-m", "rulerun", "a"], cwd=project.root,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    try:
        deadline = time.time() + 20
        while time.time() < deadline and not project.exists("started"):
            time.sleep(0.02)
        proc.send_signal(signal.SIGHUP)
    finally:
        project.write("go")
    proc.communicate(timeout=20)
    assert proc.returncode == 0 and project.exists("a")


PYTHON_FAILURES = """
python:
    import os, threading

    class Unpicklable(Exception):
        def __init__(self, lock):
            super().__init__("holds a lock")
            self.lock = lock

dies :
    python:
        os._exit(7)

raises :
    python:
        raise Unpicklable(threading.Lock())

sends :
    python:
        from rulerun.run.worker import call_main
        call_main("cluster_run", threading.Lock())

logs :
    python:
        log.info("from the worker: %s", output[0])
        print("printed")
        open(output[0], "w").write(wildcards.get("x", "none"))

task all : dies raises sends logs
"""


def test_python_failures_name_the_rule_and_never_hang(project):
    project.write("Pipefile", PYTHON_FAILURES)
    result = project.run("-k", "-j", "4", "all", timeout=60)
    assert result.returncode == 1
    err = result.stderr
    assert "FAILED: rule 'dies'" in err and "worker process running it died (exit code 7)" in err
    assert "FAILED: rule 'raises'" in err and "Unpicklable: holds a lock" in err
    assert "FAILED: rule 'sends'" in err and "can't be sent to the rulerun process" in err
    assert "3 job(s) failed" in err
    assert project.read("logs") == "none"
    log = next((project.root / ".rulerun/logs/logs").iterdir()).read_text()
    assert "INFO rulerun.job.logs: from the worker: logs" in log and "printed" in log


def test_python_traceback_points_into_the_pipefile(project):
    project.write("Pipefile", "x :\n    python:\n        a = 1\n        b = a / 0\n")
    result = project.run("x")
    assert result.returncode == 1
    assert 'File "' in result.stderr or "Pipefile" in result.stderr
    log = next((project.root / ".rulerun/logs/x").iterdir()).read_text()
    assert "Pipefile\", line 4" in log and "ZeroDivisionError" in log


def test_second_run_waits_for_the_lock(project):
    from rulerun.store.lock import RUNNING_IN, RunLock

    project.write("Pipefile", "a :\n    shell: touch a\n")
    lock = RunLock(str(project.root))
    lock.acquire(wait=False)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    del env[RUNNING_IN]  # the run below is not one of this lock holder's jobs
    proc = subprocess.Popen([sys.executable, "-m", "rulerun", "a"], cwd=project.root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    assert "another rulerun (pid" in line and "waiting" in line
    assert not project.exists("a")
    lock.release()
    proc.communicate(timeout=20)
    assert proc.returncode == 0 and project.exists("a")


@pytest.mark.parametrize("action", [
    f"shell: {shlex.quote(sys.executable)} -m rulerun -C . other",
    "python:\n        import subprocess\n"
    f"        subprocess.run([{sys.executable!r}, '-m', 'rulerun', 'other'], check=True)",
])
def test_a_job_that_runs_rulerun_on_its_own_project_fails_at_once(project, action):
    project.write("Pipefile", f"outer :\n    {action}\nother :\n    shell: touch other\n")
    result = project.run("outer", timeout=30)   # it used to wait for its own run forever
    assert result.returncode == 1 and "FAILED: rule 'outer'" in result.stderr
    assert "rulerun is already running in this directory: this job is one of its jobs" in result.stderr
    assert "hint: a job can't run rulerun on its own project" in result.stderr
    assert not project.exists("other")
    assert project.run("other").returncode == 0   # the marker is the run's, not the directory's


def test_values_from_paths_are_quoted(project):
    project.write("Pipefile", '%.out : %.in\n    shell: cp {input} {output}\ntask all : *.out\n')
    nasty = "a b;touch PWNED;$(touch PWNED2).in"
    project.write(nasty, "data")
    result = project.run("all")
    assert result.returncode == 0, result.stderr
    assert project.read(nasty[:-3] + ".out") == "data"
    assert not project.exists("PWNED") and not project.exists("PWNED2")


def test_input_changed_while_its_job_ran_reruns_it_next_time(project):
    project.write("in.txt", "v1")
    # the job reads in.txt, in.txt changes while it runs, then the job writes its output
    project.write("Pipefile", "out.txt : in.txt\n    shell: cp {input} tmp; echo v2 > in.txt; sleep 0.05; "
                              "cp tmp {output}\n")
    assert project.run("out.txt").returncode == 0
    # in.txt is now older than out.txt, yet it changed after the job read it
    assert os.stat(project.root / "in.txt").st_mtime_ns < os.stat(project.root / "out.txt").st_mtime_ns
    dry = project.run("-n", "out.txt")
    assert "input 'in.txt' changed after the job last started" in dry.stdout


def test_globs_end_to_end_split_overlap_and_own_output(project):
    """The consumer of a glob that overlaps a split rule's glob gets the split's files; a page
    index that reads its own directory builds, and builds again without a cycle."""
    project.write("Pipefile", """\
        all.txt : parts/*b.txt
            shell: cat {input} > {output}
        parts/a*.txt :
            shell: mkdir -p parts && echo 1 > parts/a1b.txt && echo 2 > parts/a2c.txt
        site/index.html : site/*.html
            shell: ls {input} > {output}
        """)
    project.write("site/a.html")
    first = project.run("all.txt", "site/index.html")
    assert first.returncode == 0, first.stderr
    assert project.read("all.txt") == "1\n" and project.read("site/index.html") == "site/a.html\n"
    project.write("site/b.html")
    again = project.run("all.txt", "site/index.html")
    assert again.returncode == 0, again.stderr
    assert project.read("site/index.html") == "site/a.html\nsite/b.html\n"


# ------------------------------------------------------------------ a job is over before it is judged

def _stays_absent(project, path: str, seconds: float = 0.8) -> bool:
    time.sleep(seconds)
    return not project.exists(path)


def test_a_failed_job_leaves_no_process_to_write_its_output_later(project):
    project.write("Pipefile", "out.txt :\n    shell: (sleep 0.5; echo late > {output}) & exit 1\n")
    assert project.run("out.txt").returncode == 1
    assert _stays_absent(project, "out.txt")
    assert "nothing to do" not in project.run("-n", "out.txt").stdout


def test_interrupt_stops_what_a_job_started_in_a_session_of_its_own(project):
    project.write("Pipefile", "out.txt :\n    shell: setsid sh -c 'sleep 0.7; echo late > late.txt' & "
                              "echo partial > {output}; sleep 30\n")
    proc = subprocess.Popen([sys.executable, "-m", "rulerun", "out.txt"], cwd=project.root,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while time.time() < deadline and not project.exists("out.txt"):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert _stays_absent(project, "late.txt", 1.0)


def test_a_process_that_left_its_jobs_session_and_environment_is_stopped_when_the_run_ends(project):
    project.write("Pipefile", "out.txt :\n    shell: env -i /usr/bin/setsid /bin/sh -c 'sleep 0.5; "
                              "echo late > late.txt' & touch {output}\n")
    assert project.run("out.txt").returncode == 0
    assert _stays_absent(project, "late.txt")


def test_a_python_jobs_leftover_processes_are_stopped_when_it_ends_or_dies(project):
    project.write("Pipefile", """
python:
    import os, subprocess

    def leave(name):
        subprocess.Popen(["sh", "-c", f"sleep 0.5; echo late > {name}.late"], start_new_session=True)

ends :
    python:
        leave("ends")
        open(output[0], "w").close()

dies :
    python:
        leave("dies")
        os._exit(3)

task all : ends dies
""")
    result = project.run("-k", "-j", "2", "all")
    assert result.returncode == 1 and "FAILED: rule 'dies'" in result.stderr
    assert project.exists("ends")
    assert _stays_absent(project, "ends.late") and not project.exists("dies.late")


# ------------------------------------------------------------------ Python jobs don't share state

def test_chdir_in_one_python_job_does_not_move_the_next(project):
    project.write("Pipefile", """
python:
    import os

a.txt :
    python:
        open(output[0], "w").write(os.getcwd())
        os.makedirs("elsewhere", exist_ok=True)
        os.chdir("elsewhere")

b.txt : a.txt
    python:
        open(output[0], "w").write(os.getcwd())
""")
    result = project.run("-j", "1", "b.txt")
    assert result.returncode == 0, result.stderr
    assert project.read("b.txt") == project.read("a.txt") == os.path.realpath(project.root)


def test_state_set_by_one_python_job_is_not_seen_by_the_next(project):
    project.write("Pipefile", """
python:
    import json
    seen = []

%.txt :
    python:
        seen.append(output[0])
        json.counted = getattr(json, "counted", 0) + 1
        open(output[0], "w").write(f"{' '.join(seen)} {json.counted}")

task all : a.txt b.txt
""")
    result = project.run("-j", "1", "all")
    assert result.returncode == 0, result.stderr
    assert (project.read("a.txt"), project.read("b.txt")) == ("a.txt 1", "b.txt 1")


def test_top_level_python_runs_at_most_twice_however_many_jobs_run_at_once(project):
    project.write("Pipefile", """
python:
    import time
    with open("preamble.log", "a") as log:
        log.write("ran\\n")

%.out :
    python:
        time.sleep(0.2)
        open(output[0], "w").close()

task all : j1.out j2.out j3.out j4.out j5.out j6.out j7.out j8.out
""")
    result = project.run("-j", "4", "all")
    assert result.returncode == 0, result.stderr
    assert all(project.exists(f"j{i}.out") for i in range(1, 9))
    assert len(project.read("preamble.log").splitlines()) <= 2  # the rulerun process and the zygote
