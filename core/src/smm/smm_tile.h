/* ISA-independent register-tile GEMM template (BLIS's "frame" for one ISA's micro-kernel).
 *
 * Included by kernels/<isa>_<dtype>.h after it defines the vector vocabulary:
 *   T (element), V (vector), L (lanes), MASK, TGT (function target attribute), PFX(x) (name prefix),
 *   VZERO(), VLOAD(p), VLOADM(p,mask), VSTORE(p,v), VSTOREM(p,mask,v), VLOADP(p,n), VSTOREP(p,n,v)
 *   (first n lanes, exact-size pieces), VBCAST(p), VFMA(a,b,acc),
 *   VMUL(a,b), VADD(a,b), VSET1(x), MKMASK(lanes), PREFETCH_L1(p), PREFETCH_L2(p).
 *
 * The tile: MV vectors (MV*L rows of C) x NR columns of C held in MV*NR accumulators; per step p of k,
 * MV vector loads of op(A)'s column p and NR broadcasts of op(B)'s row p feed MV*NR FMAs.
 * A is never transposed here (trans_a is packed by the caller); TB selects op(B) = B^T.
 * All tile parameters are compile-time constants after inlining, so gcc keeps the accumulators in
 * registers and (for the SMM_MNK kernels, whose m, n, k are constants too) unrolls everything.
 */
#include <stdint.h>
#include "smm_kernel.h"

#define SMM_ALWAYS static inline __attribute__((always_inline))
/* Largest register tile any ISA uses (accumulator arrays are sized by these constants). */
#define SMM_MAX_MV 4
#define SMM_MAX_NR 16
/* Kernels whose tiles update C with an addition instead of an FMA with beta (end of PFX(tile)). Per
 * tile, f64 on Zen 4 (bench/smm_tiles.py, best of 3 runs of 31): the adder update made the 2x12
 * tile, the cached-operand pick for 8^3-23^3, faster in cache (16^3 49.9 -> 53.0 GFLOP/s, 23^3
 * 50.9 -> 52.1, 8^3 46.7 -> 47.7), and the streamed picks (3x8, 4x6) slower from memory (streamed
 * 16^3 in gemm_batch, 1 thread, 3x8: 40.7 -> 37.7); so only 2x12 kernels use it. */
#ifndef SMM_ADD_UPDATE
#define SMM_ADD_UPDATE(MV, NR) ((MV) == 2 && (NR) == 12)
#endif
/* The same choice for the strided-batch forms that only batches with operands in cache run
 * (SMM_DEFINE_SPECIALIZED_STRIDED_CACHED: gen_specialized.py, m*n*k above STRIDED_MAX_MNK). A
 * vocabulary may define it (the AVX2 ones: every tile adds, see kernels/avx2_f64.h). */
#ifndef SMM_ADD_UPDATE_CACHED
#define SMM_ADD_UPDATE_CACHED(MV, NR) SMM_ADD_UPDATE(MV, NR)
#endif

/* AVX2 (16 vector registers, the mask of a partial vector in one of them): a masked tile's k loop
 * is not unrolled. Unrolled by 2, gcc loads the next step's A ahead and keeps one accumulator of a
 * masked 2x6 tile on the stack, so that its FMA chain runs through memory. Zen 3, f64, in cache,
 * GFLOP/s (C harness, batch loop inside): 13^3 2x6 21.9 -> 30.1, 14^3 24.4 -> 34.4, 15^3 27.7 ->
 * 36.7, 22^3 30.9 -> 38.7; but 5x25x5 20.2 -> 18.4 and 10x10x8 29.3 -> 27.3, hence k > 8 only. */
#ifndef SMM_MASKED_LEAN
#define SMM_MASKED_LEAN 0
#endif

/* One register tile of C at (i0, j0). MASKED: the last of the MV vectors holds only `lanes` valid
 * rows (masked loads/stores, which never touch memory past the matrix). */
