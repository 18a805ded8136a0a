"""One rulerun invocation, stage by stage: load -> resolve -> (list | graph | dry run | watch | build)."""

from __future__ import annotations

import os
import sys

from rulerun.options import RESTART_MARKER, Options
from rulerun.project import Project, build


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
        from rulerun.graph import to_dot

        sys.stdout.write(to_dot(graph))
        return 0
    if options.dry_run:
        from rulerun import dryrun

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
