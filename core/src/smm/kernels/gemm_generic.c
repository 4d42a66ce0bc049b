/* Portable GEMM kernels (any CPU): the reference every ISA path is tested against, and the path
 * for shapes the tiled kernels do not take (trans_a panels larger than SMM_PACK_MAX).
 * One column of C is accumulated in a stack buffer of up to GEN_ROWS rows, so C is read and
 * written once per call (batch-reduce semantics) and never read when beta == 0. */
#include <stdint.h>
#include "smm_kernel.h"

#define GEN_ROWS 256

#define SMM_DEFINE_GENERIC(T, NAME)                                                                    \
  void NAME(const smm_kernel *kern, const void *const *a, const void *const *b, void *cv,             \
            int64_t count, const void *pa, const void *pb, const void *pc)                            \
  {                                                                                                   \
    const smm_desc *d = &kern->desc;                                                                  \
    const int64_t m = d->m, n = d->n, k = d->k, lda = d->lda, ldb = d->ldb, ldc = d->ldc;             \
    const T alpha = (T)d->alpha, beta = (T)d->beta;                                                   \
    const int ta = d->trans_a, tb = d->trans_b;                                                       \
    T *c = (T *)cv;                                                                                   \
    T acc[GEN_ROWS];                                                                                  \
    (void)pa; (void)pb; (void)pc;                                                                     \
    for (int64_t j = 0; j < n; ++j) {                                                                 \
      T *cj = c + j * ldc;                                                                            \
      for (int64_t i0 = 0; i0 < m; i0 += GEN_ROWS) {                                                  \
        const int64_t mb = (m - i0 < GEN_ROWS) ? m - i0 : GEN_ROWS;                                   \
        for (int64_t i = 0; i < mb; ++i) acc[i] = (T)0;                                               \
        if (alpha != (T)0) {                                                                          \
          for (int64_t e = 0; e < count; ++e) {                                                       \
            const T *ae = (const T *)a[e], *be = (const T *)b[e];                                     \
            for (int64_t p = 0; p < k; ++p) {                                                         \
              const T bpj = tb ? be[j + p * ldb] : be[p + j * ldb];                                   \
              if (ta)                                                                                 \
                for (int64_t i = 0; i < mb; ++i) acc[i] += ae[p + (i0 + i) * lda] * bpj;              \
              else                                                                                    \
                for (int64_t i = 0; i < mb; ++i) acc[i] += ae[i0 + i + p * lda] * bpj;                \
            }                                                                                         \
          }                                                                                           \
        }                                                                                             \
        T *ci = cj + i0;                                                                              \
        if (beta == (T)0)                                                                             \
          for (int64_t i = 0; i < mb; ++i) ci[i] = alpha * acc[i];                                    \
        else                                                                                          \
          for (int64_t i = 0; i < mb; ++i) ci[i] = alpha * acc[i] + beta * ci[i];                     \
      }                                                                                               \
    }                                                                                                 \
  }

SMM_DEFINE_GENERIC(double, smm_generic_f64)
SMM_DEFINE_GENERIC(float, smm_generic_f32)
