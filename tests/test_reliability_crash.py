"""Crash safety: a 206-job pipeline (chains, fan-in, a few slow jobs) killed at random moments
with SIGKILL, SIGINT and SIGTERM. After every kill the state must hold only the truth, the next
run must finish the build, and the final tree must equal a clean build byte for byte.

Every job writes its output in two steps: 'partial', then (after an optional sleep) the real
content, derived from its input. A job that reads an input still saying 'partial' records a
violation and fails. Every job appends its output's name to runs.log when it starts.

What a SIGKILL of rulerun leaves behind: its shell jobs run in their own sessions, so they
survive it, until the next run stops them (the last tests below). Two scenarios are tested,
alternating by seed:
  - 'crash': right after rulerun is killed, every job process group it started is killed too,
    as a power cut or a kernel panic would (found by a marker unique to the test, in each
    job's command line);
  - 'orphans': the orphaned jobs are left to finish on their own (rulerun alone died, e.g.
    the OOM killer), and the next run is started once they are gone.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO

SOURCES = 50
STAGES = ("a", "b", "c", "d")
SLOW = {"a": "s3|s11|s19|s27|s38|s44", "b": "s5|s21", "d": "s7"}

STEP = """\
    shell:
        : {{MARK}}
        echo {{output}} >> runs.log
        if grep -qx partial {{input}}; then echo "{{output}} read partial input" >> violations.log; exit 9; fi
        echo partial > {{output}}
        {slow}
        content=$(cat {{input}})
        printf '%s\\n%s\\n' "$content" "{tag} {{output}}" > {{output}}
"""


def pipefile(mark: str) -> str:
    """50 sources -> 4 chained stages (200 jobs) -> 5 fan-in groups -> 1 total: 206 jobs."""
    parts = [f'MARK = "{mark}"\n']
    previous = "src/%.in"
    for stage in STAGES:
        slow = f"case {{stem}} in {SLOW[stage]}) sleep 0.3;; esac" if stage in SLOW else ":"
        parts.append(f"%.{stage} : {previous}\n" + STEP.format(slow=slow, tag=stage))
        previous = f"%.{stage}"
    for group in range(5):
        inputs = " ".join(f"s{i}.d" for i in range(group * 10, group * 10 + 10))
        slow = "sleep 0.4" if group == 2 else ":"
        parts.append(f"group{group}.sum : {inputs}\n" + STEP.format(slow=slow, tag="sum"))
    groups = " ".join(f"group{g}.sum" for g in range(5))
    parts.append(f"total.sum : {groups}\n" + STEP.format(slow=":", tag="total"))
    parts.append("task all : total.sum\n")
    return "\n".join(parts)


JOB_COUNT = SOURCES * len(STAGES) + 5 + 1
IGNORED = {"Pipefile", "runs.log", "violations.log"}


def make_project(root: Path, mark: str) -> None:
    (root / "src").mkdir(parents=True, exist_ok=True)
    for i in range(SOURCES):
        (root / "src" / f"s{i}.in").write_text(f"source {i}\n" + "x" * i + "\n")
    (root / "Pipefile").write_text(pipefile(mark))


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` but rulerun's own directory and the test's bookkeeping."""
    found = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(".rulerun") or relative in IGNORED or path.is_dir():
            continue
        found[relative] = path.read_bytes()
    return found


def start(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rulerun", *args], cwd=root,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rulerun", *args], cwd=root, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)


def marked_pids(mark: str) -> list[int]:
    """Processes whose command line holds `mark`: the shell of every job of this test's pipeline."""
    found = []
    needle = mark.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                if needle in file.read():
                    found.append(int(entry))
        except OSError:
            pass
    return found


def kill_jobs(mark: str) -> None:
    """SIGKILL the process group of every job still running (each job's shell leads its group),
    until none is seen twice in a row (a job forked just before rulerun died may exec late)."""
    quiet = 0
    deadline = time.time() + 10
    while quiet < 2 and time.time() < deadline:
        pids = marked_pids(mark)
        for pid in pids:
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        quiet = 0 if pids else quiet + 1
        time.sleep(0.02)
    assert not marked_pids(mark), "job processes survived SIGKILL"


def wait_for_jobs(mark: str, timeout: float = 10) -> None:
    deadline = time.time() + timeout
    while marked_pids(mark) and time.time() < deadline:
        time.sleep(0.02)
    assert not marked_pids(mark), "orphaned jobs did not finish"


def finished_outputs(root: Path) -> set[str]:
    """The outputs of jobs the state database records as succeeded."""
    path = root / ".rulerun" / "state.db"
    if not path.exists():
        return set()
    db = sqlite3.connect(path)
    try:
        keys = [row[0] for row in db.execute("SELECT job FROM signatures")]
    except sqlite3.OperationalError:  # killed before the tables were made
        keys = []
    finally:
        db.close()
    return {out for key in keys if not key.startswith(("task:", "split:")) for out in key.split("\0")}


