"""``python -m miniapps.specfem``: the sample's step loop, checks, records, MPI splits, bad arguments."""
import json
import re

import pytest

from miniapps import runtime as rt
from miniapps.specfem import app, kernels


def test_variant_list_always_keeps_deville_first():
    assert app.parse_variants("static,unrolled") == ["deville", "unrolled", "static"]
    assert app.parse_variants(",".join(kernels.VARIANTS)) == list(kernels.VARIANTS)
    with pytest.raises(rt.UsageError, match="unknown"):
        app.parse_variants("deville,jit")


def test_steps_checks_and_records(run_app, tmp_path):
    p = run_app("miniapps.specfem", "301", "--repeat", "2", "--jitter", "1", "--check", "--threads", "2",
                "--json", tmp_path, timeout=180)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "elements=301" in out and "steps=3 (first 1 not averaged)" in out
    assert len(re.findall(r"duration with +Deville loops = +\d+\.\d+ \(s\)\n", out)) == 3
    others = len(kernels.VARIANTS) - 1
    assert len(re.findall(r"speedup = +-?\d+\.\d+ % / maximum diff = \d", out)) == 3 * others
    assert "average over 2 repetitions" in out and "FAILED" not in out
    assert out.count("check max_rel=") == len(kernels.VARIANTS)
    records = [json.loads(line) for line in (tmp_path / "specfem.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in records] == list(kernels.VARIANTS) + ["numpy"]
    for r in records[:-1]:
        assert r["check"]["ok"] and r["repeat"] == 2 and r["dtype"] == "f32"
        assert r["extra"]["elements"] == 301 and r["extra"]["speedup_over_numpy"] > 0


def test_two_ranks_split_an_odd_number_of_elements(run_app):
    p = run_app("miniapps.specfem", "83", "--repeat", "1", "--jitter", "0", "--check", "--threads", "1",
                "--variants", "deville,static", "--no-numpy", ranks=2, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "2 ranks" in p.stdout and p.stdout.count("step 1") == 1 and "FAILED" not in p.stdout
    assert "check max_rel=" in p.stdout


@pytest.mark.parametrize("argv, message", [
    (["0"], "elements must be >= 1"),
    (["10", "--jitter", "-1"], "--jitter must be >= 0"),
    (["10", "--variants", "fast"], "unknown"),
    (["10", "--dtype", "f64"], "invalid choice"),
])
def test_bad_arguments_exit_2(run_app, argv, message):
    p = run_app("miniapps.specfem", *argv, timeout=60)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert message in p.stderr
