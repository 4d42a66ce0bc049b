"""``python -m miniapps.nek``: command lines as the Fortran samples, checks, records, MPI splits."""
import json

import pytest

from miniapps import runtime as rt
from miniapps.nek import app


@pytest.mark.parametrize("op, sizes, want", [
    ("axhm", [], dict(m=8, n=8, k=8, size1=0, size=0)),
    ("stpm", [6], dict(op="axhm", m=6, n=6, k=6)),
    ("axhm", [4, 5], dict(m=4, n=5, k=4)),           # n given, k defaults to m
    ("grad", [4, 0, 3], dict(m=4, n=3, k=3)),        # 0 is "not given": n defaults to k
    ("grad", [3, 4, 5, -7, -14], dict(m=3, n=4, k=5, size1=-7, size=-14)),
    ("rstr", [], dict(m=8, n=8, k=8, mm=10, nn=10, kk=10)),
    ("rstr", [8, 8, 8, 0, 6], dict(mm=10, nn=6, kk=10)),
    ("rstr", [2, 3, 4, 5, 6, 7, -9], dict(m=2, n=3, k=4, mm=5, nn=6, kk=7, size1=-9)),
])
def test_positional_sizes_follow_the_fortran_samples(op, sizes, want):
    p = app.parse_problem(op, sizes)
    for key, value in want.items():
        assert p[key] == value, (key, p)


def test_bad_positional_sizes_are_usage_errors():
    with pytest.raises(rt.UsageError, match="at most 5"):
        app.parse_problem("axhm", [1, 2, 3, 4, 5, 6])
    with pytest.raises(rt.UsageError, match="m must be >= 1"):
        app.parse_problem("grad", [-2])
    with pytest.raises(rt.UsageError, match="unknown"):
        app.parse_variants("blas,turbo")


@pytest.mark.parametrize("total, size", [(7, 2), (1, 3), (10, 4), (5, 1)])
def test_elements_split_over_ranks_covers_everything_once(total, size):
    parts = [app.split_elements(total, size, r) for r in range(size)]
    assert sum(c for _, c in parts) == total
    assert [f for f, _ in parts] == [sum(c for _, c in parts[:r]) for r in range(size)]
    assert max(c for _, c in parts) - min(c for _, c in parts) <= 1


@pytest.mark.parametrize("argv", [["axhm", "5", "4", "3", "-13"], ["stpm", "4", "0", "0", "-9", "-27"],
                                  ["grad", "3", "5", "2", "-11"], ["rstr", "4", "3", "5", "6", "2", "3", "-10"]])
def test_every_op_runs_and_validates(run_app, tmp_path, argv):
    p = run_app("miniapps.nek", *argv, "--check", "--threads", "2", "--json", tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    for label in app.LABELS.values():
        assert f"{label}..." in p.stdout
    assert "FAILED" not in p.stdout and "diff: max_rel=" in p.stdout
    records = [json.loads(line) for line in (tmp_path / "nek.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in records] == list(app.ORDER)
    assert all(r["check"]["ok"] for r in records)
    assert set(records[-1]["extra"]["speedup_over_numpy"]) == set(app.ORDER[:-1])


def test_single_precision_and_a_subset_of_variants(run_app):
    p = run_app("miniapps.nek", "axhm", "4", "4", "4", "-5", "--dtype", "f32", "--check", "--variants",
                "specialized,mxm", timeout=120)
    assert p.returncode == 0, p.stderr
    assert "dtype=f32" in p.stdout
    assert "Streamed (mxm)..." in p.stdout and "Streamed (specialized)..." in p.stdout
    assert "Streamed (BLAS)..." not in p.stdout


@pytest.mark.parametrize("argv, message", [
    (["axhm", "-1"], "m must be >= 1"),
    (["axhm", "1", "2", "3", "4", "5", "6"], "at most 5"),
    (["fold"], "invalid choice"),
    (["rstr", "64", "64", "64", "64", "64", "64", "1"], "holds no element"),
    (["grad", "4", "4", "4", "-10", "-5"], "less work"),
    (["axhm", "--variants", "none"], "unknown"),
])
def test_bad_arguments_exit_2_with_a_message(run_app, argv, message):
    p = run_app("miniapps.nek", *argv, timeout=60)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert message in p.stderr


def test_two_ranks_split_an_odd_number_of_elements(run_app):
    p = run_app("miniapps.nek", "rstr", "3", "4", "5", "4", "3", "2", "-7", "--check", "--threads", "1",
                ranks=2, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "elements=7" in p.stdout and "split over 2 ranks" in p.stdout
    assert p.stdout.count("Streamed (BLAS)...") == 1 and "FAILED" not in p.stdout
