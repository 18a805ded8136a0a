"""`rulerun --clean [TARGET …]`: remove what the targets' jobs make (what exists of it) and what
the state database remembers of those jobs, so that the next run makes them again.

Only outputs of rules' jobs are removed: a file no rule makes (a source) is never a job's
output here, and a path that leads outside the project directory or into .rulerun/ is left
alone (said, not removed). With -n the files are listed and nothing is removed.
"""

from __future__ import annotations

import os
import shutil
from typing import TextIO

from rulerun.plan.signature import job_key
from rulerun.store.layout import STATE_DIR


def outputs_to_clean(plan) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """(job key, its existing outputs) for every job of a rule in the plan's graph, and the
    outputs refused as outside the project."""
    root = os.path.realpath(os.getcwd())
    jobs, refused = [], []
    for job in plan.graph.jobs:
        if job.rule is None or job.is_task:
            continue
        present = []
        for output in job.outputs:
            if not os.path.lexists(output):
                continue
            if _inside_project(output, root):
                present.append(output)
            else:
                refused.append(output)
        jobs.append((job_key(job), present))
    return jobs, refused


def clean(plan, state, out: TextIO, dry_run: bool) -> list[str]:
    """Remove (or, dry, list) the outputs; forget the jobs. Returns the paths removed."""
    jobs, refused = outputs_to_clean(plan)
    paths = [path for _, outputs in jobs for path in outputs]
    verb = "would remove" if dry_run else "removed"
    for path in refused:
        out.write(f"left alone (outside the project): {path}\n")
    if dry_run:
        out.write("".join(f"{verb} {path}\n" for path in paths))
        return []
    removed = []
    for path in paths:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            continue
        removed.append(path)
        out.write(f"{verb} {path}\n")
    # the jobs' signatures and incomplete marks go too: a job that left nothing is no record
    state.record(failed=[(key, outputs) for key, outputs in jobs])
    return removed


def _inside_project(path: str, root: str) -> bool:
    """Below the project directory (the link itself: a symlink's target is not followed out),
    and not in .rulerun/."""
    parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    full = os.path.join(parent, os.path.basename(path))
    inside = os.path.commonpath([root, full]) == root and full != root
    return inside and os.path.commonpath([os.path.join(root, STATE_DIR), full]) != os.path.join(root, STATE_DIR)
