"""Tile tuner for core.transpose (LIBXSMM's transpose_opentuner.py, on Optuna).

  python -m miniapps.transpose.tune [begin end [nruns [m [n [maxm [maxn]]]]]] [--trials N] ...

Searches the tile M (extent along the input's rows) and N (along its columns) in
[2, max(min(maxm, end), 3)] and [2, max(min(maxn, end), 3)]. Each trial transposes the same
`nruns` random shapes drawn from [begin, end] with tight leading dimensions (the sample's
`transpose o end end end end nruns -begin`), each shape once untimed and once timed, and scores
runs per second (nruns / total seconds; the best of --repeat passes). The best tile is the fastest
trial, ties (within --tie) going to the smallest M*N; if the library's built-in default (measured
the same way) is faster still, the default is kept. The result is written into the tuned-parameter file
(SMM_TUNED_FILE, default ~/.cache/smm-miniapps/tuned.json) for this CPU model, ISA path, element
size and size class, and core.transpose uses it by default from then on.

Without begin/end, each size class is tuned in turn over its own range. Studies live in an Optuna
SQLite file (--storage) and resume: --trials is the total a study should reach, so re-running the
same command after an interruption only runs the missing trials. In-place tuning (--kind i)
searches one square tile (M).
"""
import argparse
import datetime
import hashlib
import math
import os
import sys
import time

import numpy as np

from core import _config, cpu, tuned
from core import transpose as tr
from miniapps.transpose import SEED, random_shapes, shape_table
from miniapps.transpose import _kern

_DTYPES = {"f64": np.float64, "f32": np.float32}
TILE_MIN = 2


