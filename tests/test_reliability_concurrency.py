"""Two and three rulerun processes started at once on one tree: one builds, the others wait for
the run lock and then find everything up to date. Every job records its start and end; no job
may run twice, let alone twice at once, and the state database must stay sound. The lock holds
even when .rulerun is removed under a running build."""

from __future__ import annotations

import os
import queue
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest

from tests.conftest import REPO

# a split rule (whose outputs are known only after it ran), a chain from its outputs, fan-in,
# and plain pattern rules from sources
PIPELINE = """
python:
    import time

*.part :
    shell:
        echo "start split $(date +%s.%N)" >> events.log
        for i in 1 2 3 4 5 6; do echo "part $i" > p$i.part; done
        sleep 0.1
        echo "end split $(date +%s.%N)" >> events.log

%.step : %.part
    shell:
        echo "start {output} $(date +%s.%N)" >> events.log
        sleep 0.05
        {{ cat {input}; echo step; }} > {output}
        echo "end {output} $(date +%s.%N)" >> events.log

%.o : src/%.c
    shell:
        echo "start {output} $(date +%s.%N)" >> events.log
        sleep 0.05
        {{ cat {input}; echo compiled; }} > {output}
        echo "end {output} $(date +%s.%N)" >> events.log

summary.txt : *.step
    python:
        with open("events.log", "a") as log:
            log.write(f"start summary.txt {time.time()}\\n")
        time.sleep(0.05)
        with open(output[0], "w") as out:
            for path in input:
                out.write(open(path).read())
        with open("events.log", "a") as log:
            log.write(f"end summary.txt {time.time()}\\n")

task all : summary.txt x1.o x2.o x3.o x4.o x5.o x6.o x7.o x8.o
"""

JOBS = 1 + 6 + 8 + 1   # split, steps, objects, summary


def spans(root) -> dict[str, list[tuple[float, float]]]:
    """job -> [(start, end)] from events.log; an unmatched start counts with end = inf."""
    starts: dict[str, list[float]] = defaultdict(list)
    ends: dict[str, list[float]] = defaultdict(list)
    for line in (root / "events.log").read_text().splitlines():
        event, job, stamp = line.split()
        (starts if event == "start" else ends)[job].append(float(stamp))
    found = {}
    for job, times in starts.items():
        done = sorted(ends.get(job, []))
        found[job] = [(s, done[i] if i < len(done) else float("inf")) for i, s in enumerate(sorted(times))]
    return found


@pytest.mark.parametrize("processes", [2, 3])
@pytest.mark.parametrize("round_", range(3))
def test_simultaneous_runs_take_turns_and_build_everything_once(project, processes, round_):
    project.write("Pipefile", PIPELINE)
    for i in range(1, 9):
        project.write(f"src/x{i}.c", f"int x{i};\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-m", "rulerun", "-j", "4", "all"], cwd=project.root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(processes)]
    results = [(p, *p.communicate(timeout=60)) for p in procs]
    for proc, out, err in results:
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    waited = sum("waiting for it to finish" in err for _, _, err in results)
    assert waited >= 1, "no run had to wait for the lock: the runs did not overlap"

    found = spans(project.root)
    twice = {job: times for job, times in found.items() if len(times) != 1}
    assert not twice, f"jobs run more than once: {twice}"
    assert len(found) == JOBS, sorted(found)
    assert all(end < float("inf") for times in found.values() for _, end in times)

    assert project.read("summary.txt") == "".join(f"part {i}\nstep\n" for i in range(1, 7))
    assert project.read("x3.o") == "int x3;\ncompiled\n"
    db = sqlite3.connect(project.root / ".rulerun" / "state.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("SELECT count(*) FROM incomplete").fetchone() == (0,)
    finally:
        db.close()
    again = project.run("all")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr


def test_removing_rulerun_during_a_run_does_not_let_a_second_run_in(project):
    # the job says when it starts and ends, and ends only once the test says so
    project.write("Pipefile", "out :\n    shell: echo start >> spans; until [ -e go ]; do sleep 0.02; done; "
                              "echo end >> spans; touch {output}\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))

    def start():
        return subprocess.Popen([sys.executable, "-m", "rulerun", "out"], cwd=project.root, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def starts() -> int:
        return project.read("spans").count("start") if project.exists("spans") else 0

    first, second, waiting = start(), None, queue.Queue()
    try:
        deadline = time.time() + 20
        while starts() < 1 and time.time() < deadline:
            time.sleep(0.02)
        shutil.rmtree(project.root / ".rulerun")   # its lock file too
        second = start()
        threading.Thread(target=lambda: [waiting.put(line) for line in second.stderr], daemon=True).start()
        while starts() < 2 and waiting.empty() and time.time() < deadline:
            time.sleep(0.02)
        assert starts() == 1, "the second run started the job while the first was running it"
        assert "another rulerun is running in this directory; waiting" in waiting.get(timeout=1)
    finally:
        project.write("go")
        first.communicate(timeout=30)
        if second is not None:
            second.wait(timeout=30)
    assert first.returncode == 0 and second.returncode == 0
    lines = project.read("spans").split()
    assert lines == ["start", "end"] * (len(lines) // 2)   # one at a time
