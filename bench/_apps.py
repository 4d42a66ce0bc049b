"""Running a mini-app from a benchmark script: one run, its JSON records back."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def available_bytes():
    """MemAvailable from /proc/meminfo (None where there is none): benchmarks size stacks by it."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def run_app(app, args, *, ranks=1, timeout=None):
    """``python -m miniapps.<app> <args> --json <tmp> --quiet`` on `ranks` MPI ranks (mpiexec from
    this interpreter's environment); returns the records (one per variant) or raises with the app's
    stderr. OMP_NUM_THREADS is dropped: the app's --threads decides."""
    with tempfile.TemporaryDirectory(prefix=f"{app}-bench-") as tmp:
        out = os.path.join(tmp, "records.jsonl")
        cmd = [sys.executable, "-m", f"miniapps.{app}", *map(str, args), "--json", out, "--quiet"]
        if ranks > 1:
            mpiexec = shutil.which("mpiexec", path=os.pathsep.join([os.path.dirname(sys.executable),
                                                                   os.environ.get("PATH", "")]))
            if mpiexec is None:
                raise RuntimeError("no mpiexec for a multi-rank run (pip install mpich)")
            cmd = [mpiexec, "-n", str(ranks)] + cmd
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
        env.pop("OMP_NUM_THREADS", None)
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
        with open(out) as f:
            return [json.loads(line) for line in f]


def save_sweep(path, args, rows, records, start, failures):
    """Writes a sweep's table rows and raw records as JSON, prints the closing line, returns the
    exit status (1 when a configuration failed)."""
    import time
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"args": vars(args), "rows": rows, "records": records}, f, indent=1)
    print(f"\n{len(rows)} configurations in {time.time() - start:.0f} s; records in {path}")
    return 1 if failures else 0
