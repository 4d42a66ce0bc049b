/* AVX2 transpose of 4-byte elements (f32) in 8x8 register blocks. The out-of-place block is two 8x8
 * blocks side by side (8 rows x 16 columns of the input): whole 64-byte output lines per row. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include "cpu.h"
#include "transpose.h"

#define TR_ATTR __attribute__((target("avx2,fma")))
#define TR_ELEM uint32_t
#define TR_BM 8
#define TR_BN 16
#define TR_INPLACE 1
#define TR_SQ 8
#define TR_STREAMS 1
#define TR_VEC_BYTES 32
#define TR_PARTIAL 0
#define TR_NAME(op) smm_##op##_avx2_f32_8x8

/* Bits of (register; element) after the loads: (r2 c1 c0; c2 r1 r0) (the 128-bit loads do the
 * lane-crossing stage). unpack_ps over c0 pairs -> (r2 c1 r1; c2 r0 c0); unpack_pd over c1 pairs ->
 * (r2 r0 r1; c2 c1 c0): row i sits in register t8_row(i). */
static inline int t8_row(int i) { return (i & 4) | ((i & 1) << 1) | ((i >> 1) & 1); }

static inline TR_ATTR void t8_load_shuffle(const float *in, int64_t ldi, __m256 r[8])
{
  __m256 t[8];
  for (int k = 0; k < 4; ++k)
    for (int h = 0; h < 2; ++h)
      t[4 * h + k] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(in + k * ldi + 4 * h)),
                                          _mm_loadu_ps(in + (k + 4) * ldi + 4 * h), 1);
  for (int q = 0; q < 8; q += 2) {
    r[q] = _mm256_unpacklo_ps(t[q], t[q + 1]);
    r[q + 1] = _mm256_unpackhi_ps(t[q], t[q + 1]);
  }
  for (int q = 0; q < 8; q += 4)
    for (int b = 0; b < 2; ++b) {
      const __m256d x = _mm256_castps_pd(r[q + b]), y = _mm256_castps_pd(r[q + b + 2]);
      t[q + b] = _mm256_castpd_ps(_mm256_unpacklo_pd(x, y));
      t[q + b + 2] = _mm256_castpd_ps(_mm256_unpackhi_pd(x, y));
    }
  for (int i = 0; i < 8; ++i) r[i] = t[t8_row(i)];
}

static inline TR_ATTR void tr_block(const uint32_t *in, int64_t ldi, uint32_t *out, int64_t ldo)
{
  __m256 r[8], s[8];
  t8_load_shuffle((const float *)in, ldi, r);
  t8_load_shuffle((const float *)(in + 8 * ldi), ldi, s);
  for (int i = 0; i < 8; ++i) {
    _mm256_storeu_ps((float *)(out + i * ldo), r[i]);
    _mm256_storeu_ps((float *)(out + i * ldo + 8), s[i]);
  }
}

static inline TR_ATTR void tr_block_nt(const uint32_t *in, int64_t ldi, uint32_t *out, int64_t ldo)
{
  __m256 r[8], s[8];
  t8_load_shuffle((const float *)in, ldi, r);
  t8_load_shuffle((const float *)(in + 8 * ldi), ldi, s);
  for (int i = 0; i < 8; ++i) {
    _mm256_stream_ps((float *)(out + i * ldo), r[i]);
    _mm256_stream_ps((float *)(out + i * ldo + 8), s[i]);
  }
}

static inline TR_ATTR void tr_swap_sq(uint32_t *a, uint32_t *b, int64_t ld)
{
  __m256 ra[8], rb[8];
  t8_load_shuffle((const float *)a, ld, ra);
  t8_load_shuffle((const float *)b, ld, rb);
  for (int i = 0; i < 8; ++i) {
    _mm256_storeu_ps((float *)(a + i * ld), rb[i]);
    _mm256_storeu_ps((float *)(b + i * ld), ra[i]);
  }
}

static inline TR_ATTR void tr_diag_sq(uint32_t *a, int64_t ld)
{
  __m256 r[8];
  t8_load_shuffle((const float *)a, ld, r);
  for (int i = 0; i < 8; ++i) _mm256_storeu_ps((float *)(a + i * ld), r[i]);
}

#include "trans_impl.h"

const smm_trans_kernels smm_trans_avx2_4 = {
  smm_otrans_avx2_f32_8x8, smm_itrans_swap_avx2_f32_8x8, smm_itrans_diag_avx2_f32_8x8,
  smm_copy_avx2, smm_zero_avx2, TR_BM, TR_BN, TR_SQ, SMM_ISA_AVX2, 4, 1, "trans_avx2_f32_8x8", "trans_avx2_f32_8x8"
};

#endif
