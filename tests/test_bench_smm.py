"""bench/smm.py: one quick run end to end, and its memory ceilings (bench/_stream.pyx) on their own."""
import importlib
import json
import os
import sys

import numpy as np
import pytest

from core import cpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    sys.path.insert(0, BENCH)
    try:
        mod = importlib.import_module("smm")
        if getattr(mod, "__file__", "") != os.path.join(BENCH, "smm.py"):  # not core.smm or another smm
            pytest.fail(f"bench/smm.py shadowed by {mod.__file__}")
        yield mod, mod.load_stream()  # builds bench/_stream when missing or stale
    finally:
        sys.path.remove(BENCH)
        sys.modules.pop("smm", None)


@pytest.mark.parametrize("m, n, k", [(5, 5, 25), (3, 7, 2), (16, 16, 16)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_touch_reads_every_block_and_keeps_c(bench, m, n, k, threads):
    _, stream = bench
    nb = 37
    rng = np.random.default_rng(7)
    a, b = rng.random(nb * m * k + 5), rng.random(nb * k * n)
    c = rng.random(nb * m * n + 3)
    before = c.copy()
    moved = stream.touch(a, b, c, m * k, k * n, m * n, nb, threads)
    assert moved == ("avx2" in cpu.available_targets())
    np.testing.assert_array_equal(c, before)  # C gains 0 * (sums of A and B)
    # A NaN in some A block reaches that product's C block (C = C + 0 * NaN): every block is read.
    if moved:
        for e in (0, nb // 2, nb - 1):
            a2 = a.copy()
            a2[e * m * k + (m * k) // 2] = np.nan
            c2 = before.copy()
            stream.touch(a2, b, c2, m * k, k * n, m * n, nb, threads)
            hit = np.isnan(c2[:nb * m * n]).reshape(nb, m * n).any(axis=1)
            assert hit.tolist() == [i == e for i in range(nb)]


def test_touch_refuses_short_stacks(bench):
    _, stream = bench
    a, b, c = np.zeros(24), np.zeros(24), np.zeros(8)
    with pytest.raises(ValueError, match="smaller than nb blocks"):
        stream.touch(a, b, c, 4, 4, 2, 5, 1)  # C holds 4 blocks of 2, not 5
    with pytest.raises(ValueError, match="threads must be >= 1"):
        stream.touch(a, b, c, 4, 4, 2, 4, 0)


def test_quick_run_reports_both_memory_ceilings(bench, tmp_path, capsys):
    mod, _ = bench
    out = tmp_path / "smm.json"
    mod.main(["--quick", "--shapes", "4,5x5x25", "--threads", "1", "--stack-mib", "1", "--peers", "numpy",
              "--json", str(out)])
    text = capsys.readouterr().out
    assert "%roof %touch" in text and "%peak" in text
    rec = json.loads(out.read_text())
    rows = {(r["regime"], r["m"], r["n"], r["k"], r["variant"]): r for r in rec["records"]}
    assert set(rows) == {(reg, *s, v) for reg in ("streamed", "cached") for s in ((4, 4, 4), (5, 5, 25))
                         for v in ("core-str", "core-idx", "numpy")}
    for key, r in rows.items():
        assert r["gflops"] > 0
        assert r["max_rel_error"] < 1e-12
        if key[0] == "streamed":
            assert r["triad_gib_s"] > 0 and r["pct_roofline"] > 0
            assert (r.get("pct_touch", 0) > 0) == ("avx2" in cpu.available_targets())
        else:
            assert "pct_touch" not in r
