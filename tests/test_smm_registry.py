"""The core.smm kernel registry: one object per descriptor across Python threads, consistent
statistics, SMM_VERBOSE's report at exit, SMM_TARGET forcing (and its fallback), and the tile cost
model of the build-time generator (gen_specialized.py) agreeing with the library's."""
import itertools
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from core import cpu
from core import smm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIMD = [t for t in cpu.available_targets() if t != "generic"]


def child(code, **env_vars):
    """Runs `code` in a fresh interpreter with the given environment variables set ('' unsets)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMM_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    for k, v in env_vars.items():
        if v == "":
            env.pop(k, None)
        else:
            env[k] = v
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)



# ----------------------------------------------------------------------------- identity and statistics

def test_same_descriptor_same_object():
    k = smm.dispatch(6, 7, 8, lda=9, alpha=2.5, beta=-0.5)
    assert smm.dispatch(6, 7, 8, lda=9, alpha=2.5, beta=-0.5) is k
    assert smm.dispatch(np.int64(6), np.int32(7), 8, lda=9, ldb=8, ldc=6, alpha=2.5, beta=-0.5,
                        dtype="float64", trans_a=0, trans_b=False, target=cpu.target()) is k
    assert smm.dispatch(5, alpha=-0.0, beta=-0.0) is smm.dispatch(5, alpha=0.0, beta=0.0)
    assert smm.dispatch(5) is smm.dispatch(5, 5, 5)
    others = [smm.dispatch(6, 7, 8, lda=10, alpha=2.5, beta=-0.5), smm.dispatch(6, 7, 8, lda=9, alpha=2.5, beta=0.5),
              smm.dispatch(6, 7, 8, lda=9, alpha=2.5, beta=-0.5, dtype=np.float32),
              smm.dispatch(6, 7, 8, lda=9, alpha=2.5, beta=-0.5, trans_b=True, ldb=7),
              smm.dispatch(6, 7, 8, lda=9, alpha=2.5, beta=-0.5, prefetch="none"),
              smm.dispatch(6, 7, 8, lda=9, alpha=2.5, beta=-0.5, target="generic")]
    assert len({id(x) for x in others + [k]}) == len(others) + 1 or cpu.target() == "generic"
    d = k.descriptor()
    assert (d["m"], d["n"], d["k"], d["lda"], d["ldb"], d["ldc"]) == (6, 7, 8, 9, 8, 6)
    assert (d["alpha"], d["beta"], d["dtype"], d["target"]) == (2.5, -0.5, "float64", cpu.target())
    assert (k.m, k.n, k.k, k.lda, k.ldb, k.ldc, k.trans_a, k.trans_b) == (6, 7, 8, 9, 8, 6, False, False)
    assert k.address != 0 and "6x7x8" in repr(k)


def test_stats_count_calls_hits_and_misses():
    before = smm.registry_stats()
    ldc = 1000 + os.getpid() % 1000          # a descriptor no other test uses
    for _ in range(5):
        smm.dispatch(3, 3, 3, ldc=ldc)
    after = smm.registry_stats(per_shape=True)
    assert after["kernels"] == before["kernels"] + 1
    assert after["misses"] == before["misses"] + 1
    assert after["hits"] == before["hits"] + 4
    mine = [s for s in after["per_shape"] if (s["m"], s["n"], s["k"], s["ldc"]) == (3, 3, 3, ldc)]
    assert len(mine) == 1 and mine[0]["hits"] == 4 and mine[0]["target"] == cpu.target()
    assert after["kernels"] == len(after["per_shape"])
    assert sum(s["hits"] for s in after["per_shape"]) == after["hits"]
    assert after["specialized"] == sum(s["specialized"] for s in after["per_shape"])
    assert [s["hits"] for s in after["per_shape"]] == sorted((s["hits"] for s in after["per_shape"]), reverse=True)


def test_concurrent_dispatch_same_and_different_descriptors():
    """8 Python threads released together dispatch the same 40 new descriptors (each its own order)
    and 10 of their own: every thread gets the same objects; the statistics add up exactly."""
    nthreads, rounds = 8, 5
    tag = 2000 + os.getpid() % 1000          # fresh descriptors: ldc values no other test uses
    shared = [dict(m=m, n=n, k=3, ldc=tag + m, dtype=dt)
              for m, n, dt in itertools.product(range(1, 6), range(1, 5), (np.float64, np.float32))]
    own = [[dict(m=2, n=2, k=2, ldc=tag + 100 + 10 * t + i) for i in range(10)] for t in range(nthreads)]
    before = smm.registry_stats()
    barrier = threading.Barrier(nthreads)
    results, errors = [None] * nthreads, []

    def work(t):
        try:
            rng = np.random.default_rng(t)
            barrier.wait()
            got = {}
            for _ in range(rounds):
                for i in rng.permutation(len(shared)):
                    kern = smm.dispatch(**shared[i])
                    assert got.setdefault(i, kern) is kern
                for d in own[t]:
                    smm.dispatch(**d)
            results[t] = got
        except Exception as e:  # reported below; a thread's exception is otherwise lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(nthreads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    for t in range(1, nthreads):
        for i in range(len(shared)):
            assert results[t][i] is results[0][i], f"thread {t} got another object for {shared[i]}"
    after = smm.registry_stats(per_shape=True)
    calls = nthreads * rounds * (len(shared) + 10)
    new_kernels = len(shared) + nthreads * 10
    assert after["kernels"] - before["kernels"] == new_kernels
    assert after["hits"] - before["hits"] + after["misses"] - before["misses"] == calls
    # A miss that loses the race to build a kernel still counts as a miss, never as a second kernel.
    assert new_kernels <= after["misses"] - before["misses"] <= new_kernels * nthreads
    for d in shared:
        entries = [s for s in after["per_shape"]
                   if (s["m"], s["n"], s["k"], s["ldc"]) == (d["m"], d["n"], 3, d["ldc"])
                   and s["dtype"] == ("f64" if d["dtype"] is np.float64 else "f32")]
        assert len(entries) == 1
        assert nthreads * rounds - nthreads <= entries[0]["hits"] <= nthreads * rounds - 1
    for t in range(nthreads):
        for d in own[t]:
            entries = [s for s in after["per_shape"] if (s["m"], s["k"], s["ldc"]) == (2, 2, d["ldc"])]
            assert len(entries) == 1 and entries[0]["hits"] == rounds - 1


def test_concurrent_batches_from_python_threads():
    """gemm_batch releases the GIL: Python threads running batches at once (each with 2 OpenMP
    threads, sharing kernels) get the single-threaded results."""
    rng = np.random.default_rng(5)
    a = rng.integers(-3, 4, (200, 7, 5)).astype(np.float64)
    b = rng.integers(-3, 4, (200, 5, 6)).astype(np.float64)
    ref = np.matmul(a, b)
    outs = [np.zeros((200, 7, 6)) for _ in range(4)]
    errors = []

    def work(c):
        try:
            for _ in range(20):
                smm.gemm_batch(a, b, c, 1.0, 0.0, threads=2)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(c,)) for c in outs]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    for c in outs:
        assert np.array_equal(c, ref)


# ----------------------------------------------------------------------------- SMM_VERBOSE

def test_verbose_prints_statistics_at_exit():
    code = ("import numpy as np; from core import smm\n"
            "k = smm.dispatch(7, 9, 5)\n"
            "for _ in range(3): smm.dispatch(7, 9, 5)\n"
            "smm.gemm_batch(np.ones((40, 7, 5)), np.ones((40, 5, 9)), np.zeros((40, 7, 9)))\n"
            "print('done')\n")
    loud = child(code, SMM_VERBOSE="1")
    assert loud.returncode == 0, loud.stderr
    assert loud.stdout.strip() == "done"
    err = loud.stderr
    assert "core.smm:" in err and f"target={cpu.target()}" in err, err
    assert "kernels=" in err and "hits=" in err and "misses=" in err
    line = [ln for ln in err.splitlines() if ln.strip().startswith("7x9x5")]
    assert line and "hits=3" in line[0], err
    quiet = child(code, SMM_VERBOSE="")
    assert quiet.returncode == 0 and "core.smm:" not in quiet.stderr


# ----------------------------------------------------------------------------- SMM_TARGET

@pytest.mark.parametrize("target", list(cpu.available_targets()))
def test_smm_target_forces_a_path(target):
    proc = child("from core import cpu, smm\n"
                 "import numpy as np\n"
                 "k = smm.dispatch(13, 13, 13)\n"
                 "a = np.asfortranarray(np.ones((13, 13))); c = np.zeros((13, 13), order='F')\n"
                 "k(a, a, c); assert (c == 13).all()\n"
                 "print(cpu.target(), k.target, cpu.info()['forced'])", SMM_TARGET=target)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [target, target, target]
    assert "Warning" not in proc.stderr


@pytest.mark.parametrize("alias,expected", [("hsw", "avx2"), ("skx", "avx512"), ("none", "generic"), ("0", None)])
def test_smm_target_aliases(alias, expected):
    if expected is not None and expected not in cpu.available_targets():
        pytest.skip(f"this CPU does not run {expected}")
    proc = child("from core import cpu; print(cpu.target())", SMM_TARGET=alias)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (expected or cpu.available_targets()[-1])


def test_unsupported_smm_target_warns_and_falls_back():
    """A path the CPU lacks: a RuntimeWarning and the best path it has, never SIGILL. On a CPU that
    runs every path, the CPUID answer is lowered to AVX2 before core.cpu reads it."""
    if "avx512" in cpu.available_targets():
        # core/__init__ imports core.cpu at once: load the CPUID module first and patch it there.
        so = os.path.join(ROOT, "core", [f for f in os.listdir(os.path.join(ROOT, "core"))
                                         if f.startswith("_cpuid.") and f.endswith(".so")][0])
        pre = ("import importlib.util, sys\n"
               f"spec = importlib.util.spec_from_file_location('core._cpuid', {so!r})\n"
               "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
               "mod.best_isa = lambda: 1\n"
               "sys.modules['core._cpuid'] = mod\n")
        best = "avx2"
    else:
        pre, best = "", cpu.available_targets()[-1]
    proc = child(pre + "import warnings; warnings.simplefilter('always')\n"
                 "import numpy as np\n"
                 "from core import cpu, smm\n"
                 "k = smm.dispatch(9, 9, 9)\n"
                 "a = np.ones((9, 9), order='F'); c = np.zeros((9, 9), order='F'); k(a, a, c)\n"
                 "assert (c == 9).all()\n"
                 "print(cpu.target(), k.target)", SMM_TARGET="avx512")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [best, best]
    assert "RuntimeWarning" in proc.stderr and "SMM_TARGET=avx512" in proc.stderr, proc.stderr


def test_unknown_smm_target_is_a_clear_error():
    proc = child("import core.smm", SMM_TARGET="pentium4")
    assert proc.returncode != 0 and proc.returncode > 0, "must fail as an exception, not a signal"
    assert "SMM_TARGET" in proc.stderr and "ValueError" in proc.stderr


# ----------------------------------------------------------------------------- tile cost model

@pytest.mark.parametrize("dtype", ["f64", "f32"])
@pytest.mark.parametrize("target", SIMD or ["avx2"])
def test_python_tile_model_agrees_with_the_library(target, dtype, smm_generator):
    if target not in cpu.available_targets():
        pytest.skip(f"this CPU does not run {target}")
    gen = smm_generator
    np_dtype = np.float64 if dtype == "f64" else np.float32
    sizes = list(range(1, 81)) + [96, 100, 127, 128, 200, 255, 1000]
    differ = 0
    for m, n in itertools.product(sizes, sizes):
        k = (m * 7 + n * 3) % 90 + 1
        for cached, regime in ((False, "any"), (True, "cached")):
            for w in (1, 2):
                assert (smm.select_tile(m, n, k, np_dtype, target, cached=cached, zmm_weight=w)
                        == gen.select_tile(target, dtype, m, n, k, regime, w)), (m, n, k, regime, w)
            assert (smm.select_tile(m, n, k, np_dtype, target, cached=cached)
                    == gen.select_tile(target, dtype, m, n, k, regime, cpu.zmm_weight())), (m, n, k, regime)
        differ += gen.select_tile(target, dtype, m, n, k) != gen.select_tile(target, dtype, m, n, k, "cached")
    assert differ, "the two tile models never disagree: the cached variant would be pointless"
    # The runtime kernels the registry builds use those tiles (padded ldc: not a specialised kernel).
    for m, n, k in [(7, 9, 11), (17, 3, 2), (40, 40, 40), (1, 80, 5), (33, 65, 7), (16, 16, 16), (23, 23, 23)]:
        kern = smm.dispatch(m, n, k, ldc=m + 1, dtype=np_dtype, target=target)
        assert kern.code_target in SIMD and cpu.ISA_NAMES.index(kern.code_target) <= cpu.ISA_NAMES.index(target)
        w = cpu.zmm_weight()
        assert not kern.specialized and kern.tile == gen.select_tile(kern.code_target, dtype, m, n, k, "any", w)
        cv = kern.cached_variant
        assert cv["code_target"] in SIMD and cpu.ISA_NAMES.index(cv["code_target"]) <= cpu.ISA_NAMES.index(target)
        assert not cv["specialized"] and cv["tile"] == gen.select_tile(cv["code_target"], dtype, m, n, k, "cached", w)
    assert smm.select_tile(7, 9, 11, np_dtype, "generic") == (0, 0)


def test_tile_tables_agree(smm_generator):
    """TILES in gen_specialized.py lists the same tiles, in the same order, as smm_registry.c."""
    import re
    gen = smm_generator
    with open(os.path.join(ROOT, "core", "src", "smm", "smm_registry.c")) as f:
        src = f.read()
    for isa, tiles in gen.TILES.items():
        for dt in ("f64", "f32"):
            c_tiles = [(int(a), int(b)) for a, b in re.findall(rf"ENTRY\({isa}, {dt}, (\d+), (\d+)\)", src)]
            assert c_tiles == tiles, (isa, dt, c_tiles, tiles)


def test_tie_order_per_regime(smm_generator):
    """Where the model ties 3x8 and 2x12 zmm tiles (16^3), cached operands get 2x12 and streamed
    ones 3x8 (TIE_ORDER in smm_registry.c and gen_specialized.py, measured with bench/smm_tiles.py)."""
    gen = smm_generator
    assert gen.select_tile("avx512", "f64", 16, 16, 16) == (3, 8)
    assert gen.select_tile("avx512", "f64", 16, 16, 16, "cached") == (2, 12)
    if "avx512" in cpu.available_targets():
        assert smm.select_tile(16, 16, 16, np.float64, "avx512", zmm_weight=2) == (3, 8)
        assert smm.select_tile(16, 16, 16, np.float64, "avx512", cached=True, zmm_weight=2) == (2, 12)
        if cpu.zmm_weight() == 2:
            kern = smm.dispatch(16, 16, 16, target="avx512")
            assert kern.tile == (3, 8) and kern.cached_variant["tile"] == (2, 12)


# Shapes whose zmm tile depends on the weight of a zmm FMA (gen_specialized.py, f64): with
# full-width units a tile that loads less per FMA wins (Emerald Rapids, bench/smm_tiles.py, cached).
WEIGHTED_PICKS = {  # shape: (any, cached) for weight 2, then for weight 1
    (16, 16, 16): ((3, 8), (2, 12), (3, 8), (3, 8)),
    (26, 26, 26): ((4, 6), (1, 16), (4, 6), (2, 12)),
    (13, 13, 13): ((3, 8), (1, 16), (3, 8), (3, 8)),
}


def test_zmm_weight_changes_the_avx512_tile_choice(smm_generator):
    gen = smm_generator
    for (m, n, k), picks in WEIGHTED_PICKS.items():
        got = tuple(gen.select_tile("avx512", "f64", m, n, k, r, w) for r, w in gen.WEIGHTED_REGIMES)
        assert got == picks, (m, n, k)
    assert cpu.zmm_weight() in (1, 2)
    assert cpu.info()["zmm_weight"] == cpu.zmm_weight()
    with pytest.raises(ValueError, match="zmm_weight"):
        smm.select_tile(4, 4, 4, zmm_weight=3)
    with pytest.raises(TypeError, match="zmm_weight"):
        smm.select_tile(4, 4, 4, zmm_weight=True)


@pytest.mark.skipif("avx512" not in cpu.available_targets(), reason="this CPU does not run the AVX-512 path")
@pytest.mark.parametrize("weight", ["1", "2"])
def test_each_zmm_weight_runs_its_own_specialised_kernels(weight, smm_generator):
    """SMM_ZMM_WEIGHT forces the weight: every listed shape then runs, on the AVX-512 path, the
    specialised kernel of that weight's choice in both regimes (so the kernels made for the other
    kind of CPU are run and checked here too), and its results match numpy."""
    gen = smm_generator
    shapes = [s for s in gen.parse_mnk(gen.DEFAULT_MNK)
              if gen.select_tile("avx512", "f64", *s, "any", 1) != gen.select_tile("avx512", "f64", *s, "any", 2)
              or gen.select_tile("avx512", "f64", *s, "cached", 1) != gen.select_tile("avx512", "f64", *s, "cached", 2)]
    assert len(shapes) >= 10
    code = f"""
