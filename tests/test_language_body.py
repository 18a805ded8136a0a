"""Part 2 body forms: params:, threads:, resources: and --limit (PIPEFILE.md "Per-job values",
"Threads and resources"): parsed, checked, evaluated per job, in the signature, limited by amount."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rulerun.errors import PipefileError
from rulerun.lang.params import job_values
from rulerun.lang.parse import load_pipefile
from rulerun.lang.template import render_shell
from rulerun.plan.decide import changes
from rulerun.plan.planner import make_plan
from rulerun.plan.view import DiskView
from rulerun.run.executor import JobResult
from rulerun.run.loop import Scheduler
from rulerun.run.ready import Limits, ReadyQueue
from rulerun.run.spec import Specs
from rulerun.store.disk import FakeDisk
from rulerun.ui import make_reporter
from tests.test_loop import FakeExecutor, _State

REPO = Path(__file__).resolve().parent.parent

PARAMS = """\
limit mem = 10
out/{s}.txt : in/{s}.txt
    params:
        rg = f"@RG {wildcards.s}"
        n = (len(input) +
             threads)
    threads: 4
    resources: mem=3 gpu=1
    shell: echo {params.rg} {params.n} {threads} {resources.gpu} > {output}
"""


def load(text: str, **kwargs):
    return load_pipefile("Pipefile", text=text, **kwargs)


def error(text: str, **kwargs) -> PipefileError:
    with pytest.raises(PipefileError) as caught:
        load(text, **kwargs)
    return caught.value


# ---------------------------------------------------------------- parsing and checks

def test_params_threads_and_resources_are_parsed_with_their_places():
    rule = load(PARAMS).rules[0]
    assert [(p.name, p.expression, p.loc.line, p.loc.col) for p in rule.params] == [
        ("rg", 'f"@RG {wildcards.s}"', 4, 14), ("n", "len(input) +\n     threads", 5, 14)]
    assert rule.threads == 4
    assert [(r.name, r.amount, r.loc.col) for r in rule.resources] == [("mem", 3, 16), ("gpu", 1, 22)]


@pytest.mark.parametrize("body, message", [
    ("    params:\n        x = 1\n        x = 2\n", "param 'x' is given twice"),
    ("    params:\n        x += 1\n", "a params: block holds only 'NAME = EXPRESSION' lines"),
    ("    params:\n        x = (\n", "Python syntax error"),
    ("    threads: 0\n", "threads must be at least 1, not 0"),
    ("    threads: x\n", "'threads:' takes a number"),
    ("    resources: a=1 a=2\n", "resource 'a' is given twice"),
    ("    resources: a\n", "'resources:' takes NAME=AMOUNT words"),
])
def test_mistakes_in_the_new_body_lines_are_located(body, message):
    err = error(f"o : i\n{body}    shell: true\n")
    assert message in err.message and err.loc.line >= 2


def test_an_unknown_param_in_shell_is_an_error_with_a_close_name():
    err = error("o : i\n    params:\n        rate = 1\n    shell: echo {params.rat}\n")
    assert (err.loc.line, err.loc.col) == (4, 17)
    assert err.message == "unknown name '{params.rat}' in the shell action of rule 'o'"
    assert err.hint == "did you mean '{params.rate}'?"


def test_a_resource_larger_than_its_limit_is_an_error_unless_limit_raises_it():
    text = "limit mem = 4\no : i\n    resources: mem=5\n    shell: true\n"
    err = error(text)
    assert (err.loc.line, err.loc.col) == (3, 16)
    assert "asks for 5 of limit 'mem', which is 4 in all" in err.message
    assert load(text, limit_sizes={"mem": 8}).rules[0].resources[0].amount == 5
    assert "which is 2 in all" in error("o : i\n    resources: gpu=3\n    shell: true\n",
                                        limit_sizes={"gpu": 2}).message


# ---------------------------------------------------------------- values per job

def test_params_are_evaluated_per_job_and_substituted_quoted():
    rule = load(PARAMS).rules[0]
    values = job_values(rule, ["in/a.txt"], ["out/a.txt"], {"s": "a"}, None, {})
    assert values.params == {"rg": "@RG a", "n": 5} and values.params.rg == "@RG a"
    own = {"params": values.params, "threads": 2, "resources": values.resources}
    command = render_shell(rule.action.script, ["in/a.txt"], ["out/a.txt"], {"s": "a"}, None, {}, own=own)
    assert command == "echo '@RG a' 5 2 1 > out/a.txt"


def test_a_param_that_raises_is_an_error_at_its_expression_naming_the_job():
    rule = load("o/{s} : i\n    params:\n        x = 1 / 0\n    shell: true\n").rules[0]
    with pytest.raises(PipefileError) as caught:
        job_values(rule, ["i"], ["o/a"], {"s": "a"}, None, {})
    assert (caught.value.loc.line, caught.value.loc.col) == (3, 13)
    assert "param 'x' of rule 'o/{s}' for 'o/a' raised ZeroDivisionError" in caught.value.message


def test_threads_are_capped_at_j_and_cluster_options_see_them():
    pipefile = load("o : i\n    threads: 8\n    resources: mem_gb=3\n    cluster: -pe smp {threads} -l m={resources.mem_gb}G\n    shell: true\n")
    disk = FakeDisk()
    disk.write("i")
    plan = make_plan(pipefile, {}, ["o"], _State(), view=DiskView(disk=disk))
    spec = Specs({}, values=plan.signatures.values, max_threads=3)(plan.graph.targets[0])
    assert spec.threads == 3 and spec.native_spec == "-pe smp 3 -l m=3G"


def test_an_unpicklable_param_fails_its_python_job_naming_the_rule():
    pipefile = load("o : i\n    params:\n        f = lambda: 1\n    python:\n        pass\n")
    disk = FakeDisk()
    disk.write("i")
    plan = make_plan(pipefile, {}, ["o"], _State(), view=DiskView(disk=disk))
    executor = FakeExecutor(disk, lambda spec: ["-j"])
    scheduler = Scheduler(plan, Specs({}, values=plan.signatures.values), _State(), executor,
                          ReadyQueue(Limits(2, {})), make_reporter(-1, io.StringIO(), io.StringIO()))
    outcome = scheduler.run()
    assert outcome.exit_code == 1 and executor.started == []
    assert "param 'f' of rule 'o' can't be sent" in outcome.failures[0].result.reason


# ---------------------------------------------------------------- the signature

def test_a_changed_param_is_named_and_an_unchanged_one_is_not():
    pipefile = load("o/{s} : i\n    params:\n        rg = TAG + wildcards.s\n        k = 1\n    shell: true\n")
    disk = FakeDisk()
    disk.write("i")

    def signature(tag: str):
        plan = make_plan(pipefile, {"TAG": tag}, ["o/a"], _State(), view=DiskView(disk=disk))
        return plan.signatures(plan.graph.targets[0])

    old, new = signature("x"), signature("y")
    assert signature("x") == old  # the same values fingerprint the same
    assert changes(old, new) == ["param 'rg' changed"]  # TAG reaches the job through its param only
    assert changes(old, signature("x")) == []


# ---------------------------------------------------------------- limits as amounts

AMOUNTS = """\
limit mem = 10
task all : $ALL

