"""The parser on every form of the language: the model it builds and where each piece is."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rulerun.errors import PipefileError
from rulerun.lang.model import PythonAction, PythonBlock, ShellAction, Variable
from rulerun.lang.parse import load_pipefile, parse_text
from rulerun.source import Location

SEED = """\
# Pipefile
python:
    import time

limit ftp = 3                       # a named limit, shared by every rule that names it

*stage1 :                           # no inputs, glob output: a split rule
    python:
        for i in range(10):
            kind = "small" if i < 5 else "big"
            open(f"{i}.{kind}_stage1", "w").close()

%.stage2 : %.small_stage1
    name: stage1_small
    limit: ftp
    shell:
        echo "downloading {input}"
        sleep 2
        touch {output}

%.stage2 : %.big_stage1
    name: stage1_big
    limit: ftp
    shell: sleep 2 && touch {output}

%.stage3 : %.stage2
    name: stage2
    limit: 5                        # at most 5 jobs of this rule at once
    python:
        time.sleep(2)
        open(output[0], "w").close()

task all : *.stage3
"""

C_BUILD = """\
CC = "cc"
CFLAGS = "-O2 -Wall"   # overridable: rulerun CFLAGS=-O0

python:
    import glob
    SOURCES = sorted(glob.glob("src/*.c"))

task all : app

app : main.o util.o
    shell: {CC} -o {output} {input}

%.o : src/%.c include/%.h
    name: compile
    limit: 4
    shell: {CC} {CFLAGS} -Iinclude -c {input[0]} -o {output}

task clean :
    shell: rm -f app *.o
"""


def parse(text: str):
    return parse_text(text, "Pipefile")


def at(line: int, col: int = 0) -> Location:
    return Location("Pipefile", line, col)


def texts(patterns) -> list[str]:
    return [p.text for p in patterns]


# ------------------------------------------------------------------ whole files

def test_seed_pipefile_preamble_and_limits():
    pipefile = parse(SEED)
    assert pipefile.text == SEED
    assert pipefile.preamble == (PythonBlock("import time", at(3, 5)),)
    assert list(pipefile.limits) == ["ftp"]
    assert pipefile.limits["ftp"].size == 3
    assert pipefile.limits["ftp"].loc.line == 5


def test_seed_pipefile_rules():
    split, small, big, stage2, all_ = parse(SEED).rules
    assert (split.name, texts(split.outputs), split.inputs, split.index) == ("*stage1", ["*stage1"], (), 0)
    assert split.action == PythonAction(
        'for i in range(10):\n    kind = "small" if i < 5 else "big"\n    open(f"{i}.{kind}_stage1", "w").close()',
        at(9, 9))
    assert (small.name, small.name_given, small.limit, small.index) == ("stage1_small", True, "ftp", 1)
    assert texts(small.outputs) == ["%.stage2"] and texts(small.inputs) == ["%.small_stage1"]
    assert small.action == ShellAction('echo "downloading {input}"\nsleep 2\ntouch {output}', at(17, 9))
    assert big.action == ShellAction("sleep 2 && touch {output}", at(24, 12))
    assert (stage2.name, stage2.limit) == ("stage2", 5)
    assert stage2.action == PythonAction('time.sleep(2)\nopen(output[0], "w").close()', at(30, 9))
    assert all_.is_task and all_.action is None and all_.name == "all"
    assert texts(all_.outputs) == ["all"] and texts(all_.inputs) == ["*.stage3"]
    assert [r.loc for r in (split, small, big, stage2, all_)] == [at(7, 1), at(13, 1), at(21, 1), at(26, 1), at(33, 1)]


def test_c_build_pipefile():
    pipefile = parse(C_BUILD)
    cc, cflags, block = pipefile.preamble
    assert cc == Variable("CC", '"cc"', at(1, 1))
    assert cflags == Variable("CFLAGS", '"-O2 -Wall"', at(2, 1))
    assert block.source == 'import glob\nSOURCES = sorted(glob.glob("src/*.c"))'
    all_, app, compile_, clean = pipefile.rules
    assert [r.index for r in pipefile.rules] == [0, 1, 2, 3]
    assert all_.is_task and texts(all_.inputs) == ["app"]
    assert texts(app.inputs) == ["main.o", "util.o"] and app.name == "app" and not app.name_given
    assert texts(compile_.inputs) == ["src/%.c", "include/%.h"] and compile_.limit == 4
    assert compile_.action.script == "{CC} {CFLAGS} -Iinclude -c {input[0]} -o {output}"
    assert clean.is_task and clean.inputs == () and clean.action.script == "rm -f app *.o"


def test_empty_and_comment_only_files_have_no_rules():
    for text in ("", "\n\n", "# nothing here\n", "   \n# a\n\n# b"):
        pipefile = parse(text)
        assert pipefile.rules == () and pipefile.preamble == () and dict(pipefile.limits) == {}


def test_file_without_final_newline_and_with_crlf():
    assert parse("a : b\n    shell: touch a").rules[0].action.script == "touch a"
    rule = parse("a : b\r\n    shell:\r\n        touch a\r\n        echo\r\n").rules[0]
    assert rule.action.script == "touch a\necho"


def test_a_bom_at_the_start_is_not_part_of_the_first_name(project):
    """A UTF-8 byte order mark (some Windows editors write one) used to become part of the first
    rule's output; columns count from after it, as the editor shows the line."""
    rule = parse("\ufeffout.txt : in.txt\n    shell: cp {input} {output}\n").rules[0]
    assert (rule.outputs[0].text, rule.outputs[0].loc) == ("out.txt", at(1, 1))
    (project.root / "Pipefile").write_bytes(b"\xef\xbb\xbfX = 1\nout.txt : in.txt {x\n    shell: true\n")
    with pytest.raises(PipefileError) as caught:
        load_pipefile("Pipefile")
    assert caught.value.loc == at(2, 18)
    (project.root / "Pipefile").write_bytes(b"\xef\xbb\xbfX = 1\n")
    assert load_pipefile("Pipefile").preamble[0].name == "X"


