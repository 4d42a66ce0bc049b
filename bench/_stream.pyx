# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""STREAM triad for bench/smm.py: the memory bandwidth the streamed GEMM cases are held against.

Written here (not numpy) so that it runs on the same OpenMP runtime and thread count as core.smm,
in one pass, with ordinary (write-allocate) stores like the GEMM kernels' C updates.
"""
from cython.parallel cimport prange

import numpy as np


def fill(double[::1] x, double value, int threads):
    """x[:] = value, each thread touching the part it later streams (first touch, static schedule)."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, num_threads=threads, schedule="static"):
            x[i] = value + 1e-9 * (i & 1023)


def triad(double[::1] a, const double[::1] b, const double[::1] c, double scalar, int threads):
    """a[i] = b[i] + scalar * c[i] over the arrays, split statically over `threads` OpenMP threads."""
    cdef Py_ssize_t i, n = a.shape[0]
    if b.shape[0] != n or c.shape[0] != n:
        raise ValueError("triad: a, b and c must have the same length")
    with nogil:
        for i in prange(n, num_threads=threads, schedule="static"):
            a[i] = b[i] + scalar * c[i]


cdef extern from *:
    """
    #if defined(__x86_64__)
    #include <immintrin.h>
    /* 12 independent FMA chains (latency 4 x 2 pipes needs >= 8) of 4 doubles: the FMA peak. */
    __attribute__((target("avx2,fma"))) static double bench_fma_chains(long iters)
    {
      const __m256d x = _mm256_set1_pd(0.999999), y = _mm256_set1_pd(1e-6);
      __m256d a0 = _mm256_set1_pd(0.1), a1 = _mm256_set1_pd(0.2), a2 = _mm256_set1_pd(0.3),
              a3 = _mm256_set1_pd(0.4), a4 = _mm256_set1_pd(0.5), a5 = _mm256_set1_pd(0.6),
              a6 = _mm256_set1_pd(0.7), a7 = _mm256_set1_pd(0.8), a8 = _mm256_set1_pd(0.9),
              a9 = _mm256_set1_pd(1.1), a10 = _mm256_set1_pd(1.2), a11 = _mm256_set1_pd(1.3);
      for (long i = 0; i < iters; ++i) {
        a0 = _mm256_fmadd_pd(a0, x, y); a1 = _mm256_fmadd_pd(a1, x, y); a2 = _mm256_fmadd_pd(a2, x, y);
        a3 = _mm256_fmadd_pd(a3, x, y); a4 = _mm256_fmadd_pd(a4, x, y); a5 = _mm256_fmadd_pd(a5, x, y);
        a6 = _mm256_fmadd_pd(a6, x, y); a7 = _mm256_fmadd_pd(a7, x, y); a8 = _mm256_fmadd_pd(a8, x, y);
        a9 = _mm256_fmadd_pd(a9, x, y); a10 = _mm256_fmadd_pd(a10, x, y); a11 = _mm256_fmadd_pd(a11, x, y);
      }
      __m256d s = _mm256_add_pd(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)),
                                _mm256_add_pd(_mm256_add_pd(a4, a5), _mm256_add_pd(a6, a7)));
      s = _mm256_add_pd(s, _mm256_add_pd(_mm256_add_pd(a8, a9), _mm256_add_pd(a10, a11)));
      double out[4];
      _mm256_storeu_pd(out, s);
      return out[0] + out[1] + out[2] + out[3];
    }
    /* The same with 8-double (zmm) registers: the peak of the AVX-512 path, which core.smm runs
     * where the CPU has AVX-512F (two 512-bit FMA pipes on server Intel cores, one on some). */
    __attribute__((target("avx512f"))) static double bench_fma_chains512(long iters)
    {
      const __m512d x = _mm512_set1_pd(0.999999), y = _mm512_set1_pd(1e-6);
      __m512d a0 = _mm512_set1_pd(0.1), a1 = _mm512_set1_pd(0.2), a2 = _mm512_set1_pd(0.3),
              a3 = _mm512_set1_pd(0.4), a4 = _mm512_set1_pd(0.5), a5 = _mm512_set1_pd(0.6),
              a6 = _mm512_set1_pd(0.7), a7 = _mm512_set1_pd(0.8), a8 = _mm512_set1_pd(0.9),
              a9 = _mm512_set1_pd(1.1), a10 = _mm512_set1_pd(1.2), a11 = _mm512_set1_pd(1.3);
      for (long i = 0; i < iters; ++i) {
        a0 = _mm512_fmadd_pd(a0, x, y); a1 = _mm512_fmadd_pd(a1, x, y); a2 = _mm512_fmadd_pd(a2, x, y);
        a3 = _mm512_fmadd_pd(a3, x, y); a4 = _mm512_fmadd_pd(a4, x, y); a5 = _mm512_fmadd_pd(a5, x, y);
        a6 = _mm512_fmadd_pd(a6, x, y); a7 = _mm512_fmadd_pd(a7, x, y); a8 = _mm512_fmadd_pd(a8, x, y);
        a9 = _mm512_fmadd_pd(a9, x, y); a10 = _mm512_fmadd_pd(a10, x, y); a11 = _mm512_fmadd_pd(a11, x, y);
      }
      __m512d s = _mm512_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)),
                                _mm512_add_pd(_mm512_add_pd(a4, a5), _mm512_add_pd(a6, a7)));
      s = _mm512_add_pd(s, _mm512_add_pd(_mm512_add_pd(a8, a9), _mm512_add_pd(a10, a11)));
      return _mm512_reduce_add_pd(s);
    }
    static int bench_has_fma(void)
    {
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    static int bench_has_avx512f(void) { __builtin_cpu_init(); return __builtin_cpu_supports("avx512f"); }
    #else
    static double bench_fma_chains(long iters) { (void)iters; return 0.0; }
    static double bench_fma_chains512(long iters) { (void)iters; return 0.0; }
    static int bench_has_fma(void) { return 0; }
    static int bench_has_avx512f(void) { return 0; }
    #endif
    """
    double bench_fma_chains(long iters) nogil
    double bench_fma_chains512(long iters) nogil
    int bench_has_fma() nogil
    int bench_has_avx512f() nogil

