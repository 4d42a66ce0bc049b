# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Timed nogil loops of the dispatch micro-benchmark (``python -m miniapps.dispatch``).

Every measurement splits its calls over ``threads`` OpenMP threads (contiguous shares, one per
thread); each thread times its share in blocks of ``block`` calls with a monotonic nanosecond
clock (read once per block). A measurement returns ``(thread_seconds, wall_seconds, calls,
failures, block_seconds, block_calls)``: the sum over threads of their loop times (so
``thread_seconds / calls`` is the mean cost of one call on one thread, contention included), the
wall time of the whole parallel region, the calls made, the look-ups that returned no kernel, and
every block's seconds and calls (all threads), from which :func:`per_call` takes a median.
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


# Calls timed together: the clock is read once per block, and the per-call figure is the median
# over blocks, so a thread preempted during a few blocks (a shared machine) does not skew it.
BLOCK_CALLS = 1000


cdef struct Blocks:
    double *seconds
    int64_t *calls
    int64_t count


cdef inline void close_block(Blocks *out, double *last, int64_t calls) noexcept nogil:
    cdef double now = smm_bench_now()
    out.seconds[out.count] = now - last[0]
    out.calls[out.count] = calls
    out.count += 1
    last[0] = now


cdef double empty_share(int64_t n, int64_t block, Blocks *out) noexcept nogil:
    cdef int64_t i = 0, e, j
    cdef double t0 = smm_bench_now()
    cdef double last = t0
    while i < n:
        e = min(i + block, n)
        for j in range(i, e):
            smm_bench_call_empty()
        close_block(out, &last, e - i)
        i = e
    return last - t0


cdef double cycle_share(const smm_desc *descs, int64_t nlocal, int64_t first, int64_t n, int64_t block,
                        Blocks *out, int64_t *failed) noexcept nogil:
    """n look-ups cycling through descriptors [0, nlocal), starting at `first` of the cycle."""
    cdef int64_t i = 0, e, c, j = first % nlocal, bad = 0
    cdef const smm_kernel *kp
    cdef double t0 = smm_bench_now()
    cdef double last = t0
    while i < n:
        e = min(i + block, n)
        for c in range(i, e):
            kp = dispatch_c(&descs[j])
            bad += kp == NULL
            j += 1
            if j == nlocal:  # a compare, not a modulo: a division would cost as much as the look-up
                j = 0
        close_block(out, &last, e - i)
        i = e
    failed[0] = bad
    return last - t0


cdef double order_share(const smm_desc *descs, const int64_t *order, int64_t first, int64_t n,
                        int64_t nrepeat, int64_t block, Blocks *out, int64_t *failed) noexcept nogil:
    cdef int64_t r, i, e, c, bad = 0
    cdef const smm_kernel *kp
    cdef double t0 = smm_bench_now()
    cdef double last = t0
    for r in range(nrepeat):
        i = first
        while i < first + n:
            e = min(i + block, first + n)
            for c in range(i, e):
                kp = dispatch_c(&descs[order[c]])
                bad += kp == NULL
            close_block(out, &last, e - i)
            i = e
    failed[0] = bad
    return last - t0


cdef class _Timings:
    """Per-thread block records of one measurement (numpy-owned storage)."""
    cdef object seconds, calls, counts, totals, failed
    cdef Blocks *blocks
    cdef int nthreads

    def __cinit__(self, int nthreads, int64_t per_thread_blocks):
        self.nthreads = nthreads
        cap = max(per_thread_blocks, 1)
        self.seconds = np.zeros((nthreads, cap))
        self.calls = np.zeros((nthreads, cap), dtype=np.int64)
        self.totals = np.zeros(nthreads)
        self.failed = np.zeros(nthreads, dtype=np.int64)
        self.blocks = <Blocks *>calloc(nthreads, sizeof(Blocks))
        if self.blocks == NULL:
            raise MemoryError()
        cdef double[:, ::1] sec = self.seconds
        cdef int64_t[:, ::1] cal = self.calls
        cdef int t
        for t in range(nthreads):
            self.blocks[t].seconds = &sec[t, 0]
            self.blocks[t].calls = &cal[t, 0]
            self.blocks[t].count = 0

    def __dealloc__(self):
        free(self.blocks)

    def result(self, double wall, int64_t calls):
        """``(thread_seconds, wall_seconds, calls, failures, block_seconds, block_calls)``."""
        sec = np.concatenate([self.seconds[t, :self.blocks[t].count] for t in range(self.nthreads)])
        cal = np.concatenate([self.calls[t, :self.blocks[t].count] for t in range(self.nthreads)])
        return float(np.sum(self.totals)), wall, calls, int(np.sum(self.failed)), sec, cal