def test_invalid_utf8_is_located_at_its_first_bad_byte(project):
    """Was a UsageError naming only a byte offset."""
    (project.root / "Pipefile").write_bytes(b"\xef\xbb\xbfa : b\r\n    shell: touch a\r\n"
                                            b"X = \"d\xc3\xa9j\xc3\xa0 caf\xe9\"\r\nY = \"\xff\"\n")
    with pytest.raises(PipefileError) as caught:
        load_pipefile("Pipefile")
    assert caught.value.show() == ("Pipefile:3:14: not UTF-8 text: byte 0xe9 (invalid continuation byte)\n"
                                   '    X = "déjà caf�"\n'
                                   "                 ^\n"
                                   "hint: save the Pipefile as UTF-8")


# ------------------------------------------------------------------ headers

def test_pattern_locations():
    rule = parse("x = 1\n\nout/{sample}_{lane}.bam  :  raw/{sample}/{lane}.fastq ref.fa\n    shell: x\n").rules[0]
    assert [(p.text, p.loc) for p in rule.outputs] == [("out/{sample}_{lane}.bam", at(3, 1))]
    assert [(p.text, p.loc) for p in rule.inputs] == [
        ("raw/{sample}/{lane}.fastq", at(3, 29)), ("ref.fa", at(3, 55))]


def test_quoted_paths_with_spaces_and_escapes():
    rule = parse('"my file.txt" b.txt : "in put.csv" "say \\"hi\\".txt" "back\\\\slash" "a#b:c"\n'
                 "    shell: x\n").rules[0]
    assert texts(rule.outputs) == ["my file.txt", "b.txt"]
    assert rule.name == "my file.txt"
    assert texts(rule.inputs) == ["in put.csv", 'say "hi".txt', "back\\slash", "a#b:c"]
    assert [p.loc.col for p in rule.inputs] == [23, 36, 53, 67]


def test_colon_without_spaces_and_tabs_between_words():
    rule = parse("%.o:%.c\t%.h\n    shell: x\n").rules[0]
    assert texts(rule.outputs) == ["%.o"] and texts(rule.inputs) == ["%.c", "%.h"]


def test_glob_words_at_line_start_are_rule_headers():
    rules = parse("*stage1 :\n    shell: x\n?.txt [ab].log : \n    shell: y\n").rules
    assert texts(rules[0].outputs) == ["*stage1"]
    assert texts(rules[1].outputs) == ["?.txt", "[ab].log"] and rules[1].inputs == ()


