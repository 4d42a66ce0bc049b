"""The transpose mini-app as a program: the sample's command line, figures, validation and exit codes,
alone and under mpiexec; and its timed C loop (miniapps.transpose._kern) against numpy."""
import os
import re

import numpy as np
import pytest

from miniapps.runtime import records
from miniapps.transpose import _kern, random_shapes, shape_table

APP = "miniapps.transpose"


def _figures(stdout, label="core.transpose"):
    block = stdout.split(f"{label}...")[1]
    bw = float(re.search(r"bandwidth: ([\d.]+) GB/s", block).group(1))
    ms = float(re.search(r"duration: ([\d.e+-]+) ms", block).group(1))
    return bw, ms


@pytest.mark.parametrize("args", [
    ["o", 64, 48, 70, 50, "--check"],
    ["o", 300, 0, 0, 0, -3, "--check", "--threads", 2],
    ["i", 65, "--check", "--threads", 2],
    ["i", 100, 0, 120, 0, -2, "--check", "--dtype", "f32"],
    ["o", 120, 90, 0, 0, 6, -10, "--check"],  # random shapes, tight leading dimensions
    ["o", 120, 90, 130, 95, 6, 10, "--check"],  # random shapes and leading dimensions
    ["i", 80, 0, 90, 0, 4, 5, "--check"],
])
def test_runs_validate_and_print_the_samples_figures(run_app, args):
    p = run_app(APP, *args, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    kind, m = args[0], args[1]
    n = m if kind == "i" or len(args) < 3 or args[2] in (0, "--check") else args[2]
    assert re.search(rf"^m={m} n={n} ldi=\d+ ldo=\d+ size=\d+MB \((double|float), "
                     rf"{'in-place' if kind == 'i' else 'out-of-place'}\)$", p.stdout, re.M), p.stdout
    bw, ms = _figures(p.stdout)
    assert bw > 0 and ms > 0
    assert "diff: max_rel=0 " in p.stdout and "FAILED" not in p.stdout
    assert re.search(r"reference: [\d.]+x", p.stdout)


def test_bandwidth_counts_three_times_the_matrix_bytes(run_app, tmp_path):
    p = run_app(APP, "o", 256, 128, 0, 0, -2, "--json", tmp_path, timeout=60)
    assert p.returncode == 0, p.stderr
    good, bad = records.read(str(tmp_path / "transpose.jsonl"))
    assert bad == 0 and len(good) == 1
    r = good[0]
    assert r["bytes"] == 256 * 128 * 8 * 3 and r["extra"]["bytes_factor"] == 3
    assert r["extra"]["kernel"].startswith("trans_") and r["calls"] == 1
    assert r["gbs"] == pytest.approx(r["bytes"] / 2 ** 30 / r["seconds"])
    p = run_app(APP, "i", 128, "--json", tmp_path, timeout=60)
    r = records.read(str(tmp_path / "transpose.jsonl"))[0][-1]
    assert r["bytes"] == 128 * 128 * 8 * 2


def test_tile_environment_shows_in_the_header(run_app):
    p = run_app(APP, "o", 200, "--check", env={"TRANS_M": "24", "TRANS_N": "40"}, timeout=60)
    assert p.returncode == 0, p.stderr
    assert re.search(r"tile=24x40 \(TRANS_M/TRANS_N\)", p.stdout), p.stdout


@pytest.mark.parametrize("args", [["x"], ["o", 0], ["o", 10, -1], ["o", 10, 10, 0, 0, 3, 20], ["o", "ten"]])
def test_bad_arguments_exit_2(run_app, args):
    p = run_app(APP, *args, timeout=60)
    assert p.returncode == 2, p.stdout + p.stderr


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_two_ranks(run_app):
    p = run_app(APP, "o", 256, 0, 0, 0, -2, "--check", ranks=2, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("core.transpose...") == 1 and "diff: max_rel=0 " in p.stdout


# ------------------------------------------------------------------- the timed loop, in-process

def test_kern_runs_every_shape_like_numpy():
    rng = np.random.default_rng(5)
    for kind in ("o", "i"):
        shapes = random_shapes(rng, 70, 70 if kind == "i" else 50, 80, 80, 12, 3, kind == "i")
        table = shape_table(shapes, np.float64, kind, threads=2)
        inp = rng.random(80 * 70)
        for row in table:
            km, kn, kldi, kldo = map(int, row[:4])
            src = inp.copy()
            if kind == "o":
                out = np.zeros(80 * 70)
                secs = _kern.run_shapes(src, out, row[None, :], "o")
                got = out[:km * kldo].reshape(km, kldo)[:, :kn] if km else np.zeros((0, kn))
                np.testing.assert_array_equal(got, src[:kn * kldi].reshape(kn, kldi)[:, :km].T)
            else:
                secs = _kern.run_shapes(src, None, row[None, :], "i", warm_each=False)
                got = src[:km * kldi].reshape(km, kldi)[:, :km] if km else np.zeros((0, 0))
                np.testing.assert_array_equal(got, inp[:km * kldi].reshape(km, kldi)[:, :km].T)
            assert secs.shape == (1,) and secs[0] >= 0


@pytest.mark.parametrize("change, match", [
    (lambda t: t.__setitem__((0, 2), 3), "ldi must be >= m"),
    (lambda t: t.__setitem__((0, 0), 10 ** 6), "does not fit|ldi must be"),
    (lambda t: t.__setitem__((0, 6), 0), "threads >= 1"),
    (lambda t: t.__setitem__((0, 7), 2), "streaming 0 or 1"),
])
def test_kern_rejects_bad_tables(change, match):
    table = shape_table([(10, 10, 10, 10)], np.float64, "o")
    change(table)
    with pytest.raises(ValueError, match=match):
        _kern.run_shapes(np.zeros(100), np.zeros(100), table, "o")


def test_kern_rejects_overlap_and_bad_buffers():
    table = shape_table([(10, 10, 10, 10)], np.float64, "o")
    buf = np.zeros(200)
    with pytest.raises(ValueError, match="overlap"):
        _kern.run_shapes(buf[:100], buf[50:150], table, "o")
    with pytest.raises(TypeError, match="dtype"):
        _kern.run_shapes(np.zeros(100), np.zeros(100, np.float32), table, "o")
    with pytest.raises(ValueError, match="m == n"):
        _kern.run_shapes(np.zeros(100), None, shape_table([(10, 5, 10, 10)], np.float64, "o"), "i")
