"""Pipefile text → model.Pipefile: the lark parser (built once per process), the model
builder fed by the grammar's rules, and the translation of lark's errors into ours.

lark is imported only when the first Pipefile is parsed, so `import rulerun.lang.parse` is cheap.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any, Mapping

from rulerun.errors import PipefileError, UsageError
from rulerun.lang.model import Limit, Pipefile, PathPattern, PythonAction, PythonBlock, Rule, ShellAction, Variable
from rulerun.lang.pathexpr import UnclosedExpression, mask_expressions, read_word
from rulerun.lang.constraints import BadConstraint, Constraint, check_regex, strip_constraints
from rulerun.lang.model import ConfigFile, Param, Resource
from rulerun.source import Location, remember_text, source_line

BOM = "\ufeff"
BODY_KEYS = ("name", "limit", "cluster", "queue", "retries", "shell", "python")
ACTION_KEYS = ("shell", "python")
BODY_KEYS += ("params", "threads", "resources", "log", "temp")

_parser_singleton: Any = None
_NAMED_INPUT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")  # `NAME=PATH` in INPUTS


def load_pipefile(path: str, text: str | None = None, overrides: Mapping[str, str] | None = None,
                  limit_sizes: Mapping[str, int] | None = None, check_amounts: bool = True) -> Pipefile:
    """The checked Pipefile at `path` (read from disk unless `text` is given), with `overrides`
    (command-line NAME=VALUE) counted among its known names. Resource amounts are checked
    against its limits as `limit_sizes` (--limit) change them, unless not `check_amounts`.

    Raises PipefileError for any mistake in it, UsageError when it can't be read.
    """
    from rulerun.lang.check import check_pipefile

    if text is None:
        text = _read(path)
    pipefile = parse_text(text, path)
    sizes = {name: limit.size for name, limit in pipefile.limits.items()} | dict(limit_sizes or {})
    return check_pipefile(pipefile, overrides or {}, sizes if check_amounts else None)


def parse_text(text: str, path: str, including: tuple[str, ...] = ()) -> Pipefile:
    """The Pipefile written in `text` (named `path` in errors), parsed but not yet checked
    (see rulerun.lang.check). Raises PipefileError for a syntax error. `including`: the files
    whose `include` lines led here (absolute), to refuse a cycle."""
    from lark.exceptions import UnexpectedInput

    text = text.removeprefix(BOM).replace("\r\n", "\n")  # editors don't show the BOM: columns count without it
    _check_first_line(text, path)
    parser = _parser()
    try:
        tree = parser.parse(mask_expressions(text) + "\n")  # $(...) as one path word
    except _TabInIndent as tab:
        raise _tab_error(path, text, tab.line, tab.col) from None
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, path) from None
    return _ModelBuilder(path, text, including + (os.path.abspath(path),)).build(tree)


def _read(path: str) -> str:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise UsageError(f"{path}: can't read the Pipefile: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, data, exc) from None


def _not_utf8(path: str, data: bytes, exc: UnicodeDecodeError) -> PipefileError:
    """The first byte that is not UTF-8, at its line and column (in characters, as every
    column is), with the line shown (the bad bytes as U+FFFD)."""
    start = len(BOM.encode()) if data.startswith(BOM.encode()) else 0
    line_start = max(data.rfind(b"\n", 0, exc.start) + 1, start)
    line = data.count(b"\n", 0, exc.start) + 1
    col = len(data[line_start:exc.start].decode("utf-8")) + 1  # all valid: the error is the first
    text = data[start:].decode("utf-8", "replace").replace("\r\n", "\n")
    return PipefileError(Location(path, line, col), f"not UTF-8 text: byte 0x{data[exc.start]:02x} ({exc.reason})",
                         text, hint="save the Pipefile as UTF-8")


# ------------------------------------------------------------------ the parser

def _grammar_text() -> str:
    """The grammar shipped in package rulerun.grammar, or grammar/ beside rulerun/ in a checkout.

    importlib.util.find_spec finds an installed grammar directory without importing
    importlib.resources (15 ms); resources are the fallback for a zipped install."""
    from importlib.util import find_spec

    beside = _checkout_grammar()
    if beside is not None:
        return _read_text(beside)
    try:
        spec = find_spec("rulerun.grammar")
    except ModuleNotFoundError:
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = os.path.join(folder, "pipefile.lark")
        if os.path.exists(candidate):
            return _read_text(candidate)
    if spec is not None:
        from importlib.resources import files

        return files("rulerun.grammar").joinpath("pipefile.lark").read_text(encoding="utf-8")
    here = os.path.dirname(os.path.abspath(__file__))
    return _read_text(os.path.join(os.path.dirname(here), "grammar", "pipefile.lark"))


def _checkout_grammar() -> str | None:
    """grammar/pipefile.lark beside this rulerun/ when it is a checkout: it wins over an
    editable install's mapping of rulerun.grammar, which may point at another worktree."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    checkout = os.path.dirname(here)
    candidate = os.path.join(checkout, "grammar", "pipefile.lark")
    is_checkout = os.path.exists(os.path.join(checkout, "pyproject.toml"))
    return candidate if is_checkout and os.path.exists(candidate) else None


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as file:
        return file.read()


