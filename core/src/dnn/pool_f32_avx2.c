/* AVX2 pooling: two ymm per pixel; argmax through float-domain blends of the index bits. */
#include "dnn_kernels.h"
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

__attribute__((target("avx2")))
void dnn_maxpool_f32_avx2(const dnn_pool_geom *g, const float *x, float *y, int32_t *argmax)
{
  for (int oh = 0; oh < g->OH; ++oh)
    for (int ow = 0; ow < g->OW; ++ow) {
      int hs, he, ws, we;
      dnn_pool_window(g, oh, ow, &hs, &he, &ws, &we, 0);
      __m256 best0 = _mm256_set1_ps(-__builtin_inff()), best1 = best0;
      __m256 where0 = _mm256_castsi256_ps(_mm256_set1_epi32(hs * g->W + ws)), where1 = where0;
      for (int h = hs; h < he; ++h)
        for (int w = ws; w < we; ++w) {
          const float *p = x + ((int64_t)h * g->W + w) * 16;
          const __m256 v0 = _mm256_loadu_ps(p), v1 = _mm256_loadu_ps(p + 8);
          const __m256 idx = _mm256_castsi256_ps(_mm256_set1_epi32(h * g->W + w));
          const __m256 gt0 = _mm256_cmp_ps(v0, best0, _CMP_GT_OQ), gt1 = _mm256_cmp_ps(v1, best1, _CMP_GT_OQ);
          best0 = _mm256_blendv_ps(best0, v0, gt0);
          best1 = _mm256_blendv_ps(best1, v1, gt1);
          where0 = _mm256_blendv_ps(where0, idx, gt0);
          where1 = _mm256_blendv_ps(where1, idx, gt1);
        }
      float *q = y + ((int64_t)oh * g->OW + ow) * 16;
      int32_t *a = argmax + ((int64_t)oh * g->OW + ow) * 16;
      _mm256_storeu_ps(q, best0);
      _mm256_storeu_ps(q + 8, best1);
      _mm256_storeu_si256((__m256i *)a, _mm256_castps_si256(where0));
      _mm256_storeu_si256((__m256i *)(a + 8), _mm256_castps_si256(where1));
    }
}

__attribute__((target("avx2")))
void dnn_avgpool_f32_avx2(const dnn_pool_geom *g, const float *x, float *y)
{
  for (int oh = 0; oh < g->OH; ++oh)
    for (int ow = 0; ow < g->OW; ++ow) {
      int hs, he, ws, we;
      float inv;
      dnn_pool_window(g, oh, ow, &hs, &he, &ws, &we, &inv);
      __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
      for (int h = hs; h < he; ++h)
        for (int w = ws; w < we; ++w) {
          acc0 = _mm256_add_ps(acc0, _mm256_loadu_ps(x + ((int64_t)h * g->W + w) * 16));
          acc1 = _mm256_add_ps(acc1, _mm256_loadu_ps(x + ((int64_t)h * g->W + w) * 16 + 8));
        }
      const __m256 s = _mm256_set1_ps(inv);
      _mm256_storeu_ps(y + ((int64_t)oh * g->OW + ow) * 16, _mm256_mul_ps(acc0, s));
      _mm256_storeu_ps(y + ((int64_t)oh * g->OW + ow) * 16 + 8, _mm256_mul_ps(acc1, s));
    }
}
#endif
