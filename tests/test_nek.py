"""NEK element loops (miniapps.nek.kernels) against the float64 numpy einsum references, and the
operators, sizes and formulas of miniapps.nek.science."""
import numpy as np
import pytest

import core.cpu
from miniapps.nek import _nek_kernels
from miniapps.nek import kernels as K
from miniapps.nek import science as sc

TARGETS = core.cpu.available_targets()
DTYPES = (np.float64, np.float32)
TOL = {np.float64: 1e-12, np.float32: 2e-5}
# Non-cubic shapes, a shape beyond mxm's hand-unrolled cases (26) and the degenerate 1.
SHAPES = ((8, 8, 8), (5, 7, 3), (1, 2, 3), (4, 9, 6), (26, 3, 2))


@pytest.fixture
def rng():
    return np.random.default_rng(20170611)


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _axhm_case(rng, s, m, n, k, dtype):
    a = _rand(rng, (s, k, n, m), dtype)
    b, g1, g2, g3 = (_rand(rng, a.shape, dtype) for _ in range(4))
    dx, dy, dz = (_rand(rng, shp, np.float64) for shp in ((m, m), (n, n), (k, k)))
    return a, b, g1, g2, g3, dx, dy, dz


def _err(x, ref):
    return sc.max_rel_err(x, ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("variant", K.VARIANTS)
def test_axhm_every_variant_matches_einsum(rng, dtype, shape, variant):
    m, n, k = shape
    a, b, g1, g2, g3, dx, dy, dz = _axhm_case(rng, 13, m, n, k, dtype)
    ref = sc.axhm_reference(a, b, g1, g2, g3, dx, dy, dz, 0.7, -1.3)
    for threads in (1, 2):
        c = np.full(a.shape, np.nan, dtype)
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, c, 0.7, -1.3, variant=variant, threads=threads)
        assert _err(c, ref) < TOL[dtype], (variant, threads)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("variant", K.VARIANTS)
def test_grad_every_variant_matches_einsum(rng, dtype, shape, variant):
    m, n, k = shape
    a = _rand(rng, (11, k, n, m), dtype)
    dx, dy, dz = (_rand(rng, shp, np.float64) for shp in ((m, m), (n, n), (k, k)))
    ref = sc.grad_reference(a, dx, dy, dz)
    for threads in (1, 2):
        out = [np.full(a.shape, np.nan, dtype) for _ in range(3)]
        K.grad(a, dx, dy, dz, *out, variant=variant, threads=threads)
        for x, r in zip(out, ref):
            assert _err(x, r) < TOL[dtype], (variant, threads)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dims", ((8, 8, 8, 10, 10, 10), (5, 7, 3, 4, 9, 2), (2, 3, 4, 1, 1, 1), (3, 3, 3, 26, 2, 5)))
@pytest.mark.parametrize("variant", K.VARIANTS)
def test_rstr_every_variant_matches_einsum(rng, dtype, dims, variant):
    m, n, k, mm, nn, kk = dims
    a = _rand(rng, (9, k, n, m), dtype)
    dx, dy, dz = (_rand(rng, shp, np.float64) for shp in ((mm, m), (n, nn), (k, kk)))
    ref = sc.rstr_reference(a, dx, dy, dz)
    for threads in (1, 2):
        c = np.full((9, kk, nn, mm), np.nan, dtype)
        K.rstr(a, dx, dy, dz, c, variant=variant, threads=threads)
        assert _err(c, ref) < TOL[dtype], (variant, threads)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_isa_path_matches(rng, target, dtype):
    """mxm, the streaming kernels and the specialized kernels of every ISA path this CPU runs."""
    m, n, k = 6, 5, 7
    a, b, g1, g2, g3, dx, dy, dz = _axhm_case(rng, 7, m, n, k, dtype)
    ref = sc.axhm_reference(a, b, g1, g2, g3, dx, dy, dz, 1.0, 0.5)
    for variant in K.VARIANTS:
        c = np.full(a.shape, np.nan, dtype)
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, c, 1.0, 0.5, variant=variant, threads=2, target=target)
        assert _err(c, ref) < TOL[dtype], (target, variant)
    rx, ry, rz = sc.operators("rstr", m, n, k, 9, 4, 3)
    c = np.full((7, 3, 4, 9), np.nan, dtype)
    K.rstr(a, rx, ry, rz, c, variant="mxm", threads=2, target=target)
    assert _err(c, sc.rstr_reference(a, rx, ry, rz)) < TOL[dtype]


