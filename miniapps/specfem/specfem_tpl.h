/* One ISA's instantiation of the SPECFEM element kernels; included by specfem_kernels.h once per
 * ISA path after it defines TGT (the function target attribute) and SFX (the name suffix).
 * Everything here is plain C that the compiler vectorises for that ISA; the SMM variants call the
 * core.smm kernels through their function pointers.
 */
#define SPF_CAT_(a, b) a##b
#define SPF_CAT(a, b) SPF_CAT_(a, b)
#define SPF_FN(name) SPF_CAT(name, SFX)

/* ---------------- Deville loops (Deville, Fischer and Mund 2002, p. 386 and 389) ---------------- */

/* C_c(5 x 25) = A(5 x 5) B_c(5 x 25) for the three components. */
SPF_ALWAYS void SPF_FN(spf_dev_singleA_)(const float *restrict A, const float *restrict B1, const float *restrict B2,
                                         const float *restrict B3, float *restrict C1, float *restrict C2,
                                         float *restrict C3)
{
  for (int j = 0; j < 25; ++j)
    for (int i = 0; i < 5; ++i) {
      C1[i + 5 * j] = A[i] * B1[5 * j] + A[i + 5] * B1[1 + 5 * j] + A[i + 10] * B1[2 + 5 * j]
                    + A[i + 15] * B1[3 + 5 * j] + A[i + 20] * B1[4 + 5 * j];
      C2[i + 5 * j] = A[i] * B2[5 * j] + A[i + 5] * B2[1 + 5 * j] + A[i + 10] * B2[2 + 5 * j]
                    + A[i + 15] * B2[3 + 5 * j] + A[i + 20] * B2[4 + 5 * j];
      C3[i + 5 * j] = A[i] * B3[5 * j] + A[i + 5] * B3[1 + 5 * j] + A[i + 10] * B3[2 + 5 * j]
                    + A[i + 15] * B3[3 + 5 * j] + A[i + 20] * B3[4 + 5 * j];
    }
}

/* C_c(:,:,k) = A_c(:,:,k) B for every k-slice (5 x 5 x 5) of the three components. */
SPF_ALWAYS void SPF_FN(spf_dev_3dmat_singleB_)(const float *restrict A1, const float *restrict A2,
                                               const float *restrict A3, const float *restrict B,
                                               float *restrict C1, float *restrict C2, float *restrict C3)
{
  for (int k = 0; k < 5; ++k)
    for (int j = 0; j < 5; ++j)
      for (int i = 0; i < 5; ++i) {
        const int o = i + 25 * k;
        C1[i + 5 * j + 25 * k] = A1[o] * B[5 * j] + A1[o + 5] * B[1 + 5 * j] + A1[o + 10] * B[2 + 5 * j]
                               + A1[o + 15] * B[3 + 5 * j] + A1[o + 20] * B[4 + 5 * j];
        C2[i + 5 * j + 25 * k] = A2[o] * B[5 * j] + A2[o + 5] * B[1 + 5 * j] + A2[o + 10] * B[2 + 5 * j]
                               + A2[o + 15] * B[3 + 5 * j] + A2[o + 20] * B[4 + 5 * j];
        C3[i + 5 * j + 25 * k] = A3[o] * B[5 * j] + A3[o + 5] * B[1 + 5 * j] + A3[o + 10] * B[2 + 5 * j]
                               + A3[o + 15] * B[3 + 5 * j] + A3[o + 20] * B[4 + 5 * j];
      }
}

/* C_c(25 x 5) = A_c(25 x 5) B(5 x 5) for the three components. */
SPF_ALWAYS void SPF_FN(spf_dev_singleB_)(const float *restrict A1, const float *restrict A2, const float *restrict A3,
                                         const float *restrict B, float *restrict C1, float *restrict C2,
                                         float *restrict C3)
{
  for (int j = 0; j < 5; ++j)
    for (int i = 0; i < 25; ++i) {
      C1[i + 25 * j] = A1[i] * B[5 * j] + A1[i + 25] * B[1 + 5 * j] + A1[i + 50] * B[2 + 5 * j]
                     + A1[i + 75] * B[3 + 5 * j] + A1[i + 100] * B[4 + 5 * j];
      C2[i + 25 * j] = A2[i] * B[5 * j] + A2[i + 25] * B[1 + 5 * j] + A2[i + 50] * B[2 + 5 * j]
                     + A2[i + 75] * B[3 + 5 * j] + A2[i + 100] * B[4 + 5 * j];
      C3[i + 25 * j] = A3[i] * B[5 * j] + A3[i + 25] * B[1 + 5 * j] + A3[i + 50] * B[2 + 5 * j]
                     + A3[i + 75] * B[3 + 5 * j] + A3[i + 100] * B[4 + 5 * j];
    }
}

