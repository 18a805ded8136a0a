"""After a run with failures (-k): which of the requested targets were not made, so that the
summary says what a person asked for and did not get, not only which jobs failed."""

from __future__ import annotations

from rulerun.plan.graph import Job, JobKind


def targets_not_made(targets: list[Job], failed: list[Job]) -> list[str]:
    """The names of `targets` that are, or need (transitively), a job in `failed`."""
    bad = {job.id for job in failed}
    known: dict[int, bool] = {}
    return [target_name(t) for t in targets if _needs_failed(t, bad, known)]


def _needs_failed(root: Job, bad: set[int], known: dict[int, bool]) -> bool:
    """Iterative, memoised: chains can be deeper than Python's recursion."""
    stack = [(root, False)]
    while stack:
        job, expanded = stack.pop()
        if job.id in known:
            continue
        if expanded:
            known[job.id] = job.id in bad or any(known.get(dep.id, False) for dep in job.deps)
            continue
        stack.append((job, True))
        stack.extend((dep, False) for dep in job.deps if dep.id not in known)
    return known[root.id]


def target_name(job: Job) -> str:
    """A target as a person asked for it: a task's name, a file, a rule's name."""
    if job.kind is JobKind.RULE:
        return job.rule.name if job.is_task else " ".join(job.outputs)
    return job.target or job.name
