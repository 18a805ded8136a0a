"""The jobs a few changed files can affect, without resolving the whole Pipefile again.

When the no-op record (uptodate.py) finds only some files changed (every directory lists as
before, so every glob and every choice of rule comes out the same), the graph it recorded is
still the graph. The jobs that read or write a changed file, and everything downstream of
them, are the only ones whose decision can differ; the rest were up to date and still are.

The recorded graph is a small sqlite file, so that a run reads only the parts it needs (a
graph of 200,000 jobs takes longer to load whole than to decide a few of its jobs): jobs and
file users are stored in blocks of CHUNK consecutive entries, one row each, which keeps writing
quick. Files are named by their index in the record's list of files (names it does not hold,
such as task names, follow in `meta.extra`):

    save(path, graph_id, graph, files)    per job its rule, files, values, deps and dependents;
                                          per recorded file the jobs using it
    affected_graph(path, graph_id, pipefile, changed, files)
                                          the jobs using a changed file and all their
                                          dependents, as Job objects whose deps are cut down
                                          to that set (the others are up to date, so nothing
                                          waits for them), with the index of each of their
                                          files; None when it can't be worked out
"""

from __future__ import annotations

import marshal
import os
import sqlite3
from array import array

from rulerun.plan.graph import Job, JobGraph, JobKind
from rulerun.lang.model import Pipefile

_SCHEMA = """
CREATE TABLE meta (graph_id INTEGER, targets BLOB, extra BLOB);
CREATE TABLE jobs (chunk INTEGER PRIMARY KEY, block BLOB);
CREATE TABLE users (chunk INTEGER PRIMARY KEY, block BLOB);
"""
CHUNK = 512


def can_record(graph: JobGraph) -> bool:
    """Split rules change the graph when they run: such graphs are resolved every time."""
    return not any(job.is_split or job.pending for job in graph.jobs)


