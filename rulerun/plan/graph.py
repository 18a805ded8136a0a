"""The job graph: jobs (a rule bound to its stem and wildcards), what each needs, and DOT output.

The graph can grow while it runs: a job whose inputs depend on a split rule's outputs carries
`pending` items, resolved by the resolver once every split job it waits on has finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from rulerun.lang.model import Rule


@dataclass(eq=False, slots=True)
class Job:
    """One unit of work. `rule` is None for a placeholder: a target whose rule can only be
    chosen after a split rule ran (it has no action; its deps are filled in by expansion).

    `pending` lists what is resolved after the split jobs in `after` have run:
    ("glob", text, position) for an input glob, ("target", path, 0) for a placeholder's
    target, ("rule", name, 0) for a rule-name target.
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

    @property
    def name(self) -> str:
        return self.rule.name if self.rule else "(after split)"

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
    def label(self) -> str:
        shown = " ".join(self.outputs) if self.outputs else ""
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
    seen: set[int] = set()
    for target in targets:
        if target.id in seen:
            continue
        seen.add(target.id)
        stack: list[tuple[Job, int]] = [(target, 0)]
        while stack:
            job, index = stack.pop()
            if index < len(job.deps):
                stack.append((job, index + 1))
                dep = job.deps[index]
                if dep.id not in seen:
                    seen.add(dep.id)
                    stack.append((dep, 0))
            else:
                order.append(job)
    return order


def to_dot(graph: JobGraph) -> str:
    """The graph in Graphviz DOT: one node per job, an edge from each dep to its dependent."""
    lines = ["digraph rulerun {", "    rankdir=LR;", '    node [shape=box, fontname="monospace"];']
    for job in graph.jobs:
        label = job.label.replace("\\", "\\\\").replace('"', '\\"')
        style = ', style=dashed' if job.pending else ""
        lines.append(f'    j{job.id} [label="{label}"{style}];')
    for job in graph.jobs:
        for dep in job.deps:
            lines.append(f"    j{dep.id} -> j{job.id};")
    lines.append("}")
    return "\n".join(lines) + "\n"
