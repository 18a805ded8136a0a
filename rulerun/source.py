"""Where things are in a Pipefile, and how a located error is shown to a person."""

from __future__ import annotations

from collections import namedtuple


class Location(namedtuple("Location", "file line col", defaults=(0,))):
    """A 1-based line and column in a file; col 0 means 'the whole line'. (A named tuple, not a
    dataclass: importing dataclasses costs every run a few milliseconds, the no-op's too.)"""

    __slots__ = ()

    def __str__(self) -> str:
        if self.col:
            return f"{self.file}:{self.line}:{self.col}"
        return f"{self.file}:{self.line}"


def source_line(text: str | None, line: int) -> str | None:
    """The text of 1-based `line` in `text`, or None when it is not there."""
    if text is None or line < 1:
        return None
    lines = text.splitlines()
    if line > len(lines):
        return None
    return lines[line - 1]


# The text of each included Pipefile as last read: an error located in one shows its line.
_INCLUDED_TEXTS: dict[str, str] = {}


def remember_text(path: str, text: str) -> None:
    _INCLUDED_TEXTS[path] = text


def render(loc: Location | None, message: str, text: str | None = None, hint: str | None = None) -> str:
    """'FILE:LINE:COL: message', then the line and a caret under the column, then 'hint: …'."""
    head = f"{loc}: {message}" if loc else message
    parts = [head]
    if loc is not None and loc.file in _INCLUDED_TEXTS:
        text = _INCLUDED_TEXTS[loc.file]
    shown = source_line(text, loc.line) if loc else None
    if shown is not None:
        visible = shown.replace("\t", " ")
        parts.append(f"    {visible}")
        if loc.col:
            parts.append("    " + " " * (loc.col - 1) + "^")
    if hint:
        parts.append(f"hint: {hint}")
    return "\n".join(parts)
