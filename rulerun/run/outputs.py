"""Setting aside what a failed job left at its output paths (and a split rule's old outputs
before it runs again), so that nothing half-made looks finished, without ever losing what rulerun
did not make.

An output is moved to .rulerun/failed/ under its path relative to the project directory,
replacing what an earlier failure left there. Only a path below the project directory and
outside .rulerun/ (lang.confine), reached without a symlink that leads out of the project, is
touched at all. When the move fails (another file system, a full disk), a file or symlink is
removed: it is the job's own declared output, as make removes the target of a failed recipe. A
directory is never deleted: it stays where it is. That is safe because the state no longer
trusts it (the job's signature is gone, so the next run makes it again); the failure report says
so. Every output left in place, or removed, is named in the report.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

from rulerun.lang.confine import place_problem
from rulerun.store.layout import QUARANTINE, STATE_DIR



@dataclass
class SetAside:
    """What became of a job's outputs: `moved` the paths under .rulerun/failed/ they went to,
    `notes` one line for each output that could not be moved and what happened to it instead."""

    moved: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.moved or self.notes)


def quarantine(outputs: list[str]) -> SetAside:
    """Move each of `outputs` that exists to .rulerun/failed/ (see the module's docstring)."""
    result = SetAside()
    for output in outputs:
        if os.path.lexists(output):
            _set_aside(output, result)
    return result


def _set_aside(output: str, result: SetAside) -> None:
    real = _real_path(output)
    problem = _unsafe(output, real)
    if problem:
        result.notes.append(f"'{output}' left where it is, untouched: {problem}")
        return
    target = os.path.normpath(os.path.join(QUARANTINE, os.path.relpath(real)))
    try:
        _make_room(target)
        os.replace(output, target)
    except OSError as exc:
        result.notes.append(_not_moved(output, exc))
        return
    result.moved.append(target)


def _unsafe(output: str, real: str) -> str | None:
    """Why `output` must not be touched at all, or None. Load and resolution refuse such
    outputs already; this holds however a path got here."""
    problem = place_problem(output)
    if problem:
        return f"it is {problem}"
    problem = place_problem(real)
    if problem:
        return f"a symlink on its way leads to {real}, {problem}"
    return None


def _real_path(output: str) -> str:
    """`output` with the symlinks of its directories resolved, but not its own last component:
    a symlink output is moved as the link, never through it."""
    full = os.path.abspath(output)
    return os.path.join(os.path.realpath(os.path.dirname(full)), os.path.basename(full))


def _make_room(target: str) -> None:
    """Make target's directory under .rulerun/failed/ and clear target's place. Anything in the
    way that is not a plain directory (a file or a symlink an earlier failure left) is removed
    as an entry, never followed, so the move can't land outside .rulerun/failed/."""
    if not target.startswith(QUARANTINE + os.sep):
        raise OSError(f"'{target}' is not inside {QUARANTINE}/")
    parts = os.path.relpath(target, QUARANTINE).split(os.sep)
    path = QUARANTINE
    for part in ["", *parts[:-1]]:
        path = os.path.join(path, part) if part else path
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            os.unlink(path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.isdir(target) and not os.path.islink(target):
        shutil.rmtree(target)  # what an earlier failure set aside, inside .rulerun/failed/ only
    elif os.path.lexists(target):
        os.unlink(target)


def _not_moved(output: str, exc: OSError) -> str:
    """Remove a file that could not be moved; leave a directory. Says which, and why."""
    why = exc.strerror or str(exc)
    if os.path.isdir(output) and not os.path.islink(output):
        return (f"'{output}' left where it is: it could not be moved to {QUARANTINE}/ ({why}); "
                "it is not trusted, and the next run makes it again")
    try:
        os.unlink(output)
    except FileNotFoundError:
        pass
    except OSError as again:
        return (f"'{output}' left where it is: it could neither be moved to {QUARANTINE}/ ({why}) nor "
                f"removed ({again.strerror or again}); it is not trusted, and the next run makes it again")
    return f"'{output}' removed: it could not be moved to {QUARANTINE}/ ({why})"
