# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Timed nogil loops of the dispatch micro-benchmark (``python -m miniapps.dispatch``).

Every measurement splits its calls over ``threads`` OpenMP threads (contiguous shares, one per
thread); each thread times its own share with a monotonic nanosecond clock, read only before and
after the loop. A measurement returns ``(thread_seconds, wall_seconds, calls, failures)``:
the sum over threads of their loop times (so ``thread_seconds / calls`` is the mean cost of one
call on one thread, contention included), the wall time of the whole parallel region, the calls
made, and the look-ups that returned no kernel.
"""
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uintptr_t
from libc.stdlib cimport calloc, free

from core.smm cimport smm_desc, smm_kernel, smm_call, dispatch_c, SMM_F64, SMM_F32

import numpy as np

cdef extern from *:
    """
    #include <time.h>
    /* The callee of the empty-call measurement. It is reached through a volatile function
     * pointer, so the compiler can neither inline it nor hoist the load out of the loop: every
     * iteration pays a real indirect call, as a call into a library does. */
    static void smm_bench_empty(void) { __asm__ __volatile__("" ::: "memory"); }
    static void (*volatile smm_bench_empty_fn)(void) = smm_bench_empty;
    static inline void smm_bench_call_empty(void) { smm_bench_empty_fn(); }
    static inline double smm_bench_now(void)
    {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    }
    """
    void smm_bench_call_empty() nogil
    double smm_bench_now() nogil


cdef inline int64_t share_first(int64_t total, int nthreads, int t) noexcept nogil:
    """Start of thread t's contiguous share of `total` calls (sizes differ by at most one)."""
    cdef int64_t base = total // nthreads, extra = total % nthreads
    return t * base + (t if t < extra else extra)


cdef inline int64_t share_count(int64_t total, int nthreads, int t) noexcept nogil:
    return total // nthreads + (1 if t < total % nthreads else 0)


cdef class Descriptors:
    """GEMM descriptors (C += A B, column-major, tight leading dimensions, alpha = beta = 1, no
    transposes, no prefetch, the process's ISA path) for a list of (m, n, k) triplets."""
    cdef smm_desc *descs
    cdef readonly int64_t size
    cdef readonly object dtype

    def __cinit__(self, m, n, k, dtype=np.float64):
        dt = np.dtype(dtype)
        if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise TypeError(f"dtype must be float64 or float32, got {dt}")
        sizes = []
        for name, x in (("m", m), ("n", n), ("k", k)):
            arr = np.asarray(x)
            if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"{name} must be a 1-D integer array, got {arr.dtype} of shape {arr.shape}")
            if arr.size and (arr.min() < 1 or arr.max() > 65536):
                raise ValueError(f"{name} must hold sizes in 1..65536")
            sizes.append(arr.astype(np.int64))
        if not sizes[0].shape[0] == sizes[1].shape[0] == sizes[2].shape[0]:
            raise ValueError(f"m, n and k must have one length, got {[s.shape[0] for s in sizes]}")
        self.size = sizes[0].shape[0]
        self.dtype = dt
        self.descs = <smm_desc *>calloc(max(self.size, 1), sizeof(smm_desc))
        if self.descs == NULL:
            raise MemoryError(f"{self.size} descriptors")
        cdef int64_t i
        cdef smm_desc *d
        for i in range(self.size):
            d = &self.descs[i]
            d.m = sizes[0][i]
            d.n = sizes[1][i]
            d.k = sizes[2][i]
            d.lda = d.m
            d.ldb = d.k
            d.ldc = d.m
            d.dtype = SMM_F64 if dt == np.float64 else SMM_F32
            d.alpha = 1.0
            d.beta = 1.0
            d.isa = -1

    def __dealloc__(self):
        free(self.descs)

    def shape(self, int64_t i):
        if not 0 <= i < self.size:
            raise IndexError(f"descriptor {i} of {self.size}")
        return (self.descs[i].m, self.descs[i].n, self.descs[i].k)


def _threads(threads):
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads must be an int, got {type(threads).__name__}")
    if not 1 <= threads <= 4096:
        raise ValueError(f"threads must be in 1..4096, got {threads}")
    return int(threads)