SMM_ALWAYS TGT void PFX(tile)(const int MV, const int NR, const int FULLK, const int TB, const int ADDC, const int MASKED, const int lanes,
                              const int64_t k, const T *const *a, const T *const *b, const int64_t count,
                              const int64_t lda, const int64_t ldb, T *c, const int64_t ldc,
                              const T alpha, const T beta, const int64_t i0, const int64_t j0,
                              const T *pa, const T *pb, const T *pc)
{
  V acc[SMM_MAX_MV][SMM_MAX_NR]; /* fixed sizes: a VLA would live in memory */
  const MASK mask = MKMASK(lanes);
#pragma GCC unroll 8
  for (int r = 0; r < MV; ++r)
#pragma GCC unroll 32
    for (int q = 0; q < NR; ++q) acc[r][q] = VZERO();

  /* The next product's operands go to L2 while this tile computes, spread over its k steps so
   * that the prefetches never queue up in front of the tile's own loads: this tile's rows of A
   * (the first column block fetches them, one column per step) and its columns of B (the first
   * row block, one line of each column every `line` steps). A column that starts off the line grid
   * (23 rows of f64: 184 bytes over 4 lines) has one line more than a request every `line`
   * elements reaches: its last element is requested too (gathered blocks, 1 thread, C harness:
   * 23^3 33 -> 37-38, 13^3 19-20 -> 21-23 GFLOP/s). L2, not L1 (prefetcht1, not t0): in
   * L1 they evicted the lines the rest of this product still reads (gathered blocks, 1 thread:
   * 23^3 26 -> 35, 32^3 32 -> 41, 64^3 43 -> 46 GFLOP/s; streamed 64^3 38 -> 42). C of this
   * product, read at the end of the tile, still comes to L1 (cpf). */
  const int64_t line = 64 / (int64_t)sizeof(T);
  const int pfa = pa != 0 && j0 == 0, pfb = pb != 0 && i0 == 0;
  for (int64_t e = 0; e < count; ++e) {
    const T *ap = a[e] + i0;
    const T *bp = TB ? b[e] + j0 : b[e] + j0 * ldb;
    /* Opaque to the optimiser: otherwise gcc hoists every (j0*ldb + p + q*ldb) sum out of the
     * e loop and spills them, instead of addressing bp + constant (measured: 2x the instructions). */
    __asm__("" : "+r"(ap), "+r"(bp));
    /* The body of one step p; FULLK kernels (constant k) unroll it completely. */
#define SMM_TILE_STEP(p, PF)                                                         \
    {                                                                                \
      V av[SMM_MAX_MV];                                                              \
      _Pragma("GCC unroll 8") for (int r = 0; r < MV; ++r)                           \
        av[r] = (MASKED && r == MV - 1) ? VLOADM(ap + r * L + (p) * lda, mask)   \
                                           : VLOAD(ap + r * L + (p) * lda);          \
      if (PF && pfa) {                                                               \
        _Pragma("GCC unroll 8") for (int64_t r = 0; r < (int64_t)MV * L; r += line)  \
          PREFETCH_L2(na + i0 + r + (p) * lda);                                      \
        PREFETCH_L2(na + i0 + (MV * L - 1) + (p) * lda);                             \
      }                                                                              \
      if (PF && pfb && (TB || (p) % line == 0 || (p) == k - 1)) {                    \
        _Pragma("GCC unroll 32") for (int q = 0; q < NR; q += (TB ? (int)line : 1))  \
          PREFETCH_L2(TB ? nb + j0 + q + (p) * ldb : nb + (p) + (j0 + q) * ldb);     \
        if (TB) PREFETCH_L2(nb + j0 + (NR - 1) + (p) * ldb);                         \
      }                                                                              \
      if (cpf && (p) < NR) {                                                         \
        _Pragma("GCC unroll 8") for (int r = 0; r < MV; ++r)                         \
          PREFETCH_L1(c + i0 + r * L + (j0 + (p)) * ldc);                            \
        PREFETCH_L1(c + i0 + (MV * L - 1) + (j0 + (p)) * ldc);                       \
      }                                                                              \
      _Pragma("GCC unroll 32") for (int q = 0; q < NR; ++q) {                        \
        const V bv = TB ? VBCAST(bp + q + (p) * ldb) : VBCAST(bp + (p) + q * ldb);   \
        _Pragma("GCC unroll 8") for (int r = 0; r < MV; ++r)                         \
          acc[r][q] = VFMA(av[r], bv, acc[r][q]);                                    \
      }                                                                              \
    }
    /* The next product: the next of a batch-reduce run, else the next call's. */
    const T *na = e + 1 < count ? a[e + 1] : pa, *nb = e + 1 < count ? b[e + 1] : pb;
    /* C is read at the end of the tile (beta != 0): its columns are requested during the first NR
     * steps of the run's last product, when enough steps follow to cover a memory latency (k >= 16;
     * streamed 16^3 and 64^3 +14 %; with fewer steps the prefetches only cost issue slots). */
    const int cpf = beta != (T)0 && e + 1 == count && k >= 16;
    if (pfa || pfb) {
      if (FULLK) {
#pragma GCC unroll 32
        for (int64_t p = 0; p < k; ++p) SMM_TILE_STEP(p, 1)
      } else if (SMM_MASKED_LEAN && MASKED && k > 8) {
#pragma GCC unroll 1
        for (int64_t p = 0; p < k; ++p) SMM_TILE_STEP(p, 1)
      } else {
#pragma GCC unroll 2
        for (int64_t p = 0; p < k; ++p) SMM_TILE_STEP(p, 1)
      }
    } else if (FULLK) {
#pragma GCC unroll 32
      for (int64_t p = 0; p < k; ++p) SMM_TILE_STEP(p, 0)
    } else if (SMM_MASKED_LEAN && MASKED && k > 8) {
#pragma GCC unroll 1
      for (int64_t p = 0; p < k; ++p) SMM_TILE_STEP(p, 0)
    } else {
#pragma GCC unroll 2
      for (int64_t p = 0; p < k; ++p) SMM_TILE_STEP(p, 0)
    }
#undef SMM_TILE_STEP
  }

  /* The next product's C, this tile's part of it: every line of each column (the first line
   * alone left the other lines of a 32-row tile to be fetched on demand at that tile's end;
   * streamed 64^3, 1 thread, C harness: 43.5 -> 49.0 GFLOP/s). */
  if (pc)
#pragma GCC unroll 32
    for (int q = 0; q < NR; ++q) {
#pragma GCC unroll 8
      for (int64_t r = 0; r < (int64_t)MV * L; r += line) PREFETCH_L2(pc + i0 + r + (j0 + q) * ldc);
      PREFETCH_L2(pc + i0 + (MV * L - 1) + (j0 + q) * ldc);
    }
  /* C := alpha*acc (+ beta*C). alpha == 1 (the common case) skips the multiply (acc * 1 is exact);
   * fusing beta == 1 rounds exactly as an addition would; beta == 0 never reads C. */
  if (alpha != (T)1) {
    const V va = VSET1(alpha);
#pragma GCC unroll 32
    for (int q = 0; q < NR; ++q)
#pragma GCC unroll 8
      for (int r = 0; r < MV; ++r) acc[r][q] = VMUL(acc[r][q], va);
  }
  /* C := acc + beta*C. ADDC kernels (SMM_ADD_UPDATE) see beta 0 or 1 only, their entry having
   * scaled C by any other beta, and add C on the FP adders (Zen 4 runs them beside the FMA pipes,
   * which go on with the next tile's steps); the others fuse beta into an FMA. beta == 0 never
   * reads C. Every load of C comes before any store: a load right behind a store to neighbouring
   * bytes may wait for it (measured with masked stores: 5x25x5 ran 4x slower with interleaved
   * updates). C's partial vectors move as exact-size pieces (kernels/x86_partial.h), never
   * masked: a masked store blocks forwarding to the next product's loads of C as well. */
  if (beta != (T)0) {
    const V vb = VSET1(beta);
#pragma GCC unroll 32
    for (int q = 0; q < NR; ++q) {
      const T *cq = c + i0 + (j0 + q) * ldc;
#pragma GCC unroll 8
      for (int r = 0; r < MV; ++r) {
        const V cv = (MASKED && r == MV - 1) ? VLOADP(cq + r * L, lanes) : VLOAD(cq + r * L);
        acc[r][q] = ADDC ? VADD(acc[r][q], cv) : VFMA(cv, vb, acc[r][q]);
      }
    }
  }
#pragma GCC unroll 32
  for (int q = 0; q < NR; ++q) {
    T *cq = c + i0 + (j0 + q) * ldc;
#pragma GCC unroll 8
    for (int r = 0; r < MV; ++r) {
      if (MASKED && r == MV - 1) VSTOREP(cq + r * L, lanes, acc[r][q]);
      else VSTORE(cq + r * L, acc[r][q]);
    }
  }
}

