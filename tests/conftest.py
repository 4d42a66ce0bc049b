"""Shared test helpers: run a mini-app as a program, alone or under mpiexec (keep this file small)."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_APPS = os.path.join(ROOT, "tests", "apps")

# Variables a launcher gives its tasks: a program started from a test that itself runs under
# mpiexec must not inherit them, or it would try to join the test's own MPI job.
_LAUNCHER_PREFIXES = ("PMI_", "PMIX_", "MPI_LOCAL", "HYDRA_", "OMPI_", "SLURM_STEP", "SLURM_PROCID",
                      "SLURM_LOCALID")


def app_env(extra=None):
    """Environment for running mini-apps from this source tree (plus tests/apps)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LAUNCHER_PREFIXES)}
    extra = dict(extra or {})
    first = extra.pop("PYTHONPATH", None)  # given paths go before the source tree
    env["PYTHONPATH"] = os.pathsep.join(p for p in (first, ROOT, TEST_APPS, env.get("PYTHONPATH")) if p)
    env.pop("OMP_NUM_THREADS", None)
    env.update(extra)
    return env


def find_mpiexec():
    """The mpiexec next to this Python (the venv's MPICH), else the first one on PATH."""
    here = os.path.dirname(sys.executable)
    return shutil.which("mpiexec", path=os.pathsep.join([here, os.environ.get("PATH", "")]))


@pytest.fixture(scope="session")
def run_app():
    """``run_app("miniapps.smm", "0", "4", ..., ranks=2, timeout=60)`` -> CompletedProcess.

    ``ranks=None`` runs ``python -m module`` alone; an int runs it under ``mpiexec -n ranks``
    (skipped when there is no mpiexec). Output is captured as text; the run is killed after
    ``timeout`` seconds (a test failure, not a hang).
    """
    def run(module, *args, ranks=None, timeout=60, env=None):
        cmd = [sys.executable, "-m", module, *map(str, args)]
        if ranks is not None:
            mpiexec = find_mpiexec()
            if mpiexec is None:
                pytest.skip("no mpiexec (pip install mpich)")
            cmd = [mpiexec, "-n", str(ranks)] + cmd
        return run_bounded(cmd, timeout, env=app_env(env), cwd=ROOT)
    return run


def run_bounded(cmd, timeout, **kwargs):
    """subprocess.run in its own process group; on timeout the whole group is killed and the test fails."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)  # mpiexec's ranks are in the group: none survives the test
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} did not finish within {timeout} s:\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture
def restore_affinity():
    """For tests that build a runtime Context in the test process (rt.setup): binding changes the
    process's threads, so the whole CPU mask and the OpenMP team size are put back afterwards."""
    from core import threads
    mask = sorted(os.sched_getaffinity(0))
    nthreads = threads.get_num_threads()
    yield
    threads.bind_team([mask] * max(nthreads, 1))
    threads.set_num_threads(nthreads)
    os.sched_setaffinity(0, mask)


@pytest.fixture(scope="session")
def smm_generator():
    """core/src/smm/gen_specialized.py as a module: the build-time SMM_MNK generator and its
    copy of the tile cost model, which tests compare with the library's."""
    import importlib.util
    path = os.path.join(ROOT, "core", "src", "smm", "gen_specialized.py")
    spec = importlib.util.spec_from_file_location("smm_gen_specialized", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
