"""The shell that runs shell actions: `bash -euo pipefail`, or the command line the Pipefile's
top-level variable SHELL names (`SHELL = "/bin/sh -e"`).

bash rather than /bin/sh: POSIX sh (dash) has no pipefail, so in `false | cat > out` the
failing command went unnoticed and the job succeeded with a bad file. `-u` makes a misspelt
variable an error instead of an empty word, as Snakemake does. A script is run as
`SHELL... -c SCRIPT` here, and as `SHELL... SCRIPT-FILE` on a cluster.
"""

from __future__ import annotations

import os
import shlex
import shutil
from typing import Any, Mapping

from rulerun.errors import UsageError

VARIABLE = "SHELL"
DEFAULT = ("bash", "-euo", "pipefail")
_EXAMPLE = 'SHELL = "/bin/sh -e"'


def from_namespace(namespace: Mapping[str, Any], required: bool = True) -> tuple[str, ...]:
    """The shell for a Pipefile whose top-level names are `namespace`, its program resolved to
    an absolute path once (not looked up again for every job). UsageError when SHELL is not a
    usable command line, or names no program on this machine; the same for a missing bash
    unless not `required` (a Pipefile without shell actions keeps the default as it is)."""
    value = namespace.get(VARIABLE)
    words = DEFAULT if value is None else _words(value)
    program = shutil.which(words[0])
    if program is not None:
        return (os.path.abspath(program), *words[1:])
    if value is not None:
        raise UsageError(f"the shell named by {VARIABLE} = {value!r} was not found: no program '{words[0]}'",
                         hint=f"name a shell this machine has, e.g. {_EXAMPLE}")
    if not required:
        return DEFAULT
    raise UsageError("bash was not found: shell actions run with 'bash -euo pipefail'",
                     hint=f"install bash, or name another shell in the Pipefile: {_EXAMPLE}")


def _words(value: Any) -> tuple[str, ...]:
    if not isinstance(value, str):
        raise UsageError(f"{VARIABLE} must be a string, the shell's command line, not {type(value).__name__}",
                         hint=f"for example {_EXAMPLE}")
    try:
        words = tuple(shlex.split(value))
    except ValueError as exc:
        raise UsageError(f"{VARIABLE} = {value!r} is not a command line: {exc}",
                         hint=f"for example {_EXAMPLE}") from None
    if not words:
        raise UsageError(f"{VARIABLE} is empty: it must name the shell that runs shell actions",
                         hint=f"for example {_EXAMPLE}, or remove it to use bash -euo pipefail")
    return words


def resolved(shell: tuple[str, ...]) -> tuple[str, ...]:
    """`shell` with its program as an absolute path when it can be found (a cluster's execution
    host is given a path, not a name to look up in a PATH of its own); else as it is."""
    program = shutil.which(shell[0])
    return (os.path.abspath(program), *shell[1:]) if program else tuple(shell)


def script_argv(shell: tuple[str, ...], script: str) -> list[str]:
    """The process that runs `script` (its text) with `shell`."""
    return [*shell, "-c", script]


def file_argv(shell: tuple[str, ...], path: str) -> list[str]:
    """The process that runs the script in the file `path` with `shell` (cluster jobs)."""
    return [*shell, path]
