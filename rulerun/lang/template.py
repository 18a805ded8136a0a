"""`{name}` substitution in shell actions: the template's pieces (for load-time checks and the
runner's action signature) and the command a job runs.

    {input} {output}         every input/output, space separated, each shell-quoted
    {input[N]} {output[N]}   one of them, shell-quoted (a path starting with '-' as './-…')
    {input.NAME}             every path of a named input (`NAME=PATH`), each shell-quoted
    {stem} {wildcard}        a `%` or `{wildcard}` value, shell-quoted
    {NAME}                   a top-level variable or Python name, inserted as str(value), unquoted
    {params.NAME}            a job's param, str(value) shell-quoted
    {resources.NAME}         a job's resource amount; {threads} its threads
    {{ }}                    literal braces
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, Sequence

INDEXABLE = ("input", "output")
# Names with attributes: a job's own values by name (lang/params.py).
DOTTED = ("params", "resources")

# One match per special piece: an escaped brace, a whole {...} on one line, or a stray brace.
_PIECE = re.compile(r"\{\{|\}\}|\{[^{}\n]*\}|[{}]")
_REFERENCE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:\[([0-9]+)\]|\.([A-Za-z_][A-Za-z0-9_]*))?\}")
_DOTTED_REFERENCE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Literal:
    """Text copied as it is (escaped braces already resolved); `offset` is where it starts."""

    text: str
    offset: int


@dataclass(frozen=True, slots=True)
class Reference:
    """`{key}` or `{key[index]}` at `offset` in the script; `text` is how it was written."""

    key: str
    index: int | None
    offset: int
    text: str
    attr: str | None = None  # `{key.attr}`: `{input.NAME}` (a named input), `{params.NAME}`, `{resources.NAME}`


Piece = Literal | Reference


class TemplateError(ValueError):
    """A brace the template language doesn't allow, at `offset` in the script."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


def parse_shell_template(script: str) -> tuple[Piece, ...]:
    """The pieces of `script` in order. Raises TemplateError for a stray `{` or `}` or a
    `{...}` that is not a name with an optional `[N]`."""
    return _parse(script)


@lru_cache(maxsize=512)
def _parse(script: str) -> tuple[Piece, ...]:
    pieces: list[Piece] = []
    literal: list[str] = []
    literal_start = 0
    last = 0
    for match in _PIECE.finditer(script):
        literal.append(script[last:match.start()])
        text = match.group()
        if text in ("{{", "}}"):
            literal.append(text[0])
        else:
            reference = _reference(text, match.start())
            if "".join(literal):
                pieces.append(Literal("".join(literal), literal_start))
            pieces.append(reference)
            literal, literal_start = [], match.end()
        last = match.end()
    literal.append(script[last:])
    if "".join(literal):
        pieces.append(Literal("".join(literal), literal_start))
    return tuple(pieces)


def _reference(text: str, offset: int) -> Reference:
    if text == "{":
        raise TemplateError("'{' without a matching '}' on its line", offset)
    if text == "}":
        raise TemplateError("'}' without a matching '{'", offset)
    dotted = _DOTTED_REFERENCE.fullmatch(text)
    if dotted:
        return Reference(dotted.group(1), None, offset, text, dotted.group(2))
    match = _REFERENCE.fullmatch(text)
    if not match:
        raise TemplateError(f"'{text}' is not a substitution", offset)
    key, index = match.group(1), match.group(2)
    return Reference(key, int(index) if index is not None else None, offset, text, match.group(3))


def referenced_names(script: str) -> set[str]:
    """The keys `script` substitutes (`input`, `output`, wildcards, variables…)."""
    return {piece.key for piece in parse_shell_template(script) if isinstance(piece, Reference)}


def render_shell(script: str, inputs: Sequence[str], outputs: Sequence[str],
                 wildcards: Mapping[str, str], stem: str | None, namespace: Mapping[str, Any],
                 named: Mapping[str, Sequence[str]] | None = None, own: Mapping[str, Any] | None = None) -> str:
    """`script` with every substitution made for one job; `named` holds its named inputs, `own`
    its own values (params, resources, threads, log). Raises ValueError for an index past the
    end of the inputs/outputs or a name with no value (which load-time checks prevent)."""
    parts: list[str] = []
    for piece in parse_shell_template(script):
        if isinstance(piece, Literal):
            parts.append(piece.text)
        elif piece.attr is not None and piece.key == "input":
            parts.append(_named(piece, named))
        elif piece.attr is not None or (own and piece.key in own and piece.index is None):
            parts.append(_own_value(piece, own or {}))
        else:
            parts.append(_value(piece, inputs, outputs, wildcards, stem, namespace))
    return "".join(parts)


def _own_value(ref: Reference, own: Mapping[str, Any]) -> str:
    """{params.NAME}, {resources.NAME}, {threads}, {log}: str(value), shell-quoted."""
    value = own.get(ref.key)
    if ref.attr is not None:
        if not isinstance(value, Mapping) or ref.attr not in value:
            raise ValueError(f"{ref.text}: this job has no {ref.key} named '{ref.attr}'")
        value = value[ref.attr]
    return shlex.quote(str(value))


def _path_argument(path: str) -> str:
    """`path` as one shell word that no command can take for an option: a relative path
    starting with '-' ('-n.txt', '--help.txt') is written './-n.txt', the same file."""
    return shlex.quote("./" + path if path.startswith("-") else path)


def _named(ref: Reference, named: Mapping[str, Sequence[str]] | None) -> str:
    """`{input.NAME}`: every path of the named input, each shell-quoted."""
    if ref.key != "input":
        raise ValueError(f"{ref.text}: only input has named parts")
    if named is None or ref.attr not in named:
        return ""  # a name whose glob or $(...) gave no path (load-time checks know every name)
    return " ".join(_path_argument(path) for path in named[ref.attr])


def _value(ref: Reference, inputs: Sequence[str], outputs: Sequence[str],
           wildcards: Mapping[str, str], stem: str | None, namespace: Mapping[str, Any]) -> str:
    if ref.key in INDEXABLE:
        paths = inputs if ref.key == "input" else outputs
        if ref.index is None:
            return " ".join(_path_argument(path) for path in paths)
        if ref.index >= len(paths):
            raise ValueError(f"{ref.text}: this job has {len(paths)} {ref.key}"
                             f"{'s' if len(paths) != 1 else ''} ({' '.join(paths) or 'none'})")
        return _path_argument(paths[ref.index])
    if ref.index is not None:
        raise ValueError(f"{ref.text}: only input and output can be indexed")
    if ref.key == "stem" and stem is not None:
        return shlex.quote(stem)
    if ref.key in wildcards:
        return shlex.quote(wildcards[ref.key])
    if ref.key in namespace:
        return str(namespace[ref.key])
    raise ValueError(f"{ref.text}: no input, output, stem, wildcard or variable has this name")