/* Columns [j0, j0+NR) of C: full row blocks of MV vectors, then the row remainder. */
SMM_ALWAYS TGT void PFX(colblock)(const int MV, const int NR, const int FULLK, const int TB, const int ADDC,
                                  const int64_t m, const int64_t k, const T *const *a, const T *const *b,
                                  const int64_t count, const int64_t lda, const int64_t ldb, T *c,
                                  const int64_t ldc, const T alpha, const T beta, const int64_t j0,
                                  const T *pa, const T *pb, const T *pc)
{
  const int64_t mb = (int64_t)MV * L, mfull = (m / mb) * mb, mrem = m - mfull;
  for (int64_t i0 = 0; i0 < mfull; i0 += mb)
    PFX(tile)(MV, NR, FULLK, TB, ADDC, 0, L, k, a, b, count, lda, ldb, c, ldc, alpha, beta, i0, j0, pa, pb, pc);
  if (mrem) {
    const int rv = (int)((mrem + L - 1) / L), lanes = (int)(mrem - (int64_t)(rv - 1) * L);
    switch (rv) { /* rv <= MV; one instantiation per vector count */
#define SMM_ROWS(RV)                                                                                   \
  case RV:                                                                                             \
    if (RV <= MV) {                                                                                    \
      if (lanes < L) /* masked loads/stores only where the last vector is partial */                  \
        PFX(tile)(RV <= MV ? RV : 1, NR, FULLK, TB, ADDC, 1, lanes, k, a, b, count, lda, ldb, c, ldc, alpha,   \
                  beta, mfull, j0, pa, pb, pc);                                                        \
      else                                                                                             \
        PFX(tile)(RV <= MV ? RV : 1, NR, FULLK, TB, ADDC, 0, L, k, a, b, count, lda, ldb, c, ldc, alpha, beta, \
                  mfull, j0, pa, pb, pc);                                                              \
    }                                                                                                  \
    break;
      SMM_ROWS(1) SMM_ROWS(2) SMM_ROWS(3) SMM_ROWS(4)
#undef SMM_ROWS
      default: break;
    }
  }
}

