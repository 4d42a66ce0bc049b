#include "smm_registry.h"
#include "cpu.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void smm_generic_f64(const smm_kernel *, const void *const *, const void *const *, void *, int64_t,
                     const void *, const void *, const void *);
void smm_generic_f32(const smm_kernel *, const void *const *, const void *const *, void *, int64_t,
                     const void *, const void *, const void *);

/* ---- the runtime-sized micro-kernels of each ISA path, by register tile ---- */
#define DECL(isa, dt, mv, nr)                                                                          \
  void smm_##isa##_##dt##_gemm_##mv##x##nr##_tb0(const smm_kernel *, const void *const *,               \
                                                 const void *const *, void *, int64_t, const void *,    \
                                                 const void *, const void *);                          \
  void smm_##isa##_##dt##_gemm_##mv##x##nr##_tb1(const smm_kernel *, const void *const *,               \
                                                 const void *const *, void *, int64_t, const void *,    \
                                                 const void *, const void *);
#define ENTRY(isa, dt, mv, nr) { mv, nr, { smm_##isa##_##dt##_gemm_##mv##x##nr##_tb0, smm_##isa##_##dt##_gemm_##mv##x##nr##_tb1 } }

typedef struct { int mv, nr; smm_kernel_fn fn[2]; } tile_entry;
#define MAX_TILES 4

#if defined(__x86_64__)
DECL(avx2, f64, 3, 4) DECL(avx2, f64, 2, 6) DECL(avx2, f64, 1, 8)
DECL(avx2, f32, 3, 4) DECL(avx2, f32, 2, 6) DECL(avx2, f32, 1, 8)
DECL(avx512, f64, 4, 6) DECL(avx512, f64, 3, 8) DECL(avx512, f64, 2, 12) DECL(avx512, f64, 1, 16)
DECL(avx512, f32, 4, 6) DECL(avx512, f32, 3, 8) DECL(avx512, f32, 2, 12) DECL(avx512, f32, 1, 16)
/* [isa][dtype]: candidate tiles, biggest first (ties in the cost model go to the earlier one). */
static const tile_entry TILES[SMM_ISA_COUNT][2][MAX_TILES] = {
  [SMM_ISA_AVX2] = {
    { ENTRY(avx2, f64, 3, 4), ENTRY(avx2, f64, 2, 6), ENTRY(avx2, f64, 1, 8) },
    { ENTRY(avx2, f32, 3, 4), ENTRY(avx2, f32, 2, 6), ENTRY(avx2, f32, 1, 8) } },
  [SMM_ISA_AVX512] = {
    { ENTRY(avx512, f64, 4, 6), ENTRY(avx512, f64, 3, 8), ENTRY(avx512, f64, 2, 12), ENTRY(avx512, f64, 1, 16) },
    { ENTRY(avx512, f32, 4, 6), ENTRY(avx512, f32, 3, 8), ENTRY(avx512, f32, 2, 12), ENTRY(avx512, f32, 1, 16) } },
};
#else
static const tile_entry TILES[SMM_ISA_COUNT][2][MAX_TILES];
#endif

static int lanes_of(int isa, int dtype)
{
  int bytes = isa == SMM_ISA_AVX512 ? 64 : 32;
  return bytes / (dtype == SMM_F64 ? 8 : 4);
}

/* Cycle model of one register tile of v vectors x w columns over k steps (one model for the tile
 * choice within an ISA family and between families). A step costs the most of: FMA pipe time (a
 * vector FMA weighs W 256-bit ones, two of those issue per cycle), load time (A vectors and B
 * broadcasts, two per cycle) and instruction issue; a tile whose last vector is partial pays two
 * cycles more per step (masked loads of A). The C update costs `update` cycles per 256-bit piece,
 * and a tile `start` cycles to start and drain. Every row block after the first walks op(B) again
 * (`rewalk` cycles per element): from memory the first walk is the one that waits, and tiles
 * covering more of m keep more of A's lines in flight (streamed 25^3: 4x6 zmm tiles 38.6 GFLOP/s,
 * 2x6 ymm tiles 27.1); in cache the walk is free.
 * Two sets of constants, fitted to a scan of every listed tile over 31 shapes on Zen 4
 * (bench/smm_tiles.py, docs/kernels.md): SMM_TILES_ANY to cached and streamed operands together,
 * SMM_TILES_CACHED to cached ones. The same model is in gen_specialized.py, and tests check that
 * both choose alike. */
typedef struct { double issue, update, start, rewalk; } tile_model;
static const tile_model MODELS[2] = {
  [SMM_TILES_ANY] = { 0.25, 0.75, 16.0, 0.25 },
  [SMM_TILES_CACHED] = { 0.30, 0.75, 4.0, 0.0 },
};

