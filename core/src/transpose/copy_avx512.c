/* AVX-512F matrix copy and zeroing: whole 64-byte lines written with non-temporal stores when the
 * caller asks for streaming (output far larger than the caches), else the C library's memcpy/memset. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <string.h>
#include "transpose.h"

#define ATTR __attribute__((target("avx512f")))

/* Bytes before the next 64-byte boundary at p (at most len). */
static inline int64_t head_bytes(const void *p, int64_t len)
{
  int64_t h = (int64_t)((64 - ((uintptr_t)p & 63)) & 63);
  return h < len ? h : len;
}

ATTR void smm_copy_avx512(const void *in, void *out, int64_t rowbytes, int64_t n, int64_t ldi, int64_t ldo,
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
    for (; b + 256 <= rowbytes; b += 256) {
      __m512i x0 = _mm512_loadu_si512(s + b), x1 = _mm512_loadu_si512(s + b + 64);
      __m512i x2 = _mm512_loadu_si512(s + b + 128), x3 = _mm512_loadu_si512(s + b + 192);
      _mm512_stream_si512((void *)(d + b), x0);
      _mm512_stream_si512((void *)(d + b + 64), x1);
      _mm512_stream_si512((void *)(d + b + 128), x2);
      _mm512_stream_si512((void *)(d + b + 192), x3);
    }
    for (; b + 64 <= rowbytes; b += 64) _mm512_stream_si512((void *)(d + b), _mm512_loadu_si512(s + b));
    memcpy(d + b, s + b, (size_t)(rowbytes - b));
  }
}

ATTR void smm_zero_avx512(void *out, int64_t rowbytes, int64_t n, int64_t ld, int streaming)
{
  if (!streaming) {
    smm_zero_generic(out, rowbytes, n, ld, 0);
    return;
  }
  const __m512i z = _mm512_setzero_si512();
  for (int64_t j = 0; j < n; ++j) {
    char *d = (char *)out + j * ld;
    int64_t h = head_bytes(d, rowbytes), b = h;
    memset(d, 0, (size_t)h);
    for (; b + 64 <= rowbytes; b += 64) _mm512_stream_si512((void *)(d + b), z);
    memset(d + b, 0, (size_t)(rowbytes - b));
  }
}

#endif
