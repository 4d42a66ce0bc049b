"""smm: a batch of small matrix multiplications C_i += A_i B_i (LIBXSMM's samples/smm).

  python -m miniapps.smm [case [m [n [k [size [nrepeat]]]]]]

Column-major, alpha = beta = 1, lda = m, ldb = k, ldc = m. Defaults m=23, k=m, n=k.
Cases (the numbering of the sample's blas/specialized programs; operands not streamed are one
matrix for the whole batch):
  0/1  Streamed (A,B,C)    every entry has its own A, B and C
  2/3  Streamed (A,C)      one B
  4/5  Streamed (B,C)      one A
  6/7  Streamed (A,B)      per-thread C: thread t's entries all accumulate into C block t
  8/9  Cached              one A, one B, per-thread C (everything stays in cache)
An even case runs the direct loops and falls through into its odd partner; an odd case runs only
the batch interface. Variants (--variants; default: all for even cases, batch,numpy for odd):
  blas         scipy cython_blas dgemm/sgemm per entry (nogil OpenMP loop)
  inlined      plain loops in Cython, vectorised by the compiler at the build's baseline ISA
  dispatched   a registry look-up (core.smm.dispatch_c) before every product
  specialized  one kernel dispatched up front, called with prefetch of the next entry's operands
  batch        core.smm.gemm_batch, index form (the sample's batch interface), one call per pass
  numpy        numpy.matmul on stacks (slices of entries; per-thread C summed per block)
size: the batch count over all ranks, capped at 2 GiB of operands per rank; 0 (default) = auto:
256 MiB of operands per node, shared among the node's ranks (the sample uses 2 GiB per process).
nrepeat: timed passes per variant (13 with auto size, else 1), times --repeat; one warm-up pass
first. Printed per variant: performance 2*s*m*n*k/duration, bandwidth s*bytes/duration with the
sample's bytes per entry ((m*k + k*n)*T + 2*m*n*T for A,B,C; minus k*n*T for A,C; minus m*k*T for
B,C; (m*k + k*n)*T for A,B; none when cached), duration per pass, and the largest error
max|C - C_ref| / max|C_ref| against a float64 numpy reference (--check: fail above the tolerance).
"""
import numpy as np

import core.smm
from miniapps import _smm_kernels
from miniapps import runtime as rt

# (title, stream_a, stream_b, stream_c) per case // 2
MODES = (("Streamed (A,B,C)", True, True, True),
         ("Streamed (A,C)", True, False, True),
         ("Streamed (B,C)", False, True, True),
         ("Streamed (A,B)", True, True, False),
         ("Cached", False, False, False))
NCASES = 2 * len(MODES)
ORDER = ("blas", "inlined", "dispatched", "specialized", "batch", "numpy")
ODD_DEFAULT = ("batch", "numpy")
LABELS = {"blas": "BLAS (cython_blas)", "inlined": "Inlined (compiler)", "dispatched": "Dispatched (registry per call)",
          "specialized": "Specialized (prefetch next)", "batch": "Batch interface (gemm_batch)",
          "numpy": "numpy (matmul on stacks)"}
AUTO_NODE_BYTES = 256 << 20   # default working set per node: beyond every cache, quick on a laptop
MAX_RANK_BYTES = 2 << 30      # the sample's 2 GiB, here a per-rank cap
NUMPY_SLICE_BYTES = 256 << 10 # numpy's product temporaries stay in L2
AUTO_NREPEAT = 13             # the sample's nrepeat with the auto size
SEED = 25071975


def add_arguments(parser):
    parser.add_argument("case", nargs="?", type=int, default=0, help=f"0..{NCASES - 1}, see above (default 0)")
    parser.add_argument("m", nargs="?", type=int, default=23, help="rows of A and C (default 23)")
    parser.add_argument("n", nargs="?", type=int, default=0, help="columns of B and C (default k)")
    parser.add_argument("k", nargs="?", type=int, default=0, help="columns of A, rows of B (default m)")
    parser.add_argument("size", nargs="?", type=int, default=0,
                        help="batch count over all ranks (default 0: auto, 256 MiB per node)")
    parser.add_argument("nrepeat", nargs="?", type=int, default=0,
                        help="timed passes per variant (default 0: 13 with auto size, else 1)")
    parser.add_argument("--variants", default=None, metavar="LIST",
                        help=f"comma-separated subset of {','.join(ORDER)} (run in that order)")