static double tile_cycles(const tile_model *md, int64_t k, int64_t v, int64_t w, int W, int masked)
{
  const double fma = 0.5 * (double)(W * v * w), ld = 0.5 * (double)(v + w), issue = md->issue * (double)(v * w + v + w);
  double step = fma > ld ? fma : ld;
  step = step > issue ? step : issue;
  return (double)k * (step + (masked ? 2.0 : 0.0)) + md->update * (double)(W * v * w) + md->start;
}

/* The whole C in tiles of MV x NR: full row blocks and the row remainder, for full column blocks
 * and the column remainder (one tile of n % NR columns, as the specialised kernels run it). */
static double shape_cycles(const tile_model *md, int isa, int dtype, int64_t m, int64_t n, int64_t k,
                           int MV, int NR, int W)
{
  const int L = lanes_of(isa, dtype);
  const int64_t mb = (int64_t)MV * L, mfull = m / mb, mrem = m % mb, rv = (mrem + L - 1) / L;
  const int masked = mrem % L != 0;
  const int64_t nfull = n / NR, nrem = n % NR, rowblocks = mfull + (mrem ? 1 : 0);
  double total = md->rewalk * (double)(rowblocks - 1) * (double)n * (double)k;
  if (nfull)
    total += (double)nfull * ((double)mfull * tile_cycles(md, k, MV, NR, W, 0) + (mrem ? tile_cycles(md, k, rv, NR, W, masked) : 0.0));
  if (nrem)
    total += (double)mfull * tile_cycles(md, k, MV, nrem, W, 0) + (mrem ? tile_cycles(md, k, rv, nrem, W, masked) : 0.0);
  return total;
}

/* The weight of one vector FMA in 256-bit units: 1 for ymm; for zmm the CPU's (2 where the core
 * splits zmm work into halves, 1 where its units are full width). The build-time generator makes
 * the specialised kernels of both weights' choices. */
static int fma_weight(int isa, int zmm_weight)
{
  if (isa != SMM_ISA_AVX512) return 1;
  return zmm_weight == 1 || zmm_weight == 2 ? zmm_weight : smm_cpu_zmm_weight();
}

/* The order in which equal costs are broken (indices into TILES: the earlier wins), per regime.
 * Cached operands prefer the 2x12 zmm tile to 3x8 where the model ties them (16^3 f64 on Zen 4,
 * bench/smm_tiles.py: 50.1 against 45.9 GFLOP/s; mean loss of the cached picks over 31 shapes
 * 2.1 -> 1.8 %, no shape slower); streamed operands the other way round (13^3-15^3: 3x8 ahead by
 * 8-12 %). */
static const int8_t TIE_ORDER[2][MAX_TILES] = {
  [SMM_TILES_ANY] = { 0, 1, 2, 3 },
  [SMM_TILES_CACHED] = { 0, 2, 1, 3 },
};

static double select_in(int regime, int isa, int dtype, int64_t m, int64_t n, int64_t k, int W,
                        int *mv, int *nr)
{
  const tile_model *md = &MODELS[regime];
  double best = -1.0;
  *mv = 0; *nr = 0;
  for (int i = 0; i < MAX_TILES; ++i) {
    const int t = isa == SMM_ISA_AVX512 ? TIE_ORDER[regime][i] : i;
    const tile_entry *te = &TILES[isa][dtype][t];
    if (!te->mv) break;
    double cst = shape_cycles(md, isa, dtype, m, n, k, te->mv, te->nr, W);
    if (best < 0.0 || cst < best) { best = cst; *mv = te->mv; *nr = te->nr; }
  }
  return best;
}

void smm_select_tile(int isa, int dtype, int64_t m, int64_t n, int64_t k, int regime, int zmm_weight, int *mv,
                     int *nr)
{
  *mv = 0; *nr = 0;
  if (isa <= SMM_ISA_GENERIC || isa >= SMM_ISA_COUNT || (dtype != SMM_F64 && dtype != SMM_F32)) return;
  select_in(regime == SMM_TILES_CACHED ? SMM_TILES_CACHED : SMM_TILES_ANY, isa, dtype, m, n, k,
            fma_weight(isa, zmm_weight), mv, nr);
}

/* Which ISA's tiles run a shape on a path: AVX-512 borrows AVX2 tiles (as BLIS configurations
 * borrow kernels) when the model says they are faster, with 512-bit FMAs weighted by
 * smm_cpu_zmm_weight(). The zmm tile is chosen with the same weight: where the units are full
 * width a zmm FMA costs what a ymm one does, so tiles that load less per FMA win (Emerald Rapids,
 * cached 26^3: 4x6 54.7 GFLOP/s, 1x16 40.2; the weight-2 model chose 1x16). */