/* One pass of cut-plane products: d1 = A1 u1 (xi), d2 = u2 B (eta, per slice), d3 = u3 B (gamma); the
 * input of direction r, component c is in[r] + c * cs (pass 1: u for every direction; pass 2: the
 * stress terms of that direction). */
SPF_ALWAYS void SPF_FN(spf_pass_deville_)(const float *restrict A1, const float *restrict B, const float *const *in,
                                          const int cs, float *d)
{
  SPF_FN(spf_dev_singleA_)(A1, in[0], in[0] + cs, in[0] + 2 * cs, d + SPF_T(0, 0), d + SPF_T(1, 0), d + SPF_T(2, 0));
  SPF_FN(spf_dev_3dmat_singleB_)(in[1], in[1] + cs, in[1] + 2 * cs, B, d + SPF_T(0, 1), d + SPF_T(1, 1), d + SPF_T(2, 1));
  SPF_FN(spf_dev_singleB_)(in[2], in[2] + cs, in[2] + 2 * cs, B, d + SPF_T(0, 2), d + SPF_T(1, 2), d + SPF_T(2, 2));
}

/* ---------------- unrolled loops (the sample's compute_forces_noDev: one point at a time) ------------- */

/* d1(i,j,k) = sum_l u(l,j,k) AT(l,i); d2 = sum_l u(i,l,k) BT(l,j); d3 = sum_l u(i,j,l) BT(l,k). */
SPF_ALWAYS void SPF_FN(spf_pass_unrolled_)(const float *restrict AT, const float *restrict BT, const float *const *in,
                                           const int cs, float *d)
{
  for (int c = 0; c < 3; ++c) {
    const float *restrict u1 = in[0] + c * cs, *restrict u2 = in[1] + c * cs, *restrict u3 = in[2] + c * cs;
    float *restrict d1 = d + SPF_T(c, 0), *restrict d2 = d + SPF_T(c, 1), *restrict d3 = d + SPF_T(c, 2);
    for (int k = 0; k < 5; ++k)
      for (int j = 0; j < 5; ++j)
        for (int i = 0; i < 5; ++i) {
          const int p = i + 5 * j + 25 * k;
          d1[p] = u1[5 * j + 25 * k] * AT[5 * i] + u1[1 + 5 * j + 25 * k] * AT[1 + 5 * i]
                + u1[2 + 5 * j + 25 * k] * AT[2 + 5 * i] + u1[3 + 5 * j + 25 * k] * AT[3 + 5 * i]
                + u1[4 + 5 * j + 25 * k] * AT[4 + 5 * i];
          d2[p] = u2[i + 25 * k] * BT[5 * j] + u2[i + 5 + 25 * k] * BT[1 + 5 * j]
                + u2[i + 10 + 25 * k] * BT[2 + 5 * j] + u2[i + 15 + 25 * k] * BT[3 + 5 * j]
                + u2[i + 20 + 25 * k] * BT[4 + 5 * j];
          d3[p] = u3[i + 5 * j] * BT[5 * k] + u3[i + 5 * j + 25] * BT[1 + 5 * k]
                + u3[i + 5 * j + 50] * BT[2 + 5 * k] + u3[i + 5 * j + 75] * BT[3 + 5 * k]
                + u3[i + 5 * j + 100] * BT[4 + 5 * k];
        }
  }
}

/* ---------------- the same products through core.smm kernels (LIBXSMM variants) ---------------- */

/* mode 0: plain calls; 1: the first two calls of each component triple prefetch the next component's
 * operands, the third runs without (the sample's "prefetch"); 2: every call takes the prefetch form,
 * the third prefetching the first component's operands again as a dummy (the sample's "static"). */
