#!/usr/bin/env bash
# A real single-node Slurm cluster on loopback, with accounting, for llem's Slurm tests and CI.
#
#   scripts/slurm-loopback.sh start    # install if needed, configure, start; prints how long it took
#   scripts/slurm-loopback.sh status   # exit 0 only when jobs can run and sacct answers
#   scripts/slurm-loopback.sh stop
#
# Runs as root on Debian 12 without systemd (containers, CI VMs): every daemon is started by
# hand. Running `start` twice is harmless: installed packages, a running daemon, an existing
# database or a registered cluster are all kept as they are.
#
# Accounting (slurmdbd + MariaDB) is not optional: submitit asks `sacct` for job states, and
# without it a job killed by scancel or its time limit leaves the Hydra launcher waiting forever.
#
# Environment: LLEM_SLURM_CLUSTER (default llemtest), LLEM_SLURM_PARTITION (default debug),
# LLEM_SLURM_DBPASS (default: a fixed test password; this database listens on loopback only).
set -euo pipefail

CLUSTER=${LLEM_SLURM_CLUSTER:-llemtest}
PARTITION=${LLEM_SLURM_PARTITION:-debug}
DBPASS=${LLEM_SLURM_DBPASS:-llem-loopback}
# slurmd finds its own node entry by the short host name, so NodeName must be exactly that.
NODE=$(hostname -s)
CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
PACKAGES="slurm-wlm slurmdbd munge mariadb-server"

log() { echo "slurm-loopback: $*"; }
die() { echo "slurm-loopback: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# The pid file may vanish between the test and the read while a daemon exits.
pid_alive() { local pid; pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "$what did not come up within ${limit}s (logs: $LOG_DIR)"
    sleep 0.3
  done
}

need_root() { [ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"; }

install_packages() {
  local missing=0 b
  for b in slurmctld slurmd sbatch sacct sacctmgr slurmdbd munged mariadbd; do
    command -v "$b" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin command -v "$b" >/dev/null 2>&1 || missing=1
  done
  if [ "$missing" = 0 ]; then
    log "packages already installed"
    return
  fi
  log "installing $PACKAGES (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian images often forbid services from starting at install time (policy-rc.d);
  # that is fine, the daemons are started below.
  apt-get install -y -qq --no-install-recommends $PACKAGES >/var/log/slurm-loopback-apt.log 2>&1 \
    || { tail -20 /var/log/slurm-loopback-apt.log >&2; die "apt-get install failed"; }
}

write_configs() {
  local ncpu mem_mb
  ncpu=$(nproc)
  # RealMemory must be declared or every --mem request is refused; keep 1 GiB for the OS.
  mem_mb=$(( $(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo) - 1024 ))
  mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd "$LOG_DIR"
  cat >"$CONF_DIR/slurm.conf.new" <<EOF
# Written by llem's scripts/slurm-loopback.sh: a one-node test cluster on loopback.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# Without systemd there is no cgroup delegation: track processes by parent pid, no task plugin.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
# Cores only: with memory consumable, a job that names no --mem takes the whole node's memory
# and tests could never run two jobs side by side.
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
# A job past its time limit gets SIGTERM, then SIGKILL this many seconds later: short, so
# that time-limit tests end quickly.
KillWait=5
OverTimeLimit=0
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$ncpu RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  # Keep the file (and its mtime) when nothing changed, so a second `start` changes nothing.
  if cmp -s "$CONF_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf"; then
    rm -f "$CONF_DIR/slurm.conf.new"
  else
    mv "$CONF_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf"
    CONF_CHANGED=1
  fi
  cat >"$CONF_DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DBPASS
LogFile=$LOG_DIR/slurmdbd.log
PidFile=/run/slurmdbd.pid
EOF
  # slurmdbd refuses to start when its config (it holds a password) is readable by others.
  chmod 600 "$CONF_DIR/slurmdbd.conf"
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
      || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
  chmod 400 /etc/munge/munge.key
  chmod 755 /run/munge
  if ! munge -n >/dev/null 2>&1; then
    # munged refuses to run as root.
    runuser -u munge -- /usr/sbin/munged
  fi
  wait_for 15 munged sh -c 'munge -n | unmunge'
}

start_mariadb() {
  if ! mysqladmin ping >/dev/null 2>&1; then
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    /etc/init.d/mariadb start >/dev/null
  fi
  wait_for 30 MariaDB mysqladmin ping
  mysql -uroot <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
}

start_slurmdbd() {
  pid_alive /run/slurmdbd.pid || /usr/sbin/slurmdbd
  wait_for 30 slurmdbd sacctmgr -n list cluster
  # slurmctld must find its cluster registered when it starts, or it keeps no accounting.
  if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
}

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1; }

node_ready() {
  case "$(node_state)" in idle | mixed | allocated | completing) return 0 ;; *) return 1 ;; esac
}

