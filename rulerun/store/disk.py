"""The project's files as rulerun touches them: one small interface, a real disk and a fake one.

Everything that decides from or acts on the project's files goes through a Disk: the view the
resolver and the decisions read (plan/view.py), and the handling of a job's outputs (run/).
`RealDisk` is the operating system; `FakeDisk` is a dict of paths with a logical clock that
moves only when a test says `tick()`, so the planner's logic is tested without sleeps or
processes (as Ninja's VirtualFileSystem does).
"""

from __future__ import annotations

import os
from typing import NamedTuple, Protocol


class Stamp(NamedTuple):
    """What a look at a path saw: its modification time (ns), and a mark of what a person can't
    put back: its change time (ns), which every change of the file sets to now, a restored
    modification time included, and which a file reached through a symlink switched to
    another version has of its own (`tar x` restoring times, `data -> v2`)."""

    mtime: int
    mark: int


class Disk(Protocol):
    def stat(self, path: str) -> Stamp | None:
        """The stamp of `path` (following links), or None when nothing is there."""

    def mtime(self, path: str) -> int | None:
        """Modification time in nanoseconds (following links), or None when nothing is there."""

    def listing(self, directory: str) -> dict[str, bool] | None:
        """name -> is a directory, for every entry of `directory` ('' is the working
        directory), or None when it is not a directory."""

    def exists(self, path: str) -> bool:
        """Something is at `path` (a dangling link counts)."""

    def is_dir(self, path: str) -> bool:
        """A directory is at `path`, not through a link."""

    def makedirs(self, path: str) -> None:
        """`path` and its parents are directories (raises OSError when that can't be)."""

    def move(self, source: str, target: str) -> None:
        """Rename `source` to `target`, replacing a file there (raises OSError)."""

    def remove(self, path: str) -> None:
        """Remove the file or link at `path`; nothing there is no error. Never a tree."""

    def touch(self, path: str) -> None:
        """Set the time of what is at `path` to now (raises OSError)."""


class RealDisk:
    """The operating system's files, relative to the working directory."""

    def stat(self, path: str) -> Stamp | None:
        try:
            found = os.stat(path)
        except (OSError, ValueError):
            return None
        return Stamp(found.st_mtime_ns, found.st_ctime_ns)

    def mtime(self, path: str) -> int | None:
        try:
            return os.stat(path).st_mtime_ns
        except (OSError, ValueError):  # ValueError: a NUL in a name a user wrote
            return None

    def listing(self, directory: str) -> dict[str, bool] | None:
        found: dict[str, bool] = {}
        try:
            with os.scandir(directory or ".") as entries:
                for entry in entries:
                    try:
                        found[entry.name] = entry.is_dir()
                    except OSError:
                        found[entry.name] = False
        except (OSError, ValueError):
            return None
        return found

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path) and not os.path.islink(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def move(self, source: str, target: str) -> None:
        os.replace(source, target)

    def touch(self, path: str) -> None:
        os.utime(path)

    def remove(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class FakeDisk:
    """Files and directories in memory, with a clock that moves only on `tick()`.

    `write(path)` makes a file (and its directories) at the current time; every write and
    removal also updates the time of the directory it changes, as a real file system does."""

    def __init__(self) -> None:
        self.now = 1_000_000_000
        self.files: dict[str, int] = {}
        self.dirs: dict[str, int] = {"": self.now}

    def tick(self, ns: int = 1_000_000_000) -> int:
        self.now += ns
        return self.now

    def write(self, path: str, mtime: int | None = None) -> None:
        self.makedirs(os.path.dirname(path))
        self.files[path] = self.now if mtime is None else mtime
        self._touch_dir(os.path.dirname(path))

    def stat(self, path: str) -> Stamp | None:
        mtime = self.mtime(path)
        return None if mtime is None else Stamp(mtime, mtime)

    def mtime(self, path: str) -> int | None:
        path = os.path.normpath(path) if path else ""
        if path in self.files:
            return self.files[path]
        return self.dirs.get("" if path == "." else path)

    def listing(self, directory: str) -> dict[str, bool] | None:
        directory = "" if directory in ("", ".") else directory
        if directory not in self.dirs:
            return None
        found: dict[str, bool] = {}
        for path, is_dir in [*((p, False) for p in self.files), *((d, True) for d in self.dirs if d)]:
            parent, name = os.path.split(path)
            if parent == directory:
                found[name] = is_dir
        return found

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs

    def is_dir(self, path: str) -> bool:
        return path in self.dirs

    def makedirs(self, path: str) -> None:
        if not path or path in self.dirs:
            return
        if path in self.files:
            raise FileExistsError(path)
        self.makedirs(os.path.dirname(path))
        self.dirs[path] = self.now
        self._touch_dir(os.path.dirname(path))

    def move(self, source: str, target: str) -> None:
        if source not in self.files:
            raise FileNotFoundError(source)
        self.makedirs(os.path.dirname(target))
        self.files[target] = self.files.pop(source)
        self._touch_dir(os.path.dirname(source))
        self._touch_dir(os.path.dirname(target))

    def remove(self, path: str) -> None:
        if self.files.pop(path, None) is not None:
            self._touch_dir(os.path.dirname(path))

    def touch(self, path: str) -> None:
        if path in self.files:
            self.files[path] = self.now
        elif path in self.dirs:
            self.dirs[path] = self.now
        else:
            raise FileNotFoundError(path)

    def _touch_dir(self, directory: str) -> None:
        self.dirs[directory] = self.now
