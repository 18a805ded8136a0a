"""Which values follow from the Pipefile's text and the command line alone: the test the no-op
record (plan/record.py) applies before it may answer for a run without loading the Pipefile.

A value follows from the text when nothing but the text decides it: no file, no environment,
no clock. That is the case for
  - a variable whose expression is plain and reads only such variables (namespace.fixed_names);
  - a function defined in the Pipefile whose code reads, besides its arguments, only such
    variables, such functions and builtins that compute (len, str, sorted, ...): an input
    function `def a_of(sample): return f"src/{sample}.a"` does, one that opens a sample
    sheet, globs or reads os.environ does not.
A top-level `python:` block leaves the variables before it fixed unless it mentions them (it
could rebind or change them) or does something that can reach any name (globals(), exec).
Anything unsure counts as not fixed: a record not kept costs a full decision, a record kept
wrongly would call a stale output up to date.
"""

from __future__ import annotations

import ast
import dis
import types
from typing import Any, Callable, Iterable, Mapping

# Builtins whose result depends only on their arguments. open, input, print, __import__, id,
# hash (salted per process for strings), vars, globals, eval and exec are not among them.
PURE_BUILTINS = frozenset(
    "abs all any ascii bin bool bytes chr dict divmod enumerate filter float format frozenset hex "
    "int isinstance issubclass iter len list map max min next oct ord pow range repr reversed "
    "round set slice sorted str sum tuple zip True False None ValueError KeyError TypeError "
    "IndexError".split())

# Names through which code can reach or rebind any global: a block or function using one
# can't be followed.
_REACHING = frozenset({"globals", "locals", "vars", "exec", "eval", "compile", "__import__",
                       "setattr", "delattr", "__builtins__", "__dict__"})


def block_mentions(source: str) -> set[str] | None:
    """Every name a top-level Python block mentions (reads, binds, imports, declares global),
    or None when it could reach names it does not mention."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    mentioned: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            mentioned.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            mentioned.add(node.name)
        elif isinstance(node, ast.alias):
            if node.name == "*":
                return None
            mentioned.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            mentioned.update(node.names)
        elif isinstance(node, ast.Attribute) and node.attr in _REACHING:
            return None
    return None if mentioned & _REACHING else mentioned


def follows_from_text(names: set[str], namespace: Mapping[str, Any], fixed: set[str]) -> bool:
    """Whether every name in `names` is fixed, a pure builtin (not shadowed), or a function of
    the Pipefile that reads only such names (see the module docstring)."""
    def reads(name: str) -> set[str] | None:
        if name not in namespace:
            return set() if name in PURE_BUILTINS else None
        return _pure_function_reads(namespace[name])

    return all_follow(names, fixed, reads)


def all_follow(names: Iterable[str], fixed: set[str], reads: Callable[[str], Iterable[str] | None]) -> bool:
    """Whether every name in `names`, and every name those lead to, follows from the text: a
    name in `fixed` does; for any other, `reads(name)` gives the names its value depends on in
    turn (empty: it follows as it is), or None when it can't be said to follow."""
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen or name in fixed:
            continue
        seen.add(name)
        more = reads(name)
        if more is None:
            return False
        todo.extend(more)
    return True


def _pure_function_reads(value: Any) -> set[str] | None:
    """The global names a function of the Pipefile reads, or None if `value` is no such
    function or could depend on more than its globals (a closure, a default that is no constant)."""
    if not isinstance(value, types.FunctionType) or value.__module__ != "__pipefile__":
        return None
    if value.__closure__ or value.__kwdefaults__ or not all(_constant(d) for d in value.__defaults__ or ()):
        return None
    reads: set[str] = set()
    stack = [value.__code__]
    while stack:
        code = stack.pop()
        for instruction in dis.get_instructions(code):
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                reads.add(instruction.argval)
            elif instruction.opname in ("STORE_GLOBAL", "DELETE_GLOBAL", "IMPORT_NAME"):
                return None  # it changes the namespace, or imports: not a function of its arguments
            elif instruction.opname in ("LOAD_ATTR", "LOAD_METHOD") and instruction.argval in _REACHING:
                return None
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return None if reads & _REACHING else reads


def _constant(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return True
    return isinstance(value, tuple) and all(_constant(v) for v in value)
