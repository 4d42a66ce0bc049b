"""dispatch: the cost of one kernel look-up, measured from nogil loops (LIBXSMM's utilities/dispatch).

  python -m miniapps.dispatch [ntotal [nlocal [nthreads [nrepeat [maxsize [minsize]]]]]]

ntotal (default 10000) GEMM shapes (m, n, k) are drawn with each size in [minsize, maxsize)
(defaults 4 and 64), duplicates removed; descriptors: column-major, tight leading dimensions,
alpha = beta = 1, no transposes, no prefetch, the dtype of --dtype (default f64, the sample's DP).
nthreads (default 1) OpenMP threads share each measurement's calls; it must be 1 or this rank's
thread count (--threads). nrepeat (default 1) repeats the read-only measurements. Printed, in ns
per call on one thread (each thread times blocks of 1000 calls; the figure is the median over all
blocks of their mean, contention included; the slowest rank's), with the rate of one thread in MHz:
  function-call (empty)  a call through a function pointer to an empty C function
  dispatch (ro/cached)   look-ups cycling through the nlocal kernels built beforehand
  code-gen (rw)          the first look-up of every other shape, which builds its kernel (here a
                         kernel is selected and a record written, no code is generated: no JIT)
  dispatch (ro)          look-ups of all shapes in shuffled order
  check=                 the L1 norm of C after running every kernel once (C += A B on the
                         leading blocks of shared buffers); --check compares it with numpy
Each read-only measurement has one untimed warm-up pass; the build happens once per process.
"""
import numpy as np

import core.smm
from miniapps import _dispatch_bench as bench
from miniapps import runtime as rt

SEED = 1975
DEFAULT_MAXSIZE = 64  # LIBXSMM's default maximum M of the dispatch test
LABELS = {"empty": "function-call (empty)", "cached": "dispatch (ro/cached)", "build": "code-gen (rw)",
          "registry": "dispatch (ro)"}


def add_arguments(parser):
    parser.add_argument("ntotal", nargs="?", type=int, default=10000, help="shapes drawn (default 10000)")
    parser.add_argument("nlocal", nargs="?", type=int, default=1, help="kernels of the cached look-ups (default 1)")
    parser.add_argument("nthreads", nargs="?", type=int, default=1,
                        help="threads sharing the calls: 1 (default) or the rank's --threads")
    parser.add_argument("nrepeat", nargs="?", type=int, default=1, help="passes of the read-only measurements (default 1)")
    parser.add_argument("maxsize", nargs="?", type=int, default=DEFAULT_MAXSIZE,
                        help=f"m, n, k are < maxsize (default {DEFAULT_MAXSIZE})")
    parser.add_argument("minsize", nargs="?", type=int, default=4, help="m, n, k are >= minsize (default 4)")


def parse_problem(args, team):
    if args.ntotal < 1:
        raise rt.UsageError(f"ntotal must be >= 1, got {args.ntotal}")
    if args.nlocal < 1:
        raise rt.UsageError(f"nlocal must be >= 1, got {args.nlocal}")
    if args.nrepeat < 1:
        raise rt.UsageError(f"nrepeat must be >= 1, got {args.nrepeat}")
    if args.minsize < 1:
        raise rt.UsageError(f"minsize must be >= 1, got {args.minsize}")
    if args.maxsize <= args.minsize:
        raise rt.UsageError(f"maxsize must exceed minsize ({args.minsize}), got {args.maxsize}")
    if args.maxsize > 4097:
        raise rt.UsageError(f"maxsize={args.maxsize} is not a small matrix (at most 4097)")
    if args.ntotal * args.nrepeat > 10 ** 10:
        raise rt.UsageError(f"ntotal*nrepeat={args.ntotal * args.nrepeat} calls would take too long")
    if args.nthreads not in (1, team):
        raise rt.UsageError(f"nthreads={args.nthreads} must be 1 or this rank's thread count ({team}): "
                            f"run with --threads {args.nthreads}")
    return args.ntotal, args.nlocal, args.nthreads, args.nrepeat, args.maxsize, args.minsize


def draw_shapes(ntotal, minsize, maxsize, seed=SEED):
    """ntotal (m, n, k) rows, each size in [minsize, maxsize), duplicates removed (first kept, in order)."""
    triplets = np.random.default_rng(seed).integers(minsize, maxsize, size=(ntotal, 3), dtype=np.int64)
    _, first = np.unique(triplets, axis=0, return_index=True)
    return triplets[np.sort(first)]


def reference_check(shapes, a, b, c0):
    """C after every product, computed by numpy in float64 (the blocks' memory is X^T row-major)."""
    c = c0.astype(np.float64)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    for m, n, k in shapes:
        c[:m * n].reshape(n, m)[...] += b64[:k * n].reshape(n, k) @ a64[:m * k].reshape(k, m)
    return c


def _format(seconds_per_call, prefer_us=False):
    ns = 1e9 * seconds_per_call
    if prefer_us and ns >= 1000:
        return f"{ns / 1000:.1f} us ({1e-3 / seconds_per_call:.0f} kHz)"
    return f"{ns:.1f} ns ({1e-6 / seconds_per_call:.0f} MHz)" if seconds_per_call > 0 else "0 ns"


