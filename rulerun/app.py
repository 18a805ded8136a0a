"""One rulerun invocation, stage by stage: load -> resolve -> (list | graph | dry run | watch | build)."""

from __future__ import annotations

import os
import sys

from rulerun.options import RESTART_MARKER, Options
from rulerun.errors import UsageError


class Project:
    """A loaded Pipefile and everything derived from it for one run."""

    def __init__(self, options: Options, reporter=None):
        from rulerun.lang.namespace import build_namespace
        from rulerun.lang.parse import load_pipefile
        from rulerun.store.state import State
        from rulerun.plan.work import Work

        self.options = options
        if not os.path.exists(options.file):
            raise UsageError(f"no Pipefile here: '{options.file}' does not exist in {os.getcwd()}",
                             hint="run rulerun in a directory with a Pipefile, or name one with -f FILE (or -C DIR)")
        self.pipefile = load_pipefile(options.file, overrides=options.overrides)
        self.namespace = build_namespace(self.pipefile, options.overrides)
        self.work = Work(self.pipefile, self.namespace)
        self.state = State(readonly=options.dry_run or options.graph or options.list_rules)
        self.view()

    def view(self, lists: bool = True) -> None:
        """A new view of the disk, and the resolver and decisions built on it (lists=False:
        files are looked at one by one, for a graph known beforehand; see fs.FileSystem)."""
        from rulerun.plan.decide import Dirty
        from rulerun.plan.view import FileSystem
        from rulerun.plan.resolve import Resolver
        from rulerun.plan.work import job_key

        self.fs = FileSystem(lists)
        self.dirty = Dirty(self.fs, self.state, self.work.signature, job_key, forced=self.options.force)
        self.resolver = Resolver(self.pipefile, self.fs, split_is_stale=lambda job: bool(self.dirty.decide_with_deps(job)))

    def let_go(self) -> None:
        """Drop the view, the resolver and the decisions, and the jobs they hold."""
        self.fs = self.dirty = self.resolver = None

    def look_again(self, lists: bool = True) -> "Project":
        """The same loaded Pipefile (its preamble not run again) over a fresh view of the disk
        and of the state, read-only."""
        import copy

        from rulerun.store.state import State

        again = copy.copy(self)
        again.state = State(readonly=True)
        again.view(lists)
        return again

    def targets(self) -> list[str]:
        if self.options.targets:
            return self.options.targets
        default = self.resolver.default_target()
        if default is None:
            raise UsageError(f"{self.options.file} has no rule or task without a pattern to make by default",
                             hint="name a target: rulerun TARGET")
        return [default]

    def graph(self):
        return self.resolver.resolve_targets(self.targets())


def build(project: Project, graph, reporter, basis=None) -> int:
    """Run `graph` under the run lock; return the exit status. `basis`: the uptodate.Basis
    `graph` was cut down from, if it was."""
    from rulerun.plan import record as uptodate
    from rulerun.run.orphans import stop_left_running
    from rulerun.store.lock import RunLock

    cluster = submits_to_cluster(project, graph)
    if cluster:
        restart_for_drmaa(project)
    lock = RunLock()
    waited: list[str] = []
    lock.acquire(wait=True, on_wait=lambda holder: (waited.append(holder), reporter.warning(
        f"another rulerun ({holder}) is running in this directory; waiting for it to finish")))
    if waited or (basis is not None and not basis.current()):  # another run built meanwhile
        project, graph, cluster = _reload_after_wait(project, lock, cluster)
        basis = None
    uptodate.forget()  # from here on files change: until this build ends, no record holds
    for text in stop_left_running(project.state):  # a killed run's jobs must not race this one's
        reporter.warning(text)
    executor = make_executor(project.options, project.pipefile)
    outcome = None
    try:
        if cluster:   # no drmaa, no library, scheduler down: say so before any job starts
            executor.cluster().session()
        outcome = _schedule(project, graph, executor, reporter)
        reporter.run_finished(outcome)
        return outcome.exit_code
    finally:
        executor.close()
        project.state.close()
        try:
            if outcome is not None and outcome.exit_code == 0 and not project.options.watch:
                uptodate.remember(project, graph, outcome.ran, basis)
        finally:
            lock.release()


def _schedule(project: Project, graph, executor, reporter):
    """Run the jobs; the scheduler and what it holds are let go when it is done."""
    from rulerun.run.loop import Limits, Scheduler

    scheduler = Scheduler(graph, executor, Limits(project.options.jobs, project.pipefile), project.dirty,
                          project.work, project.state, reporter, project.resolver,
                          keep_going=project.options.keep_going)
    return scheduler.run()


