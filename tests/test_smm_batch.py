"""core.smm.gemm_batch against numpy, both forms, every ISA path this CPU runs, float64/float32,
1 and 2 threads (2 threads must give exactly what 1 thread gives), batch sizes 0, 1 and many.

Strided form: C- and F-ordered stacks, padded matrices and entries, A or B with batch stride 0
or 2-D (one matrix for all). Index form: int32/int64 index arrays, index_base 0/1, omitted index
arrays, many entries hitting few C blocks in unsorted order (the race test, repeated), C blocks
that are tiles of a bigger matrix, beta != 1 on repeated C (must equal the sequential result).

Integer-valued operands make every sum exact whatever the summation order, so results can be
compared bit for bit with a sequential reference and across thread counts."""
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import cpu
from core import smm

SEED = 20261126
TARGETS = [pytest.param(t, marks=pytest.mark.skipif(t not in cpu.available_targets(),
                                                    reason=f"this CPU does not run the {t} path"))
           for t in cpu.ISA_NAMES]
DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]
INDEX_DTYPES = [pytest.param(np.int32, id="i32"), pytest.param(np.int64, id="i64")]
TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
ALPHAS = (0.0, 1.0, -1.0, 2.5)
BETAS = (0.0, 1.0, -0.5)
ALPHA_BETA = list(itertools.product(ALPHAS, BETAS))
TRANS = list(itertools.product((False, True), repeat=2))
# Enough entries that gemm_batch gives them 2 threads (the library runs < 32 entries on one).
MANY = 97


@pytest.fixture
def rng():
    return np.random.default_rng(SEED)