SPF_ALWAYS void SPF_FN(spf_pass_smm_)(const spf_kernels *K, const int mode, const float *A1, const float *B,
                                      const float *const *in, const int cs, float *d)
{
  const float *ux = in[0], *uy = in[0] + cs, *uz = in[0] + 2 * cs;
  float *d1x = d + SPF_T(0, 0), *d1y = d + SPF_T(1, 0), *d1z = d + SPF_T(2, 0);
  float *d2x = d + SPF_T(0, 1), *d2y = d + SPF_T(1, 1), *d2z = d + SPF_T(2, 1);
  float *d3x = d + SPF_T(0, 2), *d3y = d + SPF_T(1, 2), *d3z = d + SPF_T(2, 2);
  const float *vx = in[1], *vy = in[1] + cs, *vz = in[1] + 2 * cs;
  const float *wx = in[2], *wy = in[2] + cs, *wz = in[2] + 2 * cs;
  if (mode == 0) {
    smm_call(K->xmm1, A1, ux, d1x);
    smm_call(K->xmm1, A1, uy, d1y);
    smm_call(K->xmm1, A1, uz, d1z);
    for (int k = 0; k < 5; ++k) {
      smm_call(K->xmm3, vx + 25 * k, B, d2x + 25 * k);
      smm_call(K->xmm3, vy + 25 * k, B, d2y + 25 * k);
      smm_call(K->xmm3, vz + 25 * k, B, d2z + 25 * k);
    }
    smm_call(K->xmm2, wx, B, d3x);
    smm_call(K->xmm2, wy, B, d3y);
    smm_call(K->xmm2, wz, B, d3z);
  } else if (mode == 1) {
    smm_call_prefetch(K->xmm1p, A1, ux, d1x, A1, uy, d1y);
    smm_call_prefetch(K->xmm1p, A1, uy, d1y, A1, uz, d1z);
    smm_call(K->xmm1, A1, uz, d1z);
    for (int k = 0; k < 5; ++k) {
      smm_call_prefetch(K->xmm3p, vx + 25 * k, B, d2x + 25 * k, vy + 25 * k, B, d2y + 25 * k);
      smm_call_prefetch(K->xmm3p, vy + 25 * k, B, d2y + 25 * k, vz + 25 * k, B, d2z + 25 * k);
      smm_call(K->xmm3, vz + 25 * k, B, d2z + 25 * k);
    }
    smm_call_prefetch(K->xmm2p, wx, B, d3x, wy, B, d3y);
    smm_call_prefetch(K->xmm2p, wy, B, d3y, wz, B, d3z);
    smm_call(K->xmm2, wz, B, d3z);
  } else {
    smm_call_prefetch(K->xmm1p, A1, ux, d1x, A1, uy, d1y);
    smm_call_prefetch(K->xmm1p, A1, uy, d1y, A1, uz, d1z);
    smm_call_prefetch(K->xmm1p, A1, uz, d1z, A1, ux, d1x);
    for (int k = 0; k < 5; ++k) {
      smm_call_prefetch(K->xmm3p, vx + 25 * k, B, d2x + 25 * k, vy + 25 * k, B, d2y + 25 * k);
      smm_call_prefetch(K->xmm3p, vy + 25 * k, B, d2y + 25 * k, vz + 25 * k, B, d2z + 25 * k);
      smm_call_prefetch(K->xmm3p, vz + 25 * k, B, d2z + 25 * k, vx + 25 * k, B, d2x + 25 * k);
    }
    smm_call_prefetch(K->xmm2p, wx, B, d3x, wy, B, d3y);
    smm_call_prefetch(K->xmm2p, wy, B, d3y, wz, B, d3z);
    smm_call_prefetch(K->xmm2p, wz, B, d3z, wx, B, d3x);
  }
}

/* ---------------- per-element arithmetic shared by every variant ---------------- */

/* u(3 x 125, one component after the other) = displ at the element's nodes. */
SPF_ALWAYS void SPF_FN(spf_gather_)(const spf_model *M, int64_t e, float *restrict u)
{
  const int32_t *restrict ib = M->ibool + e * SPF_N3;
  const float *restrict displ = M->displ;
  for (int p = 0; p < SPF_N3; ++p) {
    const int64_t g = 3 * (int64_t)ib[p];
    u[p] = displ[g];
    u[SPF_N3 + p] = displ[g + 1];
    u[2 * SPF_N3 + p] = displ[g + 2];
  }
}

/* Isotropic elastic stress with self-gravitation at every GLL point, then the stress dotted with the
 * test-function gradient (jacobian-weighted): d (the 9 derivatives) is overwritten with the 9 terms the
 * weighted transposed pass needs, and rho_s_H receives the gravity source terms. */