cdef int64_t _blocks_per_thread(int64_t calls, int nthreads, int64_t block, int64_t passes=1):
    cdef int64_t per_thread = (calls + nthreads - 1) // nthreads
    return passes * ((per_thread + block - 1) // block)


def _block(block):
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be an int >= 1, got {block!r}")
    return int(block)


def empty_calls(calls, threads=1, block=BLOCK_CALLS):
    """``calls`` empty calls through a function pointer."""
    cdef int64_t n = _calls("calls", calls), count, blk = _block(block)
    cdef int nt = _threads(threads), t
    cdef _Timings rec = _Timings(nt, _blocks_per_thread(n, nt, blk))
    cdef double[::1] totals = rec.totals
    cdef double w0, wall
    with nogil:
        w0 = smm_bench_now()
        if nt == 1:
            totals[0] = empty_share(n, blk, &rec.blocks[0])
        else:
            for t in prange(nt, num_threads=nt, schedule="static", chunksize=1):
                count = share_count(n, nt, t)
                totals[t] = empty_share(count, blk, &rec.blocks[t])
        wall = smm_bench_now() - w0
    return rec.result(wall, n)


def dispatch_cycle(Descriptors descs, nlocal, calls, threads=1, block=BLOCK_CALLS):
    """``calls`` look-ups cycling through the first ``nlocal`` descriptors (the cached dispatch)."""
    cdef int64_t nl = _calls("nlocal", nlocal), n = _calls("calls", calls), first, count, blk = _block(block)
    if not 1 <= nl <= descs.size:
        raise ValueError(f"nlocal must be in 1..{descs.size}, got {nl}")
    cdef int nt = _threads(threads), t
    cdef _Timings rec = _Timings(nt, _blocks_per_thread(n, nt, blk))
    cdef double[::1] totals = rec.totals
    cdef int64_t[::1] bad = rec.failed
    cdef double w0, wall
    with nogil:
        w0 = smm_bench_now()
        if nt == 1:
            totals[0] = cycle_share(descs.descs, nl, 0, n, blk, &rec.blocks[0], &bad[0])
        else:
            for t in prange(nt, num_threads=nt, schedule="static", chunksize=1):
                first = share_first(n, nt, t)
                count = share_count(n, nt, t)
                totals[t] = cycle_share(descs.descs, nl, first, count, blk, &rec.blocks[t], &bad[t])
        wall = smm_bench_now() - w0
    return rec.result(wall, n)


def dispatch_order(Descriptors descs, order, nrepeat=1, threads=1, block=BLOCK_CALLS):
    """Look up the descriptors in the given order, ``nrepeat`` times (each thread its share of
    ``order``, every repetition). The first look-up of a descriptor builds its kernel."""
    order = np.ascontiguousarray(order)
    if order.ndim != 1 or order.dtype != np.int64:
        raise TypeError(f"order must be a 1-D int64 array, got {order.dtype} of shape {order.shape}")
    if order.size and (order.min() < 0 or order.max() >= descs.size):
        raise ValueError(f"order must index the {descs.size} descriptors")
    cdef int64_t nrep = _calls("nrepeat", nrepeat), first, count, blk = _block(block)
    cdef int nt = _threads(threads), t
    cdef const int64_t[::1] idx = order
    cdef const int64_t *po = &idx[0] if idx.shape[0] else NULL
    cdef int64_t n = idx.shape[0]
    cdef _Timings rec = _Timings(nt, _blocks_per_thread(n, nt, blk, nrep))
    cdef double[::1] totals = rec.totals
    cdef int64_t[::1] bad = rec.failed
    cdef double w0, wall
    with nogil:
        w0 = smm_bench_now()
        if nt == 1:
            totals[0] = order_share(descs.descs, po, 0, n, nrep, blk, &rec.blocks[0], &bad[0])
        else:
            for t in prange(nt, num_threads=nt, schedule="static", chunksize=1):
                first = share_first(n, nt, t)
                count = share_count(n, nt, t)
                totals[t] = order_share(descs.descs, po, first, count, nrep, blk, &rec.blocks[t], &bad[t])
        wall = smm_bench_now() - w0
    return rec.result(wall, n * nrep)


def per_call(block_seconds, block_calls):
    """Seconds per call: the median over blocks of their mean (blocks under half the largest
    block's calls, e.g. a share's remainder, are left out unless nothing else is left)."""
    sec = np.asarray(block_seconds, dtype=np.float64)
    cal = np.asarray(block_calls, dtype=np.float64)
    if sec.shape != cal.shape:
        raise ValueError(f"block_seconds and block_calls differ in shape: {sec.shape} vs {cal.shape}")
    keep = cal > 0
    if not np.any(keep):
        return 0.0
    full = keep & (cal >= cal.max() / 2)
    return float(np.median(sec[full] / cal[full]))


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
