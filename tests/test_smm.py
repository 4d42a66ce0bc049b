"""core.smm single products against numpy: every ISA path this CPU runs x float64/float32, shapes
1..80 (every size as m, n and k, primes, register-tile remainders), leading dimensions larger than
the rows, alpha in {0, 1, -1, 2.5}, beta in {0, 1, -0.5}, both transposes; through
``dispatch(...)(a, b, c)`` and ``gemm`` (C/F order, strided views, row-major); the specialised
(SMM_MNK) kernels and the runtime-sized ones; NaN/Inf rules for beta == 0 and alpha == 0; and
operands that end or start at an unmapped page (no access outside a matrix, run in a child)."""
import itertools
import os
import re
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import cpu
from core import smm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 20261126
TARGETS = [pytest.param(t, marks=pytest.mark.skipif(t not in cpu.available_targets(),
                                                    reason=f"this CPU does not run the {t} path"))
           for t in cpu.ISA_NAMES]
SIMD_TARGETS = [p for p in TARGETS if p.values[0] != "generic"]
DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]
TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
TRANSPOSES = [pytest.param(ta, tb, id=f"ta{int(ta)}tb{int(tb)}") for ta in (False, True) for tb in (False, True)]
ALPHAS = (0.0, 1.0, -1.0, 2.5)
BETAS = (0.0, 1.0, -0.5)
ALPHA_BETA = list(itertools.product(ALPHAS, BETAS))
PRIMES = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79]
# Every size 1..80 shows up as m, as n and as k (7 and 13 are coprime to 80), in varied company.
SWEEP = [(m, (7 * m) % 80 + 1, (13 * m) % 80 + 1) for m in range(1, 81)]
# Benchmark shapes, primes, and sizes one above/below the vector and tile widths of every path.
NOTABLE = ([(s, s, s) for s in (4, 5, 8, 13, 16, 23, 32, 64)] + [(5, 25, 5), (25, 5, 5), (5, 5, 25)]
           + [(p, q, r) for p, q, r in zip(PRIMES, PRIMES[5:] + PRIMES[:5], PRIMES[11:] + PRIMES[:11])]
           + [(1, 1, 1), (1, 80, 1), (80, 1, 80), (80, 80, 80), (7, 9, 1), (15, 17, 31), (33, 25, 47),
              (49, 13, 2), (63, 65, 3), (17, 12, 16), (9, 6, 8), (3, 24, 5)])
BENCH_SHAPES = [(s, s, s) for s in (4, 5, 8, 13, 16, 23, 32, 64)] + [(5, 25, 5), (25, 5, 5), (5, 5, 25)]


@pytest.fixture
def rng():
    return np.random.default_rng(SEED)


def op_shape(rows, cols, trans):
    return (cols, rows) if trans else (rows, cols)


def padded_fortran(rng, rows, cols, ld, dtype):
    """A Fortran-order rows x cols view of an ld x cols array (ld >= rows), random values, and its base."""
    base = np.asfortranarray(rng.standard_normal((ld, cols)).astype(dtype))
    return base[:rows], base


def reference(a, b, c, alpha, beta, ta, tb):
    """alpha*op(a)@op(b) + beta*c in float64, and the scale the rounding error is relative to."""
    opa = (a.T if ta else a).astype(np.float64)
    opb = (b.T if tb else b).astype(np.float64)
    c64 = c.astype(np.float64)
    ref = alpha * (opa @ opb) + beta * c64
    scale = abs(alpha) * (np.abs(opa) @ np.abs(opb)) + abs(beta) * np.abs(c64)
    return ref, scale


def assert_close(got, ref, scale, dtype, what):
    """|got - ref| <= tol * (|alpha| |op(A)| |op(B)| + |beta| |C|), element by element."""
    dtype = np.dtype(dtype)
    tol = TOL[dtype]
    err = np.abs(got.astype(np.float64) - ref)
    bound = tol * scale + np.finfo(dtype).tiny
    bad = ~(err <= bound)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        rel = float(np.max(err / np.where(scale > 0, scale, 1.0)))
        pytest.fail(f"{what}: {int(bad.sum())} of {bad.size} elements off, first at ({i}, {j}): "
                    f"got {got[i, j]!r}, expected {ref[i, j]!r}; max relative error {rel:.3g} > {tol:g}")


