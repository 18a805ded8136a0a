"""The run loop with a fake executor and a fake disk (no processes, no sleeps), as Ninja tests
its Plan with a FakeCommandRunner: limits are exact, and every job runs once, after what it
needs. The executor finishes the oldest running job each time the loop waits (Ninja's
WaitForCommand), writing its outputs on the fake disk."""

from __future__ import annotations

import io
from collections import Counter

import pytest

from rulerun.lang.parse import load_pipefile
from rulerun.plan.planner import make_plan
from rulerun.plan.view import DiskView
from rulerun.run.executor import JobResult
from rulerun.run.loop import Scheduler
from rulerun.run.ready import ALL, Limits, ReadyQueue
from rulerun.run.spec import Specs
from rulerun.store.disk import FakeDisk
from rulerun.ui import make_reporter

PIPELINE = """\
limit ftp = 3

%.stage2 : %.small
    name: small
    limit: ftp
    shell: fetch {input}

%.stage2 : %.big
    name: big
    limit: ftp
    shell: fetch {input}

%.stage3 : %.stage2
    name: stage3
    limit: 2
    shell: crunch {input}

%.solo : %.stage3
    name: solo
    shell: keep {input}

task all : *.solo
"""


class _State:
    def incomplete(self):
        return set()

    def signature(self, key):
        return None

    def record(self, succeeded=(), failed=(), started=(), running=(), unstarted=()):
        list(succeeded), list(failed), list(started), list(running), list(unstarted)


class FakeExecutor:
    """Starts nothing; each wait() finishes the job started first (or the one `order` picks)."""

    def __init__(self, disk: FakeDisk, groups, fail: set[str] = frozenset(), order=lambda running: 0):
        self.disk, self.groups, self.fail, self.order = disk, groups, fail, order
        self.inbox = self
        self.running: list = []
        self.started: list[str] = []
        self.most: Counter = Counter()
        self._extra: list[JobResult] = []

    def start(self, spec, done) -> None:
        for path in spec.inputs:
            assert self.disk.exists(path), f"{spec.label} started before its input {path} was made"
        self.running.append(spec)
        self.started.append(spec.outputs[0] if spec.outputs else spec.rule)
        now = Counter(group for s in self.running for group in self.groups(s))
        for group, count in now.items():
            self.most[group] = max(self.most[group], count)

    def put(self, result) -> None:
        self._extra.append(result)

    def wait(self, stop_requested, timeout=0.1):
        results, self._extra = self._extra, []
        if self.running:
            spec = self.running.pop(self.order(self.running))
            self.disk.tick()
            ok = spec.rule not in self.fail
            if ok:
                for output in spec.outputs:
                    self.disk.write(output)
            results.append(JobResult(spec.key, ok, "" if ok else "exit status 1", exit_status=None if ok else 1))
        return results

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


def _groups(spec):
    groups = ["-j"]
    if spec.rule in ("small", "big"):
        groups.append("ftp")
    if spec.rule == "stage3":
        groups.append("stage3")
    return groups


def _run(disk, jobs=4, keep_going=False, fail=frozenset(), order=lambda running: 0):
    pipefile = load_pipefile("Pipefile", text=PIPELINE)
    plan = make_plan(pipefile, {}, ["all"], _State(), view=DiskView(disk=disk))
    executor = FakeExecutor(disk, _groups, fail, order)
    limits = Limits(jobs, {name: limit.size for name, limit in pipefile.limits.items()})
    scheduler = Scheduler(plan, Specs({}), _State(), executor, ReadyQueue(limits),
                          make_reporter(-1, io.StringIO(), io.StringIO()), keep_going=keep_going)
    return scheduler.run(), executor


@pytest.fixture
def disk():
    disk = FakeDisk()
    for i in range(10):
        disk.write(f"{i}.{'small' if i < 5 else 'big'}")
    return disk


@pytest.mark.parametrize("jobs", [1, 2, 4, 10])
def test_limits_are_reached_and_never_passed(disk, jobs):
    outcome, executor = _run(disk, jobs=jobs)
    assert outcome.exit_code == 0 and outcome.ran == 30
    assert Counter(executor.started).most_common(1)[0][1] == 1  # every job once
    assert executor.most["-j"] == jobs if jobs <= 4 else 5 <= executor.most["-j"] <= jobs
    assert executor.most["ftp"] == min(3, jobs)  # shared by two rules
    assert executor.most["stage3"] == min(2, jobs)


@pytest.mark.parametrize("seed", range(5))
def test_any_finishing_order_keeps_limits_and_order(disk, seed):
    import random

    pick = random.Random(seed)
    outcome, executor = _run(disk, jobs=5, order=lambda running: pick.randrange(len(running)))
    assert outcome.exit_code == 0 and outcome.ran == 30
    assert executor.most["ftp"] <= 3 and executor.most["stage3"] <= 2 and executor.most["-j"] <= 5


def test_a_failure_stops_new_starts_and_keep_going_runs_the_rest(disk):
    stopped, executor = _run(disk, jobs=1, fail={"big"})
    assert stopped.exit_code == 1 and len(stopped.failures) == 1
    assert not any(path.endswith(".solo") for path in executor.started if path.startswith(("5.", "6.", "7.", "8.", "9.")))
    going_disk = FakeDisk()
    for i in range(10):
        going_disk.write(f"{i}.{'small' if i < 5 else 'big'}")
    went, executor = _run(going_disk, jobs=2, keep_going=True, fail={"big"})
    assert len(went.failures) == 5 and went.ran == 15  # the small chains, whole
    assert len(went.skipped) == 10  # stage3 and solo of each big one
    assert sorted(p for p in executor.started if p.endswith(".solo")) == [f"{i}.solo" for i in range(5)]


def test_the_ready_queue_alone():
    class Rule:
        def __init__(self, index, limit):
            self.index, self.limit = index, limit

    limits = Limits(3, {"net": 1})
    ready = ReadyQueue(limits)
    for job in range(4):
        ready.add(("net", job), Rule(0, "net"))
        ready.add(("own", job), Rule(1, 2))
    first = ready.take()
    assert first == [("net", 0), ("own", 0), ("own", 1)] and limits.full
    ready.done(("own", 0))
    assert ready.take() == [("own", 2)]  # net is still taken; the rule's own limit has room
    assert ready.take() == []  # -j is full again
    ready.done(("net", 0))
    assert ready.take() == [("net", 1)] and limits.used[ALL] == 3
    ready.done(("own", 1))
    assert ready.take() == [("own", 3)] and ready  # net 2 and 3 wait for net
