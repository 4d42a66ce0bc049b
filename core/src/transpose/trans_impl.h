/* Tile loops shared by every ISA and element size (a template: each trans_<isa>_<dtype>_*.c file
 * defines the register-block kernels below and then includes this file once).
 *
 * The including file defines:
 *   TR_ELEM              scalar type of one element (moved as raw bits)
 *   TR_BM, TR_BN         out-of-place register block: TR_BM rows x TR_BN columns of the input; where
 *                        the path streams, TR_BN elements make one 64-byte output line
 *   TR_STREAMS           1 if tr_block_nt exists (then also TR_VEC_BYTES, 32 or 64: the vector width)
 *   TR_ATTR              function attributes (the ISA target)
 *   TR_NAME(op)          exported symbol for op (otrans, itrans_swap, itrans_diag)
 *   tr_block(in, ldi, out, ldo)       TR_BM x TR_BN block, out[i*ldo + j] = in[j*ldi + i]
 *   tr_block_nt(in, ldi, out, ldo)    the same with non-temporal stores (out rows 64-byte aligned)
 *   TR_PARTIAL           1 if tr_block_part exists, else edges are plain loops
 *   tr_block_part(in, ldi, out, ldo, mr, nc)  edge block: the first mr rows and nc columns only
 *   TR_INPLACE           1 if the in-place kernels below exist (then also TR_SQ):
 *   tr_swap_sq(a, b, ld)              TR_SQ x TR_SQ blocks a, b: a := b^T, b := a^T
 *   tr_diag_sq(a, ld)                 TR_SQ x TR_SQ block in place
 */
#include <stdint.h>
#include <stdlib.h>

/* Streaming, each input column of a strip is read ahead by this many bytes with a software
 * prefetch: the strip reads its columns as tn parallel streams, more than the hardware prefetcher
 * follows at full distance (20000^2 f64, 1 thread: 69 % of the copy without, 88-100 % with 256 B;
 * 128 B: 87 %, 384 B: 78 %). */
#ifndef TR_PF_BYTES
#define TR_PF_BYTES 256
#endif
#define TR_PF_ELEMS (TR_PF_BYTES / (int64_t)sizeof(TR_ELEM))
#define TR_PREFETCH(p) __builtin_prefetch((const void *)(p), 0, 3) /* prefetcht0 */
/* The other read-ahead, for strips of 512 bytes or more: while a tile is transposed, the next tile
 * of the band is brought into L2 one column after the other, a few lines per register block, so
 * that the memory sees whole columns read in order, as a copy does, instead of the strip's parallel
 * column streams. Those streams are worst where the columns lie a multiple of 2 KiB apart and share
 * cache sets (2048^2, 4096^2, 8192^2 f64: 64-72 % of the copy however they are read ahead).
 * A C mock-up at 4096^2 f64, 1 thread, tiles of 512 x 32: 68 -> 87-98 % of the copy; prefetcht0
 * instead: 67-71 %. In the library, AVX-512 f64 tiles of 512 x 64: 4096^2 71-73 -> 80-90 %; at
 * 20000^2 (1 thread) such tiles ran at 77-83 % with it and 48 % with the per-column read-ahead
 * (the default narrow strips: 86-88 %).
 * Spread evenly over the tile: issuing them in the first half or quarter of it ran at 71 / 62 %,
 * prefetcht0 at 60 %, prefetcht2 at 80-87 %. */
#define TR_PREFETCH_L2(p) __builtin_prefetch((const void *)(p), 0, 2) /* prefetcht1 */

#if TR_STREAMS
/* Output rows that do not start on 64-byte lines (ldo * size not a multiple of 64) cannot take the
 * register blocks' streaming stores. Instead, tiles of TR_SR rows x TR_STAGE_W columns (two lines'
 * worth, as the aligned path writes per row and visit) are transposed into an aligned buffer in L1,
 * behind the previous strip's last line of columns of each row (kept per row of the band), and each
 * output row writes the whole lines that buffer now completes, from its own line boundaries, with
 * streaming stores: every line of a row is written once and whole, except the row's partial first
 * and last lines (plain stores). The strip reads only its own columns: 16 input streams, as the
 * aligned path. */
#define TR_LINE ((int64_t)(64 / sizeof(TR_ELEM)))
#define TR_STAGE_W (2 * TR_LINE)
#define TR_SW (TR_STAGE_W + TR_LINE)
#define TR_SR 64
/* One 64-byte line from src to dst: STORE(dst, LOAD(src)) as one zmm or two ymm moves. */
#if TR_VEC_BYTES == 64
#define TR_LINE_WITH(STORE, LOAD, dst, src) STORE((void *)(dst), LOAD((const void *)(src)))
#else
#define TR_LINE_WITH(STORE, LOAD, dst, src)                                                     \
  do {                                                                                          \
    STORE((__m256i *)(void *)(dst), LOAD((const __m256i *)(const void *)(src)));                \
    STORE((__m256i *)(void *)((char *)(dst) + 32), LOAD((const __m256i *)(const void *)((const char *)(src) + 32))); \
  } while (0)
