/* AVX2 matrix copy and zeroing: whole 64-byte lines (two 32-byte non-temporal stores) when the caller
 * asks for streaming (output far larger than the caches), else the C library's memcpy/memset. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <string.h>
#include "transpose.h"

#define ATTR __attribute__((target("avx2,fma")))

static inline int64_t head_bytes(const void *p, int64_t len)
{
  int64_t h = (int64_t)((64 - ((uintptr_t)p & 63)) & 63);
  return h < len ? h : len;
}

ATTR void smm_copy_avx2(const void *in, void *out, int64_t rowbytes, int64_t n, int64_t ldi, int64_t ldo,
                        int streaming)
{
  if (!streaming) {
    smm_copy_generic(in, out, rowbytes, n, ldi, ldo, 0);
    return;
  }
  for (int64_t j = 0; j < n; ++j) {
    const char *s = (const char *)in + j * ldi;
    char *d = (char *)out + j * ldo;
    int64_t h = head_bytes(d, rowbytes), b = h;
    memcpy(d, s, (size_t)h);
    for (; b + 128 <= rowbytes; b += 128) {
      __m256i x0 = _mm256_loadu_si256((const __m256i *)(s + b));
      __m256i x1 = _mm256_loadu_si256((const __m256i *)(s + b + 32));
      __m256i x2 = _mm256_loadu_si256((const __m256i *)(s + b + 64));
      __m256i x3 = _mm256_loadu_si256((const __m256i *)(s + b + 96));
      _mm256_stream_si256((__m256i *)(d + b), x0);
      _mm256_stream_si256((__m256i *)(d + b + 32), x1);
      _mm256_stream_si256((__m256i *)(d + b + 64), x2);
      _mm256_stream_si256((__m256i *)(d + b + 96), x3);
    }
    for (; b + 64 <= rowbytes; b += 64) {
      __m256i x0 = _mm256_loadu_si256((const __m256i *)(s + b));
      __m256i x1 = _mm256_loadu_si256((const __m256i *)(s + b + 32));
      _mm256_stream_si256((__m256i *)(d + b), x0);
      _mm256_stream_si256((__m256i *)(d + b + 32), x1);
    }
    memcpy(d + b, s + b, (size_t)(rowbytes - b));
  }
}

ATTR void smm_zero_avx2(void *out, int64_t rowbytes, int64_t n, int64_t ld, int streaming)
{
  if (!streaming) {
    smm_zero_generic(out, rowbytes, n, ld, 0);
    return;
  }
  const __m256i z = _mm256_setzero_si256();
  for (int64_t j = 0; j < n; ++j) {
    char *d = (char *)out + j * ld;
    int64_t h = head_bytes(d, rowbytes), b = h;
    memset(d, 0, (size_t)h);
    for (; b + 64 <= rowbytes; b += 64) {
      _mm256_stream_si256((__m256i *)(d + b), z);
      _mm256_stream_si256((__m256i *)(d + b + 32), z);
    }
    memset(d + b, 0, (size_t)(rowbytes - b));
  }
}

#endif
