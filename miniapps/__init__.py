"""LIBXSMM's sample programs as Python mini-apps, one runnable module each, on one runtime.

Run one alone or under any MPI launcher::

    python -m miniapps.smm 0 23 23 23 1000 1 --check
    mpiexec -n 4 python -m miniapps.cp2k 23 --threads 1 --json results/

Every mini-app takes the common options of :mod:`miniapps.runtime` (``--help`` lists them);
docs/runtime.md describes the runtime, jobs/README.md the Slurm and PBS scripts.
"""
import os as _os

# The CPUs this process may use, taken before any mini-app imports the OpenMP extensions: with
# OMP_PROC_BIND set, libgomp pins the main thread to its first place as soon as it loads, after
# which the main thread's mask no longer shows what the launcher gave the process.
START_AFFINITY = tuple(sorted(_os.sched_getaffinity(0))) if hasattr(_os, "sched_getaffinity") else None