SPF_ALWAYS void SPF_FN(spf_stress_)(const spf_model *M, int64_t e, const float *restrict u, float *restrict d,
                                    float *restrict rho_s_H)
{
  const float *restrict G = M->geom + e * SPF_NGEOM;
  const float xix = G[0], xiy = G[1], xiz = G[2], etax = G[3], etay = G[4], etaz = G[5];
  const float gammax = G[6], gammay = G[7], gammaz = G[8], jacobian = G[9];
  const float kappa = M->material[2 * e], mu = M->material[2 * e + 1];
  const float lambdaplus2mu = kappa + (4.0f / 3.0f) * mu;
  const float lambda = lambdaplus2mu - 2.0f * mu;
  const float *restrict R = M->gravity + e * SPF_NGRAV;
  const float gx = R[0], gy = R[1], gz = R[2];
  const float Hxx = R[3], Hyy = R[4], Hzz = R[5], Hxy = R[6], Hxz = R[7], Hyz = R[8];
  const float *restrict wcube = M->wgll_cube;
  float *restrict tx1 = d + SPF_T(0, 0), *restrict tx2 = d + SPF_T(0, 1), *restrict tx3 = d + SPF_T(0, 2);
  float *restrict ty1 = d + SPF_T(1, 0), *restrict ty2 = d + SPF_T(1, 1), *restrict ty3 = d + SPF_T(1, 2);
  float *restrict tz1 = d + SPF_T(2, 0), *restrict tz2 = d + SPF_T(2, 1), *restrict tz3 = d + SPF_T(2, 2);
  for (int p = 0; p < SPF_N3; ++p) {
    const float duxdx = xix * tx1[p] + etax * tx2[p] + gammax * tx3[p];
    const float duxdy = xiy * tx1[p] + etay * tx2[p] + gammay * tx3[p];
    const float duxdz = xiz * tx1[p] + etaz * tx2[p] + gammaz * tx3[p];
    const float duydx = xix * ty1[p] + etax * ty2[p] + gammax * ty3[p];
    const float duydy = xiy * ty1[p] + etay * ty2[p] + gammay * ty3[p];
    const float duydz = xiz * ty1[p] + etaz * ty2[p] + gammaz * ty3[p];
    const float duzdx = xix * tz1[p] + etax * tz2[p] + gammax * tz3[p];
    const float duzdy = xiy * tz1[p] + etay * tz2[p] + gammay * tz3[p];
    const float duzdz = xiz * tz1[p] + etaz * tz2[p] + gammaz * tz3[p];
    float sxx = lambdaplus2mu * duxdx + lambda * (duydy + duzdz);
    float syy = lambdaplus2mu * duydy + lambda * (duxdx + duzdz);
    float szz = lambdaplus2mu * duzdz + lambda * (duxdx + duydy);
    const float sxy_sym = mu * (duxdy + duydx);
    const float sxz_sym = mu * (duzdx + duxdz);
    const float syz_sym = mu * (duzdy + duydz);
    /* Gravity makes the stress non-symmetric: G = (s.g) I - s g^T terms, s = rho u. */
    const float sx = u[p], sy = u[SPF_N3 + p], sz = u[2 * SPF_N3 + p];
    sxx += sy * gy + sz * gz;
    syy += sx * gx + sz * gz;
    szz += sx * gx + sy * gy;
    const float sxy = sxy_sym - sx * gy, syx = sxy_sym - sy * gx;
    const float sxz = sxz_sym - sx * gz, szx = sxz_sym - sz * gx;
    const float syz = syz_sym - sy * gz, szy = syz_sym - sz * gy;
    const float factor = jacobian * wcube[p];
    rho_s_H[p] = factor * (sx * Hxx + sy * Hxy + sz * Hxz);
    rho_s_H[SPF_N3 + p] = factor * (sx * Hxy + sy * Hyy + sz * Hyz);
    rho_s_H[2 * SPF_N3 + p] = factor * (sx * Hxz + sy * Hyz + sz * Hzz);
    tx1[p] = jacobian * (sxx * xix + syx * xiy + szx * xiz);
    ty1[p] = jacobian * (sxy * xix + syy * xiy + szy * xiz);
    tz1[p] = jacobian * (sxz * xix + syz * xiy + szz * xiz);
    tx2[p] = jacobian * (sxx * etax + syx * etay + szx * etaz);
    ty2[p] = jacobian * (sxy * etax + syy * etay + szy * etaz);
    tz2[p] = jacobian * (sxz * etax + syz * etay + szz * etaz);
    tx3[p] = jacobian * (sxx * gammax + syx * gammay + szx * gammaz);
    ty3[p] = jacobian * (sxy * gammax + syy * gammay + szy * gammaz);
    tz3[p] = jacobian * (sxz * gammax + syz * gammay + szz * gammaz);
  }
}