start_slurm() {
  # Node and partition definitions are only read at start: restart daemons of an older config.
  if [ "${CONF_CHANGED:-0}" = 1 ] && scontrol ping >/dev/null 2>&1; then
    log "slurm.conf changed: restarting slurmctld and slurmd"
    scontrol shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do
      pid_alive /run/slurmctld.pid || pid_alive /run/slurmd.pid || break
      sleep 0.3
    done
  fi
  pid_alive /run/slurmctld.pid || /usr/sbin/slurmctld
  wait_for 30 slurmctld scontrol ping
  pid_alive /run/slurmd.pid || /usr/sbin/slurmd
  local deadline=$(( $(date +%s) + 60 )) st
  until node_ready; do
    st=$(node_state)
    # A node that went down earlier (e.g. slurmd stopped) stays down until told otherwise.
    case "$st" in down* | drain* | fail*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;; esac
    [ "$(date +%s)" -lt "$deadline" ] || die "node $NODE is '${st:-unknown}', not idle, after 60s (logs: $LOG_DIR)"
    sleep 0.3
  done
}

cmd_start() {
  need_root
  local t0 t1 t2
  t0=$(now)
  install_packages
  t1=$(now)
  write_configs
  start_munge
  start_mariadb
  start_slurmdbd
  start_slurm
  t2=$(now)
  log "cluster '$CLUSTER' up: node $NODE, partition $PARTITION"
  log "took $(elapsed "$t0" "$t2")s (install $(elapsed "$t0" "$t1")s, configure and start $(elapsed "$t1" "$t2")s)"
}

cmd_stop() {
  need_root
  local t0 pf
  t0=$(now)
  if scontrol ping >/dev/null 2>&1; then
    scontrol shutdown >/dev/null 2>&1 || true
  fi
  for pf in /run/slurmd.pid /run/slurmctld.pid /run/slurmdbd.pid /run/munge/munged.pid; do
    if pid_alive "$pf"; then
      kill "$(cat "$pf" 2>/dev/null)" 2>/dev/null || true
      for _ in $(seq 1 50); do pid_alive "$pf" || break; sleep 0.2; done
    fi
  done
  if command -v mysqladmin >/dev/null 2>&1 && mysqladmin ping >/dev/null 2>&1; then
    /etc/init.d/mariadb stop >/dev/null 2>&1 || true
  fi
  log "stopped in $(elapsed "$t0" "$(now)")s"
}

cmd_status() {
  local ok=0 name pf
  for name in munged slurmdbd slurmctld slurmd; do
    case $name in
      munged) pf=/run/munge/munged.pid ;;
      *) pf=/run/$name.pid ;;
    esac
    if pid_alive "$pf"; then log "$name running (pid $(cat "$pf"))"; else log "$name not running"; ok=1; fi
  done
  if mysqladmin ping >/dev/null 2>&1; then log "mariadb running"; else log "mariadb not running"; ok=1; fi
  # sinfo and sacct retry for many seconds against a stopped daemon: ask only when it runs
  if [ "$ok" != 0 ]; then
    log "not ready"
    return 1
  fi
  if command -v sinfo >/dev/null 2>&1 && node_ready; then
    log "node $NODE: $(node_state)"
  else
    log "node $NODE not ready (state: $(node_state 2>/dev/null || true))"; ok=1
  fi
  if ! sacct -n -X -S now >/dev/null 2>&1; then log "sacct does not answer"; ok=1; fi
  [ "$ok" = 0 ] && log "ready" || log "not ready"
  return "$ok"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
