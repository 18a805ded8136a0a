"""The command line end to end on the shipped examples and on small projects: every option of
PIPEFILE.md that does not run jobs, usage errors and exit statuses."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import REPO


@pytest.fixture
def example(project):
    def copy(name: str):
        shutil.copytree(REPO / "examples" / name, project.root, dirs_exist_ok=True)
        return project
    return copy


def test_version_is_fast_and_exact(project):
    from rulerun import __version__

    result = project.run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"rulerun {__version__}"


def test_seed_dry_run_is_honest_about_the_split_rule(example):
    project = example("seed")
    result = project.run("-n", "all")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "split rule *stage1 (outputs: whatever matches *stage1)\n    because no file matches its output glob yet" in out
    assert "after split rule '*stage1' has run: the jobs of rule(s) stage1_big, stage1_small, stage2 for task all" in out
    assert "rulerun: 1 job(s) would run (and more once the split rules above have run)" in out
    assert not project.exists("0.small_stage1")  # a dry run runs nothing


def test_rule_name_target_builds_every_output_of_the_rule(example):
    project = example("seed")
    result = project.run("-j", "10", "stage1_small")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in project.root.glob("*.stage2")) == [f"{i}.stage2" for i in range(5)]
    assert not list(project.root.glob("*.stage3"))


def test_cbuild_builds_runs_and_rebuilds_only_what_changed(example):
    project = example("cbuild")
    result = project.run("run")
    assert result.returncode == 0, result.stderr
    assert "hello, rulerun" in (project.root / ".rulerun" / "logs" / "run").iterdir().__next__().read_text()
    assert "nothing to do" in project.run().stdout
    (project.root / "src/greet.c").write_text((project.root / "src/greet.c").read_text() + "\n")
    dry = project.run("-n").stdout
    assert "rule compile: build/greet.o" in dry and "build/main.o" not in dry and "rule link: build/hello" in dry


def test_cbuild_variable_override_reruns_the_jobs_using_it(example):
    project = example("cbuild")
    assert project.run().returncode == 0
    dry = project.run("-n", "CFLAGS=-O0").stdout
    assert dry.count("variable 'CFLAGS' changed") == 2 and "rule link" in dry


def test_data_pipeline_builds_report_through_the_split_rule(example):
    project = example("data")
    result = project.run("-j", "4")
    assert result.returncode == 0, result.stderr
    report = project.read("report.md")
    assert "sample alpha: n=3 mean=2.00" in report and "21 words in 3 shards" in report
    assert "nothing to do" in project.run().stdout


def test_unknown_override_is_accepted_with_a_warning(example):
    project = example("cbuild")
    result = project.run("-n", "NOSUCH=1")
    assert result.returncode == 0
    assert "the Pipefile has no variable 'NOSUCH'" in result.stderr


def test_list_shows_rules_tasks_and_lines(example):
    out = example("seed").run("--list").stdout
    assert "rule stage1_small        %.stage2 : %.small_stage1  (Pipefile:13:1)" in out
    assert "task all" in out and "(Pipefile:33:1)" in out


def test_graph_is_dot(example):
    project = example("cbuild")
    out = project.run("--graph", "build/hello").stdout
    assert out.startswith("digraph rulerun {") and out.rstrip().endswith("}")
    assert out.count("->") == 2 and 'label="link build/hello"' in out


def test_f_and_C_options(project, tmp_path):
    sub = project.root / "sub"
    sub.mkdir()
    (sub / "rules.pf").write_text("out :\n    shell: echo made > out\n")
    result = project.run("-C", "sub", "-f", "rules.pf")
    assert result.returncode == 0, result.stderr
    assert (sub / "out").read_text() == "made\n"


def test_missing_pipefile_is_a_usage_error(project):
    result = project.run()
    assert result.returncode == 2 and "no Pipefile here" in result.stderr and "Traceback" not in result.stderr


def test_bad_option_is_a_usage_error(project):
    result = project.run("--frobnicate")
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr


def test_no_rule_for_target_exits_2_with_suggestion(project):
    project.write("Pipefile", "report.txt :\n    shell: touch report.txt\n")
    result = project.run("reprot.txt")
    assert result.returncode == 2
    assert "no rule to make 'reprot.txt'" in result.stderr and "did you mean 'report.txt'?" in result.stderr


def test_verbose_prints_commands_and_quiet_prints_nothing(project):
    project.write("Pipefile", "a :\n    shell: echo hi > a\n")
    assert "echo hi > a" in project.run("-v", "a").stdout
    (project.root / "a").unlink()
    result = project.run("-q", "a")
    assert result.returncode == 0 and result.stdout == "" and project.exists("a")


def test_no_color_and_pipes_get_plain_text(project):
    project.write("Pipefile", "a :\n    shell: exit 1\n")
    result = project.run("a", env={"NO_COLOR": "1"})
    assert result.returncode == 1 and "\x1b[" not in result.stderr + result.stdout


def test_warnings_are_said_once_when_the_run_restarts_for_drmaa(project):
    project.write("Pipefile", "out :\n    cluster:\n    shell: touch out\n")
    env = {"DRMAA_LIBRARY_PATH": "/nonexistent/libdrmaa.so", "GLIBC_TUNABLES": "", "NOSUCH": ""}
    result = project.run("out", "NOSUCH=1", env=env)
    assert result.returncode == 2 and "--local" in result.stderr          # restarted, then no library
    assert result.stderr.count("the Pipefile has no variable 'NOSUCH'") == 1


def test_samples_example_is_a_sample_sheet_pipeline_without_workarounds(example):
    """examples/samples: the sheet's samples (not the files on disk), params from the config,
    logs per job, a temporary intermediate deleted and not made again, a param change that
    reruns only what it changes."""
    project = example("samples")
    first = project.run("-j", "4")
    assert first.returncode == 0, first.stderr
    rows = project.read("calls/all.tsv").splitlines()
    assert rows[0] == "sample\treads\tbusiest_window" and [r.split("\t")[0] for r in rows[1:]] == ["alpha", "beta", "gamma"]
    assert not project.exists("coverage/delta.json")  # on disk, not in the sheet
    assert project.read("logs/filter/alpha.log") == "keeping reads of quality 20 or more\n"
    assert "(2 threads)" in project.read("logs/coverage/beta.log")
    assert not any((project.root / "filtered").iterdir())  # temp: gone once its readers succeeded
    assert project.read("plots/coverage.svg").startswith("<svg")
    assert "nothing to do" in project.run().stdout
    project.write("config.yaml", project.read("config.yaml").replace("min_quality: 20", "min_quality: 30"))
    dry = project.run("-n").stdout
    assert dry.count("param 'min_quality' changed") == 3 and "param 'window' changed" not in dry
    assert project.run().returncode == 0
    assert "keeping reads of quality 30 or more" in project.read("logs/filter/gamma.log")


def test_a_plain_command_line_is_read_without_argparse_and_as_argparse_reads_it():
    """quick_options spares the no-op argparse's cost; it must never read a command line
    otherwise than parse_args does, nor take one that parse_args refuses."""
    import pytest

    from rulerun.cli import parse_args, quick_options
    from rulerun.errors import UsageError

    plain = [[], ["all"], ["-j2", "all"], ["-j", "2", "all", "X=1"], ["all", "-j4"], ["a", "b", "N=x=y"],
             ["-j3", "-j5", "a"], ["_v1=", "out/a.txt"], ["=x", "1X=2", "é=1"]]
    others = [["-n", "all"], ["a", "-j2", "b"], ["-j0"], ["-j", "-2"], ["-j"], ["-jx"], ["-j", "²"],
              ["-j", "2_0"], ["--", "a"], ["-", "a"], ["-k", "a"], ["a", "--jobs", "2"], ["-j=2"],
              ["-j", "+2"], ["a", "-j", "2", "b"], ["-C", "d", "a"]]
    for argv in plain + others:
        quick = quick_options(list(argv))
        try:
            full = parse_args(list(argv))
        except (UsageError, SystemExit):
            full = None
        if argv in plain:
            assert quick is not None, argv
        if quick is not None:
            assert full is not None and _settings(quick) == _settings(full), argv
    with pytest.raises(UsageError):
        parse_args(["a", "-j2", "b"])  # what quick_options must leave to parse_args


def _settings(options) -> dict:
    from rulerun.options import Options

    return {name: getattr(options, name) for name in Options.__annotations__}
