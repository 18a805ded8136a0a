"""What the command line asked for, as one value passed down the stages (never through globals)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Set in the environment of a run restarted for libdrmaa (see cluster.reexec_with_tls_fix).
RESTART_MARKER = "RULERUN_TLS_REEXEC"


@dataclass
class Options:
    targets: list[str] = field(default_factory=list)
    overrides: dict[str, str] = field(default_factory=dict)
    file: str = "Pipefile"
    directory: str | None = None
    jobs: int = 0
    dry_run: bool = False
    keep_going: bool = False
    force: bool = False
    touch: bool = False
    local: bool = False
    cluster: bool = False
    watch: bool = False
    graph: bool = False
    list_rules: bool = False
    verbosity: int = 0
    restartable: bool = False   # main() may re-exec the program (it was started as rulerun)


class RestartForDrmaa(BaseException):
    """Raised (before any job starts) when the run must start again with GLIBC_TUNABLES set so
    that libdrmaa can be loaded; main() re-executes the program.  A BaseException, so that no
    `except Exception` on the way swallows it."""
