"""Named inputs, `NAME=PATH` in a rule's INPUTS (PIPEFILE.md, Part 2).

A job keeps the paths of each name in order (`Job.named`); a Python action reads them as
`input.NAME`, a str for a plain path or pattern and always a list for a glob or a `$(...)`,
however many paths it gave; a shell action's `{input.NAME}` is every path under the name.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from rulerun.lang.patterns import is_glob


def names_giving_lists(inputs: Iterable[Any]) -> set[str]:
    """The input names whose paths a Python action sees as a list: a glob or a `$(...)` (still
    to be evaluated, or expanded at load: `written` remembers it)."""
    return {p.name for p in inputs if p.name and (p.exprs or p.written or is_glob(p.text))}


def named_values(rule: Any, named: Mapping[str, list[str]] | None) -> dict[str, Any]:
    """`input.NAME` for each name of `rule`'s inputs: a str or a list (see module doc)."""
    lists = names_giving_lists(rule.inputs)
    values: dict[str, Any] = {}
    for pattern in rule.inputs:
        if pattern.name and pattern.name not in values:
            paths = list((named or {}).get(pattern.name, ()))
            values[pattern.name] = paths if pattern.name in lists else (paths[0] if paths else "")
    return values


class InputList(list):
    """A Python action's `input`: every input path in order, and each named input as an
    attribute (`input.ref`). A plain list subclass, so it pickles and compares as a list."""

    def __init__(self, paths: Iterable[str] = (), named: Mapping[str, Any] | None = None):
        super().__init__(paths)
        self.__dict__.update(named or {})

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"no input is named '{name}'")

    def __reduce__(self):
        return (InputList, (list(self), dict(self.__dict__)))
