/* AVX2 matrix copy and zeroing: whole 64-byte lines (two 32-byte non-temporal stores) when the caller
 * asks for streaming (output far larger than the caches); else ordinary 32-byte loads and stores
 * (copy) and the C library's memset (zero).
 *
 * Not memcpy for the copy in cache: on Zen 3, glibc's memcpy copies a few KiB and up with
 * `rep movsb`, which runs an order of magnitude slower when the destination lies just past the
 * source modulo 4 KiB, as it does for two arrays allocated one after the other (128 x 128 f64, the
 * destination 16 bytes past the source modulo 4096: 44.6 us for core.transpose.copy and for
 * numpy.copyto, 3.2-3.5 us at other offsets). */
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

/* 128 bytes from src to dst: four 32-byte loads, then four stores of the kind STORE. */
#define COPY_128(STORE, dst, src)                                                   \
  do {                                                                              \
    const __m256i x0_ = _mm256_loadu_si256((const __m256i *)(const void *)(src));        \
    const __m256i x1_ = _mm256_loadu_si256((const __m256i *)(const void *)((src) + 32)); \
    const __m256i x2_ = _mm256_loadu_si256((const __m256i *)(const void *)((src) + 64)); \
    const __m256i x3_ = _mm256_loadu_si256((const __m256i *)(const void *)((src) + 96)); \
    STORE((__m256i *)(void *)(dst), x0_);                                           \
    STORE((__m256i *)(void *)((dst) + 32), x1_);                                    \
    STORE((__m256i *)(void *)((dst) + 64), x2_);                                    \
    STORE((__m256i *)(void *)((dst) + 96), x3_);                                    \
  } while (0)

/* One column of len bytes with ordinary stores; under 32 bytes of tail left to memcpy (no rep movsb). */
static inline ATTR void copy_cached(const char *s, char *d, int64_t len)
{
  int64_t b = 0;
  for (; b + 128 <= len; b += 128) COPY_128(_mm256_storeu_si256, d + b, s + b);
  for (; b + 32 <= len; b += 32)
    _mm256_storeu_si256((__m256i *)(d + b), _mm256_loadu_si256((const __m256i *)(s + b)));
  if (b < len) memcpy(d + b, s + b, (size_t)(len - b));
}

ATTR void smm_copy_avx2(const void *in, void *out, int64_t rowbytes, int64_t n, int64_t ldi, int64_t ldo,
                        int streaming)
{
  if (!streaming) {
    for (int64_t j = 0; j < n; ++j) copy_cached((const char *)in + j * ldi, (char *)out + j * ldo, rowbytes);
    return;
  }
  for (int64_t j = 0; j < n; ++j) {
    const char *s = (const char *)in + j * ldi;
    char *d = (char *)out + j * ldo;
    int64_t h = head_bytes(d, rowbytes), b = h;
    memcpy(d, s, (size_t)h);
    for (; b + 128 <= rowbytes; b += 128) COPY_128(_mm256_stream_si256, d + b, s + b);
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
