/* The stack executor shared by the device workers and by synchronous host (OpenMP) execution. */
#define _GNU_SOURCE
#include "acc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* C-block locks, hashed by address: a power of two well above any thread count, so two workers
 * rarely share a lock by accident; one per cache line so they do not false-share. */
#define ACC_NLOCKS 512
typedef struct { pthread_mutex_t mu; char pad_[64 - sizeof(pthread_mutex_t) % 64]; } padded_lock;
static padded_lock c_locks[ACC_NLOCKS];
static pthread_once_t c_locks_once = PTHREAD_ONCE_INIT;

static void c_locks_init(void)
{
  for (int i = 0; i < ACC_NLOCKS; ++i) pthread_mutex_init(&c_locks[i].mu, NULL);
}

static pthread_mutex_t *c_lock_for(const void *c)
{
  /* Fibonacci hashing of the block address (blocks are at least one element apart). */
  const uint64_t h = ((uint64_t)(uintptr_t)c >> 3) * 0x9E3779B97F4A7C15ull;
  return &c_locks[h >> (64 - 9)].mu;
}

static inline int64_t idx_at(const acc_stack *st, int which, int64_t e)
{
  const int64_t off = e * st->stride[which];
  return st->idx64 ? ((const int64_t *)st->idx[which])[off] : (int64_t)((const int32_t *)st->idx[which])[off];
}

/* Elements spanned by a column-major rows x cols block with leading dimension ld. */
static inline int64_t footprint(int64_t rows, int64_t cols, int64_t ld)
{
  return (cols - 1) * ld + rows;
}

static void block_dims(const acc_kernel *k, int which, int64_t *rows, int64_t *cols, int64_t *ld)
{
  if (which == 0) { *rows = k->trans_a ? k->k : k->m; *cols = k->trans_a ? k->m : k->k; *ld = k->lda; }
  else if (which == 1) { *rows = k->trans_b ? k->n : k->k; *cols = k->trans_b ? k->k : k->n; *ld = k->ldb; }
  else { *rows = k->m; *cols = k->n; *ld = k->ldc; }
}

#define MINMAX_LOOP(T)                                                        \
  do {                                                                        \
    const T *p = (const T *)st->idx[which];                                   \
    T vlo = p[lo * stride], vhi = vlo;                                        \
    for (int64_t e = lo + 1; e < hi; ++e) {                                   \
      const T v = p[e * stride]; vlo = v < vlo ? v : vlo; vhi = v > vhi ? v : vhi; \
    }                                                                         \
    *vmin = vlo; *vmax = vhi;                                                 \
  } while (0)

static void index_minmax(const acc_stack *st, int which, int64_t lo, int64_t hi, int64_t *vmin, int64_t *vmax)
{
  const int64_t stride = st->stride[which];
  if (st->idx64) MINMAX_LOOP(int64_t);
  else MINMAX_LOOP(int32_t);
}

int acc_stack_check(const acc_kernel *k, const acc_stack *st, int64_t lo, int64_t hi, char *msg)
{
  static const char *const names[3] = {"A", "B", "C"};
  const int64_t sizes[3] = {st->a_size, st->b_size, st->c_size};
  if (hi <= lo) return 0;
  for (int w = 0; w < 3; ++w) {
    int64_t rows, cols, ld, vmin, vmax;
    block_dims(k, w, &rows, &cols, &ld);
    /* The largest offset a block may start at (negative: none fits). Indices are compared before
     * anything is added to them, so none near INT64_MIN/MAX can wrap past the check. */
    const int64_t room = sizes[w] - footprint(rows, cols, ld);
    index_minmax(st, w, lo, hi, &vmin, &vmax);
    if (room >= 0 && vmin >= st->base && vmax - st->base <= room) continue;
    for (int64_t e = lo; e < hi; ++e) {   /* slow path: name the first bad entry */
      const int64_t v = idx_at(st, w, e);
      if (room < 0 || v < st->base || v - st->base > room) {
        snprintf(msg, ACC_MSG_LEN,
                 "stack entry %lld: %s index %lld (base %lld) puts a %lldx%lld block (ld %lld) outside "
                 "its buffer of %lld elements", (long long)e, names[w], (long long)v,
                 (long long)st->base, (long long)rows, (long long)cols, (long long)ld, (long long)sizes[w]);
        return -1;
      }
    }
  }
  return 0;
}

