"""One rulerun invocation as a pipeline of values, and a build under the run lock.

    load(options)        Pipefile text -> Loaded(checked Pipefile, namespace)    rulerun.lang
    plan_for(...)        -> Plan(graph, decisions, ...)                          rulerun.plan
    then one of          --list, --graph, -n (plan.explain), build()             rulerun.run

(--watch is watch.py, above this module, which loads, plans and builds once per change.)
`build` is what a single run and each rebuild of watch mode have in common: the run lock, the
cluster set-up (from the Pipefile, then from the plan's decisions), the run loop, and the no-op
record written from what the run saw.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from rulerun.errors import UsageError
from rulerun.options import Options


@dataclass(frozen=True)
class Loaded:
    """A checked Pipefile, the namespace its top-level Python built, and the shell its shell
    actions run with (rulerun.run.shell)."""

    pipefile: Any
    namespace: dict
    shell: tuple[str, ...]


def load(options: Options) -> Loaded:
    """The Pipefile `options` name, parsed, checked and its top-level Python run. Raises
    PipefileError for a mistake in it, UsageError when there is none."""
    from rulerun.lang.namespace import build_namespace
    from rulerun.lang.parse import load_pipefile
    from rulerun.lang.pathexpr import expand_pipefile

    if not os.path.exists(options.file):
        raise UsageError(f"no Pipefile here: '{options.file}' does not exist in {os.getcwd()}",
                         hint="run rulerun in a directory with a Pipefile, or name one with -f FILE (or -C DIR)")
    from rulerun.lang.model import ShellAction
    from rulerun.run import shell

    pipefile = load_pipefile(options.file, overrides=options.overrides, limit_sizes=options.limit_sizes)
    namespace = build_namespace(pipefile, options.namespace_overrides)
    pipefile = expand_pipefile(pipefile, namespace)  # $(EXPR) in paths, now that the namespace exists
    # here, as the Pipefile loads: a missing shell is said before anything runs
    needed = any(isinstance(rule.action, ShellAction) for rule in pipefile.rules)
    return Loaded(pipefile, namespace, shell.from_namespace(namespace, required=needed))


def plan_for(loaded: Loaded, options: Options, state, basis=None):
    """The plan of this run: from the graph the no-op record keeps when `basis` (a
    record.Basis) says only some files changed, else resolved in full. Returns (plan, basis),
    basis None when the record's graph could not be used."""
    from rulerun.plan.planner import make_plan
    from rulerun.plan.view import DiskView

    if basis is not None:
        graph = basis.graph(loaded.pipefile)
        if graph is not None:  # a few known jobs: stat their files, list no directory
            view = DiskView(lists=False)
            return make_plan(loaded.pipefile, loaded.namespace, options.targets, state, options.force,
                             view=view, graph=graph), basis
    return make_plan(loaded.pipefile, loaded.namespace, options.targets, state, options.force), None


def run(options: Options, basis=None) -> int:
    """`basis`: a record.Basis when only some files changed since the last build that left
    everything up to date; its graph, cut down to what they affect, is built instead."""
    from rulerun.run.cluster.tls import REEXEC_MARKER
    from rulerun.store.state import State
    from rulerun.ui import make_reporter

    reporter = make_reporter(options.verbosity, touching=options.touch)
    loaded = load(options)
    if REEXEC_MARKER not in os.environ:  # a restarted run: the first process said them already
        for name in sorted(loaded.pipefile.unknown_overrides):
            reporter.warning(f"{name}={options.overrides[name]}: the Pipefile has no variable '{name}'; "
                             "it is defined as a string anyway")
        from rulerun.lang.check import make_habits

        from rulerun.run.route import idle_cluster_lines

        for text in make_habits(loaded.pipefile) + idle_cluster_lines(loaded.pipefile):
            reporter.warning(text)
    if options.list_rules:
        return list_rules(loaded.pipefile)
    if options.clean:
        return clean(loaded, options, reporter)
    state = State(readonly=options.dry_run or options.graph)
    try:
        for text in state.warnings:
            reporter.warning(text)
        plan, basis = plan_for(loaded, options, state, basis)
        warn_uncountable(plan, reporter)
        if options.dry_run or options.verbosity > 0:
            from rulerun.plan.emptyglobs import empty_globs

            for glob, rule in empty_globs(plan):
                reporter.warning(f"the glob '{glob}' of rule '{rule.name}' ({rule.loc}) matches no file")
        if options.graph:
            from rulerun.plan.graph import to_dot

            sys.stdout.write(to_dot(plan.graph, plan.decisions.runs))
            return 0
        if options.dry_run:
            from rulerun.plan import explain

            explain.report(plan, sys.stdout, _commands(loaded) if options.verbosity > 0 else None,
                           state.cluster_jobs())
            return 0
        return build(loaded, plan, options, reporter, state, basis)
    finally:
        state.close()


