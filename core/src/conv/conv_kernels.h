/* Convolution micro-kernels: one register-blocked batch-reduce product on 16-channel blocks.
 *
 * Contract (docs/gxm.md, "micro-kernel"): for columns j < n,
 *     C[:, j] = init_j + sum_{p < count} sum_{l < k} A_p[16*l .. 16*l+15] * B_p[l*bl + j*bj]
 * with A_p = a + aoff[p], B_p = b + boff[p], C[:, j] the 16 floats at c + j*ldc, and
 *     init_j = C[:, j]        when accumulate != 0,
 *              bias[0..15]    when accumulate == 0 and bias != NULL,
 *              0              otherwise.
 * Forward, backward-data and backward-weights of a direct NCHWc convolution are all this
 * product with different strides (see core/conv.pyx). A column of A is one 16-float vector
 * (16 output channels for forward, 16 input channels for backward-data); B entries are scalars
 * broadcast against it. Each ISA file provides kernels specialised for n = 1..nmax so the n
 * accumulators live in registers.
 */
#ifndef SMM_CONV_KERNELS_H
#define SMM_CONV_KERNELS_H
#include <stdint.h>

typedef void (*conv_brgemm16_fn)(int n, int k, int64_t count,
                                 const float *a, const int64_t *aoff,
                                 const float *b, const int64_t *boff, int64_t bl, int64_t bj,
                                 float *c, int64_t ldc, int accumulate, const float *bias);

/* Widest column tile the ISA path's kernels handle (registers: n accumulators + operands). */
int conv_brgemm16_nmax(int isa);
/* Kernel for 1 <= n <= conv_brgemm16_nmax(isa) and column stride bj (bj = 1, 16 and 32 get
 * kernels with the stride folded in; any other bj a general one); isa is an enum smm_isa the
 * CPU can run. NULL for an n out of range. */
conv_brgemm16_fn conv_brgemm16_get(int isa, int n, int64_t bj);

/* Adds the per-channel sum and sum of squares of an n-column tile to stats[0..15], [16..31]. */
typedef void (*conv_stats_fn)(const float *c, int n, double *stats);
conv_stats_fn conv_tile_stats_get(int isa);

/* Per-ISA tables (defined in the brgemm16_f32_<isa>_16xn.c files). */
#define CONV_NMAX_GENERIC 16
#define CONV_NMAX_AVX2 6
#define CONV_NMAX_AVX512 16
extern const conv_brgemm16_fn conv_brgemm16_f32_generic[CONV_NMAX_GENERIC + 1];
/* Column-stride classes of the vector tables: 0 any bj, 1: bj == 1, 2: 16, 3: 32. */
#define CONV_BJ_CLASSES 4
extern const conv_brgemm16_fn conv_brgemm16_f32_avx2[CONV_BJ_CLASSES][CONV_NMAX_AVX2 + 1];
extern const conv_brgemm16_fn conv_brgemm16_f32_avx512[CONV_BJ_CLASSES][CONV_NMAX_AVX512 + 1];

#endif