void acc_scratch_free(acc_scratch *s)
{
  free(s->a_ptrs); free(s->b_ptrs); free(s->temp);
  memset(s, 0, sizeof(*s));
}

static int scratch_reserve(acc_scratch *s, int64_t temp_bytes, char *msg)
{
  if (!s->a_ptrs) {
    s->a_ptrs = (const void **)malloc(ACC_PIECE * sizeof(void *));
    s->b_ptrs = (const void **)malloc(ACC_PIECE * sizeof(void *));
  }
  if (s->temp_bytes < temp_bytes) {
    free(s->temp);
    s->temp = NULL;
    s->temp_bytes = 0;
    const size_t bytes = ((size_t)temp_bytes + 63) & ~(size_t)63;
    if (posix_memalign(&s->temp, 64, bytes)) s->temp = NULL;
    else s->temp_bytes = (int64_t)bytes;
  }
  if (!s->a_ptrs || !s->b_ptrs || !s->temp) {
    snprintf(msg, ACC_MSG_LEN, "out of memory for the executor's scratch (%lld bytes)", (long long)temp_bytes);
    return -1;
  }
  return 0;
}

static void add_block(const acc_kernel *k, char *c, const char *t)
{
  const int64_t m = k->m, n = k->n, ld = k->ldc;
  if (k->elsize == 8) {
    for (int64_t j = 0; j < n; ++j) {
      double *restrict cj = (double *)c + j * ld;
      const double *restrict tj = (const double *)t + j * ld;
      for (int64_t i = 0; i < m; ++i) cj[i] += tj[i];
    }
  } else {
    for (int64_t j = 0; j < n; ++j) {
      float *restrict cj = (float *)c + j * ld;
      const float *restrict tj = (const float *)t + j * ld;
      for (int64_t i = 0; i < m; ++i) cj[i] += tj[i];
    }
  }
}

/* Index loads with the index type as a compile-time constant (see the two instances below):
 * a per-load branch on the type costs as much as the rest of the bookkeeping at m = 5. */
static inline __attribute__((always_inline)) int64_t idx_load(const void *base, int64_t stride, int64_t e,
                                                               const int wide)
{
  return wide ? ((const int64_t *)base)[e * stride] : (int64_t)((const int32_t *)base)[e * stride];
}

/* Set once, when core.acc is imported (before any worker runs). */
static int64_t reduce_bytes = 256 << 10;

void acc_set_reduce_bytes(int64_t bytes)
{
  if (bytes > 0) reduce_bytes = bytes;
}

