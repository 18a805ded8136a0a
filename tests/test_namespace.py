"""Embedded Python: compiled at its Pipefile lines and columns; the preamble's namespace."""

from __future__ import annotations

import traceback

import pytest

from rulerun.errors import PipefileError
from rulerun.lang.namespace import bound_names, build_namespace, compile_block, expression_location
from rulerun.lang.parse import load_pipefile
from rulerun.source import Location


def load(text: str, overrides: dict[str, str] | None = None):
    return load_pipefile("Pipefile", text, overrides)


def namespace_error(text: str, overrides: dict[str, str] | None = None) -> PipefileError:
    pipefile = load(text, overrides)
    with pytest.raises(PipefileError) as caught:
        build_namespace(pipefile, overrides)
    return caught.value


# ------------------------------------------------------------------ compile_block

def test_traceback_points_at_the_pipefile_line_and_column():
    code = compile_block("x = 1\n\ny = x / 0", Location("Pipefile", 10, 9))
    with pytest.raises(ZeroDivisionError) as caught:
        exec(code, {})
    frame = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert (frame.filename, frame.lineno, frame.colno, frame.end_colno) == ("Pipefile", 12, 12, 17)


def test_syntax_error_in_a_block_is_at_its_pipefile_line_and_column():
    with pytest.raises(PipefileError) as caught:
        compile_block("a = 1\nb = (2 +\n", Location("Pipefile", 5, 5), text="x\n" * 10)
    assert caught.value.loc == Location("Pipefile", 6, 9)
    assert caught.value.message == "Python syntax error: '(' was never closed"
    assert caught.value.text == "x\n" * 10


def test_syntax_error_in_an_expression_uses_its_column():
    with pytest.raises(PipefileError) as caught:
        compile_block("[1, 2", Location("Pipefile", 3, 11), "eval")
    assert caught.value.loc == Location("Pipefile", 3, 11)


def test_eval_mode_gives_a_value():
    assert eval(compile_block("A * 2", Location("P", 4, 5), "eval"), {"A": 21}) == 42


def test_expression_location():
    pipefile = load("X=1\nLONG_NAME   =    [1]  # c\n")
    first, second = pipefile.preamble
    assert expression_location(first, pipefile.text) == Location("Pipefile", 1, 3)
    assert expression_location(second, pipefile.text) == Location("Pipefile", 2, 18)


# ------------------------------------------------------------------ build_namespace

def test_preamble_runs_in_file_order_in_one_namespace():
    namespace = build_namespace(load("A = 2\npython:\n    B = A * 10\n\n    def f(x):\n        return x + B\n"
                                     "C = f(A)\n"))
    assert (namespace["A"], namespace["B"], namespace["C"]) == (2, 20, 22)
    assert namespace["f"](1) == 21


def test_override_replaces_the_expression_with_a_value_of_its_type():
    pipefile = load("N = 4\nM = N * 2\nW = 'a'\nV = W * 2\n")
    assert build_namespace(pipefile, {"N": "3"})["M"] == 6  # an int stays an int (PIPEFILE.md Part 2)
    assert build_namespace(pipefile, {"W": "3"})["V"] == "33"  # anything else is the string
    assert build_namespace(pipefile)["M"] == 8


def test_override_of_an_unknown_name_is_a_string_the_preamble_can_read():
    namespace = build_namespace(load("OUT = DIR + '/out'\n", {"DIR": "build"}), {"DIR": "build"})
    assert namespace["OUT"] == "build/out" and namespace["DIR"] == "build"


def test_error_in_a_block_names_the_exception_at_its_line():
    err = namespace_error("A = 1\npython:\n    import os\n    y = x + 1\n")
    assert err.message == "error in Python block: NameError: name 'x' is not defined"
    assert err.loc == Location("Pipefile", 4, 9)


def test_error_in_a_helper_is_at_the_deepest_pipefile_frame():
    err = namespace_error("python:\n    def helper():\n        return {}['missing']\n\n    helper()\n")
    assert err.loc == Location("Pipefile", 3, 16)
    assert err.message == "error in Python block: KeyError: 'missing'"
    assert err.show().splitlines()[1] == "            return {}['missing']"


def test_error_in_a_variable_names_the_variable():
    err = namespace_error("A = 1\nB = int('x' + str(A))\n")
    assert err.loc == Location("Pipefile", 2, 5)
    assert err.message == "error in variable 'B': ValueError: invalid literal for int() with base 10: 'x1'"


def test_error_raised_outside_the_pipefile_is_placed_at_the_pipefile_call():
    err = namespace_error("python:\n    import json\n    json.loads('{')\n")
    assert err.loc.line == 3 and err.message.startswith("error in Python block: JSONDecodeError: ")


def test_an_exception_whose_message_fails_is_still_reported_at_its_line():
    err = namespace_error("python:\n    class Odd(Exception):\n        def __str__(self):\n            return 1 / 0\n"
                          "    raise Odd()\n")
    assert err.loc == Location("Pipefile", 5, 5)
    assert err.message == "error in Python block: Odd (its message can't be shown: ZeroDivisionError in its __str__)"


