"""Path patterns: `%` stems, `{name}` wildcards and globs, compiled once, matched and expanded.

Pure: no I/O. A `%` stem may span `/`; a `{name}` value is non-empty and has no `/`; a glob's
`*`, `?` and `[...]` never match `/` (as in the shell).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

_TOKEN = re.compile(r"%|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_GLOB_CHARS = re.compile(r"[*?\[]")
STEM = "stem"

# Characters inserted by `$(...)` are literal: each special one is kept in a pattern's text as a
# private-use character that no token or glob rule reads, and turned back into itself where the
# pattern becomes a path (expand, match) or a glob (where it is escaped).
_LITERAL = {"%": "\ue025", "{": "\ue07b", "}": "\ue07d", "*": "\ue02a", "?": "\ue03f", "[": "\ue05b"}
_UNLITERAL = {escaped: char for char, escaped in _LITERAL.items()}
_LITERAL_IN = re.compile("[" + "".join(_LITERAL).replace("[", "\\[") + "]")
_ESCAPED = re.compile("[" + "".join(_UNLITERAL) + "]")
_PLAIN_OR_NOT = re.compile(r"[%{*?\[" + "".join(_UNLITERAL) + "]")  # what may make a path more than itself


def escape_literal(value: str) -> str:
    """`value` as pattern text that stands for itself: no wildcard, no glob."""
    return _LITERAL_IN.sub(lambda m: _LITERAL[m.group()], value) if _LITERAL_IN.search(value) else value


def unescape_literal(text: str) -> str:
    """Pattern text (without wildcards) as the path it names."""
    return _ESCAPED.sub(lambda m: _UNLITERAL[m.group()], text) if _ESCAPED.search(text) else text


def glob_text(text: str) -> str:
    """Pattern text as a shell glob: escaped literal characters match only themselves."""
    if not _ESCAPED.search(text):
        return text
    return _ESCAPED.sub(lambda m: escape_glob(_UNLITERAL[m.group()]), text)


def is_glob(text: str) -> bool:
    """True when `text` has a glob character outside of `{name}` wildcards."""
    return bool(_GLOB_CHARS.search(_TOKEN.sub("", text)))


def wildcard_names(text: str) -> list[str]:
    """The names of the `{name}` wildcards in `text`, in order, each once; `%` counts as 'stem'."""
    names: list[str] = []
    for match in _TOKEN.finditer(text):
        name = match.group(1) or STEM
        if name not in names:
            names.append(name)
    return names


@dataclass(frozen=True, slots=True)
class Pattern:
    """A compiled `%`/`{name}` pattern (it may also hold glob characters, matched literally
    here: a glob is expanded against files, not matched against a target)."""

    text: str
    regex: re.Pattern[str] | None  # None for a literal path: it matches only itself (`prefix`)
    names: tuple[str, ...]
    prefix: str
    suffix: str
    pieces: tuple[tuple[bool, str], ...]  # (is_wildcard, literal text or wildcard name)
    is_glob: bool
    single: bool  # exactly one wildcard occurrence: expand is prefix + value + suffix
    constraints: tuple[tuple[str, str], ...] = ()  # (name, REGEX): values a wildcard may take

    @property
    def is_literal(self) -> bool:
        return not self.names

    def match(self, path: str) -> dict[str, str] | None:
        """The wildcard values that make this pattern equal `path`, or None."""
        if self.regex is None:
            return {} if path == self.prefix else None
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        if self.constraints:  # a constraint's own named groups are no wildcards
            return {name: found.group(name) for name in self.names}
        return found.groupdict()

    def expand(self, values: dict[str, str]) -> str:
        """This pattern with each wildcard replaced by its value (KeyError if one is missing)."""
        if not self.names:
            return self.prefix  # the whole text, escaped literal characters turned back
        if self.single:  # the common case, decided once at compile time: expand runs per job
            return self.prefix + values[self.names[0]] + self.suffix
        return "".join([values[text] if wild else text for wild, text in self.pieces])

    def expand_as_glob(self, values: dict[str, str]) -> str:
        """Like expand, for a glob pattern: glob characters in the values match only themselves."""
        if not _ESCAPED.search(self.text):
            return self.expand({name: escape_glob(value) for name, value in values.items()})
        parts, last = [], 0
        for match in _TOKEN.finditer(self.text):
            parts += [glob_text(self.text[last:match.start()]), escape_glob(values[match.group(1) or STEM])]
            last = match.end()
        return "".join(parts + [glob_text(self.text[last:])])

    def as_glob(self) -> str:
        """This pattern with every wildcard turned into `*`: the files it could name in one directory."""
        return glob_text(_TOKEN.sub("*", self.text))


@lru_cache(maxsize=None)
def compile_pattern(text: str, constraints: tuple[tuple[str, str], ...] = ()) -> Pattern:
    """`text` compiled; `constraints` (name, REGEX) narrow what values a wildcard matches.
    A literal path (most of a `$(SAMPLES)` list's, every input function's) gets no regex:
    compiling one was most of the cost of such a path."""
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        literal = unescape_literal(text)
        return Pattern(text, None, (), literal, literal, ((False, literal),) if literal else (), is_glob(text),
                       single=False, constraints=constraints)
    regex = _wildcard_regex(text, lambda literal: re.escape(unescape_literal(literal)), dict(constraints))
    pieces: list[tuple[bool, str]] = []
    last = 0
    for match in _TOKEN.finditer(text):
        pieces.append((False, unescape_literal(text[last:match.start()])))
        pieces.append((True, match.group(1) or STEM))
        last = match.end()
    pieces.append((False, unescape_literal(text[last:])))
    prefix = unescape_literal(text[: tokens[0].start()])
    suffix = unescape_literal(text[tokens[-1].end():])
    return Pattern(text, re.compile(regex, re.DOTALL), tuple(wildcard_names(text)), prefix, suffix,
                   tuple(p for p in pieces if p[1] or p[0]), is_glob(text), single=len(tokens) == 1,
                   constraints=constraints)


def pattern_for_one_job(text: str) -> "Pattern | OneFile":
    """`text` compiled, not kept in compile_pattern's cache: a path an input function gave for
    one job would otherwise stay in memory for the whole run, one per job. A plain path (most
    of them) is a OneFile: what a job needs of it costs no Pattern."""
    return plain_file(text) or compile_pattern.__wrapped__(text)


def plain_file(text: str) -> "OneFile | None":
    """`text` as a OneFile when it has no wildcard and no glob (None otherwise)."""
    if not _PLAIN_OR_NOT.search(text):  # the usual answer, in one look: nothing to read in it
        return OneFile(text)
    if not _TOKEN.search(text) and not _GLOB_CHARS.search(text):
        return OneFile(unescape_literal(text))
    return None


class OneFile:
    """A plain path as an input pattern: no wildcard, no glob; it expands to itself."""

    __slots__ = ("path",)
    is_glob = False

    def __init__(self, path: str):
        self.path = path

    def expand(self, values: dict[str, str]) -> str:
        return self.path


def match_with_globs(pattern: Pattern, path: str) -> dict[str, str] | None:
    """Like Pattern.match, with the pattern's glob characters matching as globs do
    (`data/{s}/*.csv` matches `data/x/1.csv` with s = 'x')."""
    found = _wildcard_glob_regex(pattern.text).fullmatch(path)
    return found.groupdict() if found else None


@lru_cache(maxsize=None)
def _wildcard_glob_regex(text: str) -> re.Pattern[str]:
    return re.compile(_wildcard_regex(text, lambda literal: glob_regex(glob_text(literal)).pattern if literal else ""),
                      re.DOTALL)


def _wildcard_regex(text: str, literal: Callable[[str], str], regexes: dict[str, str] | None = None) -> str:
    """A regex for pattern `text`: each piece between wildcards as `literal` makes it (plain text,
    or a glob), each wildcard a named group (its constraint's REGEX from `regexes` when it has
    one), a wildcard's second use a backreference to its first."""
    regexes = regexes or {}
    parts: list[str] = []
    seen: set[str] = set()
    last = 0
    for match in _TOKEN.finditer(text):
        parts.append(literal(text[last:match.start()]))
        name = match.group(1) or STEM
        if name in seen:
            parts.append(f"(?P={name})")
        elif name in regexes:
            parts.append(f"(?P<{name}>(?:{regexes[name]}))")
        else:
            parts.append(f"(?P<{name}>.+)" if name == STEM else f"(?P<{name}>[^/]+)")
        seen.add(name)
        last = match.end()
    parts.append(literal(text[last:]))
    return "".join(parts)