def run_counts(root: Path) -> Counter:
    log = root / "runs.log"
    return Counter(log.read_text().split()) if log.exists() else Counter()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, bytes]:
    """The tree a clean, uninterrupted build makes."""
    root = tmp_path_factory.mktemp("reference")
    make_project(root, "reference-" + uuid.uuid4().hex)
    result = run(root, "-j", "4", "all")
    assert result.returncode == 0, result.stderr
    assert sum(run_counts(root).values()) == JOB_COUNT
    built = tree(root)
    assert len(built) == SOURCES + JOB_COUNT  # every output, plus the sources
    return built


class Ledger:
    """What the state said was finished at each kill, and how often each job had run by then."""

    def __init__(self, root: Path, reference: dict[str, bytes]):
        self.root = root
        self.reference = reference
        self.frozen: dict[str, int] = {}  # output -> run count when first recorded as finished

    def after_kill(self) -> None:
        counts = run_counts(self.root)
        for output in finished_outputs(self.root):
            # recorded as finished: the output is there, complete and right
            assert (self.root / output).read_bytes() == self.reference[output], output
            self.frozen.setdefault(output, counts[output])
        self.check_no_rerun(counts)
        self.check_no_violation()

    def check_no_rerun(self, counts: Counter | None = None) -> None:
        counts = counts or run_counts(self.root)
        again = {out: (before, counts[out]) for out, before in self.frozen.items() if counts[out] != before}
        assert not again, f"jobs recorded as finished ran again: {again}"

    def check_no_violation(self) -> None:
        log = self.root / "violations.log"
        assert not log.exists(), log.read_text()

    def final(self) -> None:
        self.check_no_rerun()
        self.check_no_violation()
        built = tree(self.root)
        assert sorted(built) == sorted(self.reference)
        different = [path for path in built if built[path] != self.reference[path]]
        assert not different, f"differs from a clean build: {different[:5]}"
        assert not any(content == b"partial\n" for content in built.values())
        again = run(self.root, "all")
        assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr


def kill_cycle(root: Path, mark: str, rng: random.Random, crash: bool) -> bool:
    """Start a run and SIGKILL it at a random moment; return False if it had finished first.
    The moment is random in the build's progress (after the Nth job started), not in seconds:
    on a loaded machine a time would fall before any job, and some kills do (while starting)."""
    proc = start(root, "-j", rng.choice(["2", "4", "8"]), "all")
    if rng.random() < 0.25:
        time.sleep(rng.uniform(0.05, 0.6))
    else:
        _wait_for_started(root, rng.randint(2, JOB_COUNT - 20), proc)
    finished = proc.poll() is not None
    proc.kill()
    proc.communicate()
    if crash:
        kill_jobs(mark)
    else:
        wait_for_jobs(mark)
    return not finished


def _wait_for_started(root: Path, jobs: int, proc: subprocess.Popen, limit: float = 30) -> None:
    """Until `jobs` jobs have started (a line each in runs.log) or the run has ended."""
    log = root / "runs.log"
    deadline = time.monotonic() + limit
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if log.read_bytes().count(b"\n") >= jobs:
                return
        except FileNotFoundError:
            pass
        time.sleep(0.01)


KILL_SEEDS = range(10)
KILLS_PER_SEED = 5


@pytest.mark.slow
@pytest.mark.parametrize("seed", KILL_SEEDS)
def test_sigkill_at_random_moments_loses_nothing_and_reruns_nothing_finished(tmp_path, reference, seed):
    """kill -9 at random moments, each recovery run killed again, until a run gets to the end;
    then the tree must equal a clean build. Repeated from a fresh tree until this seed has
    killed 5 runs that were still working (10 seeds: at least 50 kills). After each kill,
    everything the state records as finished is complete and right, and never runs again."""
    rng = random.Random(seed)
    crash = seed % 2 == 0
    kills = builds = checked = 0
    while kills < KILLS_PER_SEED:
        root = tmp_path / f"build{builds}"
        mark = f"rrcrash-{uuid.uuid4().hex}"
        make_project(root, mark)
        ledger = Ledger(root, reference)
        while kills < KILLS_PER_SEED and kill_cycle(root, mark, rng, crash):
            kills += 1
            ledger.after_kill()
        result = run(root, "-j", "4", "all")
        assert result.returncode == 0, result.stderr
        ledger.final()
        checked += len(ledger.frozen)
        builds += 1
    assert checked, "no kill came after a job had finished: the no-rerun check was never exercised"