/* The whole C: column blocks of NR, then the column remainder (one instantiation per width). */
SMM_ALWAYS TGT void PFX(body)(const int MV, const int NR, const int FULLK, const int TB, const int ADDC,
                              const int64_t m, const int64_t n, const int64_t k,
                              const T *const *a, const T *const *b, const int64_t count,
                              const int64_t lda, const int64_t ldb, T *c, const int64_t ldc,
                              const T alpha, const T beta, const T *pa, const T *pb, const T *pc)
{
  const int64_t nfull = (n / NR) * NR;
  for (int64_t j0 = 0; j0 < nfull; j0 += NR)
    PFX(colblock)(MV, NR, FULLK, TB, ADDC, m, k, a, b, count, lda, ldb, c, ldc, alpha, beta, j0, pa, pb, pc);
  /* Specialised kernels (n a compile-time constant): the remainder is one tile of exactly
   * n - nfull columns, so that its FMA chains run side by side (5x5x5 as 4 + 1 columns ran two
   * tiles of dependent FMAs one after the other). */
  if (__builtin_constant_p(n)) {
    switch ((int)(n - nfull)) {
#define SMM_REM(W)                                                                                   \
  case W:                                                                                            \
    if (W < NR)                                                                                      \
      PFX(colblock)(MV, W < NR ? W : 1, FULLK, TB, ADDC, m, k, a, b, count, lda, ldb, c, ldc, alpha, beta, \
                    nfull, pa, pb, pc);                                                              \
    break;
      SMM_REM(1) SMM_REM(2) SMM_REM(3) SMM_REM(4) SMM_REM(5) SMM_REM(6) SMM_REM(7) SMM_REM(8)
      SMM_REM(9) SMM_REM(10) SMM_REM(11) SMM_REM(12) SMM_REM(13) SMM_REM(14) SMM_REM(15)
#undef SMM_REM
      default: break;
    }
    return;
  }
  /* Column remainder as blocks of 8, 4, 2, 1: four instantiations instead of NR-1. */
  int64_t j0 = nfull;
#define SMM_COLS(W)                                                                              \
  if (W < NR && n - j0 >= W) {                                                                   \
    PFX(colblock)(MV, W < NR ? W : 1, FULLK, TB, ADDC, m, k, a, b, count, lda, ldb, c, ldc, alpha, beta, \
                  j0, pa, pb, pc);                                                               \
    j0 += W;                                                                                     \
  }
  SMM_COLS(8) SMM_COLS(4) SMM_COLS(2) SMM_COLS(1)
#undef SMM_COLS
}