#endif
#if TR_VEC_BYTES == 64
#define TR_LINE_NT(dst, src) TR_LINE_WITH(_mm512_stream_si512, _mm512_loadu_si512, dst, src)
#define TR_LINE_MOVE(dst, src) TR_LINE_WITH(_mm512_store_si512, _mm512_load_si512, dst, src)
#else
#define TR_LINE_NT(dst, src) TR_LINE_WITH(_mm256_stream_si256, _mm256_loadu_si256, dst, src)
#define TR_LINE_MOVE(dst, src) TR_LINE_WITH(_mm256_store_si256, _mm256_load_si256, dst, src)
#endif
#endif

static inline TR_ATTR __attribute__((unused)) void TR_NAME(edge)(const TR_ELEM *in, TR_ELEM *out, int64_t i0,
                                                                 int64_t i1, int64_t j0, int64_t j1,
                                                                 int64_t ldi, int64_t ldo)
{
  for (int64_t j = j0; j < j1; ++j)
    for (int64_t i = i0; i < i1; ++i)
      out[i * ldo + j] = in[j * ldi + i];
}

#if TR_STREAMS

/* Writes rows [q0, q1) of the tile staged at row i: every line they complete, streaming; keeps each
 * row's last line. */
static inline TR_ATTR void TR_NAME(emit)(TR_ELEM *out, int64_t ldo, int64_t n, int64_t i, int64_t q0, int64_t q1,
                                         int64_t j0, int64_t jw, TR_ELEM *carry, const TR_ELEM *st)
{
  const int64_t end = j0 + jw;  /* buffer column t holds matrix column j0 - TR_LINE + t */
  for (int64_t q = q0; q < q1; ++q) {
    TR_ELEM *orow = out + (i + q) * ldo;
    const TR_ELEM *srow = st + q * TR_SW;
    const int64_t p0 = (int64_t)(((64 - ((uintptr_t)orow & 63)) & 63) / sizeof(TR_ELEM));
    int64_t c;
    if (j0 == 0) {  /* the row's partial first line */
      for (c = 0; c < p0 && c < n; ++c) orow[c] = srow[TR_LINE + c];
      c = p0;
    } else {
      c = p0 > 0 ? j0 - TR_LINE + p0 : j0;  /* the first line the last strip could not complete */
    }
    for (; c + TR_LINE <= end; c += TR_LINE) TR_LINE_NT(orow + c, srow + (c - j0 + TR_LINE));
    if (end == n)
      for (; c < n; ++c) orow[c] = srow[c - j0 + TR_LINE];  /* the row's partial last line */
    else
      TR_LINE_MOVE(carry + q * TR_LINE, srow + TR_STAGE_W);  /* columns end - TR_LINE .. end - 1 */
  }
}

/* Returns 0, or -1 when there is no memory for the per-row carry (then the caller stores normally).
 * Two buffers: a tile is written out while the next one is staged, so that the unaligned loads of a
 * row never wait on the stores that staged it (store-to-load forwarding fails across two stores:
 * emitting right after staging ran at half the speed). */
