#!/usr/bin/env bash
# Stop the one-node Slurm that jobs/ci/slurm-up.sh started (same STATE_DIR argument).
# Cancels all jobs, then stops slurmd, slurmctld and (if slurm-up started it) munged by the pids
# in their pid files: SIGTERM, then SIGKILL after 10 s. Never looks processes up by name.
set -uo pipefail

STATE=${1:-${SMM_SLURM_DIR:-/tmp/smm-slurm}}
export SLURM_CONF=$STATE/slurm.conf
say() { echo "slurm-down: $*" >&2; }

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { [ -s "$1" ] && tr -dc '0-9' < "$1"; }

ctld=$(pid_of "$STATE/slurmctld.pid")
if alive "$ctld" && [ -f "$SLURM_CONF" ]; then
    # A job's slurmstepd outlives slurmd: end the jobs first.
    jobs=$(squeue -h -o %i 2>/dev/null)
    if [ -n "$jobs" ]; then
        scancel $jobs 2>/dev/null
        for _ in $(seq 100); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
    fi
fi

stop() {  # stop NAME PIDFILE
    local pid
    pid=$(pid_of "$2")
    if alive "$pid"; then
        kill -TERM "$pid"
        for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then say "$1 ($pid) ignored SIGTERM; killing"; kill -KILL "$pid"; fi
    fi
    rm -f "$2"
}
stop slurmd "$STATE/slurmd.pid"
stop slurmctld "$STATE/slurmctld.pid"
[ -f "$STATE/munged.pid" ] && stop munged "$STATE/munged.pid"
say "stopped (state kept in $STATE)"
exit 0
