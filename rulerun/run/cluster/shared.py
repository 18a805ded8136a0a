"""The session run_job lends to its callers when no one else's is open (a plain script, no run).

Threads of one process share ONE session per scheduler: the first caller to need it opens it,
every caller holds it while its job is in flight, and the last one to finish closes it. So four
threads calling run_job at once never try to open a second DRMAA session ("already open"), no
caller's job is orphaned by another closing the session under it, and nothing stays open once
every run_job call has returned (a script may then open a drmaa.Session of its own).
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Callable, Iterator


class LentSession:
    """One scheduler's session, opened by `make()` (an unopened session with open, run and
    close) when the first borrower comes and closed when the last one leaves."""

    def __init__(self, make: Callable[[], object]):
        self._make = make
        self._lock = threading.Lock()   # opening, counting and closing are one step each
        self._session = None
        self._borrowers = 0

    def holds(self, session) -> bool:
        """True if `session` is the one lent now (a borrower's, not someone else's own)."""
        return session is not None and session is self._session

    @contextmanager
    def borrowed(self) -> Iterator:
        """The session, open, for the duration of the with-block; ClusterSetupError (from
        open) if it can't be opened, and then nothing is counted."""
        with self._lock:
            if self._session is None:
                self._session = self._make().open()
            self._borrowers += 1
            session = self._session
        try:
            yield session
        finally:
            with self._lock:
                self._borrowers -= 1
                if self._borrowers == 0 and self._session is session:
                    self._session = None
                    session.close()

    def forget(self) -> None:
        """In a forked child: the parent's session and lock are not this process's to use
        (a lock held by a parent's thread at the fork would never be released here)."""
        self._lock = threading.Lock()
        self._session, self._borrowers = None, 0


def _slurm_session():
    from rulerun.run.cluster.slurm import SlurmSession

    return SlurmSession()


def _drmaa_session():
    from rulerun.run.cluster.session import ClusterSession

    return ClusterSession()


LENT = {"drmaa": LentSession(_drmaa_session), "slurm": LentSession(_slurm_session)}


def _forget_all() -> None:
    for lent in LENT.values():
        lent.forget()


os.register_at_fork(after_in_child=_forget_all)
