# cython: language_level=3
"""Timed loops of the transpose mini-app and its tuner: one call into nogil C per list of shapes,
each call timed with the monotonic clock, so Python's per-call cost (microseconds, as much as a
small transpose itself) never enters a measurement."""
from libc.stdint cimport int64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
cimport numpy as cnp

import numpy as np

from core import cpu
from core.transpose cimport otrans_c, itrans_square_c

cnp.import_array()

# Columns of the `shapes` table.
COLUMNS = ("m", "n", "ldi", "ldo", "tile_m", "tile_n", "threads", "streaming")


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec


def _check(inp, out, shapes, kind):
    if not (isinstance(inp, np.ndarray) and inp.ndim == 1 and inp.flags.c_contiguous and inp.flags.aligned):
        raise ValueError("inp must be a contiguous, aligned 1-D array")
    if inp.itemsize not in (4, 8, 16):
        raise TypeError(f"inp has dtype {inp.dtype}; elements of 4, 8 or 16 bytes are supported")
    if kind == "o":
        if not (isinstance(out, np.ndarray) and out.ndim == 1 and out.flags.c_contiguous
                and out.flags.aligned and out.flags.writeable):
            raise ValueError("out must be a writeable, contiguous, aligned 1-D array")
        if out.dtype != inp.dtype:
            raise TypeError(f"out has dtype {out.dtype}, inp {inp.dtype}")
        if np.may_share_memory(inp, out):
            raise ValueError("inp and out overlap")
    elif kind == "i":
        if not inp.flags.writeable:
            raise ValueError("inp is read-only")
    else:
        raise ValueError(f"kind must be 'o' or 'i', got {kind!r}")
    shapes = np.ascontiguousarray(shapes, dtype=np.int64)
    if shapes.ndim != 2 or shapes.shape[1] != len(COLUMNS):
        raise ValueError(f"shapes must have the columns {COLUMNS}, got shape {shapes.shape}")
    m, n, ldi, ldo, tm, tn, nt, st = shapes.T
    if np.any(shapes[:, :2] < 0) or np.any(shapes[:, 2:7] < 1) or np.any((st != 0) & (st != 1)):
        raise ValueError("shapes: m, n must be >= 0; ldi, ldo, tiles and threads >= 1; streaming 0 or 1")
    if np.any(ldi < m) or np.any(ldo < (m if kind == "i" else n)):
        raise ValueError("shapes: ldi must be >= m and ldo >= n")
    if kind == "i" and (np.any(m != n) or np.any(ldi != ldo)):
        raise ValueError("shapes: in-place runs need m == n and ldi == ldo")
    nonempty = (m > 0) & (n > 0)
    if np.any(nonempty & ((n - 1) * ldi + m > inp.shape[0])):
        raise ValueError("shapes: an input does not fit in inp")
    if kind == "o" and np.any(nonempty & ((m - 1) * ldo + n > out.shape[0])):
        raise ValueError("shapes: an output does not fit in out")
    return shapes


def run_shapes(inp, out, shapes, kind="o", target=None, bint warm_each=True):
    """Transpose each row of ``shapes`` (columns :data:`COLUMNS`) from ``inp`` into ``out``
    (``kind='o'``) or within ``inp`` (``kind='i'``, square); returns the seconds of each call.

    ``warm_each``: before each timed call, the same call once untimed (as LIBXSMM's sample does for
    each random shape). ``target``: ISA path name (None: the process's path).
    """
    cdef cnp.int64_t[:, ::1] s = _check(inp, out, shapes, kind)
    cdef int isa = -1 if target is None else cpu.isa_id(target)
    cdef Py_ssize_t count = s.shape[0], r
    cdef cnp.ndarray seconds = np.zeros(count, dtype=np.float64)
    cdef double[::1] sec = seconds
    cdef int es = inp.itemsize, inplace = kind == "i", rc = 0, w
    cdef void *src = cnp.PyArray_DATA(<cnp.ndarray>inp)
    cdef void *dst = NULL
    if not inplace:
        dst = cnp.PyArray_DATA(<cnp.ndarray>out)
    cdef double t0
    with nogil:
        for r in range(count):
            for w in range(2 if warm_each else 1):
                t0 = _now()
                if inplace:
                    rc |= itrans_square_c(src, es, isa, s[r, 0], s[r, 2], s[r, 4], <int>s[r, 6])
                else:
                    rc |= otrans_c(src, dst, es, isa, s[r, 0], s[r, 1], s[r, 2], s[r, 3], s[r, 4], s[r, 5],
                                   <int>s[r, 6], <int>s[r, 7])
                sec[r] = _now() - t0
    if rc:
        raise ValueError(f"no transpose kernel for target={target} and {es}-byte elements")
    return seconds