%.a : %.in
    name: heavy
    threads: 3
    resources: mem=6 disk=2
    shell: x
%.b : %.a
    name: light
    threads: 1
    resources: mem=3
    shell: x
%.c : %.b
    name: joiner
    limit: disk
    shell: x
"""


def _amounts(spec):
    return ["-j"] * spec.threads + [name for name, amount in spec.resources.items() for _ in range(amount)] \
        + (["disk"] if spec.rule == "joiner" else [])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("jobs", [2, 4, 7])
def test_amounts_never_pass_any_limit_in_any_finishing_order(seed, jobs):
    import random

    disk = FakeDisk()
    for i in range(8):
        disk.write(f"{i}.in")
    text = AMOUNTS.replace("$ALL", " ".join(f"{i}.c" for i in range(8)))
    pipefile = load(text, limit_sizes={"disk": 3})
    plan = make_plan(pipefile, {}, ["all"], _State(), view=DiskView(disk=disk))
    pick = random.Random(seed)
    executor = FakeExecutor(disk, _amounts, order=lambda running: pick.randrange(len(running)))
    limits = Limits(jobs, {"mem": 10, "disk": 3})
    scheduler = Scheduler(plan, Specs({}, values=plan.signatures.values, max_threads=jobs), _State(), executor,
                          ReadyQueue(limits), make_reporter(-1, io.StringIO(), io.StringIO()))
    outcome = scheduler.run()
    assert outcome.exit_code == 0 and outcome.ran == 24
    assert executor.most["-j"] <= jobs and executor.most["mem"] <= 10 and executor.most["disk"] <= 3
    if jobs >= 4:
        assert executor.most["mem"] >= 9  # a heavy and a light job, or three light ones, did fit together


def test_the_ready_queue_counts_amounts_and_caps_threads():
    class Rule:
        def __init__(self, index, threads=None, resources=(), limit=None):
            self.index, self.threads, self.resources, self.limit = index, threads, resources, limit

    from rulerun.lang.model import Resource

    mem = (Resource("mem", 4, None),)
    limits = Limits(4, {"mem": 8})
    assert limits.keys(Rule(0, threads=16)) == (("", 4),)
    assert limits.keys(Rule(0, resources=(Resource("nolimit", 5, None),))) == (("", 1),)
    ready = ReadyQueue(limits)
    for job in range(3):
        ready.add(job, Rule(0, threads=1, resources=mem))
    assert ready.take() == [0, 1]  # a third would need 12 of mem 8
    ready.done(0)
    assert ready.take() == [2] and limits.used == {"": 2, "mem": 8}


# ---------------------------------------------------------------- end to end

E2E = """\
limit mem = 10
task all : out/a.txt out/b.txt py/a.txt

