"""A plan: the jobs for the requested targets and the decision for each, made once per run.

    make_plan(loaded, targets, state, force, view)  ->  Plan(graph, decisions, resolver, view, signatures)

The resolver builds the graph backwards from the targets through the view of the disk; the
decisions say which jobs must run and why. Both are kept for the run: the run loop asks the
resolver to grow the graph after a split rule ran, and every consumer (the run loop, `-n`,
`--graph`, the no-op record) reads the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

from rulerun.errors import RulerunError, UsageError
from rulerun.plan.conflicts import refuse_conflicting_outputs
from rulerun.plan.decide import Decisions
from rulerun.plan.graph import Job, JobGraph
from rulerun.plan.resolve import Resolver
from rulerun.plan.signature import Signatures, job_key
from rulerun.plan.view import DiskView


@dataclass
class Plan:
    graph: JobGraph
    decisions: Decisions
    resolver: Resolver
    view: DiskView
    signatures: Signatures

    def grow(self, job: Job) -> list[Job]:
        """`job` waited on split rules that have all run: resolve what it waited for; returns
        the new jobs (deps first), and decides `job` anew."""
        new = self.resolver.expand(job)
        self.decisions.again(job)
        return new

    def split_finished(self, job: Job) -> None:
        """A split job succeeded: its outputs are what matches its glob now."""
        self.resolver.split_finished(job)

    def split_failed(self, job: Job) -> None:
        """A split job failed: its outputs are what it left matching its glob (to set aside)."""
        self.resolver.split_failed(job)


def make_plan(pipefile, namespace, targets: list[str], state, force: bool = False,
              view: DiskView | None = None, graph: JobGraph | None = None) -> Plan:
    """The plan for `targets` (none: the Pipefile's default target), or for a `graph` known
    beforehand (from the no-op record). Raises the resolver's errors."""
    view = view or DiskView()
    signatures = Signatures(pipefile, namespace)
    incomplete = state.incomplete() if state is not None else set()
    recorded = state.signature if state is not None else (lambda key: None)
    decisions = Decisions(view, recorded, incomplete, signatures, job_key, forced=force)
    resolver = Resolver(pipefile, view, split_is_stale=decisions.must_run,
                        namespace=namespace)
    if graph is None:
        try:
            graph = resolver.resolve_targets(targets or [default_target(resolver, pipefile)])
        except RulerunError as exc:
            exc.globs_used = resolver.globs_used()  # what watch mode must watch to see it mended
            raise
    refuse_conflicting_outputs(graph.jobs, graph.owners)  # before anything runs, -n included
    if not any(job.pending or job.is_split for job in graph.jobs):
        resolver.settle()  # it will not be asked to grow the graph,
        graph.owners = {}  # nor will jobs join it to be checked against these
    if any(rule.temp for rule in pipefile.rules):
        decisions.requested = {path for job in graph.targets for path in job.outputs}
        for job in reversed(graph.jobs):  # from the targets: a job that needs a deleted temporary
            decisions.must_run(job)        # output revives its maker before anyone reads the maker's answer
    return Plan(graph, decisions, resolver, view, signatures)


def default_target(resolver: Resolver, pipefile) -> str:
    default = resolver.default_target()
    if default is None:
        raise UsageError(f"{pipefile.path} has no rule or task without a pattern to make by default",
                         hint="name a target: rulerun TARGET")
    return default