/* ---- kernel entry: the contract's alpha/beta/count/trans_a handling around a body ---- */

/* C := beta*C without reading C when beta == 0 (the alpha == 0 / empty-sum case: A, B unread). */
static inline void PFX(scale)(int64_t m, int64_t n, T *c, int64_t ldc, T beta)
{
  for (int64_t j = 0; j < n; ++j) {
    T *cj = c + j * ldc;
    if (beta == (T)0) for (int64_t i = 0; i < m; ++i) cj[i] = (T)0;
    else if (beta != (T)1) for (int64_t i = 0; i < m; ++i) cj[i] *= beta;
  }
}

/* Largest op(A) = A^T panel packed on the stack; the registry gives larger ones portable code. */
#ifndef SMM_PACK_MAX
#define SMM_PACK_MAX 8192
#endif

/* op(A) = A^T: the tiles load columns of op(A) as vectors, so each A_e^T is packed column-major
 * (ld = m) and the same kernel runs again on the panel as a non-transposed A. Kept out of line:
 * every kernel shares it, and the common path stays small. */
static TGT __attribute__((noinline)) void PFX(trans_a)(const smm_kernel *kern, const void *const *a,
                                                       const void *const *b, void *c, int64_t count,
                                                       const void *pa, const void *pb, const void *pc)
{
  T panel[SMM_PACK_MAX];
  smm_kernel plain = *kern;
  const int64_t m = kern->desc.m, k = kern->desc.k, lda = kern->desc.lda;
  plain.desc.trans_a = 0;
  plain.desc.lda = (int32_t)m;
  for (int64_t e = 0; e < count; ++e) {
    const T *ae = (const T *)a[e];
    for (int64_t p = 0; p < k; ++p)
      for (int64_t i = 0; i < m; ++i) panel[i + p * m] = ae[p + i * lda];
    const void *ap = panel;
    if (e == 1) plain.desc.beta = 1.0; /* later products accumulate onto the first */
    kern->fn(&plain, &ap, &b[e], c, 1, e + 1 == count ? pa : NULL, pb, pc);
  }
}

