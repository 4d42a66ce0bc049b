/* Vector vocabulary of the AVX-512F path, f32: 16 floats per zmm register, 32 registers, mask registers for remainders. Include once per translation unit. */
#include <immintrin.h>
#include "x86_partial.h"
#define SMM_CAT2(a, b) a##b
#define SMM_CAT(a, b) SMM_CAT2(a, b)
#define T float
#define V __m512
#define L 16
#define MASK __mmask16
#define TGT __attribute__((target("avx512f")))
#define PFX(x) SMM_CAT(smm_avx512_f32_, x)
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VLOADM(p, msk) _mm512_maskz_loadu_ps((msk), (p))
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VSTOREM(p, msk, v) _mm512_mask_storeu_ps((p), (msk), (v))
#define VLOADP(p, n) smm_ld16s_part((p), (n))
#define VSTOREP(p, n, v) smm_st16s_part((p), (n), (v))
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VFMA(x, y, acc) _mm512_fmadd_ps((x), (y), (acc))
#define VMUL(x, y) _mm512_mul_ps((x), (y))
#define VADD(x, y) _mm512_add_ps((x), (y))
#define VSET1(s) _mm512_set1_ps(s)
#define MKMASK(n) ((__mmask16)((1u << (n)) - 1u))
#define PREFETCH_L1(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define PREFETCH_L2(p) _mm_prefetch((const char *)(p), _MM_HINT_T1)