@pytest.mark.slow
@pytest.mark.parametrize("sig,seed", [(signal.SIGINT, s) for s in range(4)] + [(signal.SIGTERM, s) for s in range(4)])
def test_sigint_and_sigterm_stop_every_job_within_2s_and_exit_130(tmp_path, reference, sig, seed):
    rng = random.Random(100 + seed)
    mark = f"rrstop-{uuid.uuid4().hex}"
    make_project(tmp_path, mark)
    ledger = Ledger(tmp_path, reference)
    proc = start(tmp_path, "-j", "4", "all")
    deadline = time.time() + 10
    while not marked_pids(mark) and time.time() < deadline:   # some job is running
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.8))
    assert proc.poll() is None, "the build finished before it could be interrupted"
    sent = time.monotonic()
    proc.send_signal(sig)
    gone = None
    while time.monotonic() - sent < 5:
        if gone is None and not marked_pids(mark):
            gone = time.monotonic() - sent
        if gone is not None and proc.poll() is not None:
            break
        time.sleep(0.01)
    out, err = proc.communicate(timeout=20)
    exited = time.monotonic() - sent
    assert gone is not None and gone < 2.0, f"jobs still running {time.monotonic() - sent:.1f}s after {sig.name}"
    assert proc.returncode == 130, err
    assert exited < 3.0, f"rulerun took {exited:.1f}s to exit after {sig.name}"
    assert "Traceback" not in err and "interrupted" in err
    ledger.after_kill()
    # an interrupted run clears what it stopped: nothing is left marked incomplete
    assert "interrupted before it finished" not in run(tmp_path, "-n", "all").stdout
    result = run(tmp_path, "-j", "4", "all")
    assert result.returncode == 0, result.stderr
    ledger.final()


KILLED_RUN_PIPEFILE = """\
WHO = 'nobody'
NAP = '0'
python:
    import os, time

    def running(pid):
        try:
            with open(f'/proc/{pid}/stat') as stat:
                return stat.read().rsplit(')', 1)[1].split()[0] != 'Z'
        except OSError:
            return False

out.txt :
"""
SHELL_ACTION = """\
    shell:
        echo $$ > {WHO}.pid
        if [ {WHO} = second ] && grep -qv ') Z ' /proc/$(cat first.pid)/stat 2>/dev/null; then touch overlap; fi
        sleep {NAP}
        echo {WHO} > {output}
"""
PYTHON_ACTION = """\
    python:
        open(WHO + '.pid', 'w').write(str(os.getpid()))
        if WHO == 'second' and running(int(open('first.pid').read())):
            open('overlap', 'w').close()
        time.sleep(float(NAP))
        open(output[0], 'w').write(WHO + '\\n')
"""


def kill_9_then_run_again(root: Path, action: str) -> tuple[subprocess.CompletedProcess, int]:
    """A first run whose job sleeps 30 s before it writes its output, killed with SIGKILL while
    the job runs; then a second run at once. Returns the second run and the first job's pid."""
    (root / "Pipefile").write_text(KILLED_RUN_PIPEFILE + action)
    first = start(root, "out.txt", "WHO=first", "NAP=30")
    deadline = time.time() + 20
    while not (root / "first.pid").exists() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # past the second transaction, which records the job's process
    first.kill()
    first.wait()  # not communicate(): that would wait for the orphans too, which hold its pipes
    first.stdout.close()
    first.stderr.close()
    return run(root, "out.txt", "WHO=second", "NAP=0"), int((root / "first.pid").read_text())


def gone(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat")
    try:
        return state.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_run_after_a_kill_9_first_stops_the_jobs_the_killed_run_left_and_says_so(tmp_path):
    second, orphan = kill_9_then_run_again(tmp_path, SHELL_ACTION)
    assert second.returncode == 0, second.stderr
    assert "killed while jobs ran ('out.txt')" in second.stderr and "Traceback" not in second.stderr
    assert not (tmp_path / "overlap").exists()  # the orphan was gone when the second run's job ran
    assert gone(orphan)
    assert (tmp_path / "out.txt").read_text() == "second\n"
    again = run(tmp_path, "out.txt", "WHO=second", "NAP=0")
    assert "killed" not in again.stderr  # what was stopped is forgotten


def test_python_jobs_of_a_killed_run_are_gone_before_the_next_run_starts_its_own(tmp_path):
    second, orphan = kill_9_then_run_again(tmp_path, PYTHON_ACTION)
    assert second.returncode == 0, second.stderr
    assert not (tmp_path / "overlap").exists() and gone(orphan)
    assert (tmp_path / "out.txt").read_text() == "second\n"


def test_a_long_jobs_process_is_recorded_while_it_runs(tmp_path):
    """The record a run after a kill -9 reads: a job's main process is written soon after it
    starts, not only with the next job's end (which may be hours away)."""
    (tmp_path / "Pipefile").write_text(KILLED_RUN_PIPEFILE + SHELL_ACTION)
    first = start(tmp_path, "out.txt", "WHO=first", "NAP=30")
    recorded = None
    try:
        deadline = time.time() + 20
        while not (tmp_path / "first.pid").exists() and time.time() < deadline:
            time.sleep(0.02)
        job = int((tmp_path / "first.pid").read_text())
        while recorded is None and time.time() < deadline:
            with sqlite3.connect(f"file:{tmp_path / '.rulerun' / 'state.db'}?mode=ro", uri=True) as db:
                rows = db.execute("SELECT job, pid, pgid FROM running").fetchall()
            recorded = rows[0] if rows and rows[0][1] is not None else None
            time.sleep(0.02)
        assert recorded == ("out.txt", job, job)  # its own session, which the next run stops
    finally:
        first.kill()
        first.wait()
        first.stdout.close()
        first.stderr.close()
        with contextlib.suppress(ProcessLookupError, ValueError, OSError):
            os.killpg(int((tmp_path / "first.pid").read_text()), signal.SIGKILL)
