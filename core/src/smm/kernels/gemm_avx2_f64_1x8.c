/* Runtime-sized GEMM micro-kernels, avx2 path, f64, register tile 1 vectors x 8 columns
 * (op(B) = B and op(B) = B^T). */
#if defined(__x86_64__)
#include "avx2_f64.h"
#include "smm_tile.h"
SMM_DEFINE_RUNTIME(1, 8, 0)
SMM_DEFINE_RUNTIME(1, 8, 1)
#endif