def warn_uncountable(plan, reporter) -> None:
    """Say, on every run, what the graph could not count (plan/emptyglobs.uncountable)."""
    if plan.resolver.uncountable:
        from rulerun.plan.emptyglobs import uncountable

        for text in uncountable(plan.resolver):
            reporter.warning(text)


def _commands(loaded: Loaded):
    """For `-n -v`: a job's command as it would run (shell), or where its Python block is."""
    from rulerun.lang.model import PythonAction
    from rulerun.run.spec import Specs

    specs = Specs(loaded.namespace, loaded.shell)

    def command(job) -> str:
        if isinstance(job.rule.action, PythonAction):
            return f"python: the block at {job.rule.action.loc}"
        try:
            return "\n".join("$ " + line for line in specs.command(job).rstrip("\n").splitlines())
        except ValueError as exc:
            return f"(its command can't be made: {exc})"
    return command


def clean(loaded: Loaded, options: Options, reporter) -> int:
    """--clean: under the run lock (no build may be making what is removed), the targets' plan,
    then their outputs and records removed; with -n only listed."""
    from rulerun import clean as cleaning
    from rulerun.plan import record
    from rulerun.store.lock import RunLock
    from rulerun.store.state import State

    lock = RunLock()
    if not options.dry_run:
        lock.acquire(wait=True, on_wait=lambda holder: reporter.warning("another rulerun is running here; waiting"))
    state = State(readonly=options.dry_run)
    try:
        plan, _ = plan_for(loaded, options, state)
        if not options.dry_run:
            record.forget()  # what it said is up to date is about to go
        removed = cleaning.clean(plan, state, sys.stdout, options.dry_run)
        if not options.dry_run and options.verbosity >= 0:
            reporter.note(f"rulerun: removed {len(removed)} file(s)")
        return 0
    finally:
        state.close()
        if not options.dry_run:
            lock.release()


def list_rules(pipefile) -> int:
    from rulerun.lang.pathexpr import shown_path

    for rule in pipefile.rules:
        kind = "task" if rule.is_task else "rule"
        outputs = " ".join(shown_path(o) + ("/" if o.text in rule.directories else "") for o in rule.outputs)
        inputs = " ".join(shown_path(i) for i in rule.inputs)
        name = rule.name if rule.is_task or rule.name_given else ""
        shown = f"{kind} {name}".strip()
        header = f"{outputs} : {inputs}".rstrip() if not rule.is_task else f": {inputs}".rstrip()
        if rule.constraints:  # the {name,REGEX} taken out of its outputs
            header += "  where " + " ".join(f"{{{c.name},{c.regex}}}" for c in rule.constraints)
        sys.stdout.write(f"{shown:<24} {header}  ({rule.loc})\n")
    for constraint in pipefile.wildcards.values():  # top-level `wildcard NAME = "REGEX"`
        sys.stdout.write(f"{'wildcard ' + constraint.name:<24} {{{constraint.name},{constraint.regex}}}  ({constraint.loc})\n")
    return 0


# ---------------------------------------------------------------------- building


def build(loaded: Loaded, plan, options: Options, reporter, state, basis=None) -> int:
    """Run `plan` under the run lock; return the exit status. A run that had to wait for another
    one loads and plans again, with the state opened anew (and closed here)."""
    from rulerun.plan import record
    from rulerun.run.orphans import stop_left_running
    from rulerun.store.lock import RunLock
    from rulerun.store.state import State

    restart_for_cluster(plan, options, state)
    lock = RunLock()
    waited: list[str | None] = []
    lock.acquire(wait=True, on_wait=lambda holder: (waited.append(holder), reporter.warning(
        f"another rulerun{f' ({holder})' if holder else ''} is running in this directory; "
        "waiting for it to finish")))
    replanned = None
    try:
        if waited or (basis is not None and not basis.current()):
            # The run that held the lock changed files and state since this plan looked at them
            # (directory listings, incomplete marks, split rules' outputs): deciding from that
            # picture would run again every job the other run just did. Plan again, under the lock.
            state.close()
            state = replanned = State()
            loaded = load(options)
            plan, basis = plan_for(loaded, options, state)
            restart_for_cluster(plan, options, state)
        record.forget()  # from here on files change: until this build ends, no record holds
        for text in stop_left_running(state):  # a killed run's jobs must not race this one's
            reporter.warning(text)
        outcome = _run_jobs(loaded, plan, options, reporter, state)
        state.close()  # its last write (a checkpoint) before the record takes its time
        if outcome.exit_code == 0 and not options.watch:
            record.remember(loaded, plan, options, outcome, state, basis)
        return outcome.exit_code
    finally:
        if replanned is not None:
            replanned.close()
        lock.release()


