"""The science of the NEK mini-app: spectral-element operators, element data, numpy references.

Storage convention (as the Fortran sample's ``a(m,n,k,s)``): an element field is a numpy array of
shape ``(elements, k, n, m)`` in C order, so each element is one contiguous column-major
``m x n x k`` block (x fastest). Operators are plain 2-D numpy arrays indexed mathematically
(``dx[i, l]``), handed to the kernels in Fortran order.

Operators. The sample sets ``dx = dy = dz = 1``; an all-ones operator turns every product into a row
sum and cannot tell a transposed operand from the right one, so the mini-app uses Nek's real
operators instead: the Gauss-Lobatto-Legendre (GLL) derivative matrix (axhm, grad) and the GLL
interpolation matrix between two polynomial orders (rstr). Flop and byte counts are unchanged.
"""
import math

import numpy as np

OPS = ("axhm", "grad", "rstr")
ALIASES = {"stpm": "axhm"}
MiB = 1 << 20


# --------------------------------------------------------------------------------------------
# GLL operators
# --------------------------------------------------------------------------------------------
def gll_points(n):
    """The ``n`` Gauss-Lobatto-Legendre points on [-1, 1] (ascending); ``[0]`` for n == 1."""
    if n < 1:
        raise ValueError(f"number of GLL points must be >= 1, got {n}")
    if n == 1:
        return np.zeros(1)
    if n == 2:
        return np.array([-1.0, 1.0])
    # Interior points are the roots of P'_{n-1}.
    dp = np.polynomial.legendre.legder([0] * (n - 1) + [1])
    interior = np.sort(np.real(np.polynomial.legendre.legroots(dp)))
    return np.concatenate(([-1.0], interior, [1.0]))


def _barycentric_weights(x):
    diff = x[:, None] - x[None, :]
    np.fill_diagonal(diff, 1.0)
    return 1.0 / np.prod(diff, axis=1)


def derivative_matrix(n):
    """``D[i, j] = l_j'(x_i)``: differentiates a polynomial sampled at the ``n`` GLL points."""
    x = gll_points(n)
    if n == 1:
        return np.zeros((1, 1))
    w = _barycentric_weights(x)
    diff = x[:, None] - x[None, :]
    np.fill_diagonal(diff, 1.0)
    d = (w[None, :] / w[:, None]) / diff
    np.fill_diagonal(d, 0.0)
    # Rows sum to zero (derivative of a constant); this form is the accurate way to get the diagonal.
    np.fill_diagonal(d, -d.sum(axis=1))
    return d


def interpolation_matrix(n_from, n_to):
    """``J[p, j] = l_j(y_p)``: interpolates from ``n_from`` GLL points to ``n_to`` GLL points."""
    x = gll_points(n_from)
    y = gll_points(n_to)
    if n_from == 1:
        return np.ones((n_to, 1))
    w = _barycentric_weights(x)
    diff = y[:, None] - x[None, :]
    exact = np.isclose(diff, 0.0, rtol=0.0, atol=1e-14)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = w[None, :] / diff
        j = terms / terms.sum(axis=1, keepdims=True)
    rows = exact.any(axis=1)
    j[rows] = exact[rows].astype(float)
    return j


def operators(op, m, n, k, mm=None, nn=None, kk=None):
    """``(dx, dy, dz)`` for an operation, shaped as the sample's GEMMs need them.

    axhm/grad: dx (m x m) differentiates along x (``tm1 = dx a``), dy (n x n) and dz (k x k) are the
    transposed derivative matrices (``tm2_j = a_j dy``, ``tm3 = a dz``).
    rstr: dx (mm x m), dy (n x nn), dz (k x kk) interpolate each direction to the new order.
    """
    if op == "rstr":
        return (interpolation_matrix(m, mm), interpolation_matrix(n, nn).T.copy(),
                interpolation_matrix(k, kk).T.copy())
    return derivative_matrix(m), derivative_matrix(n).T.copy(), derivative_matrix(k).T.copy()


