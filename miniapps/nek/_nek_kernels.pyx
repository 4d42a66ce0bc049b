# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""NEK element loops (axhm, grad, rstr): per element a sequence of small GEMMs into thread-private
scratch, then a streaming update/copy into the element's output, OpenMP threads over elements.

Variants of the GEMMs (``VARIANTS``): BLAS (scipy's cython_blas, one call per GEMM), mxm (Nek's
mxm_std loops), dispatched (a registry look-up through ``core.smm.dispatch_c`` before every GEMM,
as LIBXSMM's auto-dispatching ``libxsmm_dgemm``), specialized (three kernels obtained up front).

Callers: ``miniapps.nek.kernels`` validates every argument; these functions trust it (flat,
contiguous arrays of the right lengths and one dtype; operators flattened in Fortran order).
"""
from cython.parallel cimport prange, parallel
from libc.stdint cimport int64_t, int8_t
from libc.stdlib cimport free
from libc.string cimport memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

from core.smm cimport Kernel, smm_kernel, smm_desc, smm_call, dispatch_c, SMM_F64, SMM_F32

cdef extern from "stdlib.h" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)

cdef extern from "nek_kernels.h" nogil:
    ctypedef void (*nek_helmholtz_f64_fn)(const double *, const double *, const double *, const double *,
                                         const double *, const double *, const double *, const double *,
                                         double *, double, double, int64_t)
    ctypedef void (*nek_helmholtz_f32_fn)(const float *, const float *, const float *, const float *,
                                         const float *, const float *, const float *, const float *,
                                         float *, float, float, int64_t)
    ctypedef void (*nek_copy_f64_fn)(const double *, double *, int64_t)
    ctypedef void (*nek_copy_f32_fn)(const float *, float *, int64_t)
    ctypedef void (*nek_mxm_f64_fn)(const double *, int64_t, const double *, int64_t, double *, int64_t)
    ctypedef void (*nek_mxm_f32_fn)(const float *, int64_t, const float *, int64_t, float *, int64_t)
    nek_helmholtz_f64_fn nek_helmholtz_f64[3]
    nek_helmholtz_f32_fn nek_helmholtz_f32[3]
    nek_copy_f64_fn nek_copy_f64[3]
    nek_copy_f32_fn nek_copy_f32[3]
    nek_mxm_f64_fn nek_mxm_f64[3]
    nek_mxm_f32_fn nek_mxm_f32[3]
    void nek_stream_fence()

ctypedef fused real:
    float
    double

VARIANTS = ("blas", "mxm", "dispatched", "specialized")
DEF BLAS = 0
DEF MXM = 1
DEF DISPATCHED = 2
DEF SPECIALIZED = 3
DEF SCRATCH_ALIGN = 64


cdef inline void *scratch(size_t nbytes) noexcept nogil:
    cdef void *p = NULL
    if posix_memalign(&p, SCRATCH_ALIGN, nbytes if nbytes > 0 else SCRATCH_ALIGN) != 0:
        return NULL
    return p


cdef inline void gemm(int variant, int isa, const smm_kernel *kern, smm_desc *desc,
                      int m, int n, int k, const real *a, const real *b, real *c,
                      int *failed) noexcept nogil:
    """C(m x n) = A(m x k) B(k x n), all tight column-major, alpha = 1, beta = 0."""
    cdef char tn = 78  # 'N'
    cdef real one = 1, zero = 0
    cdef const smm_kernel *kp
    if variant == SPECIALIZED:
        smm_call(kern, a, b, c)
    elif variant == DISPATCHED:
        desc.m = m
        desc.n = n
        desc.k = k
        desc.lda = m
        desc.ldb = k
        desc.ldc = m
        kp = dispatch_c(desc)
        if kp == NULL:
            failed[0] = 1
            return
        smm_call(kp, a, b, c)
    elif variant == MXM:
        if real is double:
            nek_mxm_f64[isa](a, m, b, k, c, n)
        else:
            nek_mxm_f32[isa](a, m, b, k, c, n)
    else:
        if real is double:
            dgemm(&tn, &tn, &m, &n, &k, &one, <double *>a, &m, <double *>b, &k, &zero, c, &m)
        else:
            sgemm(&tn, &tn, &m, &n, &k, &one, <float *>a, &m, <float *>b, &k, &zero, c, &m)


cdef inline void init_desc(smm_desc *d, bint is_double) noexcept:
    memset(d, 0, sizeof(smm_desc))
    d.dtype = SMM_F64 if is_double else SMM_F32
    d.isa = -1
    d.alpha = 1.0
    d.beta = 0.0


cdef const smm_kernel *checked_kernel(object kernel, int m, int n, int k, bint is_double, str name) except NULL:
    """The C kernel of a ``core.smm.Kernel`` after checking it computes C(m x n) = A(m x k) B(k x n)."""
    if not isinstance(kernel, Kernel):
        raise TypeError(f"kernels[{name}] must be a core.smm.Kernel, got {type(kernel).__name__}")
    cdef const smm_kernel *kp = (<Kernel>kernel).kern
    if kp == NULL:
        raise ValueError(f"kernels[{name}] is empty")
    cdef const smm_desc *d = &kp.desc
    want = (m, n, k, m, k, m, SMM_F64 if is_double else SMM_F32, 0, 0, 1.0, 0.0)
    have = (d.m, d.n, d.k, d.lda, d.ldb, d.ldc, d.dtype, d.trans_a, d.trans_b, d.alpha, d.beta)
    if have != want:
        raise ValueError(f"kernels[{name}] has (m, n, k, lda, ldb, ldc, dtype, trans_a, trans_b, alpha, beta)"
                         f"={have}, this GEMM needs {want}")
    return kp


def kernels_needed(str op, int m, int n, int k, int mm=0, int nn=0, int kk=0):
    """The (m, n, k) of the three GEMM shapes of an operation (the specialized kernels)."""
    if op == "rstr":
        return ((mm, n * k, m), (mm, nn, n), (mm * nn, kk, k))
    return ((m, n * k, m), (m, n, n), (m * n, k, k))


def _kernel_triplet(kernels, shapes, bint is_double):
    cdef list out = []
    if kernels is None or len(kernels) != 3:
        raise ValueError("the specialized variant needs kernels=(k1, k2, k3)")
    for i in range(3):
        m, n, k = shapes[i]
        checked_kernel(kernels[i], m, n, k, is_double, str(i))
        out.append(kernels[i])
    return out


cdef inline void _derivatives(int variant, int isa, const smm_kernel *k1, const smm_kernel *k2,
                              const smm_kernel *k3, smm_desc *desc, int m, int n, int k, const real *dx,
                              const real *dy, const real *dz, const real *ae, real *tm1, real *tm2,
                              real *tm3, int *failed) noexcept nogil:
    """The three GEMM groups of axhm and grad: tm1 = dx a, tm2_j = a_j dy (per slice), tm3 = a dz."""
    cdef int j, mn = m * n
    gemm(variant, isa, k1, desc, m, n * k, m, dx, ae, tm1, failed)
    for j in range(k):
        gemm(variant, isa, k2, desc, m, n, n, ae + j * mn, dy, tm2 + j * mn, failed)
    gemm(variant, isa, k3, desc, mn, k, k, ae, dz, tm3, failed)


def axhm(int variant, int isa, int nthreads, int64_t repetitions, int m, int n, int k,
         real[::1] a, real[::1] b, real[::1] g1, real[::1] g2, real[::1] g3,
         real[::1] dx, real[::1] dy, real[::1] dz, real[::1] c, double h1, double h2, kernels=None):
    """c = h1 (g1 tm1 + g2 tm2 + g3 tm3) + h2 (b a) per element, tm* = derivatives along x, y, z."""
    cdef int64_t mnk = <int64_t>m * n * k
    cdef int64_t nelem = a.shape[0] // mnk
    cdef const smm_kernel *k1 = NULL
    cdef const smm_kernel *k2 = NULL
    cdef const smm_kernel *k3 = NULL
    cdef smm_desc desc0
    cdef bint is_double = real is double
    cdef int failed = 0
    cdef int nomem = 0
    cdef int *pnomem = &nomem
    init_desc(&desc0, is_double)
    if variant == SPECIALIZED:
        ks = _kernel_triplet(kernels, kernels_needed("axhm", m, n, k), is_double)
        k1 = (<Kernel>ks[0]).kern
        k2 = (<Kernel>ks[1]).kern
        k3 = (<Kernel>ks[2]).kern
    cdef real *tm1
    cdef real *tm2
    cdef real *tm3
    cdef real *ae
    cdef int64_t e, r, j
    cdef smm_desc desc
    with nogil, parallel(num_threads=nthreads):
        desc = desc0
        tm1 = <real *>scratch(3 * mnk * sizeof(real))
        if tm1 == NULL:
            pnomem[0] = 1
        else:
            tm2 = tm1 + mnk
            tm3 = tm2 + mnk
            for r in range(repetitions):
                for e in prange(nelem, schedule="static"):
                    ae = &a[0] + e * mnk
                    _derivatives(variant, isa, k1, k2, k3, &desc, m, n, k, &dx[0], &dy[0], &dz[0], ae,
                                 tm1, tm2, tm3, &failed)
                    if real is double:
                        nek_helmholtz_f64[isa](&g1[0] + e * mnk, &g2[0] + e * mnk, &g3[0] + e * mnk,
                                               tm1, tm2, tm3, ae, &b[0] + e * mnk, &c[0] + e * mnk,
                                               h1, h2, mnk)
                    else:
                        nek_helmholtz_f32[isa](&g1[0] + e * mnk, &g2[0] + e * mnk, &g3[0] + e * mnk,
                                               tm1, tm2, tm3, ae, &b[0] + e * mnk, &c[0] + e * mnk,
                                               <float>h1, <float>h2, mnk)
            nek_stream_fence()
            free(tm1)
    _raise_if(failed, nomem)


def grad(int variant, int isa, int nthreads, int64_t repetitions, int m, int n, int k,
         real[::1] a, real[::1] dx, real[::1] dy, real[::1] dz,
         real[::1] cx, real[::1] cy, real[::1] cz, kernels=None):
    """(cx, cy, cz) = derivatives of every element along x, y, z, each streamed out of scratch."""
    cdef int64_t mnk = <int64_t>m * n * k
    cdef int64_t nelem = a.shape[0] // mnk
    cdef const smm_kernel *k1 = NULL
    cdef const smm_kernel *k2 = NULL
    cdef const smm_kernel *k3 = NULL
    cdef smm_desc desc0
    cdef bint is_double = real is double
    cdef int failed = 0
    cdef int nomem = 0
    cdef int *pnomem = &nomem
    init_desc(&desc0, is_double)
    if variant == SPECIALIZED:
        ks = _kernel_triplet(kernels, kernels_needed("grad", m, n, k), is_double)
        k1 = (<Kernel>ks[0]).kern
        k2 = (<Kernel>ks[1]).kern
        k3 = (<Kernel>ks[2]).kern
    cdef real *tm1
    cdef real *tm2
    cdef real *tm3
    cdef real *ae
    cdef int64_t e, r, j
    cdef smm_desc desc
    with nogil, parallel(num_threads=nthreads):
        desc = desc0
        tm1 = <real *>scratch(3 * mnk * sizeof(real))
        if tm1 == NULL:
            pnomem[0] = 1
        else:
            tm2 = tm1 + mnk
            tm3 = tm2 + mnk
            for r in range(repetitions):
                for e in prange(nelem, schedule="static"):
                    ae = &a[0] + e * mnk
                    _derivatives(variant, isa, k1, k2, k3, &desc, m, n, k, &dx[0], &dy[0], &dz[0], ae,
                                 tm1, tm2, tm3, &failed)
                    if real is double:
                        nek_copy_f64[isa](tm1, &cx[0] + e * mnk, mnk)
                        nek_copy_f64[isa](tm2, &cy[0] + e * mnk, mnk)
                        nek_copy_f64[isa](tm3, &cz[0] + e * mnk, mnk)
                    else:
                        nek_copy_f32[isa](tm1, &cx[0] + e * mnk, mnk)
                        nek_copy_f32[isa](tm2, &cy[0] + e * mnk, mnk)
                        nek_copy_f32[isa](tm3, &cz[0] + e * mnk, mnk)
            nek_stream_fence()
            free(tm1)
    _raise_if(failed, nomem)


def rstr(int variant, int isa, int nthreads, int64_t repetitions, int m, int n, int k, int mm, int nn, int kk,
         real[::1] a, real[::1] dx, real[::1] dy, real[::1] dz, real[::1] c, kernels=None):
    """c = every element interpolated from m x n x k to mm x nn x kk points, streamed out of scratch."""
    cdef int64_t mnk = <int64_t>m * n * k
    cdef int64_t out = <int64_t>mm * nn * kk
    cdef int64_t t1 = <int64_t>mm * n * k
    cdef int64_t t2 = <int64_t>mm * nn * k
    cdef int64_t nelem = a.shape[0] // mnk
    cdef const smm_kernel *k1 = NULL
    cdef const smm_kernel *k2 = NULL
    cdef const smm_kernel *k3 = NULL
    cdef smm_desc desc0
    cdef bint is_double = real is double
    cdef int failed = 0
    cdef int nomem = 0
    cdef int *pnomem = &nomem
    cdef int nk = n * k, mmn = mm * n, mmnn = mm * nn
    init_desc(&desc0, is_double)
    if variant == SPECIALIZED:
        ks = _kernel_triplet(kernels, kernels_needed("rstr", m, n, k, mm, nn, kk), is_double)
        k1 = (<Kernel>ks[0]).kern
        k2 = (<Kernel>ks[1]).kern
        k3 = (<Kernel>ks[2]).kern
    cdef real *tm1
    cdef real *tm2
    cdef real *tm3
    cdef real *ae
    cdef int64_t e, r, j
    cdef smm_desc desc
    with nogil, parallel(num_threads=nthreads):
        desc = desc0
        tm1 = <real *>scratch((t1 + t2 + out) * sizeof(real))
        if tm1 == NULL:
            pnomem[0] = 1
        else:
            tm2 = tm1 + t1
            tm3 = tm2 + t2
            for r in range(repetitions):
                for e in prange(nelem, schedule="static"):
                    ae = &a[0] + e * mnk
                    gemm(variant, isa, k1, &desc, mm, nk, m, &dx[0], ae, tm1, &failed)
                    for j in range(k):
                        gemm(variant, isa, k2, &desc, mm, nn, n, tm1 + j * mmn, &dy[0], tm2 + j * mmnn, &failed)
                    gemm(variant, isa, k3, &desc, mmnn, kk, k, tm2, &dz[0], tm3, &failed)
                    if real is double:
                        nek_copy_f64[isa](tm3, &c[0] + e * out, out)
                    else:
                        nek_copy_f32[isa](tm3, &c[0] + e * out, out)
            nek_stream_fence()
            free(tm1)
    _raise_if(failed, nomem)


cdef _raise_if(int failed, int nomem):
    if nomem:
        raise MemoryError("could not allocate the per-thread scratch of the element loop")
    if failed:
        raise RuntimeError("core.smm.dispatch_c found no kernel for a GEMM of the element loop")
