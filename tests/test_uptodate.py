"""The no-op answer (uptodate.py): a run that finds the record valid says "nothing to do"
without loading the Pipefile; anything that could change the decisions sends the run
through the full path, which runs what must run.

Whether the full path ran is seen through the Pipefile's preamble: a top-level Python block
that appends a line to a file outside the project every time the Pipefile is loaded.
"""

from __future__ import annotations

import os
import time

import pytest

from rulerun.plan import record as uptodate
from rulerun.plan.view import DiskView
from rulerun.lang.namespace import fixed_names

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


def later(path) -> None:
    """`path` was just edited: its time is now, after every output made by the last run (not
    in the future, or what is made from it would look older than it even after it ran)."""
    before = os.stat(path).st_mtime_ns
    os.utime(path)
    assert os.stat(path).st_mtime_ns >= before


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


def test_another_request_is_not_answered_by_the_record(chain):
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


def test_force_and_dry_run_never_use_the_record(chain):
    before = chain.loads()
    dry = chain.run("-n", "all")
    assert dry.returncode == 0
    forced = chain.run("-B", "all")
    assert forced.returncode == 0 and "4 job(s) done" in forced.stdout
    assert chain.loads() == before + 2


def test_a_failed_build_leaves_no_record(chain):
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


def test_a_variable_computed_by_code_is_never_recorded(project):
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


def test_a_param_read_from_a_file_by_a_function_is_never_recorded(project):
    """The param's value is part of the decision: a record kept for it would call out.txt up
    to date after count.txt changed, which the full decision reruns ("param 'n' changed")."""
    project.write("Pipefile", """\
        python:
            def words_in(path):
                return len(open(path).read().split())

        out.txt : in.txt
            params:
                n = words_in("count.txt")
            shell: echo {params.n} > {output}
        """)
    project.write("in.txt", "x\n")
    project.write("count.txt", "a b\n")
    assert project.run("out.txt").returncode == 0
    assert not project.exists(".rulerun/uptodate")
    project.write("count.txt", "a b c\n")
    assert project.run("out.txt").returncode == 0
    assert project.read("out.txt") == "3\n"


INPUT_FUNCTIONS = """\
    SAMPLES = ["x", "y"]

    task all : out/$(SAMPLES).txt

    out/{sample}.txt : $(source_of(wildcards.sample))
        shell: cp {input} {output}

    python:
        import os

        def source_of(sample):
            return f"in/{sample.upper()}.src"
    """


def test_pure_input_functions_let_the_record_answer_and_an_edit_reruns_its_job_only(project):
    project.write("Pipefile", INPUT_FUNCTIONS)
    project.write("in/X.src", "x1\n")
    project.write("in/Y.src", "y1\n")
    assert project.run("all").returncode == 0
    assert project.exists(".rulerun/uptodate")
    assert "nothing to do" in project.run("all").stdout
    time.sleep(0.01)
    project.write("in/Y.src", "y2\n")
    second = project.run("-v", "all")
    assert second.returncode == 0, second.stderr
    assert project.read("out/y.txt") == "y2\n" and project.read("out/x.txt") == "x1\n"
    assert "out/x.txt" not in second.stdout + second.stderr


@pytest.mark.parametrize("body", [
    'return open("sheet.txt").read().split()[0] if sample == "x" else f"in/{sample.upper()}.src"',
    'return os.environ.get("SOURCE_" + sample, f"in/{sample.upper()}.src")',
    'return sorted(glob.glob(f"in/{sample.upper()}*.src"))[-1]',
])
def test_an_input_function_reading_the_disk_or_the_environment_is_never_recorded(project, body):
    project.write("Pipefile", INPUT_FUNCTIONS.replace('return f"in/{sample.upper()}.src"', body)
                  .replace("import os", "import os, glob"))
    project.write("in/X.src", "x1\n")
    project.write("in/Y.src", "y1\n")
    project.write("sheet.txt", "in/X.src\n")
    assert project.run("all").returncode == 0, project.run("all").stderr
    assert not project.exists(".rulerun/uptodate")


def test_a_task_with_an_action_runs_every_time(project):
    project.write("Pipefile", """\
        task hello :
            shell: echo hi >> said.txt
        """)
    for _ in range(2):
        assert project.run("hello").returncode == 0
    assert not project.exists(".rulerun/uptodate")
    assert project.read("said.txt") == "hi\nhi\n"