def _reload_after_wait(project: Project, lock, cluster: bool):
    """The run that held the lock changed files and state since `project` looked at them (its
    directory listings, incomplete marks, split rules' outputs): deciding from that picture
    would run again every job the other run just did. Load and resolve again, under the lock."""
    project.state.close()
    try:
        project = Project(project.options)
        graph = project.graph()
        now = submits_to_cluster(project, graph)
        if now and not cluster:
            restart_for_drmaa(project)
    except BaseException:
        lock.release()
        raise
    return project, graph, now


def submits_to_cluster(project: Project, graph) -> bool:
    """Whether this build will submit cluster jobs, so DRMAA must be loaded: a job that must run
    has a cluster rule (or any shell rule, with --cluster), or a Python action that calls
    run_job, or waits on a split rule while the Pipefile has such rules.  Never with --local
    or --touch; runs that don't submit never import drmaa."""
    from rulerun.run.route import may_submit, python_submits

    options = project.options
    if options.local or options.touch or options.dry_run or options.graph or options.list_rules:
        return False
    preamble = python_submits(project.pipefile)
    anywhere = any(may_submit(r, options.cluster, preamble) for r in project.pipefile.rules)
    relevant = [job for job in graph.jobs
                if may_submit(job.rule, options.cluster, preamble) or (job.pending and anywhere)]
    if not relevant:
        return False
    for job in graph.jobs:   # dependency order; the scheduler decides again, to the same answers
        project.dirty.decide(job)
    return any(project.dirty.must_run(job) for job in relevant)


def restart_for_drmaa(project: Project) -> None:
    """Before anything runs: if libdrmaa needs GLIBC_TUNABLES at process start and it is
    missing, have the CLI start this run again with it (cluster.reexec_with_tls_fix)."""
    from rulerun.options import RestartForDrmaa
    from rulerun.run.cluster.session import tls_restart_due

    if project.options.restartable and tls_restart_due():
        project.state.close()
        raise RestartForDrmaa()


def make_executor(options: Options, pipefile):
    from rulerun.run.route import Router

    if options.touch:
        from rulerun.run.touch import TouchExecutor

        return TouchExecutor()
    from rulerun.run.local import LocalExecutor
    from rulerun.run.cluster.services import services

    # the workers' calls (run_job -> cluster_run) are bound to the router that holds them
    router = Router(None, to_cluster=not options.local, every_shell_job=options.cluster)
    router.local = LocalExecutor(os.path.abspath(options.file), options.overrides, services(router))
    return router

def run(options: Options, basis=None) -> int:
    """`basis`: an uptodate.Basis when only some files changed since the last build that left
    everything up to date; its graph, cut down to what they affect, is built instead."""
    from rulerun.ui import make_reporter

    reporter = make_reporter(options.verbosity)
    project = Project(options)
    restarted = RESTART_MARKER in os.environ  # the first process said the warnings already
    for name in sorted(project.pipefile.unknown_overrides if not restarted else ()):
        reporter.warning(f"{name}={options.overrides[name]}: the Pipefile has no variable '{name}'; "
                         "it is defined as a string anyway")
    for text in project.state.warnings:
        reporter.warning(text)
    if options.list_rules:
        return list_rules(project)
    graph = basis.graph(project.pipefile) if basis is not None else None
    if graph is None:
        graph, basis = project.graph(), None
    else:
        project.view(lists=False)  # a few known jobs: stat their files, list no directory
    if options.graph:
        from rulerun.plan.graph import to_dot

        sys.stdout.write(to_dot(graph))
        return 0
    if options.dry_run:
        from rulerun.plan import explain as dryrun

        dryrun.report(graph, project.dirty, sys.stdout)
        return 0
    if options.watch:
        from rulerun.watch import watch

        return watch(options, reporter)
    return build(project, graph, reporter, basis)


def list_rules(project: Project) -> int:
    for rule in project.pipefile.rules:
        kind = "task" if rule.is_task else "rule"
        outputs = " ".join(o.text for o in rule.outputs)
        inputs = " ".join(i.text for i in rule.inputs)
        name = rule.name if rule.is_task or rule.name_given else ""
        shown = f"{kind} {name}".strip()
        header = f"{outputs} : {inputs}".rstrip() if not rule.is_task else f": {inputs}".rstrip()
        sys.stdout.write(f"{shown:<24} {header}  ({rule.loc})\n")
    return 0
