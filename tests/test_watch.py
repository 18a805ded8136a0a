"""Watch mode, end to end: `rulerun --watch` as a process, real file events on disk.

Every job appends a line to runs.log, so a test asserts exactly which jobs a change ran. The
tests synchronise on the lines rulerun prints ("watching …", "changed: …", "rebuilt: …"),
never on sleeps; the one bounded wait is `quiet`, which checks that nothing happens.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rulerun.watch import WatchSet, _coalesce
from tests.conftest import BLIND_GLOB

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 20  # generous: a loaded CI machine

pytest.importorskip("watchdog")

UPPER = """\
    task all : a.up b.up joined

    %.up : %.txt
        shell: tr a-z A-Z < {input} > {output}; echo "up {output}" >> runs.log

    joined : a.up b.up
        shell: cat {input} > {output}; echo "join {output}" >> runs.log
    """


class Watch:
    """A running `rulerun --watch` whose output (stdout and stderr) is read line by line."""

    def __init__(self, root: Path, *args: str, env: dict | None = None):
        self.root = root
        full_env = dict(os.environ, **(env or {}))
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [full_env.pop("EXTRA_PATH", ""), str(REPO),
                                                               full_env.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen([sys.executable, "-m", "rulerun", "-C", str(root), "--watch", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     bufsize=1, env=full_env)
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def expect(self, pattern: str, timeout: float = TIMEOUT) -> str:
        """The next line matching regex `pattern` (lines before it are passed over)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._next(deadline - time.monotonic())
            if line is None:
                raise AssertionError(f"no line matching {pattern!r}; output so far:\n" + self.output())
            if re.search(pattern, line):
                return line

    def quiet(self, pattern: str, seconds: float = 1.0) -> None:
        """No line matching `pattern` for `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            line = self._next(left)
            assert line is None or not re.search(pattern, line), "unexpected line:\n" + self.output()

    def _next(self, timeout: float) -> str | None:
        try:
            line = self._lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if line is not None:
            self.seen.append(line)
        return line

    def output(self) -> str:
        return "\n".join(self.seen)

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Send `sig`, wait for the exit status; the rest of the output is read into `seen`."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        status = self.proc.wait(timeout=TIMEOUT)
        while self._next(TIMEOUT) is not None:
            pass
        return status

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def tree(tmp_path):
    """A project directory; `tree.runs()` returns the runs.log lines written since the last call."""
    class Tree:
        root = tmp_path
        _read = 0

        def write(self, path: str, text: str = "x\n") -> None:
            target = tmp_path / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text))

        def runs(self) -> list[str]:
            log = tmp_path / "runs.log"
            lines = [line.strip() for line in log.read_text().splitlines()] if log.exists() else []
            new, self._read = lines[self._read:], len(lines)
            return new

    return Tree()


@pytest.fixture
def start(tree):
    """start(*args) runs `rulerun --watch ARGS` in the tree, waits until it watches; always stopped."""
    running: list[Watch] = []

    def start(*args: str, env: dict | None = None) -> Watch:
        watch = Watch(tree.root, *args, env=env)
        running.append(watch)
        watch.expect(r"^watching ")
        return watch

    yield start
    for watch in running:
        watch.kill()


def upper_tree(tree) -> None:
    tree.write("Pipefile", UPPER)
    tree.write("a.txt", "a\n")
    tree.write("b.txt", "b\n")


def test_a_source_edit_reruns_exactly_the_jobs_that_depend_on_it(tree, start):
    upper_tree(tree)
    watch = start()
    assert sorted(tree.runs()) == ["join joined", "up a.up", "up b.up"]
    tree.write("a.txt", "aa\n")
    assert watch.expect(r"^changed: ") == "changed: a.txt"
    assert watch.expect(r"^(rebuilt|failed):").startswith("rebuilt: 2 jobs ran, ok in ")
    assert tree.runs() == ["up a.up", "join joined"]
    assert (tree.root / "joined").read_text() == "AA\nB\n"


def test_what_the_build_writes_triggers_nothing(tree, start):
    upper_tree(tree)
    watch = start()
    watch.quiet(r"^changed:")  # the first build's outputs
    tree.write("b.txt", "bb\n")
    watch.expect(r"^rebuilt: 2 jobs ran")
    watch.quiet(r"^changed:")  # the rebuild's outputs
    assert watch.stop() == 0


def test_a_new_file_matching_a_glob_joins_even_in_a_directory_that_did_not_exist(tree, start):
    tree.write("Pipefile", """\
        task all : *.up count

        %.up : %.txt
            shell: tr a-z A-Z < {input} > {output}; echo "up {output}" >> runs.log

        count : extra/*.dat
            shell: echo {input} > {output}; echo "count {input}" >> runs.log
        """)
    tree.write("a.txt")
    watch = start()
    assert sorted(tree.runs()) == ["count", "up a.up"]
    tree.write("c.txt")
    assert watch.expect(r"^changed: ") == "changed: c.txt"
    watch.expect(r"^rebuilt: 1 job ran")
    assert tree.runs() == ["up c.up"]
    tree.write("extra/1.dat")  # the glob's directory is created, then the file in it
    watch.expect(r"^rebuilt: 1 job ran")
    assert tree.runs() == ["count extra/1.dat"]


def test_a_burst_of_writes_gives_one_rebuild(tree, start):
    tree.write("Pipefile", """\
        task all : *.up

        %.up : %.txt
            shell: cp {input} {output}; echo "up {output}" >> runs.log
        """)
    tree.write("a.txt")
    watch = start()
    tree.runs()
    for i in range(20):
        tree.write(f"f{i:02}.txt", f"{i}\n")
    changed = watch.expect(r"^changed: ")
    assert changed == "changed: f00.txt, f01.txt, f02.txt and 17 more"
    watch.expect(r"^rebuilt: 20 jobs ran")
    assert len(tree.runs()) == 20
    tree.write("a.txt", "sentinel\n")  # the next trigger is this one, not a late part of the burst
    assert watch.expect(r"^changed: ") == "changed: a.txt"
    watch.expect(r"^rebuilt: 1 job ran")


def test_an_edit_of_the_pipefile_reloads_it(tree, start):
    upper_tree(tree)
    watch = start()
    tree.runs()
    tree.write("Pipefile", UPPER.replace("tr a-z A-Z", "rev"))
    assert watch.expect(r"^changed: ") == "changed: Pipefile"
    watch.expect(r"^rebuilt: 3 jobs ran")  # the action changed: both .up jobs, then joined
    assert sorted(tree.runs()) == ["join joined", "up a.up", "up b.up"]
    assert (tree.root / "a.up").read_text() == "a\n"


def test_a_broken_pipefile_is_reported_and_a_fix_resumes(tree, start):
    upper_tree(tree)
    watch = start()
    tree.runs()
    tree.write("Pipefile", UPPER + "    x\ty\n")
    assert re.match(r"Pipefile:\d+:\d+: ", watch.expect(r"^Pipefile:\d+:\d+: "))
    assert watch.expect(r"^(rebuilt|failed):").startswith("failed: Pipefile:")
    tree.write("a.txt", "still broken\n")  # watching goes on with the last good version
    watch.expect(r"^failed: Pipefile:")
    tree.write("Pipefile", UPPER)
    watch.expect(r"^rebuilt: 2 jobs ran")
    assert tree.runs() == ["up a.up", "join joined"]


def test_a_watch_started_on_a_broken_pipefile_waits_for_the_fix(tree, start):
    upper_tree(tree)
    tree.write("Pipefile", UPPER + "    x\ty\n")
    watch = start()
    assert "Pipefile:" in watch.output() and tree.runs() == []
    tree.write("Pipefile", UPPER)
    watch.expect(r"^rebuilt: 3 jobs ran")
    assert sorted(tree.runs()) == ["join joined", "up a.up", "up b.up"]


def test_a_deleted_source_is_reported_and_watching_goes_on(tree, start):
    tree.write("Pipefile", """\
        report : a.txt b.txt
            shell: cat {input} > {output}; echo "report" >> runs.log
        """)
    tree.write("a.txt")
    tree.write("b.txt")
    watch = start()
    tree.runs()
    (tree.root / "b.txt").unlink()
    watch.expect(r"no rule to make 'b.txt'")
    watch.expect(r"^failed: no rule to make 'b.txt'")
    tree.write("a.txt", "a changed while b.txt is missing\n")
    watch.expect(r"^failed: no rule to make 'b.txt'")
    tree.write("b.txt", "back\n")
    watch.expect(r"^rebuilt: 1 job ran")
    assert tree.runs() == ["report"]
    assert watch.stop() == 0


def test_a_source_deleted_and_brought_back_is_still_watched(tree, start):
    upper_tree(tree)
    watch = start()
    tree.runs()
    (tree.root / "b.txt").unlink()
    watch.expect(r"^rebuilt: 0 jobs ran")  # b.up exists and nothing can make it: it is a source now
    tree.write("b.txt", "back\n")
    assert watch.expect(r"^changed: ") == "changed: b.txt"
    watch.expect(r"^rebuilt: 2 jobs ran")
    assert tree.runs() == ["up b.up", "join joined"]


def test_a_failed_job_is_reported_and_watching_goes_on(tree, start):
    tree.write("Pipefile", """\
        %.out : %.txt
            shell: grep -q good {input}; cp {input} {output}; echo "out {output}" >> runs.log
        """)
    tree.write("a.txt", "good\n")
    watch = start("a.out")
    tree.write("a.txt", "bad\n")
    watch.expect(r"^failed: %\.out a\.out: ")
    tree.write("a.txt", "good again\n")
    watch.expect(r"^rebuilt: 1 job ran")


def test_ctrl_c_ends_an_idle_watch_with_0_and_no_traceback(tree, start):
    upper_tree(tree)
    watch = start()
    assert watch.stop(signal.SIGINT) == 0
    assert "watch: stopped" in watch.output()
    assert "Traceback" not in watch.output()


def test_ctrl_c_during_a_build_stops_its_jobs_and_ends_with_130(tree, start):
    tree.write("Pipefile", """\
        slow : a.txt
            shell: touch started; sleep 30; touch {output}
        """)
    tree.write("a.txt")
    (tree.root / "slow").touch()
    watch = start()
    tree.write("a.txt", "changed\n")
    watch.expect(r"^changed: a.txt")
    _wait_for(lambda: (tree.root / "started").exists())  # the job runs, not only about to start
    assert watch.stop(signal.SIGINT) == 130
    assert "Traceback" not in watch.output()
    assert not (tree.root / "slow").exists(), watch.output()


def test_without_watchdog_the_error_says_what_to_install(tree, tmp_path_factory):
    fake = tmp_path_factory.mktemp("fake")
    (fake / "watchdog").mkdir()
    (fake / "watchdog" / "__init__.py").write_text("raise ImportError('no watchdog here')\n")
    upper_tree(tree)
    watch = Watch(tree.root, env={"EXTRA_PATH": str(fake)})
    try:
        assert watch.proc.wait(timeout=TIMEOUT) == 2
        watch.stop()
        assert "pip install 'rulerun[watch]'" in watch.output()
        assert "Traceback" not in watch.output()
    finally:
        watch.kill()


def _wait_for(condition, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# ---------------------------------------------------------------------- what is watched, in-process


def test_outputs_never_count_and_sources_and_globs_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    watched = WatchSet(frozenset({"src/a.c", "Pipefile"}), frozenset({"src/x.c", "a.o"}), ("src/*.c",))
    affects = lambda path: watched.affects(str(tmp_path / path))  # noqa: E731
    assert affects("src/a.c") and affects("Pipefile") and affects("src/new.c")
    assert not affects("src/x.c") and not affects("a.o") and not affects("src/a.h")
    assert not affects(".rulerun/state.db")
    assert watched.directories == {str(tmp_path): False, str(tmp_path / "src"): False}


def test_a_missing_glob_directory_is_watched_through_its_nearest_ancestor(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    watched = WatchSet(frozenset({"Pipefile"}), globs=("data/raw/*.csv",))
    assert watched.directories == {str(tmp_path): False}
    assert watched.affects(str(tmp_path / "data"))  # on the way to data/raw
    assert not watched.affects(str(tmp_path / "other"))


def test_many_directories_are_coalesced_into_recursive_watches():
    dirs = {f"/p/d{i}/sub": False for i in range(30)} | {"/p/d0": True}
    merged = _coalesce(dirs, 24)
    assert len(merged) <= 24
    assert all(d == "/p/d0" or not d.startswith("/p/d0/") for d in merged)
    covered = lambda d: any(d == m or (r and d.startswith(m + "/")) for m, r in merged.items())  # noqa: E731
    assert all(covered(d) for d in dirs)


def test_a_deleted_source_stays_watched_in_its_own_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw").mkdir()
    before = WatchSet(frozenset({"Pipefile", "raw/b.txt"}))
    after = WatchSet(frozenset({"Pipefile"})).remembering(before)
    assert after.files == {"Pipefile", "raw/b.txt"}
    assert str(tmp_path / "raw") in after.directories


def test_a_rule_named_source_can_be_watched_by_its_name(tree, start):
    """A rule-name target is a node of its own kind, not a 'source' file: `--watch source`
    with a rule named `source` builds and rebuilds (it once crashed with an IndexError)."""
    tree.write("Pipefile", """\
        %.up : %.txt
            name: source
            shell: tr a-z A-Z < {input} > {output}; echo "up {output}" >> runs.log
        """)
    tree.write("a.txt", "a\n")
    watch = start("source")
    assert tree.runs() == ["up a.up"]
    tree.write("a.txt", "again\n")
    watch.expect(r"^rebuilt: 1 job ran")
    assert tree.runs() == ["up a.up"] and (tree.root / "a.up").read_text() == "AGAIN\n"
    assert watch.stop() == 0 and "Traceback" not in watch.output()


def test_a_deleted_source_is_said_deleted_not_changed(tree, start):
    upper_tree(tree)
    watch = start()
    (tree.root / "a.txt").unlink()
    assert watch.expect(r"^(changed|deleted): ") == "deleted: a.txt"
    watch.stop()


def test_a_glob_that_cant_count_through_an_input_function_is_said_on_each_rebuild(tree, start):
    tree.write("Pipefile", BLIND_GLOB)
    tree.write("src/x.a", "x\n")
    tree.write("out/x.b", "x\n")
    said = r"warning: the glob 'out/\*\.b' can't count the files rule 'out/\{s\}\.b'"
    watch = start()
    assert re.search(said, watch.output()), watch.output()
    tree.write("src/x.a", "xx\n")
    watch.expect(r"^changed: ")
    watch.expect(said)
