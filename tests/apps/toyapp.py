"""toyapp: a tiny mini-app that exercises the runtime (tests only).

Two variants on each rank's own data: "axpy" (y = a*x + y on n elements) and "matmul" (a stack of
s products of k x k matrices with numpy). Options make it fail in the ways the runtime must handle.
"""
import time

import numpy as np

from miniapps import runtime as rt


def add_arguments(parser):
    parser.add_argument("n", nargs="?", type=int, default=1000, help="vector length (default: 1000)")
    parser.add_argument("k", nargs="?", type=int, default=8, help="matrix size (default: 8)")
    parser.add_argument("s", nargs="?", default="0",
                        help="stack size, or +/- shorthand relative to 16 (default: 0 -> 16)")
    parser.add_argument("--fail-rank", type=int, default=None,
                        help="raise an exception on this rank only, then the others wait in a barrier")
    parser.add_argument("--fail-all", action="store_true", help="ctx.fail() on every rank")
    parser.add_argument("--wrong", action="store_true", help="return a wrong result (failed --check)")
    parser.add_argument("--hang-rank", type=int, default=None,
                        help="this rank sleeps forever before its first collective (for abort tests)")


def main(ctx):
    a = ctx.args
    if a.n < 1:
        ctx.usage_error(f"n must be >= 1, got {a.n}")
    s = rt.parse_size(a.s, 16) or 16
    ctx.header(f"n={a.n} k={a.k} s={s} rank={ctx.rank} (toy)")
    if a.fail_all:
        ctx.fail("asked to fail on every rank")
    if a.fail_rank is not None and ctx.rank == a.fail_rank:
        raise RuntimeError(f"toyapp failure on rank {ctx.rank}")
    if a.hang_rank is not None and ctx.rank == a.hang_rank:
        while True:
            time.sleep(1)
    rng = np.random.default_rng(42 + ctx.rank)
    x = rng.standard_normal(a.n).astype(ctx.dtype)
    y0 = rng.standard_normal(a.n).astype(ctx.dtype)
    y = y0.copy()
    calls = [0]

    def axpy():
        calls[0] += 1
        np.multiply(x, 2.0, out=y)
        y.__iadd__(y0)

    t = ctx.timeit(axpy, repeat=a.repeat, warmup=1)
    assert calls[0] == a.repeat + 1
    result = y + (1.0 if a.wrong else 0.0)
    chk = ctx.validate(result, lambda: 2.0 * x.astype(np.float64) + y0)
    ctx.report("axpy", t, flops=2 * a.n, nbytes=3 * a.n * ctx.dtype.itemsize, calls=1, check=chk,
               label="AXPY", extra={"calls_made": calls[0]})

    A = rng.standard_normal((s, a.k, a.k)).astype(ctx.dtype)
    B = rng.standard_normal((s, a.k, a.k)).astype(ctx.dtype)
    C = np.zeros_like(A)
    t = ctx.timeit(lambda: np.matmul(A, B, out=C))
    chk = ctx.validate(C, lambda: np.einsum("sij,sjk->sik", A.astype(np.float64), B.astype(np.float64)))
    ctx.report("matmul", t, flops=2 * s * a.k ** 3, nbytes=3 * s * a.k * a.k * ctx.dtype.itemsize,
               calls=s, check=chk, label="Stacked matmul")
    ctx.progress(1, 1, "done")


if __name__ == "__main__":
    rt.run("toyapp", main, add_arguments, doc=__doc__)
