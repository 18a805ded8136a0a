"""Globs that say less than they seem. Globs in rules' inputs that match nothing, for `-n` and
`-v`: a rule over `*.fastq` that finds none runs with no inputs (or not at all), which is
rarely what its author meant, and silent about it otherwise. And globs (or rules named as
targets) that could not count what a rule with input functions makes, on every run."""

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


def uncountable(resolver) -> list[str]:
    """What the graph could not count: a glob over makeable files, or a rule named as a target,
    meeting a rule whose inputs all come from an input function. Such a function maps wildcards
    to files and can't be run backwards, so only the files that exist were counted: said on
    every run, since the graph looks whole without it."""
    said = []
    for (glob, _), rule in resolver.uncountable.items():
        if glob is None:
            said.append(f"rule '{rule.name}' ({rule.loc}) as a target: which files it can make is unknown, "
                        "its inputs come from an input function, which can't be run backwards; "
                        "name the files instead")
        else:
            said.append(f"the glob '{glob}' can't count the files rule '{rule.name}' ({rule.loc}) makes: "
                        "its inputs come from an input function, which can't be run backwards, so only "
                        "those that exist count; name them instead (e.g. with $(…) over a list)")
    return said
