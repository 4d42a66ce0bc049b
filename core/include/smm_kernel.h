/* The SMM kernel record and call convention (see docs/kernels.md, "micro-kernel contract").
 *
 * A kernel computes, column-major, for one C and `count` (A, B) pairs:
 *     C := alpha * sum_{e < count} op(A_e) * op(B_e) + beta * C
 * with op(X) = X or X^T per the descriptor, m x n C with leading dimension ldc, etc.
 * count == 1 is the ordinary GEMM; count > 1 is the batch-reduce form (C is read and written once).
 * beta == 0: C is not read (NaN/Inf in C do not leak). alpha == 0: A and B are not read.
 * pa/pb/pc: operands of the *next* call, prefetched while this one runs (may be NULL).
 */
#ifndef SMM_KERNEL_H
#define SMM_KERNEL_H
#include <stdint.h>
#include <stddef.h>

enum smm_dtype { SMM_F64 = 0, SMM_F32 = 1 };

typedef struct smm_desc {
  int32_t m, n, k;          /* C is m x n, op(A) m x k, op(B) k x n */
  int32_t lda, ldb, ldc;    /* leading dimensions, in elements */
  int8_t dtype;             /* enum smm_dtype */
  int8_t trans_a, trans_b;  /* 0/1 */
  int8_t prefetch;          /* 0: none, 1: next operands (A, B to L2, C to L1) */
  int8_t isa;               /* enum smm_isa of the code this kernel runs */
  int8_t pad_[3];
  double alpha, beta;
} smm_desc;

struct smm_kernel;
typedef void (*smm_kernel_fn)(const struct smm_kernel *kern, const void *const *a, const void *const *b,
                              void *c, int64_t count, const void *pa, const void *pb, const void *pc);
/* A strided batch in one call: for e < nbatch, in order, C_e := alpha*op(A_e)*op(B_e) + beta*C_e
 * with A_e = a + e*sa, B_e = b + e*sb, C_e = c + e*sc (byte strides; the C_e distinct). No prefetch.
 * sa == SMM_GATHER: a, b and c are arrays of nbatch pointers instead (A_e = ((const void **)a)[e],
 * and so on; sb and sc are not read), the C_e in any order, a C repeated only as the products run
 * one after another would update it (the index form's entries that are not batch-reduced). */
#define SMM_GATHER INT64_MIN
typedef void (*smm_strided_fn)(const struct smm_kernel *kern, const void *a, const void *b, void *c,
                               int64_t sa, int64_t sb, int64_t sc, int64_t nbatch);

typedef struct smm_kernel {
  smm_kernel_fn fn;
  smm_desc desc;
  int8_t mv, nr;            /* register tile: mv SIMD vectors of rows x nr columns */
  int8_t specialized;       /* 1: fully unrolled for this (m, n, k) (SMM_MNK list) */
  int8_t code_isa;          /* ISA of the code that runs: an AVX-512 path runs AVX2 tiles where narrower
                               vectors waste fewer lanes (e.g. m = 4 in f64) */
  /* The same product with the register tile chosen for operands that stay in cache (wider tiles
   * win there, taller ones from memory): the batch drivers call fn_cached when a batch's operands
   * fit in the L2 of the threads that run it. fn is right for any operands. */
  int8_t mv_cached, nr_cached, specialized_cached, code_isa_cached;
  int64_t ncalls_hint;      /* not used by the kernel; statistics slot for callers */
  smm_kernel_fn fn_cached;
  /* fn and fn_cached over a whole strided batch, for the smallest specialised shapes (a call per
   * product costs there as much as the product: 4^3 f64 in cache 18.7 -> 23.5 GFLOP/s); NULL
   * elsewhere: call fn per product. */
  smm_strided_fn fn_strided, fn_strided_cached;
} smm_kernel;

/* One product: C := alpha*op(A)*op(B) + beta*C. */
static inline void smm_call(const smm_kernel *k, const void *a, const void *b, void *c)
{
  k->fn(k, &a, &b, c, 1, NULL, NULL, NULL);
}

/* One product, prefetching the next call's operands. */
static inline void smm_call_prefetch(const smm_kernel *k, const void *a, const void *b, void *c,
                                     const void *pa, const void *pb, const void *pc)
{
  k->fn(k, &a, &b, c, 1, pa, pb, pc);
}

/* Batch-reduce: C := alpha*sum_e op(A_e)op(B_e) + beta*C, A_e = a[e], B_e = b[e]. */
static inline void smm_call_reduce(const smm_kernel *k, const void *const *a, const void *const *b,
                                   void *c, int64_t count)
{
  k->fn(k, a, b, c, count, NULL, NULL, NULL);
}

/* Batch-reduce, prefetching the next call's operands. */
static inline void smm_call_reduce_prefetch(const smm_kernel *k, const void *const *a, const void *const *b,
                                            void *c, int64_t count, const void *pa, const void *pb,
                                            const void *pc)
{
  k->fn(k, a, b, c, count, pa, pb, pc);
}

#endif