def _calls(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


cdef double empty_share(int64_t n) noexcept nogil:
    cdef int64_t i
    cdef double t0 = smm_bench_now()
    for i in range(n):
        smm_bench_call_empty()
    return smm_bench_now() - t0


def empty_calls(calls, threads=1):
    """``calls`` empty calls through a function pointer."""
    cdef int64_t n = _calls("calls", calls), first, count
    cdef int nt = _threads(threads), t
    cdef double[::1] times = np.zeros(nt)
    cdef double w0, wall
    with nogil:
        w0 = smm_bench_now()
        if nt == 1:
            times[0] = empty_share(n)
        else:
            for t in prange(nt, num_threads=nt, schedule="static", chunksize=1):
                first = share_first(n, nt, t)
                count = share_count(n, nt, t)
                times[t] = empty_share(count)
        wall = smm_bench_now() - w0
    return float(np.sum(times)), wall, n, 0


cdef double cycle_share(const smm_desc *descs, int64_t nlocal, int64_t first, int64_t n,
                        int64_t *failed) noexcept nogil:
    """n look-ups cycling through descriptors [0, nlocal), starting at `first` of the cycle."""
    cdef int64_t i, j = first % nlocal, bad = 0
    cdef const smm_kernel *kp
    cdef double t0 = smm_bench_now()
    for i in range(n):
        kp = dispatch_c(&descs[j])
        bad += kp == NULL
        j += 1
        if j == nlocal:  # a compare, not a modulo: a division would cost as much as the look-up
            j = 0
    failed[0] = bad
    return smm_bench_now() - t0


def dispatch_cycle(Descriptors descs, nlocal, calls, threads=1):
    """``calls`` look-ups cycling through the first ``nlocal`` descriptors (the cached dispatch)."""
    cdef int64_t nl = _calls("nlocal", nlocal), n = _calls("calls", calls), first, count
    if not 1 <= nl <= descs.size:
        raise ValueError(f"nlocal must be in 1..{descs.size}, got {nl}")
    cdef int nt = _threads(threads), t
    cdef double[::1] times = np.zeros(nt)
    cdef int64_t[::1] bad = np.zeros(nt, dtype=np.int64)
    cdef double w0, wall
    with nogil:
        w0 = smm_bench_now()
        if nt == 1:
            times[0] = cycle_share(descs.descs, nl, 0, n, &bad[0])
        else:
            for t in prange(nt, num_threads=nt, schedule="static", chunksize=1):
                first = share_first(n, nt, t)
                count = share_count(n, nt, t)
                times[t] = cycle_share(descs.descs, nl, first, count, &bad[t])
        wall = smm_bench_now() - w0
    return float(np.sum(times)), wall, n, int(np.sum(bad))


cdef double order_share(const smm_desc *descs, const int64_t *order, int64_t first, int64_t n,
                        int64_t nrepeat, int64_t *failed) noexcept nogil:
    cdef int64_t r, i, bad = 0
    cdef const smm_kernel *kp
    cdef double t0 = smm_bench_now()
    for r in range(nrepeat):
        for i in range(first, first + n):
            kp = dispatch_c(&descs[order[i]])
            bad += kp == NULL
    failed[0] = bad
    return smm_bench_now() - t0


def dispatch_order(Descriptors descs, order, nrepeat=1, threads=1):
    """Look up the descriptors in the given order, ``nrepeat`` times (each thread its share of
    ``order``, every repetition). The first look-up of a descriptor builds its kernel."""
    order = np.ascontiguousarray(order)
    if order.ndim != 1 or order.dtype != np.int64:
        raise TypeError(f"order must be a 1-D int64 array, got {order.dtype} of shape {order.shape}")
    if order.size and (order.min() < 0 or order.max() >= descs.size):
        raise ValueError(f"order must index the {descs.size} descriptors")
    cdef int64_t nrep = _calls("nrepeat", nrepeat), first, count
    cdef int nt = _threads(threads), t
    cdef const int64_t[::1] idx = order
    cdef const int64_t *po = &idx[0] if idx.shape[0] else NULL
    cdef int64_t n = idx.shape[0]
    cdef double[::1] times = np.zeros(nt)
    cdef int64_t[::1] bad = np.zeros(nt, dtype=np.int64)
    cdef double w0, wall
    with nogil:
        w0 = smm_bench_now()
        if nt == 1:
            times[0] = order_share(descs.descs, po, 0, n, nrep, &bad[0])
        else:
            for t in prange(nt, num_threads=nt, schedule="static", chunksize=1):
                first = share_first(n, nt, t)
                count = share_count(n, nt, t)
                times[t] = order_share(descs.descs, po, first, count, nrep, &bad[t])
        wall = smm_bench_now() - w0
    return float(np.sum(times)), wall, n * nrep, int(np.sum(bad))


def run_each(Descriptors descs, a, b, c):
    """``C += A B`` once with every descriptor's kernel, in order, on the leading blocks of the
    flat buffers ``a``, ``b``, ``c`` (column-major, tight). Returns the look-ups that failed."""
    dt = descs.dtype
    cdef int64_t need_a = 0, need_b = 0, need_c = 0, i
    for i in range(descs.size):
        need_a = max(need_a, <int64_t>descs.descs[i].m * descs.descs[i].k)
        need_b = max(need_b, <int64_t>descs.descs[i].k * descs.descs[i].n)
        need_c = max(need_c, <int64_t>descs.descs[i].m * descs.descs[i].n)
    for name, x, need, write in (("a", a, need_a, False), ("b", b, need_b, False), ("c", c, need_c, True)):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
        if x.dtype != dt:
            raise TypeError(f"{name} has dtype {x.dtype}, the descriptors are {dt}")
        if x.ndim != 1 or not x.flags.c_contiguous or not x.flags.aligned:
            raise ValueError(f"{name} must be a contiguous, aligned 1-D buffer")
        if write and not x.flags.writeable:
            raise ValueError(f"{name} is read-only")
        if x.shape[0] < need:
            raise ValueError(f"{name} holds {x.shape[0]} elements, the largest block needs {need}")
        if write and (np.shares_memory(a, c, max_work=1000) or np.shares_memory(b, c, max_work=1000)):
            raise ValueError("c overlaps a or b")
    if descs.size == 0:
        return 0
    cdef char *pa = <char *><uintptr_t>a.ctypes.data
    cdef char *pb = <char *><uintptr_t>b.ctypes.data
    cdef char *pc = <char *><uintptr_t>c.ctypes.data
    cdef const smm_kernel *kp
    cdef int64_t bad = 0
    with nogil:
        for i in range(descs.size):
            kp = dispatch_c(&descs.descs[i])
            if kp == NULL:
                bad += 1
            else:
                smm_call(kp, pa, pb, pc)
    return bad
