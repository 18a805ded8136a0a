#!/usr/bin/env bash
# sge.sh - a one-machine Son of Grid Engine cell for rulerun's cluster tests.
#
# Usage (as root, Debian 12):
#   bash scripts/sge.sh start > sge.env && . sge.env
#       install the packages if needed, configure the cell, start sge_qmaster
#       and sge_execd, run a self-test job in each queue, then print the
#       `export ...` lines (SGE_ROOT, SGE_CELL, DRMAA_LIBRARY_PATH,
#       GLIBC_TUNABLES) on stdout.  Safe to re-run over a running cell.
#   bash scripts/sge.sh env      print the export lines only
#   bash scripts/sge.sh status   daemons, queues, jobs (exit 3 if a daemon is down)
#   bash scripts/sge.sh stop     delete every job, stop execd, then qmaster
#
# Logs go to stderr; any failure ends with "sge.sh: FAILED ..." and exit 1.
# Do not `eval "$(bash scripts/sge.sh start)"` in CI: eval hides the failure.
#
# The cell: this host is qmaster, admin, submit and exec host; queues
#   all.q  SGE_SLOTS slots (8), preferred (seq_no 0)
#   test.q 2 slots, seq_no 100 - jobs land here when they ask for it (-q test.q)
#          or when all.q is full; tests use it to check queue selection
# the scheduler runs every second, accounting is flushed at once (qacct works
# right after a job ends), and root may submit (min_uid 0).
#
# Environment knobs: SGE_SLOTS (8), SGE_WAIT (60: seconds to wait for a daemon
# or the self-test).
set -Eeuo pipefail

readonly ROOT_DIR=/var/lib/gridengine CELL=default
readonly LIBDRMAA=/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0
readonly SPOOL=/var/spool/gridengine
readonly MASTER_PIDFILE=$SPOOL/qmaster/qmaster.pid   # fixed by sge_qmaster
readonly EXECD_PIDFILE=/var/run/gridengine/execd.pid # set via SGE_EXECD_PIDFILE
readonly PACKAGES="gridengine-master gridengine-exec gridengine-client gridengine-drmaa1.0"
readonly TLS_TUNABLE=glibc.rtld.optional_static_tls=8192
SLOTS=${SGE_SLOTS:-8}
WAIT=${SGE_WAIT:-60}
export SGE_ROOT=$ROOT_DIR SGE_CELL=$CELL
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
COMMON=$SGE_ROOT/$SGE_CELL/common
HOST=$(hostname)
STARTED=$SECONDS
BOUNCE_EXECD=   # set when sge_execd must be restarted to see new settings
WORK=

note() { printf 'sge.sh %s  %s\n' "$(date +%T)" "$*" >&2; }
fail() { printf 'sge.sh: FAILED: %s\n' "$*" >&2; exit 1; }
trap 'fail "line $LINENO: \`$BASH_COMMAND\` exited $?"' ERR
trap '[ -z "$WORK" ] || rm -rf "$WORK"' EXIT

# ------------------------------------------------------------------ helpers

# The pid in PIDFILE if that process is alive and really is PROGRAM (a stale
# pid file may name a recycled pid: never signal that).
live_pid() { # PIDFILE PROGRAM
    local pid exe
    [ -s "$1" ] || return 1
    pid=$(tr -cd '0-9' < "$1")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    exe=$(tr '\0' '\n' < "/proc/$pid/cmdline" | head -n1) || return 1
    [ "${exe##*/}" = "$2" ] || return 1
    echo "$pid"
}

# Run a command every 0.5 s until it succeeds, at most $WAIT seconds.
retry_until() { # WHAT COMMAND...
    local what=$1 deadline=$((SECONDS + WAIT))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || fail "gave up after ${WAIT}s waiting for $what"
        sleep 0.5
    done
}

# Daemons get a bare environment: every job inherits sge_execd's environment,
# and it must not carry whatever the shell that ran this script had.
bare() { env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 \
    SGE_ROOT="$SGE_ROOT" SGE_CELL="$SGE_CELL" "$@"; }

# `qconf -s...` folds long values onto '\'-continued lines; unfold them so a
# sed on one attribute sees the whole value.
unfold() { sed -e ':x' -e '/\\$/{N;s/\\\n[[:space:]]*/ /;bx' -e '}'; }

