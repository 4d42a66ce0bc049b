/* Portable matrix copy and zeroing with leading dimensions: the C library's memcpy/memset per column
 * (already dispatched per CPU by the C library); no streaming stores. */
#include <string.h>
#include "transpose.h"

void smm_copy_generic(const void *in, void *out, int64_t rowbytes, int64_t n, int64_t ldi, int64_t ldo,
                      int streaming)
{
  (void)streaming;
  for (int64_t j = 0; j < n; ++j)
    memcpy((char *)out + j * ldo, (const char *)in + j * ldi, (size_t)rowbytes);
}

void smm_zero_generic(void *out, int64_t rowbytes, int64_t n, int64_t ld, int streaming)
{
  (void)streaming;
  for (int64_t j = 0; j < n; ++j) memset((char *)out + j * ld, 0, (size_t)rowbytes);
}