out/{s}.txt : in/{s}.txt
    params:
        rg = f"@RG\\t{wildcards.s}"
        rate = RATE * 2
    threads: 4
    resources: mem=3
    shell: printf '%s|%s|%s|%s\\n' {params.rg} {params.rate} {threads} {resources.mem} > {output}

py/{s}.txt : in/{s}.txt
    params:
        tag = {"s": wildcards.s, "n": threads}
    threads: 2
    python:
        open(output[0], "w").write(repr(params.tag) + " " + str(threads))
"""


def _rulerun(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "rulerun", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=60)


def test_end_to_end_params_threads_resources_and_limit(tmp_path):
    (tmp_path / "in").mkdir()
    for name in "ab":
        (tmp_path / "in" / f"{name}.txt").write_text(name)
    (tmp_path / "Pipefile").write_text("RATE = 3\n" + E2E)
    done = _rulerun(tmp_path, "-j", "3")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out/a.txt").read_text() == "@RG\ta|6|3|3\n"
    assert (tmp_path / "py/a.txt").read_text() == "{'s': 'a', 'n': 2} 2"
    dry = _rulerun(tmp_path, "-n", "-j", "3", "RATE=4")
    assert "param 'rate' changed" in dry.stdout and "py/a.txt" not in dry.stdout
    refused = _rulerun(tmp_path, "--limit", "mem=2")
    assert refused.returncode == 2 and "asks for 3 of limit 'mem', which is 2 in all" in refused.stderr
    assert "Traceback" not in refused.stderr
    bad = _rulerun(tmp_path, "--limit", "mem")
    assert bad.returncode == 2 and "--limit mem: expected NAME=N" in bad.stderr


# ---------------------------------------------------------------- log: and directory outputs

def test_log_and_directory_outputs_are_parsed_and_checked():
    rule = load("index/{s}/ : in/{s}.txt\n    log: logs/{s}.log\n    shell: mkdir {output}\n").rules[0]
    assert [o.text for o in rule.outputs] == ["index/{s}"] and rule.directories == {"index/{s}"}
    assert rule.log.text == "logs/{s}.log"
    assert load("r/{s} : index/{s}/\n    shell: ls {input}\n").rules[0].inputs[0].text == "index/{s}"
    err = error("o/{s} : i\n    log: logs/{t}.log\n    shell: true\n")
    assert (err.loc.line, err.loc.col) == (2, 15) and "'{t}' in log 'logs/{t}.log'" in err.message
    assert "also one of its outputs" in error("o : i\n    log: o\n    shell: true\n").message
    err = error("o : i\n    shell: echo {log}\n")
    assert err.message == "'{log}' in the shell action of rule 'o', which has no 'log:'"


def test_a_directory_output_counts_as_made_when_its_job_finished():
    disk = FakeDisk()
    disk.write("in/a.txt")
    pipefile = load("task all : r/a\nindex/{s}/ : in/{s}.txt\n    shell: x\nr/{s} : index/{s}/\n    shell: y\n")
    plan = make_plan(pipefile, {}, ["all"], _State(), view=DiskView(disk=disk))

    class DirectoryMaker(FakeExecutor):
        """Makes the index job's directory (and a file in it) instead of writing a file."""

        def wait(self, stop_requested, timeout=0.1):
            spec = self.running[0] if self.running else None
            if spec is None or spec.rule != "index/{s}/":
                return super().wait(stop_requested, timeout)
            self.running.pop(0)
            self.disk.makedirs(spec.outputs[0])
            self.disk.tick()
            self.disk.write(spec.outputs[0] + "/x")
            self.disk.tick()
            return [JobResult(spec.key, True, "")]

    executor = DirectoryMaker(disk, lambda spec: ["-j"])
    scheduler = Scheduler(plan, Specs({}, values=plan.signatures.values), _State(), executor,
                          ReadyQueue(Limits(1, {})), make_reporter(-1, io.StringIO(), io.StringIO()))
    assert scheduler.run().exit_code == 0
    assert executor.started == ["index/a", "r/a"]
    assert disk.is_dir("index/a") and disk.mtime("index/a") > disk.mtime("index/a/x")  # touched as it finished