def test_a_slow_noop_writes_the_record(chain):
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
    fs = DiskView()
    fs.listing("d")
    seen = fs.listed["d"]
    project.write("d/two", "")
    os.utime(project.root / "d", ns=(seen.mtime, seen.mtime))  # a change the time can't show
    fs.listed["d"] = seen._replace(at=seen.mtime + 1)            # listed right after it changed
    assert not uptodate._settled(fs)


def test_a_directory_unchanged_since_its_racy_listing_is_trusted(project):
    project.write("d/one", "")
    fs = DiskView()
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
    # the block mentions none of A, B, D: they stay fixed (C and E are calls' results)
    assert fixed_names(pipefile) == {"A", "B", "D", "F", "G"}
    assert fixed_names(pipefile, {"G": "1", "C": "3"}) >= {"F", "G"}
    pure = project.pipefile('A = 1\nB = f"{A}-x" + "y" * 2\nC = len("abc")\nD = [A, B, {"k": A}][0]\nE = C + 1\n')
    assert fixed_names(pure) == {"A", "B", "D"}
    assert fixed_names(pure, {"C": "3"}) == {"A", "B", "C", "D", "E"}


@pytest.mark.parametrize("block, still_fixed", [
    ("A.append(2)", {"B"}),                      # changes A
    ("A = [9]", {"B"}),
    ("def f():\n    global B\n    B = 1", {"A"}),
    ("from os import *", set()),                 # could bind any name
    ("globals()['A'] = 3", set()),
    ("exec('A = 3')", set()),
    ("import os\ndef g(s):\n    return s", {"A", "B"}),
])
def test_a_python_block_unfixes_what_it_mentions_or_everything_if_it_can_reach_anything(project, block, still_fixed):
    import textwrap

    pipefile = project.pipefile('A = [1]\nB = "b"\n\npython:\n' + textwrap.indent(block, "    ") + "\n")
    assert fixed_names(pipefile) == still_fixed


@pytest.mark.parametrize("garbage", [b"", b"\x00\x01junk", b"\xe9" * 40])
def test_a_damaged_record_is_ignored(chain, garbage):
    (chain.root / ".rulerun/uptodate").write_bytes(garbage)
    before = chain.loads()
    result = chain.run("all")
    assert result.returncode == 0 and NOTHING in result.stdout, result.stderr
    assert chain.loads() == before + 1


# ---------------------------------------------------------------- only some files changed


def test_after_an_edit_only_its_jobs_run_and_the_record_holds_again(chain):
    chain.write("src/b.txt", "B\n")
    later(chain.root / "src/b.txt")
    result = chain.run("-v", "all")
    assert result.returncode == 0, result.stderr
    assert "src/b.mid" in result.stdout and "src/a.mid" not in result.stdout
    assert chain.read("src/b.out") == "B\n" and chain.read("src/a.out") == "a\n"
    before = chain.loads()
    again = chain.run("all")
    assert NOTHING in again.stdout
    assert chain.loads() == before  # answered from the record, rewritten by the partial build


def test_an_edited_intermediate_reruns_what_follows_it_only(chain):
    chain.write("src/a.mid", "edited\n")
    later(chain.root / "src/a.mid")
    result = chain.run("-v", "all")
    assert result.returncode == 0, result.stderr
    assert chain.read("src/a.out") == "edited\n"
    assert "[%.mid]" not in result.stdout


def test_edits_one_after_another(chain):
    for round, text in enumerate(["one\n", "two\n", "three\n"], start=1):
        chain.write("src/a.txt", text)
        later(chain.root / "src/a.txt")
        assert chain.run("all").returncode == 0
        assert chain.read("src/a.out") == text


def test_a_damaged_graph_record_falls_back_to_the_full_decision(chain):
    (chain.root / ".rulerun/uptodate.graph").write_bytes(b"not a database")
    chain.write("src/a.txt", "A\n")
    later(chain.root / "src/a.txt")
    result = chain.run("all")
    assert result.returncode == 0, result.stderr
    assert chain.read("src/a.out") == "A\n" and chain.read("src/b.out") == "b\n"


