"""Wildcard constraints (PIPEFILE.md, Part 2): `{name,REGEX}` in an output pattern and a
top-level `wildcard NAME = "REGEX"`. A constrained wildcard matches only values REGEX matches
whole; a REGEX that can match '/' lets the value span directories.

The parser strips each `{name,REGEX}` down to `{name}` (so every other pattern check reads the
pattern as usual) and keeps the REGEX on the rule; the resolver compiles output patterns with
the rule's own constraints over the top-level ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rulerun.source import Location

_OPENING = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*),")


@dataclass(frozen=True, slots=True)
class Constraint:
    """REGEX for wildcard `name`, written at `loc` (its first character)."""

    name: str
    regex: str
    loc: Location


class BadConstraint(ValueError):
    """A constraint that can't be read: `message`, at `offset` in the pattern's text."""

    def __init__(self, message: str, offset: int, hint: str | None = None):
        super().__init__(message)
        self.message, self.offset, self.hint = message, offset, hint


def strip_constraints(text: str) -> tuple[str, list[tuple[str, str, int]]]:
    """(`text` with each `{name,REGEX}` written `{name}`, [(name, REGEX, offset of REGEX)]).
    Braces inside REGEX nest. Raises BadConstraint for an unclosed one or a REGEX that is not
    a valid regular expression."""
    if "," not in text or "{" not in text:
        return text, []
    out: list[str] = []
    found: list[tuple[str, str, int]] = []
    last = 0
    for match in _OPENING.finditer(text):
        if match.start() < last:
            continue  # inside the REGEX of the constraint before
        end = _closing_brace(text, match.end())
        if end is None:
            raise BadConstraint(f"'{{{match.group(1)},' without its closing '}}'", match.start(),
                                "a constrained wildcard is written {name,REGEX}")
        regex = text[match.end():end]
        _refuse_bad_regex(regex, match.end())
        out += [text[last:match.start()], "{" + match.group(1) + "}"]
        found.append((match.group(1), regex, match.end()))
        last = end + 1
    out.append(text[last:])
    return "".join(out), found


def _closing_brace(text: str, start: int) -> int | None:
    depth = 0
    i = start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return None


def _refuse_bad_regex(regex: str, offset: int) -> None:
    if not regex:
        raise BadConstraint("empty wildcard constraint", offset, "write {name,REGEX}, or {name} for any value")
    named = regex.find("(?P<")
    if named >= 0:  # the pattern's own groups are named after its wildcards
        raise BadConstraint("a wildcard constraint can't name its groups", offset + named,
                            "write (?:...) for a group")
    try:
        re.compile(regex)
    except re.error as exc:
        raise BadConstraint(f"the wildcard constraint '{regex}' is not a valid regular expression: {exc.msg}",
                            offset + (exc.pos or 0), "a constraint is a Python regular expression") from None


def check_regex(regex: str) -> BadConstraint | None:
    """Why `regex` can't be a constraint (offset within it), or None."""
    try:
        _refuse_bad_regex(regex, 0)
    except BadConstraint as exc:
        return exc
    return None


def merged(own: tuple[Constraint, ...], top_level: dict[str, Constraint], names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(name, REGEX) for each wildcard in `names` that is constrained: the rule's own
    constraint, else the top-level one. Sorted, so it keys compile_pattern's cache."""
    regexes = {name: c.regex for name, c in top_level.items() if name in names}
    regexes.update({c.name: c.regex for c in own if c.name in names})
    return tuple(sorted(regexes.items()))


def refusal(values: dict[str, str], constraints: tuple[tuple[str, str], ...]) -> str | None:
    """'{name,REGEX}' of the first constraint that refuses its value in `values`, or None."""
    for name, regex in constraints:
        if name in values and not re.fullmatch(regex, values[name], re.DOTALL):
            return f"its constraint {{{name},{regex}}} refuses '{values[name]}'"
    return None
