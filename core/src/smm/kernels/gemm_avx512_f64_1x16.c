/* Runtime-sized GEMM micro-kernels, avx512 path, f64, register tile 1 vectors x 16 columns
 * (op(B) = B and op(B) = B^T). */
#if defined(__x86_64__)
#include "avx512_f64.h"
#include "smm_tile.h"
SMM_DEFINE_RUNTIME(1, 16, 0)
SMM_DEFINE_RUNTIME(1, 16, 1)
#endif