def _parser() -> Any:
    """The one lark LALR parser of this process; its tables are cached on disk by lark."""
    global _parser_singleton
    if _parser_singleton is None:
        from lark import Lark

        _parser_singleton = Lark(
            _grammar_text(),
            parser="lalr",
            lexer="contextual",
            postlex=_Indenter(),
            propagate_positions=True,
            maybe_placeholders=False,
            cache=True,
        )
    return _parser_singleton


class _TabInIndent(Exception):
    def __init__(self, line: int, col: int):
        super().__init__(line, col)
        self.line, self.col = line, col


class _Indenter:
    """lark postlexer: _INDENT/_DEDENT tokens from the indentation after each _NL.

    Unlike lark's own Indenter, a dedent to a column between two open levels opens a new
    level instead of failing (a continuation line inside a Python block may do that; in a
    rule body the parser then reports 'unexpected indentation'), and a tab is an error.
    _DEDENT tokens take the position of the _NL, at the end of the last line of the block,
    so 'expected an indented block' points where the block was expected.
    """

    always_accept = ("_NL",)

    def process(self, stream):
        from lark import Token

        levels = [0]
        token = None
        for token in stream:
            yield token
            if token.type != "_NL" or "\n" not in token.value:
                continue
            indent = token.value.rsplit("\n", 1)[1]
            if "\t" in indent:
                raise _TabInIndent(token.end_line, indent.index("\t") + 1)
            width = len(indent)
            while width < levels[-1]:
                levels.pop()
                yield Token.new_borrow_pos("_DEDENT", "", token)
            if width > levels[-1]:
                levels.append(width)
                yield Token("_INDENT", indent, token.end_pos, token.end_line, width + 1,
                            token.end_line, width + 1, token.end_pos)
        while len(levels) > 1:
            levels.pop()
            yield Token.new_borrow_pos("_DEDENT", "", token)


def _check_first_line(text: str, path: str) -> None:
    """The first line has no _NL before it, so the Indenter can't see its indentation."""
    first = text.split("\n", 1)[0]
    stripped = first.lstrip(" \t")
    if first == stripped or not stripped or stripped.startswith("#"):
        return
    if "\t" in first[: len(first) - len(stripped)]:
        raise _tab_error(path, text, 1, first.index("\t") + 1)
    raise PipefileError(Location(path, 1, 1), "unexpected indentation", text,
                        hint="top-level lines (rules, tasks, variables, limits, python:) start in column 1")


def _tab_error(path: str, text: str, line: int, col: int) -> PipefileError:
    return PipefileError(Location(path, line, col), "tab in indentation; indent with spaces", text)


# ------------------------------------------------------------------ tree → model

@dataclass(frozen=True, slots=True)
class _Setting:
    """One body line before it is folded into a Rule."""

    key: str
    value: Any
    loc: Location


