"""The planner on a fake disk with a logical clock (store/disk.py FakeDisk): which jobs run and
why, decided once per job, and the no-op record's graph kept field by field. No processes, no
sleeps: the clock moves only when a test says tick()."""

from __future__ import annotations

import dataclasses

import pytest

from rulerun.lang.parse import load_pipefile
from rulerun.plan.decide import Decisions
from rulerun.plan.graph import Job, JobKind
from rulerun.plan.planner import make_plan
from rulerun.plan.view import DiskView
from rulerun.store.disk import FakeDisk

CHAIN = """\
task all : src/*.out

%.out : %.mid
    shell: cp {input} {output}

%.mid : %.txt
    shell: cp {input} {output}
"""


class _State:
    """A state database that remembers nothing and has no incomplete marks."""

    def incomplete(self):
        return set()

    def signature(self, key):
        return None


def plan_on(disk: FakeDisk, text: str, targets=("all",), force=False):
    pipefile = load_pipefile("Pipefile", text=text)
    return make_plan(pipefile, {}, list(targets), _State(), force, view=DiskView(disk=disk))


def running(plan) -> dict[str, list[str]]:
    return {job.label: plan.decisions.reasons(job) for job in plan.graph.jobs if plan.decisions.runs(job)}


@pytest.fixture
def disk():
    disk = FakeDisk()
    for name in "abc":
        disk.write(f"src/{name}.txt")
    return disk


def test_missing_outputs_run_and_what_needs_them_runs_after(disk):
    plan = plan_on(disk, CHAIN)
    assert running(plan)["%.mid src/a.mid"] == ["output 'src/a.mid' is missing"]
    assert running(plan)["%.out src/a.out"][0] == "it needs 'src/a.mid', which is made first (rule '%.mid')"
    assert len(running(plan)) == 6  # 3 .mid, 3 .out; the task has no action


def test_an_input_newer_than_its_output_reruns_only_its_chain(disk):
    disk.tick()
    for name in "abc":
        disk.write(f"src/{name}.mid")
    disk.tick()
    for name in "abc":
        disk.write(f"src/{name}.out")
    disk.tick()
    disk.write("src/b.txt")
    plan = plan_on(disk, CHAIN)
    assert set(running(plan)) == {"%.mid src/b.mid", "%.out src/b.out"}
    assert running(plan)["%.mid src/b.mid"] == ["input 'src/b.txt' is newer than output 'src/b.mid'"]


def test_same_time_is_up_to_date_and_force_runs_everything(disk):
    for name in "abc":
        disk.write(f"src/{name}.mid")
        disk.write(f"src/{name}.out")
    assert running(plan_on(disk, CHAIN)) == {}
    with_action = plan_on(disk, CHAIN.replace("task all : src/*.out", "task all : src/*.out\n    shell: true"))
    assert running(with_action) == {"all": ["it is a task (tasks run every time they are asked for)"]}
    forced = plan_on(disk, CHAIN, force=True)
    assert len(running(forced)) == 6 and set(map(tuple, running(forced).values())) == {("forced (-B)",)}


def test_each_job_is_decided_once_whoever_asks(disk, monkeypatch):
    calls = []
    why = Decisions._why
    monkeypatch.setattr(Decisions, "_why", lambda self, job: calls.append(job) or why(self, job))
    plan = plan_on(disk, CHAIN)
    for _ in range(3):  # the run loop, -n, the record and the cluster set-up all ask
        for job in plan.graph.jobs:
            plan.decisions.runs(job), plan.decisions.reasons(job)
    assert len(calls) == len(plan.graph.jobs) == len(set(calls))


def test_job_kinds_say_what_a_node_is(disk):
    pipefile = """\
        %.up : %.txt
            name: source
            shell: cp {input} {output}
        """.replace("        ", "")
    disk.write("plain.txt")
    plan = plan_on(disk, pipefile, targets=("source", "plain.txt"))
    by_kind = {job.kind: job for job in plan.graph.jobs}
    assert by_kind[JobKind.RULE_NAME].name == "source" and not by_kind[JobKind.RULE_NAME].has_action
    assert by_kind[JobKind.FILE].target == "plain.txt" and by_kind[JobKind.FILE].inputs == ["plain.txt"]
    assert by_kind[JobKind.RULE].rule.name == "source" and by_kind[JobKind.RULE].outputs == ["plain.up"]
    assert not any(plan.decisions.runs(job) for job in plan.graph.jobs if job.kind is not JobKind.RULE)


# CHAIN with named inputs (Job.named must survive the record too)
CHAIN_NAMED = CHAIN.replace("%.out : %.mid", "%.out : mid=%.mid").replace("%.mid : %.txt", "%.mid : t=%.txt")


@pytest.mark.parametrize("chain", [CHAIN, CHAIN_NAMED])
def test_the_recorded_graph_keeps_every_field_of_every_job(tmp_path, disk, chain):
    from rulerun.plan.recorded_graph import affected_graph, save

    plan = plan_on(disk, chain)
    if chain is CHAIN_NAMED:
        assert {job.label: job.named for job in plan.graph.jobs if job.rule and not job.is_task}["%.out src/a.out"] \
            == {"mid": ["src/a.mid"]}
    files = sorted({p for job in plan.graph.jobs for p in (*job.inputs, *job.outputs)})
    path = str(tmp_path / "graph.db")
    save(path, 1, plan.graph, files)
    back, _ = affected_graph(path, 1, plan.graph.jobs[0].rule and load_pipefile("Pipefile", text=chain),
                             [files.index("src/a.txt"), files.index("src/b.txt"), files.index("src/c.txt")], files)
    original = {job.label: job for job in plan.graph.jobs}
    assert set(original) == {job.label for job in back.jobs}
    skipped = {"id", "pending", "after"}  # ids are positions; graphs waiting on a split are never recorded
    for job in back.jobs:
        before = original[job.label]
        for field in dataclasses.fields(Job):
            if field.name in skipped:
                continue
            mine, theirs = getattr(job, field.name), getattr(before, field.name)
            if field.name == "deps":
                mine, theirs = [d.label for d in mine], [d.label for d in theirs]
            if field.name == "rule":
                mine, theirs = mine and mine.index, theirs and theirs.index
            assert mine == theirs, (job.label, field.name)


def test_normalise_gives_what_normpath_gives_for_every_kind_of_path():
    """normalise skips normpath for paths it would not change: that test must never let a
    path through that normpath would have changed (one file, two names, two jobs)."""
    import itertools
    import os

    from rulerun.plan.view import normalise

    pieces = ["a", ".", "..", "", ".b", "b.", "..c", "c..", "..."]
    for count in range(1, 5):
        for parts in itertools.product(pieces, repeat=count):
            for lead in ("", "/", "//", "./"):
                path = lead + "/".join(parts)
                if path:
                    assert normalise(path) == os.path.normpath(path), path
