"""bench/smm_tiles.py: the tile scan compiles the library's own tile template and times it."""
import importlib.util
import json
import os
import shutil

import pytest

from core import cpu, smm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load():
    spec = importlib.util.spec_from_file_location("smm_tiles", os.path.join(ROOT, "bench", "smm_tiles.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.skipif("avx2" not in cpu.available_targets(), reason="this CPU has no AVX2 path to scan")
def test_tile_scan_runs_every_listed_tile_and_the_library_pick(tmp_path, capsys):
    tiles = _load()
    out = tmp_path / "tiles.json"
    # 13^3: the cached-operand tile differs from the general one on AVX-512 (the scan is cached)
    tiles.main(["--shapes", "8,5x7x3,13", "--reps", "2", "--cached-kib", "64", "--json", str(out)])
    text = capsys.readouterr().out
    assert "the library's picks against the fastest listed tile" in text
    rec = json.loads(out.read_text())
    assert [tuple(r["shape"]) for r in rec["results"]] == [(8, 8, 8), (5, 7, 3), (13, 13, 13)]
    isas = [t for t in ("avx512", "avx2") if t in cpu.available_targets()]
    for r in rec["results"]:
        expect = {f"{isa} {mv}x{nr}" for isa in isas for mv, nr in tiles.gen.TILES[isa]}
        assert set(r["gflops"]) == expect and all(v > 0 for v in r["gflops"].values())
        cv = smm.dispatch(*r["shape"]).cached_variant  # a cached batch runs the cached variant
        assert tuple(r["runs"]) == (cv["code_target"], *cv["tile"])


def test_shape_parsing():
    tiles = _load()
    assert tiles.parse_shapes("16,5x25x5") == [(16, 16, 16), (5, 25, 5)]
