"""The job graph: jobs (a rule bound to its stem and wildcards), what each needs, and DOT output.

The graph can grow while it runs: a job whose inputs depend on a split rule's outputs carries
`pending` items, resolved by the resolver once every split job it waits on has finished.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable

from rulerun.lang.model import Rule


class JobKind(enum.Enum):
    """What a node of the graph stands for. Only RULE jobs have a rule, and only they can run."""

    RULE = "rule"                # a rule's or a task's job: a rule bound to its stem and wildcards
    FILE = "file"                # a requested target that is a file no rule makes: nothing to do
    RULE_NAME = "rule name"      # a rule's name as a target: needs every output that rule can make
    AFTER_SPLIT = "after split"  # a target or rule-name target known only after split jobs ran


@dataclass(eq=False, slots=True)
class Job:
    """One node of the graph. `rule` is set for RULE jobs only; `target` names what a FILE,
    RULE_NAME or AFTER_SPLIT job stands for (the path, or the rule's name).

    `pending` lists what is resolved after the split jobs in `after` have run:
    ("glob", text, position) for an input glob, ("target", path, 0) for a placeholder's
    target, ("rule", name, 0) for a rule-name target. `via_rules` names the rules that lead
    to a split (for `-n` to say which jobs wait on it).
    """

    id: int
    rule: Rule | None
    outputs: list[str]
    inputs: list[str]
    values: dict[str, str] = field(default_factory=dict)
    deps: list["Job"] = field(default_factory=list)
    is_split: bool = False
    # empty and shared until a job really waits on a split (most never do): keeps jobs small
    pending: list[tuple[str, str, int]] | tuple = ()
    after: set["Job"] | frozenset = frozenset()
    via_rules: set[str] | frozenset = frozenset()
    kind: JobKind = JobKind.RULE
    target: str = ""
    # the paths of each named input (`NAME=PATH`), in order; None for the many jobs with none
    named: dict[str, list[str]] | None = None

    @property
    def name(self) -> str:
        if self.kind is JobKind.RULE:
            return self.rule.name
        return self.target or "(after split)"

    @property
    def has_action(self) -> bool:
        """Whether running this job does something (a RULE job whose rule has an action)."""
        return self.rule is not None and self.rule.action is not None

    @property
    def is_task(self) -> bool:
        return bool(self.rule and self.rule.is_task)

    @property
    def stem(self) -> str | None:
        return self.values.get("stem")

    @property
    def wildcards(self) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if k != "stem"}

    @property
    def temp_outputs(self) -> list[str]:
        """The outputs its rule marks `temp:` (a rule's outputs and its job's share an order)."""
        rule = self.rule
        if rule is None or not rule.temp or self.is_split:
            return []
        marked = {p.text for p in rule.temp}
        return [path for pattern, path in zip(rule.outputs, self.outputs) if pattern.text in marked]

    @property
    def label(self) -> str:
        shown = " ".join(self.outputs) if self.outputs else ""
        if not shown and self.is_split and self.values:  # a split job of a rule with {name}: which one
            shown = " ".join(f"{name}={value}" for name, value in self.values.items())
        return f"{self.name} {shown}".strip()

    def __repr__(self) -> str:
        return f"Job({self.id}, {self.label!r})"


@dataclass
class JobGraph:
    """The jobs reachable from the requested targets, dependencies before dependents.
    `owners`: the job of each output path, as plan.conflicts found them (it grows with the
    run, as split rules' expansions add jobs, while `jobs` stays as resolved)."""

    targets: list[Job]
    jobs: list[Job]
    owners: dict[str, Job] = field(default_factory=dict, repr=False)


def topological(targets: Iterable[Job]) -> list[Job]:
    """Every job reachable from `targets`, each after all of its deps (iterative: chains can be deep)."""
    order: list[Job] = []
    seen = _Seen()
    for target in targets:
        if not seen.add(target.id):
            continue
        stack: list[tuple[Job, int]] = [(target, 0)]
        while stack:
            job, index = stack.pop()
            if index < len(job.deps):
                stack.append((job, index + 1))
                dep = job.deps[index]
                if seen.add(dep.id):
                    stack.append((dep, 0))
            else:
                order.append(job)
    return order


class _Seen:
    """A set of job ids (small numbers, from 0 up) as one byte each: a set of 200,000 took 8 MB
    at the moment a large graph's memory peaks."""

    def __init__(self) -> None:
        self._bytes = bytearray(1024)

    def add(self, number: int) -> bool:
        """Add `number`; False if it was there already."""
        if number >= len(self._bytes):
            self._bytes.extend(bytes(max(number + 1, 2 * len(self._bytes)) - len(self._bytes)))
        if self._bytes[number]:
            return False
        self._bytes[number] = 1
        return True


def to_dot(graph: JobGraph, runs=lambda job: False) -> str:
    """The graph in Graphviz DOT: one node per job, an edge from each dep to its dependent;
    a job that `runs` is drawn bold, one that waits on a split rule dashed."""
    lines = ["digraph rulerun {", "    rankdir=LR;", '    node [shape=box, fontname="monospace"];']
    for job in graph.jobs:
        label = job.label.replace("\\", "\\\\").replace('"', '\\"')
        style = ', style=dashed' if job.pending else (', style=bold' if runs(job) else "")
        lines.append(f'    j{job.id} [label="{label}"{style}];')
    for job in graph.jobs:
        for dep in job.deps:
            lines.append(f"    j{dep.id} -> j{job.id};")
    lines.append("}")
    return "\n".join(lines) + "\n"
