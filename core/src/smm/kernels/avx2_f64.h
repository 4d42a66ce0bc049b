/* Vector vocabulary of the AVX2+FMA path, f64: 4 doubles per ymm register, 16 registers. Include once per translation unit. */
#include <immintrin.h>
#include "x86_partial.h"
#define SMM_CAT2(a, b) a##b
#define SMM_CAT(a, b) SMM_CAT2(a, b)
#define T double
#define V __m256d
#define L 4
#define MASK __m256i
#define TGT __attribute__((target("avx2,fma")))
#define PFX(x) SMM_CAT(smm_avx2_f64_, x)
#define VZERO() _mm256_setzero_pd()
#define VLOAD(p) _mm256_loadu_pd(p)
#define VLOADM(p, msk) _mm256_maskload_pd((p), (msk))
#define VSTORE(p, v) _mm256_storeu_pd((p), (v))
#define VSTOREM(p, msk, v) _mm256_maskstore_pd((p), (msk), (v))
#define VLOADP(p, n) smm_ld4d_part((p), (n))
#define VSTOREP(p, n, v) smm_st4d_part((p), (n), (v))
#define VBCAST(p) _mm256_broadcast_sd(p)
#define VFMA(x, y, acc) _mm256_fmadd_pd((x), (y), (acc))
#define VMUL(x, y) _mm256_mul_pd((x), (y))
#define VADD(x, y) _mm256_add_pd((x), (y))
#define VSET1(s) _mm256_set1_pd(s)
#define MKMASK(n) _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_set_epi64x(3, 2, 1, 0))
#define PREFETCH_L1(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define SMM_MASKED_LEAN 1 /* smm_tile.h: masked tiles' k loops not unrolled */
/* smm_tile.h: the strided forms only cached batches run add C on the FP adders, which Zen 3 runs
 * beside the FMA pipes (f64, in cache, batch loop inside, GFLOP/s: 12^3 3x4 35.4 -> 37.1, 13^3
 * 2x6 30.0 -> 31.6, 23^3 39.7 -> 41.7; f32 12^3 1x8 49.9 -> 52.3). From memory the FMA update is
 * faster (streamed 8^3 3x4 14.8 against 13.8, 23^3 2x6 26.5 against 24.8), so the other forms keep it. */
#define SMM_ADD_UPDATE_CACHED(MV, NR) 1
#define PREFETCH_L2(p) _mm_prefetch((const char *)(p), _MM_HINT_T1)