emit_env() {
    local tun=${GLIBC_TUNABLES:-}
    # libdrmaa links libjemalloc, whose static TLS does not fit the surplus
    # glibc keeps for dlopen(): `import drmaa` then fails with "cannot
    # allocate memory in static TLS block" unless this is set at process start.
    case $tun in
        *optional_static_tls*) ;;
        '') tun=$TLS_TUNABLE ;;
        *) tun=$tun:$TLS_TUNABLE ;;
    esac
    printf 'export %s=%s\n' SGE_ROOT "$SGE_ROOT" SGE_CELL "$SGE_CELL" \
        DRMAA_LIBRARY_PATH "$LIBDRMAA" GLIBC_TUNABLES "$tun"
}

# ------------------------------------------------------------------ host name

# Clients send gethostname(); the qmaster maps each peer address back to a
# name and refuses the client if the two differ.  Loopback connections come
# from 127.0.0.1, whose name is usually "localhost", so with /etc/hosts
# mapping the host to 127.x every client would be refused.  SGE's own
# host_aliases file declares those names to be this host (no /etc/hosts edit).
loopback_aliases() {
    local addr names
    addr=$(getent ahostsv4 "$HOST" | awk '{print $1; exit}') || true
    if [ -z "$addr" ]; then
        note "$HOST does not resolve; adding '127.0.1.1 $HOST' to /etc/hosts"
        echo "127.0.1.1 $HOST" >> /etc/hosts
        addr=127.0.1.1
    fi
    names=$(getent hosts "$addr" | awk '{print $2}')
    case $addr in 127.*) names="$names $(getent hosts 127.0.0.1 | awk '{print $2}')" ;; esac
    printf '%s\n' $names | awk -v h="$HOST" 'NF && $0 != h && !seen[$0]++' | xargs
}

# ------------------------------------------------------------------ install

packages_present() {
    local p
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qx 'install ok installed' || return 1
    done
}

install_packages() {
    if packages_present; then note "packages present"; return; fi
    local t=$SECONDS temp_policy=
    note "installing $PACKAGES"
    # answer the questions the postinst would ask, so it builds the cell
    debconf-set-selections <<EOF
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginecell string $SGE_CELL
gridengine-common shared/gridenginemaster string $HOST
EOF
    # apt must not start the daemons: we start them, clean, and own their pids
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        temp_policy=1
    fi
    local rc=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends $PACKAGES; } >&2 || rc=$?
    [ -z "$temp_policy" ] || rm -f /usr/sbin/policy-rc.d
    [ $rc = 0 ] || fail "apt-get install of $PACKAGES failed (exit $rc)"
    note "installed in $((SECONDS - t))s"
}

# The postinst builds the cell only when debconf said so; build whatever part
# is missing (an install made without our preseed, a half-removed cell).
ensure_cell() {
    [ -r "$LIBDRMAA" ] || fail "$LIBDRMAA missing: is gridengine-drmaa1.0 installed?"
    install -d -o sgeadmin -g sgeadmin "$SGE_ROOT/$SGE_CELL" "$COMMON" \
        "$SPOOL/execd" /var/run/gridengine
    [ -e "$COMMON/bootstrap" ] || install -m 644 -o sgeadmin -g sgeadmin \
        /usr/share/gridengine/default-bootstrap "$COMMON/bootstrap"
    if [ ! -e "$SPOOL/spooldb/sge" ]; then
        note "creating the qmaster spool"
        install -d -o sgeadmin -g sgeadmin "$SPOOL/qmaster" "$SPOOL/qmaster/job_scripts" "$SPOOL/spooldb"
        su -s /bin/sh sgeadmin -c "/usr/share/gridengine/scripts/init_cluster \
            $SGE_ROOT $SGE_CELL $SPOOL/spooldb sgeadmin" >&2
    fi
    local aliases
    aliases=$(loopback_aliases)
    if [ -n "$aliases" ]; then
        echo "$HOST $aliases" > "$COMMON/host_aliases"
        note "host_aliases: $HOST = $aliases"
    else
        rm -f "$COMMON/host_aliases"
    fi
    echo "$HOST" > "$COMMON/act_qmaster"
    chown sgeadmin:sgeadmin "$COMMON/act_qmaster"
    chmod 644 "$COMMON/act_qmaster"
}

# ------------------------------------------------------------------ daemons

start_qmaster() {
    local pid
    if pid=$(live_pid "$MASTER_PIDFILE" sge_qmaster); then
        note "sge_qmaster running (pid $pid)"
    else
        note "starting sge_qmaster"
        bare /usr/sbin/sge_qmaster
        retry_until "sge_qmaster to answer qconf" qconf -sh
        # jobs a killed earlier qmaster left spooled would never end cleanly
        if [ -n "$(qstat -u '*' 2>/dev/null)" ]; then
            note "deleting jobs left by an earlier qmaster"
            qdel -f -u '*' >&2 2>&1 || true
        fi
        # an execd that outlived its qmaster loses job-end reports
        BOUNCE_EXECD=1
    fi
    retry_until "sge_qmaster to answer qconf" qconf -sh
}

