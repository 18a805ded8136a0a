#!/usr/bin/env bash
# slurm.sh - a one-machine Slurm for rulerun's Slurm tests (Debian 12, as root).
#
# Usage:
#   bash scripts/slurm.sh start > slurm.env && . slurm.env
#       install the Debian packages if needed, write the configuration, start
#       munged, slurmctld and slurmd, run a self-test job in each partition,
#       then print the `export ...` lines on stdout.  Safe over a running one.
#   bash scripts/slurm.sh env      print the export lines only
#   bash scripts/slurm.sh status   daemons, partitions, jobs (exit 3 if one is down)
#   bash scripts/slurm.sh stop     cancel every job, stop slurmd, slurmctld, munged
#
# Logs go to stderr; a failure ends with "slurm.sh: FAILED ..." and exit 1.
#
# The cluster: this host is controller and only node, on loopback; partitions
#   debug  the default
#   test   the same node, for tests that pick a partition (-p test)
# No accounting daemon, but a job completion log (jobcomp/filetxt): `sacct
# --completion` tells how an ended job went with no slurmdbd to run (plain
# `sacct` says accounting is disabled); processes tracked by /proc (no cgroups
# to set up in a container).
#
# Environment knobs: SLURM_WAIT (60: seconds to wait for a daemon or the self-test).
set -Eeuo pipefail

readonly CONF_DIR=/etc/slurm CONF=/etc/slurm/slurm.conf
readonly PACKAGES="slurmctld slurmd slurm-client munge"
readonly CTLD_PIDFILE=/run/slurmctld.pid SLURMD_PIDFILE=/run/slurmd.pid
readonly MUNGE_PIDFILE=/run/munge/munged.pid MUNGE_KEY=/etc/munge/munge.key
WAIT=${SLURM_WAIT:-60}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
HOST=$(hostname)
STARTED=$SECONDS

note() { printf 'slurm.sh %s  %s\n' "$(date +%T)" "$*" >&2; }
fail() { printf 'slurm.sh: FAILED: %s\n' "$*" >&2; exit 1; }
trap 'fail "line $LINENO: \`$BASH_COMMAND\` exited $?"' ERR

# The pid in PIDFILE if that process is alive and really is PROGRAM (a stale
# pid file may name a recycled pid: never signal that).
live_pid() { # PIDFILE PROGRAM
    local pid
    [ -s "$1" ] || return 1
    pid=$(tr -cd '0-9' < "$1")
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
    echo "$pid"
}

retry_until() { # WHAT COMMAND...
    local what=$1 deadline=$((SECONDS + WAIT))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || fail "gave up after ${WAIT}s waiting for $what"
        sleep 0.25
    done
}

# Daemons get a bare environment: every job inherits slurmd's, and it must not
# carry whatever the shell that ran this script had.
bare() { env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 "$@"; }

emit_env() { printf 'export SLURM_CONF=%s\n' "$CONF"; }

# ------------------------------------------------------------------ install

packages_present() {
    local p
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qx 'install ok installed' || return 1
    done
}

install_packages() {
    if packages_present; then note "packages present"; return; fi
    local t=$SECONDS temp_policy= rc=0
    note "installing $PACKAGES"
    # apt must not start the daemons: we start them in order and own their pids
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        temp_policy=1
    fi
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends $PACKAGES; } >&2 || rc=$?
    [ -z "$temp_policy" ] || rm -f /usr/sbin/policy-rc.d
    [ $rc = 0 ] || fail "apt-get install of $PACKAGES failed (exit $rc)"
    note "installed in $((SECONDS - t))s"
}

# ------------------------------------------------------------------ config

# CPUs as slurmd counts them, so the node does not register as "invalid".
write_config() {
    local cpus new
    cpus=$(nproc)
    install -d /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$CONF_DIR"
    new=$(mktemp)
    cat > "$new" <<EOF
# written by rulerun's scripts/slurm.sh
ClusterName=rulerun
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PIDFILE
SlurmdPidFile=$SLURMD_PIDFILE
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# each ended job, one line: what sacct --completion reads (no daemon needed)
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
# a cancelled job's processes get SIGKILL 2 s after SIGTERM (default 30 s)
KillWait=2
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
# OverSubscribe: tiny test jobs share the two cores instead of queueing
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
PartitionName=test Nodes=ALL Default=NO MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
    if cmp -s "$new" "$CONF"; then
        rm -f "$new"
    else
        install -m 644 "$new" "$CONF"
        rm -f "$new"
        note "wrote $CONF"
        CHANGED=1
    fi
}

# ------------------------------------------------------------------ daemons

