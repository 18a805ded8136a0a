"""Fingerprints of Python values: the same value gives the same text in every run.

A job's signature holds a digest of every value it uses (plan/signature.py). `repr` will not
do: a function's repr holds its address and a set's order follows the hash seed, so a job
using either would run again every time. Here a function is its code (its bytecode, constants,
names, defaults and closure), with the values of the globals it reads; a set or a dict is its
contents in a stable order; a module or a class is its name; any other object its type and its
repr without addresses.
"""

from __future__ import annotations

import os
import re
import types
from typing import Any, Mapping

_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")
_DEEPEST = 50  # nesting followed before a value is taken by its type alone


def fingerprint(value: Any, namespace: Mapping[str, Any] | None = None) -> str:
    """Stable text for `value`; a function's globals are looked up in `namespace`."""
    return _Fingerprinter(namespace or {}).of(value, 0)


def names_read(function: types.FunctionType) -> set[str]:
    """The global names a function's code (and the code nested in it) reads."""
    found: set[str] = set()
    stack = [function.__code__]
    while stack:
        code = stack.pop()
        found.update(code.co_names)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return found


class _Fingerprinter:
    def __init__(self, namespace: Mapping[str, Any]):
        self.namespace = namespace
        self.seen: set[int] = set()  # functions being fingerprinted: recursion ends at them

    def of(self, value: Any, depth: int) -> str:
        if depth > _DEEPEST:
            return f"<{type(value).__qualname__}>"
        if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
            return repr(value)
        if isinstance(value, (list, tuple)):
            return f"{type(value).__name__}[" + ",".join(self.of(v, depth + 1) for v in value) + "]"
        if isinstance(value, (set, frozenset)):
            return f"{type(value).__name__}{{" + ",".join(sorted(self.of(v, depth + 1) for v in value)) + "}"
        if isinstance(value, dict):
            items = sorted(f"{self.of(k, depth + 1)}:{self.of(v, depth + 1)}" for k, v in value.items())
            return f"{type(value).__name__}{{" + ",".join(items) + "}"
        if isinstance(value, types.FunctionType):
            return self.function(value, depth)
        if isinstance(value, types.ModuleType):
            return f"module {value.__name__}"
        if isinstance(value, type):
            return f"class {value.__module__}.{value.__qualname__}"
        if isinstance(value, os.PathLike):
            return f"path {os.fspath(value)!r}"
        return f"{type(value).__qualname__} " + _ADDRESS.sub("", _safe_repr(value))

    def function(self, function: types.FunctionType, depth: int) -> str:
        if id(function) in self.seen:
            return f"function {function.__qualname__}"
        self.seen.add(id(function))
        parts = [f"function {function.__qualname__}", self.code(function.__code__),
                 self.of(function.__defaults__, depth + 1), self.of(function.__kwdefaults__, depth + 1)]
        for cell in function.__closure__ or ():
            try:
                parts.append(self.of(cell.cell_contents, depth + 1))
            except ValueError:  # an empty cell
                parts.append("<empty>")
        scope = function.__globals__ if function.__globals__ is not None else self.namespace
        for name in sorted(names_read(function)):
            if name in scope and not isinstance(scope.get(name), types.ModuleType):
                parts.append(f"{name}={self.of(scope[name], depth + 1)}")
        return " ".join(parts)

    def code(self, code: types.CodeType) -> str:
        consts = [self.code(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
        return f"code({code.co_code.hex()};{','.join(consts)};{','.join(code.co_names)})"


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not stop the run
        return "<no repr>"
