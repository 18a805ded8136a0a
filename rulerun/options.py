"""What the command line asked for, as one value passed down the stages (never through globals)."""

from __future__ import annotations


class Options:
    """Every setting, by keyword: Options(targets=["all"], jobs=2). A plain class, not a
    dataclass: importing dataclasses costs every run a few milliseconds, the no-op's too."""

    targets: list[str]
    overrides: dict[str, str]
    limit_sizes: dict[str, int]  # --limit NAME=N
    config_overrides: dict[str, str]  # --config KEY=VALUE
    keep_temp: bool = False
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

    def __init__(self, **settings) -> None:
        self.targets, self.overrides, self.limit_sizes, self.config_overrides = [], {}, {}, {}
        for name, value in settings.items():
            if not hasattr(self, name):
                raise TypeError(f"Options has no setting {name!r}")
            setattr(self, name, value)

    def but(self, **changes) -> "Options":
        """A copy with `changes` (as dataclasses.replace did)."""
        return Options(**{**vars(self), **changes})

    def __repr__(self) -> str:
        return f"Options({vars(self)!r})"

    @property
    def namespace_overrides(self) -> dict[str, str]:
        """NAME=VALUE and --config KEY=VALUE, as build_namespace and the workers take them."""
        from rulerun.lang.config import OVERRIDE_PREFIX

        return {**self.overrides, **{OVERRIDE_PREFIX + k: v for k, v in self.config_overrides.items()}}