def test_a_failing_partial_build_leaves_no_record(project):
    project.write("Pipefile", """\
        %.out : %.txt
            shell: test "$(cat {input})" != fail && cp {input} {output}
        """)
    project.write("a.txt", "fine\n")
    project.write("b.txt", "fine\n")
    assert project.run("a.out", "b.out").returncode == 0
    assert project.exists(".rulerun/uptodate")
    project.write("a.txt", "fail\n")
    later(project.root / "a.txt")
    failed = project.run("a.out", "b.out")
    assert failed.returncode == 1 and "FAILED" in failed.stderr
    assert not project.exists(".rulerun/uptodate")
    assert project.run("a.out", "b.out").returncode == 1  # decided in full: still failing


def test_an_action_that_changes_a_directory_gets_a_full_record(project):
    project.write("Pipefile", """\
        out/%.txt : in/%.txt
            shell: cp {input} {output} && touch out/side-effect-$$
        """)
    project.write("in/x.txt", "x\n")
    project.write("in/y.txt", "y\n")
    assert project.run("out/x.txt", "out/y.txt").returncode == 0
    assert project.exists(".rulerun/uptodate")
    project.write("in/x.txt", "X\n")
    later(project.root / "in/x.txt")
    assert project.run("out/x.txt", "out/y.txt").returncode == 0
    assert project.read("out/x.txt") == "X\n"
    assert project.exists(".rulerun/uptodate")
    again = project.run("out/x.txt", "out/y.txt")
    assert NOTHING in again.stdout


def test_affected_graph_is_the_changed_files_jobs_and_what_follows(project):
    from rulerun.plan.recorded_graph import affected_graph, save
    from rulerun.plan.view import DiskView
    from rulerun.lang.parse import load_pipefile
    from rulerun.plan.resolve import Resolver

    project.write("Pipefile", """\
        task all : src/*.out

        %.out : %.mid
            shell: cp {input} {output}

        %.mid : %.txt
            shell: cp {input} {output}
        """)
    for name in "abc":
        project.write(f"src/{name}.txt", name)
    pipefile = load_pipefile("Pipefile")
    graph = Resolver(pipefile, DiskView()).resolve_targets(["all"])
    files = sorted({path for job in graph.jobs for path in (*job.inputs, *job.outputs)} - {"all"})
    save(str(project.root / "g.db"), 7, graph, files)

    part, where = affected_graph(str(project.root / "g.db"), 7, pipefile, [files.index("src/b.txt")], files)
    assert [job.label for job in part.jobs] == ["%.mid src/b.mid", "%.out src/b.out", "all"]
    out_job, all_job = part.jobs[1], part.jobs[2]
    assert out_job.deps == [part.jobs[0]] and all_job.deps == [out_job]
    assert all_job.inputs == ["src/a.out", "src/b.out", "src/c.out"]  # its inputs stay whole
    assert [job.label for job in part.targets] == ["all"]
    assert {files[i] for i in where.values()} == set(where) >= {"src/b.txt", "src/b.mid", "src/a.out"}
    assert affected_graph(str(project.root / "g.db"), 8, pipefile, [0], files) is None
    assert affected_graph(str(project.root / "g.db"), 7, pipefile, [len(files) + 5], files) is None


def test_a_basis_is_given_up_when_another_run_wrote_the_record_again(chain):
    from rulerun.cli import parse_args

    chain.write("src/a.txt", "A\n")
    later(chain.root / "src/a.txt")
    basis = uptodate.look(parse_args(["all"]))
    assert isinstance(basis, uptodate.Basis) and basis.current()
    assert [basis.record["files"][0][i] for i in basis.changed] == ["src/a.txt"]
    record = chain.root / ".rulerun/uptodate"
    data = record.read_bytes()
    record.unlink()
    assert not basis.current()
    record.write_bytes(data)  # written again by another run: another file
    assert not basis.current()


