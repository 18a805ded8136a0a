#!/usr/bin/env bash
# Run rulerun's whole test suite. As root (CI, a fresh VM) it first starts a real single-node
# Grid Engine with scripts/sge.sh and a real single-node Slurm with scripts/slurm.sh, so the
# cluster tests submit real jobs (RULERUN_NO_SGE=1 / RULERUN_NO_SLURM=1 leave either out);
# elsewhere the cluster tests are skipped and say why. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# start_cell NAME SCRIPT FLAG: as root, unless $RULERUN_NO_<FLAG> is 1, start a cluster cell with
# SCRIPT, take the variables it prints and export RULERUN_<FLAG>=1 for the tests; under CI a cell
# that does not start fails the run, elsewhere its tests are skipped and say so.
start_cell() {
    local name=$1 script=$2 flag=$3 skip="RULERUN_NO_$3" env_file
    [ "$(id -u)" = 0 ] && [ "${!skip:-0}" != 1 ] || return 0
    env_file=$(mktemp)
    if bash "$script" start > "$env_file"; then
        # shellcheck disable=SC1090
        . "$env_file"
        export "RULERUN_$flag=1"
    elif [ "${CI:-}" = true ]; then
        echo "scripts/test.sh: $name did not start; CI needs it for its tests" >&2
        exit 1
    else
        echo "scripts/test.sh: $name did not start; its tests will be skipped" >&2
    fi
    rm -f "$env_file"
}

start_cell "the Grid Engine" scripts/sge.sh SGE
start_cell Slurm scripts/slurm.sh SLURM

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
