/* AVX-512F transpose of 8-byte elements (f64, c64) in 8x8 register blocks: one zmm per column in,
 * one zmm (a whole 64-byte line) per row out. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include "cpu.h"
#include "transpose.h"

#define TR_ATTR __attribute__((target("avx512f")))
#define TR_ELEM uint64_t
#define TR_BM 8
#define TR_BN 8
#define TR_INPLACE 0 /* the table borrows the AVX2 in-place kernels */
#define TR_STREAMS 1
#define TR_VEC_BYTES 64
#define TR_PARTIAL 1
#define TR_NAME(op) smm_##op##_avx512_f64_8x8

/* r[q], q = 4h + k (k < 4): [column k, rows 4h..4h+3 | column k+4, rows 4h..4h+3]. The 256-bit
 * loads do the outermost of the three transposition stages, so only two shuffle stages are left
 * for the shuffle unit (the bottleneck when the data sit in cache). */
static inline TR_ATTR void t8_load(const double *in, int64_t ldi, __m512d r[8])
{
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_loadu_pd(in + k * ldi)),
                              _mm256_loadu_pd(in + (k + 4) * ldi), 1);
    r[k + 4] = _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_loadu_pd(in + k * ldi + 4)),
                                  _mm256_loadu_pd(in + (k + 4) * ldi + 4), 1);
  }
}

/* After t8_load: register bits (row bit 2, col bit 1, col bit 0), element bits (col bit 2, row bit 1,
 * row bit 0). Stage 1 swaps register bit 0 with element bit 0, stage 2 register bit 1 with element
 * bit 1; r[i] is then row i. */
static inline TR_ATTR void t8_shuffle(__m512d r[8])
{
  const __m512i lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
  const __m512i hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
  __m512d t[8];
  for (int q = 0; q < 8; q += 2) {
    t[q] = _mm512_unpacklo_pd(r[q], r[q + 1]);
    t[q + 1] = _mm512_unpackhi_pd(r[q], r[q + 1]);
  }
  for (int q = 0; q < 8; q += 4)
    for (int b = 0; b < 2; ++b) {
      r[q + b] = _mm512_permutex2var_pd(t[q + b], lo, t[q + b + 2]);
      r[q + b + 2] = _mm512_permutex2var_pd(t[q + b], hi, t[q + b + 2]);
    }
}

static inline TR_ATTR void tr_block(const uint64_t *in, int64_t ldi, uint64_t *out, int64_t ldo)
{
  __m512d r[8];
  t8_load((const double *)in, ldi, r);
  t8_shuffle(r);
  for (int i = 0; i < 8; ++i) _mm512_storeu_pd((double *)(out + i * ldo), r[i]);
}

static inline TR_ATTR void tr_block_nt(const uint64_t *in, int64_t ldi, uint64_t *out, int64_t ldo)
{
  __m512d r[8];
  t8_load((const double *)in, ldi, r);
  t8_shuffle(r);
  for (int i = 0; i < 8; ++i) _mm512_stream_pd((double *)(out + i * ldo), r[i]);
}

/* Edge block: rows < mr, columns < nc (masked loads and stores never touch anything else). */
static inline TR_ATTR void tr_block_part(const uint64_t *in, int64_t ldi, uint64_t *out, int64_t ldo, int mr, int nc)
{
  const __mmask8 rows = (__mmask8)((1u << mr) - 1), cols = (__mmask8)((1u << nc) - 1);
  __m512d c[8], r[8];
  for (int k = 0; k < 8; ++k)
    c[k] = k < nc ? _mm512_maskz_loadu_pd(rows, (const double *)(in + k * ldi)) : _mm512_setzero_pd();
  for (int k = 0; k < 4; ++k) {  /* the layout t8_load makes, from whole columns */
    r[k] = _mm512_shuffle_f64x2(c[k], c[k + 4], _MM_SHUFFLE(1, 0, 1, 0));
    r[k + 4] = _mm512_shuffle_f64x2(c[k], c[k + 4], _MM_SHUFFLE(3, 2, 3, 2));
  }
  t8_shuffle(r);
  for (int i = 0; i < mr; ++i) _mm512_mask_storeu_pd((double *)(out + i * ldo), cols, r[i]);
}

#include "trans_impl.h"

/* In place, the AVX2 kernels (fewer registers live in a tile swap) measured 5-20 % faster on Zen 4
 * (double-pumped 512-bit shuffles), in cache and out of it. */
const smm_trans_kernels smm_trans_avx512_8 = {
  smm_otrans_avx512_f64_8x8, smm_itrans_swap_avx2_f64_4x4, smm_itrans_diag_avx2_f64_4x4,
  smm_copy_avx512, smm_zero_avx512, TR_BM, TR_BN, 4, SMM_ISA_AVX512, 8, 1, "trans_avx512_f64_8x8", "trans_avx2_f64_4x4"
};

#endif
