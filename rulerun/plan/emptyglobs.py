"""Globs in rules' inputs that match nothing, for `-n` and `-v`: a rule over `*.fastq` that
finds none runs with no inputs (or not at all), which is rarely what its author meant, and
silent about it otherwise."""

from __future__ import annotations


def empty_globs(plan) -> list[tuple[str, object]]:
    """(glob, rule) for each input glob of the plan's jobs that matches no file that exists or
    that a rule can make, and waits on no split rule; each glob once."""
    resolver = plan.resolver
    seen: set[str] = set()
    empty = []
    for job in plan.graph.jobs:
        if job.rule is None or job.pending:
            continue
        for pattern in resolver.index.inputs[job.rule.index]:
            if not pattern.is_glob:
                continue
            text = pattern.expand_as_glob(job.values)
            if text in seen:
                continue
            seen.add(text)
            paths, pending = resolver.expand_glob(text)
            if not paths and not pending.splits:
                empty.append((text, job.rule))
    return empty
