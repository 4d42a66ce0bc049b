/* Portable pooling kernels (the reference the vector kernels are tested against). */
#include <math.h>
#include "dnn_kernels.h"

void dnn_maxpool_f32_generic(const dnn_pool_geom *g, const float *x, float *y, int32_t *argmax)
{
  for (int oh = 0; oh < g->OH; ++oh)
    for (int ow = 0; ow < g->OW; ++ow) {
      int hs, he, ws, we;
      dnn_pool_window(g, oh, ow, &hs, &he, &ws, &we, 0);
      float best[16];
      int32_t where[16];
      for (int v = 0; v < 16; ++v) { best[v] = -INFINITY; where[v] = hs * g->W + ws; }
      for (int h = hs; h < he; ++h)
        for (int w = ws; w < we; ++w)
          for (int v = 0; v < 16; ++v) {
            const float t = x[((int64_t)h * g->W + w) * 16 + v];
            if (t > best[v]) { best[v] = t; where[v] = h * g->W + w; }
          }
      for (int v = 0; v < 16; ++v) {
        y[((int64_t)oh * g->OW + ow) * 16 + v] = best[v];
        argmax[((int64_t)oh * g->OW + ow) * 16 + v] = where[v];
      }
    }
}

void dnn_avgpool_f32_generic(const dnn_pool_geom *g, const float *x, float *y)
{
  for (int oh = 0; oh < g->OH; ++oh)
    for (int ow = 0; ow < g->OW; ++ow) {
      int hs, he, ws, we;
      float inv, acc[16] = {0};
      dnn_pool_window(g, oh, ow, &hs, &he, &ws, &we, &inv);
      for (int h = hs; h < he; ++h)
        for (int w = ws; w < we; ++w)
          for (int v = 0; v < 16; ++v) acc[v] += x[((int64_t)h * g->W + w) * 16 + v];
      for (int v = 0; v < 16; ++v) y[((int64_t)oh * g->OW + ow) * 16 + v] = acc[v] * inv;
    }
}
