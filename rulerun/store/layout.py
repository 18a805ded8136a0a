"""Every path rulerun keeps in a project, in one place: `.rulerun/` beside the Pipefile's run.

Read by the no-op answer before anything heavy is imported, so this module imports nothing.
"""

import os

STATE_DIR = ".rulerun"
STATE_DB_NAME = "state.db"                           # signatures and incomplete marks (store/state.py)
STATE_DB = os.path.join(STATE_DIR, STATE_DB_NAME)
LOCK_NAME = "lock"                                   # the run lock (store/lock.py)
LOCK = os.path.join(STATE_DIR, LOCK_NAME)
LOG_DIR = os.path.join(STATE_DIR, "logs")            # what jobs printed (run/spec.py names them)
QUARANTINE = os.path.join(STATE_DIR, "failed")       # what failed jobs left behind
CLUSTER_DIR = os.path.join(STATE_DIR, "cluster")     # cluster job scripts and their output
CLUSTER_KEPT = os.path.join(CLUSTER_DIR, "kept")     # those of run_job(retain_job_scripts=True): never pruned
RECORD = os.path.join(STATE_DIR, "uptodate")         # the no-op record (plan/record.py)
RECORD_GRAPH = os.path.join(STATE_DIR, "uptodate.graph")  # the graph beside it
