/* One ISA's instantiation of the NEK streaming kernels and mxm; included by nek_kernels.h once per
 * ISA and dtype after it defines the vector vocabulary:
 *   T, L (lanes), V, ALIGN (bytes a streaming store needs), TGT (target attribute), SFX (name suffix),
 *   VLOADU(p), VSTREAM(p, v), VSET1(x), VMUL(a, b), VFMA(a, b, c) (a*b+c), SFMA(a, b, c) (scalar).
 * L == 1 means "no vector code": plain loops (the compiler may still vectorise them).
 *
 * The update is written with explicit fused multiply-adds (or, without FMA hardware, separate
 * multiplies and adds) in both the vector body and the scalar prologue/epilogue: the compiler's own
 * contraction would otherwise round points differently depending on where c happens to be aligned.
 */
#define NEK_CAT_(a, b) a##b
#define NEK_CAT(a, b) NEK_CAT_(a, b)
#define NEK_FN(name) NEK_CAT(name, SFX)

/* Elements before `c` reaches an ALIGN-byte boundary, capped at len (the sample's scalar prologue). */
/* One point of the Helmholtz update, rounded exactly as a vector lane is. */
NEK_ALWAYS T NEK_FN(nek_helmholtz_point_)(T g1, T g2, T g3, T tm1, T tm2, T tm3, T a, T b, T h1, T h2)
{
  const T s = SFMA(g3, tm3, SFMA(g2, tm2, g1 * tm1));
  return SFMA(h1, s, h2 * (b * a));
}

NEK_ALWAYS int64_t NEK_FN(nek_prologue_)(const T *c, int64_t len)
{
  const int64_t mis = (int64_t)((uintptr_t)c % ALIGN);
  int64_t pro = mis ? (int64_t)((ALIGN - mis) / sizeof(T)) : 0;
  if ((uintptr_t)c % sizeof(T)) pro = len; /* misaligned to its own type: no vector stores */
  return pro < len ? pro : len;
}

/* c = h1 (g1 tm1 + g2 tm2 + g3 tm3) + h2 (b a), streamed past the caches. */
TGT void NEK_FN(nek_stream_helmholtz_)(const T *g1, const T *g2, const T *g3, const T *tm1, const T *tm2,
                                       const T *tm3, const T *a, const T *b, T *c, T h1, T h2, int64_t len)
{
  int64_t i = 0;
#if L > 1
  const int64_t pro = NEK_FN(nek_prologue_)(c, len);
  for (; i < pro; ++i)
    c[i] = NEK_FN(nek_helmholtz_point_)(g1[i], g2[i], g3[i], tm1[i], tm2[i], tm3[i], a[i], b[i], h1, h2);
  const V vh1 = VSET1(h1), vh2 = VSET1(h2);
  for (; i + L <= len; i += L) {
    const V s = VFMA(VLOADU(g3 + i), VLOADU(tm3 + i),
                     VFMA(VLOADU(g2 + i), VLOADU(tm2 + i), VMUL(VLOADU(g1 + i), VLOADU(tm1 + i))));
    const V u = VMUL(vh2, VMUL(VLOADU(b + i), VLOADU(a + i)));
    VSTREAM(c + i, VFMA(vh1, s, u));
  }
#endif
  for (; i < len; ++i)
    c[i] = NEK_FN(nek_helmholtz_point_)(g1[i], g2[i], g3[i], tm1[i], tm2[i], tm3[i], a[i], b[i], h1, h2);
}

/* c = a, streamed past the caches. */
TGT void NEK_FN(nek_stream_copy_)(const T *a, T *c, int64_t len)
{
  int64_t i = 0;
#if L > 1
  const int64_t pro = NEK_FN(nek_prologue_)(c, len);
  for (; i < pro; ++i) c[i] = a[i];
  for (; i + 2 * L <= len; i += 2 * L) {
    VSTREAM(c + i, VLOADU(a + i));
    VSTREAM(c + i + L, VLOADU(a + i + L));
  }
  for (; i + L <= len; i += L) VSTREAM(c + i, VLOADU(a + i));
#endif
  for (; i < len; ++i) c[i] = a[i];
}

/* Nek's mxm_std: c(n1,n3) = a(n1,n2) b(n2,n3), column-major, alpha = 1, beta = 0. Nek unrolls the sum
 * over n2 by hand (mxf1 ... mxf24); here a constant n2 does the same through constant propagation. */
NEK_ALWAYS void NEK_FN(nek_mxm_fixed_)(const T *a, int64_t n1, const T *b, T *c, int64_t n3, const int K)
{
  for (int64_t j = 0; j < n3; ++j) {
    const T *bj = b + j * K;
    T *cj = c + j * n1;
    for (int64_t i = 0; i < n1; ++i) {
      T s = a[i] * bj[0];
#pragma GCC unroll 24
      for (int l = 1; l < K; ++l) s += a[i + l * n1] * bj[l];
      cj[i] = s;
    }
  }
}

TGT void NEK_FN(nek_mxm_)(const T *a, int64_t n1, const T *b, int64_t n2, T *c, int64_t n3)
{
  switch (n2) {
#define NEK_MXF(K) case K: NEK_FN(nek_mxm_fixed_)(a, n1, b, c, n3, K); return;
    NEK_MXF(1) NEK_MXF(2) NEK_MXF(3) NEK_MXF(4) NEK_MXF(5) NEK_MXF(6) NEK_MXF(7) NEK_MXF(8)
    NEK_MXF(9) NEK_MXF(10) NEK_MXF(11) NEK_MXF(12) NEK_MXF(13) NEK_MXF(14) NEK_MXF(15) NEK_MXF(16)
    NEK_MXF(17) NEK_MXF(18) NEK_MXF(19) NEK_MXF(20) NEK_MXF(21) NEK_MXF(22) NEK_MXF(23) NEK_MXF(24)
#undef NEK_MXF
    default: break;
  }
  /* Nek's mxm_std falls back to a plain triple loop beyond its unrolled cases. */
  for (int64_t j = 0; j < n3; ++j) {
    T *cj = c + j * n1;
    for (int64_t i = 0; i < n1; ++i) cj[i] = 0;
    for (int64_t l = 0; l < n2; ++l) {
      const T blj = b[l + j * n2];
      const T *al = a + l * n1;
      for (int64_t i = 0; i < n1; ++i) cj[i] += al[i] * blj;
    }
  }
}

#undef NEK_FN
#undef NEK_CAT
#undef NEK_CAT_
