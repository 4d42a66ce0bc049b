"""nek: Nek5000's tensor-product element operators as sequences of small GEMMs (LIBXSMM samples/nek).

  axhm [m [n [k [size1 [size]]]]]                  Helmholtz operator (alias: stpm)
  grad [m [n [k [size1 [size]]]]]                  gradient in reference coordinates
  rstr [m [n [k [mm [nn [kk [size1 [size]]]]]]]]   restriction/interpolation m x n x k -> mm x nn x kk

Defaults (also for 0): m=8, k=m, n=k; rstr: mm=10, nn=mm, kk=mm. size1 is the working set (0: 2048 MB,
>0: MB, <0: exactly |size1| elements), size the total work (0: one pass, >0: MB, <0: element updates).
Per element, axhm and grad run tm1 = dx a (m x n*k x m), k GEMMs tm2_j = a_j dy (m x n x n) and
tm3 = a dz (m*n x k x k), then a streaming update (axhm: c = h1 (g1 tm1 + g2 tm2 + g3 tm3) + h2 b a)
or three streaming copies (grad); rstr runs (mm x n*k x m), k x (mm x nn x n), (mm*nn x kk x k) and
a streaming copy. Variants: BLAS (one scipy cython_blas call per GEMM), mxm (Nek's mxm_std loops),
auto-dispatched (a registry look-up before every GEMM), specialized (three kernels dispatched up
front), then numpy (batched matmul: the Python user's baseline). MPI ranks split the elements,
OpenMP threads share each rank's. --check compares every variant with a float64 numpy einsum.
"""
import numpy as np

from miniapps import runtime as rt

from . import kernels, science

LABELS = {"blas": "Streamed (BLAS)", "mxm": "Streamed (mxm)", "dispatched": "Streamed (auto-dispatched)",
          "specialized": "Streamed (specialized)", "numpy": "numpy (batched matmul)"}
ORDER = ("blas", "mxm", "dispatched", "specialized", "numpy")


def add_arguments(parser):
    parser.add_argument("op", choices=science.OPS + tuple(science.ALIASES),
                        help="axhm (alias stpm): Helmholtz operator; grad: gradient; rstr: restriction")
    parser.add_argument("sizes", nargs="*", type=int, metavar="N",
                        help="axhm/grad: m n k size1 size; rstr: m n k mm nn kk size1 size")
    parser.add_argument("--variants", default=",".join(ORDER), metavar="LIST",
                        help=f"comma-separated variants to run, in this order (default: {','.join(ORDER)})")


def parse_problem(op, sizes):
    """``dict(op, m, n, k, mm, nn, kk, size1, size)`` from the positional sizes, as the Fortran sample."""
    op = science.ALIASES.get(op, op)
    limit = 8 if op == "rstr" else 5
    if len(sizes) > limit:
        raise rt.UsageError(f"{op} takes at most {limit} numbers, got {len(sizes)}")
    arg = lambda i: sizes[i] if i < len(sizes) else None
    m = arg(0) or 8
    k = arg(2) or m
    n = arg(1) or k
    p = {"op": op, "m": m, "n": n, "k": k, "mm": 0, "nn": 0, "kk": 0}
    if op == "rstr":
        mm = arg(3) or 10
        p.update(mm=mm, nn=arg(4) or mm, kk=arg(5) or mm)
        p.update(size1=arg(6) or 0, size=arg(7) or 0)
    else:
        p.update(size1=arg(3) or 0, size=arg(4) or 0)
    for name in ("m", "n", "k") + (("mm", "nn", "kk") if op == "rstr" else ()):
        if p[name] < 1:
            raise rt.UsageError(f"{name} must be >= 1, got {p[name]}")
    return p


def parse_variants(text):
    chosen = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in chosen if v not in ORDER]
    if bad or not chosen:
        raise rt.UsageError(f"--variants: unknown {bad or text!r}; choose from {','.join(ORDER)}")
    return [v for v in ORDER if v in chosen]


def split_elements(total, size, rank):
    """``(first, count)``: rank's contiguous share of ``total`` elements (counts differ by at most 1)."""
    base, extra = divmod(total, size)
    first = rank * base + min(rank, extra)
    return first, base + (1 if rank < extra else 0)