@pytest.mark.parametrize("raised, shown", [
    ("GeneratorExit", "GeneratorExit"),
    ("GeneratorExit('closing')", "GeneratorExit: closing"),
    ("E('mine')", "E: mine"),
    ("SystemExit(3)", "SystemExit: 3"),
])
def test_every_base_exception_from_the_preamble_is_a_located_error(raised, shown):
    err = namespace_error(f"python:\n    class E(BaseException):\n        pass\n\n    raise {raised}\n")
    assert (err.loc, err.message) == (Location("Pipefile", 5, 5), f"error in Python block: {shown}")


def test_keyboard_interrupt_in_the_preamble_stays_an_interrupt():
    with pytest.raises(KeyboardInterrupt):
        build_namespace(load("python:\n    raise KeyboardInterrupt\n"))


def test_os_exit_in_the_preamble_is_a_located_error_and_os_exit_is_restored(monkeypatch):
    import os

    def real(status: int) -> None:  # were the real one reached, pytest would end, passing
        raise AssertionError(f"os._exit({status}) was really called")

    monkeypatch.setattr(os, "_exit", real)
    for text, line in [("python:\n    import os\n    os._exit(0)\n", 3),
                       ("X = 1\npython:\n    from os import _exit as leave\n\n    leave(4)\n", 5),
                       ("import_os = __import__('os')\nX = import_os._exit(0)\n", 2)]:
        err = namespace_error(text)
        assert err.loc.line == line and "the Pipefile's Python called os._exit(" in err.message, text
        assert os._exit is real


@pytest.mark.parametrize("expression", ["+".join(["1"] * 1000), "-" * 100_000 + "1"])
def test_an_expression_nested_too_deep_is_an_error_at_the_variable(expression):
    """Was a RecursionError (the sum) or a MemoryError (the minus signs) with a traceback."""
    with pytest.raises(PipefileError) as caught:
        load(f"A = 1\nX = {expression}\n")
    assert caught.value.loc == Location("Pipefile", 2, 5)
    assert caught.value.message == "Python can't compile this: the expression is too deeply nested"


def test_an_expression_nested_too_deep_is_refused_whatever_the_recursion_limit():
    """The resolver raises the recursion limit; a Pipefile loaded after it (watch mode) is
    judged the same."""
    import sys

    before = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        for expression in ["+".join(["1"] * 1000), "-" * 60_000 + "1"]:
            with pytest.raises(PipefileError):
                load(f"X = {expression}\n")
    finally:
        sys.setrecursionlimit(before)
    assert load("X = " + "+".join(["1"] * 400) + "\n")


# ------------------------------------------------------------------ bound_names

def test_bound_names_at_the_top_level():
    source = """
import os, os.path as osp
import xml.etree.ElementTree
from json import dumps, loads as parse
from math import *
A = B = 1
(C, [D, *E]) = 1, [2, 3]
F: int = 2
G += 1
def h(): inner = 1
async def ah(): pass
class K:
    attribute = 1
for I in []:
    J = 1
while False:
    L = 1
with open('f') as M, open('g') as (N, O):
    P = 1
if True:
    Q = 1
else:
    R = 1
try:
    S = 1
except ValueError as T:
    U = 1
finally:
    V = 1
obj.attr = 1
items[0] = 2
"""
    assert bound_names(source) == set("ABCDEFGIJLMNOPQRSTUV") | {
        "os", "osp", "xml", "dumps", "parse", "h", "ah", "K"}


def test_bound_names_of_unparsable_source_is_empty():
    assert bound_names("def (:") == set()


@pytest.mark.parametrize("source", ['["A", "B", 3, -1.5]', "('a',)", '[\n    "A",\n    "B",\n]', "[]"])
def test_a_plain_literal_list_compiles_from_its_text_to_what_its_tree_gives(source, monkeypatch):
    """A sample list of 100,000 names skips the tree (namespace._PLAIN_SEQUENCE): the same
    value, and every instruction at the same Pipefile line and column."""
    import re

    from rulerun.lang import namespace

    loc = Location("Pipefile", 7, 11)
    fast = namespace._compile.__wrapped__(source, loc, "eval")
    monkeypatch.setattr(namespace, "_PLAIN_SEQUENCE", re.compile("(?!)"))  # matches nothing
    slow = namespace._compile.__wrapped__(source, loc, "eval")
    assert eval(fast) == eval(slow)
    assert list(fast.co_positions()) == list(slow.co_positions())
    assert fast.co_filename == slow.co_filename == "Pipefile"


def test_a_literal_list_python_refuses_is_said_at_its_place_as_before():
    with pytest.raises(PipefileError) as caught:
        compile_block("[1, 2,, 3]", Location("Pipefile", 3, 11), "eval")
    assert caught.value.loc.line == 3 and caught.value.loc.col >= 11


@pytest.mark.parametrize("source", ['["A", "B", -3, +1.5]', "('a',)", "[]", "()"])
def test_a_plain_literal_list_is_fixed_by_its_text_as_by_its_tree(source, monkeypatch):
    """fixed_names reads a sample list as plain from its text (namespace._PLAIN_SEQUENCE);
    the tree says the same."""
    import re

    from rulerun.lang import namespace

    assert namespace._plain(source, set())
    monkeypatch.setattr(namespace, "_PLAIN_SEQUENCE", re.compile("(?!)"))
    assert namespace._plain(source, set())