def test_end_to_end_log_and_directory_outputs(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("a")
    (tmp_path / "Pipefile").write_text("""\
task all : report/a.txt

index/{s}/ : in/{s}.txt
    log: logs/index/{s}.log
    shell: mkdir {output} && cp {input} {output}/x && echo "made {output}" && echo oops >&2

report/{s}.txt : index/{s}/
    log: logs/report/{s}.log
    python:
        import os
        print("listing", input[0])
        log.info("told")
        open(output[0], "w").write(" ".join(sorted(os.listdir(input[0]))))

task broken :
    log: logs/broken.log
    shell: echo about to fail; exit 3
""")
    done = _rulerun(tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "logs/index/a.log").read_text() == "made index/a\noops\n"
    assert "listing index/a" in (tmp_path / "logs/report/a.log").read_text()
    assert "told" in (tmp_path / "logs/report/a.log").read_text()
    assert (tmp_path / "report/a.txt").read_text() == "x"
    (tmp_path / "logs/index/a.log").unlink()  # not an output: nothing runs again
    assert "nothing to do" in _rulerun(tmp_path, "-n").stdout
    failed = _rulerun(tmp_path, "broken")
    assert failed.returncode == 1 and "logs/broken.log" in failed.stdout + failed.stderr
    assert (tmp_path / "logs/broken.log").read_text() == "about to fail\n"


# ---------------------------------------------------------------- typed overrides

def test_overrides_take_the_type_of_the_variable(tmp_path):
    from rulerun.errors import UsageError
    from rulerun.lang.namespace import build_namespace

    pipefile = load("N = 3\nR = 0.5\nB = False\nS = 'x'\nL = [1]\ntask all :\n")
    namespace = build_namespace(pipefile, {"N": "5", "R": "2", "B": "YES", "S": "7", "L": "z"})
    assert (namespace["N"], namespace["R"], namespace["B"], namespace["S"], namespace["L"]) == (5, 2.0, True, "7", "z")
    assert build_namespace(pipefile, {"B": "0"})["B"] is False
    for word, kind in [("N=five", "a whole number"), ("B=maybe", "true/false"), ("R=x", "a number")]:
        name, value = word.split("=")
        with pytest.raises(UsageError) as caught:
            build_namespace(pipefile, {name: value})
        assert caught.value.exit_code == 2 and f"'{name}' is" in str(caught.value) and kind in str(caught.value)


# ---------------------------------------------------------------- config

def test_config_files_of_each_format_and_command_line_keys(tmp_path, monkeypatch):
    from rulerun.lang.namespace import build_namespace

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("samples: [a, b]\nrate: 0.5\n")
    (tmp_path / "c.json").write_text('{"rate": 1, "name": "j"}')
    (tmp_path / "c.toml").write_text('name = "t"\n')
    pipefile = load_pipefile("Pipefile", "config c.yaml\nconfig c.json\nconfig c.toml\nN = len(config['samples'])\n")
    namespace = build_namespace(pipefile, {"--config rate": "7", "--config flag": "yes"})
    assert namespace["config"] == {"samples": ["a", "b"], "rate": 7, "name": "t", "flag": True}
    assert namespace["N"] == 2


@pytest.mark.parametrize("name, content, shown", [
    ("bad.yaml", "samples: [a, b\nrate: 1\n", "bad.yaml:2:5: YAML syntax error: expected ',' or ']', but got ':'\n"
                                              "    rate: 1\n        ^\n"),
    ("bad.json", '{"a": 1,}', 'bad.json:1:9: JSON syntax error: Expecting property name enclosed in double quotes\n'
                              '    {"a": 1,}\n            ^\n'),
    ("bad.toml", "a = 1\nb = \n", "bad.toml:2:5: TOML syntax error: Invalid value\n    b = \n        ^\n"),
])
def test_a_config_that_does_not_parse_is_an_error_at_its_own_line(tmp_path, monkeypatch, name, content, shown):
    from rulerun.lang.namespace import build_namespace

    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text(content)
    with pytest.raises(PipefileError) as caught:
        build_namespace(load_pipefile("Pipefile", f"config {name}\n"))
    assert caught.value.show() == shown + f"hint: {name} is read as {name.split('.')[1].upper()} (by its extension)"


def test_end_to_end_config_reruns_what_uses_it(tmp_path):
    (tmp_path / "cfg.yaml").write_text("rate: 1\n")
    (tmp_path / "Pipefile").write_text("config cfg.yaml\n\nout.txt :\n    python:\n"
                                       "        open(output[0], 'w').write(str(config['rate']))\n"
                                       "other.txt :\n    shell: echo same > {output}\n")
    assert _rulerun(tmp_path, "out.txt", "other.txt").returncode == 0
    assert (tmp_path / "out.txt").read_text() == "1"
    assert "nothing to do" in _rulerun(tmp_path, "out.txt", "other.txt").stdout
    (tmp_path / "cfg.yaml").write_text("rate: 2\n")
    dry = _rulerun(tmp_path, "-n", "out.txt", "other.txt")
    assert "variable 'config' changed" in dry.stdout and "other.txt" not in dry.stdout
    _rulerun(tmp_path, "out.txt", "--config", "rate=3")
    assert (tmp_path / "out.txt").read_text() == "3"


# ---------------------------------------------------------------- include

def test_an_included_file_is_read_in_place_and_never_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "common.pf").write_text("GREETING = 'hi'\nlimit net = 2\nlib_default :\n    shell: true\n"
                                              "%.up : %.txt\n    shell: tr a-z A-Z < {input} > {output}\n")
    pipefile = load_pipefile("Pipefile", "include lib/common.pf\nfirst : a.up\n    shell: echo {GREETING}\n")
    assert [r.name for r in pipefile.rules] == ["lib_default", "%.up", "first"]
    assert [r.index for r in pipefile.rules] == [0, 1, 2] and pipefile.rules[0].included
    assert pipefile.rules[1].loc.file == "lib/common.pf" and "net" in pipefile.limits
    assert pipefile.included == ("lib/common.pf",)
    from rulerun.plan.resolve import Resolver

    assert Resolver(pipefile, DiskView(disk=FakeDisk())).default_target() == "first"


