/* Tile loops shared by every ISA and element size (a template: each trans_<isa>_<dtype>_*.c file
 * defines the register-block kernels below and then includes this file once).
 *
 * The including file defines:
 *   TR_ELEM              scalar type of one element (moved as raw bits)
 *   TR_BM, TR_BN         out-of-place register block: TR_BM rows x TR_BN columns of the input; where
 *                        the path streams, TR_BN elements make one 64-byte output line
 *   TR_STREAMS           1 if tr_block_nt exists
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

/* Streaming, each input column of a strip is read ahead by this many bytes with a software
 * prefetch: the strip reads its columns as tn parallel streams, more than the hardware prefetcher
 * follows at full distance (20000^2 f64, 1 thread: 69 % of the copy without, 88-100 % with 256 B;
 * 128 B: 87 %, 384 B: 78 %). */
#ifndef TR_PF_BYTES
#define TR_PF_BYTES 256
#endif
#define TR_PF_ELEMS (TR_PF_BYTES / (int64_t)sizeof(TR_ELEM))
#define TR_PREFETCH(p) __builtin_prefetch((const void *)(p), 0, 3) /* prefetcht0 */

static inline TR_ATTR __attribute__((unused)) void TR_NAME(edge)(const TR_ELEM *in, TR_ELEM *out, int64_t i0,
                                                                 int64_t i1, int64_t j0, int64_t j1,
                                                                 int64_t ldi, int64_t ldo)
{
  for (int64_t j = j0; j < j1; ++j)
    for (int64_t i = i0; i < i1; ++i)
      out[i * ldo + j] = in[j * ldi + i];
}

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
  const int pf = streaming >= 2 && ((ldi * (int64_t)sizeof(TR_ELEM)) % 2048) != 0;
  tm = tm < TR_BM ? TR_BM : tm - tm % TR_BM;
  tn = tn < TR_BN ? TR_BN : tn - tn % TR_BN;
#if TR_STREAMS
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
        for (int64_t i = i0; i < i1; i += TR_BM) {
          if (pf && (i * (int64_t)sizeof(TR_ELEM)) % 64 == 0)
            for (int64_t j = j0; j < j1; ++j) TR_PREFETCH(in + j * ldi + i + TR_PF_ELEMS);
          for (int64_t j = j0; j < j1; j += TR_BN)
            tr_block_nt(in + j * ldi + i, ldi, out + i * ldo + j, ldo);
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
