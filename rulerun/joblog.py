"""What a job printed, read back from its log to be shown when the job ends (as Ninja does).

The executors send every job's stdout and stderr to its log (run/local.py, run/worker.py), so
the output of jobs running side by side never mixes; the reporter shows each one whole once
its job ended. A long output shows its last lines and says where the rest is: a terminal is
no place for a megabyte of compiler warnings, the log is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

SHOWN_LINES = 40        # lines of a job's output shown when it ends; the rest stays in its log
READ_BYTES = 64 * 1024  # read from the end of a log at most: a huge log must not stall the run


@dataclass(frozen=True)
class Printed:
    """The last `lines` a job printed; `hidden` lines before them are only in `path` (more
    than that when `cut`: the log was too long to count)."""

    lines: list[str]
    hidden: int
    path: str
    cut: bool = False

    def more(self) -> str:
        """The line that says where the rest is, or ''."""
        if not (self.hidden or self.cut):
            return ""
        count = f"{self.hidden}+" if self.cut else str(self.hidden)
        return f"... {count} earlier line(s) in {self.path}"

    def __bool__(self) -> bool:
        return bool(self.lines)


def printed(spec, result, limit: int = SHOWN_LINES) -> Printed:
    """What the job of `spec` printed: the text a cluster job's result carries, else its log."""
    carried = (result.stdout or "") + (result.stderr or "")
    if carried:
        lines = carried.rstrip("\n").splitlines()
        return Printed(lines[-limit:], max(0, len(lines) - limit), spec.log_path)
    if not getattr(result, "printed", True):  # no log was made: nothing to read back
        return Printed([], 0, spec.log_path)
    return tail(spec.log_path, limit)


def tail(path: str, limit: int) -> Printed:
    """The last `limit` lines of the file at `path` and how many come before them (counted
    only within the last READ_BYTES: beyond that, at least one more)."""
    try:
        with open(path, "rb") as log:
            size = log.seek(0, os.SEEK_END)
            if size == 0:
                return Printed([], 0, path)
            log.seek(max(0, size - READ_BYTES))
            text = log.read().decode(errors="replace")
    except OSError:  # no log: the job printed nothing
        return Printed([], 0, path)
    lines = text.rstrip("\n").splitlines()
    cut = size > READ_BYTES  # the first line read may be the end of a longer one
    if cut:
        lines = lines[1:]
    return Printed(lines[-limit:], max(0, len(lines) - limit), path, cut)
