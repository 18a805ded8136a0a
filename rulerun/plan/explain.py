"""`-n`: the jobs that would run, in order, each with why; and, honestly, what can only be
known after a split rule has run."""

from __future__ import annotations

from typing import Callable, TextIO

from rulerun.lang.pathexpr import shown_path
from rulerun.plan.graph import Job
from rulerun.plan.resolve import split_globs
from rulerun.plan.planner import Plan
from rulerun.plan.record import NOTHING_TO_DO


def report(plan: Plan, out: TextIO, command: Callable[[Job], str] | None = None, earlier=()) -> int:
    """Print the plan; return how many jobs would run (known now). `command` (for -n -v) says
    what each job would do: its rendered shell command, or where its Python block is.
    `earlier`: the cluster jobs an earlier run submitted and never took the result of
    (State.cluster_jobs()); a job that would run waits for its one instead of submitting."""
    graph, decisions = plan.graph, plan.decisions
    submitted = {tuple(job.outputs): job.job_id for job in earlier}
    count = 0
    lines: list[str] = []  # written a few thousand at a time: 200,000 jobs are half a million lines
    for job in graph.jobs:
        if len(lines) > 4096:
            out.write("\n".join(lines) + "\n")
            lines.clear()
        if job.pending:
            lines.append(_after_split(job))
        reasons = decisions.running(job)
        if reasons is None:
            continue
        count += 1
        lines.append(_describe(job))
        lines.extend(["    because " + reason for reason in reasons])
        if command is not None and job.has_action:
            lines.extend(f"    {line}" for line in command(job).rstrip("\n").splitlines())
        if tuple(job.outputs) in submitted:
            lines.append(f"    waiting for cluster job {submitted[tuple(job.outputs)]} from an earlier run")
    if count == 0 and not any(job.pending for job in graph.jobs):
        lines.append(NOTHING_TO_DO)
    else:
        more = " (and more once the split rules above have run)" if any(j.pending for j in graph.jobs) else ""
        lines.append(f"rulerun: {count} job(s) would run{more}")
    out.write("\n".join(lines) + "\n")
    return count


def _describe(job: Job) -> str:
    if job.is_task:
        return f"task {job.rule.name}"
    if job.is_split:
        globs = " ".join(split_globs(job)) if job.values else " ".join(shown_path(o) for o in job.rule.outputs)
        return f"split rule {job.rule.name} (outputs: whatever matches {globs})"
    return f"rule {job.rule.name}: {' '.join(job.outputs)}"


def _after_split(job: Job) -> str:
    splits = ", ".join(sorted(f"'{s.rule.name}'" for s in job.after))
    rules = sorted(r for r in job.via_rules if r not in {s.rule.name for s in job.after})
    what = f"the jobs of rule(s) {', '.join(rules)}" if rules else "the jobs"
    for_whom = f" for {_describe(job)}" if job.rule else ""
    return (f"after split rule {splits} has run: {what}{for_whom} are worked out from its outputs "
            "(how many is known only then)")
