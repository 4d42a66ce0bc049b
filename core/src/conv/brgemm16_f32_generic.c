/* Portable reference for the conv micro-kernel contract (conv_kernels.h); every ISA kernel is
 * tested against it. Accumulation order over (p, l) matches the vector kernels, so results agree
 * to the last bit unless the compiler contracts a*b+c differently (FMA vs mul+add). */
#include "conv_kernels.h"

static void brgemm16_f32_generic(int n, int k, int64_t count, const float *a, const int64_t *aoff,
                                 const float *b, const int64_t *boff, int64_t bl, int64_t bj,
                                 float *c, int64_t ldc, int accumulate, const float *bias)
{
  float acc[16];
  for (int j = 0; j < n; ++j) {
    for (int v = 0; v < 16; ++v)
      acc[v] = accumulate ? c[j * ldc + v] : (bias ? bias[v] : 0.0f);
    for (int64_t p = 0; p < count; ++p) {
      const float *ap = a + aoff[p];
      const float *bp = b + boff[p] + j * bj;
      for (int l = 0; l < k; ++l) {
        const float s = bp[l * bl];
        for (int v = 0; v < 16; ++v) acc[v] += ap[16 * l + v] * s;
      }
    }
    for (int v = 0; v < 16; ++v) c[j * ldc + v] = acc[v];
  }
}

const conv_brgemm16_fn conv_brgemm16_f32_generic[CONV_NMAX_GENERIC + 1] = {
  0, brgemm16_f32_generic, brgemm16_f32_generic, brgemm16_f32_generic, brgemm16_f32_generic,
  brgemm16_f32_generic, brgemm16_f32_generic, brgemm16_f32_generic, brgemm16_f32_generic,
  brgemm16_f32_generic, brgemm16_f32_generic, brgemm16_f32_generic, brgemm16_f32_generic,
  brgemm16_f32_generic, brgemm16_f32_generic, brgemm16_f32_generic, brgemm16_f32_generic,
};
