"""Small-matrix batches in ONE run: core.smm.gemm_batch beside numpy, einsum and torch, with the
memory roofline (a STREAM triad) and the FMA peak measured in the same run.

  python bench/smm.py [--quick] [--shapes 4,5,8,13,16,23,32,64,5x25x5,25x5x5,5x5x25] [--threads 1,2]
                      [--regimes streamed,cached] [--peers numpy,einsum,torch] [--repeats N]
                      [--stack-mib 64] [--pool-offset-mib 1] [--cached-kib 512] [--json PATH]

Every variant computes a batch of float64 products on the same stacks (numpy C order, shapes
(batch, m, k), (batch, k, n), (batch, m, n)):
  core-str   core.smm.gemm_batch(a, b, c, 1, 1, threads=T)          C_i += A_i B_i, strided form
  core-idx   the same buffers through the index form (int32 element offsets, column-major blocks,
             LIBXSMM/DBCSR style, distinct_c=True as LIBXSMM's batch with a negative size)
  numpy      numpy.matmul(a, b, out=c)                              C_i  = A_i B_i
  einsum     numpy.einsum("bij,bjk->bik", a, b, out=c, optimize=True)
  torch      c.baddbmm_(a, b) on torch.from_numpy views (no copy)  C_i += A_i B_i (if installed)
numpy and einsum cannot accumulate into C, so they compute C = A B: the same bytes (C is read for
ownership either way) and less arithmetic, so their figures are if anything generous.

Regimes (LIBXSMM smm sample terms):
  streamed   each stack >= --stack-mib MiB (default 64: well beyond the last-level cache); one call
             over the whole batch per sample;
  cached     stacks that fit in half the L2 of each thread (--cached-kib per thread), called
             repeatedly (a sample is >= 20 ms of calls; 5 ms with --quick).
In the streamed regime the triad is one more interleaved variant, so each row's roofline uses
the bandwidth measured alongside it (the header gives the median over the whole run).
Threads: core gets threads=T, numpy/einsum/OpenBLAS/OpenMP pools are limited to T with
threadpoolctl, torch with torch.set_num_threads(T). Samples of all variants are interleaved
(each sees the same machine load); figures are medians of --repeats samples.

GFLOP/s count 2*m*n*k per product. The memory roofline of a streamed case is
triad_bandwidth * 2mnk / ((mk + kn + 2mn) * 8 bytes): A and B read, C read and written, as
LIBXSMM's bandwidth figure counts it; "roof" caps it at the FMA peak. The triad (bench/_stream.pyx,
OpenMP, the same thread count, ordinary stores) is counted the same way: 4 words per element (b, c
read; a read for ownership and written); its STREAM-convention figure (3 words) is printed too.
"%touch" holds a streamed case against a second ceiling, also measured with the row: the time to
move that batch's own bytes with no arithmetic (bench/_stream.pyx touch: reads each product's A
and B, reads and writes its C, in the kernels' order), capped at the FMA peak. It differs from the
triad roofline where the mix of reads and writes differs: reads alone stream slower here than the
triad's mix, so read-mostly shapes (5x5x25: A and B 2000 bytes read, C 200) cannot reach the
triad roofline, and the touch says how close to their own memory ceiling they are.
"% peak" (cached) is against the FMA peak measured here (12 independent FMA chains per thread, of
the vector width core.smm runs: AVX-512 zmm where its target is avx512, else AVX2 ymm).
"""
import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from _apps import available_bytes  # noqa: E402
from core import cpu, smm  # noqa: E402

MIB = 1 << 20
GIB = float(1 << 30)
DEFAULT_SHAPES = "4,5,8,13,16,23,32,64,5x25x5,25x5x5,5x5x25"
ALL_PEERS = ("numpy", "einsum", "torch")
CORE_VARIANTS = ("core-str", "core-idx")
# What the issue quotes for LIBXSMM 1.17 on this machine class (GFLOP/s; streamed A,B,C / cached).
LIBXSMM_117 = {("streamed", 1, (5, 5, 5)): 4.9, ("streamed", 2, (5, 5, 5)): 6.5,
               ("streamed", 1, (8, 8, 8)): 8.0, ("streamed", 2, (8, 8, 8)): 10.8,
               ("streamed", 1, (23, 23, 23)): 12.4, ("streamed", 2, (23, 23, 23)): 22.7,
               ("streamed", 1, (32, 32, 32)): 16.1, ("streamed", 2, (32, 32, 32)): 30.0,
               ("cached", 1, (4, 4, 4)): 8.3, ("cached", 1, (8, 8, 8)): 16.4, ("cached", 1, (32, 32, 32)): 19.1}


