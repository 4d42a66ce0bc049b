"""The transpose tile tuner end to end: a tiny Optuna study writes the tuned-parameter file, resumes
from its SQLite storage, and core.transpose then uses the tuned tiles by default."""
import json
import subprocess
import sys
import types

import numpy as np
import pytest

pytest.importorskip("optuna", reason="the tuner needs optuna (pip install 'smm-miniapps[tune]')")

from core import cpu, tuned  # noqa: E402
from core import transpose as tr  # noqa: E402
from miniapps.transpose import tune  # noqa: E402

from conftest import app_env, run_bounded, ROOT  # noqa: E402


def _tune(tmp_path, *args, timeout=120):
    env = app_env({"SMM_TUNED_FILE": str(tmp_path / "tuned.json")})
    env.pop("TRANS_M", None)
    env.pop("TRANS_N", None)
    return run_bounded([sys.executable, "-m", "miniapps.transpose.tune", *map(str, args)], timeout,
                       env=env, cwd=ROOT)


def _trials(storage):
    import optuna
    summaries = optuna.get_all_study_summaries(storage=f"sqlite:///{storage}")
    assert len(summaries) == 1
    return summaries[0].n_trials


def test_tiny_study_end_to_end_and_the_library_uses_it(tmp_path, monkeypatch):
    p = _tune(tmp_path, 8, 48, 4, "--trials", 3, "--repeat", 1, "--quiet")
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "tuned.json").read_text())
    entry = doc["entries"]["transpose"][cpu.model()][cpu.target()]["otrans-f64"]["small"]
    base = entry["baseline"]
    assert (base["tile_m"], base["tile_n"]) == tr.DEFAULT_TILES[(8, "o")]["small"] and base["runs_per_s"] > 0
    if entry["chosen"] == "trial":  # else the built-in default measured faster than every trial
        assert 2 <= entry["tile_m"] <= 48 and 2 <= entry["tile_n"] <= 48
        assert entry["runs_per_s"] * 1.02 >= base["runs_per_s"]
    else:
        assert (entry["tile_m"], entry["tile_n"]) == (base["tile_m"], base["tile_n"])
    assert entry["trials"] == 3 and entry["runs_per_s"] > 0 and entry["shapes"] == [8, 48]
    assert f"tile {entry['tile_m']}x{entry['tile_n']}" in p.stdout
    storage = tmp_path / "transpose-tune.sqlite3"
    assert _trials(storage) == 3

    # A fresh process with that file picks the tiles up by default ...
    code = ("import core.transpose as t, json; p = t.plan(30, 30); "
            "print(json.dumps([p['tile_source'], p['tile_m'], p['tile_n']]))")
    env = app_env({"SMM_TUNED_FILE": str(tmp_path / "tuned.json")})
    env.pop("TRANS_M", None)
    env.pop("TRANS_N", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=60, check=True)
    source, tm, tn = json.loads(out.stdout)
    assert source == {"m": "tuned", "n": "tuned"}
    bm, bn = tr.plan(30, 30, tile_m=1, tile_n=1)["register_block"]
    assert tm == -(-entry["tile_m"] // bm) * bm and tn == -(-entry["tile_n"] // bn) * bn

    # ... and so does this one, and the tuned tiles give the right answer.
    monkeypatch.delenv("TRANS_M", raising=False)
    monkeypatch.delenv("TRANS_N", raising=False)
    monkeypatch.setenv("SMM_TUNED_FILE", str(tmp_path / "tuned.json"))
    tuned.refresh()
    try:
        assert tr.plan(30, 30)["tile_source"] == {"m": "tuned", "n": "tuned"}
        a = np.random.default_rng(1).random((40, 33))
        np.testing.assert_array_equal(tr.transpose(a), a.T)
    finally:
        tuned.refresh()

    # Re-running resumes: only the missing trials run.
    p = _tune(tmp_path, 8, 48, 4, "--trials", 5, "--repeat", 1)
    assert p.returncode == 0, p.stderr
    assert "3 trials done, 2 to run" in p.stderr
    assert _trials(storage) == 5
    p = _tune(tmp_path, 8, 48, 4, "--trials", 5, "--repeat", 1, "--quiet")
    assert p.returncode == 0 and _trials(storage) == 5


def test_in_place_study_and_no_write(tmp_path):
    p = _tune(tmp_path, 8, 40, 3, "--kind", "i", "--dtype", "f32", "--trials", 2, "--repeat", 1,
              "--quiet", "--no-write", "--size-class", "medium")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("medium: tile ") and not (tmp_path / "tuned.json").exists()
    m, n = p.stdout.split("tile ")[1].split()[0].split("x")
    assert m == n  # one square tile


def test_changed_settings_do_not_mix_into_a_study(tmp_path):
    assert _tune(tmp_path, 8, 32, 3, "--trials", 1, "--repeat", 1, "--quiet", "--study", "s").returncode == 0
    p = _tune(tmp_path, 8, 40, 3, "--trials", 1, "--repeat", 1, "--quiet", "--study", "s")
    assert p.returncode != 0 and "other settings" in p.stderr


@pytest.mark.parametrize("args", [["8"], ["40", "8"], ["8", "40", "--tie", "1.5"], ["8", "40", "--target", "sse9"]])
def test_bad_arguments(tmp_path, args):
    p = _tune(tmp_path, *args)
    assert p.returncode == 2 and p.stderr


def test_ties_go_to_the_smaller_tile():
    def trial(m, n, value):
        return types.SimpleNamespace(value=value, state=types.SimpleNamespace(name="COMPLETE"),
                                     user_attrs={"tile_m": m, "tile_n": n})
    trials = [trial(64, 64, 1000.0), trial(16, 32, 990.0), trial(8, 8, 900.0), trial(2, 2, None)]
    assert tune.pick_best(trials, 0.02).user_attrs == {"tile_m": 16, "tile_n": 32}
    assert tune.pick_best(trials, 0.0).user_attrs == {"tile_m": 64, "tile_n": 64}
    assert tune.pick_best(trials, 0.2).user_attrs == {"tile_m": 8, "tile_n": 8}
    assert tune.pick_best([], 0.1) is None


def test_class_ranges_cover_their_size_class():
    for cls, _ in tuned.SIZE_CLASSES:
        begin, end = tune.class_range(cls, 8)
        assert 8 <= begin < end
        assert tuned.size_class(end * end * 8) == cls
