"""jobs/ without a scheduler: script syntax, the PBS path with a PBS-like environment, sweep, table."""
import glob
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, TEST_APPS, app_env, find_mpiexec, run_bounded

JOBS = os.path.join(ROOT, "jobs")
APPS = ("smm", "cp2k", "nek", "specfem", "transpose", "gxm")


def _records(folder):
    out = []
    for name in sorted(glob.glob(os.path.join(folder, "*.jsonl"))):
        with open(name) as f:
            out += [json.loads(line) for line in f if line.strip()]
    return out


def test_every_app_has_a_slurm_and_a_pbs_script_that_parse():
    for app in APPS + ("miniapp",):
        for path in (os.path.join(JOBS, "slurm", f"{app}.sbatch"), os.path.join(JOBS, "pbs", f"{app}.pbs")):
            assert os.access(path, os.X_OK), path
            subprocess.run(["bash", "-n", path], check=True)
            text = open(path).read()
            assert "jobs/lib/run.sh" in text
            if app != "miniapp":
                assert f"export APP={app}\n" in text
    pbs = open(os.path.join(JOBS, "pbs", "cp2k.pbs")).read()
    assert "#PBS -l select=1:ncpus=1:mpiprocs=1:ompthreads=1" in pbs and "PBS_O_WORKDIR" in pbs
    subprocess.run(["bash", "-n", os.path.join(JOBS, "lib", "run.sh")], check=True)
    for script in ("slurm-up.sh", "slurm-down.sh"):
        subprocess.run(["bash", "-n", os.path.join(JOBS, "ci", script)], check=True)


