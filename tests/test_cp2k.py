"""The cp2k mini-app: sizes, stack generation, both paths and every variant against numpy, the CLI."""
import faulthandler
import json

import numpy as np
import pytest

from core import acc
from miniapps import runtime as rt
from miniapps.cp2k import _cp2k_kernels as kernels
from miniapps.cp2k import model

SEED = 4242


@pytest.fixture(autouse=True)
def no_hang():
    faulthandler.dump_traceback_later(180, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


# ---- sizes ------------------------------------------------------------------------------------

def size(m=23, r=None, t=None, n=None, k=None, itemsize=8, ranks=1):
    return model.problem_size(m, r, t, n, k, itemsize, ranks, rt.parse_size)


def test_default_sizes_follow_the_sample():
    m, n, k, s, u = size()
    assert (m, n, k) == (23, 23, 23)
    assert s == (2 << 30) // ((23 * 23 * 2) * 8)
    assert u == int(np.sqrt(s * 160 // 240))
    # the ~2 GiB are shared among the node's ranks
    assert size(ranks=4)[3] == s // 4
    assert size(itemsize=4)[3] == (2 << 30) // ((23 * 23 * 2) * 4)


def test_size_shorthands_and_inheritance():
    q = (1 << 30) // (3 * 5 * 5 * 8)
    assert size(5, "+")[3] == q << 1
    assert size(5, "--")[3] == q >> 2
    assert size(5, "100", "+++")[4] == 160 << 3
    assert size(5, "100", "-")[4] == 80
    assert size(5, "100", "7")[3:] == (100, 7)
    assert size(5, "100", None, None, 3)[:3] == (5, 3, 3)     # n defaults to k, k to m
    assert size(5, "100", None, 9, 3)[:3] == (5, 9, 3)
    assert size(5, "1", "0")[3:] == (1, 1)


@pytest.mark.parametrize("args,match", [
    (dict(m=0), "m must be"), (dict(m=-3), "m must be"), (dict(n=-1), "n must be"),
    (dict(r="x"), "not an integer"), (dict(r="100", t="-----------"), "group size"),
    (dict(m=2000), "small matrices"),
])
def test_bad_sizes(args, match):
    with pytest.raises(ValueError, match=match):
        size(**{"r": "10", **args})


# ---- DBCSR stack generation -------------------------------------------------------------------

def all_stacks(gen, cap):
    gen.reset()
    buf = np.empty((cap, 3), gen.index_dtype)
    out = []
    while True:
        cnt = gen.fill(buf)
        if not cnt:
            break
        assert cnt <= cap
        out.append(buf[:cnt].copy())
    return out


def check_products(gen, st):
    """Every row is a real product of the block-sparse multiply: A(i, l) B(l, j) into C(i, j)."""
    g = gen.structure()
    m_k, k_n, m_n = gen.a_block, gen.b_block, gen.c_block
    a_id, b_id, c_id = st[:, 0] // m_k, st[:, 1] // k_n, st[:, 2] // m_n
    i, j = c_id // g["ncol"], c_id % g["ncol"]
    assert ((g["a_ptr"][i] <= a_id) & (a_id < g["a_ptr"][i + 1])).all()     # A block in row i
    assert ((g["b_ptr"][j] <= b_id) & (b_id < g["b_ptr"][j + 1])).all()     # B block in column j
    np.testing.assert_array_equal(g["a_l"][a_id], g["b_l"][b_id])            # same l


@pytest.mark.parametrize("total,per_c,cap", [(1, 1, 1), (1000, 20, 333), (5000, 3, 4999), (777, 400, 100),
                                             (20000, 300, 3000)])
def test_dbcsr_stacks(total, per_c, cap):
    m, n, k = 3, 4, 5
    gen = kernels.DbcsrStacks(total, per_c, m, n, k, seed=SEED, cache_bytes=4096, tile=3)
    stacks = all_stacks(gen, cap)
    st = np.concatenate(stacks)
    assert st.shape[0] == total
    assert all(s.shape[0] == cap for s in stacks[:-1])
    a_size, b_size, c_size = gen.sizes
    assert (st[:, 0] % (m * k) == 0).all() and st[:, 0].max() + m * k <= a_size
    assert (st[:, 1] % (k * n) == 0).all() and st[:, 1].max() + k * n <= b_size
    assert (st[:, 2] % (m * n) == 0).all() and st[:, 2].max() + m * n <= c_size
    check_products(gen, st)
    if gen.grid_products >= total:      # no wrap: no product twice
        assert np.unique(st, axis=0).shape[0] == total
    if gen.grid_products == total:      # the whole grid: every product of the multiply once
        g = gen.structure()
        assert total == sum(len(np.intersect1d(g["a_l"][g["a_ptr"][i]:g["a_ptr"][i + 1]],
                                               g["b_l"][g["b_ptr"][j]:g["b_ptr"][j + 1]]))
                            for i in range(gen.nrow) for j in range(gen.ncol))
    # the same seed gives the same stacks; a reset (mid-way or at the end) starts over
    again = kernels.DbcsrStacks(total, per_c, m, n, k, seed=SEED, cache_bytes=4096, tile=3)
    np.testing.assert_array_equal(st, np.concatenate(all_stacks(again, cap)))
    gen.reset()
    gen.fill(np.empty((max(1, cap // 2), 3), gen.index_dtype))
    np.testing.assert_array_equal(np.concatenate(all_stacks(gen, cap)), st)
    np.testing.assert_array_equal(np.concatenate(all_stacks(gen, cap)), st)


def test_dbcsr_stacks_whole_grid_in_slices_and_tiles():
    """All products of the grid, each once, also when k is cut into slices and C into tiles."""
    # the grid depends on total * slack / per_c (9 C blocks here), so a second generator with
    # total = all products of the first one's grid has the same grid
    gen = kernels.DbcsrStacks(600, 200, 2, 2, 2, seed=3, slack=3.0, cache_bytes=2048, tile=2)
    assert gen.nslices > 1 and gen.nrow == 3 and gen.ncol == 3
    full = kernels.DbcsrStacks(gen.grid_products, 200, 2, 2, 2, seed=3, slack=1799.5 / gen.grid_products,
                               cache_bytes=2048, tile=2)
    assert (full.nrow, full.ncol, full.nk) == (gen.nrow, gen.ncol, gen.nk)
    st = np.concatenate(all_stacks(full, 1000))
    check_products(full, st)
    assert np.unique(st, axis=0).shape[0] == st.shape[0] == full.grid_products
    # a C block's products of one slice are consecutive: at most one run per (C block, slice)
    runs = 1 + np.count_nonzero(np.diff(st[:, 2]))
    assert runs <= full.c_blocks * full.nslices


def test_dbcsr_stacks_wrap_when_the_grid_is_small():
    gen = kernels.DbcsrStacks(500, 4, 2, 2, 2, seed=1, slack=0.3)
    assert gen.grid_products < 500
    st = np.concatenate(all_stacks(gen, 64))
    assert st.shape[0] == 500
    check_products(gen, st)
    assert np.unique(st, axis=0).shape[0] == gen.grid_products    # every product, then round again


def test_dbcsr_stacks_wide_indices():
    gen = kernels.DbcsrStacks(10 ** 6, 1, 1024, 1024, 1024, seed=0)
    assert gen.index_dtype == np.int64
    buf = np.empty((1000, 3), np.int64)
    assert gen.fill(buf) == 1000
    with pytest.raises(TypeError, match="int64"):
        gen.fill(np.empty((10, 3), np.int32))


def test_dbcsr_stacks_bad_arguments():
    with pytest.raises(ValueError):
        kernels.DbcsrStacks(10, 0, 2, 2, 2)
    with pytest.raises(ValueError):
        kernels.DbcsrStacks(10, 1, 2, 2, 2, density=0)
    with pytest.raises(ValueError):
        kernels.DbcsrStacks(10, 1, 2, 2, 2, slack=0)
    gen = kernels.DbcsrStacks(10, 1, 2, 2, 2)
    with pytest.raises(ValueError, match="capacity"):
        gen.fill(np.empty((10, 2), gen.index_dtype))


# ---- both paths, every variant, against numpy ----------------------------------------------

def check_paths(problem, variants=None, *, threads=2, device_threads=2, streams=2):
    ref = problem.reference()
    tol = problem.tolerance()
    scale = max(1.0, float(np.abs(ref).max()))
    variants = variants or model.VARIANTS
    host = model.HostPath(problem, threads)
    for v in variants:
        out = host.runner(v)()
        err = float(np.abs(out - ref).max()) / scale
        assert err <= tol, (v, "host", err)
    with acc.Device(threads=device_threads) as dev:
        off = model.OffloadPath(problem, dev, streams)
        for v in variants:
            if v in model.HOST_ONLY:
                with pytest.raises(ValueError, match="host path only"):
                    off.runner(v)
                continue
            out = off.runner(v)()
            err = float(np.abs(out - ref).max()) / scale
            assert err <= tol, (v, "offload", err)
            if v != "numpy":
                ov = off.overlap()
                assert ov["device"] > 0 and ov["union"] >= max(ov["host"], ov["device"]) - 1e-9
        off.close()


@pytest.mark.parametrize("model_name", ["dbcsr", "sample"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m,n,k", [(5, 5, 5), (4, 7, 3), (1, 1, 1), (2, 2, 2), (13, 9, 11)])
def test_every_variant_both_paths(model_name, dtype, m, n, k):
    # 1031 products in stacks of 200 (a remainder), groups of 7: divisible by nothing in sight
    p = model.make_problem(model_name, m, n, k, 1031, 7, dtype, 200, SEED)
    check_paths(p)


@pytest.mark.parametrize("threads,device_threads,streams", [(1, 1, 1), (2, 3, 3), (1, 2, 4)])
def test_thread_and_stream_counts(threads, device_threads, streams):
    p = model.make_problem("dbcsr", 6, 5, 4, 2003, 50, np.float64, 128, SEED)
    check_paths(p, ["specialized", "blas"], threads=threads, device_threads=device_threads, streams=streams)


def test_heavy_c_repetition():
    # dbcsr with many products per C block (runs cross stacks and chunks), and the sample's one C
    check_paths(model.make_problem("dbcsr", 3, 3, 3, 3000, 1000, np.float64, 256, SEED), ["specialized", "inlined"])
    check_paths(model.make_problem("sample", 3, 3, 3, 3000, 1, np.float64, 256, SEED), ["specialized", "dispatched"])


def test_problem_figures():
    p = model.make_problem("sample", 4, 3, 2, 100, 8, np.float64, 30, SEED)
    assert p.flops == 2 * 100 * 4 * 3 * 2
    assert p.c_updates == 13 and p.nstacks == 4
    assert p.nbytes == (100 * (4 * 2 + 2 * 3) + 13 * 4 * 3 * 2) * 8
    d = model.make_problem("dbcsr", 4, 3, 2, 1000, 10, np.float64, 300, SEED)
    assert d.nstacks == 4
    stacks = all_stacks(d.gen, 300)
    assert d.c_updates == sum(1 + int(np.count_nonzero(np.diff(s[:, 2]))) for s in stacks)


def test_device_error_surfaces_from_the_offload_path():
    """A corrupt stack entry: the device's index check fails it, the host raises; nothing hangs."""
    p = model.make_problem("dbcsr", 4, 4, 4, 500, 10, np.float64, 100, SEED)

    class CorruptStacks:
        def __init__(self, gen):
            self.gen = gen

        def reset(self):
            self.gen.reset()

        def fill(self, buf):
            cnt = self.gen.fill(buf)
            if cnt:
                buf[cnt // 2, 1] = 10 ** 8     # far past the end of B
            return cnt

    p.gen = CorruptStacks(p.gen)
    with acc.Device(threads=2) as dev:
        off = model.OffloadPath(p, dev, 2)
        with pytest.raises(acc.DeviceError, match="B index 100000000"):
            off.runner("specialized")()
        with pytest.raises(ValueError, match="B index 100000000"):
            model.HostPath(p, 2).runner("specialized")()


# ---- the program ------------------------------------------------------------------------------

SMALL = ["5", "600", "7", "--stack-size", "128"]


def test_cli_offload_default(run_app, tmp_path):
    out = run_app("miniapps.cp2k", *SMALL, "--check", "--json", str(tmp_path) + "/", timeout=120)
    assert out.returncode == 0, out.stderr
    for title in ("LAPACK/BLAS...", "Inlined...", "Dispatched...", "Specialized...", "numpy ("):
        assert title in out.stdout
    assert "m=5 n=5 k=5 size=600" in out.stdout
    assert "path=offload" in out.stdout and "overlap: host-busy" in out.stdout
    assert "gemm_batch" not in out.stdout
    records = [json.loads(line) for line in (tmp_path / "cp2k.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in records] == ["blas", "inlined", "dispatched", "specialized", "numpy"]
    assert all(r["check"]["ok"] for r in records)
    spec = records[3]
    assert spec["extra"]["path"] == "offload" and spec["extra"]["model"] == "dbcsr"
    assert set(spec["extra"]["overlap"]) >= {"host", "device", "union", "overlap"}
    assert spec["flops"] == 2 * 600 * 125


def test_cli_host_sample_f32(run_app):
    out = run_app("miniapps.cp2k", "4", "500", "9", "3", "2", "--path", "host", "--model", "sample",
                  "--dtype", "f32", "--check", "--threads", "2", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "m=4 n=3 k=2 size=500" in out.stdout and "(SP)" in out.stdout
    assert "gemm_batch (core.smm)..." in out.stdout and "FAILED" not in out.stdout


def test_cli_quiet(run_app):
    out = run_app("miniapps.cp2k", *SMALL, "--quiet", "--variants", "specialized", timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""


@pytest.mark.parametrize("args,match", [
    (["0"], "m must be"), (["5", "abc"], "not an integer"), (["5", "10", "-----------"], "group size"),
    (["5", "10", "--streams", "0"], "must be >= 1"), (["5", "10", "--variants", "fast"], "unknown variant"),
    (["5", "10", "--variants", "gemm_batch"], "host path only"), (["5", "10", "--model", "csr"], "invalid choice"),
    (["5", "10", "--device-threads", "x"], "not an integer"),
])
def test_cli_bad_arguments(run_app, args, match):
    out = run_app("miniapps.cp2k", *args, timeout=60)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert match in out.stderr


def test_cli_two_and_four_ranks(run_app):
    for ranks in (2, 4):   # 4 ranks on this 2-CPU machine: oversubscribed, must still be right
        out = run_app("miniapps.cp2k", *SMALL, "--check", "--variants", "specialized,numpy",
                      ranks=ranks, timeout=120)
        assert out.returncode == 0, out.stderr
        assert f"{ranks} ranks" in out.stdout and "FAILED" not in out.stdout
