/* SPECFEM3D_GLOBE's stiffness (compute-forces) kernel for 5 x 5 x 5-point elements, single precision,
 * in five variants (Deville loops, unrolled loops, core.smm dispatched / prefetch / static kernels),
 * each compiled for the generic, AVX2 and AVX-512 paths and chosen at run time through the tables
 * below (indexed by enum smm_isa). The element loop and the assembly are driven from Cython.
 */
#ifndef SPECFEM_KERNELS_H
#define SPECFEM_KERNELS_H
#include <stdint.h>
#include "cpu.h"
#include "smm_kernel.h"

#define SPF_ALWAYS static inline __attribute__((always_inline))
#define SPF_N3 125
#define SPF_NGEOM 10 /* xix xiy xiz etax etay etaz gammax gammay gammaz jacobian */
#define SPF_NGRAV 9  /* rho*g (x y z), then H: xx yy zz xy xz yz */
#define SPF_ASSEMBLY_AHEAD 64 /* table entries between a prefetch and its use in the assembly */
#define SPF_G 16     /* elements per group of the interleaved variant: 16 float lanes (one AVX-512 vector) */
#define SPF_NPE (SPF_NGEOM + 2 + SPF_NGRAV)
/* Floats of per-thread scratch one group needs: u, per-element constants, d, n, rho_s_H. */
#define SPF_GROUP_SCRATCH ((3 + 9 + 9 + 3) * SPF_N3 * SPF_G + SPF_NPE * SPF_G)
/* Offset of derivative (component c, direction dir) in a 9 x 125 scratch block. */
#define SPF_T(c, dir) ((3 * (c) + (dir)) * SPF_N3)

enum spf_variant { SPF_DEVILLE = 0, SPF_UNROLLED, SPF_DISPATCHED, SPF_PREFETCH, SPF_STATIC, SPF_NVARIANTS };

typedef struct spf_model {
  int64_t nspec;
  const int32_t *ibool;    /* nspec x 125: local node of each GLL point */
  const float *displ;      /* nglob x 3 */
  float *sum_terms;        /* nspec x 3 x 125: each element's contributions, component after component */
  float *sum_terms_g;      /* groups x 3 x 125 x SPF_G: the same, interleaved (that variant only) */
  float *accel;            /* nglob x 3 */
  const int32_t *inv_start;/* nglob + 1: contributions of node g are inv_table[inv_start[g] .. inv_start[g+1]) */
  const int32_t *inv_table;/* offsets into sum_terms (x component; y, z follow at +125, +250) */
  const int32_t *inv_table_g; /* the same into sum_terms_g (y, z at +125 SPF_G, +250 SPF_G) */
  const float *geom;       /* nspec x SPF_NGEOM */
  const float *material;   /* nspec x 2: kappa, mu */
  const float *gravity;    /* nspec x SPF_NGRAV */
  const float *hprime;     /* 5 x 5, column-major: hprime(i, l) = l_l'(xi_i) */
  const float *hprimeT;
  const float *hprimewgll; /* hprimewgll(l, i) = hprime(l, i) w_l */
  const float *hprimewgllT;
  const float *wgll_yz, *wgll_xz, *wgll_xy, *wgll_cube; /* 125 each: w_j w_k, w_i w_k, w_i w_j, w_i w_j w_k */
} spf_model;

typedef struct spf_kernels {
  const smm_kernel *xmm1, *xmm2, *xmm3;    /* 5x25x5, 25x5x5, 5x5x5 */
  const smm_kernel *xmm1p, *xmm2p, *xmm3p; /* the same with prefetch of the next operands */
} spf_kernels;

typedef void (*spf_element_fn)(const spf_model *, const spf_kernels *, int64_t);
typedef void (*spf_assemble_fn)(const spf_model *, const int32_t *, const float *, int64_t, int64_t, int64_t);
typedef void (*spf_group_fn)(const spf_model *, int64_t, float *);

/* The prefetch calls name outputs that are not written yet (their addresses are only prefetched). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define TGT
#define SFX generic
#include "specfem_tpl.h"
#undef TGT
#undef SFX

#if defined(__x86_64__) || defined(_M_X64)
#define TGT __attribute__((target("avx2,fma")))
#define SFX avx2
#include "specfem_tpl.h"
#undef TGT
#undef SFX
#define TGT __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define SFX avx512
#include "specfem_tpl.h"
#undef TGT
#undef SFX
#define SPF_ISAS(name) { name##generic, name##avx2, name##avx512 }
#else
#define SPF_ISAS(name) { name##generic, name##generic, name##generic }
#endif

#pragma GCC diagnostic pop

static const spf_element_fn spf_element[SPF_NVARIANTS][SMM_ISA_COUNT] = {
  SPF_ISAS(spf_element_deville_), SPF_ISAS(spf_element_unrolled_), SPF_ISAS(spf_element_dispatched_),
  SPF_ISAS(spf_element_prefetch_), SPF_ISAS(spf_element_static_),
};
static const spf_assemble_fn spf_assemble[SMM_ISA_COUNT] = SPF_ISAS(spf_assemble_);
static const spf_group_fn spf_group[SMM_ISA_COUNT] = SPF_ISAS(spf_group_);

#endif
