"""Writes specialized_gen.c: fully unrolled kernels for the build-time shape list SMM_MNK.

SMM_MNK follows LIBXSMM's MNK convention: comma-separated groups of sizes, each group standing for
all (m, n, k) combinations of its sizes ("5 25" -> 8 shapes, "23" -> 23x23x23); a token "MxNxK"
(or "M_N_K") adds one exact shape. Run by setup.py before the build.
"""
import itertools
import os
import re
import sys

# Every cube up to 32 (runtime-sized kernels run such shapes at about half the speed: 12^3 17 vs
# 39 GFLOP/s cached), the mixed 5/25 shapes of the benchmark, 64^3 and the nek/specfem shapes.
DEFAULT_MNK = ("1, 2, 3, 4, 5 25, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, "
               "26, 27, 28, 29, 30, 31, 32, 64, 8x64x8, 64x8x8, 10x64x8, 10x10x8, 100x10x8")
# Keep in step with TILES in smm_registry.c (same order: ties go to the earlier tile).
TILES = {"avx2": [(3, 4), (2, 6), (1, 8)], "avx512": [(4, 6), (3, 8), (2, 12), (1, 16)]}
VEC_BYTES = {"avx2": 32, "avx512": 64}
DTYPES = {"f64": (0, 8), "f32": (1, 4)}
ISA_IDS = {"avx2": 1, "avx512": 2}
# Fully unrolled (k loop and all) up to this size; larger listed shapes keep constant m, n, k, ld
# but loop over k: fully unrolled, their code outgrows the op cache and runs slower (measured:
# 32x32x32 fell from 34 to 20 GFLOP/s on Zen 4).
MAX_FULL_K, MAX_FULL_MN = 16, 256
# AVX2 bodies unroll completely only up to this many vector FMAs per product (8^3 f64: 128). Larger
# unrolled bodies ran slower than a k loop, in cache, 1 thread, f64, GFLOP/s full -> k loop (strided
# form, bench/smm_tiles.py's harness): 10^3 25 -> 31, 12^3 26 -> 39, 13^3 23 -> 30 (3x4), 16^3
# 31 -> 41; streamed (96 MiB) 16^3 24.7 -> 25.8, 12^3 20.1 -> 22.6; at 8^3 the unrolled body stays
# faster (38 against 25 for 3x4). Not the op cache: gcc keeps the hoisted alpha/beta broadcasts in
# registers and spills an accumulator of the unrolled 2x6 tile; without that spill, unrolled and k
# loop run alike (docs/kernels.md, "Specialised kernels").
AVX2_MAX_FULL_FMAS = 128