def test_a_build_that_ran_jobs_writes_the_record_without_resolving_again(project, monkeypatch):
    """The record comes from the run's own plan and observations: one resolution, one decision
    per job, and the next run is answered from it."""
    from rulerun.cli import main
    from rulerun.plan.decide import Decisions
    from rulerun.plan.resolve import Resolver

    project.write("Pipefile", "task all : src/*.out\n%.out : %.mid\n    shell: cp {input} {output}\n"
                              "%.mid : %.txt\n    shell: cp {input} {output}\n")
    for name in "abc":
        project.write(f"src/{name}.txt", name)
    resolutions, decided = [], []
    resolve, why = Resolver.resolve_targets, Decisions._why
    monkeypatch.setattr(Resolver, "resolve_targets", lambda self, t: resolutions.append(t) or resolve(self, t))
    monkeypatch.setattr(Decisions, "_why", lambda self, job: decided.append(job) or why(self, job))
    assert main(["-q", "all"]) == 0
    assert resolutions == [["all"]] and len(decided) == len(set(decided)) == 6  # the task has no action
    assert project.exists(".rulerun/uptodate")
    assert NOTHING in project.run("all").stdout


def test_an_output_older_than_its_input_is_not_recorded_as_up_to_date(project):
    """A job that leaves its output older than its input (cp -p, tar x) is run again by the
    full decision; the record written from the run must not say otherwise."""
    project.write("Pipefile", "out.txt : in.txt\n    shell: cp {input} {output} && touch -d 2000-01-01 {output}\n")
    project.write("in.txt", "x\n")
    assert project.run("out.txt").returncode == 0
    again = project.run("out.txt")
    assert again.returncode == 0 and NOTHING not in again.stdout  # the full decision ran it again


def test_an_input_edited_while_its_job_runs_is_not_recorded_as_seen(project):
    """The record keeps an input's time as its job started: an edit while the job ran makes the
    next run decide (and run the job again), never answer from the record."""
    import subprocess
    import sys

    project.write("Pipefile", "out.txt : in.txt\n    shell: cat {input} > {output}; sleep 1.5\n")
    project.write("in.txt", "first\n")
    from tests.conftest import REPO

    env = dict(os.environ, PYTHONPATH=str(REPO))
    running = subprocess.Popen([sys.executable, "-m", "rulerun", "out.txt"], cwd=project.root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not project.exists("out.txt") and time.monotonic() < deadline:
        time.sleep(0.05)
    project.write("in.txt", "second\n")
    assert running.wait(timeout=20) == 0
    again = project.run("out.txt")
    assert NOTHING not in again.stdout and project.read("out.txt") == "second\n"


REPORT = "report.txt : data/*.csv\n    shell: cat {input} > {output}\n"


def test_a_file_added_with_its_directory_time_put_back_is_seen(project):
    """`tar x` adds data/c.csv and restores data/'s time: the directory's change time (which no
    one can put back) says it changed, and the full decision builds the new file in."""
    project.write("Pipefile", REPORT)
    project.write("data/a.csv", "a\n")
    project.write("data/b.csv", "b\n")
    assert project.run("report.txt").returncode == 0 and project.exists(".rulerun/uptodate")
    data = project.root / "data"
    before = os.stat(data)
    project.write("data/c.csv", "c\n")
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(data).st_mtime_ns == before.st_mtime_ns
    again = project.run("report.txt")
    assert again.returncode == 0 and NOTHING not in again.stdout
    assert project.read("report.txt") == "a\nb\nc\n"


def test_an_input_directory_switched_to_another_version_with_equal_times_is_seen(project):
    """data -> v1 switched to data -> v2, every time equal: another directory, another listing."""
    project.write("Pipefile", REPORT)
    project.write("v1/a.csv", "a1\n")
    project.write("v2/a.csv", "a2\n")
    project.write("v2/b.csv", "b2\n")
    stamp = time.time_ns() - 10_000_000_000
    for path in ("v1/a.csv", "v2/a.csv", "v2/b.csv", "v1", "v2"):
        os.utime(project.root / path, ns=(stamp, stamp))
    os.symlink("v1", project.root / "data")
    assert project.run("report.txt").returncode == 0 and project.read("report.txt") == "a1\n"
    assert project.exists(".rulerun/uptodate")
    root = os.stat(project.root)
    os.symlink("v2", project.root / "data.new")
    os.replace(project.root / "data.new", project.root / "data")
    os.utime(project.root, ns=(root.st_atime_ns, root.st_mtime_ns))  # every time as it was
    again = project.run("report.txt")
    assert again.returncode == 0 and NOTHING not in again.stdout
    assert project.read("report.txt") == "a2\nb2\n"
