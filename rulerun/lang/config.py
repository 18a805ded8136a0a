"""`config PATH` (PIPEFILE.md Part 2 "Include and config"): a YAML, JSON or TOML file read into
the dict `config` of the shared namespace, and `--config KEY=VALUE` overriding its top-level keys.

A file that does not parse is a PipefileError at its own line and column when the parser gives
one, showing that file's line; a file that can't be read is one at the `config` line.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

from rulerun.errors import PipefileError
from rulerun.lang.model import ConfigFile
from rulerun.source import Location

# --config KEY=VALUE crosses to a Python action's worker among the NAME=VALUE overrides, under
# a key no variable can have.
OVERRIDE_PREFIX = "--config "
FORMATS = {".yaml": "YAML", ".yml": "YAML", ".json": "JSON", ".toml": "TOML"}


def config_path(config: ConfigFile) -> str:
    """The file, relative to the Pipefile that names it."""
    return os.path.normpath(os.path.join(os.path.dirname(config.loc.file), config.path))


def load_configs(configs: tuple[ConfigFile, ...], overrides: Mapping[str, Any], text: str | None) -> dict:
    """The `config` dict: every config file's top-level keys in file order (a later file wins),
    then the command line's."""
    merged: dict = {}
    for config in configs:
        merged.update(read_config(config, text))
    merged.update(overrides)
    return merged


def read_config(config: ConfigFile, text: str | None) -> dict:
    path = config_path(config)
    kind = FORMATS.get(os.path.splitext(path)[1].lower())
    if kind is None:
        raise PipefileError(config.loc, f"config '{config.path}': can't tell its format from its extension", text,
                            hint="name a .yaml, .yml, .json or .toml file")
    try:
        with open(path, encoding="utf-8") as handle:
            content = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise PipefileError(config.loc, f"config '{config.path}' can't be read: {why}", text) from None
    value = _parse(path, kind, content)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PipefileError(Location(path, 1, 1), f"a config file holds a mapping of keys to values, "
                                                  f"not a {type(value).__name__}", content)
    return value


def _parse(path: str, kind: str, content: str) -> Any:
    try:
        if kind == "JSON":
            import json

            return json.loads(content)
        if kind == "TOML":
            import tomllib

            return tomllib.loads(content)
        import yaml

        return yaml.safe_load(content)
    except Exception as exc:  # noqa: BLE001 - each parser has its own errors; all are the file's mistake
        line, col, message = _where(exc)
        raise PipefileError(Location(path, line, col), f"{kind} syntax error: {message}",
                            content, hint=f"{path} is read as {kind} (by its extension)") from None


def _where(exc: Exception) -> tuple[int, int, str]:
    """Line and column (1-based, 0 when unknown) and the message, as each parser gives them."""
    mark = getattr(exc, "problem_mark", None)  # YAML
    if mark is not None:
        problem = getattr(exc, "problem", None) or str(exc)
        return mark.line + 1, mark.column + 1, problem
    if hasattr(exc, "lineno") and hasattr(exc, "colno"):  # JSON
        return exc.lineno, exc.colno, exc.msg
    found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))  # TOML
    if found:
        return int(found.group(1)), int(found.group(2)), str(exc)[:found.start()].strip()
    return 1, 0, str(exc)


def read_scalar(text: str) -> Any:
    """--config VALUE read as a YAML scalar: 5 is an int, true a bool, anything else a string."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (str, int, float, bool)) or value is None else text


def split_overrides(overrides: Mapping[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    """NAME=VALUE overrides, and the --config ones carried among them (see OVERRIDE_PREFIX)."""
    plain = {k: v for k, v in overrides.items() if not k.startswith(OVERRIDE_PREFIX)}
    config = {k[len(OVERRIDE_PREFIX):]: read_scalar(v) for k, v in overrides.items() if k.startswith(OVERRIDE_PREFIX)}
    return plain, config
