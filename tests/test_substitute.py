"""`{name}` substitution in shell actions: the pieces, the rendered command, its quoting."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rulerun.lang.template import Literal, Reference, TemplateError, parse_shell_template, referenced_names, render_shell

NASTY = ["my file.txt", "it's", 'say "hi"', "a;rm -rf ~", "$(touch pwned)", "`id`", "two\nlines", "*", "-n", ""]


def render(script: str, inputs=(), outputs=(), wildcards=None, stem=None, namespace=None) -> str:
    return render_shell(script, list(inputs), list(outputs), wildcards or {}, stem, namespace or {})


def test_pieces_and_offsets():
    assert parse_shell_template("cc {input[0]} -o {output} {{x}}") == (
        Literal("cc ", 0), Reference("input", 0, 3, "{input[0]}"), Literal(" -o ", 13),
        Reference("output", None, 17, "{output}"), Literal(" {x}", 25))
    assert parse_shell_template("") == ()
    assert parse_shell_template("{a}{b}") == (Reference("a", None, 0, "{a}"), Reference("b", None, 3, "{b}"))


@pytest.mark.parametrize("script, offset, message", [
    ("awk '{print $1}'", 5, "'{print $1}' is not a substitution"),
    ("echo } x", 5, "'}' without a matching '{'"),
    ("echo {input\n}", 5, "'{' without a matching '}' on its line"),
    ("echo {input[x]}", 5, "'{input[x]}' is not a substitution"),
    ("echo {}", 5, "'{}' is not a substitution"),
])
def test_template_errors(script, offset, message):
    with pytest.raises(TemplateError) as caught:
        parse_shell_template(script)
    assert (caught.value.offset, caught.value.message) == (offset, message)


def test_shell_variable_braces_are_references():
    """${HOME} holds a well-formed {HOME}: the load-time check rejects it unless HOME is known."""
    assert parse_shell_template("echo ${HOME}")[1] == Reference("HOME", None, 6, "{HOME}")
    assert render("echo ${{HOME}}") == "echo ${HOME}"


def test_referenced_names():
    assert referenced_names("{input} {output[1]} {sample} {V} {{NOT}} {V}") == {"input", "output", "sample", "V"}


def test_render_all_kinds():
    command = render("cmd {input} {output[1]} {stem} {sample} {N} {{literal}}",
                     inputs=["a b.txt", "c.txt"], outputs=["o1", "o 2"], wildcards={"sample": "s;1"},
                     stem="x y", namespace={"N": 4})
    assert command == "cmd 'a b.txt' c.txt 'o 2' 'x y' 's;1' 4 {literal}"


def test_variables_are_inserted_unquoted():
    assert render("echo {FLAGS}", namespace={"FLAGS": "-a -b $HOME"}) == "echo -a -b $HOME"


def test_wildcard_wins_over_a_variable_of_the_same_name():
    assert render("{x}", wildcards={"x": "w"}, namespace={"x": "v"}) == "w"


def test_empty_inputs_render_as_nothing():
    assert render("echo {input}.") == "echo ."


def test_index_out_of_range_is_a_clear_value_error():
    with pytest.raises(ValueError, match=r"\{input\[2\]\}: this job has 2 inputs \(a b\)"):
        render("{input[2]}", inputs=["a", "b"])
    with pytest.raises(ValueError, match=r"\{output\[1\]\}: this job has 1 output \(o\)"):
        render("{output[1]}", outputs=["o"])


def test_unknown_name_at_render_time_is_a_value_error():
    with pytest.raises(ValueError, match="no input, output, stem, wildcard or variable"):
        render("{nope}")
    with pytest.raises(ValueError, match="only input and output can be indexed"):
        render("{x[0]}", wildcards={"x": "1"})


@pytest.mark.parametrize("value", NASTY)
def test_nasty_values_reach_the_shell_as_one_word(value):
    command = render("printf '%s\\0' {input[0]} {output} {name} {stem}",
                     inputs=[value], outputs=[value, value], wildcards={"name": value}, stem=value)
    out = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, check=True).stdout
    path = "./" + value if value.startswith("-") else value   # a path is never taken for an option
    assert out.split("\0")[:-1] == [path] * 3 + [value] * 2


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))),
                max_size=4))
def test_rendered_paths_split_back_to_the_same_list(paths):
    as_paths = ["./" + p if p.startswith("-") else p for p in paths]  # never taken for an option
    assert shlex.split(render("{input}", inputs=paths)) == as_paths


def test_named_input_is_every_path_under_its_name_each_quoted():
    named = {"ref": ["genome.fa"], "reads": ["r 1.fq", "-r2.fq"]}
    script = "bwa {input.ref} {input.reads} {input[1]} {input}"
    assert render_shell(script, ["genome.fa", "r 1.fq", "-r2.fq"], ["o"], {}, None, {}, named=named) == \
        "bwa genome.fa 'r 1.fq' ./-r2.fq 'r 1.fq' genome.fa 'r 1.fq' ./-r2.fq"
    assert parse_shell_template("{input.ref}") == (Reference("input", None, 0, "{input.ref}", "ref"),)
    assert render_shell("[{input.none}]", [], [], {}, None, {}, named={}) == "[]"
