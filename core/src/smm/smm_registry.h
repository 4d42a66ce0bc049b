/* Kernel selection (which micro-kernel runs a descriptor) and the process-wide kernel registry. */
#ifndef SMM_REGISTRY_H
#define SMM_REGISTRY_H
#include "smm_kernel.h"

/* A fully unrolled kernel of the build-time SMM_MNK list (table written by gen_specialized.py). */
typedef struct smm_spec_entry {
  int8_t isa, dtype, mv, nr;
  int8_t regimes;           /* which choices this kernel is: bit SMM_TILES_ANY and/or SMM_TILES_CACHED for
                               AVX2 and for zmm weight 2, the same bits + 2 for full-width zmm units */
  int8_t strided_regimes;   /* the choices that use fn_strided (gen_specialized.py: STRIDED_*) */
  int32_t m, n, k;
  smm_kernel_fn fn;
  smm_strided_fn fn_strided;  /* NULL: none for this shape */
} smm_spec_entry;
extern const smm_spec_entry smm_spec_table[];
extern const int smm_spec_count;

/* The two tile choices: for any operands (fitted to cached and streamed measurements; the
 * kernel's fn) and for operands that stay in cache (the kernel's fn_cached). */
enum smm_tile_regime { SMM_TILES_ANY = 0, SMM_TILES_CACHED = 1 };

/* Register tile (vectors x columns) the cost model of `regime` picks for an m x n x k product on an
 * ISA path, weighing a zmm FMA as `zmm_weight` ymm ones (1 or 2; 0: the CPU's; unused off AVX-512). */
void smm_select_tile(int isa, int dtype, int64_t m, int64_t n, int64_t k, int regime, int zmm_weight, int *mv,
                     int *nr);

/* 0 if the descriptor is valid for this build and CPU-independent rules, else an error code < 0. */
int smm_desc_check(const smm_desc *d);

/* Registry: the kernel for a (validated, normalised) descriptor; built on first use. Thread-safe;
 * a hit is lock-free. Returns NULL if the descriptor is invalid or the registry is full. */
const smm_kernel *smm_registry_get(const smm_desc *d);

typedef struct smm_registry_stats {
  int64_t kernels, hits, misses, specialized;
} smm_registry_stats;
void smm_registry_get_stats(smm_registry_stats *out);
/* Copies up to `max` kernels and their hit counts; returns how many there are in all. */
int64_t smm_registry_list(const smm_kernel **kernels, int64_t *hits, int64_t max);

/* An empty call through a function pointer (the dispatch benchmark's "function-call (empty)"). */
void smm_empty_call(void);

#endif
