"""The Pipefile's Python: code compiled at its own Pipefile lines and columns, the shared
namespace the preamble (top-level Python blocks and variables) builds, and the names it binds.

Code is compiled with the Pipefile's path as its filename and its nodes moved to the
Pipefile's lines and columns, so a SyntaxError, a traceback, or an error while the preamble
runs points at the Pipefile line where it happened (no line maps to translate afterwards).
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
from functools import lru_cache
from types import CodeType
from typing import Any, Mapping

from rulerun.errors import PipefileError
from rulerun.lang.model import Pipefile, PythonBlock, Variable
from rulerun.source import Location, source_line


def compile_block(source: str, loc: Location, mode: str = "exec", text: str | None = None) -> CodeType:
    """`source` compiled as written at `loc` (its first character) in the Pipefile `loc.file`;
    every line of `source` after the first is taken to be indented by `loc.col - 1` there.
    Raises PipefileError (showing a line of `text`, when given) for a SyntaxError."""
    try:
        return _compile(source, loc, mode)
    except SyntaxError as exc:
        raise _syntax_error(exc, source, loc, text) from None
    except ValueError as exc:  # e.g. a NUL character in the source
        raise PipefileError(loc, f"Python can't compile this: {exc}", text) from None
    except (_TooDeep, RecursionError, MemoryError):  # the parser's stack or the compiler's recursion ran out
        raise PipefileError(loc, "Python can't compile this: the expression is too deeply nested", text,
                            hint="split it into several variables, or compute it in a python: block") from None


# Deeper code is refused before Python's compiler sees it: how deep that can go depends on the
# recursion limit and on how deep the stack already is, and beyond it lies a RecursionError or,
# for the parser, a MemoryError. A 1,000-term sum is 1,000 deep; real code is a few dozen.
MAX_NESTING = 500


class _TooDeep(Exception):
    pass


# A list or tuple of plain string and number literals, as a sample list is written.
_PLAIN_LITERAL = r"""(?:"[^"\\\n]*"|'[^'\\\n]*'|[-+]?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?)"""
_PLAIN_SEQUENCE = re.compile(rf"""\s*(?:\[\s*(?:{_PLAIN_LITERAL}\s*,\s*)*(?:{_PLAIN_LITERAL}\s*)?\]"""
                             rf"""|\(\s*(?:{_PLAIN_LITERAL}\s*,\s*)*(?:{_PLAIN_LITERAL}\s*)?\))\s*""")


@lru_cache(maxsize=1024)
def _compile(source: str, loc: Location, mode: str) -> CodeType:
    # Newlines in front give every line its Pipefile number, in tracebacks and in SyntaxError
    # messages ("... on line 3"); columns can't be padded, so the nodes are moved right.
    right = loc.col - 1 if loc.col else 0
    if mode == "eval" and right and "\n" not in source and _PLAIN_SEQUENCE.fullmatch(source):
        # `SAMPLES = ["A", ..., "ZZZ"]` with 100,000 names: no node of it can lie deep, and
        # what opens it moves it right, so it is compiled from its text, without the 200,000
        # Python objects of its tree (half a second). Anything else takes the path below
        # (a list over several lines too: its later lines must move right as well).
        try:
            return compile("\n" * (loc.line - 1) + "(" + " " * (right - 1) + source + "\n)", loc.file, mode,
                           dont_inherit=True)
        except (SyntaxError, ValueError):
            pass  # said below, at its place
    tree = ast.parse("\n" * (loc.line - 1) + source, filename=loc.file, mode=mode)
    _check_depth_and_move(tree, MAX_NESTING, right)
    return compile(tree, loc.file, mode, dont_inherit=True)


def _check_depth_and_move(tree: ast.AST, limit: int, right: int) -> None:
    """Raise _TooDeep when some node of `tree` lies more than `limit` levels down; move every
    node `right` columns. Iterative (no recursion), one walk for both. Constants, the leaves a
    100,000-name list literal is made of, are neither walked into nor moved: they have no
    children, and no instruction that can fail or warn is placed at one."""
    constant = ast.Constant
    children = ast.iter_child_nodes
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise _TooDeep()
        if right and "col_offset" in node._attributes:
            node.col_offset += right
            if getattr(node, "end_col_offset", None) is not None:
                node.end_col_offset += right
        for child in children(node):
            if type(child) is not constant:
                stack.append((child, depth + 1))
            elif depth >= limit:
                raise _TooDeep()


