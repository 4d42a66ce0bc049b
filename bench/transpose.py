"""Transpose bandwidth in ONE run: core.transpose beside numpy, torch and a STREAM copy of the same bytes.

  python bench/transpose.py [--sizes 1000,4096,20000] [--threads 1,2] [--inplace 20000] [--odd-ld] [--json PATH]

For each f64 N x N matrix and thread count it times, interleaved (so that all see the same machine
load), best of --repeat (at least 40 where input and output fit in the last-level cache together;
each of those timings follows an untimed call of the same variant, so that it finds its operands
in cache as a caller working on a matrix that size does):
  copy        the STREAM copy of the same bytes: the faster of numpy.copyto (the C library's memcpy,
              one thread) and core.transpose.copy (OpenMP, streaming stores when large);
  core        core.transpose.transpose(a, out) into a preallocated output;
  core-ldo+1  (--odd-ld) the same into rows of N+1 elements, which do not start on 64-byte lines;
  numpy       numpy.ascontiguousarray(a.T) (allocates its output, as numpy users do; one thread);
  torch       torch.from_numpy(a).t().contiguous() with torch.set_num_threads(threads), if installed;
and in place (--inplace N): core.transpose.transpose_inplace(a).

GiB/s count bytes as LIBXSMM's sample does: 3x the matrix out of place and for the copy (read,
read-for-ownership, write), 2x in place. "% copy" is copy time / time: the share of the copy's
bandwidth reached moving the same bytes (independent of how bytes are counted). Issue 7's targets:
out of place >= 90 % of copy, in place (20000^2) >= 50 %; LIBXSMM 1.17 measured 2.9 GiB/s
(4096^2, 1 thread) and 0.8 GiB/s (in place) on this machine class.
"""
import argparse
import datetime
import gc
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _apps import available_bytes  # noqa: E402
from core import cpu  # noqa: E402
from core import transpose as tr  # noqa: E402

GIB = float(1 << 30)
LIBXSMM_117 = {("core", 4096, 1): 2.9, ("core-inplace", 20000, 1): 0.8}




def _timed(fn, warm=False):
    """Seconds of one call of fn; warm: after an untimed call of the same fn (its operands then sit
    in cache as they do for a caller that works on them)."""
    if warm:
        fn()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _fill(a):
    # Distinct values, cheap to make for 3.2 GB (random numbers would take longer than the benchmark).
    n = a.shape[1]
    for start in range(0, a.shape[0], 512):
        rows = a[start:start + 512]
        rows[...] = np.arange(start * n, start * n + rows.size, dtype=np.float64).reshape(rows.shape)


def _spot_check(result, a, rng, what):
    rows = rng.integers(0, result.shape[0], size=min(64, result.shape[0]))
    if not np.array_equal(result[rows], a[:, rows].T):
        raise SystemExit(f"{what}: wrong result")


