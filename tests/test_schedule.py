"""The run loop and the state database: what is written when, with an executor that runs no
processes (it makes each job's outputs and reports success at once)."""

from __future__ import annotations

import io

from rulerun.run.executor import JobResult
from rulerun.options import Options
from rulerun.store.state import State

PIPEFILE = """\
a.txt :
    shell: touch a.txt
b.txt : a.txt
    shell: touch b.txt
%.out :
    shell: touch {output}
task all : b.txt x.out y.out z.out
"""


class _Events:
    """What the state and the executor were asked to do, in order."""

    def __init__(self):
        self.log: list[tuple] = []


class _RecordingState(State):
    def __init__(self, events: _Events):
        super().__init__()
        self.events = events

    def record(self, succeeded=(), failed=(), started=(), running=(), unstarted=()):
        succeeded, failed, started = list(succeeded), list(failed), list(started)
        super().record(succeeded, failed, started, running, unstarted)
        self.events.log.append(("record", {k for k, _, _ in succeeded}, {k for k, _ in failed},
                                {k for k, _ in started}))


class _MakingExecutor:
    def __init__(self, events: _Events):
        self.events = events

    def start(self, spec, done):
        self.events.log.append(("start", "\0".join(spec.outputs)))
        for output in spec.outputs:
            open(output, "w").close()
        done(JobResult(spec.key, True))

    def abort(self):
        pass

    def close(self):
        pass


def _scheduler(targets, executor, state, specs=None):
    """A Scheduler over the plan of `targets` in the project's Pipefile, with -j 2."""
    from rulerun.app import load
    from rulerun.plan.planner import make_plan
    from rulerun.run.loop import Scheduler
    from rulerun.run.ready import Limits, ReadyQueue
    from rulerun.run.spec import Specs
    from rulerun.ui import make_reporter

    loaded = load(Options(targets=targets, jobs=2))
    plan = make_plan(loaded.pipefile, loaded.namespace, targets, state)
    return Scheduler(plan, (specs or Specs)(loaded.namespace), state, executor, ReadyQueue(Limits(2, {})),
                     make_reporter(-1, io.StringIO(), io.StringIO()))


def _run(project) -> _Events:
    project.write("Pipefile", PIPEFILE)
    events = _Events()
    state = _RecordingState(events)
    try:
        assert _scheduler(["all"], _MakingExecutor(events), state).run().exit_code == 0
    finally:
        state.close()
    return events


def test_each_job_is_marked_incomplete_in_a_commit_before_it_starts(project):
    log = _run(project).log
    for i, event in enumerate(log):
        if event[0] == "start":
            assert any(e[0] == "record" and event[1] in e[3] for e in log[:i]), event


def test_a_job_starts_only_after_the_success_it_needs_is_recorded(project):
    log = _run(project).log
    b_starts = log.index(("start", "b.txt"))
    assert any(e[0] == "record" and "a.txt" in e[1] for e in log[:b_starts])


def test_one_transaction_a_turn_and_every_success_recorded_by_the_end(project):
    log = _run(project).log
    kinds = "".join("r" if e[0] == "record" else "s" for e in log)
    assert "rr" not in kinds[:-1], kinds  # a turn's results go with the next turn's starts
    assert set().union(*(e[1] for e in log if e[0] == "record")) == {"a.txt", "b.txt", "x.out", "y.out", "z.out"}
    assert State().incomplete() == set()


def test_jobs_that_ended_before_an_error_stay_recorded(project):
    """An error between turns (here: b.txt's command can't be rendered) ends the run; a.txt,
    which succeeded just before, keeps its record and is not run again."""
    import pytest

    from rulerun.run.spec import Specs

    class FailingSpecs(Specs):
        def __call__(self, job):
            if job.outputs == ["b.txt"]:
                raise RuntimeError("cannot render")
            return super().__call__(job)

    project.write("Pipefile", PIPEFILE)
    events = _Events()
    state = _RecordingState(events)
    try:
        scheduler = _scheduler(["b.txt"], _MakingExecutor(events), state, FailingSpecs)
        with pytest.raises(RuntimeError):
            scheduler.run()
    finally:
        state.close()
    assert ("start", "a.txt") in events.log
    again = State()
    try:
        assert again.signature("a.txt") is not None and again.incomplete() == set()
    finally:
        again.close()