def escape_glob(value: str) -> str:
    """`value` as a glob that matches only itself ('a*b' -> 'a[*]b')."""
    return re.sub(r"([*?\[])", r"[\1]", value)


def specificity(values: dict[str, str]) -> int:
    """How much of a target the wildcards matched: shorter means more specific (GNU make's stem rule)."""
    return sum(len(v) for v in values.values())


# ------------------------------------------------------------------ globs

@lru_cache(maxsize=None)
def glob_regex(glob: str) -> re.Pattern[str]:
    """A regex equal to the shell glob `glob` on a whole path: `*`, `?` and `[...]` stay within
    one path component, and a component starting with '.' is matched only by a pattern
    component that starts with '.' too."""
    out: list[str] = []
    i, n = 0, len(glob)
    at_component_start = True
    while i < n:
        char = glob[i]
        if char in "*?[" and at_component_start:
            out.append(r"(?!\.)")
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = _class_end(glob, i)
            if end < 0:
                out.append(re.escape(char))
            else:
                body = glob[i + 1:end]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                out.append("(?!/)[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(char))
        at_component_start = char == "/"
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _class_end(glob: str, start: int) -> int:
    i = start + 1
    if i < len(glob) and glob[i] in "!^":
        i += 1
    if i < len(glob) and glob[i] == "]":
        i += 1
    end = glob.find("]", i)
    return end


def split_glob(glob: str) -> tuple[str, str]:
    """('dir', 'rest'): the longest leading directory without glob characters, and the rest."""
    head = ""
    parts = glob.split("/")
    for index, part in enumerate(parts[:-1]):
        if is_glob(part):
            return head, "/".join(parts[index:])
        head = f"{head}/{part}" if head else (part or "/")
    return head, parts[-1]


def globs_may_overlap(a: str, b: str) -> bool:
    """Could some path match both globs? Decided on the globs themselves, token by token (a
    literal character, `?`, `[...]` or `*`, none of them matching '/'), so 'parts/*b.txt' and
    'parts/a*.txt' overlap though neither matches the other as text. Generous about a leading
    '.', which makes an answer of True at worst a wait for a split rule that was not needed."""
    return _overlap(_glob_tokens(a), _glob_tokens(b))


def _glob_tokens(glob: str) -> tuple:
    """('c', char) | ('any',) for '?' | ('star',) | ('set', chars, negated) per character."""
    tokens = []
    i = 0
    while i < len(glob):
        char = glob[i]
        if char == "*":
            if not tokens or tokens[-1] != ("star",):
                tokens.append(("star",))
        elif char == "?":
            tokens.append(("any",))
        elif char == "[" and (end := _class_end(glob, i)) >= 0:
            body = glob[i + 1:end]
            negated = body[:1] in ("!", "^")
            tokens.append(("set", _class_chars(body[1:] if negated else body), negated))
            i = end
        else:
            tokens.append(("c", char))
        i += 1
    return tuple(tokens)


def _class_chars(body: str) -> frozenset[str]:
    chars: set[str] = set()
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            chars.update(chr(c) for c in range(ord(body[i]), ord(body[i + 2]) + 1))
            i += 3
        else:
            chars.add(body[i])
            i += 1
    return frozenset(chars)


def _one_char_overlap(x: tuple, y: tuple) -> bool:
    """Whether two one-character tokens can match the same character (never '/')."""
    if x[0] == "c" and y[0] == "c":
        return x[1] == y[1]
    if x[0] != "c":
        x, y = y, x
    if x[0] == "c":  # a character against '?' or a set
        return x[1] != "/" and (y[0] == "any" or (x[1] in y[1]) != y[2])
    if x[0] == "set" and y[0] == "set" and not x[2] and not y[2]:
        return bool(x[1] & y[1] - {"/"})
    if x[0] == "set" and y[0] == "set":
        positive, other = (x, y) if not x[2] else (y, x)
        return positive[2] or bool(positive[1] - other[1] - {"/"})
    return True  # '?' against anything but a character, or a negated set


def _overlap(a: tuple, b: tuple) -> bool:
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        x = a[i] if i < len(a) else None
        y = b[j] if j < len(b) else None
        if x == ("star",):
            todo.append((i + 1, j))  # it matches nothing more
            if y is not None and y != ("star",) and y != ("c", "/"):
                todo.append((i, j + 1))  # it matches y's character too
        if y == ("star",):
            todo.append((i, j + 1))
            if x is not None and x != ("star",) and x != ("c", "/"):
                todo.append((i + 1, j))
        if x is not None and y is not None and x != ("star",) and y != ("star",) and _one_char_overlap(x, y):
            todo.append((i + 1, j + 1))
    return False