@pytest.mark.parametrize("elements", (1, 2, 3, 97))
def test_element_counts_that_do_not_divide_threads(rng, elements):
    m, n, k = 4, 3, 5
    a, b, g1, g2, g3, dx, dy, dz = _axhm_case(rng, elements, m, n, k, np.float64)
    ref = sc.axhm_reference(a, b, g1, g2, g3, dx, dy, dz, 1.0, 1.0)
    for threads in (1, 2, 3):
        c = np.full(a.shape, np.nan)
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, c, variant="specialized", threads=threads)
        assert _err(c, ref) < 1e-12


@pytest.mark.parametrize("offset", (0, 1, 3))
@pytest.mark.parametrize("dtype", DTYPES)
def test_unaligned_outputs_use_the_scalar_prologue(rng, offset, dtype):
    """Outputs starting off a vector boundary: the streaming stores must still cover every point."""
    m, n, k, s = 3, 3, 3, 5  # 27 points per element: odd, so elements start at every alignment
    a = _rand(rng, (s, k, n, m), dtype)
    dx, dy, dz = (_rand(rng, (d, d), np.float64) for d in (m, n, k))
    ref = sc.grad_reference(a, dx, dy, dz)
    bufs = [np.full(s * k * n * m + 8, np.nan, dtype) for _ in range(3)]
    outs = [buf[offset:offset + a.size].reshape(a.shape) for buf in bufs]
    K.grad(a, dx, dy, dz, *outs, variant="mxm", threads=2)
    for x, r, buf in zip(outs, ref, bufs):
        assert _err(x, r) < TOL[dtype]
        assert np.isnan(buf[:offset]).all() and np.isnan(buf[offset + a.size:]).all()  # nothing outside


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", K.VARIANTS)
def test_result_is_bitwise_independent_of_threads_repetitions_and_alignment(rng, dtype, variant):
    """The streaming update rounds its scalar prologue exactly as its vector lanes: where the output
    happens to be aligned, how many threads and how many repetitions must not change a bit."""
    a, b, g1, g2, g3, dx, dy, dz = _axhm_case(rng, 5, 4, 4, 4, dtype)
    results = []
    for threads, reps, offset in ((1, 1, 0), (2, 1, 1), (3, 3, 3), (2, 2, 5)):
        buf = np.zeros(a.size + 8, dtype)
        c = buf[offset:offset + a.size].reshape(a.shape)
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, c, 0.3, 1.7, variant=variant, threads=threads, repetitions=reps)
        results.append(c)
    for c in results[1:]:
        np.testing.assert_array_equal(c, results[0])


def test_zero_elements_is_a_no_op():
    a = np.zeros((0, 2, 2, 2))
    c = np.zeros_like(a)
    ops = sc.operators("axhm", 2, 2, 2)
    assert K.axhm(a, a, a, a, a, *ops, c).shape == (0, 2, 2, 2)


def test_specialized_kernels_are_the_unrolled_smm_mnk_shapes():
    """The default SMM_MNK build unrolls nek's 8x8x8 and rstr 8->10 shapes (the issue's targets)."""
    for op, dims in (("axhm", (8, 8, 8)), ("rstr", (8, 8, 8, 10, 10, 10))):
        kerns = K.specialized_kernels(op, *dims)
        assert [(x.m, x.n, x.k) for x in kerns] == list(_nek_kernels.kernels_needed(op, *dims))
        if not all(x.specialized for x in kerns):
            pytest.skip("this build's SMM_MNK does not list nek's shapes")


