"""transpose: out-of-place and in-place matrix transposes (LIBXSMM's samples/transpose).

  python -m miniapps.transpose [o|i [m [n [ldi [ldo [nruns [lbound]]]]]]]

kind: o (default) out of place, i in place (then n = m, and one leading dimension max(ldi, ldo)).
m defaults to 4096, n to m; ldi = max(ldi, m), ldo = max(ldo, n). nruns: 0 one run; > 0 that many
runs with random shapes; < 0 |nruns| runs of the fixed shape. lbound: random extents are drawn
from [|lbound|, m] and [|lbound|, n]; a negative lbound makes the leading dimensions tight, else
they are random too (at least the drawn extent). Each random shape is transposed once, untimed,
before its timed run. Data: in(j, i) = i*m + j, column-major.

Printed: bandwidth = sum(km*kn*size)*f / (duration*2^30) with f = 3 out of place (read,
read-for-ownership, write) and 2 in place; duration = the mean per run when lbound = 0, else the
total. --check (the sample's CHECK=1) validates exactly, out[i*ldo + j] == in[j*ldi + i], and
times numpy as the reference ("reference: R x" = this library's time / numpy's).
Tile sizes: TRANS_M/TRANS_N, else the tuned-parameter file (python -m miniapps.transpose.tune),
else built-in defaults; see docs/transpose.md.
"""
import numpy as np

from core import transpose as tr
from miniapps import runtime as rt
from miniapps.transpose import SEED, random_shapes, shape_table
from miniapps.transpose import _kern


def _kind(text):
    kind = str(text).strip().lower()[:1]
    if kind not in ("o", "i"):
        raise rt.UsageError(f"kind must be o (out of place) or i (in place), got {text!r}")
    return kind


def add_arguments(parser):
    parser.add_argument("kind", nargs="?", default="o", help="o: out of place (default), i: in place")
    parser.add_argument("m", nargs="?", type=int, default=4096, help="rows of the input (default 4096)")
    parser.add_argument("n", nargs="?", type=int, default=0, help="columns of the input (default m)")
    parser.add_argument("ldi", nargs="?", type=int, default=0, help="input leading dimension (>= m)")
    parser.add_argument("ldo", nargs="?", type=int, default=0, help="output leading dimension (>= n)")
    parser.add_argument("nruns", nargs="?", type=int, default=0,
                        help="0: one run; > 0: random shapes; < 0: |nruns| runs of the fixed shape")
    parser.add_argument("lbound", nargs="?", type=int, default=0,
                        help="lower bound of random extents (negative: tight leading dimensions)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the random shapes (default {SEED})")


def _views(inbuf, outbuf, km, kn, kldi, kldo):
    """(input as kn x km rows-of-columns, output as km x kn) numpy views: out_view == in_view.T."""
    a = inbuf[:kn * kldi].reshape(kn, kldi)[:, :km]
    o = outbuf[:km * kldo].reshape(km, kldo)[:, :kn]
    return a, o


def _fill(inbuf, m, n, ldi):
    cols = inbuf[:n * ldi].reshape(n, ldi)
    cols[:, :m] = (np.arange(n, dtype=np.float64)[:, None] * m + np.arange(m)[None, :]).astype(inbuf.dtype)


def _validate(ctx, inbuf, outbuf, table, kind, pristine):
    """Collective: re-run each distinct shape once and compare with numpy, exactly."""
    results = []
    for row in np.unique(table, axis=0):
        km, kn, kldi, kldo = (int(x) for x in row[:4])
        if kind == "i":
            inbuf[:] = pristine
            _kern.run_shapes(inbuf, None, row[None, :], "i", warm_each=False)
            got = inbuf[:km * kldi].reshape(km, kldi)[:, :km]
            ref = pristine[:km * kldi].reshape(km, kldi)[:, :km].T
        else:
            _kern.run_shapes(inbuf, outbuf, row[None, :], "o", warm_each=False)
            ref, got = _views(inbuf, outbuf, km, kn, kldi, kldo)
            ref = ref.T
        results.append(ctx.validate(got, ref, tol=0.0))
    if kind == "i":
        inbuf[:] = pristine
    failed = [c for c in results if not c["ok"]]
    return max(failed or results, key=lambda c: c["max_rel_err"])