def parse_problem(args):
    """``dict(case, mode, m, n, k, size, nrepeat)`` from the sample's positional arguments."""
    if not 0 <= args.case < NCASES:
        raise rt.UsageError(f"case must be in 0..{NCASES - 1}, got {args.case}")
    m = args.m
    k = args.k or m
    n = args.n or k
    for name, v in (("m", m), ("n", n), ("k", k)):
        if v < 1:
            raise rt.UsageError(f"{name} must be >= 1, got {v}")
        if v > 4096:
            raise rt.UsageError(f"{name}={v} is not a small matrix (at most 4096)")
    if args.size < 0:
        raise rt.UsageError(f"size must be >= 0 (0: auto), got {args.size}")
    if args.nrepeat < 0:
        raise rt.UsageError(f"nrepeat must be >= 0 (0: default), got {args.nrepeat}")
    nrepeat = args.nrepeat or (AUTO_NREPEAT if args.size == 0 else 1)
    return {"case": args.case, "mode": args.case // 2, "m": m, "n": n, "k": k, "size": args.size, "nrepeat": nrepeat}


def parse_variants(text, case):
    if text is None:
        return list(ORDER if case % 2 == 0 else ODD_DEFAULT)
    chosen = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in chosen if v not in ORDER]
    if bad or not chosen:
        raise rt.UsageError(f"--variants: unknown {bad or text!r}; choose from {','.join(ORDER)}")
    return [v for v in ORDER if v in chosen]


def entry_bytes(mode, m, n, k, itemsize):
    """The sample's bytes moved per entry (C counted twice: read for ownership and write); None
    for the cached case."""
    a, b, c2 = m * k * itemsize, k * n * itemsize, 2 * m * n * itemsize
    return (a + b + c2, a + c2, b + c2, a + b, None)[mode]


def footprint(m, n, k, itemsize):
    """Bytes per entry that size the batch (the sample's (m*k + k*n)*Tin + m*n*Tout)."""
    return (m * k + k * n + m * n) * itemsize


def split(total, size, rank):
    base, extra = divmod(total, size)
    return base + (1 if rank < extra else 0)


