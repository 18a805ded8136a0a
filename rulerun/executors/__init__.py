"""Executors: the ways a job's action gets carried out (here, on a cluster, touched, not at all)."""