def bench_size(n, threads_list, repeat, peers, rng, log, odd_ld=False):
    """Rows for one out-of-place size: {variant: seconds} per thread count."""
    nbytes = n * n * 8
    a = np.empty((n, n))
    _fill(a)
    out = np.empty_like(a)
    np.copyto(out, a)  # first touch
    tr.transpose(a, out)
    _spot_check(out, a, rng, f"core.transpose {n}^2")
    # The same into rows of n + 1 elements: output rows off the 64-byte lines (streamed through the
    # staging buffer of trans_impl.h).
    out_odd = np.empty((n, n + 1))[:, :n] if odd_ld else None
    if odd_ld:
        np.copyto(out_odd, a)
        tr.transpose(a, out_odd)
        _spot_check(out_odd, a, rng, f"core.transpose {n}^2 into ldo={n + 1}")
    free = available_bytes()
    room = free is None or free > 1.5 * nbytes
    if not room:
        log(f"  {n}^2: only {free / GIB:.1f} GiB free: numpy/torch (which allocate) skipped")
    torch = None
    if peers and room:
        try:
            import torch as _torch
            torch = _torch
        except ImportError:
            log("  torch not installed: skipped")
    big = nbytes > (1 << 30)
    # Input and output fit in the last-level cache together: each timing follows an untimed call of
    # the same variant (a caller's matrix that size is in cache; timed cold, after other variants
    # evicted it, the figures mostly measured what the previous variant left behind), and more of
    # them, as such calls are short.
    warm = 2 * nbytes <= cpu.cache_bytes(3)
    rows = []
    for threads in threads_list:
        best = {}
        reps = max(1, repeat // 2) if big else max(repeat, 40) if warm else repeat
        for r in range(reps):
            for name, fn in (("copy-numpy", lambda: np.copyto(out, a)),
                             ("copy-core", lambda: tr.copy(a, out, threads=threads)),
                             ("core", lambda: tr.transpose(a, out, threads=threads)),
                             ("core-ldo+1", (lambda: tr.transpose(a, out_odd, threads=threads)) if odd_ld else None)):
                if fn is not None:
                    best[name] = min(best.get(name, np.inf), _timed(fn, warm))
            # numpy and torch allocate a fresh output each time and are slow: fewer repetitions.
            if peers and room and (r == 0 or not big) and (threads == 1 or torch is not None):
                if threads == 1:
                    t = _timed(lambda: np.ascontiguousarray(a.T), warm)
                    best["numpy"] = min(best.get("numpy", np.inf), t)
                    gc.collect()
                if torch is not None:
                    torch.set_num_threads(threads)
                    ta = torch.from_numpy(a)
                    t = _timed(lambda: ta.t().contiguous(), warm)
                    best["torch"] = min(best.get("torch", np.inf), t)
                    del ta
                    gc.collect()
        tr.transpose(a, out, threads=threads)
        _spot_check(out, a, rng, f"core.transpose {n}^2 threads={threads}")
        rows.append((threads, best))
    return rows  # a and out die here: the next size can allocate


def bench_inplace(n, threads_list, repeat, rng, log):
    a = np.empty((n, n))
    _fill(a)
    out = np.empty_like(a)
    np.copyto(out, a)
    probe = rng.integers(0, n, size=64)
    before = a[:, probe].T.copy()
    tr.transpose_inplace(a)
    if not np.array_equal(a[probe], before):
        raise SystemExit("core.transpose_inplace: wrong result")
    tr.transpose_inplace(a)  # back
    rows = []
    big = a.nbytes > (1 << 30)
    for threads in threads_list:
        best = {}
        for _ in range(max(1, repeat // 2) if big else repeat):
            for name, fn in (("copy-numpy", lambda: np.copyto(out, a)),
                             ("copy-core", lambda: tr.copy(a, out, threads=threads)),
                             ("core-inplace", lambda: tr.transpose_inplace(a, threads=threads))):
                best[name] = min(best.get(name, np.inf), _timed(fn))
        rows.append((threads, best))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,4096,20000", help="out-of-place N (N x N f64), comma-separated")
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    p.add_argument("--inplace", default="20000", help="in-place N, comma-separated ('' for none)")
    p.add_argument("--repeat", type=int, default=6, help="repetitions (best counts; halved above 1 GiB)")
    p.add_argument("--no-peers", action="store_true", help="skip numpy and torch")
    p.add_argument("--odd-ld", action="store_true",
                   help="also time core.transpose into rows of N+1 elements (core-ldo+1: rows off the 64-byte lines)")
    p.add_argument("--json", default=None, help="write the results to this file")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    threads_list = [int(s) for s in args.threads.split(",") if s]
    inplace = [int(s) for s in args.inplace.split(",") if s]
    log = lambda *a: print(*a, file=sys.stderr, flush=True)
    rng = np.random.default_rng(7)
    load0 = os.getloadavg()
    plans = {(n, t): tr.plan(n, n, threads=t) for n in sizes for t in threads_list}
    print(f"# {cpu.model()}, target {cpu.target()}, load average {load0[0]:.2f}; "
          f"bytes: 3x matrix (out of place, copy), 2x (in place); % copy = copy time / time")
    print(f"{'N':>6} {'thr':>3} {'variant':<13} {'ms':>10} {'GiB/s':>8} {'% copy':>7}  note")
    results = []

    def emit(n, threads, best, factor_of):
        copy_t = min(best["copy-numpy"], best["copy-core"])
        for name, secs in best.items():
            factor = factor_of(name)
            gibs = factor * n * n * 8 / secs / GIB
            pct = 100.0 * copy_t / secs
            note = ""
            if name == "core":
                pl = plans.get((n, threads)) or tr.plan(n, n, threads=threads)
                note = f"{pl['kernel']} tile {pl['tile_m']}x{pl['tile_n']} ({pl['tile_source']['m']})"
                note += "  target >= 90%: " + ("met" if pct >= 90 else "MISSED")
            elif name == "core-inplace":
                note = "target >= 50%: " + ("met" if pct >= 50 else "MISSED")
            ref = LIBXSMM_117.get((name, n, threads))
            if ref:
                note += f"  (LIBXSMM 1.17: {ref} GiB/s, {gibs / ref:.0f}x)"
            print(f"{n:>6} {threads:>3} {name:<13} {1e3 * secs:>10.2f} {gibs:>8.1f} {pct:>6.0f}%  {note}", flush=True)
            results.append({"n": n, "threads": threads, "variant": name, "seconds": secs, "gibs": gibs,
                            "bytes_factor": factor, "pct_of_copy": pct, "copy_seconds": copy_t})

    for n in sizes:
        for threads, best in bench_size(n, threads_list, args.repeat, not args.no_peers, rng, log, args.odd_ld):
            emit(n, threads, best, lambda name: 3)
        gc.collect()
    for n in inplace:
        for threads, best in bench_inplace(n, threads_list, args.repeat, rng, log):
            emit(n, threads, best, lambda name: 2 if name == "core-inplace" else 3)
        gc.collect()
    load1 = os.getloadavg()
    print(f"# load average at the end {load1[0]:.2f} (the machine is shared: compare rows of one run)")
    if args.json:
        doc = {"benchmark": "transpose", "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
               "cpu": cpu.info(), "load_average": [load0, load1], "argv": sys.argv[1:],
               "numpy": np.__version__, "results": results}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
