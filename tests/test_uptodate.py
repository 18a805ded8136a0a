"""The no-op answer (uptodate.py): a run that finds the stamp valid says "nothing to do"
without loading the Pipefile; anything that could change the decisions sends the run
through the full path, which runs what must run.

Whether the full path ran is seen through the Pipefile's preamble: a top-level Python block
that appends a line to a file outside the project every time the Pipefile is loaded.
"""

from __future__ import annotations

import os
import time

import pytest

from rulerun import uptodate
from rulerun.fs import FileSystem
from rulerun.namespace import fixed_names

NOTHING = "nothing to do, everything is up to date"


@pytest.fixture
def chain(project, tmp_path_factory):
    """src/{a,b}.txt -> .mid -> .out, `all` needing every .out by a glob over makeable files."""
    loads = tmp_path_factory.mktemp("outside") / "loads"
    project.loads = lambda: len(loads.read_text().splitlines()) if loads.exists() else 0
    project.pipefile_text = f"""\
        python:
            with open({str(loads)!r}, "a") as log:
                log.write("loaded\\n")

        task all : src/*.out

        %.out : %.mid
            shell: cp {{input}} {{output}}

        %.mid : %.txt
            shell: cp {{input}} {{output}}
        """
    project.write("Pipefile", project.pipefile_text)
    project.write("src/a.txt", "a\n")
    project.write("src/b.txt", "b\n")
    first = project.run("all")
    assert first.returncode == 0, first.stderr
    assert project.exists(".rulerun/uptodate")
    return project


def later(path, seconds: float = 5.0) -> None:
    """Give `path` a modification time clearly after everything made so far."""
    stamp = time.time() + seconds
    os.utime(path, (stamp, stamp))


def test_a_noop_after_a_build_is_answered_without_loading_the_pipefile(chain):
    before = chain.loads()
    again = chain.run("all")
    assert again.returncode == 0
    assert NOTHING in again.stdout
    assert chain.loads() == before


def test_quiet_noop_prints_nothing(chain):
    again = chain.run("-q", "all")
    assert again.returncode == 0 and again.stdout == ""


def test_an_edited_input_runs_its_jobs(chain):
    chain.write("src/a.txt", "A\n")
    later(chain.root / "src/a.txt")
    result = chain.run("all")
    assert result.returncode == 0
    assert chain.read("src/a.out") == "A\n"
    assert "2 job(s) done" in result.stdout


def test_a_new_source_found_by_the_glob_is_built(chain):
    chain.write("src/c.txt", "c\n")
    result = chain.run("all")
    assert result.returncode == 0
    assert chain.read("src/c.out") == "c\n"


def test_a_removed_output_is_made_again(chain):
    (chain.root / "src/b.out").unlink()
    result = chain.run("all")
    assert result.returncode == 0
    assert chain.read("src/b.out") == "b\n"


def test_an_edited_pipefile_is_loaded_again(chain):
    chain.write("Pipefile", chain.pipefile_text.replace("cp {input} {output}\n\n        %.mid",
                                                        "cat {input} {input} > {output}\n\n        %.mid"))
    result = chain.run("all")
    assert result.returncode == 0, result.stderr
    assert chain.read("src/a.out") == "a\na\n"


def test_another_request_is_not_answered_by_the_stamp(chain):
    before = chain.loads()
    result = chain.run("src/a.out")
    assert result.returncode == 0 and NOTHING in result.stdout
    assert chain.loads() == before + 1


def test_an_older_time_counts_as_a_change_and_the_full_path_decides(chain):
    """Times are compared for equality: a file put back with an older time is looked at
    again, and the full path finds it up to date (an input older than its outputs)."""
    before = chain.loads()
    os.utime(chain.root / "src/a.txt", (1_000_000, 1_000_000))
    result = chain.run("all")
    assert result.returncode == 0 and NOTHING in result.stdout
    assert chain.loads() == before + 1


def test_a_lost_state_database_is_looked_at_again(chain):
    before = chain.loads()
    os.unlink(chain.root / ".rulerun/state.db")
    result = chain.run("all")
    assert result.returncode == 0
    assert chain.loads() == before + 1


def test_force_and_dry_run_never_use_the_stamp(chain):
    before = chain.loads()
    dry = chain.run("-n", "all")
    assert dry.returncode == 0
    forced = chain.run("-B", "all")
    assert forced.returncode == 0 and "4 job(s) done" in forced.stdout
    assert chain.loads() == before + 2