def _syntax_error(exc: SyntaxError, source: str, loc: Location, text: str | None) -> PipefileError:
    lines = source.split("\n")
    index = min(max((exc.lineno or loc.line) - loc.line, 0), len(lines) - 1)
    end_of_line = len(lines[index]) + 1
    offset = min(exc.offset, end_of_line) if exc.offset else end_of_line  # 0: at the end
    col = offset + (loc.col - 1 if loc.col else 0)
    where = Location(loc.file, loc.line + index, col)
    return PipefileError(where, f"Python syntax error: {exc.msg}", text)


def expression_location(variable: Variable, text: str) -> Location:
    """Where the expression of `NAME = EXPRESSION` starts in the Pipefile `text`."""
    line = source_line(text, variable.loc.line) or ""
    after = line.find("=", variable.loc.col - 1) + 1
    while after < len(line) and line[after] in " \t":
        after += 1
    return Location(variable.loc.file, variable.loc.line, after + 1)


def block_location(block: PythonBlock | Variable, text: str) -> Location:
    return expression_location(block, text) if isinstance(block, Variable) else block.loc


def compile_preamble_item(item: PythonBlock | Variable, text: str) -> CodeType:
    """The code of one preamble item: a block for exec, a variable's expression for eval."""
    if isinstance(item, Variable):
        return compile_block(item.expression, expression_location(item, text), "eval", text)
    return compile_block(item.source, item.loc, "exec", text)