stop_daemon() { # PIDFILE PROGRAM
    local pid i
    pid=$(live_pid "$1" "$2") || { note "$2 not running"; return 0; }
    note "stopping $2 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 120; i++)); do   # the qmaster takes 6-9 s to go
        [ -e "/proc/$pid" ] || return 0
        sleep 0.25
    done
    note "$2 (pid $pid) ignored SIGTERM for 30s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

queue_ready() { # QUEUE: the instance on this host is known and has no state
    qstat -f -q "$1@$HOST" 2>/dev/null | awk -v qi="$1@$HOST" '$1 == qi && NF == 5 {ok = 1} END {exit !ok}'
}

start_execd() {
    local pid q
    if [ -n "$BOUNCE_EXECD" ] && live_pid "$EXECD_PIDFILE" sge_execd >/dev/null; then
        note "qmaster restarted or global config changed: restarting sge_execd"
        stop_daemon "$EXECD_PIDFILE" sge_execd
    fi
    if pid=$(live_pid "$EXECD_PIDFILE" sge_execd); then
        note "sge_execd running (pid $pid)"
    else
        note "starting sge_execd"
        bare SGE_EXECD_PIDFILE="$EXECD_PIDFILE" /usr/sbin/sge_execd
    fi
    for q in all.q test.q; do
        # an earlier failure may have left the queue in error (E) or disabled
        qmod -cq "$q@$HOST" >/dev/null 2>&1 || true
        qmod -e "$q@$HOST" >/dev/null 2>&1 || true
        retry_until "$q@$HOST to come up" queue_ready "$q"
    done
}

# ------------------------------------------------------------------ config

# qconf -A... adds an object, -M... replaces it: pick by whether it exists.
put() { # SHOW-FLAG ADD-FLAG MODIFY-FLAG NAME FILE
    if qconf "$1" "$4" >/dev/null 2>&1; then qconf "$3" "$5" >&2; else qconf "$2" "$5" >&2; fi
}

write_queue() { # NAME SLOTS SEQ_NO FILE
    cat > "$4" <<EOF
qname $1
hostlist @allhosts
seq_no $3
load_thresholds NONE
suspend_thresholds NONE
nsuspend 1
suspend_interval 00:05:00
priority 0
min_cpu_interval 00:05:00
processors UNDEFINED
qtype BATCH INTERACTIVE
ckpt_list NONE
pe_list smp
rerun FALSE
slots $2
tmpdir /tmp
shell /bin/sh
prolog NONE
epilog NONE
shell_start_mode unix_behavior
starter_method NONE
suspend_method NONE
resume_method NONE
terminate_method NONE
notify 00:00:60
owner_list NONE
user_lists NONE
xuser_lists NONE
subordinate_list NONE
complex_values NONE
projects NONE
xprojects NONE
calendar NONE
initial_state default
EOF
    local lim
    for lim in s_rt h_rt s_cpu h_cpu s_fsize h_fsize s_data h_data s_stack h_stack \
        s_core h_core s_rss h_rss s_vmem h_vmem; do
        echo "$lim INFINITY" >> "$4"
    done
}

configure_hosts() {
    qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST" >&2
    qconf -sh 2>/dev/null | grep -qx "$HOST" || qconf -ah "$HOST" >&2
    if ! qconf -se "$HOST" >/dev/null 2>&1; then
        printf '%s\n' "hostname $HOST" "load_scaling NONE" "complex_values NONE" \
            "user_lists NONE" "xuser_lists NONE" "projects NONE" "xprojects NONE" \
            "usage_scaling NONE" "report_variables NONE" > "$WORK/exechost"
        qconf -Ae "$WORK/exechost" >&2
    fi
    printf 'group_name @allhosts\nhostlist %s\n' "$HOST" > "$WORK/allhosts"
    put -shgrp -Ahgrp -Mhgrp @allhosts "$WORK/allhosts"
}

configure_queues() {
    # -pe smp N: N slots on one host
    printf '%s\n' "pe_name smp" "slots 999" "user_lists NONE" "xuser_lists NONE" \
        "start_proc_args NONE" "stop_proc_args NONE" 'allocation_rule $pe_slots' \
        "control_slaves FALSE" "job_is_first_task TRUE" "urgency_slots min" \
        "accounting_summary FALSE" "qsort_args NONE" > "$WORK/smp"
    put -sp -Ap -Mp smp "$WORK/smp"
    # load_thresholds NONE: a loaded 2-core CI box must not put a queue in
    # alarm state, which silently stops scheduling
    write_queue all.q "$SLOTS" 0 "$WORK/all.q"
    put -sq -Aq -Mq all.q "$WORK/all.q"
    write_queue test.q 2 100 "$WORK/test.q"
    put -sq -Aq -Mq test.q "$WORK/test.q"
    # schedule every second and right after each submit/finish (the default
    # 15 s interval makes every job take ~15 s); fill queues by seq_no so
    # jobs that name no queue go to all.q first
    qconf -ssconf | unfold | sed \
        -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
        -e 's/^flush_submit_sec .*/flush_submit_sec 1/' \
        -e 's/^flush_finish_sec .*/flush_finish_sec 1/' \
        -e 's/^queue_sort_method .*/queue_sort_method seqno/' > "$WORK/sconf"
    qconf -Msconf "$WORK/sconf" >&2
}

# Global configuration: root may submit (CI runs as root), accounting is
# written at once.  Only touched when it differs, because a change reaches
# sge_execd late: a job started in between runs under the old min_uid, fails
# before it starts and puts the queue in error state.  So a change also
# restarts the execd.
configure_global() {
    mkdir -p "$WORK/conf"
    qconf -sconf global | unfold > "$WORK/conf/current"
    # -Mconf takes the configuration's name from the file's basename
    sed -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' \
        -e 's/^reporting_params .*/reporting_params accounting=true reporting=false flush_time=00:00:01 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00/' \
        "$WORK/conf/current" > "$WORK/conf/global"
    if ! cmp -s <(tr -s ' \t' ' ' < "$WORK/conf/current") <(tr -s ' \t' ' ' < "$WORK/conf/global"); then
        qconf -Mconf "$WORK/conf/global" >&2
        BOUNCE_EXECD=1
        note "global configuration updated"
    fi
}

# ------------------------------------------------------------------ self-test

self_test() {
    local t=$SECONDS q pids=() rc=0
    for q in all.q test.q; do
        (cd /tmp && timeout "$WAIT" qsub -b y -sync y -q "$q" -j y -o /dev/null \
            -N "sge_sh_selftest" /bin/true >/dev/null 2>"$WORK/selftest.$q") &
        pids+=($!)
    done
    for q in 0 1; do wait "${pids[$q]}" || rc=1; done
    [ $rc = 0 ] || fail "self-test job did not run: $(cat "$WORK"/selftest.* 2>/dev/null)"
    note "self-test jobs ran in all.q and test.q ($((SECONDS - t))s)"
}

# ------------------------------------------------------------------ commands

cmd_start() {
    [ "$(id -u)" = 0 ] || fail "must run as root (it installs packages and starts daemons)"
    WORK=$(mktemp -d)
    install_packages
    ensure_cell
    start_qmaster
    configure_hosts
    configure_queues
    configure_global
    start_execd
    self_test
    note "Grid Engine ready on $HOST in $((SECONDS - STARTED))s"
    emit_env
}

cmd_stop() {
    local i
    if live_pid "$MASTER_PIDFILE" sge_qmaster >/dev/null && [ -n "$(qstat -u '*' 2>/dev/null)" ]; then
        # jobs first, so no job outlives the execd that watches it
        note "deleting all jobs"
        qdel -f -u '*' >&2 2>&1 || true
        for ((i = 0; i < 60; i++)); do
            [ -z "$(qstat -u '*' 2>/dev/null)" ] && break
            sleep 0.25
        done
    fi
    stop_daemon "$EXECD_PIDFILE" sge_execd
    stop_daemon "$MASTER_PIDFILE" sge_qmaster
}

cmd_status() {
    local rc=0 pid d
    for d in "$MASTER_PIDFILE sge_qmaster" "$EXECD_PIDFILE sge_execd"; do
        set -- $d
        if pid=$(live_pid "$1" "$2"); then echo "$2: running (pid $pid)"; else echo "$2: not running"; rc=3; fi
    done
    if [ $rc = 0 ]; then
        qstat -f || true
        echo "jobs:"; qstat -u '*' || true
    fi
    exit $rc   # not `return`: a failing function would fire the ERR trap
}

case ${1:-start} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) emit_env ;;
    -h|--help|help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