def _allmax(ctx, value):
    return ctx.comm.allreduce(value, op=ctx.mpi.MAX) if ctx.mpi is not None else value


def main(ctx):
    ntotal, nlocal, nthreads, nrepeat, maxsize, minsize = parse_problem(ctx.args, ctx.threads)
    shapes = draw_shapes(ntotal, minsize, maxsize)
    nunique = len(shapes)
    nlocal = min(nlocal, nunique)
    descs = bench.Descriptors(shapes[:, 0], shapes[:, 1], shapes[:, 2], dtype=ctx.dtype)
    ctx.header(f"Dispatching total={ntotal} ({nunique} distinct, sizes in [{minsize},{maxsize})) and "
               f"local={nlocal} kernels using {nthreads} thread{'s' if nthreads > 1 else ''}"
               + (f" on each of {ctx.size} ranks" if ctx.size > 1 else "") + "...")
    before = core.smm.registry_stats()["kernels"]
    results = {}

    def measure(name, fn, warmup=None):
        if warmup is not None:
            warmup()
        ctx.barrier()
        results[name] = fn()

    calls = ntotal * nrepeat
    measure("empty", lambda: bench.empty_calls(calls, nthreads), lambda: bench.empty_calls(min(calls, 100000), nthreads))
    bench.dispatch_order(descs, np.arange(nlocal, dtype=np.int64))   # the nlocal kernels, built untimed
    measure("cached", lambda: bench.dispatch_cycle(descs, nlocal, calls, nthreads),
            lambda: bench.dispatch_cycle(descs, nlocal, min(calls, 100000), nthreads))
    built_before = core.smm.registry_stats()["kernels"]
    measure("build", lambda: bench.dispatch_order(descs, np.arange(nlocal, nunique, dtype=np.int64), 1, nthreads))
    built = core.smm.registry_stats()["kernels"] - built_before
    order = np.random.default_rng(SEED + 1).permutation(nunique).astype(np.int64)
    measure("registry", lambda: bench.dispatch_order(descs, order, nrepeat, nthreads),
            lambda: bench.dispatch_order(descs, order, 1, nthreads))

    rng = np.random.default_rng(SEED + 2)
    side = (maxsize - 1) ** 2
    a = rng.random(side, dtype=ctx.dtype) - ctx.dtype.type(0.5)
    b = rng.random(side, dtype=ctx.dtype) - ctx.dtype.type(0.5)
    c = np.zeros(side, dtype=ctx.dtype)
    failed_runs = bench.run_each(descs, a, b, c)
    norm = float(np.abs(c.astype(np.float64)).sum())
    chk = None
    if ctx.check:
        eps = float(np.finfo(ctx.dtype).eps)
        # Every product adds a rounding of about one ulp per term; C sums nunique products.
        tol = max(1e-10 if ctx.dtype == np.float64 else 1e-4, eps * (maxsize + nunique))
        chk = ctx.validate(c, lambda: reference_check(shapes, a, b, np.zeros_like(c)), tol=tol)

    failures = {name: r[3] for name, r in results.items() if r[3]}
    if failed_runs:
        failures["check"] = failed_runs
    for name in ("empty", "cached", "build", "registry"):
        thread_seconds, wall, ncalls, failed, block_seconds, block_calls = results[name]
        per_call = bench.per_call(block_seconds, block_calls)
        worst = _allmax(ctx, per_call)
        mean = _allmax(ctx, thread_seconds / ncalls if ncalls else 0.0)
        timing = ctx.gather_timing(wall)
        extra = {"ns_per_call": 1e9 * worst, "ns_per_call_mean": 1e9 * mean, "blocks": len(block_calls),
                 "nthreads": nthreads, "ntotal": ntotal, "distinct": nunique, "nlocal": nlocal,
                 "nrepeat": nrepeat, "maxsize": maxsize, "minsize": minsize, "l1_norm": norm,
                 "failed_lookups": int(failed)}
        if name == "build":
            extra["kernels_built"] = built
        ctx.report(name, timing, calls=ncalls, check=chk if name == "registry" else None, extra=extra,
                   label=LABELS[name], show=False)
        if name == "build" and ncalls == 0:
            ctx.print(f"\t{LABELS[name]}: no kernel left to build")
        else:
            ctx.print(f"\t{LABELS[name]}: {_format(worst, prefer_us=name == 'build')}")
    ctx.print(f"\tcheck={norm:.6g}" + ("" if chk is None else
              f" (max_rel={chk['max_rel_err']:.3g} vs numpy{'' if chk['ok'] else ', FAILED'})"))
    if built != nunique - nlocal and ctx.rank == 0:
        ctx.print(f"note: {built} kernels were built during code-gen, not {nunique - nlocal} "
                  f"(the registry held {before} kernels at the start)")
    if failures:
        ctx.fail(f"look-ups returned no kernel: {failures}")
    ctx.print("Finished")


if __name__ == "__main__":
    rt.run("dispatch", main, add_arguments, doc=__doc__)