/* The contract around one body. LDA/LDB/LDC > 0 are the leading dimensions baked in (specialised
 * kernels: address offsets become immediates), 0 takes them from the descriptor. */
SMM_ALWAYS TGT void PFX(entry)(const int MV, const int NR, const int FULLK, const int TB, const int ADDC,
                               const int64_t M, const int64_t N, const int64_t K,
                               const int64_t LDA, const int64_t LDB, const int64_t LDC,
                               const smm_kernel *kern, const void *const *a, const void *const *b,
                               void *cv, int64_t count, const void *pa, const void *pb, const void *pc)
{
  const smm_desc *d = &kern->desc;
  const T alpha = (T)d->alpha, beta = (T)d->beta;
  if (__builtin_expect(alpha == (T)0 || count <= 0, 0)) {
    PFX(scale)(d->m, d->n, (T *)cv, d->ldc, beta);
    return;
  }
  if (__builtin_expect(d->trans_a, 0)) {
    PFX(trans_a)(kern, a, b, cv, count, pa, pb, pc);
    return;
  }
  /* ADDC kernels' tiles add C (beta 0 or 1): any other beta scales C first, in one pass over its
   * lines (rounding beta*C once before the sum; an epilogue switched on beta made gcc spill). */
  if (ADDC && __builtin_expect(beta != (T)0 && beta != (T)1, 0)) PFX(scale)(d->m, d->n, (T *)cv, d->ldc, beta);
  PFX(body)(MV, NR, FULLK, TB, ADDC, M ? M : d->m, N ? N : d->n, K ? K : d->k, (const T *const *)a,
            (const T *const *)b, count, LDA ? LDA : d->lda, LDB ? LDB : d->ldb, (T *)cv, LDC ? LDC : d->ldc,
            alpha, ADDC ? (beta == (T)0 ? (T)0 : (T)1) : beta, (const T *)pa, (const T *)pb, (const T *)pc);
}

/* The contract over a strided batch (smm_strided_fn): the loop inside the kernel, so that a small
 * product pays no call, and the descriptor is read once. alpha == 0 and a transposed A take the
 * one-product entry per product. */
SMM_ALWAYS TGT void PFX(entry_strided)(const int MV, const int NR, const int FULLK, const int TB, const int ADDC,
                                       const int64_t M, const int64_t N, const int64_t K,
                                       const int64_t LDA, const int64_t LDB, const int64_t LDC,
                                       const smm_kernel *kern, const void *a, const void *b, void *cv,
                                       int64_t sa, int64_t sb, int64_t sc, int64_t nbatch)
{
  const smm_desc *d = &kern->desc;
  const T alpha = (T)d->alpha, beta = (T)d->beta;
  /* SMM_GATHER: pointer arrays. One loop serves both (a select per product, not a second copy of
   * the unrolled body). */
  const int gather = sa == SMM_GATHER;
  const void *const *ga = (const void *const *)a, *const *gb = (const void *const *)b;
  void *const *gc = (void *const *)cv;
#define SMM_OPERANDS_(e)                                                                            \
  const void *ae_ = gather ? ga[e] : (const void *)((const char *)a + (e) * sa);                   \
  const void *be_ = gather ? gb[e] : (const void *)((const char *)b + (e) * sb);                   \
  void *ce_ = gather ? gc[e] : (void *)((char *)cv + (e) * sc)
  if (__builtin_expect(alpha == (T)0 || d->trans_a || (ADDC && beta != (T)0 && beta != (T)1), 0)) {
    for (int64_t e = 0; e < nbatch; ++e) {
      SMM_OPERANDS_(e);
      /* the update of the tile's other forms: the same bits whichever form a batch runs (an
       * FMA with beta rounds once, scaling C first twice) */
      PFX(entry)(MV, NR, FULLK, TB, SMM_ADD_UPDATE(MV, NR), M, N, K, LDA, LDB, LDC, kern, &ae_, &be_,
                 ce_, 1, 0, 0, 0);
    }
    return;
  }
  const int64_t m = M ? M : d->m, n = N ? N : d->n, k = K ? K : d->k;
  const int64_t lda = LDA ? LDA : d->lda, ldb = LDB ? LDB : d->ldb, ldc = LDC ? LDC : d->ldc;
  for (int64_t e = 0; e < nbatch; ++e) {
    SMM_OPERANDS_(e);
    const T *ap = (const T *)ae_, *bp = (const T *)be_;
    PFX(body)(MV, NR, FULLK, TB, ADDC, m, n, k, &ap, &bp, 1, lda, ldb, (T *)ce_, ldc,
              alpha, beta, (const T *)0, (const T *)0, (const T *)0);
  }
#undef SMM_OPERANDS_
}

