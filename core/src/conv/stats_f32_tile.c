/* Per-channel sum and sum of squares of one output tile (n columns of 16 channels), added to
 * double accumulators stats[0..15] (sums) and stats[16..31] (squares). Within a tile (n <= 16
 * columns) the sums run in float registers; across tiles in double: the statistics of a
 * fused conv + batch norm cost a few instructions per column while the tile is in L1. */
#include "conv_kernels.h"
#include "cpu.h"
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

static void tile_stats_f32_generic(const float *c, int n, double *stats)
{
  float s[16] = {0}, q[16] = {0};
  for (int j = 0; j < n; ++j)
    for (int v = 0; v < 16; ++v) {
      const float t = c[16 * j + v];
      s[v] += t;
      q[v] += t * t;
    }
  for (int v = 0; v < 16; ++v) {
    stats[v] += s[v];
    stats[16 + v] += q[v];
  }
}

#if defined(__x86_64__) || defined(_M_X64)
__attribute__((target("avx2,fma")))
static void tile_stats_f32_avx2(const float *c, int n, double *stats)
{
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, q0 = s0, q1 = s0;
  for (int j = 0; j < n; ++j) {
    const __m256 a = _mm256_loadu_ps(c + 16 * j), b = _mm256_loadu_ps(c + 16 * j + 8);
    s0 = _mm256_add_ps(s0, a);
    s1 = _mm256_add_ps(s1, b);
    q0 = _mm256_fmadd_ps(a, a, q0);
    q1 = _mm256_fmadd_ps(b, b, q1);
  }
  const __m256 parts[4] = {s0, s1, q0, q1};
  for (int k = 0; k < 4; ++k) {
    double *d = stats + 8 * k;
    _mm256_storeu_pd(d, _mm256_add_pd(_mm256_loadu_pd(d), _mm256_cvtps_pd(_mm256_castps256_ps128(parts[k]))));
    _mm256_storeu_pd(d + 4, _mm256_add_pd(_mm256_loadu_pd(d + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(parts[k], 1))));
  }
}

__attribute__((target("avx512f")))
static void tile_stats_f32_avx512(const float *c, int n, double *stats)
{
  __m512 s = _mm512_setzero_ps(), q = s;
  for (int j = 0; j < n; ++j) {
    const __m512 a = _mm512_loadu_ps(c + 16 * j);
    s = _mm512_add_ps(s, a);
    q = _mm512_fmadd_ps(a, a, q);
  }
  const __m512 parts[2] = {s, q};
  for (int k = 0; k < 2; ++k) {
    double *d = stats + 16 * k;
    const __m256 lo = _mm512_castps512_ps256(parts[k]);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(parts[k]), 1));
    _mm512_storeu_pd(d, _mm512_add_pd(_mm512_loadu_pd(d), _mm512_cvtps_pd(lo)));
    _mm512_storeu_pd(d + 8, _mm512_add_pd(_mm512_loadu_pd(d + 8), _mm512_cvtps_pd(hi)));
  }
}
#endif

conv_stats_fn conv_tile_stats_get(int isa)
{
#if defined(__x86_64__) || defined(_M_X64)
  if (isa == SMM_ISA_AVX512) return tile_stats_f32_avx512;
  if (isa == SMM_ISA_AVX2) return tile_stats_f32_avx2;
#endif
  (void)isa;
  return tile_stats_f32_generic;
}
