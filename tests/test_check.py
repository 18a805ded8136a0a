"""Load-time checks, and every error message exactly as a user sees it (tests/errors/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rulerun.lang.check import script_location
from rulerun.errors import PipefileError, UsageError
from rulerun.lang.model import ShellAction
from rulerun.lang.namespace import build_namespace
from rulerun.lang.parse import load_pipefile
from rulerun.source import Location
from rulerun.lang.pathexpr import expand_pipefile

ERRORS = Path(__file__).parent / "errors"
ERROR_CASES = sorted(p.stem for p in ERRORS.glob("*.pipefile"))


def load(text: str, overrides: dict[str, str] | None = None):
    return load_pipefile("Pipefile", text, overrides)


def error(text: str, overrides: dict[str, str] | None = None) -> PipefileError:
    with pytest.raises(PipefileError) as caught:
        load(text, overrides)
    return caught.value


def _exit_reached(status: int) -> None:
    raise AssertionError(f"os._exit({status}) was really called")


@pytest.mark.parametrize("name", ERROR_CASES)
def test_error_message(name: str, monkeypatch):
    """tests/errors/NAME.pipefile fails to load, or its top-level Python fails to run, with
    exactly NAME.expected (as cli shows it)."""
    monkeypatch.setattr(os, "_exit", _exit_reached)  # were it reached, pytest would end, passing
    monkeypatch.chdir(ERRORS)  # where a case's config or included file lies
    text = (ERRORS / f"{name}.pipefile").read_text()
    expected = (ERRORS / f"{name}.expected").read_text()
    with pytest.raises(PipefileError) as caught:
        pipefile = load(text)
        expand_pipefile(pipefile, build_namespace(pipefile))  # $(...) in paths run at load too
    assert caught.value.show() + "\n" == expected


def test_every_error_case_has_its_expected_message():
    assert len(ERROR_CASES) >= 40
    assert sorted(p.stem for p in ERRORS.glob("*.expected")) == ERROR_CASES


# ------------------------------------------------------------------ names

def test_known_names_are_variables_python_names_and_overrides():
    pipefile = load("A = 1\npython:\n    import os.path\n    from x import y as z\n    def f(): w = 1\n"
                    "    for i, (j, *k) in []: pass\n    if True:\n        class C: pass\nB = 2\n",
                    {"A": "3", "NEW": "v"})
    assert pipefile.known_names == {"A", "B", "os", "z", "f", "i", "j", "k", "C", "NEW"}
    assert pipefile.unknown_overrides == {"NEW"}


def test_overrides_of_variables_are_not_unknown():
    pipefile = load("THREADS = 4\n", {"THREADS": "8"})
    assert pipefile.unknown_overrides == frozenset()
    assert "THREADS" in pipefile.known_names


def test_default_names_may_repeat_but_given_names_may_not():
    pipefile = load("%.o : %.c\n    shell: cc -c {input}\n%.o : %.cc\n    shell: c++ -c {input}\n")
    assert [r.name for r in pipefile.rules] == ["%.o", "%.o"]
    err = error("x.txt : a\n    shell: x\ny.txt : b\n    name: x.txt\n    shell: y\n")
    assert err.message == "the name 'x.txt' is used twice: rule at line 1 and rule at line 3"
    assert err.loc == Location("Pipefile", 3, 1)


def test_a_task_name_may_not_repeat_a_rule_name():
    err = error("all : a\n    shell: x\ntask all : b\n")
    assert (err.loc.line, err.message) == (3, "the name 'all' is used twice: rule at line 1 and task at line 3")


# ------------------------------------------------------------------ limits, actions, patterns

def test_named_limit_may_be_defined_after_its_use():
    pipefile = load("a : b\n    limit: net\n    shell: x\nlimit net = 2\n")
    assert pipefile.rules[0].limit == "net"


def test_task_may_have_no_action_but_a_rule_must():
    assert load("task all : a\n").rules[0].action is None
    err = error("a : b\n    name: n\ntask all : a\n")
    assert (err.loc, err.message) == (Location("Pipefile", 1, 1), "rule 'n' has no action")


def test_valid_patterns_pass():
    load("out/{s}_{l}.bam log/{s}_{l}.txt : raw/{s}/{l}.fq ref/*.fa\n    shell: x\n"
         "chunks/*.txt summary.log : big.txt\n    shell: split\n"
         "report_%.txt : %/*.csv %.cfg\n    shell: r\n"
         '"my {x} file.txt" : "in {x}.txt"\n    shell: cp {input} {output}\n')


def test_split_rule_may_not_use_stem():
    err = error("*.part %.idx : big\n    shell: split\n")
    assert (err.loc.col, err.message) == (8, "a split rule's outputs can't use '%': '%.idx'")


def test_wildcard_error_column_counts_quotes_and_escapes():
    err = error('out.txt : "a \\"b\\" {x}.txt"\n    shell: x\n')
    assert err.loc == Location("Pipefile", 1, 20)
    assert err.show().splitlines()[2] == "    " + " " * 19 + "^"


def test_an_output_listed_twice_is_an_error_at_the_repeat():
    err = error("a b a : x\n    shell: touch {output}\n")
    assert (err.loc, err.message) == (Location("Pipefile", 1, 5), "output 'a' is listed twice in rule 'a' (first at column 1)")
    err = error("x.txt : y\n    shell: true\nout/a.txt sub/../out/a.txt : x\n    shell: touch {output}\n")
    assert (err.loc.line, err.loc.col) == (3, 11)
    assert err.message == ("output 'sub/../out/a.txt' (the same file as 'out/a.txt') is listed twice in "
                           "rule 'out/a.txt' (first at column 1)")
    load("task t : a a\n")   # inputs and tasks may repeat: nothing is written twice


@pytest.mark.parametrize("output, where", [
    ("..", "outside the project directory"), ("../elsewhere/x.txt", "outside the project directory"),
    ("/tmp/x.txt", "outside the project directory"), ("../*.txt", "outside the project directory"),
    (".", "the project directory itself"), ("sub/..", "the project directory itself"),
    (".rulerun", "inside .rulerun/, rulerun's own directory"), ("./.rulerun/state.db", "inside .rulerun/, rulerun's own directory"),
    (".rulerun/logs/*", "inside .rulerun/, rulerun's own directory"),
])
def test_a_literal_output_outside_the_project_or_in_rulerun_is_refused(project, output, where):
    err = error(f"ok.txt : x\n    shell: true\nfirst.txt {output} : x\n    shell: true\n")
    assert (err.loc.line, err.loc.col) == (3, 11)
    assert err.message == f"output '{output}' of rule 'first.txt' is {where}"
    assert err.hint.startswith("a rule writes only below the directory rulerun runs in, outside .rulerun/")


def test_outputs_below_the_project_however_written_load(project):
    here = project.root
    load(f"./a.txt sub/../b.txt {here}/c.txt ../{here.name}/d.txt .hidden/e.txt *.part ./sub/*.txt : x\n"
         "    shell: true\n"
         "../{n}.txt : x\n    shell: true\n")   # with a wildcard: checked once its value is known


# ------------------------------------------------------------------ shell substitutions

def test_every_valid_substitution_passes():
    load("V = 1\npython:\n    HELPER = 2\n"
         "out/{sample}/%.txt out/{sample}/%.log : in/{sample}/%.csv\n"
         "    shell: t {input} {output} {input[0]} {output[1]} {stem} {sample} {V} {HELPER} {CLI} {{x}} }}\n",
         {"CLI": "c"})


def test_unknown_substitution_names_rule_and_points_at_the_brace():
    err = error("%.o : %.c\n    name: compile\n    shell:\n        cc \\\n          -c {input} {flags}\n")
    assert err.loc == Location("Pipefile", 5, 22)
    assert err.message == "unknown name '{flags}' in the shell action of rule 'compile'"


def test_override_makes_a_name_known():
    load("a : b\n    shell: echo {WHO}\n", {"WHO": "me"})
    assert error("a : b\n    shell: echo {WHO}\n").message == "unknown name '{WHO}' in the shell action of rule 'a'"


def test_task_shell_may_use_input_and_output():
    load("task all : a b\n    shell: echo {input} {output}\n")


def test_script_location_of_one_line_and_block_scripts():
    text = "a : b\n    shell:   echo {x}\nc : d\n    shell:\n        one\n          two {y}\n# c\n"
    one_line = ShellAction("echo {x}", Location("P", 2, 14))
    assert script_location(text, one_line, 5) == Location("P", 2, 19)
    block = ShellAction("one\n  two {y}", Location("P", 5, 9))
    assert script_location(text, block, block.script.index("{")) == Location("P", 6, 15)
    assert script_location(text, block, 1) == Location("P", 5, 10)


# ------------------------------------------------------------------ embedded Python

def test_python_in_variables_blocks_and_actions_is_compiled_at_load():
    assert error("X = 1 +* 2\n").loc == Location("Pipefile", 1, 8)
    assert error("python:\n    x = 1\n    y = = 2\n").loc == Location("Pipefile", 3, 9)
    err = error("a : b\n    python:\n        if input:\n        print(1)\n")
    assert (err.loc.line, err.message) == (4, "Python syntax error: expected an indented block after 'if' statement on line 3")


# ------------------------------------------------------------------ reading files

def test_load_reads_the_file(tmp_path):
    path = tmp_path / "Pipefile"
    path.write_text("task all : a\n")
    pipefile = load_pipefile(str(path))
    assert pipefile.path == str(path) and pipefile.rules[0].loc.file == str(path)


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as caught:
        load_pipefile(str(tmp_path / "nope"))
    assert "can't read the Pipefile: No such file or directory" in caught.value.message


def test_path_names_are_the_names_expressions_read_from_outside():
    pipefile = load('S = ["a"]\nall : $([s + "x" for s in S]) $(T)\n    shell: x\nT = 1\n')
    assert pipefile.path_names == {"S", "T"}  # not s: the comprehension's own
