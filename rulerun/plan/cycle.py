"""A dependency cycle said so that a person can find it: each step names the rule that makes
it and where that rule is written."""

from __future__ import annotations


def describe(cycle: list[str], index) -> str:
    """`a.x -> b.x -> a.x`, then one line per step: `a.x: rule 'a' (Pipefile:1:1)`."""
    lines = ["dependency cycle: " + " -> ".join(cycle)]
    for path in cycle[:-1]:
        rule = _maker(path, index)
        if rule is not None:
            lines.append(f"  {path}: rule '{rule.name}' ({rule.loc})")
    return "\n".join(lines)


def _maker(path: str, index):
    """The rule the resolver would take for `path` (a task, a literal output, a pattern)."""
    if path in index.tasks:
        return index.tasks[path]
    if index.literal.get(path):
        return index.literal[path][0]
    candidates = index.candidates(path)
    return candidates[0][0] if candidates else None
