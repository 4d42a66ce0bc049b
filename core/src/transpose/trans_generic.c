/* Portable reference kernels (any CPU): plain loops over 8x8 blocks for 4-, 8- and 16-byte elements.
 * Every ISA path is tested against these. No streaming stores here (they are not portable C). */
#include "cpu.h"
#include "transpose.h"

#define TR_ATTR
#define TR_BM 8
#define TR_BN 8
#define TR_INPLACE 1
#define TR_SQ 8
#define TR_STREAMS 0
#define TR_PARTIAL 0

#define GENERIC_KERNELS(T, SUFFIX)                                                               \
  static inline void tr_block_##SUFFIX(const T *in, int64_t ldi, T *out, int64_t ldo)           \
  {                                                                                              \
    for (int i = 0; i < 8; ++i)                                                                  \
      for (int j = 0; j < 8; ++j) out[i * ldo + j] = in[j * ldi + i];                            \
  }                                                                                              \
  static inline void tr_swap_sq_##SUFFIX(T *a, T *b, int64_t ld)                                 \
  {                                                                                              \
    for (int j = 0; j < 8; ++j)                                                                  \
      for (int i = 0; i < 8; ++i) {                                                              \
        T t = a[j * ld + i];                                                                     \
        a[j * ld + i] = b[i * ld + j];                                                           \
        b[i * ld + j] = t;                                                                       \
      }                                                                                          \
  }                                                                                              \
  static inline void tr_diag_sq_##SUFFIX(T *a, int64_t ld)                                       \
  {                                                                                              \
    for (int j = 1; j < 8; ++j)                                                                  \
      for (int i = 0; i < j; ++i) {                                                              \
        T t = a[j * ld + i];                                                                     \
        a[j * ld + i] = a[i * ld + j];                                                           \
        a[i * ld + j] = t;                                                                       \
      }                                                                                          \
  }

GENERIC_KERNELS(uint32_t, 4)
GENERIC_KERNELS(uint64_t, 8)
GENERIC_KERNELS(smm_elem16, 16)

#define TR_ELEM uint32_t
#define TR_NAME(op) smm_##op##_generic_4
#define tr_block tr_block_4
#define tr_swap_sq tr_swap_sq_4
#define tr_diag_sq tr_diag_sq_4
#include "trans_impl.h"
#undef TR_ELEM
#undef TR_NAME
#undef tr_block
#undef tr_swap_sq
#undef tr_diag_sq

#define TR_ELEM uint64_t
#define TR_NAME(op) smm_##op##_generic_8
#define tr_block tr_block_8
#define tr_swap_sq tr_swap_sq_8
#define tr_diag_sq tr_diag_sq_8
#include "trans_impl.h"
#undef TR_ELEM
#undef TR_NAME
#undef tr_block
#undef tr_swap_sq
#undef tr_diag_sq

#define TR_ELEM smm_elem16
#define TR_NAME(op) smm_##op##_generic_16
#define tr_block tr_block_16
#define tr_swap_sq tr_swap_sq_16
#define tr_diag_sq tr_diag_sq_16
#include "trans_impl.h"

#define GENERIC_TABLE(SIZE)                                                                      \
  const smm_trans_kernels smm_trans_generic_##SIZE = {                                           \
    smm_otrans_generic_##SIZE, smm_itrans_swap_generic_##SIZE, smm_itrans_diag_generic_##SIZE,  \
    smm_copy_generic, smm_zero_generic, TR_BM, TR_BN, TR_SQ, SMM_ISA_GENERIC, SIZE, 0,           \
    "trans_generic_" #SIZE "byte_8x8", "trans_generic_" #SIZE "byte_8x8"                          \
  };
GENERIC_TABLE(4)
GENERIC_TABLE(8)
GENERIC_TABLE(16)
