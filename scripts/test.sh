#!/usr/bin/env bash
# Sets up the project in .venv (Python >= 3.10, gcc; MPI comes from PyPI) and runs the whole test
# suite: plain pytest (which also drives a real one-node Slurm when run as root with apt-get), then
# the MPI tests under `mpiexec -n 2`. Fails when a stage fails or when no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${SMM_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[test]"
export PATH="$PWD/$VENV/bin:$PATH"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}   # 2 MPI ranks on 2 cores: no spinning
# A hard-killed pytest would leave the test Slurm's daemons running.
trap 'bash jobs/ci/slurm-down.sh /tmp/smm-slurm-test >/dev/null 2>&1 || true' EXIT

status=0
python -m pytest -q -p no:cacheprovider tests/ || status=$?
if [ "$status" -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
[ "$status" -eq 0 ] || exit "$status"

# -m mpi: only the tests written for several ranks (each rank runs them; exit codes propagate).
status=0
timeout 900 mpiexec -n 2 python -m pytest -q -p no:cacheprovider --with-mpi -m mpi tests/ || status=$?
if [ "$status" -eq 5 ]; then echo "pytest under mpiexec collected no MPI tests" >&2; exit 1; fi
exit "$status"
