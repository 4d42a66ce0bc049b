/* Registry: which micro-kernel an ISA path, a column tile n and a column stride get. */
#include "conv_kernels.h"
#include "cpu.h"

int conv_brgemm16_nmax(int isa)
{
  switch (isa) {
    case SMM_ISA_AVX512: return CONV_NMAX_AVX512;
    case SMM_ISA_AVX2: return CONV_NMAX_AVX2;
    default: return CONV_NMAX_GENERIC;
  }
}

static int bj_class(int64_t bj)
{
  return bj == 1 ? 1 : bj == 16 ? 2 : bj == 32 ? 3 : 0;
}

conv_brgemm16_fn conv_brgemm16_get(int isa, int n, int64_t bj)
{
  if (n < 1 || n > conv_brgemm16_nmax(isa)) return 0;
  switch (isa) {
#if defined(__x86_64__) || defined(_M_X64)
    case SMM_ISA_AVX512: return conv_brgemm16_f32_avx512[bj_class(bj)][n];
    case SMM_ISA_AVX2: return conv_brgemm16_f32_avx2[bj_class(bj)][n];
#endif
    default: return conv_brgemm16_f32_generic[n];
  }
}