# ----------------------------------------------------------------------------- dispatch(...)(a, b, c)

def run_kernel_case(rng, target, dtype, m, n, k, ta, tb, alpha, beta, pads):
    """One kernel call on padded Fortran operands; checks the result and that padding is untouched."""
    ra, ca = op_shape(m, k, ta)
    rb, cb = op_shape(k, n, tb)
    lda, ldb, ldc = ra + pads[0], rb + pads[1], m + pads[2]
    a, _ = padded_fortran(rng, ra, ca, lda, dtype)
    b, _ = padded_fortran(rng, rb, cb, ldb, dtype)
    c, cbase = padded_fortran(rng, m, n, ldc, dtype)
    before = cbase.copy()
    ref, scale = reference(a, b, c, alpha, beta, ta, tb)
    kern = smm.dispatch(m, n, k, lda=lda, ldb=ldb, ldc=ldc, alpha=alpha, beta=beta, dtype=dtype,
                        trans_a=ta, trans_b=tb, target=target)
    assert kern.target == target
    kern(a, b, c)
    what = (f"{target} {np.dtype(dtype).name} {m}x{n}x{k} ta={ta} tb={tb} alpha={alpha} beta={beta} "
            f"ld=({lda},{ldb},{ldc}) tile={kern.tile} specialized={kern.specialized}")
    assert_close(c, ref, scale, dtype, what)
    assert np.array_equal(cbase[m:], before[m:]), f"{what}: wrote past the m rows of C (into ldc padding)"


@pytest.mark.parametrize("ta,tb", TRANSPOSES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_dispatch_matches_numpy_over_shapes(target, dtype, ta, tb, rng):
    """Every size 1..80 and the notable shapes; alpha/beta and padded/tight leading dimensions vary
    with the shape so that each combination meets many shapes."""
    for i, (m, n, k) in enumerate(SWEEP + NOTABLE):
        alpha, beta = ALPHA_BETA[i % len(ALPHA_BETA)]
        pads = (0, 0, 0) if i % 3 == 0 else (1 + i % 5, 1 + i % 3, 1 + i % 4)
        run_kernel_case(rng, target, dtype, m, n, k, ta, tb, alpha, beta, pads)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_dispatch_alpha_beta_grid(target, dtype, rng):
    """The full alpha x beta x transposes grid on shapes with and without remainders."""
    for (m, n, k), (alpha, beta), (ta, tb) in itertools.product(
            [(5, 5, 5), (23, 23, 23), (7, 13, 9), (17, 80, 3), (32, 31, 33), (1, 1, 1)],
            ALPHA_BETA, itertools.product((False, True), repeat=2)):
        for pads in ((0, 0, 0), (3, 1, 2)):
            run_kernel_case(rng, target, dtype, m, n, k, ta, tb, alpha, beta, pads)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_kernel_takes_flat_buffers(target, dtype, rng):
    """1-D contiguous buffers of ld*(cols-1)+rows elements (the tight minimum) are operands too."""
    m, n, k, lda, ldb, ldc = 7, 5, 3, 9, 4, 8
    kern = smm.dispatch(m, n, k, lda=lda, ldb=ldb, ldc=ldc, alpha=2.5, beta=-0.5, dtype=dtype, target=target)
    a = rng.standard_normal(lda * (k - 1) + m).astype(dtype)
    b = rng.standard_normal(ldb * (n - 1) + k).astype(dtype)
    c = rng.standard_normal(ldc * (n - 1) + m).astype(dtype)
    view = lambda x, rows, cols, ld: np.lib.stride_tricks.as_strided(x, (rows, cols), (x.itemsize, ld * x.itemsize))
    ref, scale = reference(view(a, m, k, lda), view(b, k, n, ldb), view(c, m, n, ldc), 2.5, -0.5, False, False)
    gap = [c[j * ldc + m:(j + 1) * ldc].copy() for j in range(n - 1)]
    kern(a, b, c)
    assert_close(view(c, m, n, ldc), ref, scale, dtype, "flat buffers")
    for j in range(n - 1):
        assert np.array_equal(c[j * ldc + m:(j + 1) * ldc], gap[j]), "wrote between the columns of C"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_dispatch_beyond_80(target, dtype, rng):
    """Past the tested range: the portable kernel's 256-row blocks, a transposed A at and past
    the 8192-element pack panel, long k."""
    for (m, n, k), (ta, tb) in itertools.product(
            [(128, 3, 64), (64, 5, 128), (8192, 1, 1), (1, 2, 8192), (257, 3, 5), (513, 2, 300), (91, 92, 93)],
            [(False, False), (True, False), (False, True), (True, True)]):
        run_kernel_case(rng, target, dtype, m, n, k, ta, tb, 2.5, -0.5, (1, 0, 2))


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 80), n=st.integers(1, 80), k=st.integers(1, 80),
       ta=st.booleans(), tb=st.booleans(), alpha=st.sampled_from(ALPHAS), beta=st.sampled_from(BETAS),
       pads=st.tuples(st.integers(0, 9), st.integers(0, 9), st.integers(0, 9)),
       target=st.sampled_from(list(cpu.available_targets())),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**32 - 1))