# munged refuses to run as root ("Logfile is insecure"), and the slurm daemons
# started before it fail to authenticate until a late retry: it goes first.
start_munge() {
    local pid
    install -d -o munge -g munge -m 755 /run/munge
    if [ ! -s "$MUNGE_KEY" ]; then
        note "creating $MUNGE_KEY"
        install -d -o munge -g munge -m 700 /etc/munge
        mungekey --create --keyfile="$MUNGE_KEY" >&2
        chown munge:munge "$MUNGE_KEY"
        chmod 400 "$MUNGE_KEY"
    fi
    if pid=$(live_pid "$MUNGE_PIDFILE" munged); then
        note "munged running (pid $pid)"
    else
        note "starting munged"
        runuser -u munge -- /usr/sbin/munged
    fi
    retry_until munged bash -c 'munge -n | unmunge'
}

start_daemon() { # PIDFILE PROGRAM
    local pid
    if pid=$(live_pid "$1" "$2"); then
        if [ -n "${CHANGED:-}" ] && [ "$2" = slurmctld ]; then
            # plugins (JobCompType) are loaded once, at start: a reconfigure keeps the old
            # ones. Jobs survive the restart (StateSaveLocation), and clients retry meanwhile
            note "configuration changed: restarting $2"
            stop_daemon "$1" "$2"
            bare "/usr/sbin/$2"
        elif [ -n "${CHANGED:-}" ]; then
            note "configuration changed: $2 rereads it"
            scontrol reconfigure >&2 2>&1 || true
        else
            note "$2 running (pid $pid)"
        fi
    else
        note "starting $2"
        bare "/usr/sbin/$2"
    fi
}

node_ready() { sinfo -h -n "$HOST" -o '%t' 2>/dev/null | grep -Eqx 'idle|mix|alloc'; }

stop_daemon() { # PIDFILE PROGRAM
    local pid i
    pid=$(live_pid "$1" "$2") || { note "$2 not running"; return 0; }
    note "stopping $2 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 120; i++)); do
        [ -e "/proc/$pid" ] || return 0
        sleep 0.25
    done
    note "$2 (pid $pid) ignored SIGTERM for 30s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# A node left "down" or "drained" by an earlier crash takes no jobs.
resume_node() {
    case $(sinfo -h -n "$HOST" -o '%t' 2>/dev/null) in
        down*|drain*|drng*|fail*) scontrol update NodeName="$HOST" State=RESUME >&2 2>&1 || true ;;
    esac
}

# ------------------------------------------------------------------ self-test

# Both partitions at once: `sbatch --wait` polls slowly, ~6 s a job.
self_test() {
    local t=$SECONDS p pids=() rc=0 work
    work=$(mktemp -d)
    for p in debug test; do
        (cd /tmp && timeout "$WAIT" sbatch --wait -p "$p" -J slurm_sh_selftest \
            -o /dev/null -e /dev/null --wrap true >/dev/null 2>"$work/$p") &
        pids+=($!)
    done
    for p in 0 1; do wait "${pids[$p]}" || rc=1; done
    [ $rc = 0 ] || { p=$(cat "$work"/*); rm -rf "$work"; fail "self-test job did not run: $p"; }
    rm -rf "$work"
    note "self-test jobs ran in debug and test ($((SECONDS - t))s)"
}

# ------------------------------------------------------------------ commands

cmd_start() {
    [ "$(id -u)" = 0 ] || fail "must run as root (it installs packages and starts daemons)"
    install_packages
    write_config
    start_munge
    start_daemon "$CTLD_PIDFILE" slurmctld
    retry_until "slurmctld to answer" scontrol ping
    start_daemon "$SLURMD_PIDFILE" slurmd
    resume_node
    retry_until "node $HOST to be ready" node_ready
    self_test
    note "Slurm ready on $HOST in $((SECONDS - STARTED))s"
    emit_env
}

cmd_stop() {
    local i
    if live_pid "$CTLD_PIDFILE" slurmctld >/dev/null && [ -n "$(squeue -h 2>/dev/null)" ]; then
        # jobs first, so none outlives the slurmd that watches it
        note "cancelling all jobs"
        squeue -h -o %i | xargs -r scancel >&2 2>&1 || true
        for ((i = 0; i < 40; i++)); do
            [ -z "$(squeue -h 2>/dev/null)" ] && break
            sleep 0.25
        done
    fi
    stop_daemon "$SLURMD_PIDFILE" slurmd
    stop_daemon "$CTLD_PIDFILE" slurmctld
    stop_daemon "$MUNGE_PIDFILE" munged
}

cmd_status() {
    local rc=0 pid d
    for d in "$MUNGE_PIDFILE munged" "$CTLD_PIDFILE slurmctld" "$SLURMD_PIDFILE slurmd"; do
        set -- $d
        if pid=$(live_pid "$1" "$2"); then echo "$2: running (pid $pid)"; else echo "$2: not running"; rc=3; fi
    done
    if [ $rc = 0 ]; then
        sinfo || true
        echo "jobs:"; squeue || true
    fi
    exit $rc   # not `return`: a failing function would fire the ERR trap
}

case ${1:-start} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) emit_env ;;
    -h|--help|help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
