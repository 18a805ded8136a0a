"""What the planner sees of the project's files: one listing per directory, times cached.

The resolver asks "does this exist?" for many candidate paths; answering from one cached
listing of the directory instead of a stat per candidate keeps large graphs fast.

Everything a run learns about the files comes through here, so the view also keeps what it saw
(each directory's time when it was listed, each file's time), brought up to date as the run's
own jobs make their outputs (`made`): with the same Pipefile and request, the same
observations give the same jobs and the same decisions, which is what lets plan/record.py
answer a later no-op run without resolving anything.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

from rulerun.lang.patterns import glob_regex, is_glob, split_glob
from rulerun.store.disk import Disk, RealDisk


class DiskView:
    """A cached view of the files under the working directory, read through a Disk. Paths are
    normalised and relative (or absolute) as the user wrote them."""

    def __init__(self, lists: bool = True, disk: Disk | None = None) -> None:
        # lists=False: existence by a stat of the path itself, for a few known paths in large
        # directories (the jobs some changed files affect), where one listing costs more.
        self.lists = lists
        self.disk = disk or RealDisk()
        self._listings: dict[str, dict[str, bool]] = {}
        self._mtimes: dict[str, int | None] = {}
        # Stamp.mark of each file seen, for the record, where it differs from its mtime: a file
        # written once has the two equal, and 300,000 of them took 24 MB for nothing
        self._marks: dict[str, int] = {}
        self.listed: dict[str, Listed] = {}
        # Directories whose listing this run changed itself (outputs made or removed): their
        # time moved on, and they are listed again before a record is written from this view.
        self.changed_dirs: set[str] = set()
        # False once the view answered from something it does not record, or forgot what it
        # saw: then its observations no longer describe the disk.
        self.recording = True

    def listing(self, directory: str) -> dict[str, bool]:
        """name -> is_dir for every entry of `directory` ('' is the working directory)."""
        found = self._listings.get(directory)
        if found is None:
            stamp = self.disk.stat(directory or ".")
            self.listed[directory] = Listed(time.time_ns(), stamp.mtime if stamp else None, stamp.mark if stamp else 0)
            found = self._listings[directory] = self.disk.listing(directory) or {}
        return found

    def exists(self, path: str) -> bool:
        if not self.lists:
            return self.mtime(path) is not None
        directory, _, name = path.rpartition("/")
        if not name:
            self.recording = False
            return self.disk.exists(path)
        if not directory and path.startswith("/"):
            directory = "/"
        return name in self.listing(directory)

    def mtime(self, path: str) -> int | None:
        """Modification time in nanoseconds, or None when the file is missing."""
        if path in self._mtimes:
            return self._mtimes[path]
        if self.lists and not self.exists(path):  # the listing answers for missing files: no stat needed
            return None
        return self.observe(path)

    def files_seen(self) -> dict[str, int | None]:
        """path -> modification time (ns, None: missing) of every file whose time was asked."""
        return self._mtimes

    def mark(self, path: str) -> int:
        """The Stamp.mark of `path` when it was last looked at (0: missing or never looked at)."""
        found = self._marks.get(path)
        return found if found is not None else self._mtimes.get(path) or 0

    def glob(self, pattern: str) -> list[str]:
        """Existing paths matching the shell glob `pattern`, sorted."""
        return sorted(self.matching(pattern))

    def matching(self, pattern: str) -> list[str]:
        """Existing paths matching the shell glob `pattern`, in no order (for a set: sorting
        100,000 paths that become one costs a tenth of a second)."""
        if not is_glob(pattern):
            return [pattern] if self.exists(pattern) else []
        head, rest = split_glob(pattern)
        found = self._walk(head, rest.split("/"))
        regex = glob_regex(pattern)
        return [p for p in found if regex.fullmatch(p)]

    def _walk(self, directory: str, parts: list[str]) -> list[str]:
        part, more = parts[0], parts[1:]
        names = self.listing(directory)
        if is_glob(part):
            regex = glob_regex(part)
            chosen = [n for n in names if regex.fullmatch(n)]
        else:
            chosen = [part] if part in names else []
        paths = [os.path.join(directory, n) if directory else n for n in chosen]
        if not more:
            return paths
        return [found for p in paths if names.get(os.path.basename(p)) for found in self._walk(p, more)]

    def observe(self, path: str) -> int | None:
        """Look at `path` (again) now: its time from now on."""
        stamp = self.disk.stat(path)
        if stamp is None:
            self._mtimes[path] = None
            self._marks.pop(path, None)
            return None
        mtime, mark = stamp
        self._mtimes[path] = mtime
        if mark != mtime:
            self._marks[path] = mark
        else:
            self._marks.pop(path, None)
        return mtime

    def made(self, path: str) -> int | None:
        """A job of this run made, changed or removed `path`: look at it again (and only at it;
        relisting a large directory after every job would make a run quadratic). Returns its time."""
        mtime = self.observe(path)
        directory, name = os.path.split(path)
        listing = self._listings.get(directory)
        if listing is not None and name:
            if mtime is not None or self.disk.exists(path):  # a time: it is there (no second look)
                listing[name] = self.disk.is_dir(path)
            else:
                listing.pop(name, None)
            self.changed_dirs.add(directory)
        return mtime

    def forget_all(self) -> None:
        """Files changed in ways the view can't follow (a split rule ran): start afresh."""
        self.recording = False
        self._listings.clear()
        self._mtimes.clear()
        self._marks.clear()


class Listed(NamedTuple):
    """When a directory was listed (wall clock, ns), its modification time then (None: no such
    directory) and its Stamp.mark."""

    at: int
    mtime: int | None
    mark: int = 0


def normalise(path: str) -> str:
    """A path as the graph knows it: normalised, './' and trailing '/' removed."""
    if not path:
        return path
    # Nothing normpath would change: no '.' or '..' component, no doubled or trailing '/'.
    # (posixpath.normpath is Python code in 3.11: for every path of a large graph, this test
    # costs a tenth of it.)
    if "/." not in path and "//" not in path and path[0] != "." and path[-1] != "/":
        return path
    return os.path.normpath(path)