class _ModelBuilder:
    """A Transformer in lark's sense (one method per grammar rule or alias, fed the rule's
    children, bottom-up), written as a plain class so this module needn't import lark."""

    def __init__(self, path: str, text: str, including: tuple[str, ...] = ()):
        self.path = path
        self.text = text
        self.lines = text.split("\n")
        self.rule_count = 0
        self.including = including  # this file and those that included it, outermost first

    def build(self, tree: Any) -> Any:
        children = [self.build(c) if hasattr(c, "data") else c for c in tree.children]
        return getattr(self, tree.data)(tree.meta, children)

    def loc(self, token: Any) -> Location:
        return Location(self.path, token.line, token.column)

    def error(self, token_or_loc: Any, message: str, hint: str | None = None) -> PipefileError:
        loc = token_or_loc if isinstance(token_or_loc, Location) else self.loc(token_or_loc)
        return PipefileError(loc, message, self.text, hint)

    # ---- top level

    def start(self, meta: Any, items: list[Any]) -> Pipefile:
        preamble: list[PythonBlock | Variable] = []
        limits: dict[str, Limit] = {}
        rules: list[Rule] = []
        wildcards: dict[str, Constraint] = {}
        items, included = _inline_includes(items)
        configs = [item for item in items if isinstance(item, ConfigFile)]
        items = [item for item in items if not isinstance(item, ConfigFile)]
        for item in items:
            if isinstance(item, Rule):
                rules.append(item)
            elif isinstance(item, Constraint):
                if item.name in wildcards:
                    raise self.error(item.loc, f"wildcard '{item.name}' is constrained twice "
                                               f"(first at line {wildcards[item.name].loc.line})")
                wildcards[item.name] = item
            elif isinstance(item, Limit):
                if item.name in limits:
                    raise self.error(item.loc, f"limit '{item.name}' is defined twice "
                                               f"(first at line {limits[item.name].loc.line})")
                limits[item.name] = item
            else:
                preamble.append(item)
        rules = [replace(rule, index=index) if rule.index != index else rule for index, rule in enumerate(rules)]
        return Pipefile(self.path, self.text, tuple(preamble), limits, tuple(rules), configs=tuple(configs),
                        included=tuple(included), wildcards=wildcards)

    def python_block(self, meta: Any, children: list[Any]) -> PythonBlock:
        source, loc = children[0]
        return PythonBlock(source, loc)

    def variable(self, meta: Any, children: list[Any]) -> Variable:
        assign, rest = children
        name = assign.value.rstrip("= \t")
        return Variable(name, strip_python_comment(rest.value), self.loc(assign))

    def include_def(self, meta: Any, children: list[Any]) -> Pipefile:
        """The included file, parsed as written there (its errors name it and its lines)."""
        pattern = self.pattern(children[0])
        path = os.path.normpath(os.path.join(os.path.dirname(self.path), pattern.text))
        if os.path.abspath(path) in self.including:
            chain = " includes ".join(os.path.relpath(p) for p in self.including + (os.path.abspath(path),))
            raise self.error(pattern.loc, f"include cycle: {chain}",
                             hint="a file can't include itself, or a file that includes it")
        if not os.path.isfile(path):
            raise self.error(pattern.loc, f"included file '{pattern.text}' does not exist",
                             hint="an include path is relative to the file that includes it")
        try:
            text = _read(path)
        except UsageError as exc:
            raise self.error(pattern.loc, exc.message) from None
        remember_text(path, text.removeprefix(BOM).replace("\r\n", "\n"))
        return parse_text(text, path, self.including)

    def config_def(self, meta: Any, children: list[Any]) -> ConfigFile:
        pattern = self.pattern(children[0])
        return ConfigFile(pattern.text, pattern.loc)

    def limit_def(self, meta: Any, children: list[Any]) -> Limit:
        name, size = children
        if int(size) < 1:
            raise self.error(size, f"limit '{name}' must be at least 1, not {int(size)}")
        return Limit(name.value, int(size), self.loc(name))

    def outputs(self, meta: Any, tokens: list[Any]) -> list[tuple[PathPattern, Any]]:
        return [(self.constrained(self.pattern(t), t), t) for t in tokens]

    def wildcard_def(self, meta: Any, children: list[Any]) -> Constraint:
        """`wildcard NAME = "REGEX"`: REGEX a Python string literal (r"\\d+" works)."""
        import ast

        name, rest = children
        source = strip_python_comment(rest.value)
        try:
            regex = ast.literal_eval(source)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            regex = None
        if not isinstance(regex, str):
            raise self.error(rest, f"the constraint of wildcard '{name}' must be a string literal",
                             hint='write wildcard NAME = "REGEX", e.g. wildcard sample = r"[A-Z]\\d+"')
        bad = check_regex(regex)
        if bad is not None:
            raise self.error(rest, bad.message, bad.hint)
        return Constraint(name.value, regex, self.loc(rest))

    def constrained(self, pattern: PathPattern, token: Any) -> PathPattern:
        """An output pattern with each `{name,REGEX}` written `{name}`, its REGEX kept aside."""
        try:
            text, found = strip_constraints(pattern.text)
        except BadConstraint as exc:
            raise self.error(self.column_of(pattern, exc.offset), exc.message, exc.hint) from None
        if not found:
            return pattern
        constraints = tuple(Constraint(name, regex, self.column_of(pattern, offset)) for name, regex, offset in found)
        return replace(pattern, text=text, constraints=constraints)

    def column_of(self, pattern: PathPattern, index: int) -> Location:
        """Where character `index` of an unquoted pattern's text is (a template counts as written)."""
        from rulerun.lang.pathexpr import written_index

        if pattern.written:
            index = written_index(pattern.written, index)
        return Location(self.path, pattern.loc.line, pattern.loc.col + index)

    def inputs(self, meta: Any, tokens: list[Any]) -> list[tuple[PathPattern, Any]]:
        patterns = []
        for token in tokens:
            if patterns and token.type == "QUOTED" and self.names_quoted(patterns[-1][1], token):
                name_token = patterns.pop()[1]  # `ref="my file.txt"`: the name, then the quoted path
                pattern = self.pattern(token)
                patterns.append((replace(pattern, name=name_token.value[:-1]), name_token))
                continue
            if token.type == "WORD" and self.names_quoted(token, None):
                patterns.append((None, token))  # completed by the quoted path right after it
                continue
            patterns.append((self.pattern(token, named=True), token))
        for pattern, token in patterns:
            if pattern is None:
                self.pattern(token, named=True)  # `NAME=` with no path: raises
        return patterns

    def names_quoted(self, token: Any, quoted: Any) -> bool:
        """Is `token` a bare `NAME=` (followed, without a blank, by `quoted` when given)?"""
        if token.type != "WORD" or not _NAMED_INPUT.fullmatch(token.value):
            return False
        return quoted is None or quoted.start_pos == token.end_pos

    def pattern(self, token: Any, named: bool = False) -> PathPattern:
        text = self.text[token.start_pos:token.end_pos]  # as written: the lexer saw $(...) masked
        col = token.column
        name = None
        if token.type == "QUOTED":
            text = re.sub(r'\\(["\\])', r"\1", text[1:-1])
            col += 1
        elif named and (found := _NAMED_INPUT.match(text)):
            name, text = found.group(1), text[found.end():]
            col += found.end()
            if not text:
                raise self.error(token, f"named input '{name}' has no path",
                                 hint="a named input is written NAME=PATH, with no blank around '='")
        loc = Location(self.path, token.line, col) if name else self.loc(token)
        if "$" not in text:
            return PathPattern(text, loc, name=name)
        try:
            template, exprs = read_word(text, loc, col)
        except UnclosedExpression as exc:
            raise self.error(Location(self.path, token.line, col + exc.offset),
                             "'$(' without its matching ')'",
                             hint="$(EXPR) is a Python expression in a path; write $$ for a literal '$'") from None
        return PathPattern(template, loc, exprs=exprs, written=text, name=name)

    def rule(self, meta: Any, children: list[Any]) -> Rule:
        outputs, inputs, *body = children
        first_pattern, first_token = outputs[0]
        self.refuse_stray_body_line(first_token)
        head = {"name": first_pattern.shown, "loc": Location(self.path, first_token.line, 1)}
        return self.make_rule(head, outputs, inputs, body[0] if body else [], is_task=False)

    def task(self, meta: Any, children: list[Any]) -> Rule:
        name_token, inputs, *body = children
        output = self.pattern(name_token)
        head = {"name": output.text, "loc": Location(self.path, name_token.line, 1)}
        return self.make_rule(head, [(output, name_token)], inputs, body[0] if body else [], is_task=True)

    def refuse_stray_body_line(self, token: Any) -> None:
        """`shell: echo` in column 1 reads as a rule making 'shell': say what was meant."""
        end = token.end_pos
        if token.type == "WORD" and token.value in BODY_KEYS and self.text[end:end + 1] == ":":
            raise self.error(token, f"'{token.value}:' outside any rule",
                             hint="body lines go under a rule header 'OUTPUTS : INPUTS', indented")

    def make_rule(self, head: dict[str, Any], outputs: list[Any], inputs: list[Any],
                  body: list[_Setting], is_task: bool) -> Rule:
        fields: dict[str, Any] = {}
        action: _Setting | None = None
        seen: dict[str, _Setting] = {}
        for setting in body:
            self.refuse_misplaced(setting, action, seen, head["name"], is_task)
            if setting.key in ACTION_KEYS:
                action = setting
            else:
                seen[setting.key] = setting
                fields[setting.key] = setting.value
        if "queue" in fields and "cluster" not in fields:
            fields["cluster"] = ""
        outputs, inputs, fields["directories"] = _without_directory_slashes(outputs, inputs)
        rule = Rule(
            name=fields.pop("name", head["name"]),
            outputs=tuple(p for p, _ in outputs),
            inputs=tuple(p for p, _ in inputs),
            action=action.value if action else None,
            loc=head["loc"],
            index=self.rule_count,
            is_task=is_task,
            name_given="name" in seen,
            constraints=tuple(c for p, _ in outputs for c in p.constraints),
            **fields,
        )
        self.rule_count += 1
        return rule

    def refuse_misplaced(self, setting: _Setting, action: _Setting | None, seen: dict[str, _Setting],
                         rule_name: str, is_task: bool) -> None:
        what = "task" if is_task else "rule"
        if action is not None and setting.key in ACTION_KEYS:
            raise self.error(setting.loc, f"{what} '{rule_name}' has a second action "
                                          f"(the first, '{action.key}:', is at line {action.loc.line})",
                             hint="a rule has one action: put all its commands in one shell: or python: block")
        if action is not None:
            raise self.error(setting.loc, f"'{setting.key}:' after the action of {what} '{rule_name}'",
                             hint=f"the action ('{action.key}:' at line {action.loc.line}) must be the last line of the body")
        if setting.key in seen:
            raise self.error(setting.loc, f"'{setting.key}:' given twice in {what} '{rule_name}' "
                                          f"(first at line {seen[setting.key].loc.line})")
        if is_task and setting.key == "name":
            raise self.error(setting.loc, f"'name:' in task '{rule_name}'",
                             hint="a task is named by its header: 'task NAME : INPUTS'")

    # ---- body lines

    def body(self, meta: Any, settings: list[_Setting]) -> list[_Setting]:
        return settings

    def setting(self, meta: Any, key: str, value: Any) -> _Setting:
        return _Setting(key, value, Location(self.path, meta.line, meta.column))

    def name_line(self, meta: Any, children: list[Any]) -> _Setting:
        return self.setting(meta, "name", children[0].value)

    def limit_line(self, meta: Any, children: list[Any]) -> _Setting:
        (value,) = children
        if value.type == "IDENT":
            return _Setting("limit", value.value, self.loc(value))
        if int(value) < 1:
            raise self.error(value, f"limit must be at least 1, not {int(value)}",
                             hint="'limit: N' allows at most N jobs of this rule at once")
        return self.setting(meta, "limit", int(value))

    def cluster_line(self, meta: Any, children: list[Any]) -> _Setting:
        options = re.sub(r"(^|\s)#.*", "", children[0].value).strip() if children else ""
        return self.setting(meta, "cluster", options)

    def queue_line(self, meta: Any, children: list[Any]) -> _Setting:
        return self.setting(meta, "queue", children[0].value)

    def retries_line(self, meta: Any, children: list[Any]) -> _Setting:
        (value,) = children
        if int(value) < 0:
            raise self.error(value, f"retries must be 0 or more, not {int(value)}")
        return self.setting(meta, "retries", int(value))

    def shell_line(self, meta: Any, children: list[Any]) -> _Setting:
        (command,) = children
        return self.setting(meta, "shell", ShellAction(command.value.rstrip(), self.loc(command)))

    def shell_block(self, meta: Any, children: list[Any]) -> _Setting:
        script, loc = children[0]
        return self.setting(meta, "shell", ShellAction(script, loc))

    def python_action(self, meta: Any, children: list[Any]) -> _Setting:
        source, loc = children[0]
        return self.setting(meta, "python", PythonAction(source, loc))

    def params_block(self, meta: Any, children: list[Any]) -> _Setting:
        source, loc = children[0]
        return self.setting(meta, "params", self.params(source, loc))

    def params(self, source: str, loc: Location) -> tuple[Param, ...]:
        """The `NAME = EXPRESSION` lines of a params: block, read by Python's own parser so an
        expression may run over several lines."""
        import ast

        from rulerun.lang.namespace import compile_block

        compile_block(source, loc, "exec", self.text)  # a syntax error, at its Pipefile line
        tree = ast.parse(source)
        found: dict[str, Param] = {}
        for statement in tree.body:
            # the block's lines lost the first line's indentation, loc.col - 1
            where = Location(self.path, loc.line + statement.lineno - 1, loc.col + statement.col_offset)
            target = statement.targets[0] if isinstance(statement, ast.Assign) and len(statement.targets) == 1 else None
            if not isinstance(target, ast.Name):
                raise self.error(where, "a params: block holds only 'NAME = EXPRESSION' lines",
                                 hint="compute anything longer in a function of a top-level python: block")
            if target.id in found:
                raise self.error(where, f"param '{target.id}' is given twice (first at line {found[target.id].loc.line})")
            value = statement.value
            expression = ast.get_source_segment(source, value) or ""
            at = Location(self.path, loc.line + value.lineno - 1, loc.col + value.col_offset)
            found[target.id] = Param(target.id, expression, at)
        return tuple(found.values())

    def threads_line(self, meta: Any, children: list[Any]) -> _Setting:
        (value,) = children
        if int(value) < 1:
            raise self.error(value, f"threads must be at least 1, not {int(value)}")
        return self.setting(meta, "threads", int(value))

    def threads_expression_line(self, meta: Any, children: list[Any]) -> _Setting:
        """`threads: $(EXPR)`: EXPR runs to its matching ')', which must end the line."""
        from rulerun.lang.pathexpr import expression_end

        (token,) = children
        end = expression_end(token.value, 1)
        if end != len(token.value) - 1:
            raise self.error(token, "'threads:' takes a number or one $(EXPRESSION)",
                             hint="threads: $(config['threads'])")
        expression = token.value[2:-1]
        loc = Location(self.path, token.line, token.column + 2)
        return self.setting(meta, "threads_expression", Param("threads", expression, loc))

    def resources_line(self, meta: Any, children: list[Any]) -> _Setting:
        seen: dict[str, Resource] = {}
        for resource in children:
            if resource.name in seen:
                raise self.error(resource.loc, f"resource '{resource.name}' is given twice on this line")
            seen[resource.name] = resource
        return self.setting(meta, "resources", tuple(children))

    def temp_line(self, meta: Any, children: list[Any]) -> _Setting:
        """Written as in the header; a directory's '/' is dropped as there (see make_rule)."""
        patterns = [self.pattern(token) for token in children]
        bare = [PathPattern(p.text.rstrip("/"), p.loc) if p.text.strip("/") else p for p in patterns]
        return self.setting(meta, "temp", tuple(bare))

    def log_line(self, meta: Any, children: list[Any]) -> _Setting:
        return self.setting(meta, "log", self.pattern(children[0]))

    def resource(self, meta: Any, children: list[Any]) -> Resource:
        name, amount = children
        if int(amount) < 0:
            raise self.error(amount, f"resource '{name}' can't take a negative amount ({int(amount)})")
        return Resource(name.value, int(amount), self.loc(name))

    def block(self, meta: Any, lines: list[Any]) -> tuple[str, Location]:
        """The block's text from its first to its last line of code, kept verbatim (comments
        and blank lines inside it too) but for the first line's indentation."""
        first, last = lines[0], lines[-1]
        indent = " " * (first.column - 1)
        kept = []
        for line in self.lines[first.line - 1:last.line]:
            kept.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
        return "\n".join(kept), self.loc(first)