def _numpy_seconds(inbuf, outbuf, shapes, kind, warm_each):
    """The reference: numpy's own transpose copy (np.copyto from the transposed view)."""
    import time
    total = 0.0
    for km, kn, kldi, kldo in shapes:
        if kind == "i":
            m_view = inbuf[:km * kldi].reshape(km, kldi)[:, :km]
            call = lambda v=m_view: np.copyto(v, v.T.copy())  # numpy has no in-place transpose
        else:
            a, o = _views(inbuf, outbuf, km, kn, kldi, kldo)
            call = lambda a=a, o=o: np.copyto(o, a.T)
        if warm_each:
            call()
        t0 = time.perf_counter()
        call()
        total += time.perf_counter() - t0
    return total


def main(ctx):
    a = ctx.args
    kind = _kind(a.kind)
    inplace = kind == "i"
    if a.m < 1:
        ctx.usage_error(f"m must be >= 1, got {a.m}")
    if a.n < 0 or a.ldi < 0 or a.ldo < 0:
        ctx.usage_error("n, ldi and ldo must be >= 0")
    m = a.m
    n = m if inplace else (a.n or m)
    ldi, ldo = max(a.ldi, m), max(a.ldo, n)
    if inplace:
        ldi = ldo = max(ldi, ldo)
    if abs(a.lbound) > min(m, n):
        ctx.usage_error(f"|lbound|={abs(a.lbound)} exceeds min(m, n)={min(m, n)}")
    dtype = ctx.dtype
    es = dtype.itemsize
    name = {8: "double", 4: "float"}[es]
    ctx.header(f"m={m} n={n} ldi={ldi} ldo={ldo} size={m * n * es / 2 ** 20:.0f}MB "
               f"({name}, {'in-place' if inplace else 'out-of-place'})")

    random = a.nruns > 0
    runs = a.nruns if random else max(1, -a.nruns)
    if random:
        shapes = random_shapes(np.random.default_rng(a.seed), m, n, ldi, ldo, runs, a.lbound, inplace)
    else:
        shapes = [(m, n, ldi, ldo)] * runs
    table = shape_table(shapes, dtype, kind, threads=ctx.threads)
    p = tr.plan(m, n, dtype=dtype, kind=kind, threads=ctx.threads)
    src = p["tile_source"]
    ctx.print(f"\tkernel={p['kernel']} tile={p['tile_m']}x{p['tile_n']} ({src['m']}/{src['n']}) "
              f"threads={p['threads']} streaming={'yes' if p['streaming'] else 'no'}"
              + (" (per random shape: size class, tiles and threads as planned)" if random else ""))

    inbuf = np.zeros(ldi * n, dtype=dtype)
    _fill(inbuf, m, n, ldi)
    outbuf = np.zeros(ldo * m, dtype=dtype) if not inplace else None
    pristine = inbuf.copy() if inplace and ctx.check else None

    per_run = a.lbound == 0
    factor = 2 if inplace else 3
    nbytes = float(sum(km * kn for km, kn, _, _ in shapes)) * es * factor
    total = 0.0
    for _ in range(a.repeat):
        ctx.barrier()
        if not random:
            _kern.run_shapes(inbuf, outbuf, table[:1], kind, warm_each=False)  # untimed warm-up
        total += float(_kern.run_shapes(inbuf, outbuf, table, kind, warm_each=random).sum())
    seconds = total / a.repeat
    timing = ctx.gather_timing(seconds / runs if per_run else seconds, repeat=runs, per_repeat=per_run)

    check = _validate(ctx, inbuf, outbuf, table, kind, pristine) if ctx.check else None
    ref = None
    if ctx.check:
        ref_seconds = _numpy_seconds(inbuf, outbuf, shapes, kind, random)
        if inplace:
            inbuf[:] = pristine
        ref = ctx.gather_timing(ref_seconds / runs if per_run else ref_seconds, repeat=runs, per_repeat=per_run)
    extra = {"kind": kind, "m": m, "n": n, "ldi": ldi, "ldo": ldo, "nruns": a.nruns, "lbound": a.lbound,
             "kernel": p["kernel"], "tile_m": p["tile_m"], "tile_n": p["tile_n"], "tile_source": src,
             "streaming": p["streaming"], "bytes_factor": factor,
             "reference_ratio": timing.max / ref.max if ref is not None and ref.max > 0 else None}
    work = {"nbytes": nbytes / runs if per_run else nbytes, "calls": 1 if per_run else runs}
    ctx.report("transpose", timing, check=check, extra=extra, label="core.transpose", **work)
    if ref is not None:
        ctx.report("numpy", ref, extra=extra, label="numpy (reference)", **work)
        ratio = extra["reference_ratio"]
        ctx.print(f"\treference: {ratio:.2f}x" if ratio is not None else "\treference: -")


if __name__ == "__main__":
    rt.run("transpose", main, add_arguments, doc=__doc__)