def _run_jobs(loaded: Loaded, plan, options: Options, reporter, state):
    from rulerun.run.loop import Scheduler
    from rulerun.run.ready import Limits, ReadyQueue
    from rulerun.run.spec import Specs

    executor = make_executor(options, reporter)
    try:
        if cluster_runs(plan, options, loaded.pipefile):  # no drmaa, no library, scheduler down:
            executor.cluster().session()                    # say so before any job starts
        sizes = {name: limit.size for name, limit in loaded.pipefile.limits.items()} | options.limit_sizes
        limits = Limits(options.jobs, sizes)
        specs = Specs(loaded.namespace, loaded.shell, values=plan.signatures.values, max_threads=options.jobs)
        from rulerun.timeline import recording

        reporter = recording(reporter, plan, options, state)  # the ETA, and this run for --report
        scheduler = Scheduler(plan, specs, state, executor, ReadyQueue(limits),
                              reporter, keep_going=options.keep_going, keep_temp=options.keep_temp)
        outcome = scheduler.run()
        if outcome.failures:
            from rulerun.run.unmade import targets_not_made

            outcome.unmade = targets_not_made(plan.graph.targets, [f.job for f in outcome.failures])
        reporter.run_finished(outcome)
        return outcome
    finally:
        executor.close()


# ---------------------------------------------------------------------- the cluster


def cluster_possible(pipefile, options: Options) -> bool:
    """Whether any job of this run could go to the cluster, from the Pipefile and the options
    alone: a cluster rule (or any shell rule, with --cluster), or a Python action that calls
    run_job. Never with --local or --touch, -n, --graph, --list."""
    from rulerun.run.route import may_submit, python_submits

    if options.local or options.touch or options.dry_run or options.graph or options.list_rules:
        return False
    preamble = python_submits(pipefile)
    return any(may_submit(rule, options.cluster, preamble) for rule in pipefile.rules)


def cluster_runs(plan, options: Options, pipefile) -> bool:
    """Whether this run will submit: a job the plan's decisions run may submit, or a job waits
    on a split rule while some rule could. Runs that don't submit never import drmaa."""
    from rulerun.run.route import may_submit, python_submits

    if not cluster_possible(pipefile, options):
        return False
    preamble = python_submits(pipefile)
    decisions = plan.decisions
    return any((job.pending or (decisions.runs(job) and may_submit(job.rule, options.cluster, preamble)))
               for job in plan.graph.jobs)


def restart_for_cluster(plan, options: Options, state) -> None:
    """Before anything runs: when this run will load libdrmaa and it needs GLIBC_TUNABLES set at
    process start, start the program again with it (the state is closed first). Returns when no
    restart is needed; a restart that fails is a UsageError."""
    from rulerun.run.cluster.tls import TLS_TUNABLE, reexec_with_tls_fix, tls_restart_due

    if options.restart_argv is None or not tls_restart_due() or not cluster_runs(plan, options, plan.resolver.pipefile):
        return
    if _uses_slurm(options):   # sbatch needs no libdrmaa, so no tunable either
        return
    state.close()
    try:
        os.chdir(options.start_dir)  # -C is in the arguments again
        reexec_with_tls_fix([sys.argv[0], *options.restart_argv])
    except OSError as exc:
        raise UsageError(f"could not restart with GLIBC_TUNABLES={TLS_TUNABLE} for the DRMAA library: {exc}",
                         hint="set it in the environment, or run with --local") from None


def _uses_slurm(options: Options) -> bool:
    from rulerun.errors import ClusterSetupError
    from rulerun.run.cluster.slurm import choose_scheduler

    try:
        return choose_scheduler(options.scheduler) == "slurm"
    except ClusterSetupError:
        return False   # said when the cluster is opened


def make_executor(options: Options, reporter=None):
    """The executor of this run: --touch touches outputs; otherwise jobs run here and, unless
    --local, cluster jobs go to a cluster opened when the first one is submitted."""
    if options.touch:
        from rulerun.run.touch import TouchExecutor

        return TouchExecutor()
    from rulerun.run.cluster.services import services
    from rulerun.run.local import LocalExecutor
    from rulerun.run.route import LazyCluster, Router

    cluster = None if options.local else LazyCluster(lambda: cluster_executor(options, reporter))
    local = LocalExecutor(os.path.abspath(options.file), options.namespace_overrides, services(cluster))
    return Router(local, cluster, every_shell_job=options.cluster)


def cluster_executor(options: Options, reporter=None):
    """The cluster executor of the run's scheduler (rulerun.run.cluster.slurm.choose_scheduler):
    one executor, its session DRMAA's or Slurm's, each recording what it submitted."""
    from rulerun.run.cluster.executor import DrmaaExecutor
    from rulerun.run.cluster.slurm import SlurmSession, choose_scheduler
    from rulerun.store.cluster_jobs import SubmittedJobs

    warn = reporter.warning if reporter is not None else None
    if choose_scheduler(options.scheduler) == "slurm":
        return DrmaaExecutor(lambda: SlurmSession(poll_seconds=options.poll_seconds,
                                                  record=SubmittedJobs(), warn=warn,
                                                  pending_warn=options.pending_warn))
    from rulerun.run.cluster.session import ClusterSession

    return DrmaaExecutor(lambda: ClusterSession(poll_seconds=options.poll_seconds,
                                                record=SubmittedJobs(), warn=warn))
