# Cython-level interface of core.smm: call kernels with no Python on the path.
#
#   from core.smm cimport Kernel, smm_kernel, smm_call, smm_call_prefetch, smm_call_reduce, dispatch_c
#   cdef Kernel k = core.smm.dispatch(5, 5, 5)        # once, with the GIL
#   cdef const smm_kernel *kp = k.kern
#   with nogil:
#       for e in range(n):
#           smm_call(kp, &a[e * 25], &b[e * 25], &c[e * 25])
#
# The caller owns the checks when it calls through the C pointer: operands must be valid for the
# kernel's descriptor (m, n, k, lda, ldb, ldc, dtype, transposes).
from libc.stdint cimport int8_t, int32_t, int64_t

cdef extern from "smm_kernel.h" nogil:
    ctypedef struct smm_desc:
        int32_t m, n, k, lda, ldb, ldc
        int8_t dtype, trans_a, trans_b, prefetch, isa
        double alpha, beta
    ctypedef struct smm_kernel:
        smm_desc desc
        int8_t mv, nr, specialized, code_isa
        int8_t mv_cached, nr_cached, specialized_cached, code_isa_cached
    enum:
        SMM_F64
        SMM_F32
    void smm_call(const smm_kernel *k, const void *a, const void *b, void *c)
    void smm_call_prefetch(const smm_kernel *k, const void *a, const void *b, void *c,
                           const void *pa, const void *pb, const void *pc)
    void smm_call_reduce(const smm_kernel *k, const void *const *a, const void *const *b, void *c, int64_t count)
    void smm_call_reduce_prefetch(const smm_kernel *k, const void *const *a, const void *const *b, void *c,
                                  int64_t count, const void *pa, const void *pb, const void *pc)


cdef class Kernel:
    cdef const smm_kernel *kern
    cdef readonly object dtype


# Registry look-up from C (thread-safe, nogil): the kernel for a full descriptor, built on a miss.
# isa < 0 means the process's ISA path. Returns NULL for an invalid descriptor.
cdef const smm_kernel *dispatch_c(const smm_desc *desc) noexcept nogil


# Bytes of A and B blocks one batch-reduce call holds at most (a quarter of a core's L2): every
# register tile of C sweeps all of a call's products. core.acc's stack executor uses it too.
cdef int64_t reduce_bytes() noexcept nogil
