/* NEK mini-app C helpers: streaming update/copy with non-temporal stores and Nek's mxm, compiled
 * once per ISA path (generic / AVX2 / AVX-512) and chosen at run time through the tables below
 * (indexed by enum smm_isa, core/include/cpu.h). Only the paths the CPU can run are ever called.
 */
#ifndef NEK_KERNELS_H
#define NEK_KERNELS_H
#include <stdint.h>
#include <stddef.h>
#include "cpu.h"

#define NEK_ALWAYS static inline __attribute__((always_inline))

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define NEK_X86 1
#endif

/* ---------------- generic: SSE2 streaming stores are part of x86-64 ---------------- */
#define TGT
#ifdef NEK_X86
#define T double
#define L 2
#define V __m128d
#define ALIGN 16
#define SFX f64_generic
#define VLOADU(p) _mm_loadu_pd(p)
#define VSTREAM(p, v) _mm_stream_pd((p), (v))
#define VSET1(x) _mm_set1_pd(x)
#define VMUL(a, b) _mm_mul_pd((a), (b))
#define VFMA(a, b, c) _mm_add_pd(_mm_mul_pd((a), (b)), (c))
#define SFMA(a, b, c) ((a) * (b) + (c))
#include "nek_stream_tpl.h"
#include "nek_vocab_undef.h"
#define T float
#define L 4
#define V __m128
#define ALIGN 16
#define SFX f32_generic
#define VLOADU(p) _mm_loadu_ps(p)
#define VSTREAM(p, v) _mm_stream_ps((p), (v))
#define VSET1(x) _mm_set1_ps(x)
#define VMUL(a, b) _mm_mul_ps((a), (b))
#define VFMA(a, b, c) _mm_add_ps(_mm_mul_ps((a), (b)), (c))
#define SFMA(a, b, c) ((a) * (b) + (c))
#include "nek_stream_tpl.h"
#include "nek_vocab_undef.h"
#else
#define L 1
#define ALIGN 8
#define SFMA(a, b, c) ((a) * (b) + (c))
#define T double
#define SFX f64_generic
#include "nek_stream_tpl.h"
#undef T
#undef SFX
#define T float
#define SFX f32_generic
#include "nek_stream_tpl.h"
#undef T
#undef SFX
#undef L
#undef ALIGN
#undef SFMA
#endif
#undef TGT

#ifdef NEK_X86
/* ---------------- AVX2 + FMA ---------------- */
#define TGT __attribute__((target("avx2,fma")))
#define T double
#define L 4
#define V __m256d
#define ALIGN 32
#define SFX f64_avx2
#define VLOADU(p) _mm256_loadu_pd(p)
#define VSTREAM(p, v) _mm256_stream_pd((p), (v))
#define VSET1(x) _mm256_set1_pd(x)
#define VMUL(a, b) _mm256_mul_pd((a), (b))
#define VFMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define SFMA(a, b, c) __builtin_fma((a), (b), (c))
#include "nek_stream_tpl.h"
#include "nek_vocab_undef.h"
#define T float
#define L 8
#define V __m256
#define ALIGN 32
#define SFX f32_avx2
#define VLOADU(p) _mm256_loadu_ps(p)
#define VSTREAM(p, v) _mm256_stream_ps((p), (v))
#define VSET1(x) _mm256_set1_ps(x)
#define VMUL(a, b) _mm256_mul_ps((a), (b))
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define SFMA(a, b, c) __builtin_fmaf((a), (b), (c))
#include "nek_stream_tpl.h"
#include "nek_vocab_undef.h"
#undef TGT

/* ---------------- AVX-512 ---------------- */
#define TGT __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define T double
#define L 8
#define V __m512d
#define ALIGN 64
#define SFX f64_avx512
#define VLOADU(p) _mm512_loadu_pd(p)
#define VSTREAM(p, v) _mm512_stream_pd((p), (v))
#define VSET1(x) _mm512_set1_pd(x)
#define VMUL(a, b) _mm512_mul_pd((a), (b))
#define VFMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define SFMA(a, b, c) __builtin_fma((a), (b), (c))
#include "nek_stream_tpl.h"
#include "nek_vocab_undef.h"
#define T float
#define L 16
#define V __m512
#define ALIGN 64
#define SFX f32_avx512
#define VLOADU(p) _mm512_loadu_ps(p)
#define VSTREAM(p, v) _mm512_stream_ps((p), (v))
#define VSET1(x) _mm512_set1_ps(x)
#define VMUL(a, b) _mm512_mul_ps((a), (b))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define SFMA(a, b, c) __builtin_fmaf((a), (b), (c))
#include "nek_stream_tpl.h"
#include "nek_vocab_undef.h"
#undef TGT
#define NEK_PICK(name, sfx_generic, sfx_avx2, sfx_avx512) \
  { name##sfx_generic, name##sfx_avx2, name##sfx_avx512 }
#else
/* Other architectures: every slot runs the portable code. */
#define NEK_PICK(name, sfx_generic, sfx_avx2, sfx_avx512) \
  { name##sfx_generic, name##sfx_generic, name##sfx_generic }
#endif

typedef void (*nek_helmholtz_f64_fn)(const double *, const double *, const double *, const double *,
                                     const double *, const double *, const double *, const double *,
                                     double *, double, double, int64_t);
typedef void (*nek_helmholtz_f32_fn)(const float *, const float *, const float *, const float *,
                                     const float *, const float *, const float *, const float *,
                                     float *, float, float, int64_t);
typedef void (*nek_copy_f64_fn)(const double *, double *, int64_t);
typedef void (*nek_copy_f32_fn)(const float *, float *, int64_t);
typedef void (*nek_mxm_f64_fn)(const double *, int64_t, const double *, int64_t, double *, int64_t);
typedef void (*nek_mxm_f32_fn)(const float *, int64_t, const float *, int64_t, float *, int64_t);

static const nek_helmholtz_f64_fn nek_helmholtz_f64[SMM_ISA_COUNT] =
    NEK_PICK(nek_stream_helmholtz_, f64_generic, f64_avx2, f64_avx512);
static const nek_helmholtz_f32_fn nek_helmholtz_f32[SMM_ISA_COUNT] =
    NEK_PICK(nek_stream_helmholtz_, f32_generic, f32_avx2, f32_avx512);
static const nek_copy_f64_fn nek_copy_f64[SMM_ISA_COUNT] = NEK_PICK(nek_stream_copy_, f64_generic, f64_avx2, f64_avx512);
static const nek_copy_f32_fn nek_copy_f32[SMM_ISA_COUNT] = NEK_PICK(nek_stream_copy_, f32_generic, f32_avx2, f32_avx512);
static const nek_mxm_f64_fn nek_mxm_f64[SMM_ISA_COUNT] = NEK_PICK(nek_mxm_, f64_generic, f64_avx2, f64_avx512);
static const nek_mxm_f32_fn nek_mxm_f32[SMM_ISA_COUNT] = NEK_PICK(nek_mxm_, f32_generic, f32_avx2, f32_avx512);

/* Streaming stores are weakly ordered: make them visible before another thread reads the result. */
static inline void nek_stream_fence(void)
{
#ifdef NEK_X86
  _mm_sfence();
#endif
}

#endif
