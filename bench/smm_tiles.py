"""Register-tile scan: how fast each tile runs each shape, against the tile the cost model picks.

    python bench/smm_tiles.py                        # listed tiles, 31 shapes, f64 (~10 min to compile)
    python bench/smm_tiles.py --extra --shapes 16,23 # also tiles the library does not list
    python bench/smm_tiles.py --streamed --reps 5      # operands streamed from memory (96 MiB)
    python bench/smm_tiles.py --dtype f32 --json results/tiles.json

Every (shape, tile) pair is compiled as a specialised kernel from the library's own tile template
(core/src/smm/smm_tile.h, as gen_specialized.py does), called on a batch of distinct products whose
operands fill half of the L2 (the "cached" regime of bench/smm.py) or, with --streamed, 96 MiB (one
pass over memory per timing), best of --reps timings. The table
gives, per shape, the tile the library runs (core.smm.dispatch: code path and tile; in cache, the
kernel's cached variant), its GFLOP/s,
the fastest listed tile and the loss against it. This is the data the constants of the cost model
in smm_registry.c were fitted to (docs/kernels.md).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SRC = os.path.join(ROOT, "core", "src", "smm")
sys.path.insert(0, SRC)

import numpy as np  # noqa: E402

import core  # noqa: E402,F401
from core import cpu, smm  # noqa: E402
import gen_specialized as gen  # noqa: E402

DEFAULT_SHAPES = ([(c, c, c) for c in (4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18, 20, 22, 23, 24, 25, 26,
                                       28, 30, 31, 32, 64)]
                  + [(5, 5, 25), (5, 25, 5), (5, 25, 25), (25, 5, 5), (25, 5, 25), (25, 25, 5)])
EXTRA = {"avx512": [(2, 14), (3, 9), (2, 10), (2, 8), (4, 5), (3, 7), (1, 8), (2, 6)],
         "avx2": [(4, 3), (2, 5), (3, 3), (2, 4), (1, 12)]}

HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "smm_kernel.h"
typedef struct { const char *isa; int m, n, k, mv, nr; smm_kernel_fn fn; } entry_t;
extern const entry_t scan_table[];
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(int argc, char **argv) {
  const size_t ws = (size_t)atol(argv[1]); const int reps = atoi(argv[2]); const int es = sizeof(REAL);
  for (const entry_t *e = scan_table; e->fn; ++e) {
    const int m = e->m, n = e->n, k = e->k;
    const size_t per = (size_t)(m * k + k * n + m * n);
    const size_t nb = ws / (es * per) > 0 ? ws / (es * per) : 1;
    /* Each array 1 MiB larger than the last (STREAM's OFFSET, as bench/smm.py): equal arrays
     * allocated back to back lie a power of two apart and collide in the memory system. */
    REAL *A = malloc(nb * m * k * es), *B = malloc(nb * k * n * es + (1 << 20)),
         *C = calloc(nb * m * n * es + (2 << 20), 1);
    for (size_t i = 0; i < nb * m * k; ++i) A[i] = (REAL)(1e-3 * (i % 7));
    for (size_t i = 0; i < nb * k * n; ++i) B[i] = (REAL)(1e-3 * (i % 5));
    smm_kernel kern; memset(&kern, 0, sizeof kern);
    kern.fn = e->fn; kern.desc.m = m; kern.desc.n = n; kern.desc.k = k;
    kern.desc.lda = m; kern.desc.ldb = k; kern.desc.ldc = m; kern.desc.alpha = 1; kern.desc.beta = 1;
    const double flop = 2.0 * m * n * k * nb; const int inner = (int)(4e7 / flop) + 1; double best = 1e30;
    for (int r = 0; r < reps; ++r) {
      const double t0 = now();
      for (int i = 0; i < inner; ++i)
        for (size_t b = 0; b < nb; ++b) {
          const void *ap = A + b * m * k, *bp = B + b * k * n;
          kern.fn(&kern, &ap, &bp, C + b * m * n, 1, NULL, NULL, NULL);
        }
      const double dt = now() - t0; if (dt < best) best = dt;
    }
    printf("%s %d %d %d %d %d %.3f\n", e->isa, m, n, k, e->mv, e->nr, flop * inner / best * 1e-9);
    fflush(stdout); free(A); free(B); free(C);
  }
  return 0;
}
"""


def kernels_source(isa, dtype, shapes, tiles):
    """One translation unit: every (shape, tile) of one ISA as a specialised kernel."""
    out = [f'#include "kernels/{isa}_{dtype}.h"', '#include "smm_tile.h"',
           "#define SCAN(MV, NR, FULL, M, N, K) TGT void PFX(scan_##MV##_##NR##_##M##_##N##_##K)("
           "const smm_kernel *kern, const void *const *a, const void *const *b, void *c, int64_t count, "
           "const void *pa, const void *pb, const void *pc) "
           "{ PFX(entry)(MV, NR, FULL, 0, SMM_ADD_UPDATE(MV, NR), M, N, K, M, K, M, kern, a, b, c, count, pa, pb, pc); }"]
    names = []
    for m, n, k in shapes:
        full = int(gen.full_unroll(isa, dtype, m, n, k))
        for mv, nr in tiles:
            out.append(f"SCAN({mv}, {nr}, {full}, {m}, {n}, {k})")
            names.append((m, n, k, mv, nr, f"smm_{isa}_{dtype}_scan_{mv}_{nr}_{m}_{n}_{k}"))
    return "\n".join(out) + "\n", names


