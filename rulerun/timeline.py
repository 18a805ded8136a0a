"""The run as the state database keeps it for people: each job's start, end, slot, rule and how
it ended (store/history.py), and the durations the next run's ETA comes from.

`Recording` stands between the run loop and the reporter: it passes every event on and notes
the job events. It never fails a run: the timeline is for looking at afterwards.
"""

from __future__ import annotations

from rulerun.plan.signature import job_key
from rulerun.store import history


class Recording:
    """The run is recorded from its first job on: a run with nothing to do keeps the last
    run that did something as the one to report."""

    def __init__(self, reporter, db, facts):
        self._reporter = reporter
        self._db = db
        self._facts = facts
        self._log = None

    def __getattr__(self, name: str):
        return getattr(self._reporter, name)  # events it does not note

    def job_started(self, job, spec, reasons: list[str]) -> None:
        if self._log is None:
            import sqlite3

            try:
                self._log = history.RunLog(self._db, self._facts())
            except sqlite3.Error:  # never fail a run for its timeline
                self._log = _Nothing()
        self._log.started(job.id, spec.rule, spec.label, spec.kind, spec.command, spec.log_path)
        self._reporter.job_started(job, spec, reasons)

    def job_finished(self, job, spec, result, elapsed: float) -> None:
        self._log.ended(job.id, job_key(job), spec.rule, "ok", cluster_id=result.job_id, queued=result.queued)
        self._reporter.job_finished(job, spec, result, elapsed)

    def job_failed(self, failure) -> None:
        self._log.ended(failure.job.id, job_key(failure.job), failure.spec.rule, "failed",
                        failure.result.reason or "failed", failure.result.job_id, failure.result.queued)
        self._reporter.job_failed(failure)

    def job_interrupted(self, failure) -> None:
        self._log.ended(failure.job.id, job_key(failure.job), failure.spec.rule, "interrupted",
                        "interrupted", failure.result.job_id)
        self._reporter.job_interrupted(failure)

    def run_finished(self, outcome) -> None:
        if self._log is not None:
            self._log.finished("interrupted" if outcome.interrupted else "failed" if outcome.failures else "ok")
        self._reporter.run_finished(outcome)


class _Nothing:
    """A timeline that can't be written: every event is dropped."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def recording(reporter, plan, options, state):
    """`reporter`, told what earlier runs took (the ETA) and wrapped to record this run; the
    reporter alone when the database can't be written (read-only)."""
    db = state.db
    # only a status line shows an ETA: reading every job's duration costs ~25 ms at 10,000 jobs
    known = history.durations(db) if getattr(reporter, "status_line", False) else {}
    if known:
        seconds = {job.id: known[key] for job in plan.graph.jobs
                   if plan.decisions.runs(job) and (key := job_key(job)) in known}
        reporter.durations_known(seconds, options.jobs)
    if db is None:
        return reporter
    # the facts when the first job starts: a run with nothing to do pays nothing for them
    return Recording(reporter, db, lambda: {"targets": options.targets, "jobs": options.jobs,
                                            "graph": _rule_graph(plan)})


def _rule_graph(plan) -> dict:
    """The rules of this run and which rule's outputs each one reads, with each rule's jobs: the
    report's graph (rules, not jobs: a person reads twenty boxes, not twenty thousand)."""
    rules: dict[str, dict] = {}
    for job in plan.graph.jobs:
        if job.rule is None:
            continue
        node = rules.setdefault(job.rule.name, {"jobs": 0, "runs": 0, "needs": set(),
                                                "line": str(job.rule.loc)})
        node["jobs"] += 1
        node["runs"] += 1 if plan.decisions.runs(job) else 0
        node["needs"].update(dep.rule.name for dep in job.deps if dep.rule is not None and dep.rule is not job.rule)
    return {name: {**node, "needs": sorted(node["needs"])} for name, node in rules.items()}
