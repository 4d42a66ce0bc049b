# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Streaming loops of the SMM mini-app (``python -m miniapps.smm``): ``C_i += A_i B_i`` over a batch.

One nogil call runs the whole batch; OpenMP threads take contiguous blocks of entries (entry
``i`` goes to thread ``i // chunk`` with ``chunk = ceil(batch / threads)``, see :func:`thread_chunk`).
All matrices are tight column-major blocks in flat buffers: entry ``i`` reads ``A`` at
``i*m*k`` when A is streamed (else the one matrix at 0), ``B`` at ``i*k*n`` likewise, and writes
``C`` at ``i*m*n`` when C is streamed, else the block of its thread, ``(i // chunk)*m*n``
(the sample's per-thread C: many entries accumulate into one C, never shared between threads).

How each entry's product is computed (``VARIANTS``):

- ``specialized``: one ``core.smm`` kernel dispatched up front, called through its C pointer,
  prefetching the next entry's operands (the last entry prefetches itself, as LIBXSMM does);
- ``dispatched``: a registry look-up (``core.smm.dispatch_c``) for every entry, with a descriptor
  filled from the call's arguments, as LIBXSMM's auto-dispatching ``libxsmm_dgemm`` front end;
- ``inlined``: plain loops the compiler vectorises (the innermost loop runs down a column);
- ``blas``: ``scipy.linalg.cython_blas`` ``dgemm``/``sgemm`` for every entry.
"""
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

from core.smm cimport Kernel, smm_kernel, smm_desc, smm_call, smm_call_prefetch, dispatch_c, SMM_F64, SMM_F32

import numpy as np

ctypedef fused real:
    float
    double

VARIANTS = ("specialized", "dispatched", "inlined", "blas")
DEF SPECIALIZED = 0
DEF DISPATCHED = 1
DEF INLINED = 2
DEF BLAS = 3


def thread_chunk(int64_t batch, int threads):
    """Entries per thread: thread ``t`` runs entries ``[t*chunk, min((t+1)*chunk, batch))``."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if batch < 0:
        raise ValueError(f"batch must be >= 0, got {batch}")
    return max(1, (batch + threads - 1) // threads)


def c_blocks(int64_t batch, int threads, bint stream_c):
    """How many C blocks the batch writes: one per entry (streamed C) or one per busy thread."""
    if not stream_c:
        return (batch + thread_chunk(batch, threads) - 1) // thread_chunk(batch, threads)
    return batch


cdef inline void inlined_gemm(int m, int n, int k, const real *a, const real *b, real *c) noexcept nogil:
    """C += A B, the loop order of the reference BLAS: a column of C is updated with one column
    of A at a time, so the innermost loop is unit-stride in both and vectorises."""
    cdef int i, j, p
    cdef real bpj
    cdef real *cj
    cdef const real *ap
    for j in range(n):
        cj = c + <int64_t>j * m
        for p in range(k):
            bpj = b[p + <int64_t>j * k]
            ap = a + <int64_t>p * m
            for i in range(m):
                cj[i] += ap[i] * bpj


cdef void run_entries(int variant, const smm_kernel *kern, int m, int n, int k,
                      const real *a, const real *b, real *c, int64_t sa, int64_t sb, int64_t sc,
                      int64_t e0, int64_t e1, int *failed) noexcept nogil:
    """Entries [e0, e1) on the calling thread; `c` is this thread's C base (sc == 0: one C)."""
    cdef int64_t i, nxt
    cdef smm_desc desc
    cdef const smm_kernel *kd
    cdef char tn = 78  # 'N'
    cdef real one = 1
    cdef int mm = m, nn = n, kk = k
    if variant == SPECIALIZED:
        for i in range(e0, e1):
            nxt = i + 1 if i + 1 < e1 else i
            smm_call_prefetch(kern, a + i * sa, b + i * sb, c + i * sc,
                              a + nxt * sa, b + nxt * sb, c + nxt * sc)
    elif variant == DISPATCHED:
        for i in range(e0, e1):
            # What a GEMM front end does per call: describe the call, look the kernel up, run it.
            memset(&desc, 0, sizeof(desc))
            desc.m = m
            desc.n = n
            desc.k = k
            desc.lda = m
            desc.ldb = k
            desc.ldc = m
            desc.dtype = SMM_F64 if real is double else SMM_F32
            desc.alpha = 1.0
            desc.beta = 1.0
            desc.isa = -1
            kd = dispatch_c(&desc)
            if kd == NULL:
                failed[0] = 1
                return
            smm_call(kd, a + i * sa, b + i * sb, c + i * sc)
    elif variant == INLINED:
        for i in range(e0, e1):
            inlined_gemm(m, n, k, a + i * sa, b + i * sb, c + i * sc)
    else:
        for i in range(e0, e1):
            if real is double:
                dgemm(&tn, &tn, &mm, &nn, &kk, &one, <double *>(a + i * sa), &mm, <double *>(b + i * sb), &kk,
                      &one, c + i * sc, &mm)
            else:
                sgemm(&tn, &tn, &mm, &nn, &kk, &one, <float *>(a + i * sa), &mm, <float *>(b + i * sb), &kk,
                      &one, c + i * sc, &mm)


cdef const smm_kernel *checked_kernel(object kernel, int m, int n, int k, bint is_double) except NULL:
    """The C record of a ``core.smm.Kernel`` after checking it computes C(m x n) += A(m x k) B(k x n)."""
    if not isinstance(kernel, Kernel):
        raise TypeError(f"kernel must be a core.smm.Kernel (from core.smm.dispatch), got {type(kernel).__name__}")
    cdef const smm_kernel *kp = (<Kernel>kernel).kern
    cdef const smm_desc *d = &kp.desc
    want = (m, n, k, m, k, m, SMM_F64 if is_double else SMM_F32, 0, 0, 1.0, 1.0)
    have = (d.m, d.n, d.k, d.lda, d.ldb, d.ldc, d.dtype, d.trans_a, d.trans_b, d.alpha, d.beta)
    if have != want:
        raise ValueError(f"kernel has (m, n, k, lda, ldb, ldc, dtype, trans_a, trans_b, alpha, beta)={have}, "
                         f"the batch needs {want}")
    return kp


def _check_buffer(str name, x, dtype, int64_t need, bint write):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in (np.float64, np.float32):
        raise TypeError(f"{name} must be float64 or float32, got {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype}, a has {dtype}")
    if x.ndim != 1 or not x.flags.c_contiguous:
        raise ValueError(f"{name} must be a contiguous 1-D buffer, got shape {x.shape}")
    if not x.flags.aligned:
        raise ValueError(f"{name} is not aligned to its element size")
    if write and not x.flags.writeable:
        raise ValueError(f"{name} is read-only")
    if x.shape[0] < need:
        raise ValueError(f"{name} holds {x.shape[0]} elements, the batch needs {need}")


def stream(variant, a, b, c, m, n, k, batch, *, bint stream_a=True, bint stream_b=True,
           bint stream_c=True, threads=1, kernel=None):
    """``C_i += A_i B_i`` for ``i < batch`` (column-major m x k, k x n, m x n blocks; see the module).

    ``a``, ``b``, ``c``: flat contiguous buffers of one float dtype; ``stream_x=False`` means one
    matrix for every entry (``c``: one per thread). ``threads``: OpenMP threads (the team size).
    ``kernel``: the ``core.smm.Kernel`` of the ``specialized`` variant (m, n, k, tight leading
    dimensions, alpha = beta = 1). Returns ``c``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    for name, v in (("m", m), ("n", n), ("k", k), ("batch", batch), ("threads", threads)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    for name, v in (("m", m), ("n", n), ("k", k), ("threads", threads)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
        if v > 65536:
            raise ValueError(f"{name}={v} is too large for a small matrix multiplication")
    if batch < 0:
        raise ValueError(f"batch must be >= 0, got {batch}")
    cdef int64_t nb = batch
    cdef int64_t mk = <int64_t>m * k, kn = <int64_t>k * n, mn = <int64_t>m * n
    _check_buffer("a", a, None, (nb if stream_a else 1) * mk if nb else 0, False)
    _check_buffer("b", b, a.dtype, (nb if stream_b else 1) * kn if nb else 0, False)
    _check_buffer("c", c, a.dtype, c_blocks(nb, threads, stream_c) * mn, True)
    for name, x in (("a", a), ("b", b)):
        if np.shares_memory(x, c, max_work=1000):
            raise ValueError(f"{name} overlaps c")
    cdef int vid = VARIANTS.index(variant)
    if nb == 0:
        return c
    kern = None
    if vid == SPECIALIZED:
        kern = kernel
        checked_kernel(kernel, m, n, k, a.dtype == np.float64)
    if a.dtype == np.float64:
        _stream[double](vid, kern, a, b, c, m, n, k, nb, stream_a, stream_b, stream_c, threads)
    else:
        _stream[float](vid, kern, a, b, c, m, n, k, nb, stream_a, stream_b, stream_c, threads)
    return c


cdef _stream(int variant, object kernel, const real[::1] a, const real[::1] b, real[::1] c, int m, int n, int k,
             int64_t nb, bint stream_a, bint stream_b, bint stream_c, int nthreads):
    cdef const smm_kernel *kern = NULL
    if kernel is not None:
        kern = (<Kernel>kernel).kern
    cdef int64_t mn = <int64_t>m * n
    cdef int64_t sa = <int64_t>m * k if stream_a else 0
    cdef int64_t sb = <int64_t>k * n if stream_b else 0
    cdef int64_t sc = mn if stream_c else 0
    cdef int64_t chunk = thread_chunk(nb, nthreads)
    cdef const real *pa = &a[0]
    cdef const real *pb = &b[0]
    cdef real *pc = &c[0]
    cdef int failed = 0
    cdef int *pfailed = &failed
    cdef int t
    cdef int64_t e0, e1
    with nogil:
        if nthreads == 1:
            run_entries(variant, kern, m, n, k, pa, pb, pc, sa, sb, sc, 0, nb, pfailed)
        else:
            for t in prange(nthreads, num_threads=nthreads, schedule="static", chunksize=1):
                e0 = t * chunk
                e1 = min(e0 + chunk, nb)
                if e0 < e1:
                    run_entries(variant, kern, m, n, k, pa, pb, pc + (0 if stream_c else t * mn),
                                sa, sb, sc, e0, e1, pfailed)
    if failed:
        raise RuntimeError(f"core.smm.dispatch_c found no kernel for {m}x{n}x{k}")
