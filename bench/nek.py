"""Sweep of the nek mini-app: every variant of axhm, grad and rstr at 1-2 threads; GFLOP/s, ratios.

    python bench/nek.py                               # axhm 8^3, grad 8^3, rstr 8->10; 1 and 2 threads
    python bench/nek.py --ops axhm --threads 1 --size 512 --out results/nek-sweep.json

Each configuration is one run of ``python -m miniapps.nek <op> m n k [mm nn kk] size1 --json``;
the table shows each variant's GFLOP/s (the sample's formulas), its speed-up over the numpy
baseline, and the issue's targets for the specialized variant (LIBXSMM's nek samples with
specialized kernels on this machine class). Timings on a shared machine are noisy: compare
ratios within one run, and repeat (--repeat) to smooth them.
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _apps import ROOT, run_app, save_sweep  # noqa: E402

VARIANTS = ("blas", "mxm", "dispatched", "specialized", "numpy")
SHORT = {"blas": "BLAS", "mxm": "mxm", "dispatched": "disp", "specialized": "spec", "numpy": "numpy"}
DIMS = {"axhm": ["8", "8", "8"], "grad": ["8", "8", "8"], "rstr": ["8", "8", "8", "10", "10", "10"]}
# GFLOP/s of the specialized variant the issue asks for (1 thread, 2 threads).
TARGET_GFLOPS = {"axhm": (9.5, 18.0), "rstr": (12.1, 24.0)}


def run_config(op, ranks, threads, *, size, repeat, dtype, timeout):
    """One mini-app run; returns its records (one per variant) or raises with the app's stderr."""
    return run_app("nek", [op, *DIMS[op], size, "--threads", threads, "--repeat", repeat, "--dtype", dtype],
                   ranks=ranks, timeout=timeout)



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", nargs="+", default=list(DIMS), choices=list(DIMS))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="threads per rank")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1], help="MPI ranks")
    ap.add_argument("--size", type=int, default=512, help="working set in MB (the app's size1; 0: 2048)")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per variant")
    ap.add_argument("--dtype", default="f64", choices=["f64", "f32"])
    ap.add_argument("--timeout", type=float, default=900, help="seconds per configuration")
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "nek-sweep.json"),
                    help="JSON file for all records (default results/nek-sweep.json)")
    args = ap.parse_args(argv)

    rows, records, failures = [], [], []
    start = time.time()
    head = f"{'op':<5}{'ranks':>5}{'thr':>4} |" + "".join(f"{SHORT[v]:>8}" for v in VARIANTS)
    head += " |" + "".join(f"{'x' + SHORT[v]:>8}" for v in VARIANTS if v != "numpy") + " | target"
    print(f"nek sweep: size1={args.size} MB dtype={args.dtype} repeat={args.repeat} "
          "(GFLOP/s; x: speed-up over numpy)")
    print(head)
    print("-" * len(head))
    for op in args.ops:
        for ranks in args.ranks:
            for threads in args.threads:
                try:
                    recs = run_config(op, ranks, threads, size=args.size, repeat=args.repeat, dtype=args.dtype,
                                      timeout=args.timeout)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    print(f"{op:<5}{ranks:>5}{threads:>4} | error: {str(exc).splitlines()[0]}")
                    failures.append((op, ranks, threads))
                    continue
                records.extend(recs)
                g = {r["variant"]: r["gflops"] for r in recs}
                base = g.get("numpy")
                line = f"{op:<5}{ranks:>5}{threads:>4} |" + "".join(
                    f"{g[v]:8.1f}" if g.get(v) else f"{'-':>8}" for v in VARIANTS)
                line += " |" + "".join(f"{g[v] / base:8.1f}" if g.get(v) and base else f"{'-':>8}"
                                       for v in VARIANTS if v != "numpy")
                note = ""
                cores = ranks * threads
                if op in TARGET_GFLOPS and cores in (1, 2) and g.get("specialized"):
                    want = TARGET_GFLOPS[op][cores - 1]
                    note = f"spec>={want}: {'ok' if g['specialized'] >= want else 'MISS'}"
                print(line + " | " + note, flush=True)
                rows.append({"op": op, "ranks": ranks, "threads": threads, "gflops": g})
    return save_sweep(args.out, args, rows, records, start, failures)


if __name__ == "__main__":
    sys.exit(main())