def test_errors_in_an_included_file_name_it_and_show_its_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.pf").write_text("# a\nx :\n    shell: echo {NOPE}\n")
    err = error("include a.pf\n")
    assert (err.loc.file, err.loc.line, err.loc.col) == ("a.pf", 3, 17)
    assert "        shell: echo {NOPE}" in err.show()
    (tmp_path / "b.pf").write_text("include c.pf\n")
    (tmp_path / "c.pf").write_text("include b.pf\n")
    err = error("include b.pf\n")
    assert err.loc.file == "c.pf" and err.message == "include cycle: Pipefile includes b.pf includes c.pf includes b.pf"
    assert "does not exist" in error("include nope.pf\n").message


def test_end_to_end_an_edit_of_an_included_file_is_an_edit_of_the_pipefile(tmp_path):
    (tmp_path / "rules.pf").write_text("%.up : %.txt\n    shell: tr a-z A-Z < {input} > {output}\n")
    (tmp_path / "Pipefile").write_text("include rules.pf\ntask all : a.up\n")
    (tmp_path / "a.txt").write_text("abc\n")
    assert _rulerun(tmp_path).returncode == 0 and (tmp_path / "a.up").read_text() == "ABC\n"
    assert "nothing to do" in _rulerun(tmp_path).stdout
    (tmp_path / "rules.pf").write_text("%.up : %.txt\n    shell: tr a-z B-Z < {input} > {output}\n")
    assert _rulerun(tmp_path).returncode == 0 and (tmp_path / "a.up").read_text() == "BCD\n"


