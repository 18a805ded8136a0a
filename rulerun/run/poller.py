"""Waiting on many file descriptors at once (epoll), with the callbacks run by whichever thread
waits: the run loop itself, so that ending a job costs no hand-over between threads.

A shell job's end (its pidfd) and its output (its pipe) are watched here. The run loop waits in
`poll` for them and for results from other threads (a Python job's, a cluster job's), which
`wake` it. With two threads taking turns, every job's end cost two switches of the interpreter
lock and put its handling behind whatever the other thread was doing; on a machine whose cores
are busy with the jobs themselves, that delay was most of a short job's cost.

One thread polls at a time (`poll` holds a lock): the run loop, or the thread of an abort that
waits for the jobs it stopped while the loop waits for the abort.
"""

from __future__ import annotations

import os
import select
import threading
from typing import Callable


class Poller:
    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._closing: list[int] = []
        self._polling = threading.Lock()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._epoll.register(self._wake_read, select.EPOLLIN)
        self._closed = False

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        """Call `callback` (from `poll`) whenever `fd` is readable, until `forget(fd)`. Seen by
        a poll already waiting (epoll)."""
        self._callbacks[fd] = callback
        self._epoll.register(fd, select.EPOLLIN)

    def forget(self, fd: int, close: bool = False) -> None:
        """Stop watching `fd`; with `close`, close it once the events of this poll are handled:
        a number closed at once could be reused by a job starting meanwhile and take a stale
        event of the same batch."""
        if self._callbacks.pop(fd, None) is not None:
            self._epoll.unregister(fd)
        if close:
            self._closing.append(fd)

    def poll(self, timeout: float | None) -> bool:
        """Wait up to `timeout` seconds (None: for ever) for a watched descriptor or `wake`, and
        run the callbacks of those ready. Returns False if the time ran out with nothing."""
        with self._polling:
            if self._closed:
                return False
            events = self._epoll.poll(-1 if timeout is None else max(0.0, timeout))
            for fd, _ in events:
                if fd == self._wake_read:
                    self._drain_wakes()
                    continue
                callback = self._callbacks.get(fd)
                if callback is not None:
                    callback()
            closing, self._closing = self._closing, []
            for fd in closing:
                os.close(fd)
            return bool(events)

    def wake(self) -> None:
        """Make a poll waiting now (or the next one) return: from any thread."""
        try:
            os.write(self._wake_write, b"x")
        except (BlockingIOError, OSError):  # full: a wake is pending anyway; closed: nobody waits
            pass

    def _drain_wakes(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Close the epoll set and the wake pipe (not the watched descriptors: their owners'), once
        no poll runs."""
        with self._polling:
            if self._closed:
                return
            self._closed = True
            for fd in self._closing:
                os.close(fd)
            self._closing = []
            self._epoll.close()
            os.close(self._wake_read)
            os.close(self._wake_write)


class PollingThread:
    """A thread that polls `poller` until stopped: for a ShellRunner that nobody's loop drives."""

    def __init__(self, poller: Poller, name: str = "rulerun-reaper"):
        self._poller = poller
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            self._poller.poll(None)

    def stop(self) -> None:
        self._stop = True
        self._poller.wake()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
