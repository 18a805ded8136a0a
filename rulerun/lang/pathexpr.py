"""Python values in paths: `$(EXPR)` in a rule's OUTPUTS and INPUTS (PIPEFILE.md, Part 2).

A path word is read into a template and its expressions: each `$(EXPR)` becomes one
EXPRESSION_MARK character in the template (so the pattern checks see the written `%`,
`{name}` and globs around it, and none inside it), and `$$` becomes `$`. Once the shared
namespace exists, every path whose expressions need no job is expanded (`expand_pipefile`);
an input that reads `wildcards` or `stem` is an input function, expanded for each job
(`InputFunction`). Inserted values are literal (patterns.escape_literal): a `%`, `{` or
`*` in a value is part of a file name.

The lexer can't count nesting, so before lark reads the text `mask_expressions` hides the
blanks and the ':', '"' and '#' inside each `$(...)` of a top-level line behind a character
a path word may hold, keeping every column; the builder reads the word back from the text.
"""

from __future__ import annotations

import ast
import itertools
import numbers
import os
import re
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

from rulerun.errors import PipefileError
from rulerun.lang.patterns import escape_literal
from rulerun.source import Location

EXPRESSION_MARK = "\ue000"  # where a `$(...)` stands in a template
MASK = "\x01"               # hides a blank, ':', '"' or '#' inside `$(...)` from the lexer
JOB_NAMES = frozenset({"wildcards", "stem"})
_HIDDEN = frozenset(' \t:"#')
_OPEN = {"(": ")", "[": "]", "{": "}"}
_VAR_LINE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*[ \t]*=(?!=)")


@dataclass(frozen=True, slots=True)
class PathExpression:
    """One `$(EXPR)`: its Python source and where that source starts in the Pipefile.
    `per_job`: it reads `wildcards` or `stem`, so it is evaluated for each job."""

    source: str
    loc: Location
    per_job: bool = False


class UnclosedExpression(ValueError):
    """`$(` with no matching `)` on its line, at `offset` in the word."""

    def __init__(self, offset: int):
        super().__init__(offset)
        self.offset = offset


# ------------------------------------------------------------------ reading

def expression_end(text: str, start: int) -> int | None:
    """The index of the `)` that closes the `$(` whose `(` is at `text[start]`, or None.
    Brackets and string literals nest; a newline ends the search."""
    closers: list[str] = []
    i = start
    while i < len(text):
        char = text[i]
        if char == "\n":
            return None
        if char in "'\"":
            i = _string_end(text, i)
            if i is None:
                return None
        elif char in _OPEN:
            closers.append(_OPEN[char])
        elif char in ")]}":
            if not closers or closers.pop() != char:
                return None
            if not closers:
                return i
        i += 1
    return None


def _string_end(text: str, start: int) -> int | None:
    """The index of the last quote of the string literal opening at `text[start]`."""
    quote = text[start] * 3 if text[start:start + 3] == text[start] * 3 else text[start]
    i = start + len(quote)
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(quote, i):
            return i + len(quote) - 1
        if text[i] == "\n" and len(quote) == 1:
            return None
        i += 1
    return None


def mask_expressions(text: str) -> str:
    """`text` with the characters inside each `$(...)` of a top-level line that the lexer would
    split a path at replaced by MASK (the same length, so every position stays). Indented lines
    (actions, Python blocks, where `$(` is shell's) and variables are left alone."""
    if "$(" not in text:
        return text
    out = list(text)
    line_start = 0
    for line in text.split("\n"):
        if line[:1] not in ("", " ", "\t", "#") and not _VAR_LINE.match(line) and "$(" in line:
            _mask_line(line, line_start, out)
        line_start += len(line) + 1
    return "".join(out)


def _mask_line(line: str, offset: int, out: list[str]) -> None:
    i = 0
    while i < len(line):
        if line[i] == "#":
            return  # a comment: nothing after it is a path
        if line.startswith("$$", i):
            i += 2
            continue
        if line.startswith("$(", i):
            end = expression_end(line, i + 1)
            if end is None:
                return  # reported when the word is read
            for j in range(i + 2, end):
                if line[j] in _HIDDEN:
                    out[offset + j] = MASK
            i = end + 1
            continue
        i += 1


def read_word(word: str, loc: Location, word_col: int) -> tuple[str, tuple[PathExpression, ...]]:
    """(template, expressions) of a path word as written; `word_col` is the Pipefile column of
    word[0]. Raises UnclosedExpression for a `$(` without its `)`."""
    template: list[str] = []
    expressions: list[PathExpression] = []
    i = 0
    while i < len(word):
        if word.startswith("$$", i):
            template.append("$")
            i += 2
        elif word.startswith("$(", i):
            end = expression_end(word, i + 1)
            if end is None:
                raise UnclosedExpression(i)
            source = word[i + 2:end]
            blanks = len(source) - len(source.lstrip(" \t"))  # Python refuses a leading indent
            source = source[blanks:]
            where = Location(loc.file, loc.line, word_col + i + 2 + blanks)
            expressions.append(PathExpression(source, where, bool(_names_read(source) & JOB_NAMES)))
            template.append(EXPRESSION_MARK)
            i = end + 1
        else:
            template.append(word[i])
            i += 1
    return "".join(template), tuple(expressions)


