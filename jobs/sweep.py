#!/usr/bin/env python3
"""Submit a scaling series of one mini-app: every combination of nodes x ranks per node x threads.

    jobs/sweep.py cp2k --nodes 1 2 4 --ranks-per-node 1 2 4 --threads 1 2 --results results/cp2k-sweep
    jobs/sweep.py smm --scheduler pbs --ranks-per-node 1 2 --threads 1 --app-args "0 23 23 23 20000 10"
    jobs/table.py results/cp2k-sweep --best --plot cp2k.png

Each job runs jobs/slurm/<app>.sbatch (or jobs/pbs/<app>.pbs) with the allocation sized for its
combination; every job appends its records to the same results folder (one JSON line per
variant, written atomically, so concurrent jobs are fine). Allocation options of your site
(partition, account, time) go after --submit-arg. --dry-run prints the commands; --wait waits for
all jobs and exits non-zero if any failed.
"""
import argparse
import itertools
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def positive_ints(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("app", help="mini-app: smm, cp2k, nek, specfem, transpose, gxm (or any, with --module)")
    p.add_argument("--nodes", type=positive_ints, nargs="+", default=[1], metavar="N")
    p.add_argument("--ranks-per-node", type=positive_ints, nargs="+", default=[1], metavar="R")
    p.add_argument("--threads", type=positive_ints, nargs="+", default=[1], metavar="T",
                   help="OpenMP threads per rank (the allocation's CPUs per task)")
    p.add_argument("--scheduler", choices=("slurm", "pbs"), default="slurm")
    p.add_argument("--app-args", default=None, help="the mini-app's own arguments (default: the job script's)")
    p.add_argument("--extra-opts", default="", help="more runtime options, e.g. '--check --repeat 5'")
    p.add_argument("--pin", choices=("none", "compact", "scatter"), default=None)
    p.add_argument("--launcher", choices=("srun", "mpiexec"), default=None,
                   help="Slurm: srun (PMI-2, default) or mpiexec inside the allocation")
    p.add_argument("--module", default=None, help="run this Python module instead of miniapps.APP")
    p.add_argument("--results", default=os.path.join(os.getcwd(), "results"),
                   help="folder the records go to (default: ./results)")
    p.add_argument("--script", default=None, help="job script (default: jobs/<scheduler>/<app>.<ext>, "
                   "or the generic miniapp script when the app has none)")
    p.add_argument("--submit-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for sbatch/qsub, repeatable (e.g. --submit-arg=--partition=short)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, submit nothing")
    p.add_argument("--wait", action="store_true", help="wait for every job; exit 1 if any failed")
    return p.parse_args(argv)


def job_script(args):
    if args.script:
        return os.path.abspath(args.script)
    folder, ext = ("slurm", "sbatch") if args.scheduler == "slurm" else ("pbs", "pbs")
    own = os.path.join(HERE, folder, f"{args.app}.{ext}")
    return own if os.path.exists(own) else os.path.join(HERE, folder, f"miniapp.{ext}")


def job_environment(args):
    """What the job script reads (exported to the job with the submitting environment)."""
    env = {"APP": args.app, "SMM_ROOT": ROOT, "RESULTS_DIR": os.path.abspath(args.results)}
    if args.app_args is not None:
        env["APP_ARGS"] = args.app_args
    if args.extra_opts:
        env["EXTRA_OPTS"] = args.extra_opts
    if args.pin:
        env["PIN"] = args.pin
    if args.launcher:
        env["LAUNCHER"] = args.launcher
    if args.module:
        env["APP_MODULE"] = args.module
    if "SMM_VENV" not in os.environ and os.path.exists(os.path.join(sys.prefix, "pyvenv.cfg")):
        env["SMM_VENV"] = sys.prefix  # run the jobs with the Python running this sweep
    return env


def commands(args):
    """(name, argv) per combination, in order."""
    script = job_script(args)
    out = []
    for nodes, ranks, threads in itertools.product(args.nodes, args.ranks_per_node, args.threads):
        name = f"{args.app}-n{nodes}r{ranks}t{threads}"
        if args.scheduler == "slurm":
            cmd = ["sbatch", "--parsable", f"--job-name={name}", f"--nodes={nodes}",
                   f"--ntasks={nodes * ranks}", f"--ntasks-per-node={ranks}", f"--cpus-per-task={threads}",
                   f"--output={os.path.join(os.path.abspath(args.results), name)}-%j.out", "--export=ALL"]
            if args.wait:
                cmd.append("--wait")
        else:
            cmd = ["qsub", "-V", "-N", name, "-j", "oe",
                   "-o", os.path.join(os.path.abspath(args.results), f"{name}.out"),
                   "-l", f"select={nodes}:ncpus={ranks * threads}:mpiprocs={ranks}:ompthreads={threads}"]
            if args.wait:
                cmd += ["-W", "block=true"]
        out.append((name, cmd + list(args.submit_arg) + [script]))
    return out


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    env = {**os.environ, **job_environment(args)}
    jobs = commands(args)
    if args.dry_run:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in job_environment(args).items())
        for _, cmd in jobs:
            print(f"{exports} {shlex.join(cmd)}")
        return 0
    os.makedirs(args.results, exist_ok=True)

    def submit(job):
        name, cmd = job
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        job_id = p.stdout.strip().splitlines()[0].split(";")[0] if p.stdout.strip() else "?"
        return name, job_id, p.returncode, p.stderr.strip()

    # With --wait every submission blocks until its job ends: run them side by side.
    with ThreadPoolExecutor(max_workers=len(jobs) if args.wait else 1) as pool:
        results = list(pool.map(submit, jobs))
    failed = 0
    for name, job_id, code, err in results:
        state = ("done" if code == 0 else f"FAILED (exit {code})") if args.wait else \
            ("submitted" if code == 0 else f"NOT SUBMITTED (exit {code})")
        failed += code != 0
        print(f"{name}\tjob {job_id}\t{state}" + (f"\t{err}" if code and err else ""))
    print(f"records: {os.path.abspath(args.results)}  (jobs/table.py {shlex.quote(args.results)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
