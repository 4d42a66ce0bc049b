"""The SMM mini-app (python -m miniapps.smm): its streaming loops against einsum, the sizes and
figures of the sample, the program's cases, variants, records and errors, alone and under MPI."""
import json
import os
import tempfile

import numpy as np
import pytest

import core.cpu
import core.smm
from miniapps import _smm_kernels as K
from miniapps import runtime as rt
from miniapps import smm

DTYPES = (np.float64, np.float32)
TOL = {np.float64: 1e-12, np.float32: 2e-5}
# Remainders against every register tile, primes, degenerate 1s, and a shape of the unrolled list.
SHAPES = ((1, 1, 1), (5, 7, 3), (13, 1, 17), (23, 23, 23), (4, 9, 6), (31, 2, 11))
MODES = range(len(smm.MODES))


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def _operands(rng, mode, m, n, k, batch, threads, dtype):
    _, sa, sb, sc = smm.MODES[mode]
    a = rng.standard_normal((batch if sa else 1) * m * k).astype(dtype)
    b = rng.standard_normal((batch if sb else 1) * k * n).astype(dtype)
    c0 = rng.standard_normal(max(K.c_blocks(batch, threads, sc), 1) * m * n).astype(dtype)
    return a, b, c0


def _einsum_reference(mode, a, b, c0, m, n, k, batch, threads, passes=1):
    """C after `passes` passes, from column-major views and an explicit per-entry block map."""
    _, sa, sb, sc = smm.MODES[mode]
    A = a.astype(np.float64).reshape(-1, k, m).transpose(0, 2, 1)   # A_i, m x k
    B = b.astype(np.float64).reshape(-1, n, k).transpose(0, 2, 1)   # B_i, k x n
    C = c0.astype(np.float64).reshape(-1, n, m).transpose(0, 2, 1).copy()
    chunk = -(-batch // threads) if batch else 1
    for i in range(batch):
        blk = i if sc else i // chunk
        C[blk] += passes * (A[i if sa else 0] @ B[i if sb else 0])
    return C.transpose(0, 2, 1).reshape(-1)


def _rel(x, ref):
    top = np.abs(ref).max()
    return np.abs(x.astype(np.float64) - ref).max() / (top if top else 1.0)


# ---- the loops -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("variant", K.VARIANTS)
def test_every_loop_matches_einsum_in_every_mode(rng, variant, shape, dtype):
    m, n, k = shape
    kernel = core.smm.dispatch(m, n, k, dtype=dtype)
    for mode in MODES:
        for threads in (1, 2, 3):
            for batch in (1, 2, 37):
                a, b, c0 = _operands(rng, mode, m, n, k, batch, threads, dtype)
                c = c0.copy()
                _, sa, sb, sc = smm.MODES[mode]
                for _ in range(2):  # C accumulates: a loop that overwrote C would fail here
                    K.stream(variant, a, b, c, m, n, k, batch, stream_a=sa, stream_b=sb, stream_c=sc,
                             threads=threads, kernel=kernel)
                ref = _einsum_reference(mode, a, b, c0, m, n, k, batch, threads, passes=2)
                assert _rel(c, ref) < TOL[dtype], (variant, mode, threads, batch)


@pytest.mark.parametrize("target", core.cpu.available_targets())
@pytest.mark.parametrize("dtype", DTYPES)
def test_specialized_loop_on_every_isa_path(rng, target, dtype):
    for m, n, k in SHAPES:
        kernel = core.smm.dispatch(m, n, k, dtype=dtype, target=target)
        a, b, c0 = _operands(rng, 0, m, n, k, 29, 2, dtype)
        c = c0.copy()
        K.stream("specialized", a, b, c, m, n, k, 29, threads=2, kernel=kernel)
        assert _rel(c, _einsum_reference(0, a, b, c0, m, n, k, 29, 2)) < TOL[dtype], (target, m, n, k)


def test_empty_batch_touches_nothing(rng):
    a, b, c0 = _operands(rng, 0, 3, 3, 3, 1, 1, np.float64)
    c = c0.copy()
    for variant in K.VARIANTS:
        K.stream(variant, a[:0], b[:0], c, 3, 3, 3, 0, threads=2, kernel=core.smm.dispatch(3))
        np.testing.assert_array_equal(c, c0)


def test_per_thread_blocks_follow_thread_chunk():
    assert K.thread_chunk(10, 3) == 4 and K.c_blocks(10, 3, False) == 3
    assert K.thread_chunk(2, 4) == 1 and K.c_blocks(2, 4, False) == 2
    assert K.thread_chunk(0, 2) == 1 and K.c_blocks(0, 2, False) == 0
    assert K.c_blocks(10, 3, True) == 10


def test_bad_loop_arguments(rng):
    m = n = k = 4
    a, b, c = (np.zeros(10 * 16) for _ in range(3))
    kern = core.smm.dispatch(4)
    call = lambda *args, **kw: K.stream(*args, **kw)
    with pytest.raises(ValueError, match="variant"):
        call("fast", a, b, c, m, n, k, 10)
    with pytest.raises(TypeError, match="b has dtype float32"):
        call("blas", a, b.astype(np.float32), c, m, n, k, 10)
    with pytest.raises(TypeError, match="a must be float64 or float32"):
        call("blas", a.astype(np.int64), b, c, m, n, k, 10)
    with pytest.raises(ValueError, match="c holds 160 elements, the batch needs 176"):
        call("inlined", a, b, c, m, n, k, 11, stream_a=False, stream_b=False)
    with pytest.raises(ValueError, match="a holds"):
        call("inlined", a, b, c, m, n, k, 11)
    with pytest.raises(ValueError, match="c is read-only"):
        ro = c.copy()
        ro.flags.writeable = False
        call("blas", a, b, ro, m, n, k, 10)
    with pytest.raises(ValueError, match="b must be a contiguous 1-D"):
        call("blas", a, np.zeros((10, 16)), c, m, n, k, 10)
    with pytest.raises(ValueError, match="a overlaps c"):
        call("blas", c, b, c, m, n, k, 10)
    with pytest.raises(ValueError, match="batch must be >= 0"):
        call("blas", a, b, c, m, n, k, -1)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        call("blas", a, b, c, m, n, k, 10, threads=0)
    with pytest.raises(ValueError, match="m must be >= 1"):
        call("blas", a, b, c, 0, n, k, 10)
    with pytest.raises(TypeError, match="kernel must be a core.smm.Kernel"):
        call("specialized", a, b, c, m, n, k, 10)
    with pytest.raises(ValueError, match="kernel has"):
        call("specialized", a, b, c, m, n, k, 10, kernel=core.smm.dispatch(4, 4, 3))
    with pytest.raises(ValueError, match="kernel has"):
        call("specialized", a, b, c, m, n, k, 10, kernel=core.smm.dispatch(4, beta=0.0))
    with pytest.raises(ValueError, match="kernel has"):
        call("specialized", a, b, c, m, n, k, 10, kernel=core.smm.dispatch(4, dtype=np.float32))
    K.stream("specialized", a, b, c, m, n, k, 10, kernel=kern)   # and the right call works


# ---- the problem: sizes, figures, reference ----------------------------------------------------

def test_auto_size_shares_256_mib_per_node_and_explicit_sizes_split_over_ranks():
    item = smm.footprint(23, 23, 23, 8)
    assert item == 3 * 23 * 23 * 8
    assert smm.batch_sizes(0, item, 1, 1, 0) == ((256 << 20) // item, False)
    assert smm.batch_sizes(0, item, 2, 2, 1) == ((128 << 20) // item, False)
    assert [smm.batch_sizes(101, item, 2, 2, r)[0] for r in (0, 1)] == [51, 50]
    assert smm.batch_sizes(1, item, 1, 4, 3) == (0, False)   # more ranks than entries
    huge = smm.batch_sizes(10 ** 9, item, 1, 1, 0)
    assert huge == ((2 << 30) // item, True)


def test_sample_bytes_per_entry():
    m, n, k, t = 3, 5, 7, 8
    assert smm.entry_bytes(0, m, n, k, t) == (m * k + k * n) * t + 2 * m * n * t
    assert smm.entry_bytes(1, m, n, k, t) == (m * k) * t + 2 * m * n * t
    assert smm.entry_bytes(2, m, n, k, t) == (k * n) * t + 2 * m * n * t
    assert smm.entry_bytes(3, m, n, k, t) == (m * k + k * n) * t
    assert smm.entry_bytes(4, m, n, k, t) is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_reference_batch_and_numpy_passes_match_einsum(mode, dtype):
    m, n, k, batch, threads = 5, 3, 4, 1000, 3     # numpy slices split the blocks into several runs
    p = smm.Batch(mode, m, n, k, batch, dtype, threads, [1, 2])
    zero = np.zeros_like(p.c)
    ref = _einsum_reference(mode, p.a, p.b, zero, m, n, k, batch, threads)
    assert _rel(p.reference(), ref) < 1e-13
    for variant in ("numpy", "batch"):
        p.reset()
        p.run(variant)
        p.run(variant)
        assert _rel(p.c, 2 * ref) < TOL[dtype], variant


def test_tolerance_widens_only_for_long_sums():
    eps32 = float(np.finfo(np.float32).eps)
    assert smm.tolerance(np.float64, 23, 14) == 1e-10
    assert smm.tolerance(np.float32, 23, 14) == 1e-4
    assert smm.tolerance(np.float32, 23, 10 ** 5) == pytest.approx(eps32 * (10 ** 5 + 23))
    assert smm.tolerance(np.float32, 23, 10 ** 5, per_term=True) == pytest.approx(eps32 * (23 * 10 ** 5 + 23))
    assert smm.tolerance(np.float32, 23, 10 ** 9) == 0.5   # a zero result (error 1) still fails


def test_error_parts():
    ref = np.array([1.0, -4.0, 2.0])
    assert smm.error_parts(np.array([2.0, -8.0, 4.5]), ref, 2.0) == (0.5, 8.0)
    worst, top = smm.error_parts(np.array([np.nan, -8.0, 4.0]), ref, 2.0)
    assert worst == float("inf") and top == 8.0


# ---- the program ------------------------------------------------------------------------------

def _records(path):
    return [json.loads(line) for line in open(path)]


@pytest.mark.parametrize("case", range(smm.NCASES))
def test_every_case_and_variant_validates(run_app, tmp_path, case):
    out = run_app("miniapps.smm", case, 5, 7, 3, 97, 2, "--check", "--threads", "2",
                  "--variants", ",".join(smm.ORDER), "--json", tmp_path, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    title = smm.MODES[case // 2][0]
    assert f"case {case}: {title}, nrepeat=2" in out.stdout
    assert "m=5 n=7 k=3 size=97 memory=0.1 MB (input=double output=double)" in out.stdout
    recs = _records(tmp_path / "smm.jsonl")
    assert [r["variant"] for r in recs] == list(smm.ORDER)
    for r in recs:
        assert r["check"]["ok"] and r["check"]["max_rel_err"] < 1e-13, r["variant"]
        assert r["flops"] == 2 * 97 * 5 * 7 * 3 and r["repeat"] == 2
        per_entry = smm.entry_bytes(case // 2, 5, 7, 3, 8)
        assert r["bytes"] == (None if per_entry is None else 97 * per_entry)
        assert (r["gbs"] is None) == (case // 2 == 4)
        assert r["extra"]["case"] == case and r["extra"]["streams"] == title
        assert r["extra"]["max_rel_err"] == pytest.approx(r["check"]["max_rel_err"])
        assert r["gflops"] > 0 and r["threads"] == 2 and r["app"] == "smm"
    assert recs[-1]["extra"]["speedup_over_numpy"].keys() == set(smm.ORDER[:-1])


def test_default_variants_follow_the_case_parity(run_app):
    even = run_app("miniapps.smm", 2, 4, 0, 0, 50, "--threads", "1", timeout=120)
    assert even.returncode == 0, even.stderr
    for v in smm.ORDER:
        assert smm.LABELS[v] + "..." in even.stdout
    assert "error: max_rel=" in even.stdout and "numpy baseline:" in even.stdout
    odd = run_app("miniapps.smm", 3, 4, 0, 0, 50, "--threads", "1", timeout=120)
    assert odd.returncode == 0, odd.stderr
    assert [v for v in smm.ORDER if smm.LABELS[v] + "..." in odd.stdout] == list(smm.ODD_DEFAULT)


@pytest.mark.parametrize("target", core.cpu.available_targets())
def test_every_isa_path_and_f32(run_app, target):
    out = run_app("miniapps.smm", 6, 9, 5, 0, 101, "--check", "--dtype", "f32",
                  env={"SMM_TARGET": target}, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"target={target}" in out.stdout and "(input=float output=float)" in out.stdout
    assert f"9x5x9 {target}" in out.stdout


@pytest.mark.parametrize("args,match", [
    (["10"], "case must be in 0..9"), (["-1"], "case must be"), (["0", "0"], "m must be >= 1"),
    (["0", "4", "-2"], "n must be >= 1"), (["0", "5000"], "not a small matrix"),
    (["0", "4", "4", "4", "-5"], "size must be >= 0"), (["0", "4", "4", "4", "5", "-1"], "nrepeat must be"),
    (["0", "x"], "invalid int value"), (["0", "4", "--variants", "fast"], "unknown ['fast']"),
    (["0", "4", "--dtype", "f16"], "invalid choice"), (["0", "4", "4", "4", "5", "1", "7"], "unrecognized"),
])
def test_bad_arguments_exit_2_with_usage(run_app, args, match):
    out = run_app("miniapps.smm", *args, timeout=60)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "usage: python -m miniapps.smm" in out.stderr and match in out.stderr


def test_help_documents_the_cases(run_app):
    out = run_app("miniapps.smm", "--help", timeout=60)
    assert out.returncode == 0
    for line in ("0/1  Streamed (A,B,C)", "6/7  Streamed (A,B)", "8/9  Cached", "--threads", "--json"):
        assert line in out.stdout


def test_a_wrong_result_fails_the_check(monkeypatch, restore_affinity, capsys):
    """--check must be able to fail: a loop that adds one to C gives exit status 1."""
    real = K.stream

    def off_by_one(*args, **kw):
        c = real(*args, **kw)
        c[0] += 1.0
        return c

    monkeypatch.setattr(smm._smm_kernels, "stream", off_by_one)
    argv = ["0", "4", "0", "0", "20", "1", "--check", "--variants", "inlined,numpy", "--threads", "1"]
    assert rt.launch("smm", smm.main, smm.add_arguments, argv=argv) == 1
    out = capsys.readouterr()
    assert "FAILED" in out.out and "validation FAILED: inlined" in out.err
    argv.remove("--check")
    assert rt.launch("smm", smm.main, smm.add_arguments, argv=argv) == 0   # reported, not fatal
    assert "error: max_rel=" in capsys.readouterr().out


def test_two_ranks_split_the_batch(run_app, tmp_path):
    out = run_app("miniapps.smm", 0, 6, 0, 0, 101, 1, "--check", "--variants", "specialized,batch,numpy",
                  "--json", tmp_path, ranks=2, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    recs = _records(tmp_path / "smm.jsonl")
    assert [r["variant"] for r in recs] == ["specialized", "batch", "numpy"]
    for r in recs:
        assert r["ranks"] == 2 and r["check"]["ok"] and r["flops"] == 2 * 101 * 216
        assert r["extra"]["size"] == 101 and r["extra"]["batch_per_rank"] == 51   # rank 0's share


@pytest.mark.mpi
def test_ranks_run_every_variant_in_process(restore_affinity):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    out = comm.bcast(tempfile.mkdtemp(prefix="smm-mpi-") if comm.Get_rank() == 0 else None, root=0)
    argv = ["6", "5", "3", "4", "60", "2", "--check", "--quiet", "--threads", "1", "--json", out + "/",
            "--variants", ",".join(smm.ORDER)]
    assert rt.launch("smm", smm.main, smm.add_arguments, argv=argv) == 0
    comm.Barrier()
    if comm.Get_rank() == 0:
        recs = _records(os.path.join(out, "smm.jsonl"))
        assert [r["variant"] for r in recs] == list(smm.ORDER)
        for r in recs:
            assert r["ranks"] == comm.Get_size() and r["check"]["ok"]
            assert r["flops"] == 2 * 60 * 5 * 3 * 4 and r["bytes"] == 60 * (5 * 4 + 4 * 3) * 8
            assert len(r["seconds_per_rank"]) == comm.Get_size()
