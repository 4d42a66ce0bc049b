/* Vector vocabulary of the AVX-512F path, f64: 8 doubles per zmm register, 32 registers, mask registers for remainders. Include once per translation unit. */
#include <immintrin.h>
#include "x86_partial.h"
#define SMM_CAT2(a, b) a##b
#define SMM_CAT(a, b) SMM_CAT2(a, b)
#define T double
#define V __m512d
#define L 8
#define MASK __mmask8
#define TGT __attribute__((target("avx512f")))
#define PFX(x) SMM_CAT(smm_avx512_f64_, x)
#define VZERO() _mm512_setzero_pd()
#define VLOAD(p) _mm512_loadu_pd(p)
#define VLOADM(p, msk) _mm512_maskz_loadu_pd((msk), (p))
#define VSTORE(p, v) _mm512_storeu_pd((p), (v))
#define VSTOREM(p, msk, v) _mm512_mask_storeu_pd((p), (msk), (v))
#define VLOADP(p, n) smm_ld8d_part((p), (n))
#define VSTOREP(p, n, v) smm_st8d_part((p), (n), (v))
#define VBCAST(p) _mm512_set1_pd(*(p))
#define VFMA(x, y, acc) _mm512_fmadd_pd((x), (y), (acc))
#define VMUL(x, y) _mm512_mul_pd((x), (y))
#define VADD(x, y) _mm512_add_pd((x), (y))
#define VSET1(s) _mm512_set1_pd(s)
#define MKMASK(n) ((__mmask8)((1u << (n)) - 1u))
#define PREFETCH_L1(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define PREFETCH_L2(p) _mm_prefetch((const char *)(p), _MM_HINT_T1)
