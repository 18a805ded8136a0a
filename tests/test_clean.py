"""`rulerun --clean [TARGET …]` (issue 16, item 4): what the targets' jobs make goes, with its
records; sources and anything outside the project stay; -n lists."""

from __future__ import annotations

PIPEFILE = """
%.count : %.txt
    shell: wc -w < {input} > {output}
total : a.count b.count
    shell: cat {input} > {output}
ext/out : a.txt
    shell: cp {input} {output}
task all : total
"""


def built(project):
    project.write("Pipefile", PIPEFILE)
    project.write("a.txt", "a b\n")
    project.write("b.txt", "c\n")
    assert project.run("all").returncode == 0
    return project


def test_clean_dry_run_lists_and_removes_nothing(project):
    built(project)
    result = project.run("--clean", "-n", "all")
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["would remove a.count", "would remove b.count", "would remove total"]
    assert project.exists("total") and project.exists("a.count")


def test_clean_removes_outputs_and_records_never_sources(project):
    built(project)
    result = project.run("--clean", "all")
    assert result.returncode == 0, result.stderr
    assert "removed total" in result.stdout and "removed 3 file(s)" in result.stdout
    assert not project.exists("total") and not project.exists("a.count") and not project.exists("b.count")
    assert project.exists("a.txt") and project.exists("b.txt") and project.exists("Pipefile")
    dry = project.run("-n", "all").stdout
    assert "output 'total' is missing" in dry and "3 job(s) would run" in dry


def test_clean_of_one_target_leaves_the_others(project):
    built(project)
    assert project.run("--clean", "a.count").returncode == 0
    assert not project.exists("a.count") and project.exists("b.count") and project.exists("total")


def test_clean_leaves_what_a_symlink_puts_outside_the_project(project, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    project.write("Pipefile", PIPEFILE)
    project.write("a.txt", "a\n")
    (project.root / "ext").symlink_to(outside)
    (outside / "out").write_text("keep me\n")
    result = project.run("--clean", "ext/out")
    assert result.returncode == 0
    assert "left alone (outside the project): ext/out" in result.stdout
    assert (outside / "out").read_text() == "keep me\n"
