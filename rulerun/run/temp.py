"""Temporary outputs (`temp:`, PIPEFILE.md Part 2): which to delete, and when.

A temporary output is deleted once every job of this run that reads it has succeeded, unless it
was asked for on the command line or the run keeps them (--keep-temp). Whether a missing one
makes anything run again is decided in plan/decide.py (it does not, while what it was made from
is unchanged).
"""

from __future__ import annotations

from typing import Callable, Iterable

from rulerun.plan.graph import Job


class TempOutputs:
    """How many running readers each temporary output of the run still waits for."""

    def __init__(self, jobs: Iterable[Job], runs: Callable[[Job], bool], requested: set[str]):
        jobs = list(jobs)
        temps = {path for job in jobs for path in job.temp_outputs} - requested
        self.readers: dict[str, int] = {}
        for job in jobs:
            if not runs(job):
                continue
            for path in job.inputs:
                if path in temps:
                    self.readers[path] = self.readers.get(path, 0) + 1

    def succeeded(self, job: Job) -> list[str]:
        """`job` succeeded: the temporary outputs whose last reader it was."""
        done = []
        for path in job.inputs:
            if path in self.readers:
                self.readers[path] -= 1
                if self.readers[path] == 0:
                    del self.readers[path]
                    done.append(path)
        return done
