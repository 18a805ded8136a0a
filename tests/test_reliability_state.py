"""Faults of the state database and of the disk: a truncated, damaged or locked .rulerun/state.db,
a full disk and a read-only output directory. rulerun must say what happened and what it did,
never show a traceback, and never leave a half-written output where a finished one belongs.

The disk faults use mounts (root only): a 256 KiB tmpfs for a full disk, a read-only bind mount
for a read-only directory (root ignores permission bits, so chmod 555 proves nothing here).
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

CHAIN = """
a.out : a.in
    shell: cp {input} {output}
b.out : a.out
    shell: { cat {input}; echo b; } > {output}
c.out : b.out
    shell: { cat {input}; echo c; } > {output}
task all : c.out
""".replace("{ cat", "{{ cat").replace("; }", "; }}")


def build_chain(project) -> bytes:
    project.write("Pipefile", CHAIN)
    project.write("a.in", "A\n")
    first = project.run("all")
    assert first.returncode == 0, first.stderr
    assert project.read("c.out") == "A\nb\nc\n"
    return (project.root / ".rulerun" / "state.db").read_bytes()


def damaged_copies(good: bytes) -> list[tuple[str, bytes]]:
    rng = random.Random(7)
    pages = len(good) // 4096
    cases = [("empty", b""), ("truncated to 100 bytes", good[:100]),
             ("truncated to half", good[: len(good) // 2]), ("truncated by one page", good[:-4096]),
             ("random bytes", rng.randbytes(len(good))), ("text", b"not a database\n" * 100)]
    for page in range(1, pages):   # each page but the header's overwritten with noise
        cases.append((f"page {page} overwritten", good[: page * 4096] + rng.randbytes(4096) + good[(page + 1) * 4096:]))
    return cases


def assert_clean(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr, result.stderr


def test_damaged_state_db_is_set_aside_with_a_warning_and_the_build_goes_on(project):
    """Every kind of damage: the run succeeds, builds what is missing, and says when it set the
    database aside (always for a truncation or noise; an overwritten page may be an unused one)."""
    good = build_chain(project)
    for label, data in damaged_copies(good):
        state = project.root / ".rulerun"
        for leftover in state.glob("state.db*"):
            leftover.unlink()
        (state / "state.db").write_bytes(data)
        (project.root / "c.out").unlink()
        result = project.run("all")
        assert_clean(result)
        assert result.returncode == 0, (label, result.stderr)
        assert project.read("c.out") == "A\nb\nc\n", label
        warned = "was unreadable" in result.stderr
        if label not in ("empty",) and not label.startswith("page"):
            assert warned, (label, result.stderr)
        if warned:
            assert "moved it to .rulerun/state.db.corrupt-" in result.stderr
            assert "use -B to rebuild everything if in doubt" in result.stderr
            assert list(state.glob("state.db.corrupt-*")), label
        again = project.run("all")           # the new database works
        assert again.returncode == 0 and "nothing to do" in again.stdout, (label, again.stdout + again.stderr)


def test_damaged_pages_found_before_the_run_not_in_the_middle(project):
    """Damage in an index page used to surface only at the first lookup, mid-run, as a traceback
    (sqlite3.DatabaseError). Now every page is checked when the database is opened."""
    good = build_chain(project)
    pages = len(good) // 4096
    found = 0
    for page in range(1, pages):
        data = good[: page * 4096] + b"\xff" * 4096 + good[(page + 1) * 4096:]
        state = project.root / ".rulerun"
        for leftover in state.glob("state.db*"):
            leftover.unlink()
        (state / "state.db").write_bytes(data)
        result = project.run("all")
        assert_clean(result)
        assert result.returncode == 0, result.stderr
        found += "was unreadable" in result.stderr
    assert found >= 2, "no page overwritten with 0xff was recognised as damage"


def test_unreadable_signature_reruns_the_job(project):
    build_chain(project)
    db = sqlite3.connect(project.root / ".rulerun" / "state.db")
    db.execute("UPDATE signatures SET signature = '{not json' WHERE job = 'b.out'")
    db.commit()
    db.close()
    result = project.run("-v", "all")
    assert_clean(result)
    assert result.returncode == 0, result.stderr
    assert "b.out" in result.stdout and project.read("c.out") == "A\nb\nc\n"


LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=" + sys.argv[2]).fetchone()
db.execute("BEGIN EXCLUSIVE")
db.execute("INSERT OR REPLACE INTO meta VALUES ('locker', 'x')")
print("locked", flush=True)
time.sleep(float(sys.argv[3]))
db.execute("ROLLBACK")
"""


