"""What the command line asked for, as one value passed down the stages (never through globals)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Options:
    targets: list[str] = field(default_factory=list)
    overrides: dict[str, str] = field(default_factory=dict)
    limit_sizes: dict[str, int] = field(default_factory=dict)  # --limit NAME=N
    config_overrides: dict[str, str] = field(default_factory=dict)  # --config KEY=VALUE
    keep_temp: bool = False

    @property
    def namespace_overrides(self) -> dict[str, str]:
        """NAME=VALUE and --config KEY=VALUE, as build_namespace and the workers take them."""
        from rulerun.lang.config import OVERRIDE_PREFIX

        return {**self.overrides, **{OVERRIDE_PREFIX + k: v for k, v in self.config_overrides.items()}}
    file: str = "Pipefile"
    directory: str | None = None
    jobs: int = 0
    dry_run: bool = False
    keep_going: bool = False
    force: bool = False
    touch: bool = False
    local: bool = False
    cluster: bool = False
    scheduler: str | None = None      # drmaa | slurm; None: RULERUN_SCHEDULER or found
    poll_seconds: float = 2.0         # how often the cluster is asked about jobs
    pending_warn: float = 300.0       # say so once when a cluster job is queued this long
    watch: bool = False
    graph: bool = False
    list_rules: bool = False
    clean: bool = False
    report: str | None = None  # --report FILE.html
    completion: str | None = None  # --completion bash|zsh
    verbosity: int = 0
    # Where the program was started and with which arguments, when it may re-execute itself
    # (started as `rulerun`, not called by a program): see app.restart_for_cluster.
    restart_argv: list[str] | None = None
    start_dir: str = ""
