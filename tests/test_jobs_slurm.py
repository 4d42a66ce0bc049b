"""jobs/ on a real one-node Slurm: sbatch --wait through srun (PMI-2) and mpiexec, and qsub for PBS.

The session fixture starts Slurm with jobs/ci/slurm-up.sh (Debian packages, as root) and stops it
with jobs/ci/slurm-down.sh afterwards. The tests skip, with the reason, where the machine cannot run
it: not root, no apt-get, or pytest itself running under an MPI launcher.
"""
import fcntl
import glob
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT, TEST_APPS, app_env, run_bounded

pytestmark = pytest.mark.slurm

JOBS = os.path.join(ROOT, "jobs")
STATE = os.environ.get("SMM_SLURM_DIR", "/tmp/smm-slurm-test")
LOCK = "/tmp/smm-slurm-test.lock"
CPUS = len(os.sched_getaffinity(0))
UP_TIMEOUT = 600  # apt-get update + install on a slow mirror


def _cannot_run_slurm():
    if os.environ.get("PMI_SIZE") or os.environ.get("OMPI_COMM_WORLD_SIZE"):
        return "pytest runs under an MPI launcher: the Slurm tests run in the plain pytest session"
    if os.geteuid() != 0:
        return "starting a local Slurm needs root (apt-get install, daemons)"
    if shutil.which("apt-get") is None or shutil.which("dpkg-query") is None:
        return "no apt-get/dpkg: cannot install Debian's Slurm packages"
    return None


@pytest.fixture(scope="session")
def slurm():
    """A running one-node Slurm; yields the environment its clients need (SLURM_CONF)."""
    reason = _cannot_run_slurm()
    if reason:
        pytest.skip(reason)
    lock = open(LOCK, "w")
    deadline = time.monotonic() + UP_TIMEOUT
    while True:  # another test session on this machine may be using the test cluster
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                pytest.fail(f"{LOCK} stayed locked by another test session")
            time.sleep(1)
    up = subprocess.run(["bash", os.path.join(JOBS, "ci", "slurm-up.sh"), STATE],
                        capture_output=True, text=True, timeout=UP_TIMEOUT)
    if up.returncode == 3:
        lock.close()
        pytest.skip(f"cannot run Slurm here: {up.stderr.strip()}")
    try:
        assert up.returncode == 0, f"slurm-up.sh failed ({up.returncode}):\n{up.stdout}\n{up.stderr}"
        yield {"SLURM_CONF": os.path.join(STATE, "slurm.conf")}
    finally:
        subprocess.run(["bash", os.path.join(JOBS, "ci", "slurm-down.sh"), STATE],
                       capture_output=True, text=True, timeout=120)
        lock.close()


def _env(slurm, results, **extra):
    env = app_env({"APP": "toyapp", "APP_MODULE": "toyapp", "APP_ARGS": "200 4", "SMM_VENV": sys.prefix,
                   "PYTHONPATH": TEST_APPS, "RESULTS_DIR": str(results), "EXTRA_OPTS": "--check", **slurm})
    for key in [k for k in env if k.startswith(("SLURM_", "SBATCH_", "SRUN_", "PBS_")) and k != "SLURM_CONF"]:
        del env[key]
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _records(folder):
    out = []
    for name in sorted(glob.glob(os.path.join(str(folder), "*.jsonl"))):
        with open(name) as f:
            out += [json.loads(line) for line in f if line.strip()]
    return out


def _sbatch(slurm, tmp_path, script, options, timeout=180, **extra):
    results = tmp_path / "results"
    cmd = ["sbatch", "--wait", "--parsable", f"--output={tmp_path}/job-%j.out", *options,
           os.path.join(JOBS, "slurm", script)]
    p = run_bounded(cmd, timeout, env=_env(slurm, results, **extra), cwd=str(tmp_path))
    log = "\n".join(open(f).read() for f in glob.glob(str(tmp_path / "job-*.out")))
    return p, _records(results), log


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_sbatch_srun_pmi2(slurm, tmp_path, ranks):
    options = [f"--ntasks={ranks}"] + (["--overcommit"] if ranks > CPUS else [])
    p, recs, log = _sbatch(slurm, tmp_path, "miniapp.sbatch", options)
    assert p.returncode == 0, f"{p.stderr}\n{log}"
    job_id = p.stdout.strip().split(";")[0]
    assert f"launcher=srun ranks={ranks} threads=1" in log
    assert [r["variant"] for r in recs] == ["axpy", "matmul"], log  # one record per variant, not per rank
    for r in recs:
        assert r["ranks"] == ranks and r["nodes"] == 1 and r["check"]["ok"]
        assert r["job"]["scheduler"] == "slurm" and r["job"]["id"] == job_id
        assert r["oversubscribed"] == (ranks > CPUS)
        assert r["pin"] == ("none" if ranks > CPUS else "compact")


def test_sbatch_mpiexec_inside_the_allocation(slurm, tmp_path):
    p, recs, log = _sbatch(slurm, tmp_path, "miniapp.sbatch", ["--ntasks=2"], LAUNCHER="mpiexec")
    assert p.returncode == 0, f"{p.stderr}\n{log}"
    assert "launcher=mpiexec ranks=2" in log
    assert len(recs) == 2 and all(r["ranks"] == 2 and r["check"]["ok"] for r in recs)