# Flops per iteration of bench_fma_chains: 12 chains x 4 lanes x (multiply + add); x 8 lanes for the
# 512-bit chains.
FMA_FLOPS_PER_ITER = 96
FMA_FLOPS_PER_ITER_BY_WIDTH = {256: 96, 512: 192}


def fma_chains(long iters, int threads, int width=256):
    """Runs the FMA chains (`width` 256: AVX2 ymm, 512: AVX-512 zmm) `iters` times on each of
    `threads` OpenMP threads (nogil); returns a checksum (so the loop is not optimised away).
    Returns None when the CPU lacks that instruction set."""
    if width not in (256, 512):
        raise ValueError(f"fma_chains: width must be 256 or 512, got {width}")
    if not bench_has_fma() or (width == 512 and not bench_has_avx512f()):
        return None
    cdef double total = 0.0
    cdef int t
    cdef bint wide = width == 512
    with nogil:
        for t in prange(threads, num_threads=threads, schedule="static", chunksize=1):
            if wide:
                total += bench_fma_chains512(iters)
            else:
                total += bench_fma_chains(iters)
    return total


cdef extern from *:
    """
    /* The bytes of a streamed GEMM batch without its flops: reads each product's A and B blocks and
     * reads and writes its C block, product after product as the batch kernels go. Its time is what
     * the memory system needs for exactly that traffic (read-mostly shapes such as 5x5x25 move
     * their bytes slower than the triad's mix of reads and writes). */
    #if defined(__x86_64__)
    #include <immintrin.h>
    __attribute__((target("avx2"))) static __m256d bench_touch_sum(const double *p, long len, __m256d s)
    {
      __m256d s1 = _mm256_setzero_pd();
      long i = 0;
      for (; i + 8 <= len; i += 8) {
        s = _mm256_add_pd(s, _mm256_loadu_pd(p + i));
        s1 = _mm256_add_pd(s1, _mm256_loadu_pd(p + i + 4));
      }
      for (; i + 4 <= len; i += 4) s = _mm256_add_pd(s, _mm256_loadu_pd(p + i));
      for (; i < len; ++i) s = _mm256_add_pd(s, _mm256_set1_pd(p[i]));
      return _mm256_add_pd(s, s1);
    }
    __attribute__((target("avx2"))) static void bench_touch(const double *a, const double *b, double *c,
                                                            long la, long lb, long lc, long e0, long e1,
                                                            double scale)
    {
      for (long e = e0; e < e1; ++e) {
        __m256d s = bench_touch_sum(a + e * la, la, _mm256_setzero_pd());
        s = _mm256_mul_pd(bench_touch_sum(b + e * lb, lb, s), _mm256_set1_pd(scale));
        double *pc = c + e * lc;
        long i = 0;
        for (; i + 4 <= lc; i += 4) _mm256_storeu_pd(pc + i, _mm256_add_pd(_mm256_loadu_pd(pc + i), s));
        for (; i < lc; ++i) pc[i] += scale * pc[i];
      }
    }
    static int bench_has_avx2(void) { __builtin_cpu_init(); return __builtin_cpu_supports("avx2"); }
    #else
    static void bench_touch(const double *a, const double *b, double *c, long la, long lb, long lc,
                            long e0, long e1, double scale) { (void)a; (void)b; (void)c; (void)la; (void)lb;
                            (void)lc; (void)e0; (void)e1; (void)scale; }
    static int bench_has_avx2(void) { return 0; }
    #endif
    """
    void bench_touch(const double *a, const double *b, double *c, long la, long lb, long lc,
                     long e0, long e1, double scale) nogil
    int bench_has_avx2() nogil


def touch(const double[::1] a, const double[::1] b, double[::1] c, long la, long lb, long lc, long nb,
          int threads):
    """Moves the bytes of a batch of nb products (A blocks of la, B of lb elements read, C blocks of
    lc read and written; contiguous stacks) with no arithmetic, entries split statically over
    `threads` OpenMP threads in contiguous parts as core.smm.gemm_batch splits them. C keeps its
    values (it gains 0 * sums). Returns False (and does nothing) without AVX2."""
    if threads < 1:
        raise ValueError(f"touch: threads must be >= 1, got {threads}")
    if la < 0 or lb < 0 or lc < 0 or nb < 0 or a.shape[0] < la * nb or b.shape[0] < lb * nb or c.shape[0] < lc * nb:
        raise ValueError("touch: stacks smaller than nb blocks")
    if not bench_has_avx2():
        return False
    cdef long chunk = (nb + threads - 1) // threads, e0, e1
    cdef int t
    with nogil:
        for t in prange(threads, num_threads=threads, schedule="static", chunksize=1):
            e0 = t * chunk
            e1 = min(e0 + chunk, nb)
            if e0 < e1:
                bench_touch(&a[0], &b[0], &c[0], la, lb, lc, e0, e1, 0.0)
    return True
