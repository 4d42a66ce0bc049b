/* Registry: which kernels an ISA path and an element size use (one table entry per pair, as BLIS's
 * per-configuration kernel tables; a path without its own kernel for a size borrows the next lower). */
#include <stddef.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include "cpu.h"
#include "transpose.h"

static const smm_trans_kernels *const table[SMM_ISA_COUNT][3] = {
  /*                 4 bytes              8 bytes              16 bytes */
  [SMM_ISA_GENERIC] = {&smm_trans_generic_4, &smm_trans_generic_8, &smm_trans_generic_16},
#if defined(__x86_64__) || defined(__i386__)
  [SMM_ISA_AVX2]    = {&smm_trans_avx2_4,    &smm_trans_avx2_8,    &smm_trans_avx2_16},
  [SMM_ISA_AVX512]  = {&smm_trans_avx512_4,  &smm_trans_avx512_8,  &smm_trans_avx512_16},
#endif
};

const smm_trans_kernels *smm_trans_lookup(int isa, int elemsize)
{
  int slot = elemsize == 4 ? 0 : elemsize == 8 ? 1 : elemsize == 16 ? 2 : -1;
  if (slot < 0 || isa < 0 || isa >= SMM_ISA_COUNT) return NULL;
  for (; isa >= 0; --isa)
    if (table[isa][slot]) return table[isa][slot];
  return NULL;
}

void smm_trans_fence(void)
{
#if defined(__x86_64__) || defined(__i386__)
  _mm_sfence();
#endif
}