import numpy as np
from core import cpu, smm
assert cpu.zmm_weight() == {weight}
rng = np.random.default_rng(5)
for (m, n, k) in {shapes!r}:
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        kern = smm.dispatch(m, n, k, dtype=dtype, target="avx512")
        for r, tile, spec, isa in (("any", kern.tile, kern.specialized, kern.code_target),
                                   ("cached", kern.cached_variant["tile"], kern.cached_variant["specialized"],
                                    kern.cached_variant["code_target"])):
            assert spec, (m, n, k, r)
            if isa == "avx512":
                assert tile == smm.select_tile(m, n, k, dtype, "avx512", cached=r == "cached", zmm_weight={weight})
        for nb in (3, 40):  # 40: a cached batch (fn_cached and its strided form where it has one)
            a = rng.standard_normal((nb, k, m)).astype(dtype).transpose(0, 2, 1)
            b = rng.standard_normal((nb, n, k)).astype(dtype).transpose(0, 2, 1)
            c = rng.standard_normal((nb, n, m)).astype(dtype).transpose(0, 2, 1)
            want = 0.5 * c.astype(np.float64) + 1.5 * np.matmul(a.astype(np.float64), b.astype(np.float64))
            smm.gemm_batch(a, b, c, alpha=1.5, beta=0.5, threads=1)
            err = np.max(np.abs(c - want)) / np.max(np.abs(want))
            assert err < tol, (m, n, k, dtype, nb, err)
print("ok", len({shapes!r}))
"""
    proc = child(code, SMM_ZMM_WEIGHT=weight)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ok")


def test_cache_bytes_reports_plausible_sizes():
    """The cache sizes the batch heuristics use: positive, growing with the level, and the same
    as /sys says where /sys says anything."""
    from core import cpu
    sizes = [cpu.cache_bytes(level) for level in (1, 2, 3)]
    assert all(isinstance(s, int) and s >= 4096 for s in sizes)
    assert sizes[0] <= sizes[1] <= sizes[2]
    for level, size in zip((1, 2, 3), sizes):
        from_sys = cpu._sys_cache_bytes(level)
        if from_sys:
            assert size == from_sys
    assert cpu.info()["cache_bytes"][2] == sizes[1]
    with pytest.raises(ValueError, match="level"):
        cpu.cache_bytes(4)
