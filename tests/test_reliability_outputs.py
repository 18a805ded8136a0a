"""What jobs may write, and what a failure may touch: one output, one job; outputs only below the
project directory and outside .rulerun/; a failed job's outputs set aside into .rulerun/failed/
and nothing else ever moved or deleted. Each case once took files it should not have: two jobs
raced on one file, and a failed job with output `../proj` or `..` deleted the project or emptied
its parent."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rulerun", *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)


def assert_clean(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr, result.stderr


# ------------------------------------------------------------------ one output, one job

SHARED = """
a.txt c.txt :
    shell: echo a > a.txt; echo a > c.txt
b.txt c.txt :
    shell: echo b > b.txt; echo b > c.txt
task all : a.txt b.txt
"""


@pytest.mark.parametrize("dry_run", [False, True])
def test_two_jobs_declaring_one_output_are_refused_before_anything_runs(project, dry_run):
    project.write("Pipefile", SHARED)
    result = project.run(*(["-n"] if dry_run else []), "all")
    assert_clean(result)
    assert result.returncode == 2, result.stdout + result.stderr
    assert ("'c.txt' is an output of two jobs: rule 'a.txt' (Pipefile:2:1) making a.txt c.txt and "
            "rule 'b.txt' (Pipefile:4:1) making b.txt c.txt") in result.stderr
    assert not any(project.exists(name) for name in ("a.txt", "b.txt", "c.txt"))


def test_one_file_written_two_ways_is_still_one_output(project):
    """`x` and `../proj/x` are one file: asking for both is two jobs writing it."""
    project.write("Pipefile", "% :\n    shell: echo made > {output}\n"
                              f"task all : x ../{project.root.name}/x\n")
    result = project.run("all")
    assert result.returncode == 2 and "is an output of two jobs" in result.stderr, result.stderr
    assert not project.exists("x")


SPLIT_SHARED = """
parts/* :
    shell: mkdir -p parts && echo split > parts/a && echo split > parts/b
parts/b :
    shell: mkdir -p parts && echo literal > parts/b
list.txt : parts/*
    shell: ls parts > {output}
task all : parts/b list.txt
"""


def test_an_output_shared_with_a_split_rule_is_refused_once_its_outputs_are_known(project):
    """A split rule's outputs are known only after it ran: the run stops there, before the jobs
    its expansion adds; the next run knows them from the start and runs nothing."""
    project.write("Pipefile", SPLIT_SHARED)
    first = project.run("-j", "1", "all")
    assert_clean(first)
    assert first.returncode == 2, first.stderr
    assert ("'parts/b' is an output of two jobs: rule 'parts/*' (Pipefile:2:1) making parts/a parts/b and "
            "rule 'parts/b' (Pipefile:4:1) making parts/b") in first.stderr
    assert not project.exists("list.txt")
    before = project.read("parts/b")
    second = project.run("-j", "1", "all")
    assert second.returncode == 2 and "is an output of two jobs" in second.stderr, second.stderr
    assert project.read("parts/b") == before and not project.exists("list.txt")


# ------------------------------------------------------------------ outputs only inside the project

@pytest.fixture
def nest(tmp_path, monkeypatch):
    """tmp/proj (the project, the cwd) with a file and a finished state, beside tmp/neighbour."""
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "data" / "keep.txt").write_text("keep\n")
    (tmp_path / "neighbour.txt").write_text("neighbour\n")
    (root / "Pipefile").write_text("ok.txt :\n    shell: echo ok > {output}\n")
    assert run(root, "ok.txt").returncode == 0
    monkeypatch.chdir(root)
    return root


def assert_nothing_lost(root: Path) -> None:
    assert (root / "data" / "keep.txt").read_text() == "keep\n"
    assert (root / "ok.txt").read_text() == "ok\n"
    assert (root / ".rulerun" / "state.db").exists()
    assert (root.parent / "neighbour.txt").read_text() == "neighbour\n"


@pytest.mark.parametrize("output, where", [
    ("../proj", "is the project directory itself"),
    ("..", "is outside the project directory"),
    (".rulerun/state.db", "is inside .rulerun/, rulerun's own directory"),
])
def test_a_literal_output_that_would_take_the_project_is_refused_at_load(nest, output, where):
    (nest / "Pipefile").write_text(f"ok.txt :\n    shell: echo ok > {{output}}\n{output} :\n    shell: exit 1\n")
    result = run(nest, "-k", output)
    assert_clean(result)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"Pipefile:3:1: output '{output}' of rule '{output}' {where}\n"), result.stderr
    assert_nothing_lost(nest)


@pytest.mark.parametrize("target, where", [
    ("../proj", "is the project directory itself"),
    ("..", "is outside the project directory"),
    (".rulerun/state.db", "is inside .rulerun/, rulerun's own directory"),
    ("../neighbour.txt", "is outside the project directory"),
])
def test_a_wildcard_value_that_would_take_the_project_is_refused_before_anything_runs(nest, target, where):
    (nest / "Pipefile").write_text("ok.txt :\n    shell: echo ok > {output}\n% :\n    shell: rm -rf {output}; exit 1\n")
    for args in (["-n", target], ["-k", target]):
        result = run(nest, *args)
        assert_clean(result)
        assert result.returncode == 2, result.stderr
        assert f"rulerun: '{target}', an output of rule '%' (Pipefile:3:1) making {target} (with % = '{target}'), " \
               f"{where}" in result.stderr
    assert_nothing_lost(nest)


def test_a_failed_job_behind_a_symlink_out_of_the_project_touches_nothing_and_says_so(nest):
    """The quarantine never follows a symlink out of the project: the output stays where it is,
    the report says why, and the job is not trusted (it runs again)."""
    (nest.parent / "elsewhere").mkdir()
    (nest / "out").symlink_to(nest.parent / "elsewhere")
    (nest / "Pipefile").write_text("out/x.txt :\n    shell: echo half > {output}; exit 1\n")
    result = run(nest, "out/x.txt")
    assert_clean(result)
    assert result.returncode == 1, result.stderr
    assert "'out/x.txt' left where it is, untouched: a symlink on its way leads to" in result.stderr
    assert (nest.parent / "elsewhere" / "x.txt").read_text() == "half\n"
    assert not (nest / ".rulerun" / "failed" / "out").exists()
    assert "rule out/x.txt" in run(nest, "-n", "out/x.txt").stdout


@pytest.mark.parametrize("keep_going", [False, True])
def test_what_a_failed_split_job_made_is_set_aside_not_taken_for_its_outputs(nest, keep_going):
    """A split job that wrote some parts and then failed: the next run must run it again, not
    take the parts it left for its outputs and build on them (it did, quietly)."""
    (nest / "Pipefile").write_text(
        "parts/*.txt : in.txt\n"
        "    shell: mkdir -p parts; echo a > parts/a.txt; echo b > parts/b.txt; test -e ok\n"
        "\n"
        "all.txt : parts/*.txt\n"
        "    shell: cat {input} > {output}\n")
    (nest / "in.txt").write_text("x\n")
    first = run(nest, *(["-k"] if keep_going else []), "all.txt")
    assert_clean(first)
    assert first.returncode == 1 and not (nest / "parts" / "a.txt").exists()
    assert (nest / ".rulerun" / "failed" / "parts" / "a.txt").read_text() == "a\n"
    again = run(nest, "all.txt")
    assert again.returncode == 1 and not (nest / "all.txt").exists(), again.stderr
    (nest / "ok").write_text("")
    fixed = run(nest, "all.txt")
    assert fixed.returncode == 0, fixed.stderr
    assert (nest / "all.txt").read_text() == "a\nb\n"


# ------------------------------------------------------------------ the quarantine itself

def test_quarantine_moves_only_what_lies_inside_the_project(nest):
    """However a path reached it, the quarantine leaves alone the project, its parent, anything
    outside and .rulerun/ itself."""
    from rulerun.run.outputs import quarantine

    (nest / "made.txt").write_text("half\n")
    done = quarantine(["..", "../proj", ".", ".rulerun", ".rulerun/state.db", "../neighbour.txt", "made.txt"])
    assert done.moved == [".rulerun/failed/made.txt"]
    assert len(done.notes) == 6 and all("left where it is, untouched" in note for note in done.notes)
    assert_nothing_lost(nest)
    assert (nest / ".rulerun" / "failed" / "made.txt").read_text() == "half\n"


def test_quarantine_never_deletes_a_directory_it_cannot_move(nest, monkeypatch):
    """A move across file systems fails: a file is removed (the job's own output, as make does),
    a directory stays where it is, and both are said."""
    from rulerun.run import outputs

    (nest / "tree").mkdir()
    (nest / "tree" / "inside.txt").write_text("inside\n")
    (nest / "file.txt").write_text("half\n")

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(outputs.os, "replace", cross_device)
    done = outputs.quarantine(["tree", "file.txt"])
    assert done.moved == []
    assert done.notes[0].startswith("'tree' left where it is: it could not be moved to .rulerun/failed/")
    assert done.notes[1] == "'file.txt' removed: it could not be moved to .rulerun/failed/ (Invalid cross-device link)"
    assert (nest / "tree" / "inside.txt").read_text() == "inside\n"
    assert not (nest / "file.txt").exists()


def test_quarantine_replaces_a_symlink_left_in_its_way_without_following_it(nest):
    """An earlier failure set aside a symlink to the parent at .rulerun/failed/sub: a later output
    sub/x.txt goes under a real .rulerun/failed/sub/, not through the link."""
    from rulerun.run.outputs import quarantine

    (nest / "sub").symlink_to("..")
    assert quarantine(["sub"]).moved == [".rulerun/failed/sub"]
    (nest / "sub").mkdir()
    (nest / "sub" / "x.txt").write_text("half\n")
    assert quarantine(["sub/x.txt"]).moved == [".rulerun/failed/sub/x.txt"]
    assert not (nest.parent / "x.txt").exists()
    assert (nest / ".rulerun" / "failed" / "sub" / "x.txt").read_text() == "half\n"
    assert_nothing_lost(nest)