def test_keywords_are_only_keywords_where_they_start_a_form():
    rules = parse("task.txt limits python.txt : task limit python name shell\n    shell: x\n"
                  '"task" : a\n    shell: y\n').rules
    assert texts(rules[0].outputs) == ["task.txt", "limits", "python.txt"]
    assert texts(rules[0].inputs) == ["task", "limit", "python", "name", "shell"]
    assert texts(rules[1].outputs) == ["task"] and not rules[1].is_task


def test_keywords_may_name_variables():
    pipefile = parse("limit = 3\ntask = 1\npython = 2\n")
    assert [(v.name, v.expression) for v in pipefile.preamble] == [("limit", "3"), ("task", "1"), ("python", "2")]


def test_variables_limits_and_python_blocks_keep_file_order():
    pipefile = parse("A = 1\npython:\n    B = A\nlimit net = 2\nC=[A,  B]\nD ==1 : x\n    shell: x\n")
    assert [type(item).__name__ for item in pipefile.preamble] == ["Variable", "PythonBlock", "Variable"]
    assert pipefile.preamble[2] == Variable("C", "[A,  B]", at(5, 1))
    assert pipefile.limits["net"].size == 2
    assert texts(pipefile.rules[0].outputs) == ["D", "==1"]


def test_variable_comment_is_stripped_but_hash_in_a_string_stays():
    (a, b) = parse('A = "x # y"   # comment\nB = {"k": 1}#c\n').preamble
    assert a.expression == '"x # y"'
    assert b.expression == '{"k": 1}'


def test_a_word_followed_by_equals_is_a_variable_quote_it_for_a_path():
    pipefile = parse('date=1 : x\n"date=1/x.txt" : in\n    shell: y\n')
    assert pipefile.preamble[0] == Variable("date", "1 : x", at(1, 1))
    assert texts(pipefile.rules[0].outputs) == ["date=1/x.txt"]


def test_tasks_with_and_without_inputs_or_body():
    rules = parse("task all : a b\ntask clean :\n    shell: rm -f a b\ntask noop:\n").rules
    assert [(r.name, texts(r.outputs), texts(r.inputs), r.is_task) for r in rules] == [
        ("all", ["all"], ["a", "b"], True), ("clean", ["clean"], [], True), ("noop", ["noop"], [], True)]
    assert rules[1].action == ShellAction("rm -f a b", at(3, 12))


def test_rule_index_counts_rules_and_tasks_together():
    text = "task t1 : a\na : b\n    shell: x\nlimit l = 1\ntask t2 : a\nc : d\n    shell: y\n"
    assert [(r.name, r.index) for r in parse(text).rules] == [("t1", 0), ("a", 1), ("t2", 2), ("c", 3)]


# ------------------------------------------------------------------ bodies

def test_body_settings_in_any_order_and_defaults():
    rule = parse("a : b\n    queue: all.q\n    retries: 2\n    name: fetch\n    limit: 3\n    shell: x\n").rules[0]
    assert (rule.name, rule.name_given, rule.queue, rule.cluster, rule.retries, rule.limit) == \
        ("fetch", True, "all.q", "", 2, 3)
    assert rule.is_cluster
    plain = parse("a : b\n    shell: x\n").rules[0]
    assert (plain.name, plain.name_given, plain.limit, plain.cluster, plain.queue, plain.retries) == \
        ("a", False, None, None, None, 0)
    assert not plain.is_cluster


def test_cluster_options_empty_or_with_comment():
    rules = parse("a : b\n    cluster:\n    shell: x\n"
                  "c : d\n    cluster:   # on the grid\n    shell: x\n"
                  "e : f\n    cluster: -l h_vmem=4G -P proj   # big\n    queue: long.q\n    shell: x\n").rules
    assert [r.cluster for r in rules] == ["", "", "-l h_vmem=4G -P proj"]
    assert rules[2].queue == "long.q"


def test_comments_after_body_values_and_between_body_lines():
    rule = parse("a : b   # header comment\n    # a comment line\n    name: n   # the name\n\n"
                 "    limit: 5 # five\n# column-1 comment\n    shell: x\n").rules[0]
    assert (rule.name, rule.limit, rule.action.script) == ("n", 5, "x")