def _job_env(tmp_path, **extra):
    env = app_env({"APP": "toyapp", "APP_MODULE": "toyapp", "APP_ARGS": "100 4", "SMM_ROOT": ROOT,
                   "SMM_VENV": sys.prefix, "PYTHONPATH": TEST_APPS, "EXTRA_OPTS": "--check"})
    for key in [k for k in env if k.startswith(("SLURM_", "PBS_"))]:
        del env[key]
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.mark.skipif(find_mpiexec() is None, reason="no mpiexec")
def test_pbs_script_under_a_pbs_like_environment(tmp_path):
    """The PBS branch of jobs/lib/run.sh: ranks from PBS_NODEFILE, threads from OMP_NUM_THREADS,
    mpiexec -f PBS_NODEFILE, records in PBS_O_WORKDIR/results (what PBS Pro gives a job)."""
    nodefile = tmp_path / "nodes"
    nodefile.write_text("localhost\nlocalhost\n")
    env = _job_env(tmp_path, PBS_JOBID="42.server", PBS_NODEFILE=nodefile, PBS_O_WORKDIR=tmp_path,
                   OMP_NUM_THREADS=1)
    p = run_bounded(["bash", os.path.join(JOBS, "pbs", "miniapp.pbs")], 120, env=env, cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "scheduler=pbs launcher=mpiexec ranks=2 threads=1" in p.stdout
    recs = _records(tmp_path / "results")
    assert [r["variant"] for r in recs] == ["axpy", "matmul"]
    assert all(r["ranks"] == 2 and r["threads"] == 1 and r["check"]["ok"] for r in recs)
    assert recs[0]["job"]["scheduler"] == "pbs" and recs[0]["job"]["id"] == "42.server"
    # select=1:ncpus=2:mpiprocs=2 without ompthreads: PBS Pro sets OMP_NUM_THREADS=ncpus=2, which
    # would put 4 threads on 2 CPUs; the script shares the chunk's CPUs among its ranks instead.
    env.update(OMP_NUM_THREADS="2", NCPUS="2", RESULTS_DIR=str(tmp_path / "r2"))
    p = run_bounded(["bash", os.path.join(JOBS, "pbs", "miniapp.pbs")], 120, env=env, cwd=str(tmp_path))
    assert p.returncode == 0 and "ranks=2 threads=1" in p.stdout, p.stdout + p.stderr
    env.update(NCPUS="4", RESULTS_DIR=str(tmp_path / "r3"), EXTRA_OPTS="")
    p = run_bounded(["bash", os.path.join(JOBS, "pbs", "miniapp.pbs")], 120, env=env, cwd=str(tmp_path))
    assert p.returncode == 0 and "ranks=2 threads=2" in p.stdout, p.stdout + p.stderr


def test_job_script_outside_a_scheduler_runs_one_rank(tmp_path):
    env = _job_env(tmp_path, LAUNCHER="none", RESULTS_DIR=tmp_path / "out", THREADS=1)
    p = run_bounded(["bash", os.path.join(JOBS, "slurm", "miniapp.sbatch")], 120, env=env, cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    recs = _records(tmp_path / "out")
    assert len(recs) == 2 and recs[0]["ranks"] == 1 and recs[0]["job"] is None


def test_job_script_passes_the_app_exit_status(tmp_path):
    env = _job_env(tmp_path, LAUNCHER="none", RESULTS_DIR=tmp_path / "out", EXTRA_OPTS="--check --wrong")
    p = run_bounded(["bash", os.path.join(JOBS, "slurm", "miniapp.sbatch")], 120, env=env, cwd=str(tmp_path))
    assert p.returncode == 1 and "validation FAILED" in p.stderr
    env = _job_env(tmp_path, LAUNCHER="bogus")
    p = run_bounded(["bash", os.path.join(JOBS, "slurm", "miniapp.sbatch")], 60, env=env, cwd=str(tmp_path))
    assert p.returncode == 2 and "LAUNCHER must be" in p.stderr


def test_sweep_dry_run_lists_the_series():
    p = subprocess.run([sys.executable, os.path.join(JOBS, "sweep.py"), "cp2k", "--nodes", "1", "2",
                        "--ranks-per-node", "1", "4", "--threads", "1", "2", "3", "--dry-run",
                        "--app-args", "23 1000", "--submit-arg=--partition=short"],
                       capture_output=True, text=True, check=True)
    lines = p.stdout.splitlines()
    assert len(lines) == 12
    assert all("jobs/slurm/cp2k.sbatch" in l and "--partition=short" in l and "APP=cp2k" in l for l in lines)
    assert "--nodes=2 --ntasks=8 --ntasks-per-node=4 --cpus-per-task=3" in lines[-1]
    assert "APP_ARGS='23 1000'" in lines[0]
    p = subprocess.run([sys.executable, os.path.join(JOBS, "sweep.py"), "smm", "--scheduler", "pbs",
                        "--nodes", "2", "--ranks-per-node", "4", "--threads", "8", "--dry-run"],
                       capture_output=True, text=True, check=True)
    assert "select=2:ncpus=32:mpiprocs=4:ompthreads=8" in p.stdout and "jobs/pbs/smm.pbs" in p.stdout
    p = subprocess.run([sys.executable, os.path.join(JOBS, "sweep.py"), "toyapp", "--dry-run"],
                       capture_output=True, text=True, check=True)
    assert "jobs/slurm/miniapp.sbatch" in p.stdout  # no script of its own: the generic one


def _record(variant, ranks, threads, gflops, **extra):
    return {"app": "smm", "variant": variant, "args": {"m": 23}, "nodes": 1, "ranks": ranks, "threads": threads,
            "threads_total": ranks * threads, "pin": "compact", "dtype": "f64", "target": "avx2",
            "oversubscribed": False, "seconds": 1.0 / gflops, "gflops": gflops, "gbs": gflops / 2,
            "check": {"ok": True, "max_rel_err": 1e-16}, "job": {"id": "7"}, "time": "t", **extra}


def test_table_and_plot(tmp_path):
    data = tmp_path / "res"
    data.mkdir()
    with open(data / "smm.jsonl", "w") as f:
        for rec in (_record("specialized", 1, 1, 10.0), _record("specialized", 1, 1, 12.5),
                    _record("specialized", 2, 1, 19.0), _record("blas", 1, 1, 3.0)):
            f.write(json.dumps(rec) + "\n")
        f.write('{"truncated": \n')
    table = [sys.executable, os.path.join(JOBS, "table.py")]
    p = subprocess.run(table + [str(data)], capture_output=True, text=True)
    assert p.returncode == 0 and "not JSON, skipped" in p.stderr
    rows = p.stdout.splitlines()
    assert rows[0].split()[:3] == ["app", "variant", "dtype"] and len(rows) == 2 + 4
    assert rows[2].split()[1] == "blas"
    p = subprocess.run(table + [str(data), "--best", "--variant", "specialized", "--csv"],
                       capture_output=True, text=True, check=True)
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 3 and "12.50" in lines[1] and "19.00" in lines[2]
    png = tmp_path / "scaling.png"
    p = subprocess.run(table + [str(data), "--plot", str(png)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    p = subprocess.run(table + [str(tmp_path / "nothing")], capture_output=True, text=True)
    assert p.returncode == 2
