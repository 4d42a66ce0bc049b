#!/usr/bin/env bash
# Start a one-node Slurm on this machine (CI and tests; Debian/Ubuntu, as root).
#
#   jobs/ci/slurm-up.sh [STATE_DIR]      default STATE_DIR: $SMM_SLURM_DIR or /tmp/smm-slurm
#
# Installs Debian's slurmctld slurmd slurm-client munge slurm-wlm-torque when missing (apt-get,
# --no-install-recommends), writes STATE_DIR/slurm.conf for this node (its own ports, state and
# log files under STATE_DIR; /etc/slurm is not touched), starts munged (unless one answers
# already), slurmctld and slurmd, and waits until the node is idle. Clients find the cluster with
#   export SLURM_CONF=STATE_DIR/slurm.conf          (also written to STATE_DIR/env)
# jobs/ci/slurm-down.sh STATE_DIR stops exactly the daemons this script started, by their pids.
#
# Exit status: 0 up; 3 this machine cannot run it (not root, no apt-get/dpkg); other: failure.
set -euo pipefail

STATE=${1:-${SMM_SLURM_DIR:-/tmp/smm-slurm}}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PACKAGES="slurmctld slurmd slurm-client munge slurm-wlm-torque"
say() { echo "slurm-up: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "needs root (installs packages, starts daemons)"; exit 3; }
command -v apt-get >/dev/null && command -v dpkg-query >/dev/null || { say "needs apt-get and dpkg"; exit 3; }

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    say "installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# A previous run that was not stopped (a killed test session): stop it first.
if [ -f "$STATE/slurmctld.pid" ] || [ -f "$STATE/slurmd.pid" ]; then
    "$HERE/slurm-down.sh" "$STATE" || true
fi
mkdir -p "$STATE/ctld" "$STATE/d"
trap 'say "failed; stopping what was started"; "$HERE/slurm-down.sh" "$STATE" || true' ERR

# munge: refuses to run as root; the package creates the key.
if ! (munge -n | unmunge) >/dev/null 2>&1; then
    install -d -o munge -g munge -m 0755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        runuser -u munge -- mungekey --create >/dev/null
    fi
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$STATE/munged.pid"  # ours to stop
    (munge -n | unmunge) >/dev/null
fi

host=$(hostname -s)
node=$(slurmd -C 2>/dev/null | grep '^NodeName=' | head -n 1)
[ -n "$node" ] || { say "slurmd -C printed no node line"; false; }
node=$(echo "$node" | sed "s/^NodeName=[^ ]*/NodeName=$host/")
cat > "$STATE/slurm.conf" <<CONF
# Written by jobs/ci/slurm-up.sh: a one-node test cluster (see ../shared/notes/slurm.md).
ClusterName=smmci
SlurmctldHost=$host
SlurmctldPort=${SMM_SLURMCTLD_PORT:-16817}
SlurmdPort=${SMM_SLURMD_PORT:-16818}
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.txt
MpiDefault=pmi2
EnforcePartLimits=ALL
MinJobAge=4
KillWait=5
ReturnToService=2
$node State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=30:00 State=UP
CONF
export SLURM_CONF=$STATE/slurm.conf
echo "export SLURM_CONF=$SLURM_CONF" > "$STATE/env"

slurmctld
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
slurmd
for _ in $(seq 300); do
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.1
done
[ "$state" = idle ] || { say "node $host is '$state', not idle; see $STATE/slurmd.log"; false; }
trap - ERR
say "up: $node (SLURM_CONF=$SLURM_CONF)"
echo "SLURM_CONF=$SLURM_CONF"