def _inline_includes(items: list[Any]) -> tuple[list[Any], list[str]]:
    """The top-level items with each included Pipefile's in its place (its rules marked as
    included, so none becomes the default target), and the files read for them."""
    flat: list[Any] = []
    read: list[str] = []
    for item in items:
        if not isinstance(item, Pipefile):
            flat.append(item)
            continue
        read += [item.path, *item.included]
        flat += list(item.preamble) + list(item.limits.values()) + list(item.configs)
        flat += [replace(rule, included=True) for rule in item.rules]
    return flat, read


def _without_directory_slashes(outputs: list[Any], inputs: list[Any]) -> tuple[list[Any], list[Any], frozenset[str]]:
    """`index/{sample}/` names a directory: the graph knows it without the '/' (as {output} and
    {input} give it); the rule keeps which outputs are directories, for the run loop."""
    def bare(pattern: PathPattern) -> PathPattern:
        text = pattern.text
        return PathPattern(text.rstrip("/"), pattern.loc) if text.endswith("/") and text.strip("/") else pattern

    directories = frozenset(bare(p).text for p, _ in outputs if bare(p) is not p)
    return ([(bare(p), t) for p, t in outputs], [(bare(p), t) for p, t in inputs], directories)


def strip_python_comment(expression: str) -> str:
    """`expression` without a trailing `# comment` (a '#' inside a string literal stays)."""
    if "#" not in expression:
        return expression.rstrip()
    import io
    import tokenize

    try:
        for token in tokenize.generate_tokens(io.StringIO(expression).readline):
            if token.type == tokenize.COMMENT:
                return expression[: token.start[1]].rstrip()
    except (tokenize.TokenError, SyntaxError):
        pass  # unfinished code: compiling it reports the real mistake
    return expression.rstrip()


