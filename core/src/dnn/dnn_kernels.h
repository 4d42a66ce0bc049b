/* Pooling micro-kernels on one channel-blocked plane (H x W pixels of 16 channels).
 *
 * Window of output (oh, ow): rows [oh*sh - ph, +kh) and columns [ow*sw - pw, +kw), clipped to
 * the input. Max: y = the largest value (NaN never wins: comparisons are ordered), argmax = its
 * pixel index h*W + w (the first one on ties, in row-major window order; the window's first
 * pixel when every value is -inf or NaN). Average: the window's sum times 1/divisor, the
 * divisor counting the window clipped to the padded input (Caffe), summed in window order.
 * Callers guarantee H*W and OH*OW fit int32 (argmax is int32); element offsets (pixel * 16) are
 * formed in int64, as they pass INT32_MAX for planes of 2**27 pixels. */
#ifndef SMM_DNN_KERNELS_H
#define SMM_DNN_KERNELS_H
#include <stdint.h>

typedef struct dnn_pool_geom {
  int H, W, OH, OW, kh, kw, sh, sw, ph, pw;
} dnn_pool_geom;

typedef void (*dnn_maxpool_fn)(const dnn_pool_geom *g, const float *x, float *y, int32_t *argmax);
typedef void (*dnn_avgpool_fn)(const dnn_pool_geom *g, const float *x, float *y);

/* ReLU on n contiguous floats: g == NULL: y = x > 0 ? x : slope*x; else y = x > 0 ? g : slope*g. */
typedef void (*dnn_relu_fn)(const float *x, const float *g, float *y, int64_t n, float slope);
dnn_relu_fn dnn_relu_get(int isa);

dnn_maxpool_fn dnn_maxpool_get(int isa);
dnn_avgpool_fn dnn_avgpool_get(int isa);

void dnn_maxpool_f32_generic(const dnn_pool_geom *g, const float *x, float *y, int32_t *argmax);
void dnn_avgpool_f32_generic(const dnn_pool_geom *g, const float *x, float *y);
void dnn_maxpool_f32_avx2(const dnn_pool_geom *g, const float *x, float *y, int32_t *argmax);
void dnn_avgpool_f32_avx2(const dnn_pool_geom *g, const float *x, float *y);
void dnn_maxpool_f32_avx512(const dnn_pool_geom *g, const float *x, float *y, int32_t *argmax);
void dnn_avgpool_f32_avx512(const dnn_pool_geom *g, const float *x, float *y);

/* Window bounds shared by every ISA's kernels. */
static inline void dnn_pool_window(const dnn_pool_geom *g, int oh, int ow, int *hs, int *he, int *ws,
                                   int *we, float *inv)
{
  int h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw;
  int h1 = h0 + g->kh < g->H + g->ph ? h0 + g->kh : g->H + g->ph;
  int w1 = w0 + g->kw < g->W + g->pw ? w0 + g->kw : g->W + g->pw;
  if (inv) *inv = 1.0f / (float)((h1 - h0) * (w1 - w0));
  *hs = h0 > 0 ? h0 : 0;
  *ws = w0 > 0 ? w0 : 0;
  *he = h1 < g->H ? h1 : g->H;
  *we = w1 < g->W ? w1 : g->W;
}

#endif
