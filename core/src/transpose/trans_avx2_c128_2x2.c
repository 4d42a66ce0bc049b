/* AVX2 transpose of 16-byte elements (c128) in 2x2 register blocks: the 128-bit loads alone do the
 * transposition. The out-of-place block is two 2x2 blocks side by side (2 rows x 4 columns of the
 * input): whole 64-byte output lines per row. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include "cpu.h"
#include "transpose.h"

#define TR_ATTR __attribute__((target("avx2,fma")))
#define TR_ELEM smm_elem16
#define TR_BM 2
#define TR_BN 4
#define TR_INPLACE 1
#define TR_SQ 2
#define TR_STREAMS 1
#define TR_VEC_BYTES 32
#define TR_PARTIAL 0
#define TR_NAME(op) smm_##op##_avx2_c128_2x2

/* r[i] = [column 0, row i | column 1, row i] */
static inline TR_ATTR void t2_load(const smm_elem16 *in, int64_t ldi, __m256d r[2])
{
  for (int i = 0; i < 2; ++i)
    r[i] = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd((const double *)(in + i))),
                                _mm_loadu_pd((const double *)(in + ldi + i)), 1);
}

static inline TR_ATTR void tr_block(const smm_elem16 *in, int64_t ldi, smm_elem16 *out, int64_t ldo)
{
  __m256d r[2], s[2];
  t2_load(in, ldi, r);
  t2_load(in + 2 * ldi, ldi, s);
  for (int i = 0; i < 2; ++i) {
    _mm256_storeu_pd((double *)(out + i * ldo), r[i]);
    _mm256_storeu_pd((double *)(out + i * ldo + 2), s[i]);
  }
}

static inline TR_ATTR void tr_block_nt(const smm_elem16 *in, int64_t ldi, smm_elem16 *out, int64_t ldo)
{
  __m256d r[2], s[2];
  t2_load(in, ldi, r);
  t2_load(in + 2 * ldi, ldi, s);
  for (int i = 0; i < 2; ++i) {
    _mm256_stream_pd((double *)(out + i * ldo), r[i]);
    _mm256_stream_pd((double *)(out + i * ldo + 2), s[i]);
  }
}

static inline TR_ATTR void tr_swap_sq(smm_elem16 *a, smm_elem16 *b, int64_t ld)
{
  __m256d ra[2], rb[2];
  t2_load(a, ld, ra);
  t2_load(b, ld, rb);
  for (int i = 0; i < 2; ++i) {
    _mm256_storeu_pd((double *)(a + i * ld), rb[i]);
    _mm256_storeu_pd((double *)(b + i * ld), ra[i]);
  }
}

static inline TR_ATTR void tr_diag_sq(smm_elem16 *a, int64_t ld)
{
  __m256d r[2];
  t2_load(a, ld, r);
  for (int i = 0; i < 2; ++i) _mm256_storeu_pd((double *)(a + i * ld), r[i]);
}

#include "trans_impl.h"

const smm_trans_kernels smm_trans_avx2_16 = {
  smm_otrans_avx2_c128_2x2, smm_itrans_swap_avx2_c128_2x2, smm_itrans_diag_avx2_c128_2x2,
  smm_copy_avx2, smm_zero_avx2, TR_BM, TR_BN, TR_SQ, SMM_ISA_AVX2, 16, 1, "trans_avx2_c128_2x2", "trans_avx2_c128_2x2"
};

#endif
