"""What rulerun says when something is off (issue 16, item 3): -k's unmade targets, globs that
match nothing, -j 0, make's automatic variables in shell actions, cycles with their rules."""

from __future__ import annotations


def test_keep_going_summary_names_the_requested_targets_not_made(project):
    project.write("Pipefile", """
        good :
            shell: touch {output}
        bad :
            shell: exit 3
        after : bad
            shell: touch {output}
        task both : good after
        """)
    result = project.run("-k", "good", "after", "both")
    assert result.returncode == 1
    assert "not made: after, both" in result.stderr and project.exists("good")


def test_a_glob_matching_nothing_is_a_warning_in_dry_and_verbose_runs(project):
    project.write("Pipefile", "total : *.nums\n    shell: cat {input} > {output}\n")
    warning = "the glob '*.nums' of rule 'total' (Pipefile:1:1) matches no file"
    assert warning in project.run("-n", "total").stderr
    assert warning in project.run("-v", "total").stderr
    (project.root / "total").unlink()
    assert warning not in project.run("total").stderr  # a plain run stays quiet
    project.write("a.nums", "1\n")
    assert "matches no file" not in project.run("-n", "-B", "total").stderr


def test_j_0_is_refused_with_a_clear_error(project):
    project.write("Pipefile", "a :\n    shell: touch a\n")
    result = project.run("-j", "0")
    assert result.returncode == 2 and "-j needs a positive number of jobs, not 0" in result.stderr
    assert "Traceback" not in result.stderr and not project.exists("a")


def test_make_automatic_variables_get_a_hint_with_their_place(project):
    project.write("Pipefile", "out : a.txt\n    shell: cat $< > $@ && echo $^\n")
    project.write("a.txt", "x\n")
    result = project.run("-n")
    assert result.returncode == 0  # a hint, not an error: `$@` is valid bash
    assert "Pipefile:2:16: '$<' in the shell action of rule 'out' is make's name for the first input; " \
           "here write {input[0]}" in result.stderr
    assert "'$@' in the shell action of rule 'out' is make's name for the output; here write {output}" in result.stderr
    assert "'$^'" in result.stderr and "here write {input}" in result.stderr


def test_a_cycle_names_its_rules_and_their_lines(project):
    project.write("Pipefile", """\
        %.x : %.y
            shell: cp {input} {output}
        a.y : a.x
            shell: cp {input} {output}
        """)
    result = project.run("a.x")
    assert result.returncode == 2 and "dependency cycle: a.x -> a.y -> a.x" in result.stderr
    assert "  a.x: rule '%.x' (Pipefile:1:1)" in result.stderr
    assert "  a.y: rule 'a.y' (Pipefile:3:1)" in result.stderr


def test_cluster_lines_on_a_python_rule_that_submits_nothing_get_a_warning(project):
    project.write("Pipefile", "a :\n    cluster: -l h_rt=60\n    retries: 2\n    python:\n        open('a', 'w').close()\n"
                              "b :\n    queue: q\n    python:\n        from rulerun.cluster import run_job\n"
                              "        run_job('touch b', run_locally=True)\n")
    result = project.run("-n")
    assert result.returncode == 0, result.stderr  # a hint, not an error
    assert "Pipefile:1:1: rule 'a' has a Python action, which runs on this machine: its cluster:, " \
           "queue: and retries: apply only to the rulerun.cluster.run_job calls it makes, and it makes none" \
        in result.stderr
    assert "rule 'b'" not in result.stderr        # its run_job calls take them
