"""The jobs a few changed files can affect, without resolving the whole Pipefile again.

When the no-op record (uptodate.py) finds only some files changed (every directory lists as
before, so every glob and every choice of rule comes out the same), the graph it recorded is
still the graph. The jobs that read or write a changed file, and everything downstream of
them, are the only ones whose decision can differ; the rest were up to date and still are.

The recorded graph is a small sqlite file, so that a run reads only the rows of the jobs it
needs (a graph of 200,000 jobs takes longer to load whole than to decide a few of its jobs):

    save(path, graph_id, graph, files)    per job its rule, files, values, deps and dependents;
                                          per recorded file its index in the record and the
                                          jobs using it
    file_indices(path, names)             where files are in the record, without reading it all
    affected_graph(path, graph_id, pipefile, changed)
                                          the jobs using a changed file and all their
                                          dependents, as Job objects whose deps are cut down
                                          to that set (the others are up to date, so nothing
                                          waits for them); None when it can't be worked out
"""

from __future__ import annotations

import marshal
import os
import sqlite3

from rulerun.graph import Job, JobGraph
from rulerun.model import Pipefile

_SCHEMA = """
CREATE TABLE meta (graph_id INTEGER, targets BLOB);
CREATE TABLE jobs (position INTEGER PRIMARY KEY, row BLOB);
CREATE TABLE users (path TEXT PRIMARY KEY, file INTEGER, jobs BLOB) WITHOUT ROWID;
"""


def can_record(graph: JobGraph) -> bool:
    """Split rules change the graph when they run: such graphs are resolved every time."""
    return not any(job.is_split or job.pending for job in graph.jobs)


def save(path: str, graph_id: int, graph: JobGraph, files: list[str]) -> None:
    """Write `graph` (its jobs in dependency order) to a new sqlite file at `path`; `files`
    are the record's files, whose indices name them."""
    position = {job.id: index for index, job in enumerate(graph.jobs)}
    where = {name: index for index, name in enumerate(files)}
    users: dict[int, list[int]] = {}
    dependents: list[list[int]] = [[] for _ in graph.jobs]
    for index, job in enumerate(graph.jobs):
        for name in (*job.outputs, *job.inputs):
            found = where.get(name)
            if found is not None:
                users.setdefault(found, []).append(index)
        for dep in job.deps:
            dependents[position[dep.id]].append(index)
    rows = ((index, marshal.dumps(_row(job, position, dependents[index])))
            for index, job in enumerate(graph.jobs))
    temporary = f"{path}.{os.getpid()}"
    _remove(temporary)
    db = sqlite3.connect(temporary, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=OFF")  # a cache written once, then renamed into place
        db.execute("PRAGMA synchronous=OFF")
        db.executescript(_SCHEMA)
        db.execute("BEGIN")
        db.execute("INSERT INTO meta VALUES (?, ?)",
                   (graph_id, marshal.dumps([position[job.id] for job in graph.targets])))
        db.executemany("INSERT INTO jobs VALUES (?, ?)", rows)
        db.executemany("INSERT INTO users VALUES (?, ?, ?)",
                       ((files[file], file, marshal.dumps(tuple(jobs))) for file, jobs in users.items()))
        db.execute("COMMIT")
    finally:
        db.close()
    os.replace(temporary, path)


def _row(job: Job, position: dict[int, int], dependents: list[int]) -> tuple:
    return (job.rule.index if job.rule is not None else -1, tuple(job.outputs), tuple(job.inputs),
            tuple(job.values.items()), tuple(position[dep.id] for dep in job.deps),
            tuple(job.via_rules), tuple(dependents))


def affected_graph(path: str, graph_id: int, pipefile: Pipefile, changed: list[str]) -> JobGraph | None:
    """The part of the graph recorded at `path` that the `changed` files can affect; None when
    the file is not that graph or a changed file is used by no job (the full decision has to
    say why it mattered)."""
    db = _open(path)
    if db is None:
        return None
    try:
        meta = db.execute("SELECT graph_id, targets FROM meta").fetchone()
        if meta is None or meta[0] != graph_id:
            return None
        rows = _downstream(db, changed)
        if rows is None:
            return None
        return _jobs(rows, marshal.loads(meta[1]), pipefile)
    except (sqlite3.Error, ValueError, EOFError, TypeError, IndexError, KeyError):
        return None  # a damaged file: decide in full
    finally:
        db.close()


def file_indices(path: str, names) -> dict[str, int] | None:
    """name -> index in the record of each of `names` the graph at `path` knows."""
    db = _open(path)
    if db is None:
        return None
    try:
        found = {}
        for name in names:
            row = db.execute("SELECT file FROM users WHERE path = ?", (name,)).fetchone()
            if row is not None:
                found[name] = row[0]
        return found
    except sqlite3.Error:
        return None
    finally:
        db.close()


def _open(path: str) -> sqlite3.Connection | None:
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None


def _downstream(db: sqlite3.Connection, changed: list[str]) -> dict[int, tuple] | None:
    """The rows of the jobs using a changed file and of everything downstream of them."""
    todo = []
    for name in changed:
        found = db.execute("SELECT jobs FROM users WHERE path = ?", (name,)).fetchone()
        if found is None:
            return None
        todo.extend(marshal.loads(found[0]))
    rows: dict[int, tuple] = {}
    while todo:
        position = todo.pop()
        if position in rows:
            continue
        row = db.execute("SELECT row FROM jobs WHERE position = ?", (position,)).fetchone()
        rows[position] = marshal.loads(row[0])
        todo.extend(rows[position][6])
    return rows


def _jobs(rows: dict[int, tuple], targets: list[int], pipefile: Pipefile) -> JobGraph:
    rules = {rule.index: rule for rule in pipefile.rules}
    jobs: dict[int, Job] = {}
    for position in sorted(rows):  # positions are in dependency order, deps first
        rule_index, outputs, inputs, values, deps, via, _ = rows[position]
        job = Job(position, rules[rule_index] if rule_index >= 0 else None, list(outputs), list(inputs),
                  dict(values), [jobs[d] for d in deps if d in rows])
        job.via_rules = frozenset(via)
        jobs[position] = job
    return JobGraph([jobs[t] for t in targets if t in jobs], list(jobs.values()))


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
