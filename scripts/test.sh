#!/usr/bin/env bash
# Run rulerun's whole test suite. As root (CI, a fresh VM) it first starts a real single-node
# Grid Engine with scripts/sge.sh and a real single-node Slurm with scripts/slurm.sh, so the
# cluster tests submit real jobs (RULERUN_NO_SGE=1 / RULERUN_NO_SLURM=1 leave either out);
# elsewhere the cluster tests are skipped and say why. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && [ "${RULERUN_NO_SGE:-0}" != 1 ]; then
    env_file=$(mktemp)
    if bash scripts/sge.sh start > "$env_file"; then
        # shellcheck disable=SC1090
        . "$env_file"
        export RULERUN_SGE=1
    elif [ "${CI:-}" = true ]; then
        echo "scripts/test.sh: the Grid Engine did not start; CI needs it for the cluster tests" >&2
        exit 1
    else
        echo "scripts/test.sh: the Grid Engine did not start; cluster tests will be skipped" >&2
    fi
    rm -f "$env_file"
fi

if [ "$(id -u)" = 0 ] && [ "${RULERUN_NO_SLURM:-0}" != 1 ]; then
    env_file=$(mktemp)
    if bash scripts/slurm.sh start > "$env_file"; then
        # shellcheck disable=SC1090
        . "$env_file"
        export RULERUN_SLURM=1
    elif [ "${CI:-}" = true ]; then
        echo "scripts/test.sh: Slurm did not start; CI needs it for the Slurm tests" >&2
        exit 1
    else
        echo "scripts/test.sh: Slurm did not start; Slurm tests will be skipped" >&2
    fi
    rm -f "$env_file"
fi

if [ "$#" -gt 0 ]; then   # particular tests: as asked, in one process
    exec python -m pytest -q -p no:cacheprovider "$@"
fi
# Everything: most tests in parallel (they wait on processes more than they compute), then the
# tests with deadlines (tests/conftest.py marks them serial) one at a time within each of four
# lines side by side (each cluster's, the kill tests, the rest): they wait far more than they compute.
status=0
python -m pytest -q -p no:cacheprovider -n "${RULERUN_TEST_WORKERS:-4}" -m "not serial" || status=$?
python -m pytest -q -p no:cacheprovider -n 4 --dist loadgroup -m serial || status=$?
exit "$status"