def class_range(size_class, itemsize):
    """Default ``(begin, end)`` extents of square-ish shapes whose bytes fall in a size class."""
    lower, upper = tuned.size_class_bounds(size_class)
    begin = max(8, math.isqrt(lower // itemsize)) if lower else 8
    end = math.isqrt((upper - 1) // itemsize) if upper else max(2 * begin, math.isqrt((256 << 20) // itemsize) // 2)
    return begin, end


def default_nruns(end, itemsize):
    """Random shapes per trial: fewer for large matrices (a trial stays around a second)."""
    budget = 256 << 20  # bytes transposed per trial pass, roughly
    return int(min(100, max(5, budget // max(1, end * end * itemsize // 3))))


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser():
    p = argparse.ArgumentParser(prog="python -m miniapps.transpose.tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("begin", nargs="?", type=_positive, help="smallest random extent")
    p.add_argument("end", nargs="?", type=_positive, help="largest random extent")
    p.add_argument("nruns", nargs="?", type=_positive, default=None,
                   help="random shapes per trial (default: 100, fewer for large shapes)")
    p.add_argument("m", nargs="?", type=_positive, default=None, help="tile M of the first trial")
    p.add_argument("n", nargs="?", type=_positive, default=None, help="tile N of the first trial")
    p.add_argument("maxm", nargs="?", type=_positive, default=160, help="largest tile M (default 160)")
    p.add_argument("maxn", nargs="?", type=_positive, default=160, help="largest tile N (default 160)")
    p.add_argument("--trials", type=_positive, default=40, help="trials per study in total (default 40)")
    p.add_argument("--kind", choices=("o", "i"), default="o", help="o: out of place (default), i: in place")
    p.add_argument("--dtype", choices=tuple(_DTYPES), default="f64", help="element type (default f64)")
    p.add_argument("--threads", type=_positive, default=None, help="OpenMP threads (default: the library's)")
    p.add_argument("--target", default=None, help="ISA path to tune (default: the process's, SMM_TARGET)")
    p.add_argument("--size-class", choices=[c for c, _ in tuned.SIZE_CLASSES], default=None,
                   help="class the result is stored under (default: from the shapes' mean size; "
                        "without begin/end: tune every class)")
    p.add_argument("--repeat", type=_positive, default=2, help="timed passes per trial, best counts (default 2)")
    p.add_argument("--tie", type=float, default=0.02,
                   help="trials within this fraction of the best count as ties (default 0.02)")
    p.add_argument("--seed", type=int, default=SEED, help=f"seed of shapes and sampler (default {SEED})")
    p.add_argument("--storage", default=None,
                   help="Optuna SQLite file (default: transpose-tune.sqlite3 beside the tuned file)")
    p.add_argument("--study", default=None, help="study name (default: from CPU, ISA, kind, dtype, range)")
    p.add_argument("--no-write", action="store_true", help="do not write the tuned-parameter file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _study_name(args, target, begin, end, nruns, maxm, maxn):
    model = hashlib.sha1(cpu.model().encode()).hexdigest()[:8]
    threads = args.threads or "default"
    return (f"transpose-{args.kind}-{args.dtype}-{target}-cpu{model}-t{threads}-"
            f"{begin}_{end}_{nruns}-max{maxm}x{maxn}-seed{args.seed}")


def pick_best(trials, tie):
    """The best completed trial: highest runs/s; within ``tie`` of it, the smallest M*N wins."""
    done = [t for t in trials if t.value is not None and t.state.name == "COMPLETE"]
    if not done:
        return None
    top = max(t.value for t in done)
    close = [t for t in done if t.value >= (1.0 - tie) * top]
    return min(close, key=lambda t: (t.user_attrs["tile_m"] * t.user_attrs["tile_n"], -t.value))


def tune_range(args, begin, end, size_class, storage_url, log):
    """One study over shapes in [begin, end]; returns (best tile dict, study)."""
    import optuna

    target = args.target or cpu.target()
    dtype = np.dtype(_DTYPES[args.dtype])
    es = dtype.itemsize
    inplace = args.kind == "i"
    nruns = args.nruns or default_nruns(end, es)
    maxm = max(min(args.maxm, end), 3)
    maxn = max(min(args.maxn, end), 3)
    shapes = random_shapes(np.random.default_rng(args.seed), end, end, end, end, nruns, -begin, inplace)
    mean_bytes = float(np.mean([km * kn for km, kn, _, _ in shapes])) * es
    size_class = size_class or tuned.size_class(mean_bytes)
    name = args.study or _study_name(args, target, begin, end, nruns, maxm, maxn)

    inbuf = np.random.default_rng(args.seed).random(end * end).astype(dtype)
    outbuf = np.zeros(end * end, dtype=dtype)
    threads = args.threads

    def measure(tile_m, tile_n):
        table = shape_table(shapes, dtype, args.kind, threads=threads, target=target,
                            tile_m=tile_m, tile_n=tile_n)
        best = math.inf
        for _ in range(args.repeat):
            seconds = float(_kern.run_shapes(inbuf, None if inplace else outbuf, table, args.kind,
                                             target=target, warm_each=True).sum())
            best = min(best, seconds)
        return nruns / best if best > 0 else math.inf

    def objective(trial):
        tile_m = trial.suggest_int("tile_m", TILE_MIN, maxm)
        tile_n = tile_m if inplace else trial.suggest_int("tile_n", TILE_MIN, maxn)
        # What the library runs: tiles rounded up to the register block.
        p = tr.plan(end, end, dtype=dtype, kind=args.kind, tile_m=tile_m, tile_n=tile_n, target=target)
        trial.set_user_attr("tile_m", tile_m)
        trial.set_user_attr("tile_n", tile_n)
        trial.set_user_attr("effective", [p["tile_m"], p["tile_n"]])
        return measure(tile_m, tile_n)

    settings = {"begin": begin, "end": end, "nruns": nruns, "kind": args.kind, "dtype": args.dtype,
                "target": target, "cpu": cpu.model(), "threads": threads or 0, "seed": args.seed,
                "maxm": maxm, "maxn": maxn}
    sampler = optuna.samplers.TPESampler(seed=args.seed)
    study = optuna.create_study(study_name=name, storage=storage_url, direction="maximize",
                                sampler=sampler, load_if_exists=True)
    old = study.user_attrs.get("settings")
    if old is None:
        study.set_user_attr("settings", settings)
    elif old != settings:
        raise SystemExit(f"study {name!r} in {storage_url} was made with other settings ({old}); "
                         "pass another --study or --storage")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    missing = max(0, args.trials - len(done))
    log(f"study {name}: shapes {begin}..{end} x{nruns} ({size_class}), {len(done)} trials done, "
        f"{missing} to run")
    if not done and args.m:
        first = {"tile_m": min(max(args.m, TILE_MIN), maxm)}
        if not inplace:
            first["tile_n"] = min(max(args.n or args.m, TILE_MIN), maxn)
        study.enqueue_trial(first)
    if missing:
        bar = None
        if not args.quiet:
            from tqdm import tqdm
            bar = tqdm(total=missing, desc=f"tune {size_class}", unit="trial", file=sys.stderr)

        def progress(study_, trial):
            if bar is not None:
                best = pick_best(study_.trials, args.tie)
                if best is not None:
                    bar.set_postfix_str(f"best {best.user_attrs['tile_m']}x{best.user_attrs['tile_n']} "
                                        f"{best.value:.0f} runs/s")
                bar.update(1)

        try:
            study.optimize(objective, n_trials=missing, callbacks=[progress], gc_after_trial=False)
        finally:
            if bar is not None:
                bar.close()
    best = pick_best(study.trials, args.tie)
    if best is None:
        raise SystemExit(f"study {name!r} has no completed trial")
    tile = (int(best.user_attrs["tile_m"]), int(best.user_attrs["tile_n"]))
    runs_per_s = float(best.value)
    # The built-in default, measured the same way now: tuning must never make the library slower,
    # and the default may lie outside the searched range (it does for large matrices: tall bands).
    base_tile = tr.DEFAULT_TILES[(es, args.kind)][size_class]
    base_rps = measure(*base_tile)
    chosen = "trial"
    if base_rps > runs_per_s * (1.0 + args.tie):
        tile, runs_per_s, chosen = base_tile, base_rps, "built-in default (faster than every trial)"
        log(f"the built-in default {base_tile[0]}x{base_tile[1]} ({base_rps:.1f} runs/s) beat the best "
            f"trial ({best.value:.1f} runs/s): keeping it")
    result = {
        "tile_m": int(tile[0]), "tile_n": int(tile[1]), "chosen": chosen,
        "baseline": {"tile_m": int(base_tile[0]), "tile_n": int(base_tile[1]), "runs_per_s": base_rps},
        "runs_per_s": runs_per_s, "trials": len([t for t in study.trials if t.state.name == "COMPLETE"]),
        "shapes": [begin, end], "nruns": nruns, "threads": threads or 0,
        "size_class": size_class, "study": name, "storage": storage_url,
        "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return result, target, size_class


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        import optuna
    except ImportError:
        print("the tuner needs optuna: pip install 'smm-miniapps[tune]'", file=sys.stderr)
        return 2
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if (args.begin is None) != (args.end is None):
        print("give both begin and end, or neither", file=sys.stderr)
        return 2
    if args.begin is not None and args.begin > args.end:
        print(f"begin={args.begin} must be <= end={args.end}", file=sys.stderr)
        return 2
    if not 0 <= args.tie < 1:
        print(f"--tie must be in [0, 1), got {args.tie}", file=sys.stderr)
        return 2
    if args.target is not None:
        try:
            cpu.isa_id(args.target)
        except ValueError as e:
            print(e, file=sys.stderr)
            return 2
    storage = args.storage or os.path.join(os.path.dirname(os.path.abspath(_config.tuned_file())),
                                           "transpose-tune.sqlite3")
    os.makedirs(os.path.dirname(os.path.abspath(storage)), exist_ok=True)
    storage_url = "sqlite:///" + os.path.abspath(storage)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))

    es = np.dtype(_DTYPES[args.dtype]).itemsize
    if args.begin is not None:
        ranges = [(args.begin, args.end, args.size_class)]
    else:
        classes = [args.size_class] if args.size_class else [c for c, _ in tuned.SIZE_CLASSES]
        ranges = [class_range(c, es) + (c,) for c in classes]
    key = tr.tuned_key(args.kind, _DTYPES[args.dtype])
    start = time.perf_counter()
    for begin, end, size_class in ranges:
        result, target, size_class = tune_range(args, begin, end, size_class, storage_url, log)
        line = (f"{size_class}: tile {result['tile_m']}x{result['tile_n']} "
                f"{result['runs_per_s']:.1f} runs/s ({result['trials']} trials, shapes {begin}..{end})")
        if args.no_write:
            print(line)
        else:
            path = tuned.store("transpose", key, size_class, result, isa=target)
            print(f"{line} -> {path} [{cpu.model()} / {target} / {key}]")
    log(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