def written_index(word: str, index: int) -> int:
    """Where character `index` of the template read from `word` is written in `word`."""
    i = seen = 0
    while i < len(word) and seen < index:
        if word.startswith("$$", i):
            i += 2
        elif word.startswith("$(", i) and (end := expression_end(word, i + 1)) is not None:
            i = end + 1
        else:
            i += 1
        seen += 1
    return i


def _names_read(source: str) -> set[str]:
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError:
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def free_names(source: str) -> list[tuple[str, int]]:
    """(name, offset in `source`) of every name the expression reads that it does not bind
    itself (comprehension targets, lambda arguments, `:=`), in order; [] if it doesn't parse."""
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        return []
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    found = [(node.id, node.col_offset) for node in ast.walk(tree)
             if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound]
    return sorted(found, key=lambda item: item[1])


def names_in_paths(rules: Iterable[Any]) -> set[str]:
    """Every name any `$(...)` of these rules reads from outside it (not a comprehension's own)."""
    names: set[str] = set()
    for rule in rules:
        for pattern in rule.outputs + rule.inputs:
            for expression in pattern.exprs:
                names |= {name for name, _ in free_names(expression.source)}
    return names


def shown_path(pattern: Any) -> str:
    """A path of a rule as a person reads it: an input function as written, any other path as
    the rule now has it (values inserted), with its name when it is a named input."""
    from rulerun.lang.patterns import unescape_literal

    text = pattern.written if pattern.exprs else unescape_literal(pattern.text)
    return f"{pattern.name}={text}" if pattern.name else text


# ------------------------------------------------------------------ expanding

class _Wildcards(dict):
    """A job's wildcard values, by key and by attribute (`wildcards.sample`)."""

    def __getattr__(self, name: str) -> str:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no wildcard named '{name}'") from None


def expand_pipefile(pipefile: Any, namespace: Mapping[str, Any]) -> Any:
    """`pipefile` with every path whose `$(...)` need no job expanded into the paths it stands
    for (input functions are kept, for `InputFunction`). Raises PipefileError at an
    expression's line and column when evaluating it fails."""
    if not any(p.exprs for rule in pipefile.rules for p in rule.outputs + rule.inputs):
        return pipefile
    rules = tuple(_expand_rule(rule, pipefile.text, namespace) for rule in pipefile.rules)
    return replace(pipefile, rules=rules)


def _expand_rule(rule: Any, text: str, namespace: Mapping[str, Any]) -> Any:
    if not any(p.exprs for p in rule.outputs + rule.inputs):
        return rule
    outputs = tuple(_expand_at_load(rule.outputs, text, namespace))
    _refuse_outside(rule, outputs, text)
    inputs = tuple(_expand_at_load(rule.inputs, text, namespace, keep_per_job=not rule.is_task))
    if not outputs:
        raise PipefileError(rule.outputs[0].loc, f"rule '{rule.name}' has no outputs: every `$(...)` "
                                                 "in them gave an empty list", text,
                            hint="a rule needs at least one output")
    return replace(rule, outputs=outputs, inputs=inputs)


def _refuse_outside(rule: Any, outputs: tuple, text: str) -> None:
    """An output a `$(...)` computed lies below the project and outside .rulerun/, as every
    literal output must (check.py checks those written out; this one is known only now)."""
    from rulerun.lang.confine import place_problem
    from rulerun.lang.patterns import unescape_literal, wildcard_names, is_glob

    for pattern in outputs:
        if pattern.written and not wildcard_names(pattern.text) and not is_glob(pattern.text):
            problem = place_problem(unescape_literal(pattern.text))
            if problem:
                raise PipefileError(pattern.loc, f"output '{unescape_literal(pattern.text)}' (from "
                                                 f"'{pattern.written}') of rule '{rule.name}' is {problem}", text,
                                    hint="a rule writes only below the directory rulerun runs in, outside .rulerun/")


def _expand_at_load(patterns: Iterable[Any], text: str, namespace: Mapping[str, Any],
                    keep_per_job: bool = False) -> Iterable[Any]:
    for pattern in patterns:
        if not pattern.exprs or (keep_per_job and any(e.per_job for e in pattern.exprs)):
            yield pattern
            continue
        for expanded in expand_template(pattern.text, pattern.exprs, text, namespace, {}, None):
            yield pattern.expanded(expanded)


