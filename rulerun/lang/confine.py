"""Where a rule may write: below the project directory (the directory rulerun runs in), outside
.rulerun/.

A failed job's outputs are moved aside into .rulerun/failed/, and a split rule's old outputs
before it runs again, so an output that is the project directory itself or lies above or beside
it (`..`, `../proj`) would take the user's files with it, and one inside .rulerun/ could replace
rulerun's own state. Such outputs are refused: literal ones when the Pipefile is loaded
(lang.check), those made from wildcard values when the jobs are worked out (plan.conflicts).
"""

from __future__ import annotations

import os

from rulerun.store.layout import STATE_DIR

OUTSIDE = "outside the project directory"
PROJECT = "the project directory itself"
OWN = f"inside {STATE_DIR}/, rulerun's own directory"


def place_problem(path: str, project: str | None = None) -> str | None:
    """Where `path` (relative to `project`, by default the working directory, or absolute) lies
    when a job may not write it: OUTSIDE, PROJECT or OWN; None when it may."""
    return problem_of(project_relative(path, project))


def problem_of(relative: str | None) -> str | None:
    """place_problem for a path already made relative by project_relative."""
    if relative is None:
        return OUTSIDE
    if relative == ".":
        return PROJECT
    if relative == STATE_DIR or relative.startswith(STATE_DIR + "/"):
        return OWN
    return None


def project_relative(path: str, project: str | None = None) -> str | None:
    """`path` relative to the project directory and normalised ('.' for the directory itself),
    the same for every way of writing one file (`x`, `./x`, `../proj/x`); None when it is not
    at or below the project."""
    if path and path[0] not in "./" and "/." not in path and "//" not in path and not path.endswith("/"):
        return path  # already relative and normal, and below the project: most paths stop here
    return _relative(path, project or os.getcwd())


def _relative(path: str, project: str) -> str | None:
    """`path` relative to `project`, normalised, or None when it is not at or below it.
    A path that leaves the project as written is compared again with the symlinks of its
    directories resolved: the working directory is known by its real path, so an absolute
    path through a symlink to it (`/home/me/proj/x` for `/data/me/proj/x`) is still inside."""
    full = os.path.normpath(os.path.join(project, path))
    relative = os.path.relpath(full, project)
    if not _above(relative):
        return relative
    real = os.path.join(os.path.realpath(os.path.dirname(full)), os.path.basename(full))
    relative = os.path.relpath(os.path.normpath(real), os.path.realpath(project))
    return None if _above(relative) else relative


def _above(relative: str) -> bool:
    return relative == ".." or relative.startswith("../")
