/* AVX2 transpose of 8-byte elements (f64, c64) in 4x4 register blocks. The out-of-place block is two
 * 4x4 blocks side by side (4 rows x 8 columns of the input), so each output row gets a whole 64-byte
 * line: streaming stores then never leave half-written lines in the write-combining buffers. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include "cpu.h"
#include "transpose.h"

#define TR_ATTR __attribute__((target("avx2,fma")))
#define TR_ELEM uint64_t
#define TR_BM 4
#define TR_BN 8
#define TR_INPLACE 1
#define TR_SQ 4
#define TR_STREAMS 1
#define TR_VEC_BYTES 32
#define TR_PARTIAL 0
#define TR_NAME(op) smm_##op##_avx2_f64_4x4

/* t[q], q = 2h + k (k < 2): [column k, rows 2h, 2h+1 | column k+2, rows 2h, 2h+1] (the 128-bit
 * loads do the lane-crossing stage); one unpack over column pairs leaves row i in r[i]. */
static inline TR_ATTR void t4_load_shuffle(const double *in, int64_t ldi, __m256d r[4])
{
  __m256d t[4];
  for (int k = 0; k < 2; ++k)
    for (int h = 0; h < 2; ++h)
      t[2 * h + k] = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(in + k * ldi + 2 * h)),
                                          _mm_loadu_pd(in + (k + 2) * ldi + 2 * h), 1);
  for (int h = 0; h < 4; h += 2) {
    r[h] = _mm256_unpacklo_pd(t[h], t[h + 1]);
    r[h + 1] = _mm256_unpackhi_pd(t[h], t[h + 1]);
  }
}

static inline TR_ATTR void tr_block(const uint64_t *in, int64_t ldi, uint64_t *out, int64_t ldo)
{
  __m256d r[4], s[4];
  t4_load_shuffle((const double *)in, ldi, r);
  t4_load_shuffle((const double *)(in + 4 * ldi), ldi, s);
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_pd((double *)(out + i * ldo), r[i]);
    _mm256_storeu_pd((double *)(out + i * ldo + 4), s[i]);
  }
}

static inline TR_ATTR void tr_block_nt(const uint64_t *in, int64_t ldi, uint64_t *out, int64_t ldo)
{
  __m256d r[4], s[4];
  t4_load_shuffle((const double *)in, ldi, r);
  t4_load_shuffle((const double *)(in + 4 * ldi), ldi, s);
  for (int i = 0; i < 4; ++i) {
    _mm256_stream_pd((double *)(out + i * ldo), r[i]);
    _mm256_stream_pd((double *)(out + i * ldo + 4), s[i]);
  }
}

static inline TR_ATTR void tr_swap_sq(uint64_t *a, uint64_t *b, int64_t ld)
{
  __m256d ra[4], rb[4];
  t4_load_shuffle((const double *)a, ld, ra);
  t4_load_shuffle((const double *)b, ld, rb);
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_pd((double *)(a + i * ld), rb[i]);
    _mm256_storeu_pd((double *)(b + i * ld), ra[i]);
  }
}

static inline TR_ATTR void tr_diag_sq(uint64_t *a, int64_t ld)
{
  __m256d r[4];
  t4_load_shuffle((const double *)a, ld, r);
  for (int i = 0; i < 4; ++i) _mm256_storeu_pd((double *)(a + i * ld), r[i]);
}

#include "trans_impl.h"

const smm_trans_kernels smm_trans_avx2_8 = {
  smm_otrans_avx2_f64_4x4, smm_itrans_swap_avx2_f64_4x4, smm_itrans_diag_avx2_f64_4x4,
  smm_copy_avx2, smm_zero_avx2, TR_BM, TR_BN, TR_SQ, SMM_ISA_AVX2, 8, 1, "trans_avx2_f64_4x4", "trans_avx2_f64_4x4"
};

#endif