class Problem:
    """One rank's elements: inputs, outputs, the numpy reference and the calls of every variant."""

    def __init__(self, p, first, count, dtype, threads):
        self.p = p
        self.dtype = dtype
        self.threads = threads
        op, m, n, k, mm, nn, kk = (p[x] for x in ("op", "m", "n", "k", "mm", "nn", "kk"))
        self.ops = science.operators(op, m, n, k, mm, nn, kk)
        self.a = science.make_field(first, count, m, n, k, dtype)
        if op == "axhm":
            self.b = science.make_field(first, count, m, n, k, dtype, sign=-1.0)
            self.g = science.make_geometry(count, m, n, k, dtype)
            self.h = (1.0, 1.0)
            self.out = [np.zeros_like(self.a)]
        elif op == "grad":
            self.out = [np.zeros_like(self.a) for _ in range(3)]
        else:
            self.out = [np.zeros((count, kk, nn, mm), dtype=dtype)]

    def kernels(self):
        p = self.p
        return kernels.specialized_kernels(p["op"], p["m"], p["n"], p["k"], p["mm"], p["nn"], p["kk"], self.dtype)

    def run(self, variant, kerns=None):
        op, out = self.p["op"], self.out
        kw = {"variant": variant, "threads": self.threads, "kernels": kerns}
        if op == "axhm":
            kernels.axhm(self.a, self.b, *self.g, *self.ops, out[0], *self.h, **kw)
        elif op == "grad":
            kernels.grad(self.a, *self.ops, *out, **kw)
        else:
            kernels.rstr(self.a, *self.ops, out[0], **kw)
        return out

    def run_numpy(self):
        op = self.p["op"]
        if op == "axhm":
            return [science.axhm_numpy(self.a, self.b, *self.g, *self.ops, *self.h)]
        if op == "grad":
            return list(science.grad_numpy(self.a, *self.ops))
        return [science.rstr_numpy(self.a, *self.ops)]

    def reference(self):
        op = self.p["op"]
        if op == "axhm":
            return [science.axhm_reference(self.a, self.b, *self.g, *self.ops, *self.h)]
        if op == "grad":
            return list(science.grad_reference(self.a, *self.ops))
        return [science.rstr_reference(self.a, *self.ops)]

    def clear(self):
        for x in self.out:
            x.fill(0)


def main(ctx):
    a = ctx.args
    p = parse_problem(a.op, a.sizes)
    variants = parse_variants(a.variants)
    op, m, n, k, mm, nn, kk = (p[x] for x in ("op", "m", "n", "k", "mm", "nn", "kk"))
    item = ctx.dtype.itemsize
    try:
        total, reps, mb = science.plan_sizes(science.element_bytes(op, m, n, k, mm, nn, kk, item),
                                             p["size1"], p["size"])
    except ValueError as exc:
        raise rt.UsageError(str(exc)) from None
    first, count = split_elements(total, ctx.size, ctx.rank)
    dims = f"m={m} n={n} k={k}" + (f" mm={mm} nn={nn} kk={kk}" if op == "rstr" else "")
    ctx.header(f"{op}: {dims} elements={total} size={mb:.0f}MB repetitions={reps}"
               + (f" split over {ctx.size} ranks" if ctx.size > 1 else ""))
    prob = Problem(p, first, count, ctx.dtype, ctx.threads)
    flops = science.flops_per_element(op, m, n, k, mm, nn, kk) * count
    nbytes = science.bytes_per_element(op, m, n, k, mm, nn, kk, item) * count
    tol = (science.tolerance(ctx.dtype, m + mm, n + nn, k + kk) if op == "rstr"
           else science.tolerance(ctx.dtype, m, n, k))
    ref = None
    if ctx.check:
        ctx.print("Calculating check...")
        ref = prob.reference()
    seconds = {}
    for variant in variants:
        kerns = None
        extra = {"op": op, "m": m, "n": n, "k": k, "elements": total, "repetitions": reps}
        if op == "rstr":
            extra.update(mm=mm, nn=nn, kk=kk)
        if variant == "specialized":
            try:
                kerns = prob.kernels()
            except (ValueError, RuntimeError) as exc:
                ctx.print(f"{LABELS[variant]}...\n\tCould not build specialized function(s)! ({exc})")
                continue
            extra["unrolled"] = [bool(x.specialized) for x in kerns]
            ctx.print("specialized kernels: " + ", ".join(
                f"{x.m}x{x.n}x{x.k}{' (unrolled)' if x.specialized else ''}" for x in kerns))
        if variant == "numpy":
            holder = {}
            timing = ctx.timeit(lambda: holder.__setitem__("out", prob.run_numpy()), repeat=reps * a.repeat)
            result = holder["out"]
        else:
            prob.clear()
            timing = ctx.timeit(lambda: prob.run(variant, kerns), repeat=reps * a.repeat)
            result = prob.out
        chk = ctx.validate(result, ref, tol=tol) if ctx.check else None
        seconds[variant] = timing.max
        if variant == "numpy":
            extra["speedup_over_numpy"] = {v: timing.max / t for v, t in seconds.items() if v != "numpy"}
        ctx.report(variant, timing, flops=flops, nbytes=nbytes, check=chk, extra=extra, label=LABELS[variant])
    if "numpy" in seconds and len(seconds) > 1:
        ctx.print("numpy baseline: " + ", ".join(
            f"{v} {seconds['numpy'] / t:.1f}x" for v, t in seconds.items() if v != "numpy"))
