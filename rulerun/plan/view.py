"""What the files on disk look like: one directory listing per directory, stats cached.

The resolver asks "does this exist?" for many candidate paths; answering from one cached
listing of the directory instead of a stat per candidate keeps large graphs fast.

Everything a run learns about the disk comes through here, so the view also records what it
saw (each directory's modification time when it was listed, each file's time): with the same
Pipefile and request, the same observations give the same jobs and the same decisions, which
is what lets uptodate.py answer a later no-op run without resolving anything.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

from rulerun.lang.patterns import glob_regex, is_glob, split_glob


class FileSystem:
    """Cached view of the files under the working directory. Paths are normalised and relative
    (or absolute) as the user wrote them; call `forget`/`forget_all` after files change."""

    def __init__(self, lists: bool = True) -> None:
        # lists=False: existence by a stat of the path itself, for a few known paths in large
        # directories (the jobs some changed files affect), where one listing costs more.
        self.lists = lists
        self._listings: dict[str, dict[str, bool]] = {}
        self._mtimes: dict[str, int | None] = {}
        self.listed: dict[str, Listed] = {}
        # False once the view answered from something it does not record, or was told that
        # files changed: then its observations no longer describe one moment of the disk.
        self.recording = True

    def listing(self, directory: str) -> dict[str, bool]:
        """name -> is_dir for every entry of `directory` ('' is the working directory)."""
        found = self._listings.get(directory)
        if found is None:
            self.listed[directory] = Listed(time.time_ns(), mtime_of(directory or "."))
            found = {}
            try:
                with os.scandir(directory or ".") as entries:
                    for entry in entries:
                        try:
                            found[entry.name] = entry.is_dir()
                        except OSError:
                            found[entry.name] = False
            except OSError:
                pass
            self._listings[directory] = found
        return found

    def exists(self, path: str) -> bool:
        if not self.lists:
            return self.mtime(path) is not None
        directory, _, name = path.rpartition("/")
        if not name:
            self.recording = False
            return os.path.exists(path)
        if not directory and path.startswith("/"):
            directory = "/"
        return name in self.listing(directory)

    def mtime(self, path: str) -> float | None:
        """Modification time in nanoseconds, or None when the file is missing."""
        if path in self._mtimes:
            return self._mtimes[path]
        if self.lists and not self.exists(path):  # the listing answers for missing files: no stat needed
            return None
        value = self._mtimes[path] = mtime_of(path)
        return value

    def files_seen(self) -> dict[str, int | None]:
        """path -> modification time (ns, None: vanished) of every file whose time was asked."""
        return self._mtimes

    def glob(self, pattern: str) -> list[str]:
        """Existing paths matching the shell glob `pattern`, sorted."""
        if not is_glob(pattern):
            return [pattern] if self.exists(pattern) else []
        head, rest = split_glob(pattern)
        found = self._walk(head, rest.split("/"))
        regex = glob_regex(pattern)
        return sorted(p for p in found if regex.fullmatch(p))

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

    def forget(self, path: str) -> None:
        """`path` was made, changed or removed: look at it again (and only at it; relisting a
        large directory after every job would make a run quadratic)."""
        self.recording = False
        self._mtimes.pop(path, None)
        directory, name = os.path.split(path)
        listing = self._listings.get(directory)
        if listing is not None and name:
            if os.path.lexists(path):
                listing[name] = os.path.isdir(path)
            else:
                listing.pop(name, None)

    def forget_all(self) -> None:
        self.recording = False
        self._listings.clear()
        self._mtimes.clear()


class Listed(NamedTuple):
    """When a directory was listed (wall clock, ns) and its modification time then (None: no
    such directory)."""

    at: int
    mtime: int | None


def mtime_of(path: str) -> int | None:
    """Modification time in nanoseconds, or None when there is nothing at `path`."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def normalise(path: str) -> str:
    """A path as the graph knows it: normalised, './' and trailing '/' removed."""
    return os.path.normpath(path) if path else path
