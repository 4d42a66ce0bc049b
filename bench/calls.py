"""One small operation per Python call, in ONE run: what a loop over small matrices in Python pays
per call, for a product (gemm) and a transpose.

  python bench/calls.py [--shapes 2,4,8,16,32] [--ops gemm,transpose] [--repeats 7] [--json PATH]

gemm variants, each on the same Fortran-ordered float64 operands, one thread:
  core.gemm     core.smm.gemm(a, b, c)                     C += A B (checks, registry look-up, call)
  core.kernel   k(a, b, c) with k = core.smm.dispatch(...)  C += A B (checks and call only)
  core.batch1   core.smm.gemm_batch on stacks of one entry  C += A B
  core.index1   the same through the index form (flat buffers, int32 offsets 0, distinct_c=True)
  numpy         numpy.matmul(a, b, out=c)                  C  = A B
  numpy.new     a @ b (a new array)
  torch         torch.addmm(c, a, b, out=c) on torch.from_numpy views (if torch is installed)
transpose variants, C-ordered float64 input a and output o (n x n):
  core.trans    core.transpose.transpose(a, o)              o = a.T
  core.copy     core.transpose.copy(a, o)                   o = a (for scale)
  numpy         numpy.copyto(o, a.T)
  numpy.new     numpy.ascontiguousarray(a.T) (a new array)
  torch         o_t.copy_(a_t.t()) on torch.from_numpy views (if torch is installed)
Samples of all variants are interleaved; each sample times a loop of calls (>= 20 ms); the figure
is the median over --repeats samples, in nanoseconds per call, and the ratio numpy / variant.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core import smm  # noqa: E402
from core import transpose as tr  # noqa: E402


def transpose_variants(m):
    a = np.random.default_rng(m).random((m, m))
    o = np.empty_like(a)
    out = {
        "core.trans": lambda: tr.transpose(a, o),
        "core.copy": lambda: tr.copy(a, o),
        "numpy": lambda: np.copyto(o, a.T),
        "numpy.new": lambda: np.ascontiguousarray(a.T),
    }
    try:
        import torch
        ta, to = torch.from_numpy(a), torch.from_numpy(o)
        out["torch"] = lambda: to.copy_(ta.t())
    except ImportError:
        pass
    return out


def gemm_variants(m):
    rng = np.random.default_rng(m)
    a, b = (np.asfortranarray(rng.random((m, m))) for _ in range(2))
    c = np.asfortranarray(np.zeros((m, m)))
    a3, b3, c3 = a[None], b[None], c[None]
    af, bf, cf = (x.reshape(-1, order="F") for x in (a, b, c))   # views: Fortran-ordered, contiguous
    i0 = np.zeros(1, np.int32)
    kern = smm.dispatch(m, m, m)
    out = {
        "core.gemm": lambda: smm.gemm(a, b, c),
        "core.kernel": lambda: kern(a, b, c),
        "core.batch1": lambda: smm.gemm_batch(a3, b3, c3, threads=1),
        "core.index1": lambda: smm.gemm_batch(af, bf, cf, a_index=i0, b_index=i0, c_index=i0, m=m, n=m, k=m,
                                              threads=1, distinct_c=True),
        "numpy": lambda: np.matmul(a, b, out=c),
        "numpy.new": lambda: a @ b,
    }
    try:
        import torch
        ta, tb, tc = (torch.from_numpy(x) for x in (a, b, c))
        out["torch"] = lambda: torch.addmm(tc, ta, tb, out=tc)
    except ImportError:
        pass
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--shapes", default="2,4,8,16,32", help="cube sizes, comma-separated")
    ap.add_argument("--ops", default="gemm,transpose", help="gemm and/or transpose")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", help="write the medians (ns per call) here")
    args = ap.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(1)
    except ImportError:
        limits = None
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass
    rows = []
    ops = args.ops.split(",")
    if not ops or any(op not in ("gemm", "transpose") for op in ops):
        raise SystemExit("--ops: gemm and/or transpose")
    for op, m in ((op, int(s)) for op in ops for s in args.shapes.split(",")):
        fns = (gemm_variants if op == "gemm" else transpose_variants)(m)
        inner = {}
        for name, fn in fns.items():   # calls per sample: >= 20 ms
            fn()
            t0 = time.perf_counter()
            for _ in range(100):
                fn()
            inner[name] = max(100, int(0.02 / max((time.perf_counter() - t0) / 100, 1e-8)))
        samples = {name: [] for name in fns}
        for _ in range(args.repeats):
            for name, fn in fns.items():
                n = inner[name]
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                samples[name].append((time.perf_counter() - t0) / n * 1e9)
        med = {name: statistics.median(v) for name, v in samples.items()}
        rows.append({"op": op, "m": m, "ns_per_call": med})
        print(f"{op} {m}^{3 if op == 'gemm' else 2}  " + "  ".join(f"{name} {ns:7.0f} ns ({med['numpy'] / ns:4.1f}x)" for name, ns in med.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"unit": "ns per call, median", "rows": rows}, f, indent=1)
    del limits


if __name__ == "__main__":
    main()