/* sum_terms(e) = -(w_yz n1 + w_xz n2 + w_xy n3) + rho_s_H, component after component. */
SPF_ALWAYS void SPF_FN(spf_sum_terms_)(const spf_model *M, int64_t e, const float *restrict n,
                                       const float *restrict rho_s_H)
{
  const float *restrict w1 = M->wgll_yz, *restrict w2 = M->wgll_xz, *restrict w3 = M->wgll_xy;
  float *restrict out = M->sum_terms + e * 3 * SPF_N3;
  for (int c = 0; c < 3; ++c) {
    const float *restrict n1 = n + SPF_T(c, 0), *restrict n2 = n + SPF_T(c, 1), *restrict n3 = n + SPF_T(c, 2);
    const float *restrict rh = rho_s_H + c * SPF_N3;
    float *restrict o = out + c * SPF_N3;
    for (int p = 0; p < SPF_N3; ++p) o[p] = rh[p] - (w1[p] * n1[p] + w2[p] * n2[p] + w3[p] * n3[p]);
  }
}

/* ---------------- one element, per variant ---------------- */

#define SPF_ELEMENT(VARIANT, PASS1, PASS2)                                                  \
  TGT void SPF_FN(spf_element_##VARIANT##_)(const spf_model *M, const spf_kernels *K, int64_t e) \
  {                                                                                         \
    float u[3 * SPF_N3] __attribute__((aligned(64)));                                       \
    float d[9 * SPF_N3] __attribute__((aligned(64)));                                       \
    float n[9 * SPF_N3] __attribute__((aligned(64)));                                       \
    float rho_s_H[3 * SPF_N3] __attribute__((aligned(64)));                                 \
    const float *in1[3] = {u, u, u};                                                        \
    const float *in2[3] = {d + SPF_T(0, 0), d + SPF_T(0, 1), d + SPF_T(0, 2)};              \
    (void)K;                                                                                \
    SPF_FN(spf_gather_)(M, e, u);                                                           \
    PASS1;                                                                                  \
    SPF_FN(spf_stress_)(M, e, u, d, rho_s_H);                                               \
    PASS2;                                                                                  \
    SPF_FN(spf_sum_terms_)(M, e, n, rho_s_H);                                               \
  }

SPF_ELEMENT(deville, SPF_FN(spf_pass_deville_)(M->hprime, M->hprimeT, in1, SPF_N3, d),
            SPF_FN(spf_pass_deville_)(M->hprimewgllT, M->hprimewgll, in2, 3 * SPF_N3, n))
SPF_ELEMENT(unrolled, SPF_FN(spf_pass_unrolled_)(M->hprimeT, M->hprimeT, in1, SPF_N3, d),
            SPF_FN(spf_pass_unrolled_)(M->hprimewgll, M->hprimewgll, in2, 3 * SPF_N3, n))
SPF_ELEMENT(dispatched, SPF_FN(spf_pass_smm_)(K, 0, M->hprime, M->hprimeT, in1, SPF_N3, d),
            SPF_FN(spf_pass_smm_)(K, 0, M->hprimewgllT, M->hprimewgll, in2, 3 * SPF_N3, n))
SPF_ELEMENT(prefetch, SPF_FN(spf_pass_smm_)(K, 1, M->hprime, M->hprimeT, in1, SPF_N3, d),
            SPF_FN(spf_pass_smm_)(K, 1, M->hprimewgllT, M->hprimewgll, in2, 3 * SPF_N3, n))
SPF_ELEMENT(static, SPF_FN(spf_pass_smm_)(K, 2, M->hprime, M->hprimeT, in1, SPF_N3, d),
            SPF_FN(spf_pass_smm_)(K, 2, M->hprimewgllT, M->hprimewgll, in2, 3 * SPF_N3, n))
#undef SPF_ELEMENT

/* accel(g) += the contributions of every (element, point) that shares node g, for nodes [g0, g1):
 * one writer per node, so threads over node ranges never race (the sample's vectorised assembly).
 * table holds offsets of x components in st; y and z follow at +cs and +2 cs. */
TGT void SPF_FN(spf_assemble_)(const spf_model *M, const int32_t *restrict table, const float *restrict st,
                               int64_t cs, int64_t g0, int64_t g1)
{
  const int32_t *restrict start = M->inv_start;
  float *restrict accel = M->accel;
  const int32_t qend = start[g1];
  for (int64_t g = g0; g < g1; ++g) {
    float ax = 0.0f, ay = 0.0f, az = 0.0f;
    for (int32_t q = start[g]; q < start[g + 1]; ++q) {
      /* The table is read in order but sum_terms in jumps between a node's elements: fetching the
       * contributions SPF_ASSEMBLY_AHEAD entries ahead halves the assembly time here. */
      if (q + SPF_ASSEMBLY_AHEAD < qend) {
        const float *ahead = st + table[q + SPF_ASSEMBLY_AHEAD];
        __builtin_prefetch(ahead);
        __builtin_prefetch(ahead + cs);
        __builtin_prefetch(ahead + 2 * cs);
      }
      const int64_t o = table[q];
      ax += st[o];
      ay += st[o + cs];
      az += st[o + 2 * cs];
    }
    accel[3 * g] += ax;
    accel[3 * g + 1] += ay;
    accel[3 * g + 2] += az;
  }
}

/* ---------------- interleaved elements: SPF_G elements per SIMD vector (structure of arrays) --------------
 * Group g holds elements g*SPF_G + v in lane v; every array is [..][point][lane], so each 5-term cut-plane
 * sum, the stress and the sums become full-width vector FMAs with broadcast coefficients (the lane loops
 * below are what the compiler vectorises). Lanes past the last element repeat it and are never assembled. */

SPF_ALWAYS void SPF_FN(spf_group_gather_)(const spf_model *M, int64_t g, float *restrict u, float *restrict pe)
{
  int64_t e[SPF_G];
  for (int v = 0; v < SPF_G; ++v) {
    const int64_t ev = g * SPF_G + v;
    e[v] = ev < M->nspec ? ev : M->nspec - 1;
  }
  const float *restrict displ = M->displ;
  /* Element by element (each reads one contiguous ibool row): twice as fast here as point by point. */
  for (int v = 0; v < SPF_G; ++v) {
    const int32_t *restrict row = M->ibool + e[v] * SPF_N3;
    for (int p = 0; p < SPF_N3; ++p) {
      const int64_t n = 3 * (int64_t)row[p];
      u[p * SPF_G + v] = displ[n];
      u[(SPF_N3 + p) * SPF_G + v] = displ[n + 1];
      u[(2 * SPF_N3 + p) * SPF_G + v] = displ[n + 2];
    }
  }
  /* Per-element constants, one lane each: geometry, material, gravity. */
  for (int v = 0; v < SPF_G; ++v) {
    for (int q = 0; q < SPF_NGEOM; ++q) pe[q * SPF_G + v] = M->geom[e[v] * SPF_NGEOM + q];
    pe[(SPF_NGEOM + 0) * SPF_G + v] = M->material[2 * e[v]];
    pe[(SPF_NGEOM + 1) * SPF_G + v] = M->material[2 * e[v] + 1];
    for (int q = 0; q < SPF_NGRAV; ++q) pe[(SPF_NGEOM + 2 + q) * SPF_G + v] = M->gravity[e[v] * SPF_NGRAV + q];
  }
}

/* The three cut-plane products of one pass on a group: direction r of component c reads in[r] + c*cs. */
SPF_ALWAYS void SPF_FN(spf_group_pass_)(const float *restrict A1, const float *restrict B, const float *const *in,
                                        const int64_t cs, float *restrict d)
{
  for (int c = 0; c < 3; ++c) {
    const float *restrict u1 = in[0] + c * cs, *restrict u2 = in[1] + c * cs, *restrict u3 = in[2] + c * cs;
    float *restrict d1 = d + SPF_T(c, 0) * SPF_G, *restrict d2 = d + SPF_T(c, 1) * SPF_G;
    float *restrict d3 = d + SPF_T(c, 2) * SPF_G;
    for (int k = 0; k < 5; ++k)
      for (int j = 0; j < 5; ++j)
        for (int i = 0; i < 5; ++i) {
          const int p = (i + 5 * j + 25 * k) * SPF_G;
          const float a0 = A1[i], a1 = A1[i + 5], a2 = A1[i + 10], a3 = A1[i + 15], a4 = A1[i + 20];
          const float b0 = B[5 * j], b1 = B[1 + 5 * j], b2 = B[2 + 5 * j], b3 = B[3 + 5 * j], b4 = B[4 + 5 * j];
          const float c0 = B[5 * k], c1 = B[1 + 5 * k], c2 = B[2 + 5 * k], c3 = B[3 + 5 * k], c4 = B[4 + 5 * k];
          const float *restrict x = u1 + (5 * j + 25 * k) * SPF_G;
          const float *restrict y = u2 + (i + 25 * k) * SPF_G;
          const float *restrict z = u3 + (i + 5 * j) * SPF_G;
#pragma GCC ivdep
          for (int v = 0; v < SPF_G; ++v) {
            d1[p + v] = a0 * x[v] + a1 * x[SPF_G + v] + a2 * x[2 * SPF_G + v] + a3 * x[3 * SPF_G + v]
                      + a4 * x[4 * SPF_G + v];
            d2[p + v] = b0 * y[v] + b1 * y[5 * SPF_G + v] + b2 * y[10 * SPF_G + v] + b3 * y[15 * SPF_G + v]
                      + b4 * y[20 * SPF_G + v];
            d3[p + v] = c0 * z[v] + c1 * z[25 * SPF_G + v] + c2 * z[50 * SPF_G + v] + c3 * z[75 * SPF_G + v]
                      + c4 * z[100 * SPF_G + v];
          }
        }
  }
}

/* spf_stress_ with one element per lane. */
SPF_ALWAYS void SPF_FN(spf_group_stress_)(const spf_model *M, const float *restrict pe, const float *restrict u,
                                          float *restrict d, float *restrict rho_s_H)
{
  const float *restrict wcube = M->wgll_cube;
#define SPF_PE(q) (pe + (q) * SPF_G)
  const float *restrict xix = SPF_PE(0), *restrict xiy = SPF_PE(1), *restrict xiz = SPF_PE(2);
  const float *restrict etax = SPF_PE(3), *restrict etay = SPF_PE(4), *restrict etaz = SPF_PE(5);
  const float *restrict gammax = SPF_PE(6), *restrict gammay = SPF_PE(7), *restrict gammaz = SPF_PE(8);
  const float *restrict jac = SPF_PE(9), *restrict kap = SPF_PE(10), *restrict muv = SPF_PE(11);
  const float *restrict R = SPF_PE(12);
#undef SPF_PE
  for (int p = 0; p < SPF_N3; ++p) {
    float *restrict tx1 = d + (SPF_T(0, 0) + p) * SPF_G, *restrict tx2 = d + (SPF_T(0, 1) + p) * SPF_G;
    float *restrict tx3 = d + (SPF_T(0, 2) + p) * SPF_G, *restrict ty1 = d + (SPF_T(1, 0) + p) * SPF_G;
    float *restrict ty2 = d + (SPF_T(1, 1) + p) * SPF_G, *restrict ty3 = d + (SPF_T(1, 2) + p) * SPF_G;
    float *restrict tz1 = d + (SPF_T(2, 0) + p) * SPF_G, *restrict tz2 = d + (SPF_T(2, 1) + p) * SPF_G;
    float *restrict tz3 = d + (SPF_T(2, 2) + p) * SPF_G;
    const float *restrict ux = u + p * SPF_G, *restrict uy = u + (SPF_N3 + p) * SPF_G;
    const float *restrict uz = u + (2 * SPF_N3 + p) * SPF_G;
    float *restrict rx = rho_s_H + p * SPF_G, *restrict ry = rho_s_H + (SPF_N3 + p) * SPF_G;
    float *restrict rz = rho_s_H + (2 * SPF_N3 + p) * SPF_G;
    const float w = wcube[p];
#pragma GCC ivdep
    for (int v = 0; v < SPF_G; ++v) {
      const float duxdx = xix[v] * tx1[v] + etax[v] * tx2[v] + gammax[v] * tx3[v];
      const float duxdy = xiy[v] * tx1[v] + etay[v] * tx2[v] + gammay[v] * tx3[v];
      const float duxdz = xiz[v] * tx1[v] + etaz[v] * tx2[v] + gammaz[v] * tx3[v];
      const float duydx = xix[v] * ty1[v] + etax[v] * ty2[v] + gammax[v] * ty3[v];
      const float duydy = xiy[v] * ty1[v] + etay[v] * ty2[v] + gammay[v] * ty3[v];
      const float duydz = xiz[v] * ty1[v] + etaz[v] * ty2[v] + gammaz[v] * ty3[v];
      const float duzdx = xix[v] * tz1[v] + etax[v] * tz2[v] + gammax[v] * tz3[v];
      const float duzdy = xiy[v] * tz1[v] + etay[v] * tz2[v] + gammay[v] * tz3[v];
      const float duzdz = xiz[v] * tz1[v] + etaz[v] * tz2[v] + gammaz[v] * tz3[v];
      const float mu = muv[v];
      const float lambdaplus2mu = kap[v] + (4.0f / 3.0f) * mu;
      const float lambda = lambdaplus2mu - 2.0f * mu;
      float sxx = lambdaplus2mu * duxdx + lambda * (duydy + duzdz);
      float syy = lambdaplus2mu * duydy + lambda * (duxdx + duzdz);
      float szz = lambdaplus2mu * duzdz + lambda * (duxdx + duydy);
      const float sxy_sym = mu * (duxdy + duydx);
      const float sxz_sym = mu * (duzdx + duxdz);
      const float syz_sym = mu * (duzdy + duydz);
      const float gx = R[v], gy = R[SPF_G + v], gz = R[2 * SPF_G + v];
      const float sx = ux[v], sy = uy[v], sz = uz[v];
      sxx += sy * gy + sz * gz;
      syy += sx * gx + sz * gz;
      szz += sx * gx + sy * gy;
      const float sxy = sxy_sym - sx * gy, syx = sxy_sym - sy * gx;
      const float sxz = sxz_sym - sx * gz, szx = sxz_sym - sz * gx;
      const float syz = syz_sym - sy * gz, szy = syz_sym - sz * gy;
      const float Hxx = R[3 * SPF_G + v], Hyy = R[4 * SPF_G + v], Hzz = R[5 * SPF_G + v];
      const float Hxy = R[6 * SPF_G + v], Hxz = R[7 * SPF_G + v], Hyz = R[8 * SPF_G + v];
      const float jacobian = jac[v];
      const float factor = jacobian * w;
      rx[v] = factor * (sx * Hxx + sy * Hxy + sz * Hxz);
      ry[v] = factor * (sx * Hxy + sy * Hyy + sz * Hyz);
      rz[v] = factor * (sx * Hxz + sy * Hyz + sz * Hzz);
      tx1[v] = jacobian * (sxx * xix[v] + syx * xiy[v] + szx * xiz[v]);
      ty1[v] = jacobian * (sxy * xix[v] + syy * xiy[v] + szy * xiz[v]);
      tz1[v] = jacobian * (sxz * xix[v] + syz * xiy[v] + szz * xiz[v]);
      tx2[v] = jacobian * (sxx * etax[v] + syx * etay[v] + szx * etaz[v]);
      ty2[v] = jacobian * (sxy * etax[v] + syy * etay[v] + szy * etaz[v]);
      tz2[v] = jacobian * (sxz * etax[v] + syz * etay[v] + szz * etaz[v]);
      tx3[v] = jacobian * (sxx * gammax[v] + syx * gammay[v] + szx * gammaz[v]);
      ty3[v] = jacobian * (sxy * gammax[v] + syy * gammay[v] + szy * gammaz[v]);
      tz3[v] = jacobian * (sxz * gammax[v] + syz * gammay[v] + szz * gammaz[v]);
    }
  }
}

/* Group g's contributions, [c][p][lane], into its block of the interleaved sum_terms. */
SPF_ALWAYS void SPF_FN(spf_group_sum_terms_)(const spf_model *M, int64_t g, const float *restrict n,
                                             const float *restrict rho_s_H)
{
  float *restrict out = M->sum_terms_g + g * 3 * SPF_N3 * SPF_G;
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < SPF_N3; ++p) {
      const float w1 = M->wgll_yz[p], w2 = M->wgll_xz[p], w3 = M->wgll_xy[p];
      const float *restrict n1 = n + (SPF_T(c, 0) + p) * SPF_G, *restrict n2 = n + (SPF_T(c, 1) + p) * SPF_G;
      const float *restrict n3 = n + (SPF_T(c, 2) + p) * SPF_G, *restrict rh = rho_s_H + (c * SPF_N3 + p) * SPF_G;
      float *restrict o = out + (c * SPF_N3 + p) * SPF_G;
#pragma GCC ivdep
      for (int v = 0; v < SPF_G; ++v) o[v] = rh[v] - (w1 * n1[v] + w2 * n2[v] + w3 * n3[v]);
    }
}

