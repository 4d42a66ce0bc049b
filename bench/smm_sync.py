"""Repeated C blocks in ONE run: gemm_batch's two ways of keeping concurrent updates of one C
serial, side by side on the same stacks.

  python bench/smm_sync.py [--shapes 5,13,23] [--entries 30000] [--cblocks 400] [--threads 1,2]
                           [--repeats 7] [--json PATH]

A DBCSR-like index stack (float64, m = n = k, int32 element offsets) of --entries products whose C
blocks are drawn from --cblocks distinct blocks, either sorted by C (as DBCSR hands stacks over)
or shuffled. Variants (each gemm_batch(..., beta=1, threads=T)):
  group   sync="group" (default): entries grouped by C (sorted stacks: in place; others: a stable
          O(n) grouping), runs of one C batch-reduced, whole runs per task, no locks;
  locks   sync="locks": contiguous entry ranges per thread, each run of one C under a hashed lock.
Samples of all variants are interleaved; figures are medians (GFLOP/s, 2mnk per product) and each
variant's ratio to "group". Results are checked against a serial reference before timing.
"""
import argparse
import json
import time

import numpy as np

import core.smm as smm


def stack(m, entries, cblocks, sort, rng):
    """Flat buffers and int32 offsets: A and B blocks drawn from pools, C from `cblocks` blocks."""
    size = m * m
    npool = 512
    a = rng.standard_normal(npool * size)
    b = rng.standard_normal(npool * size)
    c = np.zeros(cblocks * size)
    ia = (rng.integers(0, npool, entries) * size).astype(np.int32)
    ib = (rng.integers(0, npool, entries) * size).astype(np.int32)
    ic = (rng.integers(0, cblocks, entries) * size).astype(np.int32)
    if sort:
        order = np.argsort(ic, kind="stable")
        ia, ib, ic = ia[order], ib[order], ic[order]
    return a, b, c, ia, ib, ic


def reference(m, a, b, c, ia, ib, ic):
    out = c.copy()
    size = m * m
    A = a.reshape(-1, m, m).transpose(0, 2, 1)   # column-major blocks
    B = b.reshape(-1, m, m).transpose(0, 2, 1)
    prod = A[ia // size] @ B[ib // size]
    C = np.zeros((c.shape[0] // size, m, m))
    np.add.at(C, ic // size, prod)
    out += C.transpose(0, 2, 1).reshape(-1)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default="5,13,23")
    p.add_argument("--entries", type=int, default=30000)
    p.add_argument("--cblocks", type=int, default=400)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--variants", default="group,locks")
    p.add_argument("--json")
    args = p.parse_args(argv)
    rng = np.random.default_rng(1)
    variants = tuple(args.variants.split(","))
    rows = []
    print(f"# {args.entries} entries onto {args.cblocks} C blocks, f64, int32 offsets; GFLOP/s medians "
          f"of {args.repeats}; ratio to the first variant")
    print(f"{'m':>4} {'order':>8} {'thr':>3} " + " ".join(f"{v:>14}" for v in variants))
    for m in [int(s) for s in args.shapes.split(",")]:
        for sort in (True, False):
            a, b, c0, ia, ib, ic = stack(m, args.entries, args.cblocks, sort, rng)
            ref = reference(m, a, b, c0, ia, ib, ic)
            for t in [int(s) for s in args.threads.split(",")]:
                kw = dict(m=m, n=m, k=m, a_index=ia, b_index=ib, c_index=ic, threads=t)
                for v in variants:
                    c = c0.copy()
                    smm.gemm_batch(a, b, c, 1.0, 1.0, sync=v, **kw)
                    err = np.max(np.abs(c - ref)) / max(1.0, np.max(np.abs(ref)))
                    if err > 1e-12:
                        raise SystemExit(f"m={m} sync={v} threads={t}: max relative error {err:.2e}")
                times = {v: [] for v in variants}
                c = c0.copy()
                for _ in range(args.repeats):
                    for v in variants:
                        reps, t0 = 0, time.perf_counter()
                        while True:
                            smm.gemm_batch(a, b, c, 1.0, 1.0, sync=v, **kw)
                            reps += 1
                            dt = time.perf_counter() - t0
                            if dt > 0.02:
                                break
                        times[v].append(dt / reps)
                flops = 2.0 * m ** 3 * args.entries
                gf = {v: flops / np.median(times[v]) / 1e9 for v in variants}
                cells = " ".join(f"{gf[v]:7.2f} ({gf[v] / gf[variants[0]]:4.2f})" for v in variants)
                print(f"{m:>4} {'sorted' if sort else 'shuffled':>8} {t:>3} {cells}", flush=True)
                rows.append({"m": m, "sorted": sort, "threads": t, "gflops": gf})
    if args.json:
        with open(args.json, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