# --------------------------------------------------------------------------------------------
# Problem sizes (samples/nek and samples/smm: size1 is the working set, size the workload)
# --------------------------------------------------------------------------------------------
def element_bytes(op, m, n, k, mm=0, nn=0, kk=0, itemsize=8):
    """Bytes one element occupies (the sample's ``e``)."""
    if op == "axhm":
        return 6 * m * n * k * itemsize
    if op == "grad":
        return 5 * m * n * k * itemsize
    return (m * n * k + mm * nn * kk) * itemsize


def plan_sizes(elem_bytes, size1=0, size=0):
    """``(elements_in_memory, repetitions, working_set_mb)`` from the sample's size1/size rules.

    size1: 0 -> 2048 MB, > 0 -> MB, < 0 -> exactly |size1| elements (the sample rounds this up to
    whole MB; an exact count is what a user asking for elements means).
    size: 0 -> one pass over the working set, > 0 -> MB (at least size1), < 0 -> |size| element
    updates in total.
    """
    if size1 == 0:
        s = 2048 * MiB // elem_bytes
    elif size1 > 0:
        s = size1 * MiB // elem_bytes
    else:
        s = -size1
    if s < 1:
        raise ValueError(f"size1={size1} MB holds no element of {elem_bytes} bytes; "
                         "raise size1 or lower m, n, k")
    if size == 0:
        total = s
    elif size > 0:
        total = max(size * MiB // elem_bytes, s)
    else:
        total = -size
    repetitions = total // s
    if repetitions < 1:
        raise ValueError(f"size={size} is less work than one pass over the working set "
                         f"({s} elements)")
    return s, repetitions, s * elem_bytes / MiB


def flops_per_element(op, m, n, k, mm=0, nn=0, kk=0):
    """The sample's floating-point operations per element update."""
    if op == "axhm":
        return m * n * k * (2 * (m + n + k) + 6)
    if op == "grad":
        return m * n * k * (2 * (m + n + k) - 3)
    return (2 * m - 1) * mm * n * k + mm * (2 * n - 1) * nn * k + mm * nn * (2 * k - 1) * kk


def bytes_per_element(op, m, n, k, mm=0, nn=0, kk=0, itemsize=8):
    """The sample's bytes moved per element update (its ``bandwidth`` line)."""
    if op == "axhm":
        return m * n * k * 6 * itemsize
    if op == "grad":
        return m * n * k * 4 * itemsize
    return (m * n * k + mm * nn * kk) * itemsize


# --------------------------------------------------------------------------------------------
# Element data
# --------------------------------------------------------------------------------------------
def element_scale(first, count, dtype):
    """Per-element factor that makes elements differ (a kernel mixing up elements must fail)."""
    e = np.arange(first, first + count, dtype=np.int64)
    return (1.0 + (e % 13) / 16.0).astype(dtype)


def ramp(m, n, k, dtype):
    """``a(ix,iy,iz) = ix + iy*m + iz*m*n`` (1-based, as the sample), shaped (k, n, m)."""
    ix = np.arange(1, m + 1)
    iy = np.arange(1, n + 1)
    iz = np.arange(1, k + 1)
    return (ix[None, None, :] + iy[None, :, None] * m + iz[:, None, None] * m * n).astype(dtype)


def make_field(first, count, m, n, k, dtype, sign=1.0):
    """The sample's input ramp, scaled per element: shape (count, k, n, m)."""
    out = np.empty((count, k, n, m), dtype=dtype)
    out[...] = ramp(m, n, k, dtype)
    out *= element_scale(first, count, dtype)[:, None, None, None]
    if sign != 1.0:
        out *= np.dtype(dtype).type(sign)
    return out


def make_geometry(count, m, n, k, dtype):
    """Geometric factors g1, g2, g3 (the sample's are 1; these vary along each axis)."""
    g = []
    for axis, size in ((2, m), (1, n), (0, k)):
        prof = 1.0 + 0.25 * np.arange(size) / max(size, 1)
        shape = [1, 1, 1]
        shape[axis] = size
        arr = np.empty((count, k, n, m), dtype=dtype)
        arr[...] = prof.reshape(shape).astype(dtype)
        g.append(arr)
    return g


# --------------------------------------------------------------------------------------------
# numpy references (einsum in float64) and the numpy baseline (matmul in the working dtype)
# --------------------------------------------------------------------------------------------
def _f64(*arrays):
    return [np.asarray(x, dtype=np.float64) for x in arrays]


def tensor_products_einsum(a, dx, dy, dz):
    """``(tm1, tm2, tm3)`` of axhm/grad in float64: derivatives along x, y, z."""
    a, dx, dy, dz = _f64(a, dx, dy, dz)
    tm1 = np.einsum("il,ezyl->ezyi", dx, a, optimize=True)
    tm2 = np.einsum("ezlx,ly->ezyx", a, dy, optimize=True)
    tm3 = np.einsum("elyx,lz->ezyx", a, dz, optimize=True)
    return tm1, tm2, tm3


def axhm_reference(a, b, g1, g2, g3, dx, dy, dz, h1, h2):
    """``c = h1 (g1 tm1 + g2 tm2 + g3 tm3) + h2 b a`` in float64."""
    tm1, tm2, tm3 = tensor_products_einsum(a, dx, dy, dz)
    a, b, g1, g2, g3 = _f64(a, b, g1, g2, g3)
    return h1 * (g1 * tm1 + g2 * tm2 + g3 * tm3) + h2 * (b * a)


def grad_reference(a, dx, dy, dz):
    """``(cx, cy, cz)`` in float64."""
    return tensor_products_einsum(a, dx, dy, dz)


def rstr_reference(a, dx, dy, dz):
    """Restriction/interpolation of every element to ``mm x nn x kk`` in float64: shape (s, kk, nn, mm)."""
    a, dx, dy, dz = _f64(a, dx, dy, dz)
    return np.einsum("pi,ezyi,yq,zr->erqp", dx, a, dy, dz, optimize=True)


def axhm_numpy(a, b, g1, g2, g3, dx, dy, dz, h1, h2):
    """What a Python user writes: batched matmul in the working dtype, then the update."""
    s, k, n, m = a.shape
    dt = a.dtype
    dx, dy, dz = (np.asarray(x, dtype=dt) for x in (dx, dy, dz))
    tm1 = np.matmul(a.reshape(s, k * n, m), dx.T).reshape(a.shape)
    tm2 = np.matmul(dy.T, a)
    tm3 = np.matmul(dz.T, a.reshape(s, k, n * m)).reshape(a.shape)
    return dt.type(h1) * (g1 * tm1 + g2 * tm2 + g3 * tm3) + dt.type(h2) * (b * a)


def grad_numpy(a, dx, dy, dz):
    s, k, n, m = a.shape
    dt = a.dtype
    dx, dy, dz = (np.asarray(x, dtype=dt) for x in (dx, dy, dz))
    cx = np.matmul(a.reshape(s, k * n, m), dx.T).reshape(a.shape)
    cy = np.matmul(dy.T, a)
    cz = np.matmul(dz.T, a.reshape(s, k, n * m)).reshape(a.shape)
    return cx, cy, cz


def rstr_numpy(a, dx, dy, dz):
    s, k, n, m = a.shape
    mm, nn, kk = dx.shape[0], dy.shape[1], dz.shape[1]
    dt = a.dtype
    dx, dy, dz = (np.asarray(x, dtype=dt) for x in (dx, dy, dz))
    tm1 = np.matmul(a.reshape(s, k * n, m), dx.T).reshape(s, k, n, mm)
    tm2 = np.matmul(dy.T, tm1)
    return np.matmul(dz.T, tm2.reshape(s, k, nn * mm)).reshape(s, kk, nn, mm)


def tolerance(dtype, m, n, k):
    """Relative tolerance for a sum of about m+n+k products in ``dtype`` (against float64)."""
    return 32.0 * float(np.finfo(dtype).eps) * (m + n + k)


def max_rel_err(test, ref):
    """``max|test - ref| / max|ref|`` (elementwise relative errors blow up where ref crosses zero)."""
    test = np.asarray(test, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    err = float(np.max(np.abs(test - ref))) if ref.size else 0.0
    if not math.isfinite(err):
        return math.inf
    return err / scale if scale > 0 else err
