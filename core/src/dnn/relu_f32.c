/* ReLU forward/backward on a contiguous range: y = x > 0 ? x : slope * x (a select, so NaN
 * stays NaN and -inf becomes -inf * slope exactly as the scalar definition), per ISA. */
#include "dnn_kernels.h"
#include "cpu.h"
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

static void relu_f32_generic(const float *x, const float *g, float *y, int64_t n, float slope)
{
  /* g == NULL: forward (y = relu(x)); else backward (y = x > 0 ? g : slope * g) */
  if (!g)
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0 ? x[i] : slope * x[i];
  else
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0 ? g[i] : slope * g[i];
}

#if defined(__x86_64__) || defined(_M_X64)
__attribute__((target("avx2")))
static void relu_f32_avx2(const float *x, const float *g, float *y, int64_t n, float slope)
{
  const __m256 zero = _mm256_setzero_ps(), s = _mm256_set1_ps(slope);
  const float *src = g ? g : x;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 pos = _mm256_cmp_ps(_mm256_loadu_ps(x + i), zero, _CMP_GT_OQ);
    const __m256 v = _mm256_loadu_ps(src + i);
    _mm256_storeu_ps(y + i, _mm256_blendv_ps(_mm256_mul_ps(v, s), v, pos));
  }
  relu_f32_generic(x + i, g ? g + i : 0, y + i, n - i, slope);
}

__attribute__((target("avx512f")))
static void relu_f32_avx512(const float *x, const float *g, float *y, int64_t n, float slope)
{
  const __m512 zero = _mm512_setzero_ps(), s = _mm512_set1_ps(slope);
  const float *src = g ? g : x;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __mmask16 pos = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), zero, _CMP_GT_OQ);
    const __m512 v = _mm512_loadu_ps(src + i);
    _mm512_storeu_ps(y + i, _mm512_mask_mov_ps(_mm512_mul_ps(v, s), pos, v));
  }
  relu_f32_generic(x + i, g ? g + i : 0, y + i, n - i, slope);
}
#endif

dnn_relu_fn dnn_relu_get(int isa)
{
#if defined(__x86_64__) || defined(_M_X64)
  if (isa == SMM_ISA_AVX512) return relu_f32_avx512;
  if (isa == SMM_ISA_AVX2) return relu_f32_avx2;
#endif
  (void)isa;
  return relu_f32_generic;
}