def test_dispatch_property(m, n, k, ta, tb, alpha, beta, pads, target, dtype, seed):
    run_kernel_case(np.random.default_rng(seed), target, dtype, m, n, k, ta, tb, alpha, beta, pads)


# ----------------------------------------------------------------------------- specialised kernels

def built_specialized_shapes(regime="any"):
    """(isa id, dtype id) -> set of (m, n, k) from the generated table the library was built with:
    the kernels of one tile choice, "any" (Kernel's code) or "cached" (its cached variant)."""
    path = os.path.join(ROOT, "core", "src", "smm", "specialized_gen.c")
    bit = {"any": 1, "cached": 2}[regime]
    table = {}
    with open(path) as f:
        for isa, dt, _mv, _nr, regimes, m, n, k in re.findall(
                r"\{(\d+), (\d+), (\d+), (\d+), (\d+), (\d+), (\d+), (\d+), smm_\w+_spec_\w+\}", f.read()):
            if int(regimes) & bit:
                table.setdefault((int(isa), int(dt)), set()).add((int(m), int(n), int(k)))
    return table



def test_default_smm_mnk_covers_the_benchmark_shapes(smm_generator):
    """The issue: the default SMM_MNK list covers the shapes of the benchmark list."""
    gen = smm_generator
    default = set(gen.parse_mnk(gen.DEFAULT_MNK))
    missing = [s for s in BENCH_SHAPES if s not in default]
    assert not missing, f"DEFAULT_MNK lacks benchmark shapes {missing}"


def test_smm_mnk_parsing_follows_libxsmm(smm_generator):
    gen = smm_generator
    assert gen.parse_mnk("23") == [(23, 23, 23)]
    assert set(gen.parse_mnk("5 25")) == set(itertools.product((5, 25), repeat=3))
    assert gen.parse_mnk("4x5x6, 7_8_9") == [(4, 5, 6), (7, 8, 9)]
    with pytest.raises(SystemExit):
        gen.parse_mnk("5 x")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", SIMD_TARGETS)