class InputFunction:
    """One input path whose `$(...)` read `wildcards` or `stem`, made ready to give each job's
    paths (wildcards still to be filled in): its expressions compiled once, and one scope for
    every job, the namespace's copy with the job's `wildcards` and `stem` set in it. An
    expression that could change or read its own scope (`:=`, globals, vars, locals, dir, exec,
    eval, a frame's f_globals) gets a fresh copy for each job instead, so no job sees what
    another left there.
    The functions it calls have the namespace itself as their globals, never this copy."""

    __slots__ = ("pattern", "text", "namespace", "codes", "pieces", "shared")

    def __init__(self, pattern: Any, text: str, namespace: Mapping[str, Any]):
        from rulerun.lang.namespace import compile_block

        self.pattern, self.text, self.namespace = pattern, text, namespace
        self.codes = [compile_block(e.source, e.loc, "eval", text) for e in pattern.exprs]
        self.pieces = pattern.text.split(EXPRESSION_MARK)
        changes = any(_may_change_its_scope(e.source) for e in pattern.exprs)
        self.shared: dict[str, Any] | None = None if changes else dict(namespace)

    def paths(self, values: Mapping[str, str], target: str) -> list[str]:
        """The templates this input gives for the job with wildcard `values`; errors name `target`."""
        scope = _with_job(self.shared if self.shared is not None else dict(self.namespace), values)
        values_of = [_evaluated(code, scope, expression, self.text, target)
                     for expression, code in zip(self.pattern.exprs, self.codes)]
        if len(values_of) == 1 and type(values_of[0]) is str:  # the usual: one $(...) giving one path
            before, after = self.pieces  # (straight here: through _combined, 0.7 us more a job)
            return [before + escape_literal(values_of[0]) + after]
        return _combined(self.pieces, [_texts(value, expression, self.text, target)
                                       for value, expression in zip(values_of, self.pattern.exprs)])


_SCOPE_CHANGERS = frozenset({"globals", "vars", "locals", "dir", "exec", "eval", "f_globals", "_getframe"})


def _may_change_its_scope(source: str) -> bool:
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError:
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.NamedExpr):
            return True
        if isinstance(node, ast.Name) and node.id in _SCOPE_CHANGERS:
            return True
        if isinstance(node, ast.Attribute) and node.attr in _SCOPE_CHANGERS:
            return True
    return False


def expand_template(template: str, expressions: tuple[PathExpression, ...], text: str,
                    namespace: Mapping[str, Any], values: Mapping[str, str], target: str | None) -> list[str]:
    """Every path `template` stands for: each EXPRESSION_MARK replaced by one element of its
    expression's value (escaped: literal), every combination, the first expression varying
    slowest."""
    choices = [_texts(_evaluate(e, text, namespace, values, target), e, text, target) for e in expressions]
    return _combined(template.split(EXPRESSION_MARK), choices)


def _combined(pieces: list[str], choices: list[list[str]]) -> list[str]:
    if len(choices) == 1:  # the usual input function: one $(...), no combinations to make
        before, after = pieces
        return [before + escape_literal(value) + after for value in choices[0]]
    paths = []
    for combination in itertools.product(*choices):
        parts = [pieces[0]]
        for value, piece in zip(combination, pieces[1:]):
            parts += [escape_literal(value), piece]
        paths.append("".join(parts))
    return paths


def _evaluate(expression: PathExpression, text: str, namespace: Mapping[str, Any],
              values: Mapping[str, str], target: str | None) -> Any:
    from rulerun.lang.namespace import compile_block

    code = compile_block(expression.source, expression.loc, "eval", text)
    return _evaluated(code, _with_job(dict(namespace), values), expression, text, target)


def _with_job(scope: dict[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """`scope` with a job's `wildcards` (a copy: no expression changes the job's own) and `stem`."""
    scope["wildcards"] = _Wildcards(values if "stem" not in values else
                                    {k: v for k, v in values.items() if k != "stem"})
    scope["stem"] = values.get("stem")
    return scope


def _evaluated(code: Any, scope: dict[str, Any], expression: PathExpression, text: str, target: str | None) -> Any:
    try:
        return eval(code, scope)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the Pipefile's mistake, whatever it raised
        raise _failed(expression, text, target, _exception_text(exc)) from None


def _texts(value: Any, expression: PathExpression, text: str, target: str | None) -> list[str]:
    """The value as the texts it inserts: one for a scalar, one per element of an iterable."""
    one = _as_text(value)
    if one is not None:
        return [one]
    try:
        elements = list(value)
    except TypeError:
        raise _failed(expression, text, target, "its value " + _wrong_type(value)) from None
    except Exception as exc:
        raise _failed(expression, text, target, _exception_text(exc)) from None
    texts = []
    for element in elements:
        one = _as_text(element)
        if one is None:
            raise _failed(expression, text, target, "an element of its value " + _wrong_type(element))
        texts.append(one)
    return texts


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        return str(value)
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        return path if isinstance(path, str) else None
    return None


def _wrong_type(value: Any) -> str:
    return f"is a {type(value).__name__}, not a str, a number, a path or a list of them"


def _failed(expression: PathExpression, text: str, target: str | None, what: str) -> PipefileError:
    where = f" for '{target}'" if target else ""
    return PipefileError(expression.loc, f"error in $({expression.source.strip()}){where}: {what}", text,
                         hint="a $(...) in a path is Python, evaluated in the Pipefile's namespace"
                              + (" with the job's wildcards and stem" if expression.per_job else ""))


def _exception_text(exc: BaseException) -> str:
    from rulerun.lang.namespace import _exception_text as text_of

    return text_of(exc)
