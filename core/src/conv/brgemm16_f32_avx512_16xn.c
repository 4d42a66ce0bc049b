/* AVX-512F conv micro-kernels: a 16-channel column is one zmm; n = 1..16 columns stay in
 * registers (16 accumulators + 1 A vector; B scalars become embedded broadcasts). */
#include "conv_kernels.h"
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

static inline __attribute__((always_inline, target("avx512f")))
void brgemm16_avx512_body(const int N, const int64_t BJ, int k, int64_t count, const float *a, const int64_t *aoff,
                          const float *b, const int64_t *boff, int64_t bl, int64_t bj,
                          float *c, int64_t ldc, int accumulate, const float *bias)
{
  /* A constant column stride folds j*bj into the address displacement, so the n
   * broadcasts share one base register instead of n live pointers. */
  const int64_t cs = BJ ? BJ : bj;
  __m512 acc[16];
  const __m512 init = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int j = 0; j < N; ++j) acc[j] = accumulate ? _mm512_loadu_ps(c + j * ldc) : init;
  for (int64_t p = 0; p < count; ++p) {
    const float *ap = a + aoff[p];
    const float *bp = b + boff[p];
    for (int l = 0; l < k; ++l) {
      const __m512 va = _mm512_loadu_ps(ap + 16 * l);
      const float *brow = bp + l * bl;
#pragma GCC unroll 16
      for (int j = 0; j < N; ++j) acc[j] = _mm512_fmadd_ps(va, _mm512_set1_ps(brow[j * cs]), acc[j]);
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < N; ++j) _mm512_storeu_ps(c + j * ldc, acc[j]);
}

/* One kernel per (column stride class, n): BJ = 0 (any bj), 1, 16, 32 floats. */
#define SMM_CONV_AVX512_KERNEL(TAG, BJ, N)                                                       \
  static __attribute__((target("avx512f"))) void brgemm16_f32_avx512_16x##N##_##TAG(              \
      int n, int k, int64_t count, const float *a, const int64_t *aoff, const float *b,        \
      const int64_t *boff, int64_t bl, int64_t bj, float *c, int64_t ldc, int accumulate,      \
      const float *bias)                                                                       \
  {                                                                                            \
    (void)n;                                                                                   \
    brgemm16_avx512_body(N, BJ, k, count, a, aoff, b, boff, bl, bj, c, ldc, accumulate, bias); \
  }
#define SMM_CONV_AVX512_ALL_N(TAG, BJ) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 1) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 2) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 3) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 4) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 5) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 6) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 7) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 8) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 9) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 10) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 11) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 12) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 13) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 14) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 15) \
  SMM_CONV_AVX512_KERNEL(TAG, BJ, 16)
SMM_CONV_AVX512_ALL_N(bjany, 0)
SMM_CONV_AVX512_ALL_N(bj1, 1)
SMM_CONV_AVX512_ALL_N(bj16, 16)
SMM_CONV_AVX512_ALL_N(bj32, 32)

const conv_brgemm16_fn conv_brgemm16_f32_avx512[CONV_BJ_CLASSES][CONV_NMAX_AVX512 + 1] = {
  {0, brgemm16_f32_avx512_16x1_bjany, brgemm16_f32_avx512_16x2_bjany, brgemm16_f32_avx512_16x3_bjany, brgemm16_f32_avx512_16x4_bjany, brgemm16_f32_avx512_16x5_bjany, brgemm16_f32_avx512_16x6_bjany, brgemm16_f32_avx512_16x7_bjany, brgemm16_f32_avx512_16x8_bjany, brgemm16_f32_avx512_16x9_bjany, brgemm16_f32_avx512_16x10_bjany, brgemm16_f32_avx512_16x11_bjany, brgemm16_f32_avx512_16x12_bjany, brgemm16_f32_avx512_16x13_bjany, brgemm16_f32_avx512_16x14_bjany, brgemm16_f32_avx512_16x15_bjany, brgemm16_f32_avx512_16x16_bjany},
  {0, brgemm16_f32_avx512_16x1_bj1, brgemm16_f32_avx512_16x2_bj1, brgemm16_f32_avx512_16x3_bj1, brgemm16_f32_avx512_16x4_bj1, brgemm16_f32_avx512_16x5_bj1, brgemm16_f32_avx512_16x6_bj1, brgemm16_f32_avx512_16x7_bj1, brgemm16_f32_avx512_16x8_bj1, brgemm16_f32_avx512_16x9_bj1, brgemm16_f32_avx512_16x10_bj1, brgemm16_f32_avx512_16x11_bj1, brgemm16_f32_avx512_16x12_bj1, brgemm16_f32_avx512_16x13_bj1, brgemm16_f32_avx512_16x14_bj1, brgemm16_f32_avx512_16x15_bj1, brgemm16_f32_avx512_16x16_bj1},
  {0, brgemm16_f32_avx512_16x1_bj16, brgemm16_f32_avx512_16x2_bj16, brgemm16_f32_avx512_16x3_bj16, brgemm16_f32_avx512_16x4_bj16, brgemm16_f32_avx512_16x5_bj16, brgemm16_f32_avx512_16x6_bj16, brgemm16_f32_avx512_16x7_bj16, brgemm16_f32_avx512_16x8_bj16, brgemm16_f32_avx512_16x9_bj16, brgemm16_f32_avx512_16x10_bj16, brgemm16_f32_avx512_16x11_bj16, brgemm16_f32_avx512_16x12_bj16, brgemm16_f32_avx512_16x13_bj16, brgemm16_f32_avx512_16x14_bj16, brgemm16_f32_avx512_16x15_bj16, brgemm16_f32_avx512_16x16_bj16},
  {0, brgemm16_f32_avx512_16x1_bj32, brgemm16_f32_avx512_16x2_bj32, brgemm16_f32_avx512_16x3_bj32, brgemm16_f32_avx512_16x4_bj32, brgemm16_f32_avx512_16x5_bj32, brgemm16_f32_avx512_16x6_bj32, brgemm16_f32_avx512_16x7_bj32, brgemm16_f32_avx512_16x8_bj32, brgemm16_f32_avx512_16x9_bj32, brgemm16_f32_avx512_16x10_bj32, brgemm16_f32_avx512_16x11_bj32, brgemm16_f32_avx512_16x12_bj32, brgemm16_f32_avx512_16x13_bj32, brgemm16_f32_avx512_16x14_bj32, brgemm16_f32_avx512_16x15_bj32, brgemm16_f32_avx512_16x16_bj32},
};
#else
/* Not an x86-64 build: the table stays empty and conv_brgemm16_get never selects it. */
const conv_brgemm16_fn conv_brgemm16_f32_avx512[CONV_BJ_CLASSES][CONV_NMAX_AVX512 + 1] = {{0}};
#endif