# ---------------------------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def case(rng):
    return _axhm_case(rng, 3, 4, 3, 2, np.float64)


def test_bad_variant_dtype_shape_and_threads_are_named(case):
    a, b, g1, g2, g3, dx, dy, dz = case
    c = np.zeros_like(a)
    with pytest.raises(ValueError, match="variant"):
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, c, variant="fast")
    with pytest.raises(TypeError, match="b has dtype float32"):
        K.axhm(a, b.astype(np.float32), g1, g2, g3, dx, dy, dz, c)
    with pytest.raises(TypeError, match="a must be float64 or float32"):
        K.axhm(a.astype(np.int64), b, g1, g2, g3, dx, dy, dz, c)
    with pytest.raises(ValueError, match="g2 must have shape"):
        K.axhm(a, b, g1, g2[:, :1], g3, dx, dy, dz, c)
    with pytest.raises(ValueError, match="g3 has 2 elements"):
        K.axhm(a, b, g1, g2, g3[:2], dx, dy, dz, c)
    with pytest.raises(ValueError, match="dy must have shape"):
        K.axhm(a, b, g1, g2, g3, dx, dx, dz, c)
    with pytest.raises(ValueError, match="c must be C-contiguous"):
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, np.zeros(a.shape[::-1]).T)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, c, threads=0)
    with pytest.raises(TypeError, match="threads"):
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, c, threads=1.5)
    with pytest.raises(ValueError, match="repetitions must be >= 1"):
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, c, repetitions=0)
    with pytest.raises(TypeError, match="a must be a numpy array"):
        K.grad([1.0], dx, dy, dz, c, c, c)
    with pytest.raises(TypeError, match="h1"):
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, c, h1="1")


def test_outputs_must_be_writable_and_not_alias_inputs(case):
    a, b, g1, g2, g3, dx, dy, dz = case
    ro = np.zeros_like(a)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="c must be writable"):
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, ro)
    with pytest.raises(ValueError, match="c overlaps a"):
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, a)
    cx = np.zeros_like(a)
    with pytest.raises(ValueError, match="cx overlaps cy"):
        K.grad(a, dx, dy, dz, cx, cx, np.zeros_like(a))


def test_specialized_kernels_of_the_wrong_shape_are_refused(case):
    a, b, g1, g2, g3, dx, dy, dz = case
    c = np.zeros_like(a)
    wrong = K.specialized_kernels("axhm", 4, 3, 3)  # k differs
    with pytest.raises(ValueError, match=r"kernels\[0\]"):
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, c, kernels=wrong)
    f32 = K.specialized_kernels("axhm", 4, 3, 2, dtype=np.float32)
    with pytest.raises(ValueError, match=r"kernels\[0\]"):
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, c, kernels=f32)
    with pytest.raises(TypeError, match="core.smm.Kernel"):
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, c, kernels=(1, 2, 3))
    with pytest.raises(ValueError, match="kernels=\\(k1, k2, k3\\)"):
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, c, kernels=wrong[:2])


def test_unknown_target_is_refused(case):
    a, b, g1, g2, g3, dx, dy, dz = case
    with pytest.raises(ValueError, match="target"):
        K.axhm(a, b, g1, g2, g3, dx, dy, dz, np.zeros_like(a), variant="mxm", target="sse9")


# ---------------------------------------------------------------------------------------------
# science
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", (2, 3, 5, 8, 12))
def test_gll_derivative_and_interpolation_are_exact_for_polynomials(n):
    x = sc.gll_points(n)
    assert x[0] == -1.0 and x[-1] == 1.0 and np.all(np.diff(x) > 0)
    d = sc.derivative_matrix(n)
    for p in range(n):
        np.testing.assert_allclose(d @ x ** p, p * x ** max(p - 1, 0) if p else 0 * x, atol=1e-11)
    y = sc.gll_points(n + 3)
    j = sc.interpolation_matrix(n, n + 3)
    np.testing.assert_allclose(j @ x ** (n - 1), y ** (n - 1), atol=1e-12)
    np.testing.assert_allclose(sc.interpolation_matrix(n, n), np.eye(n), atol=1e-14)


