#!/usr/bin/env bash
# Starts or stops a one-node Slurm cluster on this machine for the launch tests, on a Debian
# machine without systemd (see ../shared/services/NOTES.md: no cgroup plugins, munge started
# by hand, the controller up before the node daemon). Its configuration and state live under
# one folder of their own, so that no other cluster's state is read.
#
#   tools/services/slurm.sh start   # installs slurm-wlm and munge when missing
#   tools/services/slurm.sh stop    # stops what start started, by PID
set -euo pipefail

ROOT=${REGSTUDY_SLURM_DIR:-/tmp/regstudy-slurm}
CONF=$ROOT/etc/slurm.conf

install() {
  if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    echo "installing slurm-wlm and munge" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
  fi
}

configure() {
  local host cpus memory
  host=$(hostname -s)
  cpus=$(nproc)
  memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mkdir -p "$ROOT"/etc "$ROOT"/state "$ROOT"/spool "$ROOT"/log
  cat >"$CONF" <<CONF
ClusterName=regstudy-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=$ROOT/state
SlurmdSpoolDir=$ROOT/spool
SlurmctldPidFile=$ROOT/slurmctld.pid
SlurmdPidFile=$ROOT/slurmd.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd.log
ReturnToService=2
KillWait=10
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
}

start_munge() {
  if running "$ROOT/munged.pid"; then
    return
  fi
  mkdir -p /run/munge
  chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/regstudy-munged.pid
  for _ in $(seq 1 50); do
    [ -s /run/munge/regstudy-munged.pid ] && break
    sleep 0.1
  done
  cp /run/munge/regstudy-munged.pid "$ROOT/munged.pid"
}

running() {
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

start() {
  install
  export SLURM_CONF=$CONF
  if running "$ROOT/slurmctld.pid" && running "$ROOT/slurmd.pid"; then
    echo "$CONF"
    return
  fi
  configure
  start_munge
  slurmctld -c -f "$CONF"
  for _ in $(seq 1 100); do
    timeout 2 scontrol ping 2>/dev/null | grep -q UP && break
    sleep 0.2
  done
  timeout 2 scontrol ping | grep -q UP
  slurmd -f "$CONF"
  for _ in $(seq 1 100); do
    timeout 2 sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && break
    sleep 0.2
  done
  timeout 2 sinfo -h -o %t | grep -qE '^(idle|mix|alloc)'
  echo "$CONF"
}

# Stops a daemon by the PID in `file`, waiting up to 10 s, then SIGKILL.
stop_pid() {
  local file=$1
  [ -f "$file" ] || return 0
  local pid
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

stop() {
  stop_pid "$ROOT/slurmd.pid"
  stop_pid "$ROOT/slurmctld.pid"
  stop_pid "$ROOT/munged.pid"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
