"""specfem: SPECFEM3D_GLOBE's stiffness (compute-forces) kernel on 5 x 5 x 5-point elements (LIBXSMM samples/specfem).

  python -m miniapps.specfem [elements]        (default 40,000 = 40 x 40 x 25 elements, single precision)

Per element: gather the displacement at its 125 GLL points, differentiate it along the three
reference directions with cut-plane products (5x5 . 5x25, five slices of 5x5 . 5x5, 25x5 . 5x5 per
component), form the isotropic stress with self-gravitation (Jacobian terms, moduli), multiply it
back with the weighted transposed derivative (the same 21 products), then add every element's
contributions into the global acceleration through an inverse table (no races, no atomics).
Variants as the sample: Deville loops (the baseline), unrolled loops, dispatched, prefetch and static
core.smm kernels (static: the fully unrolled SMM_MNK="5 25" kernels); then interleaved elements (ours:
16 elements per SIMD vector, every product a broadcast FMA over lanes). As the sample, every step runs
every variant; the first --jitter steps are not averaged, then --repeat steps are. Each line shows
the time, the speedup over Deville in percent and the largest difference from Deville's result;
--check also validates every variant against a float64 numpy einsum implementation, whose float32
twin is timed as the numpy baseline. MPI ranks split the elements, OpenMP threads share a rank's.
"""
import numpy as np

from miniapps import runtime as rt

from . import kernels, mesh, reference

TITLES = {"deville": "Deville loops", "unrolled": "unrolled loops", "dispatched": "dispatched kernels",
          "prefetch": "prefetch kernels", "static": "static kernels", "interleaved": "interleaved elements",
          "numpy": "numpy einsum"}
# Work per element: 42 products of the sample's shapes (22,500 flops) and the pointwise arithmetic
# of specfem_tpl.h (stress 160 and sum_terms 18 flops per GLL point).
GEMM_FLOPS = 2 * (3 * 5 * 25 * 5 + 15 * 5 * 5 * 5 + 3 * 25 * 5 * 5) * 2
POINT_FLOPS = (160 + 18) * mesh.NGLL3
TOLERANCE = 2e-5  # float32 against float64: sums of a few hundred rounded products


def add_arguments(parser):
    parser.add_argument("elements", nargs="?", type=int, default=mesh.DEFAULT_ELEMENTS,
                        help=f"number of spectral elements (default {mesh.DEFAULT_ELEMENTS}: "
                             f"{mesh.NEX} x {mesh.NEY} x {mesh.NEZ})")
    parser.add_argument("--jitter", type=int, default=5, metavar="N",
                        help="first steps run but not averaged (default 5, as the sample)")
    parser.add_argument("--variants", default=",".join(kernels.VARIANTS), metavar="LIST",
                        help=f"comma-separated variants (default: {','.join(kernels.VARIANTS)}); "
                             "deville always runs: it is the reference of the speedups and diffs")
    parser.add_argument("--no-numpy", action="store_true", help="do not time the numpy baseline")


def parse_variants(text):
    chosen = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in chosen if v not in kernels.VARIANTS]
    if bad or not chosen:
        raise rt.UsageError(f"--variants: unknown {bad or text!r}; choose from {','.join(kernels.VARIANTS)}")
    return [v for v in kernels.VARIANTS if v in chosen or v == "deville"]


def _max_over_ranks(ctx, value):
    return ctx.comm.allreduce(value, op=ctx.mpi.MAX) if ctx.mpi is not None else value


class Problem:
    """One rank's share of the mesh, its model and displacement, and the kernel over it."""

    def __init__(self, nspec, rank, size):
        whole = mesh.build_mesh(nspec)
        self.nspec_total = whole.nspec
        self.nglob_total = whole.nglob
        self.first, count = mesh.split_elements(whole.nspec, size, rank)
        self.ibool, nodes = mesh.local_part(whole, self.first, count)
        self.nglob = nodes.size
        self.displ = mesh.displacement(mesh.node_positions(whole)[nodes])
        geom, material, gravity = mesh.element_model(whole)
        part = slice(self.first, self.first + count)
        self.geom = np.ascontiguousarray(geom[part])
        self.material = np.ascontiguousarray(material[part])
        self.gravity = np.ascontiguousarray(gravity[part])
        self.nspec = count
        self.accel = np.zeros((self.nglob, 3), dtype=np.float32)

    def model(self):
        return self.ibool, self.displ, self.geom, self.material, self.gravity