def test_sbatch_threads_from_cpus_per_task(slurm, tmp_path):
    threads = min(2, CPUS)
    p, recs, log = _sbatch(slurm, tmp_path, "miniapp.sbatch", ["--ntasks=1", f"--cpus-per-task={threads}"],
                           EXTRA_OPTS="--check --report-bindings")
    assert p.returncode == 0, f"{p.stderr}\n{log}"
    assert f"ranks=1 threads={threads}" in log
    assert log.count("omp thread") == threads  # read back from inside the region, in the job
    assert all(r["threads"] == threads and r["binding"]["ok"] for r in recs)


def test_per_app_script_finds_the_source_tree_from_its_submitted_path(slurm, tmp_path):
    # cp2k.sbatch with the toy module: no SMM_ROOT, so the tree comes from scontrol's Command=.
    p, recs, log = _sbatch(slurm, tmp_path, "cp2k.sbatch", ["--ntasks=2"])
    assert p.returncode == 0, f"{p.stderr}\n{log}"
    assert "job: toyapp 200 4 | scheduler=slurm" in log and len(recs) == 2


def test_failing_job_fails_sbatch(slurm, tmp_path):
    p, recs, log = _sbatch(slurm, tmp_path, "miniapp.sbatch", ["--ntasks=2"], EXTRA_OPTS="--check --wrong")
    assert p.returncode != 0
    assert "validation FAILED: axpy" in log
    assert recs and not recs[0]["check"]["ok"]
    p, _, log = _sbatch(slurm, tmp_path, "miniapp.sbatch", ["--ntasks=2"], APP_ARGS="100 4 0 --fail-rank 1",
                        EXTRA_OPTS="")
    assert p.returncode != 0 and "toyapp failure on rank 1" in log


def test_qsub_runs_the_pbs_script(slurm, tmp_path):
    if shutil.which("qsub") is None:
        pytest.fail("slurm-up.sh installs slurm-wlm-torque, but there is no qsub")
    results = tmp_path / "results"
    out = tmp_path / "pbs.out"
    cmd = ["qsub", "-V", "-j", "oe", "-o", str(out), "-W", "block=true",
           "-l", "select=1:ncpus=2:mpiprocs=2:ompthreads=1", os.path.join(JOBS, "pbs", "miniapp.pbs")]
    p = run_bounded(cmd, 180, env=_env(slurm, results, SMM_ROOT=ROOT), cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    job_id = p.stdout.strip().splitlines()[-1]
    log = out.read_text() if out.exists() else ""
    recs = _records(results)
    assert [r["variant"] for r in recs] == ["axpy", "matmul"], log
    assert all(r["ranks"] == 2 and r["check"]["ok"] and r["job"]["id"] == job_id for r in recs)


def test_sweep_then_table(slurm, tmp_path):
    results = tmp_path / "sweep"
    env = _env(slurm, results)
    cmd = [sys.executable, os.path.join(JOBS, "sweep.py"), "toyapp", "--module", "toyapp", "--app-args", "100 4",
           "--ranks-per-node", "1", "2", "--threads", "1", "--results", str(results), "--wait"]
    p = run_bounded(cmd, 300, env=env, cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("\tdone") == 2
    recs = _records(results)
    assert sorted(r["ranks"] for r in recs) == [1, 1, 2, 2]
    png = tmp_path / "sweep.png"
    t = run_bounded([sys.executable, os.path.join(JOBS, "table.py"), str(results), "--plot", str(png)], 120,
                    env=env, cwd=str(tmp_path))
    assert t.returncode == 0, t.stderr
    assert len(t.stdout.splitlines()) == 2 + 4 and png.exists()


# The project's mini-apps through their own job scripts, with tiny arguments (as each lands).
REAL_APPS = {
    "smm": "0 4 4 4 1000 1",
    "cp2k": "8 1000",
    "nek": "axhm 8 8 8 -64 -128",
    "specfem": "1000",
    "transpose": "o 256 256 0 0 -2",
}


def _app_present(app):
    return os.path.exists(os.path.join(ROOT, "miniapps", f"{app}.py")) or \
        os.path.exists(os.path.join(ROOT, "miniapps", app, "__main__.py"))


@pytest.mark.parametrize("app", sorted(REAL_APPS))
def test_real_miniapp_job(slurm, tmp_path, app):
    if not _app_present(app):
        pytest.skip(f"miniapps.{app} does not exist yet")
    probe = run_bounded([sys.executable, "-m", f"miniapps.{app}", "--help"], 120, env=app_env(), cwd=ROOT)
    if probe.returncode != 0 and "No module named" in probe.stderr:
        pytest.skip(f"miniapps.{app} cannot be imported yet: {probe.stderr.strip().splitlines()[-1]}")
    p, recs, log = _sbatch(slurm, tmp_path, f"{app}.sbatch", ["--ntasks=2"], timeout=600,
                           APP_ARGS=REAL_APPS[app], APP_MODULE="", PYTHONPATH="")
    assert p.returncode == 0, f"{p.stderr}\n{log}"
    assert recs, log
    assert all(r["app"] == app and r["ranks"] == 2 for r in recs)
    checked = [r for r in recs if r["check"] is not None]
    assert checked and all(r["check"]["ok"] for r in checked), log
