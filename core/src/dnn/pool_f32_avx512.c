/* AVX-512F pooling: one zmm is the 16 channels of a pixel; argmax by masked moves. */
#include "dnn_kernels.h"
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

__attribute__((target("avx512f")))
void dnn_maxpool_f32_avx512(const dnn_pool_geom *g, const float *x, float *y, int32_t *argmax)
{
  for (int oh = 0; oh < g->OH; ++oh)
    for (int ow = 0; ow < g->OW; ++ow) {
      int hs, he, ws, we;
      dnn_pool_window(g, oh, ow, &hs, &he, &ws, &we, 0);
      __m512 best = _mm512_set1_ps(-__builtin_inff());
      __m512i where = _mm512_set1_epi32(hs * g->W + ws);
      for (int h = hs; h < he; ++h)
        for (int w = ws; w < we; ++w) {
          const __m512 v = _mm512_loadu_ps(x + ((int64_t)h * g->W + w) * 16);
          const __mmask16 gt = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
          best = _mm512_mask_mov_ps(best, gt, v);
          where = _mm512_mask_mov_epi32(where, gt, _mm512_set1_epi32(h * g->W + w));
        }
      _mm512_storeu_ps(y + ((int64_t)oh * g->OW + ow) * 16, best);
      _mm512_storeu_si512((void *)(argmax + ((int64_t)oh * g->OW + ow) * 16), where);
    }
}

__attribute__((target("avx512f")))
void dnn_avgpool_f32_avx512(const dnn_pool_geom *g, const float *x, float *y)
{
  for (int oh = 0; oh < g->OH; ++oh)
    for (int ow = 0; ow < g->OW; ++ow) {
      int hs, he, ws, we;
      float inv;
      dnn_pool_window(g, oh, ow, &hs, &he, &ws, &we, &inv);
      __m512 acc = _mm512_setzero_ps();
      for (int h = hs; h < he; ++h)
        for (int w = ws; w < we; ++w) acc = _mm512_add_ps(acc, _mm512_loadu_ps(x + ((int64_t)h * g->W + w) * 16));
      _mm512_storeu_ps(y + ((int64_t)oh * g->OW + ow) * 16, _mm512_mul_ps(acc, _mm512_set1_ps(inv)));
    }
}
#endif