/* One group of SPF_G elements; scratch (SPF_GROUP_SCRATCH floats, 64-byte aligned) is the caller's. */
TGT void SPF_FN(spf_group_)(const spf_model *M, int64_t g, float *scratch)
{
  float *u = scratch, *pe = u + 3 * SPF_N3 * SPF_G, *d = pe + SPF_NPE * SPF_G, *n = d + 9 * SPF_N3 * SPF_G;
  float *rho_s_H = n + 9 * SPF_N3 * SPF_G;
  SPF_FN(spf_group_gather_)(M, g, u, pe);
  const float *in1[3] = {u, u, u};
  SPF_FN(spf_group_pass_)(M->hprime, M->hprimeT, in1, SPF_N3 * SPF_G, d);
  SPF_FN(spf_group_stress_)(M, pe, u, d, rho_s_H);
  const float *in2[3] = {d + SPF_T(0, 0) * SPF_G, d + SPF_T(0, 1) * SPF_G, d + SPF_T(0, 2) * SPF_G};
  SPF_FN(spf_group_pass_)(M->hprimewgllT, M->hprimewgll, in2, 3 * SPF_N3 * SPF_G, n);
  SPF_FN(spf_group_sum_terms_)(M, g, n, rho_s_H);
}

#undef SPF_FN
#undef SPF_CAT
#undef SPF_CAT_