def test_specialized_kernels(target, dtype, rng, smm_generator):
    """Every shape of the built SMM_MNK table gets its unrolled kernel (with the Python model's
    tile) for tight leading dimensions, with or without trans_a, and computes right; padded
    leading dimensions and trans_b get a runtime kernel. The AVX-512 path may run AVX2 code for a
    shape (Kernel.code_target): the table of that code's ISA decides."""
    gen = smm_generator
    dt_name = "f64" if np.dtype(dtype) == np.float64 else "f32"
    dt_id = 0 if dt_name == "f64" else 1
    table = built_specialized_shapes()
    table_c = built_specialized_shapes("cached")
    paths = [t for t in cpu.available_targets() if t != "generic" and cpu.isa_id(t) <= cpu.isa_id(target)]
    shapes = set().union(*(table.get((cpu.isa_id(t), dt_id), set()) for t in paths))
    for shape in ((23, 23, 23), (5, 25, 5)):
        assert smm.dispatch(*shape, dtype=dtype, target=target).specialized, f"{shape} should be specialized"
    for i, (m, n, k) in enumerate(sorted(shapes)):
        for ta in (False, True):
            alpha, beta = ALPHA_BETA[(i + ta) % len(ALPHA_BETA)]
            kern = smm.dispatch(m, n, k, alpha=alpha, beta=beta, dtype=dtype, trans_a=ta, target=target)
            if ta and m * k > 8192:
                assert kern.tile == (0, 0)  # a transposed A that large is not packed: portable code
                continue
            built = (m, n, k) in table.get((cpu.isa_id(kern.code_target), dt_id), set())
            assert kern.specialized == built, f"{kern!r}: specialized should be {built}"
            if built:
                assert kern.tile == gen.select_tile(kern.code_target, dt_name, m, n, k)
            cv = kern.cached_variant  # the tile chosen for operands in cache: its own table entry
            built_c = (m, n, k) in table_c.get((cpu.isa_id(cv["code_target"]), dt_id), set())
            assert cv["specialized"] == built_c, f"{kern!r}: cached variant {cv}"
            if built_c:
                assert cv["tile"] == gen.select_tile(cv["code_target"], dt_name, m, n, k, "cached")
            run_kernel_case(rng, target, dtype, m, n, k, ta, False, alpha, beta, (0, 0, 0))
        assert not smm.dispatch(m, n, k, ldc=m + 1, dtype=dtype, target=target).specialized
        assert not smm.dispatch(m, n, k, trans_b=True, dtype=dtype, target=target).specialized
        assert not smm.dispatch(m, n, k, dtype=dtype, target="generic").specialized
    runtime = smm.dispatch(7, 9, 11, dtype=dtype, target=target)
    assert not runtime.specialized and runtime.tile != (0, 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", SIMD_TARGETS)
def test_large_transposed_a_falls_back_to_portable_code(target, dtype, rng):
    """A transposed A bigger than the pack panel runs the generic kernel and still computes right."""
    kern = smm.dispatch(100, 3, 90, trans_a=True, dtype=dtype, target=target)
    assert kern.tile == (0, 0)
    run_kernel_case(rng, target, dtype, 100, 3, 90, True, False, -1.0, 0.0, (0, 0, 0))
    run_kernel_case(rng, target, dtype, 100, 3, 90, True, True, 2.5, -0.5, (2, 1, 3))


# ----------------------------------------------------------------------------- gemm on numpy arrays

def make_operand(rng, shape, dtype, layout):
    """A 2-D array of `shape` stored as `layout`, the array owning its memory, and the mask of the
    owner's elements the view covers. Layouts: 'C', 'F', 'Cpad'/'Fpad' (slice of a bigger array:
    leading dimension > extent, offset start), 'step' (no unit-stride axis: gemm copies it), 'neg'
    (negative strides)."""
    rows, cols = shape
    if layout in ("C", "F"):
        x = np.asarray(rng.standard_normal(shape), dtype=dtype, order=layout)
        return x, x, np.ones(shape, bool)
    if layout in ("Cpad", "Fpad"):
        big = np.asarray(rng.standard_normal((rows + 3, cols + 2)), dtype=dtype, order=layout[0])
        sel = (slice(2, rows + 2), slice(1, cols + 1))
    elif layout == "step":
        big = np.asarray(rng.standard_normal((2 * rows, 3 * cols)), dtype=dtype)
        sel = (slice(None, None, 2), slice(None, None, 3))
    elif layout == "neg":
        big = np.asarray(rng.standard_normal(shape), dtype=dtype)
        sel = (slice(None, None, -1), slice(None, None, -1))
    else:
        raise AssertionError(layout)
    mask = np.zeros(big.shape, bool)
    mask[sel] = True
    return big[sel], big, mask


LAYOUTS = ["C", "F", "Cpad", "Fpad"]


def run_gemm_case(rng, target, dtype, m, n, k, ta, tb, alpha, beta, la, lb, lc):
    a, _, _ = make_operand(rng, op_shape(m, k, ta), dtype, la)
    b, _, _ = make_operand(rng, op_shape(k, n, tb), dtype, lb)
    c, owner, mask = make_operand(rng, (m, n), dtype, lc)
    before = owner.copy()
    ref, scale = reference(a, b, c, alpha, beta, ta, tb)
    out = smm.gemm(a, b, c, alpha, beta, ta, tb, target=target)
    assert out is c
    what = (f"gemm {target} {np.dtype(dtype).name} {m}x{n}x{k} ta={ta} tb={tb} a={la} b={lb} c={lc} "
            f"alpha={alpha} beta={beta}")
    assert_close(c, ref, scale, dtype, what)
    assert np.array_equal(owner[~mask], before[~mask]), f"{what}: wrote outside the view of C"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_gemm_memory_orders(target, dtype, rng):
    """All C/F orders and padded views of a, b, c, both transposes, several alpha/beta."""
    shapes = [(5, 7, 3), (23, 23, 23), (1, 9, 4), (9, 1, 4), (4, 5, 1), (17, 31, 13)]
    cases = itertools.product(shapes, itertools.product((False, True), repeat=2),
                              itertools.product(LAYOUTS, repeat=3))
    for i, ((m, n, k), (ta, tb), (la, lb, lc)) in enumerate(cases):
        alpha, beta = ALPHA_BETA[i % len(ALPHA_BETA)]
        run_gemm_case(rng, target, dtype, m, n, k, ta, tb, alpha, beta, la, lb, lc)


@pytest.mark.parametrize("layout", ["step", "neg"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_operands_without_unit_stride(layout, dtype, rng):
    """Views with no unit-stride axis (or negative strides) still give the right answer."""
    for (m, n, k), (ta, tb) in itertools.product([(6, 5, 4), (13, 2, 9)], itertools.product((False, True), repeat=2)):
        for la, lb, lc in [(layout, "C", "F"), ("F", layout, "C"), ("C", "F", layout), (layout, layout, layout)]:
            run_gemm_case(rng, cpu.target(), dtype, m, n, k, ta, tb, 2.5, -0.5, la, lb, lc)


@pytest.mark.parametrize("order", ["C", "F", "view"])
def test_gemm_does_not_copy(order, rng):
    """A row-major problem runs as the transposed column-major one: no operand is copied."""
    n = 80
    base = np.asarray(rng.standard_normal((n + 8, n + 8)), order="C" if order == "view" else order)
    a = base[3:n + 3, 5:n + 5] if order == "view" else base[:n, :n].copy(order=order)
    b = np.asarray(rng.standard_normal((n, n)), order="F" if order == "C" else "C")
    c = np.asarray(rng.standard_normal((n, n)), order="C" if order == "view" else order)
    smm.gemm(a, b, c)  # warm: kernel built, registry entry allocated
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        smm.gemm(a, b, c, 1.0, 0.5)
        smm.gemm(a, b, c, 1.0, 0.5, trans_a=True, trans_b=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < a.nbytes // 4, f"gemm allocated {peak} bytes for {a.nbytes}-byte operands (a copy?)"


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 40), ta=st.booleans(), tb=st.booleans(),
       alpha=st.sampled_from(ALPHAS), beta=st.sampled_from(BETAS),
       layouts=st.tuples(*[st.sampled_from(LAYOUTS + ["step", "neg"])] * 3),
       target=st.sampled_from(list(cpu.available_targets())),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**32 - 1))
def test_gemm_property(m, n, k, ta, tb, alpha, beta, layouts, target, dtype, seed):
    run_gemm_case(np.random.default_rng(seed), target, dtype, m, n, k, ta, tb, alpha, beta, *layouts)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_empty_dimensions(dtype):
    """m or n == 0: nothing to do; k == 0: C = beta*C (and beta == 0 clears NaN)."""
    c = np.full((0, 4), 7.0, dtype)
    assert smm.gemm(np.zeros((0, 3), dtype), np.zeros((3, 4), dtype), c) is c
    c = np.full((3, 4), 2.0, dtype)
    smm.gemm(np.zeros((3, 0), dtype), np.zeros((0, 4), dtype), c, 1.0, -0.5)
    assert np.all(c == -1.0)
    c[...] = np.nan
    smm.gemm(np.zeros((3, 0), dtype), np.zeros((0, 4), dtype), c, 1.0, 0.0)
    assert np.all(c == 0.0)


# ----------------------------------------------------------------------------- NaN / Inf rules

NAN_SHAPES = [(1, 1, 1), (5, 5, 5), (23, 23, 23), (7, 9, 11), (80, 3, 2), (13, 17, 64)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_beta_zero_overwrites_nan_and_inf(target, dtype, rng):
    for (m, n, k), (ta, tb), alpha in itertools.product(NAN_SHAPES, itertools.product((False, True), repeat=2),
                                                       (1.0, 2.5, 0.0)):
        a = np.asfortranarray(rng.standard_normal(op_shape(m, k, ta)).astype(dtype))
        b = np.asfortranarray(rng.standard_normal(op_shape(k, n, tb)).astype(dtype))
        for poison in (np.nan, np.inf, -np.inf):
            c = np.full((m, n), poison, dtype, order="F")
            smm.dispatch(m, n, k, alpha=alpha, beta=0.0, dtype=dtype, trans_a=ta, trans_b=tb, target=target)(a, b, c)
            ref, scale = reference(a, b, np.zeros_like(c), alpha, 0.0, ta, tb)
            assert_close(c, ref, scale, dtype, f"dispatch beta=0 over {poison} {m}x{n}x{k} ta={ta} tb={tb}")
            c = np.full((m, n), poison, dtype)  # C order: the swapped-operand path
            smm.gemm(a, b, c, alpha, 0.0, ta, tb, target=target)
            assert_close(c, ref, scale, dtype, f"gemm beta=0 over {poison} {m}x{n}x{k} ta={ta} tb={tb}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_alpha_zero_ignores_nan_in_a_and_b(target, dtype, rng):
    for (m, n, k), (ta, tb), beta in itertools.product(NAN_SHAPES, itertools.product((False, True), repeat=2), BETAS):
        a = np.full(op_shape(m, k, ta), np.nan, dtype, order="F")
        b = np.full(op_shape(k, n, tb), np.inf, dtype, order="F")
        a.flat[::2] = np.inf
        c0 = rng.standard_normal((m, n)).astype(dtype)
        c = c0.copy(order="F")
        smm.dispatch(m, n, k, alpha=0.0, beta=beta, dtype=dtype, trans_a=ta, trans_b=tb, target=target)(a, b, c)
        assert np.array_equal(c, (beta * c0).astype(dtype)), f"dispatch alpha=0 beta={beta} {m}x{n}x{k} ta={ta} tb={tb}"
        c = c0.copy()
        smm.gemm(a, b, c, 0.0, beta, ta, tb, target=target)
        assert np.array_equal(c, (beta * c0).astype(dtype)), f"gemm alpha=0 beta={beta} {m}x{n}x{k} ta={ta} tb={tb}"


# ----------------------------------------------------------------------------- no access outside a matrix

GUARD_CHILD = textwrap.dedent(r"""
    import ctypes, itertools, mmap, sys
    import numpy as np
    from core import cpu, smm

    PAGE = mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    keep = []

    def guarded(nelem, dtype, at_end):
        # nelem elements that end (at_end) or start exactly at an inaccessible page.
        dtype = np.dtype(dtype)
        nbytes = nelem * dtype.itemsize
        pages = (nbytes + PAGE - 1) // PAGE
        mm = mmap.mmap(-1, (pages + 2) * PAGE)
        keep.append(mm)
        base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
        for page in (0, pages + 1):
            if libc.mprotect(base + page * PAGE, PAGE, 0) != 0:
                raise OSError(ctypes.get_errno(), "mprotect")
        start = (pages + 1) * PAGE - nbytes if at_end else PAGE
        return np.frombuffer(mm, dtype=dtype, count=nelem, offset=start)

    def colmajor(buf, rows, cols, ld):
        return np.lib.stride_tricks.as_strided(buf, (rows, cols), (buf.itemsize, ld * buf.itemsize))

    rng = np.random.default_rng(7)
    shapes = [(1, 1, 1), (3, 5, 7), (5, 5, 5), (7, 9, 11), (13, 13, 13), (23, 23, 23), (5, 25, 5), (25, 5, 5),
              (5, 5, 25), (17, 3, 31), (33, 7, 2), (9, 65, 4), (100, 3, 90)]
    n = 0
    for target in cpu.available_targets():
        for dtype in (np.float64, np.float32):
            tol = 1e-10 if dtype == np.float64 else 1e-4
            cases = itertools.product(shapes, (0, 1), (0, 1), (True, False), (0.0, 1.0), (0, 3))
            for (m, nn, k), ta, tb, at_end, beta, pad in cases:
                ra, ca = (k, m) if ta else (m, k)
                rb, cb = (nn, k) if tb else (k, nn)
                lda, ldb, ldc = ra + pad, rb + (pad and 1), m + (pad and 2)
                # Buffers of exactly ld*(cols-1)+rows elements: the last column ends at the guard.
                a = guarded(lda * (ca - 1) + ra, dtype, at_end); a[:] = rng.standard_normal(a.size)
                b = guarded(ldb * (cb - 1) + rb, dtype, at_end); b[:] = rng.standard_normal(b.size)
                c = guarded(ldc * (nn - 1) + m, dtype, at_end); c[:] = rng.standard_normal(c.size)
                opa = colmajor(a, ra, ca, lda).astype(float)
                opb = colmajor(b, rb, cb, ldb).astype(float)
                prod = (opa.T if ta else opa) @ (opb.T if tb else opb)
                ref = prod + beta * colmajor(c, m, nn, ldc)
                print(target, np.dtype(dtype).name, m, nn, k, ta, tb, "end" if at_end else "start", beta, pad,
                      flush=True)
                smm.dispatch(m, nn, k, lda=lda, ldb=ldb, ldc=ldc, beta=beta, dtype=dtype, trans_a=ta, trans_b=tb,
                             target=target)(a, b, c)
                assert np.allclose(colmajor(c, m, nn, ldc), ref, rtol=tol, atol=tol * k), "wrong result"
                # The index form on the same operands (one C, entries in order; beta=0: the last wins),
                # with and without prefetching the next entry's operands.
                for prefetch in ("none", "auto"):
                    c[:] = np.nan
                    smm.gemm_batch(a, b, c, 1.0, 0.0, m=m, n=nn, k=k, lda=lda, ldb=ldb, ldc=ldc, trans_a=ta,
                                   trans_b=tb, a_index=np.zeros(3, np.int64), c_index=np.zeros(3, np.int32),
                                   target=target, prefetch=prefetch)
                    assert np.allclose(colmajor(c, m, nn, ldc), prod, rtol=tol, atol=tol * k), "wrong batch result"
                n += 1
    # Strided stacks (numpy C order: the swapped-operand path) whose last matrix meets the guard.
    for target in cpu.available_targets():
        for dtype in (np.float64, np.float32):
            tol = 1e-10 if dtype == np.float64 else 1e-4
            for (m, nn, k), at_end in itertools.product(shapes[1::2], (True, False)):
                nb = 40
                a = guarded(nb * m * k, dtype, at_end).reshape(nb, m, k); a[...] = rng.standard_normal(a.shape)
                b = guarded(nb * k * nn, dtype, at_end).reshape(nb, k, nn); b[...] = rng.standard_normal(b.shape)
                c = guarded(nb * m * nn, dtype, at_end).reshape(nb, m, nn); c[...] = rng.standard_normal(c.shape)
                ref = c.astype(float) + np.matmul(a.astype(float), b.astype(float))
                print("strided", target, np.dtype(dtype).name, m, nn, k, at_end, flush=True)
                smm.gemm_batch(a, b, c, threads=2, target=target)
                assert np.allclose(c, ref, rtol=tol, atol=tol * k), "wrong strided result"
                n += 1
    print("OK", n, flush=True)
""")


def test_no_access_outside_operands_guard_pages():
    """Operands that end (or start) right at a PROT_NONE page: any read or write outside the matrix
    (remainder rows, masked tiles, prefetch mistakes that turn into loads) kills the child."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", GUARD_CHILD], capture_output=True, text=True, timeout=120, env=env)
    last = proc.stdout.strip().splitlines()[-1:] or ["<nothing>"]
    assert proc.returncode == 0 and last[0].startswith("OK"), (
        f"child exited with {proc.returncode} after case: {last[0]}\n{proc.stderr[-2000:]}")
