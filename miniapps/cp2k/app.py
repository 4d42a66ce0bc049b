"""The cp2k mini-app's command line and main loop (the science is in model.py)."""
import time

import numpy as np

from core import acc
from miniapps import runtime as rt
from miniapps.runtime.args import positive_int

from . import model

# Products per stack: large enough that a stack outweighs the per-stack costs (Python loop, op
# scheduling: tens of microseconds) also at m = 5, small enough for double buffering to matter.
DEFAULT_STACK_SIZE = 30000
DEFAULT_STREAMS = 2


def add_arguments(parser):
    # LIBXSMM's "-"/"---" size shorthands are positionals (the runtime's parser knows); "--" stays
    # argparse's end-of-options marker: write that size as a number.
    parser.add_argument("m", nargs="?", type=int, default=23, help="block size m (default 23)")
    parser.add_argument("r", nargs="?", default=None,
                        help="stack size s: products per rank (0: ~2 GiB of A and B blocks shared "
                             "among the node's ranks; '+'/'-' shorthands as LIBXSMM's sample)")
    parser.add_argument("t", nargs="?", default=None,
                        help="group size u: products per C block / private temporary (0: isqrt(s*160/240))")
    parser.add_argument("n", nargs="?", type=int, default=None, help="block size n (default k)")
    parser.add_argument("k", nargs="?", type=int, default=None, help="block size k (default m)")
    group = parser.add_argument_group("cp2k options")
    group.add_argument("--model", choices=("dbcsr", "sample"), default="dbcsr",
                       help="dbcsr: block-sparse stacks over many C blocks (default); sample: "
                            "LIBXSMM 1.11's single-C stack")
    group.add_argument("--path", choices=("offload", "host"), default="offload",
                       help="offload: a core.acc device with its own threads (default); host: "
                            "the rank's OpenMP team")
    group.add_argument("--streams", type=positive_int, default=DEFAULT_STREAMS, metavar="N",
                       help=f"device streams (offload; default {DEFAULT_STREAMS})")
    group.add_argument("--device-threads", type=positive_int, default=None, metavar="N",
                       help="device worker threads (offload; default: --threads)")
    group.add_argument("--stack-size", type=positive_int, default=DEFAULT_STACK_SIZE, metavar="N",
                       help=f"products per stack (as DBCSR's mm_stack_size; default {DEFAULT_STACK_SIZE})")
    group.add_argument("--variants", default=None, metavar="LIST",
                       help="comma-separated subset of " + ",".join(model.VARIANTS) + " (default: all "
                            "the path runs)")
    group.add_argument("--seed", type=int, default=42, help="random seed (rank r uses seed + r)")


def _variants(text, path):
    available = [v for v in model.VARIANTS if path == "host" or v not in model.HOST_ONLY]
    if text is None:
        return available
    chosen = [v.strip() for v in text.split(",") if v.strip()]
    for v in chosen:
        if v not in model.VARIANTS:
            raise rt.UsageError(f"unknown variant {v!r}; choose from {', '.join(model.VARIANTS)}")
        if v not in available:
            raise rt.UsageError(f"variant {v!r} runs on the host path only (--path host)")
    if not chosen:
        raise rt.UsageError("--variants names no variant")
    return [v for v in model.VARIANTS if v in chosen]


def _ms(seconds):
    ms = 1e3 * seconds
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.3g}"


def main(ctx):
    a = ctx.args
    dtype = ctx.dtype
    try:
        m, n, k, s, u = model.problem_size(a.m, a.r, a.t, a.n, a.k, dtype.itemsize, ctx.local_size, rt.parse_size)
    except model.SizeError as exc:
        raise rt.UsageError(str(exc)) from None
    variants = _variants(a.variants, a.path)
    problem = model.make_problem(a.model, m, n, k, s, u, dtype, a.stack_size, a.seed + ctx.rank)
    prec = "DP" if dtype == np.float64 else "SP"
    ctx.header(f"m={m} n={n} k={k} size={s} memory={problem.memory_bytes / 2 ** 20:.1f} MB ({prec})"
               + (f" per rank, {ctx.size} ranks" if ctx.size > 1 else ""))
    current = {"since": time.monotonic(), "label": ""}

    def progress(i, total):
        # Only long runs report progress (the runtime itself limits it to one line per 2 s).
        if i < total and time.monotonic() - current["since"] > 2.0:
            ctx.progress(i, total, current["label"])

    device = None
    if a.path == "offload":
        dev_threads = a.device_threads or ctx.threads
        device = acc.Device(threads=dev_threads, cpus=list(ctx.cpus) if ctx.cpus else None)
        path = model.OffloadPath(problem, device, a.streams, progress)
        ctx.header(f"{problem.describe()}\npath=offload: core.acc device with {dev_threads} worker "
                   f"thread{'s' if dev_threads != 1 else ''}, {a.streams} stream{'s' if a.streams != 1 else ''} "
                   f"(numpy runs on the host)\n")
    else:
        path = model.HostPath(problem, ctx.threads, progress)
        ctx.header(f"{problem.describe()}\npath=host: {ctx.threads} OpenMP thread"
                   f"{'s' if ctx.threads != 1 else ''} per rank\n")
    tol = problem.tolerance()
    gflops = {}
    try:
        for variant in variants:
            run = path.runner(variant)
            run(limit=2)                       # warm-up: kernels dispatched, device pages touched
            current.update(since=time.monotonic(), label=f"{model.LABELS[variant].split(' (')[0]}: stack")
            timing = ctx.timeit(run, warmup=0)
            check = ctx.validate(path.C, problem.reference, tol=tol)
            extra = {"model": a.model, "path": a.path, "m": m, "n": n, "k": k, "size": s, "group": u,
                     "stack_size": problem.stack_size, "stacks": problem.nstacks,
                     "c_updates": problem.c_updates, "memory_mb": problem.memory_bytes / 2 ** 20}
            ov = path.overlap() if variant != "numpy" else None
            if device is not None:
                extra.update(streams=a.streams, device_threads=device.threads)
            if ov is not None:
                per_rank = ctx.comm.allgather(ov)
                extra["overlap"] = {key: float(np.mean([o[key] for o in per_rank])) for key in ov}
                extra["overlap_per_rank"] = per_rank
            record = ctx.report(variant, timing, flops=problem.flops, nbytes=problem.nbytes, calls=s,
                                check=check, extra=extra, label=model.LABELS[variant])
            gflops[variant] = record["gflops"]
            if ov is not None:
                o = extra["overlap"]
                hidden = 100.0 * o["overlap"] / o["host"] if o["host"] > 0 else 0.0
                ctx.print(f"\toverlap: host-busy {_ms(o['host'])} ms, device-busy {_ms(o['device'])} ms, "
                          f"union {_ms(o['union'])} ms, both {_ms(o['overlap'])} ms "
                          f"({hidden:.0f}% of host work hidden){' (mean over ranks)' if ctx.size > 1 else ''}")
    finally:
        path.close()
        if device is not None:
            device.close()
    _summary(ctx, gflops)


def _summary(ctx, gflops):
    base = gflops.get("numpy")
    lines = ["Summary (GFLOPS/s" + (", x numpy: speed-up over the numpy baseline):" if base else "):")]
    for variant, g in gflops.items():
        if g is None:
            continue
        ratio = f"   x{g / base:.1f}" if base and variant != "numpy" else ""
        lines.append(f"\t{model.LABELS[variant]:<40s}{g:8.1f}{ratio}")
    ctx.print("\n".join(lines))
    ctx.print("Finished")