def values(rng, shape, dtype, integer):
    if integer:
        return rng.integers(-3, 4, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def op_shape(rows, cols, trans):
    return (cols, rows) if trans else (rows, cols)


def assert_close(got, ref, scale, dtype, what):
    tol = TOL[np.dtype(dtype)]
    err = np.abs(got.astype(np.float64) - ref)
    bad = ~(err <= tol * scale + np.finfo(dtype).tiny)
    if bad.any():
        pos = tuple(np.argwhere(bad)[0])
        pytest.fail(f"{what}: {int(bad.sum())} of {bad.size} elements off, first at {pos}: "
                    f"got {got[pos]!r}, expected {ref[pos]!r}")


# ----------------------------------------------------------------------------- strided form

def make_stack(rng, nb, shape, dtype, layout, integer=False):
    """A stack of nb matrices of `shape` laid out as:
    'C'       (nb, rows, cols) C order;         'F'      each matrix Fortran-ordered;
    'Cpad'    padded rows and entries, C;      'Fpad'   padded columns and entries, Fortran;
    'every2'  every second entry of a bigger stack (batch stride 2 matrices);
    'inter'/'Finter'  matrices interleaved in one array (batch stride < a matrix's footprint);
    'bcast'   one matrix, batch stride 0 (np.broadcast_to);   '2d'  one 2-D matrix for all."""
    rows, cols = shape
    if layout == "C":
        return values(rng, (nb, rows, cols), dtype, integer)
    if layout == "F":
        return values(rng, (nb, cols, rows), dtype, integer).transpose(0, 2, 1)
    if layout == "Cpad":
        return values(rng, (nb, rows + 1, cols + 3), dtype, integer)[:, :rows, 1:cols + 1]
    if layout == "Fpad":
        return values(rng, (nb, cols + 2, rows + 3), dtype, integer).transpose(0, 2, 1)[:, 2:rows + 2, :cols]
    if layout == "every2":
        return values(rng, (2 * nb, rows, cols), dtype, integer)[::2]
    if layout == "inter":      # matrices interleaved row by row: row-major, ld = batch * cols
        return values(rng, (rows, nb, cols), dtype, integer).transpose(1, 0, 2)
    if layout == "Finter":     # interleaved column by column: column-major, ld = batch * rows
        return values(rng, (cols, nb, rows), dtype, integer).transpose(1, 2, 0)
    if layout == "bcast":
        return np.broadcast_to(values(rng, (rows, cols), dtype, integer), (nb, rows, cols))
    if layout == "2d":
        return values(rng, (rows, cols), dtype, integer)
    raise AssertionError(layout)


def strided_reference(a, b, c, alpha, beta, ta, tb):
    opa = np.swapaxes(a, -1, -2) if ta else a
    opb = np.swapaxes(b, -1, -2) if tb else b
    opa, opb, c64 = opa.astype(np.float64), opb.astype(np.float64), c.astype(np.float64)
    ref = alpha * np.matmul(opa, opb) + beta * c64
    scale = abs(alpha) * np.matmul(np.abs(opa), np.abs(opb)) + abs(beta) * np.abs(c64)
    return np.broadcast_to(ref, c.shape), np.broadcast_to(scale, c.shape)


def run_strided_case(rng, target, dtype, m, n, k, nb, ta, tb, alpha, beta, la, lb, lc, threads,
                     integer=False, prefetch="auto"):
    a = make_stack(rng, nb, op_shape(m, k, ta), dtype, la, integer)
    b = make_stack(rng, nb, op_shape(k, n, tb), dtype, lb, integer)
    c = make_stack(rng, nb, (m, n), dtype, lc, integer)
    owner = c.base if c.base is not None else c
    c_before, owner_before = c.copy(), owner.copy()
    ref, scale = strided_reference(a, b, c, alpha, beta, ta, tb)
    out = smm.gemm_batch(a, b, c, alpha, beta, trans_a=ta, trans_b=tb, threads=threads, target=target,
                         prefetch=prefetch)
    assert out is c
    what = (f"strided {target} {np.dtype(dtype).name} {m}x{n}x{k} batch={nb} ta={ta} tb={tb} a={la} b={lb} "
            f"c={lc} alpha={alpha} beta={beta} threads={threads}")
    assert_close(c, ref, scale, dtype, what)
    # Nothing outside the C matrices changed: put the originals back and compare the owner.
    c[...] = c_before
    assert np.array_equal(owner, owner_before), f"{what}: wrote outside the C matrices"


AB_LAYOUTS = ["C", "F", "Fpad", "every2", "inter", "bcast", "2d"]
C_LAYOUTS = ["C", "F", "Cpad", "every2", "inter", "Finter"]
STRIDED_SHAPES = [(5, 5, 5), (23, 23, 23), (7, 3, 11), (1, 9, 4), (17, 16, 2), (5, 25, 5)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_strided_matches_numpy(target, dtype, rng):
    cases = itertools.product(AB_LAYOUTS, AB_LAYOUTS, C_LAYOUTS, TRANS)
    for i, (la, lb, lc, (ta, tb)) in enumerate(cases):
        m, n, k = STRIDED_SHAPES[i % len(STRIDED_SHAPES)]
        alpha, beta = ALPHA_BETA[i % len(ALPHA_BETA)]
        nb = (1, 2, 9, 33)[i % 4]
        run_strided_case(rng, target, dtype, m, n, k, nb, ta, tb, alpha, beta, la, lb, lc, threads=1)


@pytest.mark.parametrize("threads", [1, 2])
def test_strided_empty_batch(threads, rng):
    """A batch of 0 entries (numpy gives such arrays all-zero strides) is a no-op, in every layout."""
    for (la, lb, lc), (ta, tb) in itertools.product(
            [("C", "C", "C"), ("F", "bcast", "F"), ("2d", "every2", "Cpad"), ("inter", "2d", "Finter")], TRANS):
        run_strided_case(rng, cpu.target(), np.float64, 5, 3, 4, 0, ta, tb, 2.5, 0.0, la, lb, lc, threads)
    for shape in ((0, 3, 4), (3, 0, 4)):   # no rows or no columns: nothing to do either
        c = np.zeros(shape[:1] + (shape[1], 2))
        smm.gemm_batch(np.zeros(shape), np.zeros(shape[:1] + (4, 2)), c, threads=threads)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_strided_two_threads_equal_one(target, dtype, rng):
    """Bit-identical results with 1 and 2 threads; repeated to catch a partition that drops or
    doubles entries only now and then."""
    layouts = [("C", "C", "C"), ("F", "bcast", "F"), ("2d", "every2", "Cpad"), ("Fpad", "F", "every2"),
               ("inter", "C", "Finter"), ("C", "2d", "inter")]
    for i, ((m, n, k), (ta, tb)) in enumerate(itertools.product(STRIDED_SHAPES, TRANS)):
        alpha, beta = ALPHA_BETA[i % len(ALPHA_BETA)]
        la, lb, lc = layouts[i % len(layouts)]
        nb = MANY + i % 7
        a = make_stack(rng, nb, op_shape(m, k, ta), dtype, la)
        b = make_stack(rng, nb, op_shape(k, n, tb), dtype, lb)
        c0 = make_stack(rng, nb, (m, n), dtype, lc)
        ref, scale = strided_reference(a, b, c0, alpha, beta, ta, tb)
        one = c0.copy()
        smm.gemm_batch(a, b, one, alpha, beta, trans_a=ta, trans_b=tb, threads=1, target=target)
        assert_close(one, ref, scale, dtype, f"strided 1 thread {m}x{n}x{k} {la}/{lb}/{lc}")
        two = c0.copy()
        smm.gemm_batch(a, b, two, alpha, beta, trans_a=ta, trans_b=tb, threads=2, target=target)
        assert np.array_equal(one, two), f"2 threads differ from 1: {m}x{n}x{k} ta={ta} tb={tb} {la}/{lb}/{lc}"


# Products of at least 16384 multiply-adds (m*n*k), where a batch that does not divide evenly among
# the team splits its last entries by columns; n = 7 on 3 threads leaves a last piece of 1 column,
# n = 11 on 5 threads none (no split then).
TAIL_SHAPES = [(25, 27, 26), (64, 64, 64), (40, 9, 50), (33, 17, 31), (5, 80, 41), (12, 7, 200), (100, 100, 3),
               (40, 11, 50)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_strided_uneven_tail_split_by_columns(target, dtype, rng):
    """Batches of few large products on 2, 3 and 5 threads (the entries left over after an even share
    are computed by columns on every thread): the bits equal one thread's and those of the same call
    without the split, and nothing outside the C matrices changes."""
    layouts = [("C", "C", "C"), ("F", "bcast", "F"), ("2d", "every2", "Cpad"), ("Fpad", "F", "every2"),
               ("inter", "C", "Finter"), ("C", "2d", "inter")]
    assert smm._split_tail() is True
    for i, ((m, n, k), (ta, tb), nb) in enumerate(itertools.product(TAIL_SHAPES, TRANS, (1, 3, 5))):
        alpha, beta = ALPHA_BETA[(5 * i) % len(ALPHA_BETA)]
        la, lb, lc = layouts[i % len(layouts)]
        threads = (2, 3, 5)[i % 3]
        a = make_stack(rng, nb, op_shape(m, k, ta), dtype, la)
        b = make_stack(rng, nb, op_shape(k, n, tb), dtype, lb)
        c0 = make_stack(rng, nb, (m, n), dtype, lc)
        owner = c0.base if c0.base is not None else c0
        owner0 = owner.copy()
        ref, scale = strided_reference(a, b, c0, alpha, beta, ta, tb)
        what = f"{m}x{n}x{k} batch={nb} ta={ta} tb={tb} {la}/{lb}/{lc} alpha={alpha} beta={beta}"
        outs = {}
        for key, t, split in (("one", 1, True), ("split", threads, True), ("whole", threads, False)):
            owner[...] = owner0
            smm._split_tail(split)
            try:
                smm.gemm_batch(a, b, c0, alpha, beta, trans_a=ta, trans_b=tb, threads=t, target=target)
            finally:
                smm._split_tail(True)
            outs[key] = owner.copy()
        got = c0.copy()
        assert_close(got, ref, scale, dtype, f"strided split tail {target} {what}")
        owner[...] = owner0
        c0[...] = got
        assert np.array_equal(owner, outs["split"]), f"{what}: wrote outside the C matrices"
        assert np.array_equal(outs["split"], outs["one"]), f"{threads} threads differ from 1: {what}"
        assert np.array_equal(outs["split"], outs["whole"]), f"the split changed the bits: {what}"


@pytest.mark.parametrize("target", TARGETS)
def test_strided_prefetch_does_not_change_results(target, rng):
    for (m, n, k), threads in itertools.product([(5, 5, 5), (13, 7, 9), (23, 23, 23), (48, 41, 44)], (1, 2)):
        a = make_stack(rng, MANY, (m, k), np.float64, "C")
        b = make_stack(rng, MANY, (k, n), np.float64, "F")
        c0 = make_stack(rng, MANY, (m, n), np.float64, "C")
        c1, c2 = c0.copy(), c0.copy()
        smm.gemm_batch(a, b, c1, 2.5, -0.5, threads=threads, target=target, prefetch="none")
        smm.gemm_batch(a, b, c2, 2.5, -0.5, threads=threads, target=target, prefetch="auto")
        assert np.array_equal(c1, c2)


def test_strided_auto_prefetch_when_a_product_outgrows_half_of_l1(rng):
    """prefetch="auto" in the strided form: off while one product's operands fit in half of L1 (the
    hardware prefetchers follow the stacks' streams), on beyond."""
    l1 = cpu.cache_bytes(1)
    small = max(s for s in range(1, 200) if 3 * s * s * 8 <= l1 // 2)
    big = small + 1
    for s in (small, big):
        a, b, c = (rng.standard_normal((3, s, s)) for _ in range(3))
        ref = 0.625 * (a @ b) + c
        smm.gemm_batch(a, b, c, 0.625, 1.0, threads=1)   # an alpha no other test uses: our descriptors
        np.testing.assert_allclose(c, ref, rtol=1e-12, atol=1e-12)
    used = {(d["m"], d["prefetch"]) for d in smm.registry_stats(per_shape=True)["per_shape"]
            if d["m"] == d["n"] == d["k"] and d["m"] in (small, big) and d["alpha"] == 0.625 and d["beta"] == 1}
    assert (small, 0) in used and (big, 1) in used, used


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 40), nb=st.integers(1, 80),
       trans=st.sampled_from(TRANS), ab=st.sampled_from(ALPHA_BETA),
       layouts=st.tuples(st.sampled_from(AB_LAYOUTS), st.sampled_from(AB_LAYOUTS), st.sampled_from(C_LAYOUTS)),
       target=st.sampled_from(list(cpu.available_targets())), threads=st.sampled_from([1, 2]),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**32 - 1))
def test_strided_property(m, n, k, nb, trans, ab, layouts, target, threads, dtype, seed):
    run_strided_case(np.random.default_rng(seed), target, dtype, m, n, k, nb, *trans, *ab, *layouts, threads)


def test_strided_numpy_fortran_ordered_stacks(rng):
    """np.asfortranarray of a 3-D stack puts the batch axis innermost: no matrix has a unit-stride
    axis. gemm_batch must either compute it right or refuse it with a ValueError naming the operand."""
    a = np.asfortranarray(rng.standard_normal((40, 3, 4)))
    b = np.asfortranarray(rng.standard_normal((40, 4, 2)))
    for name, args in (("a", (a, b.copy(), np.zeros((40, 3, 2)))),
                       ("c", (a.copy(order="C"), b.copy(order="C"), np.asfortranarray(np.zeros((40, 3, 2)))))):
        try:
            smm.gemm_batch(*args, threads=2)
        except ValueError as e:
            assert f"{name}:" in str(e) or f"{name} " in str(e), e
        else:
            assert np.allclose(args[2], np.matmul(args[0], args[1]), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- index form

def block(buf, off, rows, cols, ld):
    """The column-major rows x cols block at element `off` of a flat buffer (a view)."""
    return np.ndarray((rows, cols), buf.dtype, buf, off * buf.itemsize, (buf.itemsize, ld * buf.itemsize))


class IndexProblem:
    """Flat buffers and index arrays of an index-form batch, and its sequential reference."""

    def __init__(self, rng, dtype, m, n, k, nb, *, nc, ta=False, tb=False, pads=(0, 0, 0), integer=True,
                 c_layout="blocks", order="random"):
        self.m, self.n, self.k, self.ta, self.tb = m, n, k, ta, tb
        self.ra, self.ca = op_shape(m, k, ta)
        self.rb, self.cb = op_shape(k, n, tb)
        self.lda, self.ldb = self.ra + pads[0], self.rb + pads[1]
        foot_a = self.lda * (self.ca - 1) + self.ra
        foot_b = self.ldb * (self.cb - 1) + self.rb
        # A and B blocks at arbitrary (overlapping, unaligned) offsets of their buffers.
        self.a = values(rng, foot_a + 3 * nb + 5, dtype, integer)
        self.b = values(rng, foot_b + 2 * nb + 3, dtype, integer)
        self.a_off = rng.integers(0, self.a.size - foot_a + 1, nb)
        self.b_off = rng.integers(0, self.b.size - foot_b + 1, nb)
        if c_layout == "blocks":   # nc separate blocks with gaps between them
            self.ldc = m + pads[2]
            foot_c = self.ldc * (n - 1) + m
            starts = np.cumsum([0] + [foot_c + int(g) for g in rng.integers(0, 4, nc - 1)])
            csize = int(starts[-1]) + foot_c + 2
        else:                      # tiles of one column-major matrix: interleaved, never overlapping
            rows_t = max(1, int(np.sqrt(nc)))
            cols_t = -(-nc // rows_t)
            self.ldc = rows_t * m + pads[2]
            starts = np.array([i * m + j * n * self.ldc for j in range(cols_t) for i in range(rows_t)][:nc])
            csize = self.ldc * n * cols_t
        self.c = values(rng, csize, dtype, integer)
        pick = rng.integers(0, nc, nb)
        if order == "sorted":
            pick = np.sort(pick)
        elif order == "distinct":
            pick = rng.permutation(nc)[:nb]
        elif order == "grouped":   # runs of equal C, runs in random order (a DBCSR-like stack)
            pick = np.repeat(rng.permutation(nc), -(-nb // nc))[:nb]
        self.c_off = starts[pick]

    def indices(self, idx_dtype, base, omit=()):
        out = {}
        for name, off in (("a_index", self.a_off), ("b_index", self.b_off), ("c_index", self.c_off)):
            out[name] = None if name[0] in omit else (off + base).astype(idx_dtype)
        return out

    def offsets(self, omit=()):
        nb = self.c_off.size
        return [np.zeros(nb, np.int64) if name in omit else off
                for name, off in (("a", self.a_off), ("b", self.b_off), ("c", self.c_off))]

    def reference(self, alpha, beta, omit=()):
        """Entries applied one after another in batch order, in float64; and the error scale."""
        c = self.c.astype(np.float64)
        scale = np.abs(c)
        a64, b64 = self.a.astype(np.float64), self.b.astype(np.float64)
        for oa, ob, oc in zip(*self.offsets(omit)):
            opa = block(a64, oa, self.ra, self.ca, self.lda)
            opb = block(b64, ob, self.rb, self.cb, self.ldb)
            opa, opb = (opa.T if self.ta else opa), (opb.T if self.tb else opb)
            cb = block(c, oc, self.m, self.n, self.ldc)
            sb = block(scale, oc, self.m, self.n, self.ldc)
            cb[...] = alpha * (opa @ opb) + beta * cb
            sb[...] = abs(alpha) * (np.abs(opa) @ np.abs(opb)) + abs(beta) * sb
        return c, scale

    def covered(self):
        """Mask of the C buffer's elements that belong to some entry's C block."""
        mask = np.zeros(self.c.size, bool)
        for oc in np.unique(self.c_off):
            block(mask, oc, self.m, self.n, self.ldc)[...] = True
        return mask

    def run(self, alpha, beta, idx_dtype=np.int64, base=0, omit=(), threads=1, target=None, c=None, **kw):
        c = self.c.copy() if c is None else c
        idx = self.indices(idx_dtype, base, omit)
        batch = self.c_off.size if len(omit) == 3 else None
        out = smm.gemm_batch(self.a, self.b, c, alpha, beta, **idx, index_base=base, m=self.m, n=self.n,
                             k=self.k, lda=self.lda, ldb=self.ldb, ldc=self.ldc, trans_a=self.ta, trans_b=self.tb,
                             batch=batch, threads=threads, target=target, **kw)
        assert out is c
        return c


def check_index(problem, got, alpha, beta, omit, dtype, exact, what):
    ref, scale = problem.reference(alpha, beta, omit)
    if exact:
        bad = np.nonzero(got.astype(np.float64) != ref)[0]
        assert bad.size == 0, (f"{what}: {bad.size} elements differ from the sequential result, first at "
                               f"{bad[0]}: got {got[bad[0]]!r}, expected {ref[bad[0]]!r}")
    else:
        assert_close(got, ref, scale, dtype, what)


def exact_for(dtype, alpha, beta, integer):
    """Integer data is exact in any summation order, except for repeated scaling by beta=-0.5
    (fraction bits pile up) in float32."""
    return integer and (beta in (0.0, 1.0) or np.dtype(dtype) == np.float64)


SCENARIOS = {
    # name: (m, n, k, nb, nc, pads, c_layout, order)
    "distinct": (5, 5, 5, MANY, 2 * MANY, (0, 0, 0), "blocks", "distinct"),
    "repeats": (5, 5, 5, MANY, 2 * MANY, (0, 0, 0), "blocks", "random"),
    "few_c_unsorted": (7, 3, 11, 3 * MANY, 3, (0, 0, 0), "blocks", "random"),
    "few_c_sorted": (13, 13, 13, 2 * MANY, 4, (2, 1, 3), "blocks", "sorted"),
    "grouped": (5, 25, 5, 2 * MANY, 9, (0, 0, 0), "blocks", "grouped"),
    "tiles": (4, 6, 8, 2 * MANY, 12, (0, 0, 1), "tiles", "random"),
    "one": (23, 23, 23, 1, 1, (1, 1, 1), "blocks", "random"),
    "two": (9, 2, 17, 2, 1, (0, 0, 0), "blocks", "random"),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_index_uneven_tail_split_by_columns(target, dtype, rng):
    """Index stacks of few large products with distinct C's on 2, 3 and 5 threads (as the strided
    test above: the leftover entries run by columns): bits equal one thread's and those without the
    split, results match the sequential reference, nothing outside the C blocks changes; with
    distinct C's checked and promised (distinct_c=True), both index dtypes and bases."""
    for i, ((m, n, k), (ta, tb), nb) in enumerate(itertools.product(TAIL_SHAPES, TRANS, (1, 3, 5))):
        alpha, beta = ALPHA_BETA[(7 * i) % len(ALPHA_BETA)]
        threads = (2, 3, 5)[i % 3]
        c_layout = ("blocks", "tiles")[i % 2]
        p = IndexProblem(rng, dtype, m, n, k, nb, nc=nb + i % 3, ta=ta, tb=tb, pads=(i % 2, i % 3, 1),
                         integer=False, c_layout=c_layout, order="distinct")
        idx_dtype, base, promise = (np.int32, 0, False) if i % 2 else (np.int64, 1, True)
        what = f"index {m}x{n}x{k} batch={nb} ta={ta} tb={tb} {c_layout} alpha={alpha} beta={beta} threads={threads}"
        one = p.run(alpha, beta, idx_dtype, base, threads=1, target=target)
        check_index(p, one, alpha, beta, (), dtype, False, what)
        outside = ~p.covered()
        assert np.array_equal(one[outside], p.c[outside]), f"{what}: wrote outside the C blocks"
        split = p.run(alpha, beta, idx_dtype, base, threads=threads, target=target, distinct_c=promise)
        smm._split_tail(False)
        try:
            whole = p.run(alpha, beta, idx_dtype, base, threads=threads, target=target, distinct_c=promise)
        finally:
            smm._split_tail(True)
        assert np.array_equal(split, one), f"{threads} threads differ from 1: {what}"
        assert np.array_equal(split, whole), f"the split changed the bits: {what}"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_index_matches_sequential(target, dtype, scenario, rng):
    """int32/int64 x index_base 0/1 x transposes x alpha/beta x threads 1/2 on one scenario."""
    m, n, k, nb, nc, pads, c_layout, order = SCENARIOS[scenario]
    for i, (alpha, beta) in enumerate(ALPHA_BETA):
        ta, tb = TRANS[(i + i // 4) % 4]
        integer = i % 3 != 2
        idx_dtype = (np.int32, np.int64)[i % 2]
        base = (i // 2) % 2
        p = IndexProblem(rng, dtype, m, n, k, nb, nc=nc, ta=ta, tb=tb, pads=pads, integer=integer,
                         c_layout=c_layout, order=order)
        results = {}
        for threads in (1, 2):
            got = p.run(alpha, beta, idx_dtype, base, threads=threads, target=target)
            what = (f"index {scenario} {target} {np.dtype(dtype).name} {m}x{n}x{k} batch={nb} ta={ta} tb={tb} "
                    f"alpha={alpha} beta={beta} {np.dtype(idx_dtype).name} base={base} threads={threads}")
            check_index(p, got, alpha, beta, (), dtype, exact_for(dtype, alpha, beta, integer), what)
            results[threads] = got
        if integer or beta != 1.0 or order == "distinct":
            # Exact sums, or the same kernel calls per C with 1 and 2 threads: bit-identical. (A long
            # run of one C may be split over threads with beta == 1: other rounding, checked above.)
            assert np.array_equal(results[1], results[2]), f"2 threads differ from 1 ({scenario}, i={i})"


@pytest.mark.parametrize("omit", ["a", "b", "c", "ab", "ac", "abc"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_index_omitted_arrays_mean_offset_zero(target, dtype, omit, rng):
    """An omitted index array: the block at offset 0 for every entry (all omitted: `batch` entries)."""
    for i, (alpha, beta) in enumerate(ALPHA_BETA):
        p = IndexProblem(rng, dtype, 6, 5, 7, MANY, nc=5, integer=True)
        for threads in (1, 2):
            got = p.run(alpha, beta, (np.int32, np.int64)[i % 2], i % 2, omit=tuple(omit), threads=threads,
                        target=target)
            check_index(p, got, alpha, beta, tuple(omit), dtype, exact_for(dtype, alpha, beta, True),
                        f"omit={omit} alpha={alpha} beta={beta} threads={threads}")


@pytest.mark.parametrize("idx_dtype", INDEX_DTYPES)
def test_index_batch_of_zero_leaves_c_alone(idx_dtype, rng):
    p = IndexProblem(rng, np.float64, 5, 5, 5, 0, nc=1)
    before = p.c.copy()
    for threads in (1, 2):
        assert np.array_equal(p.run(2.5, 0.0, idx_dtype, threads=threads), before)
    c = before.copy()
    smm.gemm_batch(p.a, p.b, c, 2.5, 0.0, m=5, batch=0)
    assert np.array_equal(c, before)


def test_index_mixed_index_dtypes(rng):
    p = IndexProblem(rng, np.float64, 5, 7, 3, MANY, nc=6)
    idx = p.indices(np.int64, 1)
    idx["b_index"] = idx["b_index"].astype(np.int32)
    c = p.c.copy()
    smm.gemm_batch(p.a, p.b, c, 1.0, 1.0, **idx, index_base=1, m=5, n=7, k=3, threads=2)
    check_index(p, c, 1.0, 1.0, (), np.float64, True, "int64 a/c with int32 b")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_index_race_repeated(target, dtype, rng):
    """Thousands of unsorted entries on 3 C blocks with 2 threads, many times over: every run must
    equal the sequential result exactly (a lost or doubled update changes an integer sum)."""
    # The grouping is ISA-independent: hammer it on the process's path, check the others briefly.
    reps = 60 if target == cpu.target() else 8
    for (m, n, k), beta in (((8, 8, 8), 1.0), ((5, 5, 5), 1.0), ((3, 7, 2), -0.5), ((13, 13, 13), 0.0)):
        p = IndexProblem(rng, dtype, m, n, k, 1500, nc=3, integer=True)
        exact = exact_for(dtype, 1.0, beta, True)
        first = p.run(1.0, beta, threads=1, target=target)
        check_index(p, first, 1.0, beta, (), dtype, exact, f"race reference {m}x{n}x{k} beta={beta}")
        for rep in range(reps):
            got = p.run(1.0, beta, (np.int32, np.int64)[rep % 2], rep % 2, threads=2, target=target)
            assert np.array_equal(got, first), f"2-thread run {rep} differs ({m}x{n}x{k}, beta={beta})"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_index_long_runs_of_large_blocks(target, dtype, rng):
    """Runs of hundreds of products on one C whose A and B blocks together outgrow a quarter of the
    L2 go to the kernel in several batch-reduce calls (fewer than 64 products each); sorted and
    grouped stacks, 1 and 2 threads, prefetch on and off, must give the sequential sums exactly."""
    for (m, n, k), order in (((48, 40, 56), "sorted"), ((64, 64, 64), "grouped"), ((37, 80, 29), "sorted")):
        p = IndexProblem(rng, dtype, m, n, k, 400, nc=2, integer=True, order=order)
        first = p.run(1.0, 1.0, threads=1, target=target)
        check_index(p, first, 1.0, 1.0, (), dtype, True, f"long runs {m}x{n}x{k} {order}")
        for threads, prefetch in itertools.product((1, 2), ("none", "next")):
            got = p.run(1.0, 1.0, threads=threads, target=target, prefetch=prefetch)
            assert np.array_equal(got, first), f"{m}x{n}x{k} {order} threads={threads} prefetch={prefetch}"


@pytest.mark.parametrize("target", TARGETS)
def test_index_distinct_c_promise_and_prefetch(target, rng):
    """distinct_c=True (no grouping) and prefetch on/off give the same bits on distinct C blocks."""
    p = IndexProblem(rng, np.float64, 13, 5, 9, 3 * MANY, nc=4 * MANY, integer=False, order="distinct")
    base = p.run(2.5, -0.5, threads=1, target=target, prefetch="none")
    check_index(p, base, 2.5, -0.5, (), np.float64, False, "distinct C blocks")
    for threads, distinct, prefetch in itertools.product((1, 2), (False, True), ("none", "auto")):
        got = p.run(2.5, -0.5, threads=threads, target=target, distinct_c=distinct, prefetch=prefetch)
        assert np.array_equal(got, base), f"threads={threads} distinct_c={distinct} prefetch={prefetch}"


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 30), n=st.integers(1, 30), k=st.integers(1, 30), nb=st.integers(0, 150),
       nc=st.integers(1, 40), trans=st.sampled_from(TRANS), ab=st.sampled_from(ALPHA_BETA),
       pads=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
       c_layout=st.sampled_from(["blocks", "tiles"]), order=st.sampled_from(["random", "sorted", "grouped"]),
       idx_dtype=st.sampled_from([np.int32, np.int64]), base=st.sampled_from([0, 1]),
       target=st.sampled_from(list(cpu.available_targets())), dtype=st.sampled_from([np.float64, np.float32]),
       seed=st.integers(0, 2**32 - 1))
def test_index_property(m, n, k, nb, nc, trans, ab, pads, c_layout, order, idx_dtype, base, target, dtype, seed):
    p = IndexProblem(np.random.default_rng(seed), dtype, m, n, k, nb, nc=nc, ta=trans[0], tb=trans[1], pads=pads,
                     integer=True, c_layout=c_layout, order=order)
    one = p.run(*ab, idx_dtype, base, threads=1, target=target)
    check_index(p, one, *ab, (), dtype, exact_for(dtype, *ab, True), "property, 1 thread")
    assert np.array_equal(p.run(*ab, idx_dtype, base, threads=2, target=target), one), "2 threads differ"


# ----------------------------------------------------------------------------- NaN / Inf rules

@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_batch_beta_zero_overwrites_nan(target, dtype, threads, rng):
    for (m, n, k), (ta, tb) in itertools.product([(5, 5, 5), (23, 23, 23), (7, 9, 3)], TRANS):
        a = make_stack(rng, MANY, op_shape(m, k, ta), dtype, "C")
        b = make_stack(rng, MANY, op_shape(k, n, tb), dtype, "F")
        ref, scale = strided_reference(a, b, np.zeros((MANY, m, n)), 2.5, 0.0, ta, tb)
        for poison in (np.nan, np.inf):
            c = np.full((MANY, m, n), poison, dtype)
            smm.gemm_batch(a, b, c, 2.5, 0.0, trans_a=ta, trans_b=tb, threads=threads, target=target)
            assert_close(c, ref, scale, dtype, f"strided beta=0 over {poison}")
        p = IndexProblem(rng, dtype, m, n, k, MANY, nc=7, ta=ta, tb=tb)
        p.c[...] = 0.0
        ref, _ = p.reference(1.0, 0.0)
        mask = p.covered()
        for poison in (np.nan, -np.inf):
            got = p.run(1.0, 0.0, threads=threads, target=target, c=np.full_like(p.c, poison))
            assert np.array_equal(got[mask], ref[mask]), f"index beta=0 over {poison} {m}x{n}x{k} ta={ta} tb={tb}"
            assert np.all(np.isnan(got[~mask]) if poison != poison else got[~mask] == poison), "wrote outside C"


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_batch_alpha_zero_ignores_nan(target, dtype, threads, rng):
    for (m, n, k), (ta, tb), beta in itertools.product([(5, 5, 5), (23, 23, 23), (7, 9, 3)], TRANS, BETAS):
        a = np.full((MANY,) + op_shape(m, k, ta), np.nan, dtype)
        b = np.full((MANY,) + op_shape(k, n, tb), np.inf, dtype)
        c0 = make_stack(rng, MANY, (m, n), dtype, "C", integer=True)
        c = c0.copy()
        smm.gemm_batch(a, b, c, 0.0, beta, trans_a=ta, trans_b=tb, threads=threads, target=target)
        assert np.array_equal(c, (beta * c0).astype(dtype)), f"strided alpha=0 beta={beta}"
        p = IndexProblem(rng, dtype, m, n, k, MANY, nc=5, ta=ta, tb=tb)
        p.a[...] = np.nan
        p.b[...] = -np.inf
        got = p.run(0.0, beta, threads=threads, target=target)
        ref = p.c.copy()
        for oc in np.unique(p.c_off):   # each C scaled once per entry that names it
            blk = block(ref, oc, m, n, p.ldc)
            blk *= beta ** int(np.count_nonzero(p.c_off == oc))
        assert np.array_equal(got, ref), f"index alpha=0 beta={beta} {m}x{n}x{k}"


@pytest.mark.parametrize("target", [t for t in cpu.available_targets() if t != "generic"])
@pytest.mark.parametrize("form", ["strided", "index"])
def test_batches_in_cache_run_the_cached_variant(rng, target, form):
    """A batch whose operands fit in the L2 of its threads runs the kernels' cached variant (the tile
    chosen for operands in cache), a larger one the general variant; both compute right, for shapes
    where the two variants differ, with 1 and 2 threads."""
    l2 = cpu.cache_bytes(2)
    shapes = [s for s in [(16, 16, 16), (23, 23, 23), (13, 13, 13), (12, 12, 12), (25, 5, 5), (20, 19, 7),
                          (26, 26, 26), (32, 32, 32)]
              if smm.dispatch(*s, alpha=0.375, target=target).cached_variant["tile"]
              != smm.dispatch(*s, alpha=0.375, target=target).tile
              or smm.dispatch(*s, alpha=0.375, target=target).cached_variant["code_target"]
              != smm.dispatch(*s, alpha=0.375, target=target).code_target]
    if not shapes:
        pytest.skip(f"on {target} the two tile choices agree for these shapes")
    for m, n, k in shapes[:3]:
        per = (m * k + k * n + m * n) * 8
        for threads in (1, 2):
            for nb, regime in ((max(1, l2 // (2 * per)), "cached"), (threads * l2 // per + 8, "any")):
                a, b = rng.standard_normal((nb, k, m)), rng.standard_normal((nb, n, k))
                c = rng.standard_normal((nb, n, m))
                ref = c + 0.375 * np.einsum("eki,ejk->eji", a, b)  # column-major blocks: C_e = A_e B_e
                if form == "strided":  # column-major matrices as Fortran-ordered views
                    smm.gemm_batch(a.transpose(0, 2, 1), b.transpose(0, 2, 1), c.transpose(0, 2, 1), 0.375, 1.0,
                                   threads=threads, target=target)
                else:
                    idx = np.arange(nb, dtype=np.int64)
                    smm.gemm_batch(a.reshape(-1), b.reshape(-1), c.reshape(-1), 0.375, 1.0, a_index=idx * m * k,
                                   b_index=idx * k * n, c_index=idx * m * n, m=m, n=n, k=k, threads=threads,
                                   target=target, distinct_c=True)
                assert smm._last_batch_regime() == regime, (m, n, k, nb, threads, form)
                np.testing.assert_allclose(c, ref, rtol=1e-12, atol=1e-12)


def test_cached_regime_counts_a_shared_operand_once(rng):
    """An operand with batch stride 0 (one matrix for every entry) is counted once when the batch
    decides whether its operands fit in cache, in row-major stacks too (there the operands swap)."""
    l2 = cpu.cache_bytes(2)
    m, n, k = 32, 4, 32  # A far larger than B and C
    nb = int(0.9 * l2) // ((k * n + m * n) * 8)   # B and C fit; A counted nb times would not
    a = rng.standard_normal((m, k))
    b, c = rng.standard_normal((nb, k, n)), rng.standard_normal((nb, m, n))
    for shared_a in (a, np.broadcast_to(a, (nb, m, k))):
        cc = c.copy()
        smm.gemm_batch(shared_a, b, cc, 1.0, 1.0, threads=1)
        assert smm._last_batch_regime() == "cached"
        np.testing.assert_allclose(cc, c + a @ b, rtol=1e-12, atol=1e-12)
    smm.gemm_batch(np.ascontiguousarray(np.broadcast_to(a, (nb, m, k))), b, c.copy(), 1.0, 1.0, threads=1)
    assert smm._last_batch_regime() == "any"  # the same batch with A stored per entry does not fit


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("ta, tb", TRANS)
def test_index_prefetch_on_sequential_and_gathered_blocks(target, ta, tb, rng):
    """Index stacks laid out in order (where the batch skips software prefetches for products that
    fit L1, as the strided form does), in reverse and shuffled (where it prefetches), with padded
    leading dimensions and a shared B: prefetch on and off give the same bits."""
    m, n, k, nb = 7, 5, 6, 300
    lda, ldb = (k if ta else m) + 3, (n if tb else k) + 2
    ca, cb = (m if ta else k), (k if tb else n)
    a = rng.standard_normal(nb * lda * ca)
    b = rng.standard_normal(nb * ldb * cb)
    seq = np.arange(nb, dtype=np.int64)
    for order in (seq, seq[::-1].copy(), rng.permutation(nb)):
        for b_index in (order * (ldb * cb), None):
            outs = []
            for prefetch in ("none", "next", "auto"):
                c = np.zeros(nb * m * n)
                smm.gemm_batch(a, b, c, 1.5, 0.0, m=m, n=n, k=k, lda=lda, ldb=ldb, trans_a=ta, trans_b=tb,
                               a_index=order * (lda * ca), b_index=b_index, c_index=seq * (m * n),
                               threads=1, target=target, prefetch=prefetch, distinct_c=True)
                outs.append(c)
            opa = lambda i: a[i * lda * ca:(i + 1) * lda * ca].reshape(ca, lda).T[:(k if ta else m)]  # noqa: E731
            opb = lambda i: b[i * ldb * cb:(i + 1) * ldb * cb].reshape(cb, ldb).T[:(n if tb else k)]  # noqa: E731
            for e in (0, nb // 2, nb - 1):
                i = order[e]
                pa = opa(i).T if ta else opa(i)
                pb = (opb(i) if b_index is not None else opb(0))
                pb = pb.T if tb else pb
                ref = 1.5 * pa @ pb
                got = outs[0][e * m * n:(e + 1) * m * n].reshape(n, m).T
                np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
            assert all(np.array_equal(o, outs[0]) for o in outs[1:])


@pytest.mark.parametrize("target", [t for t in cpu.available_targets() if t != "generic"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_strided_form_of_the_smallest_kernels(rng, target, dtype):
    """Specialised shapes up to m*n*k = 512 run a strided batch in one kernel call (the loop inside
    the kernel), and from 2000 to 13824 (13^3 to 24^3; on the AVX2 code from 513 on) do so for
    batches that fit in cache: the same bits as one call per product (prefetch='next' takes that
    path), and numpy's result, for both regimes, alpha/beta edge cases, transposes, orders and
    thread counts."""
    small = [(1, 1, 1), (2, 2, 2), (3, 3, 3), (4, 4, 4), (5, 5, 5), (7, 7, 7), (8, 8, 8)]
    for s in small:
        assert smm.dispatch(*s, dtype=dtype, target=target).strided, s
        assert smm.dispatch(*s, dtype=dtype, target=target).cached_variant["strided"], s
    for s in [(13, 13, 13), (16, 16, 16), (23, 23, 23), (5, 25, 25), (24, 24, 24)]:   # cached batches only
        assert not smm.dispatch(*s, dtype=dtype, target=target).strided, s
        assert smm.dispatch(*s, dtype=dtype, target=target).cached_variant["strided"], s
    for s in [(9, 9, 9), (10, 10, 8), (12, 12, 12)]:   # in [513, 2000): on the AVX2 code only
        cv = smm.dispatch(*s, dtype=dtype, target=target).cached_variant
        assert cv["strided"] == (cv["code_target"] == "avx2"), (s, cv)
    for s in [(26, 26, 26), (64, 64, 64)]:   # above 13824
        assert not smm.dispatch(*s, dtype=dtype, target=target).cached_variant["strided"], s
    assert not smm.dispatch(4, 4, 4, dtype=dtype, target=target, lda=5).strided       # not tight
    tol = 1e-12 if dtype == np.float64 else 1e-5
    l2 = cpu.cache_bytes(2)
    for m, n, k in [(4, 4, 4), (5, 5, 5), (3, 3, 3), (8, 8, 8), (1, 1, 1), (16, 16, 16), (13, 13, 13),
                    (5, 25, 25), (23, 23, 23), (9, 9, 9), (5, 25, 5)]:
        per = (m * k + k * n + m * n) * np.dtype(dtype).itemsize
        for nb in (0, 1, 37, 3 * l2 // per + 5):  # the last is beyond L2: the general variant
            for alpha, beta, ta, tb, order in [(1.0, 1.0, False, False, "F"), (2.5, -0.5, True, False, "F"),
                                               (-1.0, 0.0, False, False, "C"), (0.0, 1.0, False, False, "F"),
                                               (1.0, 0.0, True, True, "C"),
                                               (1.0, 2.5, False, False, "F")]:  # beta outside {0, 1}: C scaled first
                a = rng.standard_normal((nb, k, m) if ta else (nb, m, k)).astype(dtype)
                b = rng.standard_normal((nb, n, k) if tb else (nb, k, n)).astype(dtype)
                c0 = rng.standard_normal((nb, m, n)).astype(dtype)
                if nb:
                    if alpha == 0.0:
                        a[0, 0, 0] = b[-1, 0, 0] = np.nan  # not read
                    if beta == 0.0:
                        c0[0, 0, 0] = c0[-1, -1, -1] = np.nan  # overwritten
                opa = np.swapaxes(a, 1, 2) if ta else a
                opb = np.swapaxes(b, 1, 2) if tb else b
                with np.errstate(invalid="ignore"):
                    ref = (alpha * np.matmul(opa.astype(np.float64), opb.astype(np.float64)) if alpha
                           else np.zeros((nb, m, n))) + (beta * c0 if beta else 0.0)
                conv = (lambda x: np.asfortranarray(x.transpose(1, 2, 0)).transpose(2, 0, 1)) if order == "F" \
                    else np.ascontiguousarray
                results = []
                for threads in (1, 2):
                    for prefetch in ("none", "next"):
                        c = conv(c0.copy())
                        smm.gemm_batch(conv(a), conv(b), c, alpha, beta, trans_a=ta, trans_b=tb, threads=threads,
                                       prefetch=prefetch, target=target)
                        results.append(np.array(c))
                for r in results[1:]:
                    assert np.array_equal(r, results[0]), (m, n, k, nb, alpha, beta, ta, tb, order)
                np.testing.assert_allclose(results[0], ref, rtol=tol, atol=tol * max(1.0, k))


@pytest.mark.parametrize("target", [t for t in cpu.available_targets() if t != "generic"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_index_form_gathers_products_into_the_strided_form(rng, target, dtype):
    """Without prefetch, index-form products that are not batch-reduced run, up to 64 per call, in
    the strided form's gather mode (pointer arrays; SMM_GATHER). Mixed with batch-reduced runs,
    split runs, C repeated out of order and beta outside {0, 1} (C scaled once per product, in
    batch order), in cache and beyond it, on 1 and 2 threads: the same bits as one kernel call per
    product on as many threads (prefetch='next' gathers only products whose next entry's blocks
    follow theirs, which the random offsets here seldom do; test_index_prefetch_on_sequential_and_
    gathered_blocks covers stacks in order), and the sequential result. (Across thread counts the
    bits may differ: 2 threads group repeated C's, and batch-reduce them.)"""
    l2 = cpu.cache_bytes(2)
    cases = [((4, 4, 4), "distinct", 150), ((5, 5, 5), "random", 150), ((8, 8, 8), "grouped", 200),
             ((13, 13, 13), "distinct", 70), ((23, 23, 23), "random", 40), ((5, 25, 5), "grouped", 130),
             ((9, 9, 9), "distinct", 65), ((12, 12, 12), "sorted", 90),
             ((4, 4, 4), "distinct", 3 * l2 // (16 * np.dtype(dtype).itemsize) + 5)]   # C beyond 2 L2s
    for (m, n, k), order, nb in cases:
        kern = smm.dispatch(m, n, k, dtype=dtype, target=target)
        gathers = kern.cached_variant["strided"] or kern.strided
        if m * n * k <= 512:
            assert kern.strided and kern.cached_variant["strided"], (m, n, k)
        nc = {"distinct": nb, "random": nb // 2, "grouped": nb // 5, "sorted": nb // 3}[order]
        p = IndexProblem(rng, dtype, m, n, k, nb, nc=nc, integer=False, order=order)
        # the bytes the library counts: each buffer, at most the blocks its index array can reach
        touched = sum(min(x.nbytes, nb * r * c * x.itemsize) for x, r, c in ((p.a, m, k), (p.b, k, n), (p.c, m, n)))
        for alpha, beta in [(1.0, 1.0), (2.5, -0.5), (0.0, 1.0), (-1.0, 0.0), (1.0, 2.5)]:
            for threads in (1, 2):
                results = []
                for prefetch in ("none", "next"):
                    results.append(p.run(alpha, beta, threads=threads, target=target, prefetch=prefetch,
                                         distinct_c=order == "distinct"))
                    assert smm._last_batch_regime() == ("cached" if touched <= threads * l2 else "any"), \
                        (m, n, k, nb, threads)
                what = f"{(m, n, k)} {order} nb={nb} alpha={alpha} beta={beta} threads={threads} gathers={gathers}"
                assert np.array_equal(results[0], results[1]), what
                check_index(p, results[0], alpha, beta, (), dtype, False, what)


@pytest.mark.parametrize("target", [t for t in cpu.available_targets() if t != "generic"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adder_update_kernels_every_beta(rng, target, dtype):
    """Kernels whose tiles add C (SMM_ADD_UPDATE: 2x12; SMM_ADD_UPDATE_CACHED: on AVX2 the
    strided forms only cached batches run) scale C first for beta outside {0, 1}; every beta
    class against numpy, on shapes with row and column remainders, in the cached variant (small
    batches) and the general one, strided and index forms, 1 and 2 threads."""
    shapes = [(8, 8, 8), (12, 12, 12), (13, 13, 13), (16, 16, 16), (23, 23, 23), (17, 13, 9), (24, 12, 5),
              (31, 25, 16), (5, 5, 25)]
    if target == "avx512" and dtype == np.float64:
        # The path under test is reached: 2x12 is the cached pick of these shapes here.
        assert any(smm.dispatch(*s, dtype=dtype, target=target).cached_variant["tile"] == (2, 12)
                   for s in shapes)
    # ... and on AVX2 code: specialised shapes above 512 multiply-adds have a cached-only strided form.
    for s in [(12, 12, 12), (13, 13, 13), (16, 16, 16), (23, 23, 23), (5, 5, 25)]:
        cv = smm.dispatch(*s, dtype=dtype, target=target).cached_variant
        assert cv["code_target"] != "avx2" or cv["strided"], (s, cv)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for m, n, k in shapes:
        for beta in (2.5, -0.5, 1.0, 0.0):
            for nb, threads in ((5, 1), (40, 2)):
                a = rng.standard_normal((nb, k, m)).astype(dtype).transpose(0, 2, 1)
                b = rng.standard_normal((nb, n, k)).astype(dtype).transpose(0, 2, 1)
                c0 = rng.standard_normal((nb, n, m)).astype(dtype).transpose(0, 2, 1)
                if beta == 0.0:
                    c0[:, 0, 0] = np.nan  # overwritten, never read
                ref = 1.5 * np.matmul(a.astype(np.float64), b.astype(np.float64))
                if beta:
                    ref += beta * c0.astype(np.float64)
                c = c0.copy(order="K")
                smm.gemm_batch(a, b, c, 1.5, beta, target=target, threads=threads)
                assert np.max(np.abs(c - ref)) <= tol * max(1.0, np.max(np.abs(ref))), (m, n, k, beta, nb)
                # Index form on the same column-major blocks: C blocks repeat (entries i, i + 1
                # share one), applied in order.
                af = np.ascontiguousarray(a.transpose(0, 2, 1)).reshape(-1)
                bf = np.ascontiguousarray(b.transpose(0, 2, 1)).reshape(-1)
                cf = np.ascontiguousarray(c0.transpose(0, 2, 1)).reshape(-1)
                ic = (np.arange(nb) // 2) * (m * n)
                want = cf.astype(np.float64).copy()
                for e in range(nb):
                    blk = want[ic[e]:ic[e] + m * n].reshape(n, m).T
                    blk[...] = 1.5 * (a[e].astype(np.float64) @ b[e].astype(np.float64)) + (beta * blk if beta else 0.0)
                smm.gemm_batch(af, bf, cf, 1.5, beta, a_index=np.arange(nb) * (m * k),
                               b_index=np.arange(nb) * (k * n), c_index=ic, m=m, n=n, k=k,
                               target=target, threads=threads)
                used = cf[:((nb - 1) // 2 + 1) * m * n]
                assert np.max(np.abs(used - want[:used.size])) <= 10 * tol * max(1.0, np.max(np.abs(want))), \
                    ("index", m, n, k, beta, nb)


TEAM_CHILD = r"""
import numpy as np
from core import smm
rng = np.random.default_rng(5)
m, n, k, nb = 7, 6, 5, 101
a = rng.integers(-3, 4, (nb, m, k)).astype(float)
b = rng.integers(-3, 4, (nb, k, n)).astype(float)
c = np.zeros((nb, m, n))
smm.gemm_batch(a, b, c, threads=2)
assert np.array_equal(c, a @ b), "strided"
af, bf = a.reshape(-1), b.reshape(-1)
ia, ib = np.arange(nb) * (m * k), np.arange(nb) * (k * n)
ref = np.zeros(nb * m * n)
smm.gemm_batch(af, bf, ref, a_index=ia, b_index=ib, c_index=np.arange(nb) * (m * n), m=m, n=n, k=k, threads=1)
for kw in ({"distinct_c": True}, {"sync": "locks"}):
    c = np.zeros(nb * m * n)
    smm.gemm_batch(af, bf, c, a_index=ia, b_index=ib, c_index=np.arange(nb) * (m * n), m=m, n=n, k=k,
                   threads=2, **kw)
    assert np.array_equal(c, ref), kw
print("OK")
"""


@pytest.mark.parametrize("limit", ["1", "2"])
def test_team_smaller_than_asked_covers_every_entry(limit):
    """The threads split a batch by the team OpenMP gives: with OMP_THREAD_LIMIT=1 a call asking for
    2 threads gets one, which must still run every entry (strided, distinct index, locked)."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, OMP_THREAD_LIMIT=limit,
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", TEAM_CHILD], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "OK", proc.stderr[-2000:]