def full_unroll(isa, dtype, m, n, k):
    """Whether the specialised kernel of (m, n, k) unrolls its k loop completely."""
    if not (k <= MAX_FULL_K and m * n <= MAX_FULL_MN):
        return False
    lanes = VEC_BYTES[isa] // DTYPES[dtype][1]
    return isa != "avx2" or -(-m // lanes) * n * k <= AVX2_MAX_FULL_FMAS
# Shapes up to this m*n*k also get a strided-batch kernel (smm_strided_fn: the batch loop inside the
# kernel). Measured in cache, Zen 4, f64, GFLOP/s call per product -> loop inside: 4^3 18.7 -> 23.5,
# 8^3 48.7 -> 48.9, 16^3 50.2 -> 49.0: a call costs only where a product takes a few nanoseconds.
STRIDED_MAX_MNK = 512
# In this range of m*n*k, the kernel of the cached regime gets one too (used for batches that fit
# in cache only). Measured later (C harness, 512 KiB of operands, f64, Zen 4, GFLOP/s per product
# call -> loop inside): 13^3 2x12 39.1 -> 40.5, 16^3 2x12 53.6 -> 55.7 and 3x8 48.5 -> 53.8,
# 17^3 AVX2 2x6 36.5 -> 40.5, 20^3 AVX2 3x4 51.7 -> 53.8, 23^3 2x12 51.8 -> 52.1, 32^3 54.7 -> 55.5
# (not worth its build time); but 9^3 and 10^3 (AVX2 2x6) 28 -> 24 and 35 -> 29. Streamed, the
# two forms were within 4 % either way.
STRIDED_CACHED_MNK = (2000, 13824)
# On the AVX2 path the range starts right above STRIDED_MAX_MNK: with a k loop (full_unroll), the
# loop inside gains from 9^3 on (Zen 3, 1 thread, in cache, GFLOP/s, call per product -> loop
# inside: 9^3 3x4 22.0 -> 26.6, 10^3 27.8 -> 31.9, 12^3 2x6 33.9 -> 39.2, 16^3 38.1 -> 41.2).
AVX2_STRIDED_CACHED_MNK = (STRIDED_MAX_MNK + 1, STRIDED_CACHED_MNK[1])


def parse_mnk(text):
    shapes = set()
    for group in (g.strip() for g in text.split(",")):
        if not group:
            continue
        tokens = group.split()
        exact = [t for t in tokens if re.fullmatch(r"\d+[x_]\d+[x_]\d+", t)]
        sizes = [t for t in tokens if t not in exact]
        for t in exact:
            shapes.add(tuple(int(v) for v in re.split(r"[x_]", t)))
        if sizes:
            if not all(s.isdigit() and int(s) > 0 for s in sizes):
                raise SystemExit(f"SMM_MNK: bad group {group!r}")
            vals = sorted({int(s) for s in sizes})
            shapes.update(itertools.product(vals, repeat=3))
    return sorted(shapes)


# The cost model of smm_registry.c, with its two sets of constants: "any" (fn: fitted to cached and
# streamed operands together) and "cached" (fn_cached: fitted to operands that stay in cache).
MODELS = {"any": {"issue": 0.25, "update": 0.75, "start": 16.0, "rewalk": 0.25},
          "cached": {"issue": 0.30, "update": 0.75, "start": 4.0, "rewalk": 0.0}}


def tile_cycles(k, v, w, W, masked, model):
    fma, ld, issue = 0.5 * (W * v * w), 0.5 * (v + w), model["issue"] * (v * w + v + w)
    return k * (max(fma, ld, issue) + (2.0 if masked else 0.0)) + model["update"] * (W * v * w) + model["start"]


def shape_cycles(isa, dtype, m, n, k, mv, nr, regime="any", zmm_weight=2):
    model = MODELS[regime]
    lanes = VEC_BYTES[isa] // DTYPES[dtype][1]
    W = zmm_weight if isa == "avx512" else 1  # the weight of one vector FMA in 256-bit units
    mfull, mrem = divmod(m, mv * lanes)
    rv, masked = -(-mrem // lanes), mrem % lanes != 0
    nfull, nrem = divmod(n, nr)
    total = model["rewalk"] * (mfull + (1 if mrem else 0) - 1) * n * k  # each further row block walks op(B) again
    for cols, count in ((nr, nfull), (nrem, 1 if nrem else 0)):
        if count:
            total += count * (mfull * tile_cycles(k, mv, cols, W, False, model)
                              + (tile_cycles(k, rv, cols, W, masked, model) if mrem else 0.0))
    return total


# TIE_ORDER of smm_registry.c: the order in which equal costs are broken on the AVX-512 path (indices
# into TILES; the earlier wins). Cached operands prefer 2x12 to 3x8 (16^3: 50.1 against 45.9 GFLOP/s).
TIE_ORDER = {"any": (0, 1, 2, 3), "cached": (0, 2, 1, 3)}


# The bits of a specialised kernel's regimes: (model, zmm weight) per bit; AVX2 uses the first two.
WEIGHTED_REGIMES = (("any", 2), ("cached", 2), ("any", 1), ("cached", 1))
CACHED_BITS = 0b1010


def select_tile(isa, dtype, m, n, k, regime="any", zmm_weight=2):
    """The cost model of smm_select_tile() in smm_registry.c (ties go to the earlier tile); on the
    AVX-512 path a zmm FMA weighs `zmm_weight` ymm ones (2: Zen 4's halves, 1: full-width units)."""
    best = None
    order = TIE_ORDER[regime] if isa == "avx512" else range(len(TILES[isa]))
    for mv, nr in (TILES[isa][i] for i in order):
        cost = shape_cycles(isa, dtype, m, n, k, mv, nr, regime, zmm_weight)
        if best is None or cost < best[0]:
            best = (cost, mv, nr)
    return best[1], best[2]


def generate(shapes):
    """{file name: text}: one translation unit per ISA path and dtype (they compile in parallel),
    and the table that the registry searches."""
    files, table, protos = {}, [], []
    sig = ("(const smm_kernel *, const void *const *, const void *const *, void *, int64_t, "
           "const void *, const void *, const void *)")
    ssig = "(const smm_kernel *, const void *, const void *, void *, int64_t, int64_t, int64_t, int64_t)"
    for isa in TILES:
        for dtype, (dt_id, _) in DTYPES.items():
            out = ["/* Generated by gen_specialized.py from SMM_MNK; do not edit. */",
                   "#if defined(__x86_64__)", f"#include \"kernels/{isa}_{dtype}.h\"", "#include \"smm_tile.h\""]
            for m, n, k in shapes:
                full = int(full_unroll(isa, dtype, m, n, k))
                cached_range = AVX2_STRIDED_CACHED_MNK if isa == "avx2" else STRIDED_CACHED_MNK
                # One kernel per distinct tile choice: regimes bit 0 = "any" (fn), bit 1 = "cached";
                # on AVX-512 these are the choices for zmm weight 2 (Zen 4), and bits 2 and 3 the
                # same for full-width zmm units (smm_registry.c picks the bits by the CPU's weight).
                picks = {}
                for bit, (regime, w) in enumerate(WEIGHTED_REGIMES if isa == "avx512" else WEIGHTED_REGIMES[:2]):
                    picks.setdefault(select_tile(isa, dtype, m, n, k, regime, w), []).append(bit)
                for (mv, nr), bits in picks.items():
                    suffix = next(sfx for b, sfx in enumerate(("", "_c", "_f", "_fc")) if b in bits)
                    name = f"smm_{isa}_{dtype}_spec_{m}_{n}_{k}{suffix}"
                    out.append(f"SMM_DEFINE_SPECIALIZED({mv}, {nr}, {full}, {m}, {n}, {k}, {suffix})")
                    protos.append(f"void {name}{sig};")
                    regimes = sum(1 << b for b in bits)
                    # The regimes that may run the strided form (bits 1 and 3: cached batches only).
                    sregimes = regimes if m * n * k <= STRIDED_MAX_MNK else 0
                    if cached_range[0] <= m * n * k <= cached_range[1]:
                        sregimes |= regimes & CACHED_BITS
                    strided = "0"
                    if sregimes:
                        strided = name + "_s"
                        # A form only cached batches run updates C as SMM_ADD_UPDATE_CACHED says.
                        form = "STRIDED_CACHED" if not sregimes & ~CACHED_BITS else "STRIDED"
                        out.append(f"SMM_DEFINE_SPECIALIZED_{form}({mv}, {nr}, {full}, {m}, {n}, {k}, {suffix})")
                        protos.append(f"void {strided}{ssig};")
                    table.append(f"  {{{ISA_IDS[isa]}, {dt_id}, {mv}, {nr}, {regimes}, {sregimes}, {m}, {n}, {k}, "
                                 f"{name}, {strided}}},")
            out += ["#endif", ""]
            files[f"specialized_gen_{isa}_{dtype}.c"] = "\n".join(out)
    files["specialized_gen.c"] = "\n".join(
        ["/* Generated by gen_specialized.py from SMM_MNK; do not edit. */",
         "#include \"smm_registry.h\"", "", "#if defined(__x86_64__)"] + protos +
        ["const smm_spec_entry smm_spec_table[] = {"] + table + ["  {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}", "};",
         f"const int smm_spec_count = {len(table)};", "#else",
         "const smm_spec_entry smm_spec_table[] = {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}};",
         "const int smm_spec_count = 0;", "#endif", ""])
    return files


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    shapes = parse_mnk(os.environ.get("SMM_MNK", DEFAULT_MNK))
    for name, text in generate(shapes).items():
        path = os.path.join(here, name)
        old = open(path).read() if os.path.exists(path) else None
        if old != text:  # unchanged output keeps its timestamp: no needless rebuild
            with open(path, "w") as f:
                f.write(text)
    print(f"gen_specialized: {len(shapes)} shapes from SMM_MNK", file=sys.stderr)


if __name__ == "__main__":
    main()
