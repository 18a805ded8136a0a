"""The run lock: one rulerun at a time builds in a project directory."""

from __future__ import annotations

import fcntl
import os

from rulerun.errors import StateError
from rulerun.store.layout import STATE_DIR


class RunLock:
    """An exclusive kernel lock (flock) on .rulerun/lock: released by the kernel when the process
    dies, so it can never go stale after a crash."""

    def __init__(self, directory: str = STATE_DIR):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, "lock")
        self._fd: int | None = None

    def acquire(self, wait: bool, on_wait=lambda holder: None) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            if not wait:
                os.close(fd)
                raise StateError(f"another rulerun ({holder}) is running in this directory",
                                 hint="wait for it to finish, or stop it")
            on_wait(holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
