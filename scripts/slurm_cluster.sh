#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for the launcher=slurm tests (no mock scheduler).
#
#   scripts/slurm_cluster.sh start    install (when missing), configure and start munged, MariaDB,
#                                     slurmdbd, slurmctld and slurmd; wait until sinfo shows the node idle
#   scripts/slurm_cluster.sh stop     stop them again (configuration and accounting data stay)
#   scripts/slurm_cluster.sh status   sinfo / squeue
#
# Needs root and Debian's packages slurm-wlm, slurmdbd, munge and mariadb-server (installed with apt-get
# when missing). slurmdbd + MariaDB give real accounting, so `sacct` (which submitit polls for job
# states, and our tests read) knows every job, cancelled ones included.
# It writes /etc/slurm/slurm.conf and /etc/slurm/slurmdbd.conf, and refuses to touch either when it
# finds one it did not write: never run it on a machine that belongs to a real cluster.
set -euo pipefail

STATE=${MNIST_PAIRS_SLURM_STATE:-/var/lib/mnist_pairs_slurm}
CLUSTER=mnistpairs
MARK="# written by mnist_pairs scripts/slurm_cluster.sh"
NODE=$(hostname -s)
CPUS=${MNIST_PAIRS_SLURM_CPUS:-2}
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)

log() { echo "[slurm_cluster] $*" >&2; }
die() { log "error: $*"; exit 1; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds
    local limit=$1 what=$2; shift 2
    for ((i = 0; i < limit * 4; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    die "$what not ready after ${limit}s (logs: $STATE/*.log)"
}

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
}

write_config() {  # write_config FILE: stdin to FILE, unless FILE exists and is not ours
    local file=$1
    if [[ -e $file ]] && ! grep -qF "$MARK" "$file"; then
        die "$file exists and was not written by this script; not touching a real cluster's configuration"
    fi
    { echo "$MARK"; cat; } >"$file"
}

configure() {
    mkdir -p "$STATE"/{ctld,spool} /etc/slurm
    local mem_mb
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    write_config /etc/slurm/slurm.conf <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
MinJobAge=30
KillWait=5
InactiveLimit=0
NodeName=$NODE CPUs=$CPUS RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    write_config /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
EOF
    chmod 600 /etc/slurm/slurmdbd.conf
}

start_munge() {
    pgrep -x munged >/dev/null && return 0
    [[ -s /etc/munge/munge.key ]] || { /usr/sbin/mungekey --create --force; chown munge:munge /etc/munge/munge.key; }
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    wait_for 20 munged munge -n
}

start_mariadb() {
    if ! mariadb-admin ping >/dev/null 2>&1; then
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
        [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
        setsid nohup mariadbd --user=mysql --datadir=/var/lib/mysql \
            --socket=/run/mysqld/mysqld.sock --skip-networking >"$STATE/mariadb.log" 2>&1 </dev/null &
        wait_for 60 MariaDB mariadb-admin ping
    fi
    mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurm() {
    pgrep -x slurmdbd >/dev/null || /usr/sbin/slurmdbd
    wait_for 60 slurmdbd sacctmgr -n list cluster
    sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
    pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
    wait_for 60 slurmctld scontrol ping
    pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
    node_idle() { [[ $(sinfo -h -n "$NODE" -o %t) == idle ]]; }
    if ! wait_for_quiet 60 node_idle; then
        scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
        wait_for 30 "node $NODE idle" node_idle
    fi
}

wait_for_quiet() {  # like wait_for, but returns 1 instead of dying
    local limit=$1; shift
    for ((i = 0; i < limit * 4; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    return 1
}

stop_all() {
    for daemon in slurmd slurmctld slurmdbd; do
        pkill -x "$daemon" 2>/dev/null || true
    done
    for daemon in slurmd slurmctld slurmdbd; do
        wait_for_quiet 30 bash -c "! pgrep -x $daemon" || pkill -9 -x "$daemon" 2>/dev/null || true
    done
    mariadb-admin shutdown >/dev/null 2>&1 || true
    pkill -x munged 2>/dev/null || true
    log "stopped"
}

case ${1:-} in
    start)
        [[ $(id -u) == 0 ]] || die "needs root (it installs packages and starts system daemons)"
        t0=$SECONDS
        install_packages
        configure
        start_munge
        start_mariadb
        start_slurm
        log "one-node cluster '$CLUSTER' up in $((SECONDS - t0)) s: $(sinfo -h -o '%P %D %t %c CPUs')"
        ;;
    stop) stop_all ;;
    status) sinfo && squeue ;;
    *) die "usage: $0 start|stop|status (got '${1:-}')" ;;
esac
