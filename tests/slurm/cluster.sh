#!/usr/bin/env bash
# A one-node Slurm cluster on loopback for the profile tests (Debian's slurm-wlm 22.05 + munge, run as root,
# no systemd, no accounting database). tests/test_slurm.py drives it; by hand:
#
#   bash tests/slurm/cluster.sh install   # apt-get install slurm-wlm munge (when missing)
#   bash tests/slurm/cluster.sh start     # write slurm.conf, start munged, slurmctld, slurmd; print the pids
#   bash tests/slurm/cluster.sh stop      # cancel jobs, stop the daemons by the pids in their pid files
#
# Without slurmdbd, `sacct` fails, so the test profile polls with `squeue` (slurm-status-command: squeue);
# squeue sees finished jobs for MinJobAge seconds, which must stay >= 3x the plugin's first poll delay.
set -euo pipefail

NODE=$(hostname -s)
CPUS=${SLURM_CPUS:-$(nproc)}
# what the scheduler may hand out; nothing enforces it (no cgroups)
MEM_MB=${SLURM_MEM_MB:-$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) * 85 / 100 ))}
LOG=/var/log/slurm
PIDS="/run/munge/munged.pid /run/slurmctld.pid /run/slurmd.pid"

say() { echo "[cluster.sh] $*"; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
retry() {  # retry SECONDS CMD...: poll CMD every 0.25 s
  local n=$(( $1 * 4 )); shift
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  return 1
}

install() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && { say "already installed"; return 0; }
  # apt's postinst cannot start services here (no systemd, policy-rc.d): start() does it by hand
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q slurm-wlm munge || { apt-get update -q && apt-get install -y -q slurm-wlm munge; }
}

write_conf() {
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOG"
  chown slurm:slurm /var/spool/slurmctld "$LOG"
  cat > /etc/slurm/slurm.conf <<CONF
# written by posttrain tests/slurm/cluster.sh: this host is the only node; every daemon on 127.0.0.1
ClusterName=posttrain-test
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
InactiveLimit=0
KillWait=5
MinJobAge=3600
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
  write_conf
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge
  alive /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged
  retry 10 sh -c 'munge -n | unmunge' || { say "munged did not start"; exit 1; }
  alive /run/slurmctld.pid || /usr/sbin/slurmctld
  retry 30 sh -c 'scontrol ping | grep -q UP' || { say "slurmctld did not start: see $LOG/slurmctld.log"; exit 1; }
  alive /run/slurmd.pid || /usr/sbin/slurmd
  if ! retry 30 sh -c "sinfo -h -n $NODE -o %T | grep -qE '^(idle|mixed|allocated)'"; then
    scontrol update nodename="$NODE" state=resume || true
    retry 10 sh -c "sinfo -h -n $NODE -o %T | grep -q idle" || { say "node not idle: see $LOG/slurmd.log"; exit 1; }
  fi
  for f in $PIDS; do echo "$f $(cat "$f")"; done
}

stop() {
  alive /run/slurmctld.pid && { squeue -h -o %i | xargs -r scancel || true; }
  for f in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
    alive "$f" || continue
    local pid; pid=$(cat "$f"); kill "$pid"
    retry 15 sh -c "! kill -0 $pid" || { say "$f ($pid) ignored SIGTERM: SIGKILL"; kill -9 "$pid" || true; }
    say "stopped $f ($pid)"
  done
}

case "${1:-}" in
  install|start|stop) "$1" ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