def batch_sizes(size, item_bytes, local_size, ranks, rank):
    """``(this rank's batch, capped)``: auto (size 0) is AUTO_NODE_BYTES per node shared by its ranks."""
    cap = max(1, MAX_RANK_BYTES // item_bytes)
    if size == 0:
        return max(1, min(cap, AUTO_NODE_BYTES // local_size // item_bytes)), False
    mine = split(size, ranks, rank)
    return min(mine, cap), mine > cap


class Batch:
    """One rank's operands of a case, in flat buffers of tight column-major blocks.

    Entry i uses A block ``i`` (or 0), B block ``i`` (or 0) and C block ``i`` (streamed C) or
    ``i // chunk`` (per-thread C, ``chunk`` from :func:`miniapps._smm_kernels.thread_chunk`).
    """

    def __init__(self, mode, m, n, k, batch, dtype, threads, seed):
        _, self.stream_a, self.stream_b, self.stream_c = MODES[mode]
        self.mode, self.m, self.n, self.k, self.batch = mode, m, n, k, batch
        self.dtype, self.threads = np.dtype(dtype), threads
        rng = np.random.default_rng(seed)
        self.a = rng.random(max(1, batch if self.stream_a else 1) * m * k, dtype=self.dtype) - self.dtype.type(0.5)
        self.b = rng.random(max(1, batch if self.stream_b else 1) * k * n, dtype=self.dtype) - self.dtype.type(0.5)
        self.chunk = _smm_kernels.thread_chunk(batch, threads)
        self.nblocks = _smm_kernels.c_blocks(batch, threads, self.stream_c)
        self.c = np.zeros(max(1, self.nblocks) * m * n, dtype=self.dtype)
        self.block = np.arange(batch, dtype=np.int64) if self.stream_c else np.arange(batch, dtype=np.int64) // self.chunk
        self._index = None

    @property
    def accumulations(self):
        """Products summed into one C block per pass (the longest sum, for the error bound)."""
        return 1 if self.stream_c else min(self.chunk, self.batch)

    def reset(self):
        self.c.fill(0)

    def run(self, variant, kernel=None):
        """One pass of a variant: C blocks += the products of their entries."""
        if variant == "numpy":
            self.numpy_pass()
        elif variant == "batch":
            ia, ib, ic = self.indices()
            core.smm.gemm_batch(self.a, self.b, self.c, 1.0, 1.0, a_index=ia, b_index=ib, c_index=ic,
                                m=self.m, n=self.n, k=self.k, threads=self.threads, distinct_c=self.stream_c)
        else:
            _smm_kernels.stream(variant, self.a, self.b, self.c, self.m, self.n, self.k, self.batch,
                                stream_a=self.stream_a, stream_b=self.stream_b, stream_c=self.stream_c,
                                threads=self.threads, kernel=kernel)

    def indices(self):
        """Element offsets of every entry's blocks (None: the one matrix), as the batch interface takes."""
        if self._index is None:
            e = np.arange(self.batch, dtype=np.int64)
            self._index = (e * (self.m * self.k) if self.stream_a else None,
                           e * (self.k * self.n) if self.stream_b else None,
                           self.block * (self.m * self.n))
        return self._index

    def slices(self, itemsize):
        """``(first, last, block)`` runs of entries: within one C block when C is per thread, and
        small enough that a product temporary of the run stays in L2."""
        if self.batch == 0:
            return
        step = max(1, NUMPY_SLICE_BYTES // (self.m * self.n * itemsize))
        group = self.batch if self.stream_c else self.chunk
        for g0 in range(0, self.batch, group):
            g1 = min(g0 + group, self.batch)
            for e0 in range(g0, g1, step):
                yield e0, min(e0 + step, g1), int(self.block[e0])

    def products(self, out, dtype):
        """``out`` blocks += the products of their entries, computed by numpy in ``dtype``.

        Memory of a column-major block X (r x c) is the row-major X^T, so C^T += B^T A^T is a
        product of C-ordered stacks: ``out[n, m] += B[n, k] @ A[k, m]``.
        """
        m, n, k = self.m, self.n, self.k
        A = self.a.reshape(-1, k, m)
        B = self.b.reshape(-1, n, k)
        C = out.reshape(-1, n, m)
        step = max(1, NUMPY_SLICE_BYTES // (m * n * np.dtype(dtype).itemsize))
        tmp = np.empty((min(step, max(self.batch, 1)), n, m), dtype=dtype)
        total = np.empty((n, m), dtype=dtype)
        for e0, e1, blk in self.slices(np.dtype(dtype).itemsize):
            cnt = e1 - e0
            As = (A[e0:e1] if self.stream_a else np.broadcast_to(A[0], (cnt, k, m))).astype(dtype, copy=False)
            Bs = (B[e0:e1] if self.stream_b else np.broadcast_to(B[0], (cnt, n, k))).astype(dtype, copy=False)
            T = np.matmul(Bs, As, out=tmp[:cnt])
            if self.stream_c:
                C[e0:e1] += T
            else:
                C[blk] += np.sum(T, axis=0, out=total)
        return out

    def numpy_pass(self):
        self.products(self.c, self.dtype)

    def reference(self):
        """Float64 sums of every C block's products over one pass (C starts at zero)."""
        return self.products(np.zeros(self.c.shape, dtype=np.float64), np.float64)


def error_parts(result, reference, scale, chunk=1 << 22):
    """``(max|result - scale*reference|, max|scale*reference|)`` in float64, chunked; the first is
    inf when the result has NaN/Inf."""
    worst = top = 0.0
    for s in range(0, result.size, chunk):
        ref = scale * reference[s:s + chunk]
        diff = np.abs(result[s:s + chunk].astype(np.float64) - ref)
        if not np.all(np.isfinite(diff)):
            return float("inf"), float(np.abs(ref).max())
        if diff.size:
            worst = max(worst, float(diff.max()))
            top = max(top, float(np.abs(ref).max()))
    return worst, top


def tolerance(dtype, k, accumulations, per_term=False):
    """Accepted max relative error: the runtime's default, widened for long sums to about one ulp
    per rounded addition into C: k per product (its dot products) plus one per accumulated
    product, or k per product when the loop adds every term into C itself (``per_term``). At most
    0.5, so that a zero or doubled result (error 1) fails whatever the length of the sums."""
    default = 1e-10 if np.dtype(dtype) == np.float64 else 1e-4
    additions = accumulations * (k if per_term else 1) + k
    return min(0.5, max(default, float(np.finfo(dtype).eps) * additions))


def _allmax(ctx, values):
    values = np.asarray(values, dtype=np.float64)
    if ctx.mpi is None:
        return values
    out = np.empty_like(values)
    ctx.comm.Allreduce(values, out, op=ctx.mpi.MAX)
    return out


def main(ctx):
    a = ctx.args
    p = parse_problem(a)
    variants = parse_variants(a.variants, p["case"])
    mode, m, n, k = p["mode"], p["m"], p["n"], p["k"]
    item = ctx.dtype.itemsize
    mine, capped = batch_sizes(p["size"], footprint(m, n, k, item), ctx.local_size, ctx.size, ctx.rank)
    total = ctx.comm.allreduce(mine) if ctx.mpi is not None else mine
    capped = bool(_allmax(ctx, [capped])[0])
    nrepeat = p["nrepeat"]
    repeats = nrepeat * a.repeat
    title = MODES[mode][0]
    tname = {np.dtype(np.float64): "double", np.dtype(np.float32): "float"}[ctx.dtype]
    ctx.header(f"m={m} n={n} k={k} size={total} memory={total * footprint(m, n, k, item) / 2 ** 20:.1f} MB "
               f"(input={tname} output={tname}){' (capped)' if capped else ''}")
    ctx.print(f"case {p['case']}: {title}, nrepeat={repeats}" + (f", {ctx.size} ranks" if ctx.size > 1 else ""))
    batch = Batch(mode, m, n, k, mine, ctx.dtype, ctx.threads, [SEED, ctx.rank])
    per_entry = entry_bytes(mode, m, n, k, item)
    reference = batch.reference()
    seconds = {}
    for variant in variants:
        kernel = None
        extra = {"case": p["case"], "streams": title, "m": m, "n": n, "k": k, "size": total, "batch_per_rank": mine,
                 "nrepeat": nrepeat, "bytes_per_entry": per_entry}
        if variant == "specialized":
            kernel = core.smm.dispatch(m, n, k, dtype=ctx.dtype, alpha=1.0, beta=1.0, prefetch="auto")
            extra["kernel"] = {"target": kernel.target, "tile": list(kernel.tile), "specialized": kernel.specialized}
            ctx.print(f"specialized kernel: {m}x{n}x{k} {kernel.target} tile={kernel.tile[0]}x{kernel.tile[1]}"
                      f"{' (unrolled)' if kernel.specialized else ''}")
        batch.reset()
        timing = ctx.timeit(lambda: batch.run(variant, kernel), repeat=repeats, warmup=1)
        passes = timing.repeat + 1
        worst, top = _allmax(ctx, error_parts(batch.c, reference, float(passes)))
        max_rel = worst / top if top > 0 else (0.0 if worst == 0 else float("inf"))
        extra["max_rel_err"] = max_rel
        tol = tolerance(ctx.dtype, k, batch.accumulations * passes, per_term=variant == "inlined")
        chk = ctx.validate(batch.c, lambda: passes * reference, tol=tol) if ctx.check else None
        seconds[variant] = timing.max
        if variant == "numpy" and len(seconds) > 1:
            extra["speedup_over_numpy"] = {v: timing.max / t for v, t in seconds.items() if v != "numpy" and t > 0}
        ctx.report(variant, timing, flops=2 * mine * m * n * k,
                   nbytes=None if per_entry is None else mine * per_entry, check=chk, extra=extra,
                   label=LABELS[variant])
        if chk is None:
            ctx.print(f"\terror: max_rel={max_rel:.3g} (vs numpy float64)")
    if "numpy" in seconds and len(seconds) > 1 and seconds["numpy"] > 0:
        ctx.print("numpy baseline: " + ", ".join(
            f"{v} {seconds['numpy'] / t:.1f}x" for v, t in seconds.items() if v != "numpy" and t > 0))


if __name__ == "__main__":
    rt.run("smm", main, add_arguments, doc=__doc__)