# ---------------------------------------------------------------- temp:

TEMP = """\
task all : a.final

%.mid : %.txt
    temp: %.mid
    shell: x
%.final : %.mid extra
    shell: y
"""


class _MemoryState(_State):
    """Remembers each success's signature, as the state database does."""

    def __init__(self):
        self.signatures: dict[str, dict] = {}

    def signature(self, key):
        return self.signatures.get(key)

    def record(self, succeeded=(), failed=(), started=(), running=(), unstarted=()):
        for key, _, signature in succeeded:
            self.signatures[key] = signature
        list(failed), list(started), list(running), list(unstarted)


def _temp_run(disk, state, targets=("all",), keep_temp=False, text=TEMP):
    pipefile = load(text)
    plan = make_plan(pipefile, {}, list(targets), state, view=DiskView(disk=disk))
    executor = FakeExecutor(disk, lambda spec: ["-j"])
    scheduler = Scheduler(plan, Specs({}, values=plan.signatures.values), state, executor, ReadyQueue(Limits(2, {})),
                          make_reporter(-1, io.StringIO(), io.StringIO()), keep_temp=keep_temp)
    outcome = scheduler.run()
    assert outcome.exit_code == 0
    return executor.started, {job.label: plan.decisions.reasons(job) for job in plan.graph.jobs
                              if plan.decisions.runs(job)}


def test_a_temp_output_goes_after_its_readers_and_its_absence_runs_nothing_again():
    disk, state = FakeDisk(), _MemoryState()
    disk.write("a.txt")
    disk.write("extra")
    assert _temp_run(disk, state)[0] == ["a.mid", "a.final"]
    assert not disk.exists("a.mid") and disk.exists("a.final")
    disk.tick()
    assert _temp_run(disk, state)[0] == []  # deleted, and what it was made from is unchanged
    disk.tick()
    disk.write("extra")  # the reader must run again: the temporary output is made again first
    started, reasons = _temp_run(disk, state)
    assert started == ["a.mid", "a.final"]
    assert reasons["%.mid a.mid"] == ["its temporary output 'a.mid' is needed again (by rule '%.final')"]
    assert not disk.exists("a.mid")
    disk.tick()
    disk.write("a.txt")  # what it was made from changed: both run
    started, reasons = _temp_run(disk, state)
    assert started == ["a.mid", "a.final"] and reasons["%.mid a.mid"] == ["output 'a.mid' is missing"]


def test_a_temp_output_asked_for_or_kept_stays():
    disk, state = FakeDisk(), _MemoryState()
    disk.write("a.txt")
    disk.write("extra")
    _temp_run(disk, state, keep_temp=True)
    assert disk.exists("a.mid")
    disk.remove("a.mid")
    disk.tick()
    assert _temp_run(disk, state, targets=("a.mid",))[0] == ["a.mid"]  # asked for: made, and kept
    assert disk.exists("a.mid")


