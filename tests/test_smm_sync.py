"""Repeated C blocks in gemm_batch: grouping by C (the default) and the hashed-lock alternative."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import cpu, smm


@pytest.mark.parametrize("target", cpu.available_targets())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64])
def test_locks_equal_sequential_on_integer_data(target, dtype, idx_dtype):
    """Integer-valued data: any accumulation order gives the exact sums, so a lost or doubled
    update under the locks shows as a difference; repeated to give races a chance."""
    rng = np.random.default_rng(7)
    for m, n, k in ((5, 5, 5), (8, 3, 7), (13, 13, 13)):
        nb, nc = 3000, 3
        a = rng.integers(-3, 4, nb * m * k).astype(dtype)
        b = rng.integers(-3, 4, nb * k * n).astype(dtype)
        c0 = rng.integers(-3, 4, nc * m * n).astype(dtype)
        ia = (np.arange(nb) * m * k).astype(idx_dtype)
        ib = (rng.permutation(nb) * k * n).astype(idx_dtype)
        ic = (rng.integers(0, nc, nb) * m * n).astype(idx_dtype)
        ref = c0.copy()
        smm.gemm_batch(a, b, ref, a_index=ia, b_index=ib, c_index=ic, m=m, n=n, k=k, threads=1, target=target)
        for _ in range(10):
            c = c0.copy()
            smm.gemm_batch(a, b, c, a_index=ia, b_index=ib, c_index=ic, m=m, n=n, k=k, threads=2,
                           target=target, sync="locks")
            assert np.array_equal(c, ref), f"{m}x{n}x{k} {np.dtype(dtype).name}"


def test_locks_with_beta_not_one_keeps_the_sequential_order():
    """beta != 1 makes the order of updates matter: the locks option groups instead."""
    rng = np.random.default_rng(3)
    m, nb, nc = 4, 500, 2
    a, b = rng.standard_normal(nb * m * m), rng.standard_normal(nb * m * m)
    c0 = rng.standard_normal(nc * m * m)
    idx = (np.arange(nb) * m * m).astype(np.int64)
    ic = (rng.integers(0, nc, nb) * m * m).astype(np.int64)
    ref, c = c0.copy(), c0.copy()
    smm.gemm_batch(a, b, ref, 1.0, -0.5, a_index=idx, b_index=idx, c_index=ic, m=m, threads=1)
    smm.gemm_batch(a, b, c, 1.0, -0.5, a_index=idx, b_index=idx, c_index=ic, m=m, threads=2, sync="locks")
    assert np.array_equal(c, ref)


def test_bad_sync_names_the_argument():
    z = np.zeros(16)
    with pytest.raises(ValueError, match="sync"):
        smm.gemm_batch(z.copy(), z.copy(), z, c_index=np.zeros(2, np.int64), m=4, sync="atomics")


@pytest.mark.parametrize("sync", ["group", "locks"])
@pytest.mark.parametrize("shuffled", [False, True])
def test_partially_overlapping_c_blocks_rejected_by_both_schemes(sync, shuffled):
    """Blocks at offsets 0 and 3 (4x4, ldc 4) share elements: neither scheme may race on them."""
    ic = np.array([0, 0, 3, 3, 0, 3] * 50, dtype=np.int64)
    if shuffled:
        ic = np.random.default_rng(0).permutation(ic)
    else:
        ic = np.sort(ic)
    z = np.zeros(64)
    with pytest.raises(ValueError, match=r"\bc_index\b"):
        smm.gemm_batch(z.copy(), z.copy(), z, c_index=ic, m=4, threads=2, sync=sync)


@pytest.mark.parametrize("shuffled", [False, True])
def test_partial_overlap_found_among_many_c_blocks(shuffled):
    """The same check on a stack of 6000 distinct C blocks (the radix-sort grouping when shuffled):
    a block at offset 3 overlaps the one at 0."""
    ic = np.concatenate([np.arange(6000) * 16, [3, 0, 3]]).astype(np.int64)
    ic = np.random.default_rng(1).permutation(ic) if shuffled else np.sort(ic)
    z = np.zeros(6000 * 16 + 16)
    with pytest.raises(ValueError, match=r"\bc_index\b.*offsets 0 and 3"):
        smm.gemm_batch(z.copy(), z.copy(), z, c_index=ic, m=4, threads=2)


@pytest.mark.parametrize("distinct", [1, 2, 7, 64, 999, 5000, 20000])
@pytest.mark.parametrize("beta", [1.0, -0.5])
@pytest.mark.parametrize("sorted_", [False, True])
@pytest.mark.parametrize("m, dtype", [(3, np.float64), (5, np.float32), (13, np.float64)])
def test_grouping_keeps_each_c_in_order(distinct, beta, sorted_, m, dtype):
    """Grouping by C (sorted stacks in place, others by hashing, or by a radix sort past 4096
    distinct C's: 20000 blocks drawn 6000 times give about 5300) must apply each C's entries in
    their order: with beta != 1 the order changes the result, so 2 threads must equal 1 thread
    bit for bit; with beta == 1 integer data make any lost or doubled update visible. Covers one
    long run (split over threads with partial sums), a few, and many short ones."""
    rng = np.random.default_rng(distinct)
    nb = 6000
    ints = beta == 1.0
    a = (rng.integers(-3, 4, nb * m * m) if ints else rng.standard_normal(nb * m * m)).astype(dtype)
    b = (rng.integers(-3, 4, nb * m * m) if ints else rng.standard_normal(nb * m * m)).astype(dtype)
    c0 = rng.integers(-3, 4, distinct * m * m).astype(dtype)
    idx = (np.arange(nb) * m * m).astype(np.int32)
    ic = (rng.integers(0, distinct, nb) * m * m).astype(np.int32)
    if sorted_:
        ic = np.sort(ic)
    ref = c0.copy()
    smm.gemm_batch(a, b, ref, 1.0, beta, a_index=idx, b_index=idx, c_index=ic, m=m, threads=1)
    for _ in range(3):
        c = c0.copy()
        smm.gemm_batch(a, b, c, 1.0, beta, a_index=idx, b_index=idx, c_index=ic, m=m, threads=2)
        assert np.array_equal(c, ref)


@settings(max_examples=300, deadline=None)
@given(lengths=st.lists(st.integers(1, 400), min_size=1, max_size=60), nt=st.integers(2, 4),
       reduce=st.booleans())
def test_task_plan_partitions_the_runs(lengths, nt, reduce):
    """The task plan behind grouping: tasks tile [0, nb) in order; a task holds whole runs, or is
    a piece of one split run (only with batch-reduce, and then every piece after the first has
    its own scratch slot); no run is split without batch-reduce."""
    runs = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    nruns, nb = len(lengths), int(runs[-1])
    tasks, slots = smm._plan_tasks(runs, nruns, nt, reduce)
    assert tasks[0, 0] == 0 and tasks[-1, 1] == nb
    assert np.all(tasks[1:, 0] == tasks[:-1, 1]) and np.all(tasks[:, 1] > tasks[:, 0])
    bounds = set(runs.tolist())
    used = sorted(s for s in tasks[:, 2].tolist() if s >= 0)
    assert used == list(range(slots))
    for e0, e1, slot in tasks.tolist():
        if e0 in bounds and e1 in bounds and slot < 0:
            continue                                  # whole runs
        assert reduce                                 # a piece of one split run
        r = int(np.searchsorted(runs, e0, side="right")) - 1
        assert runs[r] <= e0 < e1 <= runs[r + 1]
        assert (slot < 0) == (e0 == runs[r])          # the first piece updates C, others go to scratch