static inline __attribute__((always_inline)) int run_range(const acc_kernel *k, const acc_stack *st,
                                                           int64_t lo, int64_t hi, acc_scratch *scratch,
                                                           char *msg, const int wide)
{
  pthread_once(&c_locks_once, c_locks_init);
  const int64_t es = k->elsize, base = st->base, count = st->count;
  const int64_t cfoot_bytes = footprint(k->m, k->n, k->ldc) * es;
  const void *const ia = st->idx[0], *const ib = st->idx[1], *const ic = st->idx[2];
  const int64_t sa = st->stride[0], sb = st->stride[1], sc = st->stride[2];
  const char *const a = st->a, *const b = st->b;
  char *const cbase = st->c;
  const int64_t fit = reduce_bytes / (((int64_t)k->m * k->k + (int64_t)k->k * k->n) * es);
  const int64_t piece = fit < 1 ? 1 : (fit < ACC_PIECE ? fit : ACC_PIECE);
  if (hi <= lo) return 0;
  /* Each chunk checks its own entries before it writes anything (in parallel, and the indices
   * are then in L1 for the pass that uses them). */
  if (acc_stack_check(k, st, lo, hi, msg)) return -1;
  if (scratch_reserve(scratch, cfoot_bytes, msg)) return -1;
  const void **ap = scratch->a_ptrs, **bp = scratch->b_ptrs;
  char *const temp = (char *)scratch->temp;
  int64_t e = lo;
  while (e < hi) {
    const int64_t c_idx = idx_load(ic, sc, e, wide) - base;
    int64_t r = e + 1;
    while (r < hi && idx_load(ic, sc, r, wide) - base == c_idx) ++r;
    char *const c = cbase + c_idx * es;
    /* A run that continues into a neighbouring chunk is summed privately and added under the
     * block's lock, so both chunks work at once (the sample's scheme). Any other run is computed
     * straight into C while holding the lock: race-free even if the block comes back elsewhere
     * (unsorted stacks, other streams), and uncontended when it does not (DBCSR's sorted stacks). */
    const int direct = (e == 0 || idx_load(ic, sc, e - 1, wide) - base != c_idx)
                       && (r == count || idx_load(ic, sc, r, wide) - base != c_idx);
    char *const target = direct ? c : temp;
    pthread_mutex_t *const lock = c_lock_for(c);
    if (direct) pthread_mutex_lock(lock);
    else memset(temp, 0, (size_t)cfoot_bytes);
    for (int64_t p = e; p < r; p += piece) {
      const int64_t q = p + piece < r ? p + piece : r;
      for (int64_t i = p; i < q; ++i) {
        ap[i - p] = a + (idx_load(ia, sa, i, wide) - base) * es;
        bp[i - p] = b + (idx_load(ib, sb, i, wide) - base) * es;
      }
      const void *pa = NULL, *pb = NULL, *pc = NULL;
      if (q < hi) {
        pa = a + (idx_load(ia, sa, q, wide) - base) * es;
        pb = b + (idx_load(ib, sb, q, wide) - base) * es;
        pc = q < r ? (const void *)target : (const void *)(cbase + (idx_load(ic, sc, q, wide) - base) * es);
      }
      const int rc = k->run(k->ctx, ap, bp, target, q - p, pa, pb, pc, msg);
      if (rc) {
        if (direct) pthread_mutex_unlock(lock);
        return rc < 0 ? rc : -rc;
      }
    }
    if (!direct) {
      pthread_mutex_lock(lock);
      add_block(k, c, temp);
    }
    pthread_mutex_unlock(lock);
    e = r;
  }
  return 0;
}

int acc_stack_run_range(const acc_kernel *k, const acc_stack *st, int64_t lo, int64_t hi,
                        acc_scratch *scratch, char *msg)
{
  return st->idx64 ? run_range(k, st, lo, hi, scratch, msg, 1) : run_range(k, st, lo, hi, scratch, msg, 0);
}

int64_t acc_default_grain(int64_t count, int nworkers)
{
  /* ~8 chunks per worker balance uneven runs; below 64 entries a chunk costs more than it buys. */
  const int64_t want = (count + 8 * (int64_t)nworkers - 1) / (8 * (int64_t)(nworkers > 0 ? nworkers : 1));
  return want < 64 ? 64 : want;
}

int acc_stack_run_host(const acc_kernel *k, const acc_stack *st, int nthreads, int64_t grain, char *msg)
{
  if (st->count <= 0) return 0;
  if (grain <= 0) grain = acc_default_grain(st->count, nthreads);
  const int64_t nchunks = (st->count + grain - 1) / grain;
  if (nthreads > nchunks) nthreads = (int)nchunks;
  if (nthreads < 1) nthreads = 1;
  int failed = 0;
  if (nthreads == 1) {
    acc_scratch scr = {0};
    failed = acc_stack_run_range(k, st, 0, st->count, &scr, msg) != 0;
    acc_scratch_free(&scr);
    return failed ? -1 : 0;
  }
#pragma omp parallel num_threads(nthreads)
  {
    acc_scratch scr = {0};   /* allocated by the thread that uses it (first touch) */
    char local_msg[ACC_MSG_LEN];
#pragma omp for schedule(dynamic, 1)
    for (int64_t ch = 0; ch < nchunks; ++ch) {
      if (__atomic_load_n(&failed, __ATOMIC_RELAXED)) continue;
      const int64_t lo = ch * grain, hi = lo + grain < st->count ? lo + grain : st->count;
      if (acc_stack_run_range(k, st, lo, hi, &scr, local_msg)) {
#pragma omp critical(acc_host_error)
        {
          if (!failed) memcpy(msg, local_msg, ACC_MSG_LEN);
          __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
        }
      }
    }
    acc_scratch_free(&scr);
  }
  return failed ? -1 : 0;
}
