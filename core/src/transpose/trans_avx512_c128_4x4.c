/* AVX-512F transpose of 16-byte elements (c128) in 4x4 register blocks: one zmm per column in, one
 * zmm (a whole 64-byte line) per row out. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include "cpu.h"
#include "transpose.h"

#define TR_ATTR __attribute__((target("avx512f")))
#define TR_ELEM smm_elem16
#define TR_BM 4
#define TR_BN 4
#define TR_INPLACE 0 /* the table borrows the AVX2 in-place kernels */
#define TR_STREAMS 1
#define TR_VEC_BYTES 64
#define TR_PARTIAL 1
#define TR_NAME(op) smm_##op##_avx512_c128_4x4

/* r[q], q = 2h + k (k < 2): [column k, rows 2h, 2h+1 | column k+2, rows 2h, 2h+1]; one 128-bit
 * lane interleave over column pairs then leaves row i in r[i]. */
static inline TR_ATTR void t4_load_shuffle(const smm_elem16 *in, int64_t ldi, __m512d r[4])
{
  const __m512i lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
  const __m512i hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
  __m512d t[4];
  for (int k = 0; k < 2; ++k)
    for (int h = 0; h < 2; ++h)
      t[2 * h + k] = _mm512_insertf64x4(
          _mm512_castpd256_pd512(_mm256_loadu_pd((const double *)(in + k * ldi + 2 * h))),
          _mm256_loadu_pd((const double *)(in + (k + 2) * ldi + 2 * h)), 1);
  for (int h = 0; h < 4; h += 2) {
    r[h] = _mm512_permutex2var_pd(t[h], lo, t[h + 1]);
    r[h + 1] = _mm512_permutex2var_pd(t[h], hi, t[h + 1]);
  }
}

/* The lane interleave of t4_load_shuffle on registers t[2h + k] already holding its load layout. */
static inline TR_ATTR void t4_shuffle(const __m512d t[4], __m512d r[4])
{
  const __m512i lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
  const __m512i hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
  for (int h = 0; h < 4; h += 2) {
    r[h] = _mm512_permutex2var_pd(t[h], lo, t[h + 1]);
    r[h + 1] = _mm512_permutex2var_pd(t[h], hi, t[h + 1]);
  }
}

/* Edge block: rows < mr, columns < nc (masked loads and stores never touch anything else). */
static inline TR_ATTR void tr_block_part(const smm_elem16 *in, int64_t ldi, smm_elem16 *out, int64_t ldo, int mr, int nc)
{
  const __mmask8 rows = (__mmask8)((1u << (2 * mr)) - 1), cols = (__mmask8)((1u << (2 * nc)) - 1);
  __m512d c[4], t[4], r[4];
  for (int k = 0; k < 4; ++k)
    c[k] = k < nc ? _mm512_maskz_loadu_pd(rows, (const double *)(in + k * ldi)) : _mm512_setzero_pd();
  for (int k = 0; k < 2; ++k) {
    t[k] = _mm512_shuffle_f64x2(c[k], c[k + 2], _MM_SHUFFLE(1, 0, 1, 0));
    t[k + 2] = _mm512_shuffle_f64x2(c[k], c[k + 2], _MM_SHUFFLE(3, 2, 3, 2));
  }
  t4_shuffle(t, r);
  for (int i = 0; i < mr; ++i) _mm512_mask_storeu_pd((double *)(out + i * ldo), cols, r[i]);
}

static inline TR_ATTR void tr_block(const smm_elem16 *in, int64_t ldi, smm_elem16 *out, int64_t ldo)
{
  __m512d r[4];
  t4_load_shuffle(in, ldi, r);
  for (int i = 0; i < 4; ++i) _mm512_storeu_pd((double *)(out + i * ldo), r[i]);
}

static inline TR_ATTR void tr_block_nt(const smm_elem16 *in, int64_t ldi, smm_elem16 *out, int64_t ldo)
{
  __m512d r[4];
  t4_load_shuffle(in, ldi, r);
  for (int i = 0; i < 4; ++i) _mm512_stream_pd((double *)(out + i * ldo), r[i]);
}

#include "trans_impl.h"

/* In place, the AVX2 kernels (fewer registers live in a tile swap) measured 5-20 % faster on Zen 4
 * (double-pumped 512-bit shuffles), in cache and out of it. */
const smm_trans_kernels smm_trans_avx512_16 = {
  smm_otrans_avx512_c128_4x4, smm_itrans_swap_avx2_c128_2x2, smm_itrans_diag_avx2_c128_2x2,
  smm_copy_avx512, smm_zero_avx512, TR_BM, TR_BN, 2, SMM_ISA_AVX512, 16, 1, "trans_avx512_c128_4x4", "trans_avx2_c128_2x2"
};

#endif