# ------------------------------------------------------------------ lark errors → ours

_TERMINAL_WORDS = {
    "WORD": "a path", "QUOTED": "a path", "IDENT": "a name", "SIGNED_INT": "a number",
    "REST": "text", "VAR_ASSIGN": "'NAME ='", "_NL": "the end of the line",
    "_INDENT": "an indented block", "_DEDENT": "the end of the block", "$END": "the end of the file",
}

# Bad snippets, each failing in the parser state its message explains (lark's
# match_examples finds the state of the user's error among them).
_EXAMPLES: dict[tuple[str, str | None], list[str]] = {
    ("expected ':' after the outputs of a rule", "a rule is written 'OUTPUTS : INPUTS'"):
        ["out\n", "out in\n", '"o" "i"\n'],
    ("expected an expression after '='", None):
        ["x =\n", "x = # c\n"],
    ("expected a task name after 'task'", "a task is written 'task NAME : INPUTS'"):
        ["task\n", "task :\n"],
    ("expected ':' after the task's name", "a task is written 'task NAME : INPUTS'"):
        ["task t\n", "task t u\n"],
    ("a named limit is written 'limit NAME = N'", None):
        ["limit\n", "limit :\n", "limit x\n", "limit x y\n", "limit x =\n", "limit x = y\n"],
    ("a wildcard constraint is written 'wildcard NAME = \"REGEX\"'", None):
        ["wildcard\n", "wildcard :\n", "wildcard x\n", "wildcard x y\n", "wildcard x =\n"],
    ("expected an indented block of code on the lines after it", None):
        ["python:\n", "python:\nx = 1\n", "a : b\n  shell:\n", "a : b\n  python:\n  name: x\n"],
    ("'python:' at the top level takes an indented block on the lines after it", None):
        ["python: x\n"],
    ("'name:' takes one word", None):
        ["a : b\n  name:\n", "a : b\n  name: x y\n"],
    ("'queue:' takes one word", None):
        ["a : b\n  queue:\n", "a : b\n  queue: x y\n"],
    ("'limit:' takes a number or the name of a limit", None):
        ["a : b\n  limit:\n", "a : b\n  limit: 3 4\n", "a : b\n  limit: x.y\n"],
    ("'retries:' takes a number", None):
        ["a : b\n  retries:\n", "a : b\n  retries: x\n", "a : b\n  retries: 3 4\n"],
    ("'threads:' takes a number", None):
        ["a : b\n  threads:\n", "a : b\n  threads: x\n", "a : b\n  threads: 3 4\n"],
    ("'resources:' takes NAME=AMOUNT words (a whole number each)", None):
        ["a : b\n  resources:\n", "a : b\n  resources: x\n", "a : b\n  resources: x=\n",
         "a : b\n  resources: x=y\n", "a : b\n  resources: x=1 y\n"],
    ("'temp:' takes outputs of the rule", None):
        ["a : b\n  temp:\n"],
    ("'log:' takes one path", None):
        ["a : b\n  log:\n", "a : b\n  log: x y\n"],
    ("'params:' takes an indented block of 'NAME = EXPRESSION' lines", None):
        ["a : b\n  params: x\n"],
}


