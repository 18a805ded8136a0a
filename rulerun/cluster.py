"""The cluster API for Python actions and scripts, in the spirit of Ruffus's drmaa_wrapper:
`run_job(cmd_str, ...)` runs a shell command on the cluster (or here, or only touches its
outputs) and returns its (stdout, stderr); a failure raises ClusterJobError. The machinery
lives in rulerun.run.cluster; this module is the stable name users import."""

from rulerun.run.cluster.python_api import ClusterJobError, run_job
from rulerun.run.cluster.session import ClusterSession, current_session

__all__ = ["ClusterJobError", "ClusterSession", "current_session", "run_job"]
