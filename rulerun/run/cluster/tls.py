"""libdrmaa and glibc: Grid Engine's libdrmaa needs more static TLS than glibc gives a process
unless GLIBC_TUNABLES says so when the process starts, so a run that will load it starts itself
again with the tunable set, once. Small on purpose: read before anything of the cluster loads."""

from __future__ import annotations

import os
import sys
from typing import Mapping

TLS_TUNABLE = "glibc.rtld.optional_static_tls=8192"
# Set in the environment of a run restarted for libdrmaa: never restart twice.
REEXEC_MARKER = "RULERUN_TLS_REEXEC"


def tls_restart_due(env: Mapping[str, str] | None = None) -> bool:
    """True if this process should start again with GLIBC_TUNABLES set before it loads DRMAA:
    DRMAA_LIBRARY_PATH is set, the tunable is missing, and it has not restarted once already."""
    env = os.environ if env is None else env
    return bool(env.get("DRMAA_LIBRARY_PATH") and not env.get(REEXEC_MARKER)
                and "optional_static_tls" not in env.get("GLIBC_TUNABLES", ""))


def reexec_with_tls_fix(argv: list[str] | None = None) -> None:
    """Restart this process with GLIBC_TUNABLES fixed if DRMAA will be loaded and it lacks it.

    `argv` is the program's sys.argv-style vector (default sys.argv); the interpreter part
    (`python -m rulerun`, or the console script) is taken from sys.orig_argv.  Does nothing
    (returns) when already set, or already restarted once; otherwise never returns.
    """
    env = os.environ
    if not tls_restart_due(env):
        return
    argv = list(sys.argv if argv is None else argv)
    prefix = sys.orig_argv[:max(1, len(sys.orig_argv) - len(sys.argv) + 1)]
    new_env = dict(env)
    tunables = env.get("GLIBC_TUNABLES")
    new_env["GLIBC_TUNABLES"] = f"{tunables}:{TLS_TUNABLE}" if tunables else TLS_TUNABLE
    new_env[REEXEC_MARKER] = "1"   # never loop, even if the tunable turns out not to help
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, prefix + argv[1:], new_env)