def _syntax_error(exc: Any, text: str, path: str) -> PipefileError:
    line, col = _error_position(exc, text)
    loc = Location(path, line, col)
    rest = (source_line(text, line) or "")[col - 1:]
    expected = set(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())
    token_type = getattr(getattr(exc, "token", None), "type", None)
    stray = re.match(r"([A-Za-z_]\w*)\s*:", source_line(text, line) or "")
    if stray and stray.group(1) in BODY_KEYS and stray.group(1) != "python":
        return PipefileError(Location(path, line, 1), f"'{stray.group(1)}:' outside any rule", text,
                             "body lines go under a rule header 'OUTPUTS : INPUTS', indented")
    message, hint = _special_case(rest, expected, token_type) or _by_example(exc) \
        or (_expected_message(expected, exc), None)
    return PipefileError(loc, message, text, hint)


def _error_position(exc: Any, text: str) -> tuple[int, int]:
    line = getattr(exc, "line", -1)
    col = getattr(exc, "column", -1)
    if line is None or line < 1 or col is None or col < 1:
        lines = text.rstrip("\n").split("\n")
        return len(lines), len(lines[-1]) + 1
    return line, col


def _special_case(rest: str, expected: set[str], token_type: str | None) -> tuple[str, str | None] | None:
    if rest.startswith('"') and not re.match(r'"(?:\\.|[^"\\\n])*"', rest):
        return "unterminated quoted path", 'close the quotes on the same line: "my file.txt"'
    if token_type == "_INDENT":
        if "RETRIES" in expected or not expected & {"WORD", "VAR_ASSIGN"}:
            return "unexpected indentation", \
                "the lines of a rule body are indented alike, and a block's lines at least as far as its first"
        return "indented line outside any rule", \
            "body lines go under a rule header 'OUTPUTS : INPUTS'; top-level lines start in column 1"
    key = re.match(r"([A-Za-z_][\w-]*)\s*:", rest)
    if expected & {"RETRIES", "CLUSTER", "QUEUE"} and token_type not in ("_DEDENT", "$END"):
        if key and key.group(1) not in BODY_KEYS:
            return _unknown_key(key.group(1))
        if not key:
            return "expected a body line (" + ", ".join(f"{k}:" for k in BODY_KEYS) + ")", \
                "a rule body holds settings and one action, the action last"
    return None