static int code_isa_for(int regime, int isa, int dtype, int64_t m, int64_t n, int64_t k)
{
  if (isa != SMM_ISA_AVX512) return isa;
  int mv5, nr5, mv2, nr2;
  const double c512 = select_in(regime, SMM_ISA_AVX512, dtype, m, n, k, smm_cpu_zmm_weight(), &mv5, &nr5);
  const double c256 = select_in(regime, SMM_ISA_AVX2, dtype, m, n, k, 1, &mv2, &nr2);
  return c256 < c512 ? SMM_ISA_AVX2 : SMM_ISA_AVX512;
}

int smm_desc_check(const smm_desc *d)
{
  if (d->m < 1 || d->n < 1 || d->k < 1) return -1;
  if (d->dtype != SMM_F64 && d->dtype != SMM_F32) return -2;
  if (d->lda < (d->trans_a ? d->k : d->m)) return -3;
  if (d->ldb < (d->trans_b ? d->n : d->k)) return -4;
  if (d->ldc < d->m) return -5;
  if (d->isa < 0 || d->isa >= SMM_ISA_COUNT || d->isa > smm_cpu_best_isa()) return -6;
  if ((d->trans_a | d->trans_b) & ~1) return -7;
  return 0;
}

/* One tile choice (regime) for a descriptor: the code it runs, its tile, specialised or not. */
typedef struct { smm_kernel_fn fn; smm_strided_fn fn_strided; int8_t mv, nr, specialized, code_isa; } kernel_choice;

static kernel_choice choose(const smm_desc *d, int regime)
{
  kernel_choice ch = { d->dtype == SMM_F64 ? smm_generic_f64 : smm_generic_f32, NULL, 0, 0, 0, SMM_ISA_GENERIC };
  if (d->isa == SMM_ISA_GENERIC) return ch;
  /* A transposed A is packed on the stack by the tiled kernels; too big a panel runs portable code. */
  if (d->trans_a && (int64_t)d->m * d->k > 8192) return ch;
  const int isa = code_isa_for(regime, d->isa, d->dtype, d->m, d->n, d->k);
  /* Specialised kernels bake in tight leading dimensions (a transposed A is packed tight). */
  if (!d->trans_b && d->ldb == d->k && d->ldc == d->m && d->lda == (d->trans_a ? d->k : d->m)) {
    /* Regime bits 0-1 are the choices with zmm weight 2 (and every AVX2 one), bits 2-3 those with
     * full-width zmm units (smm_registry.h). */
    const int bit = regime + (isa == SMM_ISA_AVX512 && smm_cpu_zmm_weight() == 1 ? 2 : 0);
    for (int i = 0; i < smm_spec_count; ++i) {
      const smm_spec_entry *s = &smm_spec_table[i];
      if (s->isa == isa && s->dtype == d->dtype && s->m == d->m && s->n == d->n && s->k == d->k
          && (s->regimes >> bit & 1)) {
        ch.fn = s->fn; ch.fn_strided = (s->strided_regimes >> bit & 1) ? s->fn_strided : NULL;
        ch.mv = s->mv; ch.nr = s->nr; ch.specialized = 1;
        ch.code_isa = (int8_t)isa;
        return ch;
      }
    }
  }
  int mv, nr;
  smm_select_tile(isa, d->dtype, d->m, d->n, d->k, regime, 0, &mv, &nr);
  for (int t = 0; t < MAX_TILES; ++t) {
    const tile_entry *te = &TILES[isa][d->dtype][t];
    if (te->mv == mv && te->nr == nr) {
      ch.fn = te->fn[d->trans_b ? 1 : 0]; ch.mv = (int8_t)mv; ch.nr = (int8_t)nr; ch.code_isa = (int8_t)isa;
      return ch;
    }
  }
  return ch;
}

static void build(const smm_desc *d, smm_kernel *kern)
{
  memset(kern, 0, sizeof(*kern));
  kern->desc = *d;
  const kernel_choice any = choose(d, SMM_TILES_ANY), cached = choose(d, SMM_TILES_CACHED);
  kern->fn = any.fn; kern->mv = any.mv; kern->nr = any.nr;
  kern->specialized = any.specialized; kern->code_isa = any.code_isa;
  kern->fn_cached = cached.fn; kern->mv_cached = cached.mv; kern->nr_cached = cached.nr;
  kern->specialized_cached = cached.specialized; kern->code_isa_cached = cached.code_isa;
  kern->fn_strided = any.fn_strided; kern->fn_strided_cached = cached.fn_strided;
}

/* ---- registry: open addressing, insert-only; readers take no lock ---- */
#define REG_CAPACITY (1 << 17) /* as LIBXSMM's: a power of two far above any real shape count */

/* Hit counts are sharded by thread, a cache line per shard: one shared counter bounced between
 * cores on every look-up and doubled the cost of a cached dispatch with 2 threads. */
