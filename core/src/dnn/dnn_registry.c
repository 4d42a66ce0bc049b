/* Registry: the pooling kernels of each ISA path. */
#include "dnn_kernels.h"
#include "cpu.h"

dnn_maxpool_fn dnn_maxpool_get(int isa)
{
#if defined(__x86_64__) || defined(_M_X64)
  if (isa == SMM_ISA_AVX512) return dnn_maxpool_f32_avx512;
  if (isa == SMM_ISA_AVX2) return dnn_maxpool_f32_avx2;
#endif
  (void)isa;
  return dnn_maxpool_f32_generic;
}

dnn_avgpool_fn dnn_avgpool_get(int isa)
{
#if defined(__x86_64__) || defined(_M_X64)
  if (isa == SMM_ISA_AVX512) return dnn_avgpool_f32_avx512;
  if (isa == SMM_ISA_AVX2) return dnn_avgpool_f32_avx2;
#endif
  (void)isa;
  return dnn_avgpool_f32_generic;
}