static TR_ATTR int TR_NAME(staged)(const TR_ELEM *in, TR_ELEM *out, int64_t m, int64_t n, int64_t ldi,
                                   int64_t ldo, int64_t tm, int pf)
{
  TR_ELEM st[2][TR_SR * TR_SW] __attribute__((aligned(64)));
  tm = tm < TR_SR ? TR_SR : tm;
  const int64_t band = tm < m ? tm : m;
  TR_ELEM *carry = NULL;  /* per row of the band: the last line of columns of the previous strip */
  if (posix_memalign((void **)&carry, 64, (size_t)(band * TR_LINE) * sizeof(TR_ELEM))) return -1;
  for (int64_t i0 = 0; i0 < m; i0 += tm) {  /* bands of tm rows, crossed by strips of TR_STAGE_W */
    const int64_t i1 = i0 + tm < m ? i0 + tm : m;
    for (int64_t j0 = 0; j0 < n; j0 += TR_STAGE_W) {
      const int64_t jw = n - j0 < TR_STAGE_W ? n - j0 : TR_STAGE_W;
      const int64_t jb = jw - jw % TR_BN;
      int64_t prev = -1, prev_ir = 0, t = 0;
      for (int64_t i = i0; i < i1; i += TR_SR, ++t) {
        const int64_t ir = i1 - i < TR_SR ? i1 - i : TR_SR, ib = ir - ir % TR_BM;
        const TR_ELEM *src = in + j0 * ldi + i;
        TR_ELEM *const cur = st[t & 1], *const sb = cur + TR_LINE, *const last = st[(t - 1) & 1];
        TR_ELEM *const pcarry = prev >= 0 ? carry + (prev - i0) * TR_LINE : carry;
        int64_t done = 0;  /* rows of the previous tile written so far */
        for (int64_t r = 0; r < ib; r += TR_BM) {
          if (pf && ((i + r) * (int64_t)sizeof(TR_ELEM)) % 64 == 0)
            for (int64_t j = 0; j < jw; ++j) TR_PREFETCH(src + j * ldi + r + TR_PF_ELEMS);
          for (int64_t j = 0; j < jb; j += TR_BN) tr_block(src + j * ldi + r, ldi, sb + r * TR_SW + j, TR_SW);
          /* The previous tile's rows go out between the blocks: streaming stores in bursts of a
           * whole tile stalled on the write-combining buffers. */
          if (prev >= 0) {
            const int64_t upto = done + TR_BM < prev_ir ? done + TR_BM : prev_ir;
            TR_NAME(emit)(out, ldo, n, prev, done, upto, j0, jw, pcarry, last);
            done = upto;
          }
        }
        TR_NAME(edge)(src, sb, ib, ir, 0, jw, ldi, TR_SW);
        TR_NAME(edge)(src, sb, 0, ib, jb, jw, ldi, TR_SW);
        if (j0 > 0)
          for (int64_t q = 0; q < ir; ++q) TR_LINE_MOVE(cur + q * TR_SW, carry + (i - i0 + q) * TR_LINE);
        if (prev >= 0)
          TR_NAME(emit)(out, ldo, n, prev, done, prev_ir, j0, jw, pcarry, last);
        prev = i; prev_ir = ir;
      }
      TR_NAME(emit)(out, ldo, n, prev, 0, prev_ir, j0, jw, carry + (prev - i0) * TR_LINE, st[(t - 1) & 1]);
    }
  }
  free(carry);
  return 0;
}
#endif