def test_a_failed_build_leaves_no_stamp(chain):
    chain.write("Pipefile", chain.pipefile_text.replace("%.mid : %.txt\n            shell: cp",
                                                        "%.mid : %.txt\n            shell: false && cp"))
    failed = chain.run("all")
    assert failed.returncode == 1
    assert not chain.exists(".rulerun/uptodate")
    before = chain.loads()
    again = chain.run("all")
    assert again.returncode == 1
    assert chain.loads() == before + 1


def test_a_changed_override_runs_the_jobs_that_use_it(project):
    project.write("Pipefile", """\
        GREETING = "hello"

        out.txt :
            shell: echo {GREETING} > {output}
        """)
    assert project.run("out.txt").returncode == 0
    assert project.exists(".rulerun/uptodate")
    result = project.run("out.txt", "GREETING=bye")
    assert result.returncode == 0
    assert project.read("out.txt") == "bye\n"


def test_a_variable_computed_by_code_is_never_stamped(project):
    project.write("Pipefile", """\
        WHO = __import__("os").environ.get("WHO", "nobody")

        out.txt :
            shell: echo {WHO} > {output}
        """)
    assert project.run("out.txt").returncode == 0
    assert not project.exists(".rulerun/uptodate")
    result = project.run("out.txt", env={"WHO": "somebody"})
    assert result.returncode == 0
    assert project.read("out.txt") == "somebody\n"


def test_a_task_with_an_action_runs_every_time(project):
    project.write("Pipefile", """\
        task hello :
            shell: echo hi >> said.txt
        """)
    for _ in range(2):
        assert project.run("hello").returncode == 0
    assert not project.exists(".rulerun/uptodate")
    assert project.read("said.txt") == "hi\nhi\n"


def test_a_slow_noop_writes_the_stamp(chain):
    os.unlink(chain.root / ".rulerun/uptodate")
    before = chain.loads()
    assert chain.run("all").returncode == 0
    assert chain.exists(".rulerun/uptodate")
    assert chain.run("all").returncode == 0
    assert chain.loads() == before + 1


# ---------------------------------------------------------------- pieces


def test_a_directory_changed_again_in_its_last_tick_is_not_trusted(project):
    """A listing taken in the same clock tick as the directory's last change: the directory
    could change again keeping its time. _settled lists it again once the tick is over."""
    project.write("d/one", "")
    fs = FileSystem()
    fs.listing("d")
    seen = fs.listed["d"]
    project.write("d/two", "")
    os.utime(project.root / "d", ns=(seen.mtime, seen.mtime))  # a change the time can't show
    fs.listed["d"] = seen._replace(at=seen.mtime + 1)            # listed right after it changed
    assert not uptodate._settled(fs)


def test_a_directory_unchanged_since_its_racy_listing_is_trusted(project):
    project.write("d/one", "")
    fs = FileSystem()
    fs.listing("d")
    seen = fs.listed["d"]
    fs.listed["d"] = seen._replace(at=seen.mtime + 1)
    assert uptodate._settled(fs)


def test_fixed_names(project):
    pipefile = project.pipefile("""\
        A = 1
        B = f"{A}-x" + "y" * 2
        C = len("abc")
        D = [A, B, {"k": A}][0]
        E = C + 1

        python:
            import os

        F = "after"
        G = A
        """)
    assert fixed_names(pipefile) == {"F"}
    assert fixed_names(pipefile, {"G": "1", "C": "3"}) >= {"F", "G"}
    pure = project.pipefile('A = 1\nB = f"{A}-x" + "y" * 2\nC = len("abc")\nD = [A, B, {"k": A}][0]\nE = C + 1\n')
    assert fixed_names(pure) == {"A", "B", "D"}
    assert fixed_names(pure, {"C": "3"}) == {"A", "B", "C", "D", "E"}


@pytest.mark.parametrize("garbage", [b"", b"\x00\x01junk", b"\xe9" * 40])
def test_a_damaged_stamp_is_ignored(chain, garbage):
    (chain.root / ".rulerun/uptodate").write_bytes(garbage)
    before = chain.loads()
    result = chain.run("all")
    assert result.returncode == 0 and NOTHING in result.stdout, result.stderr
    assert chain.loads() == before + 1