def save(path: str, graph_id: int, graph: JobGraph, files: list[str]) -> None:
    """Write `graph` (its jobs in dependency order) to a new sqlite file at `path`; `files`
    are the record's files, whose indices name them. Written after a build, when a large
    graph's memory is at its peak: what it works out is kept in flat arrays, not a list per
    job and per file (which cost about 60 MB at 200,000 jobs)."""
    names = _Names(files)
    position = _positions(graph.jobs)
    users = _Pairs()
    temporary = f"{path}.{os.getpid()}"
    _remove(temporary)
    db = sqlite3.connect(temporary, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=OFF")  # a cache written once, then renamed into place
        db.execute("PRAGMA synchronous=OFF")
        db.executescript(_SCHEMA)
        db.execute("BEGIN")
        db.executemany("INSERT INTO jobs VALUES (?, ?)", _job_blocks(graph, position, names, users))
        db.executemany("INSERT INTO users VALUES (?, ?)", _chunks(users.grouped(len(files))))
        db.execute("INSERT INTO meta VALUES (?, ?, ?)",  # after the jobs: they name the extra files
                   (graph_id, marshal.dumps([position[job.id] for job in graph.targets]),
                    marshal.dumps(names.extra)))
        db.execute("COMMIT")
    finally:
        db.close()
    os.replace(temporary, path)


def _positions(jobs: list[Job]) -> array:
    """Each job's index in `jobs`, by its id (ids are small numbers from 0 up)."""
    position = array("l", [-1]) * (max((job.id for job in jobs), default=0) + 1)
    for index, job in enumerate(jobs):
        position[job.id] = index
    return position


class _Pairs:
    """(group, member) pairs, then each group's members in the order added: a list per group
    in two flat arrays."""

    def __init__(self) -> None:
        self._groups = array("l")
        self._members = array("l")

    def add(self, group: int, member: int) -> None:
        self._groups.append(group)
        self._members.append(member)

    def grouped(self, count: int) -> "_Grouped":
        """The members of groups 0 .. count-1 (pairs of other groups are left out)."""
        starts = array("l", [0]) * (count + 1)
        for group in self._groups:
            if group < count:
                starts[group + 1] += 1
        for group in range(count):
            starts[group + 1] += starts[group]
        cursor = array("l", starts)
        members = array("l", [0]) * starts[count]
        for group, member in zip(self._groups, self._members):
            if group < count:
                members[cursor[group]] = member
                cursor[group] += 1
        self._groups, self._members = array("l"), array("l")
        return _Grouped(starts, members)


class _Grouped:
    def __init__(self, starts: array, members: array):
        self._starts, self._members = starts, members

    def __len__(self) -> int:
        return len(self._starts) - 1

    def __getitem__(self, group: int) -> list[int]:
        return self._members[self._starts[group]:self._starts[group + 1]].tolist()


def _job_blocks(graph: JobGraph, position: array, names: "_Names", users: _Pairs):
    """(block number, marshalled rows) for every CHUNK jobs, made one block at a time (the rows
    of 200,000 jobs are never all in memory); each job is noted in `users` of its files."""
    dependents = _Pairs()
    for index, job in enumerate(graph.jobs):
        for dep in job.deps:
            dependents.add(position[dep.id], index)
    dependents = dependents.grouped(len(graph.jobs))
    for start in range(0, len(graph.jobs), CHUNK):
        block = []
        for index in range(start, min(start + CHUNK, len(graph.jobs))):
            job = graph.jobs[index]
            outputs, inputs = names.ids(job.outputs), names.ids(job.inputs)
            for file in (*outputs, *inputs):
                if file < names.count:
                    users.add(file, index)
            block.append(_row(job, outputs, inputs, tuple(position[dep.id] for dep in job.deps),
                              tuple(dependents[index])))
        yield start // CHUNK, marshal.dumps(block)


def _row(job: Job, outputs: tuple[int, ...], inputs: tuple[int, ...], deps: tuple[int, ...],
         dependents: tuple[int, ...]) -> dict:
    """A job as named data (files and jobs as indices). Every field of Job that a recorded
    graph can hold is here; `pending` and `after` are not, as graphs waiting on a split rule
    are never recorded (can_record); tests/test_uptodate.py checks the round trip field by field."""
    return {"kind": job.kind.value, "rule": job.rule.index if job.rule is not None else -1,
            "target": job.target, "outputs": outputs, "inputs": inputs, "values": tuple(job.values.items()),
            "deps": deps, "dependents": dependents, "is_split": job.is_split, "via_rules": tuple(job.via_rules),
            "named": tuple((name, tuple(paths)) for name, paths in (job.named or {}).items())}


def _job(position: int, row: dict, rules: dict, names: list[str], jobs: dict[int, Job], rows: dict) -> Job:
    """The Job a row describes; its deps cut down to the jobs in `rows`."""
    return Job(position, rules[row["rule"]] if row["rule"] >= 0 else None,
               [names[i] for i in row["outputs"]], [names[i] for i in row["inputs"]], dict(row["values"]),
               [jobs[d] for d in row["deps"] if d in rows], is_split=row["is_split"],
               via_rules=frozenset(row["via_rules"]), kind=JobKind(row["kind"]), target=row["target"],
               named={name: list(paths) for name, paths in row["named"]} if row.get("named") else None)


def _chunks(items):
    """(block number, marshalled entries) for every CHUNK entries of `items`, one at a time."""
    for start in range(0, len(items), CHUNK):
        yield start // CHUNK, marshal.dumps([items[i] for i in range(start, min(start + CHUNK, len(items)))])


class _Chunks:
    """Entries of a chunked table, read a block at a time."""

    def __init__(self, db: sqlite3.Connection, table: str):
        self._query = f"SELECT block FROM {table} WHERE chunk = ?"
        self._db = db
        self._blocks: dict[int, list] = {}

    def __getitem__(self, index: int):
        block = self._blocks.get(index // CHUNK)
        if block is None:
            found = self._db.execute(self._query, (index // CHUNK,)).fetchone()
            block = self._blocks[index // CHUNK] = marshal.loads(found[0])
        return block[index % CHUNK]


class _Names:
    """File names as indices into the record's files, then the names it does not hold."""

    def __init__(self, files: list[str]):
        self.count = len(files)
        self.index = {name: i for i, name in enumerate(files)}
        self.extra: list[str] = []

    def ids(self, names: list[str]) -> tuple[int, ...]:
        try:
            return tuple([self.index[name] for name in names])
        except KeyError:  # a name seen for the first time
            return tuple([self._id(name) for name in names])

    def _id(self, name: str) -> int:
        found = self.index.get(name)
        if found is None:
            found = self.index[name] = self.count + len(self.extra)
            self.extra.append(name)
        return found


def affected_graph(path: str, graph_id: int, pipefile: Pipefile, changed: list[int],
                   files: list[str]) -> tuple[JobGraph, dict[str, int]] | None:
    """The part of the graph recorded at `path` that the recorded files at indices `changed`
    can affect, and the index in `files` of each recorded file its jobs name; None when the
    file is not that graph or a changed file is used by no job (the full decision has to say
    why it mattered)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        meta = db.execute("SELECT graph_id, targets, extra FROM meta").fetchone()
        if meta is None or meta[0] != graph_id:
            return None
        rows = _downstream(db, changed)
        if rows is None:
            return None
        return _jobs(rows, marshal.loads(meta[1]), pipefile, files, marshal.loads(meta[2]))
    except (sqlite3.Error, ValueError, EOFError, TypeError, IndexError, KeyError):
        return None  # a damaged file: decide in full
    finally:
        db.close()


def _downstream(db: sqlite3.Connection, changed: list[int]) -> dict[int, list] | None:
    """The rows of the jobs using a changed file and of everything downstream of them."""
    users, jobs = _Chunks(db, "users"), _Chunks(db, "jobs")
    todo = []
    for file in changed:
        if not users[file]:
            return None
        todo.extend(users[file])
    rows: dict[int, list] = {}
    while todo:
        position = todo.pop()
        if position not in rows:
            rows[position] = jobs[position]
            todo.extend(rows[position]["dependents"])
    return rows


def _jobs(rows: dict[int, dict], targets: list[int], pipefile: Pipefile, files: list[str],
          extra: list[str]) -> tuple[JobGraph, dict[str, int]]:
    rules = {rule.index: rule for rule in pipefile.rules}
    names = files + extra
    jobs: dict[int, Job] = {}
    where: dict[str, int] = {}
    for position in sorted(rows):  # positions are in dependency order, deps first
        row = rows[position]
        for file in (*row["outputs"], *row["inputs"]):
            if file < len(files):
                where[files[file]] = file
        jobs[position] = _job(position, row, rules, names, jobs, rows)
    return JobGraph([jobs[t] for t in targets if t in jobs], list(jobs.values())), where


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