def test_one_line_shell_keeps_hash_and_braces_verbatim():
    rule = parse("a : b\n    shell:   echo '#1' # not a Pipefile comment   \n").rules[0]
    assert rule.action == ShellAction("echo '#1' # not a Pipefile comment", at(2, 14))


def test_shell_block_is_verbatim_with_comments_blank_lines_and_deeper_indentation():
    text = ("a : b\n"
            "    shell:   # a Pipefile comment: a block follows\n"
            "        # leading comment lines are Pipefile comments\n"
            "        for f in {input}; do\n"
            "            # inside the script\n"
            "            gzip -k \"$f\"   # keep\n"
            "\n"
            "        done\n"
            "# a column-1 comment inside the block\n"
            "        cat <<EOF\n"
            "          indented here-document\n"
            "        EOF\n"
            "\n"
            "c : d\n    shell: y\n")
    rule = parse(text).rules[0]
    assert rule.action.loc == at(4, 9)
    assert rule.action.script == (
        "for f in {input}; do\n"
        "    # inside the script\n"
        "    gzip -k \"$f\"   # keep\n"
        "\n"
        "done\n"
        "# a column-1 comment inside the block\n"
        "cat <<EOF\n"
        "  indented here-document\n"
        "EOF")


def test_python_blocks_keep_blank_lines_comments_and_nesting():
    text = ("python:\n"
            "    import os\n"
            "\n"
            "    # a helper\n"
            "    def f(x):\n"
            "        if x:\n"
            "\n"
            "            return '#' + x   # hash in a string\n"
            "        return (1 +\n"
            "      2)\n"
            "\n"
            "\n"
            "X = f('a')\n")
    block, variable = parse(text).preamble
    assert block.loc == at(2, 5)
    assert block.source == ("import os\n\n# a helper\ndef f(x):\n    if x:\n\n"
                            "        return '#' + x   # hash in a string\n    return (1 +\n  2)")
    assert variable.loc == at(13, 1)


def test_python_action_location_is_its_first_line_of_code():
    rule = parse("a : b\n    name: x\n    python:\n\n          print(input)\n").rules[0]
    assert rule.action == PythonAction("print(input)", at(5, 11))


# ------------------------------------------------------------------ syntax errors

@pytest.mark.parametrize("text, line, col, message", [
    ("a : b\n\tshell: x\n", 2, 1, "tab in indentation; indent with spaces"),
    ("a : b\n    shell:\n    \t  x\n", 3, 5, "tab in indentation; indent with spaces"),
    ("\tx = 1\n", 1, 1, "tab in indentation; indent with spaces"),
    ("a : b\n    lmit: 5\n", 2, 5, "unknown body line 'lmit:'"),
    ('a : "b c\n    shell: x\n', 1, 5, "unterminated quoted path"),
    ("x = 1\n    shell: x\n", 2, 5, "indented line outside any rule"),
    ("    a : b\n", 1, 1, "unexpected indentation"),
    ("a : b\n    shell: x\n    shell: y\n", 3, 5, "rule 'a' has a second action (the first, 'shell:', is at line 2)"),
    ("a : b\n    python:\n        x\n    name: y\n", 4, 5, "'name:' after the action of rule 'a'"),
    ("a : b\nshell: x\n", 2, 1, "'shell:' outside any rule"),
    ("a : b\n    limit: 0\n", 2, 12, "limit must be at least 1, not 0"),
    ("a : b\n    limit: -3\n", 2, 12, "limit must be at least 1, not -3"),
    ("limit x = 0\n", 1, 11, "limit 'x' must be at least 1, not 0"),
    ("a b\n", 1, 4, "expected ':' after the outputs of a rule"),
    ("python:\nx = 1\n", 2, 1, "expected an indented block of code on the lines after it"),
    ("a : b\n    shell:\n\nc : d\n", 2, 11, "expected an indented block of code on the lines after it"),
    ("a : b\n    retries: x\n", 2, 14, "'retries:' takes a number"),
])
def test_syntax_errors_are_located(text, line, col, message):
    with pytest.raises(PipefileError) as caught:
        parse(text)
    assert (caught.value.loc.line, caught.value.loc.col) == (line, col)
    assert caught.value.message == message
    assert caught.value.loc.file == "Pipefile" and caught.value.text == text


def test_unknown_body_key_suggests_the_closest():
    with pytest.raises(PipefileError) as caught:
        parse("a : b\n    shel: x\n")
    assert caught.value.hint == "did you mean 'shell:'?"