#define HIT_SHARDS 8
typedef struct reg_entry {
  smm_kernel kernel;
  struct { int64_t n; char pad_[56]; } hits[HIT_SHARDS] __attribute__((aligned(64)));
} reg_entry;

static int hit_shard(void)
{
  static int next_shard;
  static __thread int shard = -1;
  if (shard < 0) shard = __atomic_fetch_add(&next_shard, 1, __ATOMIC_RELAXED) % HIT_SHARDS;
  return shard;
}

static int64_t entry_hits(reg_entry *e)
{
  int64_t h = 0;
  for (int i = 0; i < HIT_SHARDS; ++i) h += __atomic_load_n(&e->hits[i].n, __ATOMIC_RELAXED);
  return h;
}

static reg_entry *slots[REG_CAPACITY];
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t n_kernels, n_misses, n_specialized;

_Static_assert(sizeof(smm_desc) % 8 == 0, "the descriptor hash reads whole 64-bit words");

static uint64_t desc_hash(const smm_desc *d)
{
  /* Multiply-xorshift over the descriptor's 64-bit words (padding is zeroed by the caller). */
  uint64_t w[sizeof(smm_desc) / 8], h = 0x9e3779b97f4a7c15ull;
  memcpy(w, d, sizeof(w));
  for (size_t i = 0; i < sizeof(w) / 8; ++i) {
    h ^= w[i];
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  return h;
}

static reg_entry *probe(const smm_desc *d, uint64_t h, uint64_t *free_slot)
{
  for (uint64_t i = 0; i < REG_CAPACITY; ++i) {
    uint64_t s = (h + i) & (REG_CAPACITY - 1);
    reg_entry *e = __atomic_load_n(&slots[s], __ATOMIC_ACQUIRE);
    if (!e) { if (free_slot) *free_slot = s; return NULL; }
    if (!memcmp(&e->kernel.desc, d, sizeof(*d))) return e;
  }
  if (free_slot) *free_slot = REG_CAPACITY; /* full */
  return NULL;
}

const smm_kernel *smm_registry_get(const smm_desc *din)
{
  smm_desc d;
  memset(&d, 0, sizeof(d));
  d.m = din->m; d.n = din->n; d.k = din->k; d.lda = din->lda; d.ldb = din->ldb; d.ldc = din->ldc;
  d.dtype = din->dtype; d.trans_a = din->trans_a; d.trans_b = din->trans_b; d.prefetch = din->prefetch;
  d.isa = din->isa; d.alpha = din->alpha; d.beta = din->beta;
  if (d.alpha == 0.0) d.alpha = 0.0; /* -0.0 and 0.0 are one descriptor */
  if (d.beta == 0.0) d.beta = 0.0;
  if (smm_desc_check(&d)) return NULL;
  const uint64_t h = desc_hash(&d);
  reg_entry *e = probe(&d, h, NULL);
  if (e) {
    __atomic_fetch_add(&e->hits[hit_shard()].n, 1, __ATOMIC_RELAXED);
    return &e->kernel;
  }
  pthread_mutex_lock(&reg_lock);
  uint64_t free_slot = 0;
  e = probe(&d, h, &free_slot); /* another thread may have built it meanwhile */
  void *mem = NULL;
  if (!e && free_slot < REG_CAPACITY && !posix_memalign(&mem, 64, sizeof(reg_entry))) {
    e = (reg_entry *)mem;
    memset(e, 0, sizeof(*e));
    build(&d, &e->kernel);
    ++n_kernels;
    n_specialized += e->kernel.specialized;
    __atomic_store_n(&slots[free_slot], e, __ATOMIC_RELEASE);
  }
  ++n_misses;
  pthread_mutex_unlock(&reg_lock);
  return e ? &e->kernel : NULL;
}

void smm_registry_get_stats(smm_registry_stats *out)
{
  int64_t hits = 0;
  pthread_mutex_lock(&reg_lock);
  for (int64_t s = 0; s < REG_CAPACITY; ++s)
    if (slots[s]) hits += entry_hits(slots[s]);
  out->kernels = n_kernels; out->misses = n_misses; out->specialized = n_specialized; out->hits = hits;
  pthread_mutex_unlock(&reg_lock);
}

int64_t smm_registry_list(const smm_kernel **kernels, int64_t *hits, int64_t max)
{
  int64_t n = 0;
  pthread_mutex_lock(&reg_lock);
  for (int64_t s = 0; s < REG_CAPACITY; ++s) {
    if (!slots[s]) continue;
    if (n < max) { kernels[n] = &slots[s]->kernel; hits[n] = entry_hits(slots[s]); }
    ++n;
  }
  pthread_mutex_unlock(&reg_lock);
  return n;
}

void smm_empty_call(void) { __asm__ __volatile__("" ::: "memory"); }