def test_operators_of_each_op_have_the_gemm_shapes():
    dx, dy, dz = sc.operators("axhm", 4, 5, 6)
    assert (dx.shape, dy.shape, dz.shape) == ((4, 4), (5, 5), (6, 6))
    np.testing.assert_array_equal(dy, sc.derivative_matrix(5).T)
    dx, dy, dz = sc.operators("rstr", 4, 5, 6, 7, 8, 9)
    assert (dx.shape, dy.shape, dz.shape) == ((7, 4), (5, 8), (6, 9))


def test_plan_sizes_follows_the_samples_rules():
    e = sc.element_bytes("axhm", 8, 8, 8)
    assert e == 6 * 512 * 8
    assert sc.plan_sizes(e) == (2048 * 2 ** 20 // e, 1, 2048 * 2 ** 20 // e * e / 2 ** 20)
    s, reps, _ = sc.plan_sizes(e, 10, 100)
    assert s == 10 * 2 ** 20 // e and reps == (100 * 2 ** 20 // e) // s
    assert sc.plan_sizes(e, -7)[:2] == (7, 1)
    assert sc.plan_sizes(e, -7, -22)[:2] == (7, 3)
    with pytest.raises(ValueError, match="size1"):
        sc.plan_sizes(sc.element_bytes("axhm", 64, 64, 64), 1)
    with pytest.raises(ValueError, match="size"):
        sc.plan_sizes(e, -7, -3)


def test_flop_formulas_are_the_samples():
    assert sc.flops_per_element("axhm", 8, 8, 8) == 512 * (2 * 24 + 6)
    assert sc.flops_per_element("grad", 8, 8, 8) == 512 * (2 * 24 - 3)
    assert sc.flops_per_element("rstr", 8, 8, 8, 10, 10, 10) == 15 * 10 * 64 + 10 * 15 * 10 * 8 + 100 * 15 * 10
    assert sc.bytes_per_element("rstr", 8, 8, 8, 10, 10, 10, 4) == (512 + 1000) * 4


def test_numpy_baselines_equal_the_references(rng):
    m, n, k = 4, 5, 3
    a, b, g1, g2, g3, dx, dy, dz = _axhm_case(rng, 6, m, n, k, np.float64)
    np.testing.assert_allclose(sc.axhm_numpy(a, b, g1, g2, g3, dx, dy, dz, 2.0, 3.0),
                               sc.axhm_reference(a, b, g1, g2, g3, dx, dy, dz, 2.0, 3.0), rtol=1e-12, atol=1e-12)
    for x, r in zip(sc.grad_numpy(a, dx, dy, dz), sc.grad_reference(a, dx, dy, dz)):
        np.testing.assert_allclose(x, r, rtol=1e-12, atol=1e-12)
    rx, ry, rz = sc.operators("rstr", m, n, k, 6, 2, 7)
    np.testing.assert_allclose(sc.rstr_numpy(a, rx, ry, rz), sc.rstr_reference(a, rx, ry, rz), rtol=1e-12, atol=1e-12)


def test_the_samples_ramp_differentiates_exactly():
    """The ramp is linear in each index and the GLL derivative of a linear function is exact."""
    m, n, k = 5, 4, 3
    a = sc.make_field(0, 2, m, n, k, np.float64)
    x = sc.gll_points(m)
    lin = np.broadcast_to(x, a.shape).copy()  # a field linear in x
    cx, _, _ = sc.grad_reference(lin, *sc.operators("grad", m, n, k))
    np.testing.assert_allclose(cx, 1.0, atol=1e-12)
    np.testing.assert_array_equal(a[1], a[0] * (1 + 1 / 16))  # elements differ (per-element scale)
    assert a[0, 0, 0, 0] == 1 + m + m * n and a[0, 0, 0, 1] == 2 + m + m * n