def test_no_lark_terminal_name_reaches_the_user():
    bad = ["a :: b\n", "limit\n", "x =\n", "task\n", "a : b\n    name:\n", "a : b\n  limit: 1 2\n",
           "a : b\n  queue: 1 2\n", "python: x\n", "a : b\n    shell:\n", "task t u\n", "a : b\n    x\n"]
    for text in bad:
        with pytest.raises(PipefileError) as caught:
            parse(text)
        shown = caught.value.show()
        for raw in ("_NL", "_INDENT", "_DEDENT", "REST", "WORD", "QUOTED", "IDENT", "SIGNED_INT", "$END",
                    "COLON", "Token(", "Unexpected"):
            assert raw not in shown, (text, shown)


# ------------------------------------------------------------------ no other exception, ever

_PIECES = ["a", "b.txt", "%", "{x}", "*", " ", "  ", "    ", "\t", "\n", ":", "=", "#", '"', "\\", "task ", "limit ",
           "python:", "shell:", "name:", "limit:", "cluster:", "queue:", "retries:", "1", "-1", "{", "}",
           "(", "[", "'", "x = ", "\n    ", "\n        "]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map("".join))
def test_any_text_parses_or_is_a_pipefile_error(text):
    """A lark exception or traceback never reaches a user: every text is a Pipefile or an error."""
    try:
        load_pipefile("Pipefile", text)
    except PipefileError as exc:
        shown = exc.show()
        assert shown.startswith("Pipefile:") and "Token(" not in shown and "_NL" not in shown
        assert 1 <= exc.loc.line <= text.count("\n") + 1


# ------------------------------------------------------------------ $(EXPR) in paths and named inputs

def test_expression_with_blanks_colons_quotes_and_hashes_is_one_path_word():
    rule = parse('out/$( f("a b", {"k": [1, (2)]}) )_x.txt : $("#:") "q $(1 + 1).txt" b\n'
                 "    shell: x\n").rules[0]
    (out,) = rule.outputs
    assert out.text == "out/\ue000_x.txt" and out.written == 'out/$( f("a b", {"k": [1, (2)]}) )_x.txt'
    assert [(e.source, e.loc) for e in out.exprs] == [('f("a b", {"k": [1, (2)]}) ', at(1, 8))]
    assert rule.name == out.written
    assert [(p.text, [e.source for e in p.exprs]) for p in rule.inputs] == [
        ("\ue000", ['"#:"']), ("q \ue000.txt", ["1 + 1"]), ("b", [])]


def test_double_dollar_is_a_dollar_and_a_lone_dollar_stays():
    rule = parse("a$$b$(X)$$ c$d : e\n    shell: x\n").rules[0]
    assert [(p.text, len(p.exprs)) for p in rule.outputs] == [("a$b\ue000$", 1), ("c$d", 0)]


def test_expressions_that_use_wildcards_or_stem_are_per_job():
    rule = parse("o/{s}.txt : $(f(wildcards.s)) $(stem) $(g(1))\n    shell: x\n").rules[0]
    assert [p.exprs[0].per_job for p in rule.inputs] == [True, True, False]


def test_shell_substitution_and_variables_keep_their_dollars():
    pipefile = parse('X = "$(a b)"\nall : $(X)\n    shell: echo $(date +%s) "$(ls -l)"\n')
    assert pipefile.preamble[0].expression == '"$(a b)"'
    assert pipefile.rules[0].action.script == 'echo $(date +%s) "$(ls -l)"'


def test_named_inputs_only_after_the_colon_and_a_line_starting_with_name_equals_is_a_variable():
    pipefile = parse('ref=genome.fa\nout.txt : ref=genome.fa reads=raw/{s}.fq "x=y.txt" fq=$(F)\n    shell: x\n')
    assert pipefile.preamble[0].name == "ref"
    (rule,) = pipefile.rules
    assert [(p.name, p.text, p.loc.col) for p in rule.inputs] == [
        ("ref", "genome.fa", 15), ("reads", "raw/{s}.fq", 31), (None, "x=y.txt", 42), ("fq", "\ue000", 55)]


def test_unclosed_expression_is_located_at_its_dollar():
    with pytest.raises(PipefileError) as caught:
        parse("all : a $(f(1)\n    shell: x\n")
    assert (caught.value.loc, caught.value.message) == (at(1, 9), "'$(' without its matching ')'")


