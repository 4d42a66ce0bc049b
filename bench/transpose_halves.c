/* The two halves of a streaming strip transpose, timed apart (docs/transpose.md, "Measurements").
 *
 *   gcc -O3 -mavx2 -mfma -o /tmp/transpose_halves bench/transpose_halves.c
 *   /tmp/transpose_halves [N [pad [rounds]]]      # N x N f64, leading dimension N + pad; 4096 0 2
 *
 * One thread, AVX2, 2 MiB-aligned buffers with MADV_HUGEPAGE (as numpy's large arrays get). For
 * each tile (tm rows x tn columns of the input: bands of tm rows crossed by strips of tn columns,
 * as core.transpose streams) it times, best of 3, against a streaming copy of the same matrix in
 * the same round:
 *   reads   the strip's loads alone, in the kernel's order (4 rows x 8 columns per step), no stores
 *   writes  the strip's streaming stores alone, the same lines in the same order, no loads
 *   both    the transpose itself: 4x4 in-register blocks, two side by side, streaming stores
 * and prints each as a multiple of the copy's time (both also as % of the copy's speed, the figure
 * bench/transpose.py prints). A transpose reaching 90 % of the copy needs both <= 1.11.
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static int64_t N, LD, TM, TN;
static double *A, *B;
static volatile double sink;

static double now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double *big(size_t bytes)
{
  bytes = (bytes + (1 << 21) - 1) & ~(size_t)((1 << 21) - 1);
  double *p = aligned_alloc(1 << 21, bytes);
  if (!p) { perror("aligned_alloc"); exit(1); }
  madvise(p, bytes, MADV_HUGEPAGE);
  memset(p, 0, bytes);
  return p;
}

static void copy_nt(void)
{
  for (int64_t j = 0; j < N; ++j)
    for (int64_t i = 0; i < N; i += 8) {
      const double *s = A + j * LD + i;
      double *d = B + j * LD + i;
      __m256d x = _mm256_load_pd(s), y = _mm256_load_pd(s + 4);
      _mm256_stream_pd(d, x);
      _mm256_stream_pd(d + 4, y);
    }
  _mm_sfence();
}

static void reads(void)
{
  __m256d s = _mm256_setzero_pd();
  for (int64_t i0 = 0; i0 < N; i0 += TM)
    for (int64_t j0 = 0; j0 < N; j0 += TN)
      for (int64_t i = i0; i < i0 + TM; i += 4)
        for (int64_t j = j0; j < j0 + TN; ++j) s = _mm256_add_pd(s, _mm256_loadu_pd(A + j * LD + i));
  double t[4];
  _mm256_storeu_pd(t, s);
  sink = t[0] + t[1] + t[2] + t[3];
}

static void writes(void)
{
  const __m256d s = _mm256_set1_pd(1.0);
  for (int64_t i0 = 0; i0 < N; i0 += TM)
    for (int64_t j0 = 0; j0 < N; j0 += TN)
      for (int64_t i = i0; i < i0 + TM; i += 4)
        for (int64_t j = j0; j < j0 + TN; j += 8)
          for (int q = 0; q < 4; ++q) {
            _mm256_stream_pd(B + (i + q) * LD + j, s);
            _mm256_stream_pd(B + (i + q) * LD + j + 4, s);
          }
  _mm_sfence();
}

static inline void t4(const double *in, int64_t ldi, __m256d r[4])
{
  __m256d t[4];
  for (int k = 0; k < 2; ++k)
    for (int h = 0; h < 2; ++h)
      t[2 * h + k] = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(in + k * ldi + 2 * h)),
                                          _mm_loadu_pd(in + (k + 2) * ldi + 2 * h), 1);
  for (int h = 0; h < 4; h += 2) {
    r[h] = _mm256_unpacklo_pd(t[h], t[h + 1]);
    r[h + 1] = _mm256_unpackhi_pd(t[h], t[h + 1]);
  }
}

static void both(void)
{
  for (int64_t i0 = 0; i0 < N; i0 += TM)
    for (int64_t j0 = 0; j0 < N; j0 += TN)
      for (int64_t i = i0; i < i0 + TM; i += 4)
        for (int64_t j = j0; j < j0 + TN; j += 8) {
          __m256d r[4], s[4];
          t4(A + j * LD + i, LD, r);
          t4(A + (j + 4) * LD + i, LD, s);
          for (int q = 0; q < 4; ++q) {
            _mm256_stream_pd(B + (i + q) * LD + j, r[q]);
            _mm256_stream_pd(B + (i + q) * LD + j + 4, s[q]);
          }
        }
  _mm_sfence();
}

static double best(void (*f)(void), int reps)
{
  double b = 1e30;
  for (int k = 0; k < reps; ++k) {
    double t = now();
    f();
    t = now() - t;
    if (t < b) b = t;
  }
  return b;
}

int main(int argc, char **argv)
{
  N = argc > 1 ? atoll(argv[1]) : 4096;
  LD = N + (argc > 2 ? atoll(argv[2]) : 0);
  const int rounds = argc > 3 ? atoi(argv[3]) : 2;
  if (N < 64 || N % 64 || LD < N || LD % 8 || rounds < 1) {
    fprintf(stderr, "N must be a multiple of 64 (>= 64), pad a multiple of 8, rounds >= 1\n");
    return 2;
  }
  A = big((size_t)(N * LD) * sizeof(double));
  B = big((size_t)(N * LD) * sizeof(double));
  for (int64_t x = 0; x < N * LD; ++x) A[x] = (double)x;
  TM = N < 2048 ? N : 2048;
  TN = 16;
  both();
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j)
      if (B[i * LD + j] != A[j * LD + i]) {
        fprintf(stderr, "transpose wrong at (%ld, %ld)\n", (long)i, (long)j);
        return 1;
      }
  static const int64_t tiles[][2] = {{2048, 8}, {2048, 16}, {1024, 16}, {2048, 32}, {512, 32},
                                     {512, 64}, {256, 64}, {64, 64}};
  printf("# %ld x %ld f64, ld %ld, 1 thread; times as multiples of the streaming copy's\n", (long)N,
         (long)N, (long)LD);
  for (int r = 0; r < rounds; ++r) {
    const double tc = best(copy_nt, 5);
    printf("copy %.2f ms\n%10s %6s %6s %6s %8s\n", tc * 1e3, "tile", "reads", "writes", "both", "% copy");
    for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; ++t) {
      TM = tiles[t][0] < N ? tiles[t][0] : N;
      TN = tiles[t][1];
      const double tr = best(reads, 3), tw = best(writes, 3), tb = best(both, 3);
      printf("%5ldx%-4ld %6.2f %6.2f %6.2f %7.1f%%\n", (long)TM, (long)TN, tr / tc, tw / tc, tb / tc,
             100 * tc / tb);
    }
  }
  return 0;
}
