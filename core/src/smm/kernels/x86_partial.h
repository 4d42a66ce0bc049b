/* Exact-size loads and stores of the first n lanes of a vector (x86), for C's partial vectors.
 *
 * Why not masked moves: a masked store covers its whole vector width for the store-to-load
 * forwarding logic, so loading the next column of C (or the next product's C) right behind it
 * waits until the store has left the core — 28 cycles per column on Zen 4 for an AVX-512 masked
 * load/store pair, against 2 cycles for full-width ones (measured; AVX2 vmaskmov stores also cost
 * ~6 cycles each). Loads and stores made of 4-, 2- and 1-element pieces touch exactly the
 * elements of C, forward like ordinary moves, and still never read or write past the matrix.
 * Lanes past n hold zero (loads) or are ignored (stores). n is a compile-time constant in
 * specialised kernels; elsewhere the branches are predictable (one n per kernel).
 */
#ifndef SMM_X86_PARTIAL_H
#define SMM_X86_PARTIAL_H
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define SMM_PART256 static inline __attribute__((target("avx2"), always_inline))
#define SMM_PART512 static inline __attribute__((target("avx512f"), always_inline))

/* ---- f64 ---- */
SMM_PART256 __m256d smm_ld4d_part(const double *p, int n) /* n <= 4 */
{
  if (n >= 4) return _mm256_loadu_pd(p);
  const __m128d lo = n >= 2 ? _mm_loadu_pd(p) : n == 1 ? _mm_load_sd(p) : _mm_setzero_pd();
  const __m128d hi = n == 3 ? _mm_load_sd(p + 2) : _mm_setzero_pd();
  return _mm256_insertf128_pd(_mm256_castpd128_pd256(lo), hi, 1);
}

SMM_PART256 void smm_st4d_part(double *p, int n, __m256d v)
{
  if (n >= 4) { _mm256_storeu_pd(p, v); return; }
  const __m128d lo = _mm256_castpd256_pd128(v);
  if (n >= 2) {
    _mm_storeu_pd(p, lo);
    if (n == 3) _mm_store_sd(p + 2, _mm256_extractf128_pd(v, 1));
  } else if (n == 1) {
    _mm_store_sd(p, lo);
  }
}

SMM_PART512 __m512d smm_ld8d_part(const double *p, int n) /* n <= 8 */
{
  if (n >= 8) return _mm512_loadu_pd(p);
  if (n >= 4)
    return _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_loadu_pd(p)), smm_ld4d_part(p + 4, n - 4), 1);
  return _mm512_insertf64x4(_mm512_setzero_pd(), smm_ld4d_part(p, n), 0);
}

SMM_PART512 void smm_st8d_part(double *p, int n, __m512d v)
{
  if (n >= 8) { _mm512_storeu_pd(p, v); return; }
  if (n >= 4) {
    _mm256_storeu_pd(p, _mm512_castpd512_pd256(v));
    smm_st4d_part(p + 4, n - 4, _mm512_extractf64x4_pd(v, 1));
  } else {
    smm_st4d_part(p, n, _mm512_castpd512_pd256(v));
  }
}

/* ---- f32 (2-element pieces move as one 64-bit integer: no aliasing of float as double) ---- */
SMM_PART256 __m128 smm_ld4s_part(const float *p, int n) /* n <= 4 */
{
  if (n >= 4) return _mm_loadu_ps(p);
  if (n >= 2) {
    const __m128 lo = _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)p));
    return n == 3 ? _mm_movelh_ps(lo, _mm_load_ss(p + 2)) : lo;
  }
  return n == 1 ? _mm_load_ss(p) : _mm_setzero_ps();
}

SMM_PART256 void smm_st4s_part(float *p, int n, __m128 v)
{
  if (n >= 4) { _mm_storeu_ps(p, v); return; }
  if (n >= 2) {
    _mm_storel_epi64((__m128i *)p, _mm_castps_si128(v));
    if (n == 3) _mm_store_ss(p + 2, _mm_movehl_ps(v, v));
  } else if (n == 1) {
    _mm_store_ss(p, v);
  }
}

SMM_PART256 __m256 smm_ld8s_part(const float *p, int n) /* n <= 8 */
{
  if (n >= 8) return _mm256_loadu_ps(p);
  if (n >= 4) return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p)), smm_ld4s_part(p + 4, n - 4), 1);
  return _mm256_insertf128_ps(_mm256_setzero_ps(), smm_ld4s_part(p, n), 0);
}

SMM_PART256 void smm_st8s_part(float *p, int n, __m256 v)
{
  if (n >= 8) { _mm256_storeu_ps(p, v); return; }
  if (n >= 4) {
    _mm_storeu_ps(p, _mm256_castps256_ps128(v));
    smm_st4s_part(p + 4, n - 4, _mm256_extractf128_ps(v, 1));
  } else {
    smm_st4s_part(p, n, _mm256_castps256_ps128(v));
  }
}

SMM_PART512 __m512 smm_ld16s_part(const float *p, int n) /* n <= 16 */
{
  if (n >= 16) return _mm512_loadu_ps(p);
  if (n >= 8)
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm256_loadu_ps(p))),
                                               _mm256_castps_pd(smm_ld8s_part(p + 8, n - 8)), 1));
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_setzero_pd(), _mm256_castps_pd(smm_ld8s_part(p, n)), 0));
}

SMM_PART512 void smm_st16s_part(float *p, int n, __m512 v)
{
  if (n >= 16) { _mm512_storeu_ps(p, v); return; }
  if (n >= 8) {
    _mm256_storeu_ps(p, _mm512_castps512_ps256(v));
    smm_st8s_part(p + 8, n - 8, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  } else {
    smm_st8s_part(p, n, _mm512_castps512_ps256(v));
  }
}

#undef SMM_PART256
#undef SMM_PART512
#endif
#endif