TR_ATTR void TR_NAME(otrans)(const void *vin, void *vout, int64_t m, int64_t n, int64_t ldi, int64_t ldo,
                             int64_t tm, int64_t tn, int streaming)
{
  const TR_ELEM *in = (const TR_ELEM *)vin;
  TR_ELEM *out = (TR_ELEM *)vout;
  const int64_t mb = m - m % TR_BM, nb = n - n % TR_BN;
  /* Whole 64-byte lines per non-temporal store, else the write-combining buffers flush partial
   * lines, which costs more than the read-for-ownership the streaming store saves. */
  const int nt = TR_STREAMS && streaming && ((uintptr_t)out % 64 == 0)
                 && ((ldo * (int64_t)sizeof(TR_ELEM)) % 64 == 0);
  /* Not when the columns lie a multiple of 2 KiB apart (2048^2, 4096^2, 8192^2 f64: 74 -> 60 %,
   * 76 -> 60 %, 63 -> 52 % of the copy with it; 4160^2, 4224^2: 83 -> 92 %, 85 -> 93 %): the
   * strip's columns then share cache sets and DRAM banks, and the extra requests only collide. */
  const int aliased = ((ldi * (int64_t)sizeof(TR_ELEM)) % 2048) == 0;
  const int pf = streaming >= 2 && !aliased;
  /* Strips of 512-byte output runs or wider read the next tile ahead into L2, column by column,
   * instead (TR_PREFETCH_L2; narrower strips gained nothing from it). */
  const int tpf = streaming >= 2 && tn * (int64_t)sizeof(TR_ELEM) >= 512;
  tm = tm < TR_BM ? TR_BM : tm - tm % TR_BM;
  tn = tn < TR_BN ? TR_BN : tn - tn % TR_BN;
#if TR_STREAMS
  if (streaming && !nt && (uintptr_t)out % sizeof(TR_ELEM) == 0
      && TR_NAME(staged)(in, out, m, n, ldi, ldo, tm, pf) == 0)
    return;
  if (nt) {
    /* Streaming: bands of tm rows, crossed by strips of tn columns. In a strip, row blocks go
     * outside so that each output row receives tn-element runs back to back (full-speed
     * non-temporal writes need a few consecutive lines per row and visit) while the strip's input
     * columns are read as sequential streams; a band keeps the output rows (and their pages) in
     * use few, a tall band keeps the input streams long. */
    for (int64_t i0 = 0; i0 < mb; i0 += tm) {
      const int64_t i1 = i0 + tm < mb ? i0 + tm : mb;
      for (int64_t j0 = 0; j0 < nb; j0 += tn) {
        const int64_t j1 = j0 + tn < nb ? j0 + tn : nb;
        /* tpf: the next tile's lines (columns [j1, j1 + tn), rows [i0, i1)), `per` of them before
         * each register block, column by column; (pc, pr): the next line's column and row. */
        const int64_t lpc = ((i1 - i0) * (int64_t)sizeof(TR_ELEM) + 63) / 64;
        const int64_t nlines = tpf ? lpc * ((j1 + tn < nb ? j1 + tn : nb) - j1) : 0;
        const int64_t nblk = ((i1 - i0) / TR_BM) * ((j1 - j0) / TR_BN);
        const int64_t per = nblk > 0 ? (nlines + nblk - 1) / nblk : 0;
        int64_t left = nlines, pc = j1, pr = 0;
        for (int64_t i = i0; i < i1; i += TR_BM) {
          if (pf && !tpf && (i * (int64_t)sizeof(TR_ELEM)) % 64 == 0)
            for (int64_t j = j0; j < j1; ++j) TR_PREFETCH(in + j * ldi + i + TR_PF_ELEMS);
          for (int64_t j = j0; j < j1; j += TR_BN) {
            for (int64_t q = 0; q < per && left > 0; ++q, --left) {
              TR_PREFETCH_L2((const char *)(in + pc * ldi + i0) + 64 * pr);
              if (++pr == lpc) { pr = 0; ++pc; }
            }
            tr_block_nt(in + j * ldi + i, ldi, out + i * ldo + j, ldo);
          }
        }
      }
    }
  } else
#endif
  {
    /* In cache: strips of tn columns, cut into tiles of tm rows; in a tile, column blocks outside. */
    for (int64_t j0 = 0; j0 < nb; j0 += tn) {
      const int64_t j1 = j0 + tn < nb ? j0 + tn : nb;
      for (int64_t i0 = 0; i0 < mb; i0 += tm) {
        const int64_t i1 = i0 + tm < mb ? i0 + tm : mb;
        for (int64_t j = j0; j < j1; j += TR_BN)
          for (int64_t i = i0; i < i1; i += TR_BM)
            tr_block(in + j * ldi + i, ldi, out + i * ldo + j, ldo);
      }
    }
  }
#if TR_PARTIAL
  if (mb < m)
    for (int64_t j = 0; j < n; j += TR_BN)
      tr_block_part(in + j * ldi + mb, ldi, out + mb * ldo + j, ldo, (int)(m - mb), (int)(n - j < TR_BN ? n - j : TR_BN));
  if (nb < n)
    for (int64_t i = 0; i < mb; i += TR_BM)
      tr_block_part(in + nb * ldi + i, ldi, out + i * ldo + nb, ldo, TR_BM, (int)(n - nb));
#else
  TR_NAME(edge)(in, out, mb, m, 0, n, ldi, ldo);
  TR_NAME(edge)(in, out, 0, mb, nb, n, ldi, ldo);
#endif
  (void)nt; /* non-temporal stores are fenced once per thread by the caller (smm_trans_fence) */
  (void)pf;
  (void)tpf;
}

#if TR_INPLACE
TR_ATTR void TR_NAME(itrans_swap)(void *va, void *vb, int64_t m, int64_t n, int64_t ld)
{
  TR_ELEM *a = (TR_ELEM *)va, *b = (TR_ELEM *)vb;
  const int64_t mb = m - m % TR_SQ, nb = n - n % TR_SQ;
  for (int64_t j = 0; j < nb; j += TR_SQ)
    for (int64_t i = 0; i < mb; i += TR_SQ)
      tr_swap_sq(a + j * ld + i, b + i * ld + j, ld);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = (j < nb ? mb : 0); i < m; ++i) {
      TR_ELEM t = a[j * ld + i];
      a[j * ld + i] = b[i * ld + j];
      b[i * ld + j] = t;
    }
}

TR_ATTR void TR_NAME(itrans_diag)(void *va, int64_t n, int64_t ld)
{
  TR_ELEM *a = (TR_ELEM *)va;
  const int64_t nb = n - n % TR_SQ;
  for (int64_t j = 0; j < nb; j += TR_SQ) {
    tr_diag_sq(a + j * ld + j, ld);
    for (int64_t i = j + TR_SQ; i < nb; i += TR_SQ)
      tr_swap_sq(a + j * ld + i, a + i * ld + j, ld);
  }
  /* Pairs (i, j), i < j, with j in the remainder: everything the blocks did not cover. */
  for (int64_t j = nb; j < n; ++j)
    for (int64_t i = 0; i < j; ++i) {
      TR_ELEM t = a[j * ld + i];
      a[j * ld + i] = a[i * ld + j];
      a[i * ld + j] = t;
    }
}
#endif
