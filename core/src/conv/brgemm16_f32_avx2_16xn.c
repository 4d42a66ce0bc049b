/* AVX2/FMA conv micro-kernels: a 16-channel column is two ymm; n = 1..6 columns give 12
 * accumulators + 2 A vectors + 1 broadcast = 15 of the 16 ymm registers. */
#include "conv_kernels.h"
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

static inline __attribute__((always_inline, target("avx2,fma")))
void brgemm16_avx2_body(const int N, const int64_t BJ, int k, int64_t count, const float *a, const int64_t *aoff,
                        const float *b, const int64_t *boff, int64_t bl, int64_t bj,
                        float *c, int64_t ldc, int accumulate, const float *bias)
{
  /* A constant column stride folds j*bj into the address displacement, so the n
   * broadcasts share one base register instead of n live pointers. */
  const int64_t cs = BJ ? BJ : bj;
  __m256 lo[6], hi[6];
  const __m256 init_lo = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
  const __m256 init_hi = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
#pragma GCC unroll 6
  for (int j = 0; j < N; ++j) {
    lo[j] = accumulate ? _mm256_loadu_ps(c + j * ldc) : init_lo;
    hi[j] = accumulate ? _mm256_loadu_ps(c + j * ldc + 8) : init_hi;
  }
  for (int64_t p = 0; p < count; ++p) {
    const float *ap = a + aoff[p];
    const float *bp = b + boff[p];
    for (int l = 0; l < k; ++l) {
      const __m256 va_lo = _mm256_loadu_ps(ap + 16 * l);
      const __m256 va_hi = _mm256_loadu_ps(ap + 16 * l + 8);
      const float *brow = bp + l * bl;
#pragma GCC unroll 6
      for (int j = 0; j < N; ++j) {
        const __m256 s = _mm256_broadcast_ss(brow + j * cs);
        lo[j] = _mm256_fmadd_ps(va_lo, s, lo[j]);
        hi[j] = _mm256_fmadd_ps(va_hi, s, hi[j]);
      }
    }
  }
#pragma GCC unroll 6
  for (int j = 0; j < N; ++j) {
    _mm256_storeu_ps(c + j * ldc, lo[j]);
    _mm256_storeu_ps(c + j * ldc + 8, hi[j]);
  }
}

/* One kernel per (column stride class, n): BJ = 0 (any bj), 1, 16, 32 floats. */
#define SMM_CONV_AVX2_KERNEL(TAG, BJ, N)                                                       \
  static __attribute__((target("avx2,fma"))) void brgemm16_f32_avx2_16x##N##_##TAG(              \
      int n, int k, int64_t count, const float *a, const int64_t *aoff, const float *b,        \
      const int64_t *boff, int64_t bl, int64_t bj, float *c, int64_t ldc, int accumulate,      \
      const float *bias)                                                                       \
  {                                                                                            \
    (void)n;                                                                                   \
    brgemm16_avx2_body(N, BJ, k, count, a, aoff, b, boff, bl, bj, c, ldc, accumulate, bias); \
  }
#define SMM_CONV_AVX2_ALL_N(TAG, BJ) \
  SMM_CONV_AVX2_KERNEL(TAG, BJ, 1) \
  SMM_CONV_AVX2_KERNEL(TAG, BJ, 2) \
  SMM_CONV_AVX2_KERNEL(TAG, BJ, 3) \
  SMM_CONV_AVX2_KERNEL(TAG, BJ, 4) \
  SMM_CONV_AVX2_KERNEL(TAG, BJ, 5) \
  SMM_CONV_AVX2_KERNEL(TAG, BJ, 6)
SMM_CONV_AVX2_ALL_N(bjany, 0)
SMM_CONV_AVX2_ALL_N(bj1, 1)
SMM_CONV_AVX2_ALL_N(bj16, 16)
SMM_CONV_AVX2_ALL_N(bj32, 32)

const conv_brgemm16_fn conv_brgemm16_f32_avx2[CONV_BJ_CLASSES][CONV_NMAX_AVX2 + 1] = {
  {0, brgemm16_f32_avx2_16x1_bjany, brgemm16_f32_avx2_16x2_bjany, brgemm16_f32_avx2_16x3_bjany, brgemm16_f32_avx2_16x4_bjany, brgemm16_f32_avx2_16x5_bjany, brgemm16_f32_avx2_16x6_bjany},
  {0, brgemm16_f32_avx2_16x1_bj1, brgemm16_f32_avx2_16x2_bj1, brgemm16_f32_avx2_16x3_bj1, brgemm16_f32_avx2_16x4_bj1, brgemm16_f32_avx2_16x5_bj1, brgemm16_f32_avx2_16x6_bj1},
  {0, brgemm16_f32_avx2_16x1_bj16, brgemm16_f32_avx2_16x2_bj16, brgemm16_f32_avx2_16x3_bj16, brgemm16_f32_avx2_16x4_bj16, brgemm16_f32_avx2_16x5_bj16, brgemm16_f32_avx2_16x6_bj16},
  {0, brgemm16_f32_avx2_16x1_bj32, brgemm16_f32_avx2_16x2_bj32, brgemm16_f32_avx2_16x3_bj32, brgemm16_f32_avx2_16x4_bj32, brgemm16_f32_avx2_16x5_bj32, brgemm16_f32_avx2_16x6_bj32},
};
#else
const conv_brgemm16_fn conv_brgemm16_f32_avx2[CONV_BJ_CLASSES][CONV_NMAX_AVX2 + 1] = {{0}};
#endif
