"""The run lock: one rulerun at a time builds in a project directory.

The lock is an flock on the project directory itself, not on a file in .rulerun: removing
.rulerun (rm -rf) while a run holds a lock on .rulerun/lock let the next run create a new file
and lock that, so two runs built at once. A directory open in a running process can't be
replaced under it. .rulerun/lock still holds the holder's pid, for the waiting message only.

Every process a run starts inherits RUNNING_IN, the project directories whose lock its rulerun
holds: a job that calls rulerun on its own project would wait for its own run forever (and
silently: the waiting message would go to the job's log), so that rulerun refuses at once.
"""

from __future__ import annotations

import fcntl
import os

from rulerun.errors import StateError, UsageError
from rulerun.store.layout import LOCK_NAME, STATE_DIR

RUNNING_IN = "RULERUN_RUNNING_IN"  # os.pathsep-separated real paths, like PATH


class RunLock:
    """An exclusive kernel lock (flock) on the project directory: released by the kernel when the
    process dies, so it can never go stale after a crash."""

    def __init__(self, directory: str = "."):
        self.directory = directory
        self.path = os.path.join(directory, STATE_DIR, LOCK_NAME)
        self._fd: int | None = None
        self._inherited: str | None = None

    def acquire(self, wait: bool, on_wait=lambda holder: None) -> None:
        """Take the lock; `wait`: wait for a run holding it (after calling on_wait(holder),
        holder like 'pid 123' or None), else StateError. UsageError, at once, when this
        process was started by the run that holds it."""
        real = os.path.realpath(self.directory)
        _refuse_if_inside_a_job_of(real)
        fd = _open_directory(self.directory)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(self.path)
                if not wait:
                    raise StateError(f"another rulerun ({holder or 'another process'}) is running in "
                                     "this directory", hint="wait for it to finish, or stop it") from None
                on_wait(holder)
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _write_holder(self.path)
        self._announce(real)

    def _announce(self, real: str) -> None:
        """Tell every process this run starts (they inherit the environment) that it holds `real`."""
        self._inherited = os.environ.get(RUNNING_IN)
        os.environ[RUNNING_IN] = os.pathsep.join(filter(None, [self._inherited, real]))

    def release(self) -> None:
        if self._fd is None:
            return
        if self._inherited is None:
            os.environ.pop(RUNNING_IN, None)
        else:
            os.environ[RUNNING_IN] = self._inherited
        os.close(self._fd)
        self._fd = None


def _refuse_if_inside_a_job_of(real: str) -> None:
    if real in os.environ.get(RUNNING_IN, "").split(os.pathsep):
        raise UsageError("rulerun is already running in this directory: this job is one of its jobs, "
                         "and would wait for its own run forever",
                         hint="a job can't run rulerun on its own project: make what it needs an input "
                              "of its rule, or run that rulerun in another directory")


def _open_directory(directory: str) -> int:
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise StateError(f"can't open the project directory {os.path.abspath(directory)} to lock it: "
                         f"{exc.strerror}", hint="rulerun needs to read the directory it runs in") from None


def _holder(path: str) -> str | None:
    """Who holds the lock, as it wrote it ('pid 123'); None when it can't be told (the file
    was removed with .rulerun, or is being written)."""
    try:
        with open(path, "rb") as file:
            return file.read(64).decode(errors="replace").strip() or None
    except OSError:
        return None


def _write_holder(path: str) -> None:
    """Say who holds the lock, for a run that waits; .rulerun is made again if it was removed."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as file:
            file.write(f"pid {os.getpid()}")
    except OSError:
        pass  # only the waiting message needs it: never fail a run for it
