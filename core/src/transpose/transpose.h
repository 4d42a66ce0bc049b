/* Matrix transpose, copy and zeroing: the kernel table of core.transpose (see docs/transpose.md).
 *
 * All matrices are column-major with leading dimensions in ELEMENTS (bytes for copy/zero).
 * The routines here work on one tile and are single-threaded; the OpenMP loops over tiles live
 * in core/transpose.pyx. Element sizes 4, 8 and 16 bytes are moved as raw bits (f32, f64/c64,
 * c128): no arithmetic touches the data, so NaN payloads survive bit for bit.
 */
#ifndef SMM_TRANSPOSE_H
#define SMM_TRANSPOSE_H
#include <stddef.h>
#include <stdint.h>

/* Out-of-place: in is m x n (ldi), out is n x m (ldo); out[i*ldo + j] = in[j*ldi + i], in tiles of
 * tm x tn input elements (multiples of the register block).
 * streaming != 0 asks for non-temporal stores: register blocks store whole lines when every output
 * row starts on a 64-byte boundary; otherwise tiles go through an aligned buffer in L1 and each row
 * streams from its own first line boundary (trans_impl.h). streaming == 2 also reads
 * the input ahead with software prefetches (for inputs that come from memory, not the cache). Kernels that stream do not
 * fence: each thread calls smm_trans_fence() once after its last call (a fence per call stalls
 * until the write-combining buffers drain, which costs more than a small region's work). */
typedef void (*smm_otrans_fn)(const void *in, void *out, int64_t m, int64_t n, int64_t ldi, int64_t ldo,
                              int64_t tm, int64_t tn, int streaming);
/* Swap-transpose of two disjoint blocks: a is m x n, b is n x m, same ld; a := b^T, b := a^T. */
typedef void (*smm_itrans_swap_fn)(void *a, void *b, int64_t m, int64_t n, int64_t ld);
/* In-place transpose of the n x n block at a. */
typedef void (*smm_itrans_diag_fn)(void *a, int64_t n, int64_t ld);
/* Copy of `rowbytes` bytes in each of n columns: out[j*ldo + b] = in[j*ldi + b] (strides in bytes);
 * streaming: 64-byte non-temporal stores, fenced by the caller as for otrans. */
typedef void (*smm_copy_fn)(const void *in, void *out, int64_t rowbytes, int64_t n, int64_t ldi, int64_t ldo,
                            int streaming);
/* Zeroing of `rowbytes` bytes in each of n columns (ld in bytes). */
typedef void (*smm_zero_fn)(void *out, int64_t rowbytes, int64_t n, int64_t ld, int streaming);

typedef struct smm_trans_kernels {
  smm_otrans_fn otrans;
  smm_itrans_swap_fn itrans_swap;
  smm_itrans_diag_fn itrans_diag;
  smm_copy_fn copy;
  smm_zero_fn zero;
  int32_t block_m;   /* register block of otrans: rows of the input ... */
  int32_t block_n;   /* ... and columns of the input (= one 64-byte output line where streaming works) */
  int32_t block_sq;  /* square register block of the in-place kernels */
  int32_t isa;       /* enum smm_isa of the code */
  int32_t elemsize;  /* bytes per element */
  int32_t streams;   /* 1: otrans/copy/zero have non-temporal stores */
  const char *name;  /* e.g. "trans_avx512_f64_8x8" */
  const char *name_inplace;  /* the kernels itrans_swap/itrans_diag come from (may be borrowed) */
} smm_trans_kernels;

/* Orders this thread's non-temporal stores before anything it does next (sfence on x86). */
void smm_trans_fence(void);

/* The kernels for an ISA path (enum smm_isa) and an element size (4, 8 or 16); NULL if none.
 * The caller makes sure the CPU runs `isa` (core.cpu decides that). */
const smm_trans_kernels *smm_trans_lookup(int isa, int elemsize);

/* Per-ISA tables (registry: trans_registry.c). */
extern const smm_trans_kernels smm_trans_generic_4, smm_trans_generic_8, smm_trans_generic_16;
extern const smm_trans_kernels smm_trans_avx2_4, smm_trans_avx2_8, smm_trans_avx2_16;
extern const smm_trans_kernels smm_trans_avx512_4, smm_trans_avx512_8, smm_trans_avx512_16;

/* The AVX2 in-place kernels, which the AVX-512 tables borrow (see trans_avx512_*.c). */
void smm_itrans_swap_avx2_f32_8x8(void *a, void *b, int64_t m, int64_t n, int64_t ld);
void smm_itrans_diag_avx2_f32_8x8(void *a, int64_t n, int64_t ld);
void smm_itrans_swap_avx2_f64_4x4(void *a, void *b, int64_t m, int64_t n, int64_t ld);
void smm_itrans_diag_avx2_f64_4x4(void *a, int64_t n, int64_t ld);
void smm_itrans_swap_avx2_c128_2x2(void *a, void *b, int64_t m, int64_t n, int64_t ld);
void smm_itrans_diag_avx2_c128_2x2(void *a, int64_t n, int64_t ld);

/* Copy and zeroing, one per ISA (element size does not matter to them). */
void smm_copy_generic(const void *in, void *out, int64_t rowbytes, int64_t n, int64_t ldi, int64_t ldo, int streaming);
void smm_zero_generic(void *out, int64_t rowbytes, int64_t n, int64_t ld, int streaming);
void smm_copy_avx2(const void *in, void *out, int64_t rowbytes, int64_t n, int64_t ldi, int64_t ldo, int streaming);
void smm_zero_avx2(void *out, int64_t rowbytes, int64_t n, int64_t ld, int streaming);
void smm_copy_avx512(const void *in, void *out, int64_t rowbytes, int64_t n, int64_t ldi, int64_t ldo, int streaming);
void smm_zero_avx512(void *out, int64_t rowbytes, int64_t n, int64_t ld, int streaming);

/* 16-byte element (complex128) moved as two 64-bit words. */
typedef struct smm_elem16 { uint64_t lo, hi; } smm_elem16;

#endif