/* A runtime-sized kernel with register tile MV x NR (TB: op(B) = B^T). */
#define SMM_DEFINE_RUNTIME(MV, NR, TB)                                                                   \
  TGT void PFX(gemm_##MV##x##NR##_tb##TB)(const smm_kernel *kern, const void *const *a,                  \
                                          const void *const *b, void *c, int64_t count, const void *pa,   \
                                          const void *pb, const void *pc)                                 \
  {                                                                                                      \
    PFX(entry)(MV, NR, 0, TB, SMM_ADD_UPDATE(MV, NR), 0, 0, 0, 0, 0, 0, kern, a, b, c, count, pa, pb, pc); \
  }

/* A kernel specialised for one (M, N, K) with tight leading dimensions (lda = M, ldb = K, ldc = M;
 * op(B) = B); FULL: the k loop is unrolled completely. SUF (may be empty) ends the name: a shape
 * whose cached-operand tile differs gets a second kernel, spec_M_N_K_c. */
#define SMM_DEFINE_SPECIALIZED(MV, NR, FULL, M, N, K, SUF)                                               \
  TGT void PFX(spec_##M##_##N##_##K##SUF)(const smm_kernel *kern, const void *const *a, const void *const *b, \
                                     void *c, int64_t count, const void *pa, const void *pb,              \
                                     const void *pc)                                                      \
  {                                                                                                      \
    PFX(entry)(MV, NR, FULL, 0, SMM_ADD_UPDATE(MV, NR), M, N, K, M, K, M, kern, a, b, c, count, pa, pb, pc); \
  }

/* Its strided-batch form (smm_strided_fn), spec_M_N_K{SUF}_s; _CACHED: the form only batches with
 * operands in cache run, whose tiles update C as SMM_ADD_UPDATE_CACHED says. */
#define SMM_STRIDED_FORM(MV, NR, FULL, M, N, K, SUF, ADDC)                                             \
  TGT void PFX(spec_##M##_##N##_##K##SUF##_s)(const smm_kernel *kern, const void *a, const void *b, void *c, \
                                             int64_t sa, int64_t sb, int64_t sc, int64_t nbatch)         \
  {                                                                                                      \
    PFX(entry_strided)(MV, NR, FULL, 0, ADDC, M, N, K, M, K, M, kern, a, b, c, sa, sb, sc, nbatch);       \
  }
#define SMM_DEFINE_SPECIALIZED_STRIDED(MV, NR, FULL, M, N, K, SUF) \
  SMM_STRIDED_FORM(MV, NR, FULL, M, N, K, SUF, SMM_ADD_UPDATE(MV, NR))
#define SMM_DEFINE_SPECIALIZED_STRIDED_CACHED(MV, NR, FULL, M, N, K, SUF) \
  SMM_STRIDED_FORM(MV, NR, FULL, M, N, K, SUF, SMM_ADD_UPDATE_CACHED(MV, NR))