def main(ctx):
    a = ctx.args
    if a.elements < 1:
        raise rt.UsageError(f"elements must be >= 1, got {a.elements}")
    if a.jitter < 0:
        raise rt.UsageError(f"--jitter must be >= 0, got {a.jitter}")
    variants = parse_variants(a.variants)
    if a.elements < ctx.size:
        raise rt.UsageError(f"{a.elements} elements cannot be split over {ctx.size} ranks")
    prob = Problem(a.elements, ctx.rank, ctx.size)
    ctx.header(f"specfem: elements={prob.nspec_total} global nodes={prob.nglob_total} GLL points=5x5x5 "
               f"(SP) steps={a.jitter + a.repeat} (first {a.jitter} not averaged)"
               + (f", {ctx.size} ranks" if ctx.size > 1 else ""))
    stiff = kernels.Stiffness(prob.ibool, prob.nglob, prob.geom, prob.material, prob.gravity)
    if "static" in variants and not stiff.static_available:
        ctx.print("static kernels: not built (SMM_MNK lacks \"5 25\"); skipping the static variant")
        variants.remove("static")
    ks = stiff.kernels
    ctx.print("kernels: " + ", ".join(f"{n} {k.m}x{k.n}x{k.k}{' (unrolled)' if k.specialized else ''}"
                                      for n, k in ks.items() if not n.endswith("p")) + f"; target {stiff.target}")
    ref = None
    if ctx.check:
        ctx.print("Calculating check (numpy einsum, float64)...")
        ref = reference.forces(*prob.model(), mesh.gll_operators())
    steps = a.jitter + a.repeat
    total = {v: 0.0 for v in variants}
    checks = {}
    accel_dev = np.empty_like(prob.accel)
    for step in range(1, steps + 1):
        ctx.print(f"step {step}")
        t_dev = None
        for v in variants:
            prob.accel.fill(0.0)
            timing = ctx.timeit(lambda: stiff.forces(prob.displ, prob.accel, variant=v, threads=ctx.threads),
                                repeat=1, warmup=0)
            t = timing.max
            if v == "deville":
                t_dev = t
                accel_dev[...] = prob.accel
                ctx.print(f"  duration with {TITLES[v]:>20s} = {t:8.4f} (s)")
            else:
                diff = _max_over_ranks(ctx, float(np.max(np.abs(prob.accel - accel_dev))) if prob.nglob else 0.0)
                ctx.print(f"  duration with {TITLES[v]:>20s} = {t:8.4f} (s) / speedup = "
                          f"{100.0 * (t_dev - t) / t_dev:8.2f} % / maximum diff = {diff:.4e}")
            if step > a.jitter:
                total[v] += timing.per_rank[ctx.rank]
            if step == steps and ref is not None:
                checks[v] = ctx.validate(prob.accel, ref, tol=TOLERANCE)
    averaged = {v: ctx.gather_timing(total[v] / a.repeat, repeat=a.repeat) for v in variants}
    numpy_timing = None
    if not a.no_numpy:
        numpy_timing = ctx.timeit(lambda: reference.forces(*prob.model(), mesh.gll_operators(), dtype=np.float32),
                                  repeat=1, warmup=0)
    ctx.print("=" * 60)
    ctx.print(f"average over {a.repeat} repetitions")
    t_ref = averaged["deville"].max
    flops = (GEMM_FLOPS + POINT_FLOPS) * prob.nspec
    for v in variants:
        t = averaged[v].max
        line = f"  timing with {TITLES[v]:>20s} = {t:8.4f}"
        if v != "deville":
            line += f" / speedup = {100.0 * (t_ref - t) / t_ref:8.2f} %"
        if numpy_timing is not None:
            line += f" / {numpy_timing.max / t:6.1f}x numpy"
        chk = checks.get(v)
        if chk is not None:
            line += f" / check max_rel={chk['max_rel_err']:.2e} {'ok' if chk['ok'] else 'FAILED'}"
        ctx.print(line)
    if numpy_timing is not None:
        ctx.print(f"  timing with {TITLES['numpy']:>20s} = {numpy_timing.max:8.4f}")
    ctx.print("=" * 60)
    for v in variants:
        extra = {"elements": prob.nspec_total, "steps": steps, "jitter": a.jitter,
                 "speedup_over_deville": t_ref / averaged[v].max,
                 "gemm_flops_per_element": GEMM_FLOPS, "point_flops_per_element": POINT_FLOPS}
        if numpy_timing is not None:
            extra["speedup_over_numpy"] = numpy_timing.max / averaged[v].max
        ctx.report(v, averaged[v], flops=flops, check=checks.get(v), extra=extra, label=TITLES[v], show=False)
    if numpy_timing is not None:
        ctx.report("numpy", numpy_timing, flops=flops, extra={"elements": prob.nspec_total}, label=TITLES["numpy"],
                   show=False)
