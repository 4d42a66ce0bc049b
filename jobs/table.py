#!/usr/bin/env python3
"""Mini-app records (JSON lines, docs/records.md) as a table, and optionally a scaling plot.

    jobs/table.py results/                       # every *.jsonl below results/
    jobs/table.py results/cp2k.jsonl --app cp2k --variant specialized --best
    jobs/table.py results/ --plot scaling.png --metric gflops
    jobs/table.py results/ --csv > all.csv

Rows are sorted by app, variant, dtype, nodes, ranks, threads. --best keeps, per configuration
(app, variant, arguments, nodes, ranks, threads, pin, dtype, target), the record with the best
metric. The plot draws the metric against the cores used (ranks x threads), one line per
app/variant/dtype. Lines that do not parse are skipped with a warning.
"""
import argparse
import csv
import glob
import json
import os
import sys

COLUMNS = [("app", "app"), ("variant", "variant"), ("dtype", "dtype"), ("target", "target"),
           ("nodes", "nodes"), ("ranks", "ranks"), ("threads", "threads"), ("pin", "pin"),
           ("oversub", "oversubscribed"), ("ms", "seconds"), ("GFLOPS/s", "gflops"), ("GB/s", "gbs"),
           ("check", "check"), ("job", "job"), ("time", "time")]
METRICS = {"gflops": ("GFLOPS/s", max), "gbs": ("GB/s", max), "seconds": ("seconds", min)}


def load(paths):
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(glob.glob(os.path.join(path, "**", "*.jsonl"), recursive=True))
        else:
            files.append(path)
    rows = []
    for name in files:
        with open(name, "rb") as f:
            for number, raw in enumerate(f, 1):
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    rec = json.loads(raw)
                except ValueError:
                    print(f"warning: {name}:{number}: not JSON, skipped", file=sys.stderr)
                    continue
                if isinstance(rec, dict) and "app" in rec:
                    rows.append(rec)
    return rows


def config_key(rec):
    return (rec.get("app"), rec.get("variant"), json.dumps(rec.get("args"), sort_keys=True), rec.get("nodes"),
            rec.get("ranks"), rec.get("threads"), rec.get("pin"), rec.get("dtype"), rec.get("target"))


def best_only(rows, metric):
    higher_is_better = METRICS[metric][1] is max
    best = {}
    for rec in rows:
        if rec.get(metric) is None:
            continue
        key = config_key(rec)
        current = best.get(key)
        if current is None or (rec[metric] > current[metric] if higher_is_better else rec[metric] < current[metric]):
            best[key] = rec
    return list(best.values())


def sort_key(rec):
    return (str(rec.get("app")), str(rec.get("variant")), str(rec.get("dtype")), rec.get("nodes") or 0,
            rec.get("ranks") or 0, rec.get("threads") or 0)


def cell(rec, field):
    value = rec.get(field)
    if value is None:
        return "-"
    if field == "seconds":
        return f"{1e3 * value:.4g}"
    if field in ("gflops", "gbs"):
        return f"{value:.2f}"
    if field == "check":
        return ("ok" if value.get("ok") else "FAIL") + f" {value.get('max_rel_err') or 0:.1e}"
    if field == "job":
        return str(value.get("id", "-"))
    if field == "oversubscribed":
        return "yes" if value else "no"
    return str(value)


def print_table(rows, out=sys.stdout):
    table = [[title for title, _ in COLUMNS]] + [[cell(r, f) for _, f in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    numeric = {"nodes", "ranks", "threads", "ms", "GFLOPS/s", "GB/s"}
    for n, row in enumerate(table):
        out.write("  ".join(v.rjust(w) if COLUMNS[i][0] in numeric else v.ljust(w)
                            for i, (v, w) in enumerate(zip(row, widths))).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")


def write_csv(rows, out=sys.stdout):
    writer = csv.writer(out)
    writer.writerow([f for _, f in COLUMNS])
    for r in rows:
        writer.writerow([cell(r, f) for _, f in COLUMNS])


def plot(rows, path, metric):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("error: --plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
        return 2
    label, pick = METRICS[metric]
    series = {}
    for rec in rows:
        if rec.get(metric) is None:
            continue
        cores = rec.get("threads_total") or (rec.get("ranks") or 1) * (rec.get("threads") or 1)
        name = f"{rec.get('app')} {rec.get('variant')} ({rec.get('dtype')})"
        points = series.setdefault(name, {})
        points[cores] = pick(points.get(cores, rec[metric]), rec[metric])
    if not series:
        print(f"error: no record has {metric}", file=sys.stderr)
        return 1
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in sorted(series.items()):
        xs = sorted(points)
        ax.plot(xs, [points[x] for x in xs], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("cores used (ranks x threads)")
    ax.set_ylabel(label)
    ax.set_title(f"{label} vs cores")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"plot: {path}", file=sys.stderr)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="JSON-lines files, or folders searched for *.jsonl")
    p.add_argument("--app", action="append", help="only these apps (repeatable)")
    p.add_argument("--variant", action="append", help="only these variants (repeatable)")
    p.add_argument("--metric", choices=sorted(METRICS), default="gflops", help="for --best and --plot")
    p.add_argument("--best", action="store_true", help="one row per configuration: its best metric")
    p.add_argument("--csv", action="store_true", help="CSV instead of an aligned table")
    p.add_argument("--plot", metavar="FILE", help="also write a scaling plot (PNG, PDF, SVG)")
    args = p.parse_args(argv)
    missing = [x for x in args.paths if not os.path.exists(x)]
    if missing:
        p.error(f"no such file or folder: {', '.join(missing)}")
    rows = load(args.paths)
    if args.app:
        rows = [r for r in rows if r.get("app") in args.app]
    if args.variant:
        rows = [r for r in rows if r.get("variant") in args.variant]
    if args.best:
        rows = best_only(rows, args.metric)
    rows.sort(key=sort_key)
    if not rows:
        print("no records", file=sys.stderr)
        return 1
    (write_csv if args.csv else print_table)(rows)
    if args.plot:
        return plot(rows, args.plot, args.metric)
    return 0


if __name__ == "__main__":
    sys.exit(main())
