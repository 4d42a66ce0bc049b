# Cython-level interface of core.acc: plug your own nogil "run function" into the device's
# stack executor (the mini-app's BLAS and inlined variants do this).
#
#   from core.acc cimport StackKernel, stack_run_fn, make_stack_kernel
#   cdef int my_run(const void *ctx, const void *const *a, const void *const *b, void *c,
#                   int64_t count, const void *pa, const void *pb, const void *pc, char *msg) noexcept nogil:
#       ...   # c += alpha * sum_e op(a[e]) op(b[e]); return 0, or < 0 with a message in msg
#   sk = make_stack_kernel(my_run, <const void *>ctx, owner, "mine", m, n, k, lda, ldb, ldc,
#                          False, False, np.float64)
#
# The run function is called from device workers and OpenMP threads at once: it must be
# thread-safe and must not touch Python. `owner` is kept alive as long as the kernel (put what
# `ctx` points into there). Messages are at most ACC_MSG_LEN (240) bytes, NUL-terminated.
from libc.stdint cimport int64_t

ctypedef int (*stack_run_fn)(const void *ctx, const void *const *a, const void *const *b, void *c,
                             int64_t count, const void *pa, const void *pb, const void *pc,
                             char *msg) noexcept nogil


cdef class StackKernel:
    cdef stack_run_fn run
    cdef const void *ctx
    cdef object owner
    cdef readonly int m, n, k, lda, ldb, ldc
    cdef readonly bint trans_a, trans_b
    cdef readonly object dtype
    cdef readonly str name


cdef StackKernel make_stack_kernel(stack_run_fn run, const void *ctx, object owner, str name,
                                   int m, int n, int k, int lda, int ldb, int ldc,
                                   bint trans_a, bint trans_b, object dtype)