def parse_shapes(text):
    shapes = []
    for tok in (t.strip() for t in text.split(",")):
        if not tok:
            continue
        parts = tok.lower().replace("_", "x").split("x")
        if len(parts) == 1:
            parts = parts * 3
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise SystemExit(f"--shapes: bad shape {tok!r} (use N for a cube or MxNxK)")
        shapes.append(tuple(int(p) for p in parts))
    return shapes


def parse_ints(text, name):
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise SystemExit(f"--{name}: expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise SystemExit(f"--{name}: values must be >= 1")
    return vals


def load_stream():
    import build_stream
    if build_stream.is_stale():
        print("building bench/_stream (STREAM triad) ...", file=sys.stderr, flush=True)
        build_stream.build()
    import _stream
    return _stream




def median(xs):
    return statistics.median(xs) if xs else float("nan")


# ----------------------------------------------------------------------------- the reference figures

def measure_triad(stream, arrays, threads, repeats):
    """One-pass triad samples in GiB/s (4 words per element: write-allocate counted)."""
    a, b, c = arrays
    for x in arrays:
        stream.fill(x, 1.0, threads)  # first touch by the threads that stream it
    stream.triad(a, b, c, 3.0, threads)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        stream.triad(a, b, c, 3.0, threads)
        out.append(4 * 8 * a.size / (time.perf_counter() - t0) / GIB)
    return out


def fma_width():
    """Vector width (bits) of the FMA peak: that of the path core.smm runs (AVX-512 zmm or AVX2 ymm)."""
    return 512 if cpu.target() == "avx512" else 256


def measure_fma_peak(stream, threads, repeats, width=None):
    """FMA peak in GFLOP/s for `threads` threads (best of the samples: a peak), with the vector
    width of the library's own path (a 256-bit peak would understate an AVX-512 machine by half)."""
    width = width or fma_width()
    iters = 4_000_000 if width == 256 else 2_000_000
    if stream.fma_chains(1000, threads, width) is None:
        return None
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        stream.fma_chains(iters, threads, width)
        best = max(best, threads * iters * stream.FMA_FLOPS_PER_ITER_BY_WIDTH[width]
                   / (time.perf_counter() - t0) / 1e9)
    return best


# ----------------------------------------------------------------------------- variants

class Problem:
    """Stacks of one shape and regime carved from preallocated pools (no allocation per shape)."""

    def __init__(self, pools, m, n, k, nb):
        pa, pb, pc = pools
        self.m, self.n, self.k, self.nb = m, n, k, nb
        self.a = pa[:nb * m * k].reshape(nb, m, k)
        self.b = pb[:nb * k * n].reshape(nb, k, n)
        self.c = pc[:nb * m * n].reshape(nb, m, n)
        idx_type = np.int32 if nb * max(m * k, k * n, m * n) < 2**31 else np.int64
        self.ia = np.arange(nb, dtype=idx_type) * (m * k)
        self.ib = np.arange(nb, dtype=idx_type) * (k * n)
        self.ic = np.arange(nb, dtype=idx_type) * (m * n)

    @property
    def flops(self):
        return 2.0 * self.m * self.n * self.k * self.nb

    @property
    def bytes_per_product(self):
        return (self.m * self.k + self.k * self.n + 2 * self.m * self.n) * 8


def make_variants(p, threads, peers, torch):
    a, b, c = p.a, p.b, p.c
    af, bf, cf = a.reshape(-1), b.reshape(-1), c.reshape(-1)
    m, n, k = p.m, p.n, p.k
    v = {
        "core-str": lambda: smm.gemm_batch(a, b, c, 1.0, 1.0, threads=threads),
        "core-idx": lambda: smm.gemm_batch(af, bf, cf, 1.0, 1.0, a_index=p.ia, b_index=p.ib, c_index=p.ic,
                                           m=m, n=n, k=k, threads=threads, distinct_c=True),
    }
    if "numpy" in peers:
        v["numpy"] = lambda: np.matmul(a, b, out=c)
    if "einsum" in peers:
        v["einsum"] = lambda: np.einsum("bij,bjk->bik", a, b, out=c, optimize=True)
    if "torch" in peers and torch is not None:
        ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
        v["torch"] = lambda: tc.baddbmm_(ta, tb)
    return v


def validate(m, n, k, threads, torch, rng):
    """Core (both forms) and torch against numpy on a batch big enough for the parallel path."""
    nb = 97
    a, b = rng.random((nb, m, k)), rng.random((nb, k, n))
    c0 = rng.random((nb, m, n))
    ref = c0 + np.matmul(a, b)
    c = c0.copy()
    smm.gemm_batch(a, b, c, 1.0, 1.0, threads=threads)
    err = {"core-str": np.max(np.abs(c - ref)) / np.max(np.abs(ref))}
    # Index form, column-major blocks: block i of a (m x k) is a[i].reshape(k, m).T, etc.
    c = c0.copy()
    ia, ib, ic = (np.arange(nb, dtype=np.int32) * s for s in (m * k, k * n, m * n))
    smm.gemm_batch(a.reshape(-1), b.reshape(-1), c.reshape(-1), 1.0, 1.0, a_index=ia, b_index=ib, c_index=ic,
                   m=m, n=n, k=k, threads=threads, distinct_c=True)
    col = lambda x, r, s: np.swapaxes(x.reshape(nb, s, r), 1, 2)  # noqa: E731
    ref_cm = col(c0, m, n) + np.matmul(col(a, m, k), col(b, k, n))
    err["core-idx"] = np.max(np.abs(col(c, m, n) - ref_cm)) / np.max(np.abs(ref_cm))
    if torch is not None:
        tc = torch.from_numpy(c0.copy())
        tc.baddbmm_(torch.from_numpy(a), torch.from_numpy(b))
        err["torch"] = np.max(np.abs(tc.numpy() - ref)) / np.max(np.abs(ref))
    bad = {key: e for key, e in err.items() if not e < 1e-12}
    if bad:
        raise SystemExit(f"validation failed for {m}x{n}x{k}, {threads} threads: {bad}")
    return max(err.values())


def time_samples(variants, repeats, inner):
    """Interleaved samples: seconds per call of each variant, `inner[name]` calls per sample."""
    samples = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            time.sleep(0.002)  # let another runtime's spinning workers go idle
            reps = inner.get(name, 1)
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            samples[name].append((time.perf_counter() - t0) / reps)
    return samples


def calibrate(variants, min_seconds):
    """Calls per sample so that a sample of the cached regime lasts at least min_seconds."""
    inner = {}
    for name, fn in variants.items():
        fn()
        t0 = time.perf_counter()
        fn()
        fn()
        dt = max((time.perf_counter() - t0) / 2, 1e-7)
        inner[name] = max(1, min(200000, math.ceil(min_seconds / dt)))
    return inner


# ----------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description="core.smm.gemm_batch beside numpy, einsum and torch on small "
                                             "f64 matrices, with the triad roofline and FMA peak of the same run",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--shapes", default=DEFAULT_SHAPES, help="N (cube) or MxNxK, comma-separated")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--regimes", default="streamed,cached")
    ap.add_argument("--peers", default=",".join(ALL_PEERS), help="subset of numpy,einsum,torch")
    ap.add_argument("--repeats", type=int, default=None, help="samples per variant (default 7; 3 with --quick)")
    ap.add_argument("--stack-mib", type=float, default=64.0, help="streamed: the smallest stack's size")
    ap.add_argument("--pool-offset-mib", type=float, default=1.0,
                    help="array i is allocated i times this much larger (STREAM's OFFSET; 0: none)")
    ap.add_argument("--cached-kib", type=float, default=None,
                    help="cached: working set per thread (default: half the L2)")
    ap.add_argument("--quick", action="store_true", help="3 samples, 5 ms cached samples")
    ap.add_argument("--json", metavar="PATH", help="write all samples and figures as JSON")
    args = ap.parse_args(argv)

    shapes = parse_shapes(args.shapes)
    thread_counts = parse_ints(args.threads, "threads")
    regimes = [r.strip() for r in args.regimes.split(",") if r.strip()]
    if not regimes or any(r not in ("streamed", "cached") for r in regimes):
        raise SystemExit("--regimes: streamed and/or cached")
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if any(p not in ALL_PEERS for p in peers):
        raise SystemExit(f"--peers: choose from {ALL_PEERS}")
    repeats = args.repeats or (3 if args.quick else 7)
    cached_seconds = 0.005 if args.quick else 0.02
    l2 = cpu.cache_bytes(2)
    cached_bytes = (args.cached_kib * 1024) if args.cached_kib else l2 / 2

    try:
        import torch
    except ImportError:
        torch = None
    from threadpoolctl import threadpool_info, threadpool_limits
    stream = load_stream()

    # Pools big enough for the largest stack of any shape; filled once (values do not matter for
    # speed: no denormals), touched by the largest team.
    stack_bytes = args.stack_mib * MIB

    def nb_streamed(m, n, k):
        return math.ceil(stack_bytes / (8 * min(m * k, k * n, m * n)))

    def nb_cached(m, n, k, threads):
        return max(1, int(cached_bytes * threads // (8 * (m * k + k * n + m * n))))

    need = [0, 0, 0]
    for m, n, k in shapes:
        for nb in ([nb_streamed(m, n, k)] if "streamed" in regimes else []) + \
                  [nb_cached(m, n, k, t) for t in thread_counts]:
            need = [max(need[0], nb * m * k), max(need[1], nb * k * n), max(need[2], nb * m * n)]
    triad_n = int(max(stack_bytes, 64 * MIB) // 8)
    if args.pool_offset_mib < 0:
        raise SystemExit("--pool-offset-mib must be >= 0")
    total = 8 * (sum(need) + 3 * triad_n) + 6 * int(args.pool_offset_mib * MIB)
    free = available_bytes()
    if free is not None and total > 0.8 * free:
        raise SystemExit(f"needs {total / GIB:.1f} GiB, {free / GIB:.1f} GiB available: lower --stack-mib")
    # STREAM's OFFSET: equal-sized arrays allocated one after the other lie 64 MiB + 4 KiB apart, and
    # three streams that far apart collide in the memory system (16^3 streamed, 1 thread: core 28.2,
    # numpy 27.6 GFLOP/s; with the arrays 1 MiB further apart each: 39.0, 39.9; the same for 32^3,
    # 64^3 and the triad). Array i gets i * --pool-offset-mib more, so every variant and the triad run
    # on arrays that do not; --pool-offset-mib 0 gives the colliding layout.
    off = int(args.pool_offset_mib * MIB) // 8
    pools = [np.empty(x + i * off)[:x] for i, x in enumerate(need)]
    for x in pools:
        stream.fill(x, 0.5, max(thread_counts))
    triad_arrays = [np.empty(triad_n + i * off)[:triad_n] for i in range(3)]

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable), "bench/smm.py"] + (argv or sys.argv[1:])),
        "cpu": cpu.info(), "fma_width_bits": fma_width(), "python": platform.python_version(), "numpy": np.__version__,
        "torch": getattr(torch, "__version__", None), "blas": blas,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "l2_bytes": l2, "cached_bytes_per_thread": cached_bytes, "stack_mib": args.stack_mib,
        "pool_offset_mib": args.pool_offset_mib,
        "repeats": repeats, "load_average": os.getloadavg(),
    }
    print(f"# bench/smm.py  {meta['date']}  {cpu.model()}  core.smm target={cpu.target()}")
    print(f"# numpy {np.__version__} BLAS: " + "; ".join(
        f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} threads={i.get('num_threads')}"
        for i in blas) + f"; OPENBLAS_CORETYPE={meta['OPENBLAS_CORETYPE']}"
          + f"; torch {meta['torch'] or 'not installed'}")
    print(f"# streamed: smallest stack {args.stack_mib:g} MiB; cached: {cached_bytes / 1024:.0f} KiB per thread "
          f"(L2 {l2 // 1024} KiB); {repeats} samples, medians; load average {meta['load_average'][0]:.1f}")

    records, triad, peak = [], {}, {}
    rng = np.random.default_rng(2026)
    for threads in thread_counts:
        with threadpool_limits(limits=threads):
            if torch is not None:
                torch.set_num_threads(threads)
            tri = measure_triad(stream, triad_arrays, threads, repeats)
            peak[threads] = measure_fma_peak(stream, threads, 3)
            for regime in regimes:
                for m, n, k in shapes:
                    nb = nb_streamed(m, n, k) if regime == "streamed" else nb_cached(m, n, k, threads)
                    p = Problem(pools, m, n, k, nb)
                    err = validate(m, n, k, threads, torch, rng)
                    variants = make_variants(p, threads, peers, torch)
                    inner = calibrate(variants, cached_seconds) if regime == "cached" else {}
                    if regime == "streamed":
                        for fn in variants.values():
                            fn()  # warm: kernels built, pages mapped
                    if regime == "streamed":
                        # The triad joins the interleaved samples: its roofline sees the same load.
                        ta_, tb_, tc_ = triad_arrays
                        variants["triad"] = lambda: stream.triad(ta_, tb_, tc_, 3.0, threads)
                        # And the batch's own bytes without its flops (bench/_stream.pyx: touch).
                        flat = (p.a.reshape(-1), p.b.reshape(-1), p.c.reshape(-1))
                        if stream.touch(*flat, m * k, k * n, m * n, nb, threads):
                            variants["touch"] = lambda: stream.touch(*flat, m * k, k * n, m * n, nb, threads)
                    samples = time_samples(variants, repeats, inner)
                    row_triad = [4 * 8 * triad_n / sec / GIB for sec in samples.pop("triad", [])]
                    row_touch = [p.flops / sec / 1e9 for sec in samples.pop("touch", [])]
                    tri += row_triad
                    for name, secs in samples.items():
                        records.append({"regime": regime, "threads": threads, "m": m, "n": n, "k": k,
                                        "variant": name, "batch": nb, "calls_per_sample": inner.get(name, 1),
                                        "seconds": secs, "gflops": p.flops / median(secs) / 1e9,
                                        "gflops_samples": [p.flops / s / 1e9 for s in secs],
                                        "bytes_per_product": p.bytes_per_product, "max_rel_error": err,
                                        "triad_gib_s": median(row_triad) if row_triad else None,
                                        "touch_gflops": median(row_touch) if row_touch else None})
            tri += measure_triad(stream, triad_arrays, threads, repeats)
            # A peak is the best seen: measured again at the end in case the machine was busy at first.
            peak[threads] = max(filter(None, (peak[threads], measure_fma_peak(stream, threads, 3))), default=None)
            triad[threads] = {"gib_s": median(tri), "samples": tri, "stream_convention_gib_s": median(tri) * 3 / 4}
    finish(records, triad, peak, meta, regimes, thread_counts, shapes, args.json)


