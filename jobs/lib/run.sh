# Common part of the job scripts in jobs/slurm and jobs/pbs (sourced, after the script set APP
# and root). Runs `python -m miniapps.$APP $APP_ARGS` on RANKS ranks x THREADS threads through
# srun (PMI-2) or mpiexec, appending JSON records to $RESULTS_DIR/$APP.jsonl.
# Variables: see jobs/README.md. Nothing here is specific to one site.
set -euo pipefail

: "${APP:?set APP to the mini-app to run: smm, cp2k, nek, specfem, transpose or gxm}"
SMM_ROOT=$(cd "${root:?}" && pwd)
export SMM_ROOT

if [ -n "${SLURM_JOB_ID:-}" ] && [ -z "${PBS_JOBID:-}${PBS_NODEFILE:-}" ]; then
    scheduler=slurm
elif [ -n "${PBS_JOBID:-}${PBS_NODEFILE:-}${PBS_ENVIRONMENT:-}" ]; then
    scheduler=pbs
elif [ -n "${SLURM_JOB_ID:-}" ]; then
    scheduler=slurm
else
    scheduler=none
fi
# A PBS script run by Slurm's PBS wrappers (qsub from slurm-wlm-torque) runs in a Slurm allocation.
[ "${SMM_SCHEDULER:-}" ] && scheduler=$SMM_SCHEDULER

# Python and MPI: the venv named by SMM_VENV, else what PATH gives.
if [ -n "${SMM_VENV:-}" ]; then
    PYTHON=${PYTHON:-$SMM_VENV/bin/python}
    MPIEXEC=${MPIEXEC:-$SMM_VENV/bin/mpiexec}
else
    PYTHON=${PYTHON:-$(command -v python3 || command -v python)}
    MPIEXEC=${MPIEXEC:-$(command -v mpiexec || echo mpiexec)}
fi
# Run the source tree when its extensions are built in place; otherwise the installed package.
if compgen -G "$SMM_ROOT/core/*.so" >/dev/null; then
    export PYTHONPATH="$SMM_ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi
MODULE=${APP_MODULE:-miniapps.$APP}  # empty counts as unset

# The mini-app's own arguments: small but real runs unless APP_ARGS is set (even to "").
if [ -z "${APP_ARGS+set}" ]; then
    case "$APP" in
        smm)       APP_ARGS="0 23 23 23 20000 10" ;;     # case m n k batch nrepeat
        cp2k)      APP_ARGS="23 20000" ;;                # m r(stack size)
        nek)       APP_ARGS="axhm 8 8 8 -4096 -40960" ;; # 4096 elements, 10 repetitions
        specfem)   APP_ARGS="" ;;                        # the sample's 40,000 elements
        transpose) APP_ARGS="o 4096 4096 0 0 -10" ;;     # out-of-place, 10 runs of one shape
        *)         APP_ARGS="" ;;
    esac
fi

# Ranks and threads: from the allocation unless given.
case "$scheduler" in
    slurm)
        RANKS=${RANKS:-${SLURM_NTASKS:-1}}
        THREADS=${THREADS:-${SLURM_CPUS_PER_TASK:-1}}
        LAUNCHER=${LAUNCHER:-srun}
        SUBMIT_DIR=${SLURM_SUBMIT_DIR:-$PWD} ;;
    pbs)
        if [ -n "${PBS_NODEFILE:-}" ] && [ -r "$PBS_NODEFILE" ]; then
            RANKS=${RANKS:-$(grep -c . "$PBS_NODEFILE")}   # one line per mpiprocs slot
        fi
        RANKS=${RANKS:-${SLURM_NTASKS:-1}}
        # PBS Pro sets OMP_NUM_THREADS from ompthreads (ncpus when ompthreads is not given) and
        # NCPUS from ncpus: without ompthreads, share the chunk's CPUs among its ranks instead.
        if [ -z "${THREADS:-}" ] && [ -n "${NCPUS:-}" ] && [ -n "${PBS_NODEFILE:-}" ] && [ -r "$PBS_NODEFILE" ]; then
            nodes=$(sort -u "$PBS_NODEFILE" | grep -c .)
            per_node=$(( (RANKS + nodes - 1) / nodes ))
            if [ $(( ${OMP_NUM_THREADS:-1} * per_node )) -gt "$NCPUS" ]; then
                THREADS=$(( NCPUS / per_node > 0 ? NCPUS / per_node : 1 ))
            fi
        fi
        THREADS=${THREADS:-${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}}
        LAUNCHER=${LAUNCHER:-mpiexec}
        SUBMIT_DIR=${PBS_O_WORKDIR:-${SLURM_SUBMIT_DIR:-$PWD}} ;;
    *)
        RANKS=${RANKS:-1}
        THREADS=${THREADS:-1}
        LAUNCHER=${LAUNCHER:-mpiexec}
        SUBMIT_DIR=$PWD ;;
esac
export OMP_NUM_THREADS=$THREADS
RESULTS_DIR=${RESULTS_DIR:-$SUBMIT_DIR/results}
mkdir -p "$RESULTS_DIR"

opts=(--threads "$THREADS" --json "$RESULTS_DIR/")
[ -n "${PIN:-}" ] && opts+=(--pin "$PIN")
# shellcheck disable=SC2206  # EXTRA_OPTS and APP_ARGS are word lists on purpose
opts+=(${EXTRA_OPTS:-})
# shellcheck disable=SC2206
app_args=(${APP_ARGS})

case "$LAUNCHER" in
    srun)
        # Since Slurm 22.05 srun does not inherit --cpus-per-task from the allocation.
        export SRUN_CPUS_PER_TASK=${SLURM_CPUS_PER_TASK:-$THREADS}
        launch=(srun --mpi="${SRUN_MPI:-pmi2}" -n "$RANKS")
        [ -n "${CPU_BIND:-}" ] && launch+=(--cpu-bind="$CPU_BIND") ;;
    mpiexec)
        launch=("$MPIEXEC" -n "$RANKS")
        if [ "$scheduler" = pbs ] && [ -n "${PBS_NODEFILE:-}" ] && [ -r "$PBS_NODEFILE" ] && [ -z "${SLURM_JOB_ID:-}" ]; then
            launch+=(-f "$PBS_NODEFILE")
        fi ;;
    none)
        [ "$RANKS" = 1 ] || { echo "LAUNCHER=none runs one rank, but RANKS=$RANKS" >&2; exit 2; }
        launch=() ;;
    *)
        echo "LAUNCHER must be srun, mpiexec or none, got '$LAUNCHER'" >&2; exit 2 ;;
esac

echo "job: $MODULE ${app_args[*]:-} | scheduler=$scheduler launcher=$LAUNCHER ranks=$RANKS threads=$THREADS pin=${PIN:-default} results=$RESULTS_DIR/ python=$PYTHON"
# python -m puts the working directory first on sys.path: run from the results folder so that a
# source tree without built extensions cannot shadow the installed package.
cd "$RESULTS_DIR"
exec "${launch[@]}" "$PYTHON" -m "$MODULE" "${app_args[@]}" "${opts[@]}"