def _unknown_key(word: str) -> tuple[str, str]:
    import difflib

    close = difflib.get_close_matches(word, BODY_KEYS, n=1)
    hint = f"did you mean '{close[0]}:'?" if close else \
        "a body line is one of " + ", ".join(f"{k}:" for k in BODY_KEYS)
    return f"unknown body line '{word}:'", hint


def _by_example(exc: Any) -> tuple[str, str | None] | None:
    if getattr(exc, "state", None) is None:
        return None
    try:
        return exc.match_examples(_parser().parse, _EXAMPLES, use_accepts=True)
    except Exception:  # an example that raises something else must not hide the user's error
        return None


def _expected_message(expected: set[str], exc: Any) -> str:
    words = sorted({_describe_terminal(name) for name in expected} - {None})
    wanted = " or ".join(words) if words else "something else"
    found = _describe_found(exc)
    return f"expected {wanted}, found {found}" if found else f"expected {wanted}"


def _describe_terminal(name: str) -> str | None:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return None
    return f"'{pattern.value}'" if pattern.type == "str" else None


def _describe_found(exc: Any) -> str | None:
    token = getattr(exc, "token", None)
    if token is None:
        char = getattr(exc, "char", None)
        return f"'{char}'" if char else None
    if token.type in _TERMINAL_WORDS and token.type not in ("WORD", "QUOTED", "IDENT", "SIGNED_INT", "REST"):
        return _TERMINAL_WORDS[token.type]
    word = token.value.split()[0] if token.value.split() else token.value
    return f"'{word}'"