def build(workdir, dtype, plan):
    """Compiles the kernels (one process per ISA, in parallel) and the harness; returns the binary."""
    inc = ["-I", SRC, "-I", os.path.join(ROOT, "core", "include")]
    real = "double" if dtype == "f64" else "float"
    table, procs, objs = [], [], []
    for isa, (shapes, tiles) in plan.items():
        text, names = kernels_source(isa, dtype, shapes, tiles)
        src, obj = os.path.join(workdir, f"k_{isa}.c"), os.path.join(workdir, f"k_{isa}.o")
        with open(src, "w") as f:
            f.write(text)
        procs.append(subprocess.Popen(["gcc", "-O3", *inc, "-c", src, "-o", obj]))
        objs.append(obj)
        table += [(isa, *nm) for nm in names]
    decl = "".join(f"void {t[-1]}(const smm_kernel *, const void *const *, const void *const *, void *, int64_t, "
                   f"const void *, const void *, const void *);\n" for t in table)
    rows = "".join(f'{{"{t[0]}", {t[1]}, {t[2]}, {t[3]}, {t[4]}, {t[5]}, {t[6]}}},\n' for t in table)
    main = os.path.join(workdir, "main.c")
    with open(main, "w") as f:
        f.write(f"#define REAL {real}\n" + HARNESS + decl + "const entry_t scan_table[] = {\n" + rows + "{0}};\n")
    if any(p.wait() for p in procs):
        raise SystemExit("compiling the kernels failed")
    exe = os.path.join(workdir, "scan")
    subprocess.run(["gcc", "-O3", *inc, main, *objs, "-o", exe], check=True)
    return exe


def parse_shapes(text):
    shapes = []
    for tok in text.split(","):
        parts = [int(v) for v in tok.lower().split("x")]
        shapes.append(tuple(parts * 3) if len(parts) == 1 else tuple(parts))
    return shapes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", type=parse_shapes, default=DEFAULT_SHAPES, help="e.g. 16,23,5x25x5")
    ap.add_argument("--dtype", choices=("f64", "f32"), default="f64")
    ap.add_argument("--extra", action="store_true", help="also scan tiles the library does not list")
    ap.add_argument("--reps", type=int, default=41, help="timings per pair (the best is kept)")
    ap.add_argument("--cached-kib", type=float, default=None, help="working set (default: half the L2)")
    ap.add_argument("--streamed", action="store_true", help="a 96 MiB working set: operands from memory")
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args(argv)
    isas = [t for t in ("avx512", "avx2") if t in cpu.available_targets()]
    if not isas:
        raise SystemExit("this CPU has no AVX2 path to scan")
    plan = {isa: (args.shapes, gen.TILES[isa] + (EXTRA[isa] if args.extra else [])) for isa in isas}
    ws = int((args.cached_kib * 1024) if args.cached_kib else (96 << 20) if args.streamed else cpu.cache_bytes(2) // 2)
    with tempfile.TemporaryDirectory(prefix="smm-tiles-") as tmp:
        print(f"# compiling {sum(len(s) * len(t) for s, t in plan.values())} kernels ...", file=sys.stderr)
        exe = build(tmp, args.dtype, plan)
        out = subprocess.run([exe, str(ws), str(args.reps)], check=True, capture_output=True, text=True).stdout
    gf = {}
    for line in out.splitlines():
        isa, m, n, k, mv, nr, g = line.split()
        gf.setdefault((int(m), int(n), int(k)), {})[(isa, int(mv), int(nr))] = float(g)
    dt = np.float64 if args.dtype == "f64" else np.float32
    print(f"# {cpu.model()}, {args.dtype}, working set {ws // 1024} KiB, best of {args.reps}; GFLOP/s")
    print(f"{'shape':>10}  {'library runs':>18}  {'fastest listed':>20}  {'fastest scanned':>20}  loss")
    losses, records = [], []
    listed = {(isa, mv, nr) for isa in isas for mv, nr in gen.TILES[isa]}
    for shape, g in gf.items():
        kern = smm.dispatch(*shape, dtype=dt)
        # A cached batch runs the kernel's cached variant, a streamed one its general code.
        cv = kern.cached_variant
        runs = (kern.code_target, *kern.tile) if args.streamed else (cv["code_target"], *cv["tile"])
        best_l = max((t for t in g if t in listed), key=g.get)
        best_a = max(g, key=g.get)
        loss = g[runs] / g[best_l] - 1.0 if runs in g else float("nan")
        if not math.isnan(loss):
            losses.append(math.log1p(loss))
        name = "x".join(map(str, shape))
        fmt = lambda t: f"{t[0]} {t[1]}x{t[2]} {g[t]:5.1f}"  # noqa: E731
        print(f"{name:>10}  {fmt(runs) if runs in g else str(runs):>18}  {fmt(best_l):>20}  {fmt(best_a):>20}  "
              f"{100 * loss:+5.1f} %")
        records.append({"shape": shape, "runs": runs, "gflops": {f"{t[0]} {t[1]}x{t[2]}": v for t, v in g.items()}})
    if losses:
        print(f"# the library's picks against the fastest listed tile: mean {100 * math.expm1(sum(losses) / len(losses)):+.1f} %, "
              f"worst {100 * math.expm1(min(losses)):+.1f} %")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu.model(), "dtype": args.dtype, "working_set": ws, "reps": args.reps,
                       "results": records}, f, indent=1)


if __name__ == "__main__":
    main()