def build_namespace(pipefile: Pipefile, overrides: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The namespace of Python actions and `{NAME}`: the preamble run in file order, where a
    variable named in `overrides` is that string instead of its expression. Command-line names
    that are no variable are set first, so the preamble can read them. Raises PipefileError at
    the Pipefile line of an exception raised while the preamble runs."""
    from rulerun.lang.config import load_configs, split_overrides

    overrides, config_overrides = split_overrides(overrides or {})
    variables = {item.name for item in pipefile.preamble if isinstance(item, Variable)}
    namespace: dict[str, Any] = {"__name__": "__pipefile__", "__file__": pipefile.path}
    namespace.update({name: value for name, value in overrides.items() if name not in variables})
    if pipefile.configs or config_overrides:  # before the preamble, which may read it
        namespace["config"] = load_configs(pipefile.configs, config_overrides, pipefile.text)
    with _no_os_exit():
        for item in pipefile.preamble:
            if isinstance(item, Variable) and item.name in overrides:
                namespace[item.name] = typed_override(item, overrides[item.name], pipefile, namespace)
                continue
            _run_preamble_item(item, pipefile, namespace)
    return namespace


_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def typed_override(variable: Variable, raw: str, pipefile: Pipefile, namespace: dict[str, Any]) -> Any:
    """NAME=VALUE from the command line takes the type of the variable's own value when that is
    an int, a float or a bool; otherwise it is the string. Raises UsageError naming the variable
    when VALUE can't be read as its type."""
    from rulerun.errors import UsageError

    try:
        value = eval(compile_preamble_item(variable, pipefile.text), dict(namespace))
    except Exception:  # noqa: BLE001 - a value that can't be made has no type to take
        return raw
    kind = type(value)
    if kind is bool:
        word = raw.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
    elif kind in (int, float):
        try:
            return kind(raw.strip())
        except ValueError:
            pass
    else:
        return raw
    what = {bool: "true/false/yes/no/1/0", int: "a whole number", float: "a number"}[kind]
    raise UsageError(f"{variable.name}={raw}: '{variable.name}' is {kind.__name__} {value!r} in the Pipefile "
                     f"(line {variable.loc.line}); '{raw}' is not {what}",
                     hint=f"give {variable.name} {what}")


def _run_preamble_item(item: PythonBlock | Variable, pipefile: Pipefile, namespace: dict[str, Any]) -> None:
    code = compile_preamble_item(item, pipefile.text)
    try:
        if isinstance(item, Variable):
            namespace[item.name] = eval(code, namespace)
        else:
            exec(code, namespace)
    except KeyboardInterrupt:  # Ctrl-C while it runs: the user's, not the Pipefile's
        raise
    except BaseException as exc:  # exit(), GeneratorExit, a BaseException subclass: all the Pipefile's mistakes
        raise _runtime_error(exc, item, pipefile) from None


class _OsExit(BaseException):
    """os._exit() called while the preamble runs."""


@contextlib.contextmanager
def _no_os_exit():
    """os._exit() in the preamble would end rulerun on the spot, silently and with the status
    the Pipefile chose (0: success, with nothing built): while it runs, the call raises instead,
    and becomes a PipefileError at its line. Afterwards os._exit is itself again (a name bound
    to the guard, `from os import _exit`, calls the real one)."""
    real = os._exit

    def guard(status: int) -> None:
        if os._exit is guard:
            raise _OsExit(status)
        real(status)

    os._exit = guard
    try:
        yield
    finally:
        os._exit = real


def _runtime_error(exc: BaseException, item: PythonBlock | Variable, pipefile: Pipefile) -> PipefileError:
    """The exception as a PipefileError at the deepest traceback frame in the Pipefile."""
    import traceback

    where = block_location(item, pipefile.text)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == pipefile.path and frame.lineno:
            col = (frame.colno + 1) if getattr(frame, "colno", None) is not None else 0
            where = Location(pipefile.path, frame.lineno, col)
    what = f"variable '{item.name}'" if isinstance(item, Variable) else "Python block"
    if isinstance(exc, _OsExit):
        return PipefileError(where, f"error in {what}: the Pipefile's Python called os._exit({exc.args[0]!r})",
                             pipefile.text, hint="the top-level Python runs each time rulerun loads the "
                                                 "Pipefile: it must not end the process")
    return PipefileError(where, f"error in {what}: {_exception_text(exc)}", pipefile.text)


def _exception_text(exc: BaseException) -> str:
    """'Type: message', also for an exception whose __str__ itself fails."""
    name = type(exc).__name__
    try:
        text = str(exc)
    except Exception as broken:  # the Pipefile's own exception class: its __str__ is its code too
        return f"{name} (its message can't be shown: {type(broken).__name__} in its __str__)"
    return f"{name}: {text}" if text else name


def bound_names(source: str) -> set[str]:
    """The names the top level of the Python `source` binds: assignments, imports, defs,
    classes, loop and `with` targets, also inside top-level if/try/for/while/with blocks.
    An unparsable source binds nothing (compiling it reports the mistake)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    _collect(tree.body, names)
    return names


def _collect(statements: list[ast.stmt], names: set[str]) -> None:
    for statement in statements:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(statement.name)
        elif isinstance(statement, (ast.Import, ast.ImportFrom)):
            for alias in statement.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(statement, ast.Assign):
            for target in statement.targets:
                _targets(target, names)
        elif isinstance(statement, (ast.AnnAssign, ast.AugAssign)):
            _targets(statement.target, names)
        elif isinstance(statement, (ast.For, ast.AsyncFor)):
            _targets(statement.target, names)
        elif isinstance(statement, (ast.With, ast.AsyncWith)):
            for item in statement.items:
                if item.optional_vars is not None:
                    _targets(item.optional_vars, names)
        for field in ("body", "orelse", "finalbody"):
            if not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                _collect(getattr(statement, field, []) or [], names)
        for handler in getattr(statement, "handlers", []) or []:
            if handler.name:
                names.add(handler.name)
            _collect(handler.body, names)


def _targets(target: ast.expr, names: set[str]) -> None:
    if isinstance(target, ast.Name):
        names.add(target.id)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            _targets(element, names)
    elif isinstance(target, ast.Starred):
        _targets(target.value, names)


# Expressions made of these nodes compute the same value every time: no calls, no attribute
# access, no comprehension or lambda (which could reach the environment, the clock or files).
_PLAIN_NODES = (ast.Expression, ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Name,
                ast.Load, ast.JoinedStr, ast.FormattedValue, ast.BinOp, ast.UnaryOp, ast.BoolOp,
                ast.Compare, ast.IfExp, ast.Subscript, ast.Slice, ast.Starred,
                ast.operator, ast.unaryop, ast.boolop, ast.cmpop)


def fixed_names(pipefile: Pipefile, overrides: Mapping[str, str] | None = None) -> set[str]:
    """The variables whose values follow from the Pipefile's text and the command line alone:
    overridden ones, and those whose expression is plain (see _PLAIN_NODES) and names only
    fixed variables, with no top-level Python block after them that mentions them (it could
    bind or change them; one that could reach any name unfixes all, see lang/purity.py)."""
    from rulerun.lang.purity import block_mentions

    overrides = overrides or {}
    fixed = {name for name in overrides}
    for item in pipefile.preamble:
        if isinstance(item, PythonBlock):
            mentioned = block_mentions(item.source)
            fixed = set() if mentioned is None else fixed - (mentioned - set(overrides))
        elif item.name in overrides or _plain(item.expression, fixed):
            fixed.add(item.name)
        else:
            fixed.discard(item.name)
    return fixed


def _plain(expression: str, fixed: set[str]) -> bool:
    if _PLAIN_SEQUENCE.fullmatch(expression):  # a sample list of 100,000 names: no tree needed
        return True
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if not isinstance(node, _PLAIN_NODES):
            return False
        if isinstance(node, ast.Name) and node.id not in fixed:
            return False
    return True