def test_temp_must_name_an_output():
    err = error("%.mid : %.txt\n    temp: %.tmp\n    shell: x\n")
    assert (err.loc.line, err.loc.col) == (2, 11) and err.message == "temp '%.tmp' is not an output of rule '%.mid'"
    assert load("d/{s}/ : i/{s}\n    temp: d/{s}/\n    shell: x\n").rules[0].temp[0].text == "d/{s}"


def test_end_to_end_temp_and_keep_temp(tmp_path):
    (tmp_path / "a.txt").write_text("abc\n")
    (tmp_path / "Pipefile").write_text("task all : a.final\n%.mid : %.txt\n    temp: %.mid\n"
                                       "    shell: tr a-z A-Z < {input} > {output}\n"
                                       "%.final : %.mid\n    shell: cat {input} {input} > {output}\n")
    assert _rulerun(tmp_path).returncode == 0
    assert (tmp_path / "a.final").read_text() == "ABC\nABC\n" and not (tmp_path / "a.mid").exists()
    assert "nothing to do" in _rulerun(tmp_path).stdout
    assert _rulerun(tmp_path, "-B", "--keep-temp").returncode == 0 and (tmp_path / "a.mid").exists()


def test_a_split_rules_output_directory_is_made_before_it_runs():
    disk = FakeDisk()
    pipefile = load("task all : chunks/deep/*.txt\nchunks/deep/part_*.txt :\n    shell: x\n")
    plan = make_plan(pipefile, {}, ["all"], _State(), view=DiskView(disk=disk))

    class Splitter(FakeExecutor):
        def start(self, spec, done):
            assert self.disk.is_dir("chunks/deep"), "the split job started before its directory was made"
            self.disk.write("chunks/deep/part_1.txt")
            super().start(spec, done)

    executor = Splitter(disk, lambda spec: ["-j"])
    scheduler = Scheduler(plan, Specs({}, values=plan.signatures.values), _State(), executor,
                          ReadyQueue(Limits(1, {})), make_reporter(-1, io.StringIO(), io.StringIO()))
    assert scheduler.run().exit_code == 0 and executor.started == ["chunks/deep/part_*.txt"]


def test_watch_mode_watches_config_and_included_files(tmp_path, monkeypatch):
    from rulerun.watch import WatchSet

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("n: 1\n")
    (tmp_path / "r.pf").write_text("o : i\n    shell: true\n")
    pipefile = load_pipefile("Pipefile", "config c.yaml\ninclude r.pf\n")
    disk = FakeDisk()
    disk.write("i")
    plan = make_plan(pipefile, {}, ["o"], _State(), view=DiskView(disk=disk))
    assert {"c.yaml", "r.pf", "Pipefile", "i"} <= set(WatchSet.of(plan, "Pipefile").files)


def test_list_shows_directory_outputs_with_their_slash(tmp_path, capsys, monkeypatch):
    from rulerun.app import list_rules

    list_rules(load("index/{s}/ : in/{s}\n    shell: mkdir {output}\n"))
    assert "index/{s}/ : in/{s}" in capsys.readouterr().out


def test_threads_from_an_expression_are_per_job_capped_at_j_and_counted(project):
    project.write("Pipefile", """\
        N = {"a": 1, "b": 3}
        task all : a.out b.out
        %.out :
            threads: $(N[stem])
            shell: echo {threads} > {output}
        bad.out :
            threads: $(0)
            shell: true
        """)
    result = project.run("-j", "2", "all")
    assert result.returncode == 0, result.stderr
    assert project.read("a.out") == "1\n" and project.read("b.out") == "2\n"  # 3 asked, -j 2
    bad = project.run("bad.out")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("Pipefile:7:16: threads of rule 'bad.out' for 'bad.out' must be a whole number")


def test_a_job_whose_threads_fill_j_runs_alone():
    from rulerun.run.ready import Limits, ReadyQueue

    class Rule:
        index, limit, resources, threads = 0, None, (), None

    ready = ReadyQueue(Limits(4, {}))
    ready.add("wide", Rule(), threads=4)
    ready.add("narrow", Rule(), threads=1)
    assert ready.take() == ["wide"] and ready.take() == []
    ready.done("wide")
    assert ready.take() == ["narrow"]
