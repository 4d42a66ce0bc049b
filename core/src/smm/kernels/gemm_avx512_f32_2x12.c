/* Runtime-sized GEMM micro-kernels, avx512 path, f32, register tile 2 vectors x 12 columns
 * (op(B) = B and op(B) = B^T). */
#if defined(__x86_64__)
#include "avx512_f32.h"
#include "smm_tile.h"
SMM_DEFINE_RUNTIME(2, 12, 0)
SMM_DEFINE_RUNTIME(2, 12, 1)
#endif