def finish(records, triad, peak, meta, regimes, thread_counts, shapes, json_path):
    by = {(r["regime"], r["threads"], (r["m"], r["n"], r["k"]), r["variant"]): r for r in records}
    variants = [v for v in CORE_VARIANTS + ALL_PEERS if any(r["variant"] == v for r in records)]
    for r in records:
        base = by.get((r["regime"], r["threads"], (r["m"], r["n"], r["k"]), "numpy"))
        r["ratio_numpy"] = r["gflops"] / base["gflops"] if base else None
        if r["regime"] == "streamed":
            bw = r.get("triad_gib_s") or triad[r["threads"]]["gib_s"]
            mem = bw * GIB * 2 * r["m"] * r["n"] * r["k"] / r["bytes_per_product"] / 1e9
            r["memory_roofline_gflops"] = mem
            # Attainable = min(memory roofline, FMA peak): large shapes are compute-bound even streamed.
            r["roofline_gflops"] = min(mem, peak[r["threads"]]) if peak.get(r["threads"]) else mem
            r["pct_roofline"] = 100 * r["gflops"] / r["roofline_gflops"]
            if r.get("touch_gflops"):
                r["pct_touch"] = 100 * r["gflops"] / min(r["touch_gflops"], peak.get(r["threads"]) or math.inf)
        if peak.get(r["threads"]):
            r["pct_peak"] = 100 * r["gflops"] / peak[r["threads"]]
        lx = LIBXSMM_117.get((r["regime"], r["threads"], (r["m"], r["n"], r["k"])))
        if lx:
            r["libxsmm_117_gflops"] = lx
    for threads in thread_counts:
        t = triad[threads]
        pk = f"{peak[threads]:.1f} GFLOP/s" if peak.get(threads) else "n/a"
        print(f"\n## {threads} thread{'s' if threads > 1 else ''}: triad {t['gib_s']:.1f} GiB/s one pass "
              f"(with write-allocate; STREAM convention {t['stream_convention_gib_s']:.1f}), FMA peak {pk}"
              f" ({fma_width()}-bit)")
        for regime in regimes:
            hdr = f"{'shape':>9} {'batch':>8} " + " ".join(f"{v:>8}" for v in variants)
            hdr += f" {'str/np':>7} {'idx/np':>7} {'core/best':>9}"
            hdr += f" {'triad':>6} {'roof':>6} {'%roof':>6} {'%touch':>6}" if regime == "streamed" else f" {'%peak':>6}"
            hdr += f" {'LIBXSMM':>7}"
            print(f"\n{regime} (GFLOP/s, median)\n{hdr}")
            for shape in shapes:
                row = {v: by.get((regime, threads, shape, v)) for v in variants}
                if not row.get("core-str"):
                    continue
                core = max(row["core-str"]["gflops"], row["core-idx"]["gflops"])
                peers = [row[v]["gflops"] for v in ALL_PEERS if row.get(v)]
                ratio = lambda x: f"{x:7.2f}" if x is not None else f"{'-':>7}"  # noqa: E731
                line = f"{'x'.join(map(str, shape)):>9} {row['core-str']['batch']:>8} "
                line += " ".join(f"{row[v]['gflops']:8.2f}" if row.get(v) else f"{'-':>8}" for v in variants)
                line += f" {ratio(row['core-str']['ratio_numpy'])} {ratio(row['core-idx']['ratio_numpy'])}"
                line += f" {core / max(peers):9.2f}" if peers else f" {'-':>9}"
                if regime == "streamed":
                    roof = row["core-str"]["roofline_gflops"]
                    line += f" {row['core-str']['triad_gib_s']:6.1f} {roof:6.1f} {100 * core / roof:5.0f}%"
                    tg = row["core-str"].get("touch_gflops")
                    tr = min(tg, peak.get(threads) or math.inf) if tg else None
                    line += f" {100 * core / tr:5.0f}%" if tr else f" {'-':>6}"
                else:
                    line += f" {100 * core / peak[threads]:5.0f}%" if peak.get(threads) else f" {'-':>6}"
                lx = row["core-str"].get("libxsmm_117_gflops")
                line += f" {lx:7.1f}" if lx else f" {'':>7}"
                print(line)
    print("\nstr/np, idx/np: core's strided and index forms over numpy.matmul; core/best: the faster core form "
          "over the best peer;\ntriad: GiB/s measured with the row; roof: min(triad bandwidth x flops/byte, FMA peak);"
          "\n%roof: the faster core form against it; %touch: against the batch's own bytes moved without its flops"
          "\n(bench/_stream.pyx touch, capped at the FMA peak); %peak: against the FMA peak; "
          "LIBXSMM: 1.17's figure quoted in issue 3.")
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"meta": meta, "triad": triad, "fma_peak_gflops": peak, "records": records}, f, indent=1)
        print(f"wrote {json_path}")


if __name__ == "__main__":
    main()