def hold_lock(project, mode: str, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", LOCKER, str(project.root / ".rulerun" / "state.db"), mode,
                               str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_locked_state_db_is_waited_for(project, mode):
    """Another program holds an exclusive lock for a second: the run waits, then works."""
    build_chain(project)
    (project.root / "c.out").unlink()
    holder = hold_lock(project, mode, 1.0)
    started = time.monotonic()
    result = project.run("all")
    holder.wait(timeout=10)
    assert_clean(result)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 0.5
    assert project.read("c.out") == "A\nb\nc\n"
    assert not list((project.root / ".rulerun").glob("state.db.corrupt-*"))


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_locked_state_db_that_stays_locked_fails_clearly_and_is_kept(project, mode, monkeypatch, capsys):
    """A lock that outlasts the wait: exit 2 with what is wrong; the database is not mistaken
    for a damaged one (it used to be moved aside, losing every signature), no job started."""
    import rulerun.store.state
    from rulerun.cli import main

    build_chain(project)
    (project.root / "c.out").unlink()
    holder = hold_lock(project, mode, 30)
    monkeypatch.setattr(rulerun.store.state, "BUSY_TIMEOUT", 0.5)
    try:
        code = main(["all"])
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert code == 2, err
    assert "state database .rulerun/state.db is locked by another program" in err
    assert "Traceback" not in err
    assert not list((project.root / ".rulerun").glob("state.db.corrupt-*"))
    assert not project.exists("c.out")
    result = project.run("all")               # and with the lock gone, all is as before
    assert result.returncode == 0 and result.stdout.count("c.out") >= 1 and "a.out" not in result.stdout


# ------------------------------------------------------------------ the disk

def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def mounts():
    made: list[Path] = []

    def mount(kind: str, path: Path, size: str = "256k") -> None:
        path.mkdir(parents=True, exist_ok=True)
        try:
            if kind == "tmpfs":
                _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
            else:
                _mount("--bind", str(path), str(path))
                made.append(path)
                _mount("-o", "remount,ro,bind", str(path))
                return
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            pytest.skip(f"can't mount here (needs root): {exc}")
        made.append(path)

    yield mount
    for path in reversed(made):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


FULL = """
small.out :
    shell: echo small > {output}
full/big.out : small.out
    shell:
        cat {input} > {output}
        head -c 1000000 /dev/zero >> {output}
full/fits.out : small.out
    shell: cat {input} > {output}
task all : full/big.out full/fits.out
"""


def test_full_disk_fails_the_job_clearly_and_leaves_no_half_written_output(project, mounts):
    project.write("Pipefile", FULL)
    mounts("tmpfs", project.root / "full")
    result = project.run("-k", "-j", "1", "all")
    assert_clean(result)
    assert result.returncode == 1, result.stderr
    assert "FAILED: rule 'full/big.out' making full/big.out" in result.stderr
    assert "No space left on device" in result.stderr
    assert not project.exists("full/big.out")                   # not even a part of it
    assert project.read("full/fits.out") == "small\n" and project.read("small.out") == "small\n"
    assert "output 'full/big.out' is missing" in project.run("-n", "all").stdout


def test_full_disk_under_the_state_database_fails_clearly(project, mounts):
    """The whole project on a disk that fills up: whichever write fails first (the job's output
    or the state database), the message says so and no traceback is shown."""
    mounts("tmpfs", project.root / "p", size="256k")
    root = project.root / "p"
    (root / "Pipefile").write_text(FULL.replace("full/", ""))
    result = subprocess.run([sys.executable, "-m", "rulerun", "-k", "-j", "1", "all"], cwd=root, capture_output=True,
                            text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert_clean(result)
    assert result.returncode in (1, 2), result.stderr
    assert "No space left on device" in result.stderr or "database or disk is full" in result.stderr
    assert not (root / "big.out").exists()


MID_RUN = """
slow.out :
    shell:
        echo partial > {output}
        sleep 30
filler.out :
    shell:
        sleep 0.5
        head -c 2000000 /dev/zero > {output} || true
task all : slow.out filler.out
"""


def test_state_database_failing_mid_run_stops_the_jobs_and_sets_their_outputs_aside(project, mounts):
    """The disk fills while a job runs; recording the next result fails (StateError): the run
    stops its jobs at once and moves their partial outputs aside, as for Ctrl-C, before it
    exits 2 (the partial output used to stay where a finished one belongs)."""
    mounts("tmpfs", project.root / "p", size="1m")
    root = project.root / "p"
    (root / "Pipefile").write_text(MID_RUN)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "rulerun", "-j", "2", "all"], cwd=root, capture_output=True,
                            text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert_clean(result)
    assert result.returncode == 2, result.stderr
    assert "can't use the state database .rulerun/state.db: database or disk is full" in result.stderr
    assert time.monotonic() - started < 10                        # slow.out was stopped, not waited for
    assert not (root / "slow.out").exists()
    assert (root / ".rulerun" / "failed" / "slow.out").read_text() == "partial\n"


READONLY = """
out/flat.out :
    shell: echo flat > {output}
out/sub/deep.out :
    shell: echo deep > {output}
elsewhere.out :
    shell: echo fine > {output}
task all : out/flat.out out/sub/deep.out elsewhere.out
"""


def test_read_only_output_directory_fails_the_jobs_clearly(project, mounts):
    project.write("Pipefile", READONLY)
    mounts("ro", project.root / "out")
    result = project.run("-k", "all")
    assert_clean(result)
    assert result.returncode == 1, result.stderr
    err = result.stderr
    assert "FAILED: rule 'out/flat.out'" in err and "Read-only file system" in err
    # the output's directory can't even be made: the job fails without starting (was a traceback)
    assert "FAILED: rule 'out/sub/deep.out'" in err
    assert "it could not be started: Read-only file system: 'out/sub'" in err
    assert project.read("elsewhere.out") == "fine\n"
    assert not project.exists("out/flat.out") and not project.exists("out/sub")
    dry = project.run("-n", "all").stdout
    assert "interrupted" not in dry and "elsewhere.out" not in dry   # state consistent


def test_read_only_state_directory_is_reported_without_a_traceback(project, mounts):
    build_chain(project)
    (project.root / "c.out").unlink()
    mounts("ro", project.root / ".rulerun")
    result = project.run("all")
    assert_clean(result)
    assert result.returncode == 2, result.stderr
    assert "can't use the state database .rulerun/state.db" in result.stderr
    assert not project.exists("c.out")


def test_runs_opening_a_new_state_database_at_once_all_get_it(tmp_path, monkeypatch):
    """Two runs started together in a new project both found no schema row and both wrote
    one: the second failed on a UNIQUE constraint instead of taking its turn."""
    import threading

    from rulerun.store.state import State

    for round_ in range(40):
        project_dir = tmp_path / str(round_)
        project_dir.mkdir()
        monkeypatch.chdir(project_dir)
        errors, start = [], threading.Barrier(4)

        def open_state():
            start.wait()
            try:
                State().close()
            except Exception as exc:  # noqa: BLE001 - what a user would see instead of a run
                errors.append(exc)

        threads = [threading.Thread(target=open_state) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], errors