# ------------------------------------------------------------------ wildcard constraints

def test_constraints_in_outputs_are_kept_aside_and_braces_inside_them_nest():
    rule = parse("res/{s,[A-Z]{2}}_{n,\\d{1,3}}.txt {s}_{n}.log : in/{s}_{n}.txt\n    shell: x\n").rules[0]
    assert texts(rule.outputs) == ["res/{s}_{n}.txt", "{s}_{n}.log"]
    assert [(c.name, c.regex, c.loc) for c in rule.constraints] == [("s", "[A-Z]{2}", at(1, 8)),
                                                                    ("n", "\\d{1,3}", at(1, 21))]
    assert rule.name == "res/{s}_{n}.txt"


def test_top_level_wildcard_constraint_is_a_python_string_literal_and_a_keyword_only_at_line_start():
    pipefile = parse('wildcard n = r"\\d+"  # digits\nwildcard s = "[A-Z]" \'+\'\nwildcard = 3\n'
                     'wildcards.txt : wildcard\n    shell: x\n')
    assert {n: (c.regex, c.loc) for n, c in pipefile.wildcards.items()} == {"n": ("\\d+", at(1, 14)),
                                                                            "s": ("[A-Z]+", at(2, 14))}
    assert pipefile.preamble[0].name == "wildcard"
    assert texts(pipefile.rules[0].outputs) == ["wildcards.txt"] and texts(pipefile.rules[0].inputs) == ["wildcard"]


def test_a_wildcard_constrained_twice_at_the_top_level_is_an_error():
    with pytest.raises(PipefileError) as caught:
        parse('wildcard n = "a"\nwildcard n = "b"\n')
    assert caught.value.loc == at(2, 14) and "constrained twice (first at line 1)" in caught.value.message


def test_a_named_input_may_be_a_quoted_path_right_after_the_equals_sign():
    rule = parse('o.txt : ref="my file.txt" a=b "c d"\n    shell: x\n').rules[0]
    assert [(p.name, p.text, p.loc.col) for p in rule.inputs] == [
        ("ref", "my file.txt", 13), ("a", "b", 29), (None, "c d", 31)]
    with pytest.raises(PipefileError) as caught:
        parse('o.txt : ref= "my file.txt"\n    shell: x\n')
    assert (caught.value.loc, caught.value.message) == (at(1, 9), "named input 'ref' has no path")


def test_a_constraint_may_not_name_its_groups():
    with pytest.raises(PipefileError) as caught:
        parse("o/{s,(?P<t>a)}_{t}.txt :\n    shell: x\n")
    assert (caught.value.loc, caught.value.message) == (at(1, 6), "a wildcard constraint can't name its groups")


def test_an_expanded_path_word_keeps_every_field_but_its_text_and_expressions():
    """PathPattern.expanded is dataclasses.replace written out for speed: a field added to the
    word and not copied there would be lost from every path a `$(...)` gives."""
    import dataclasses

    from rulerun.lang.model import PathPattern
    from rulerun.source import Location

    values = {"text": "t\x00", "loc": Location("P", 3, 4), "exprs": ("e",), "written": "$(W)",
              "name": "ref", "constraints": ("c",)}
    assert {f.name for f in dataclasses.fields(PathPattern)} == set(values)  # a new field: add it here
    word = PathPattern(**values)
    assert word.expanded("out/a.txt") == dataclasses.replace(word, text="out/a.txt", exprs=())


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab/.%{}*?[]\ue025\ue07b\ue07d\ue02a\ue03f\ue05b", max_size=12))
def test_a_path_an_input_function_gives_is_read_as_the_full_rules_read_it(text):
    """pattern_for_one_job's one-look answer for a plain path is the one the slower checks give."""
    from rulerun.lang.patterns import OneFile, _GLOB_CHARS, _TOKEN, compile_pattern, pattern_for_one_job, \
        unescape_literal

    found = pattern_for_one_job(text)
    if not _TOKEN.search(text) and not _GLOB_CHARS.search(text):
        assert isinstance(found, OneFile) and found.path == unescape_literal(text)
    else:
        assert not isinstance(found, OneFile) and found.text == compile_pattern.__wrapped__(text).text
