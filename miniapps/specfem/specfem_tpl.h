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
/* The stress at one GLL point, with gravity; both element layouts share it. g: the point's geometry
 * (xi_x, xi_y, xi_z, eta_x, eta_y, eta_z, gamma_x, gamma_y, gamma_z, jacobian); kappa, mu: its
 * moduli; s: rho*u; gr: gravity (gx, gy, gz, Hxx, Hyy, Hzz, Hxy, Hxz, Hyz); w: the quadrature weight.
 * t: in, the reference derivatives (x1 x2 x3 y1 y2 y3 z1 z2 z3); out, the fluxes in that order.
 * r: out, rho_s_H (x, y, z). */
SPF_ALWAYS void SPF_FN(spf_point_stress_)(const float g[10], const float kappa, const float mu, const float s[3],
                                          const float gr[9], const float w, float t[9], float r[3])
{
  /* D[d][x]: derivative of reference coordinate d (xi, eta, gamma) along x (x, y, z). */
  const float D[3][3] = {{g[0], g[1], g[2]}, {g[3], g[4], g[5]}, {g[6], g[7], g[8]}}, jacobian = g[9];
  float du[3][3]; /* du[c][x]: d u_c / d x */
#pragma GCC unroll 3
  for (int c = 0; c < 3; ++c)
#pragma GCC unroll 3
    for (int x = 0; x < 3; ++x) du[c][x] = D[0][x] * t[3 * c] + D[1][x] * t[3 * c + 1] + D[2][x] * t[3 * c + 2];
  const float lambdaplus2mu = kappa + (4.0f / 3.0f) * mu;
  const float lambda = lambdaplus2mu - 2.0f * mu;
  const float sx = s[0], sy = s[1], sz = s[2], gx = gr[0], gy = gr[1], gz = gr[2];
  const float sxy_sym = mu * (du[0][1] + du[1][0]);
  const float sxz_sym = mu * (du[2][0] + du[0][2]);
  const float syz_sym = mu * (du[2][1] + du[1][2]);
  /* Gravity makes the stress non-symmetric: G = (s.g) I - s g^T terms, s = rho u. S[c][x]: the
   * stress row that flux c takes (c = x: sxx syx szx; y: sxy syy szy; z: sxz syz szz). */
  const float S[3][3] = {
      {lambdaplus2mu * du[0][0] + lambda * (du[1][1] + du[2][2]) + (sy * gy + sz * gz), sxy_sym - sy * gx,
       sxz_sym - sz * gx},
      {sxy_sym - sx * gy, lambdaplus2mu * du[1][1] + lambda * (du[0][0] + du[2][2]) + (sx * gx + sz * gz),
       syz_sym - sz * gy},
      {sxz_sym - sx * gz, syz_sym - sy * gz,
       lambdaplus2mu * du[2][2] + lambda * (du[0][0] + du[1][1]) + (sx * gx + sy * gy)}};
  const float H[3][3] = {{gr[3], gr[6], gr[7]}, {gr[6], gr[4], gr[8]}, {gr[7], gr[8], gr[5]}}; /* symmetric */
  const float factor = jacobian * w;
#pragma GCC unroll 3
  for (int c = 0; c < 3; ++c) r[c] = factor * (sx * H[0][c] + sy * H[1][c] + sz * H[2][c]);
#pragma GCC unroll 3
  for (int c = 0; c < 3; ++c)
#pragma GCC unroll 3
    for (int d = 0; d < 3; ++d) t[3 * c + d] = jacobian * (S[c][0] * D[d][0] + S[c][1] * D[d][1] + S[c][2] * D[d][2]);
}

SPF_ALWAYS void SPF_FN(spf_stress_)(const spf_model *M, int64_t e, const float *restrict u, float *restrict d,
                                    float *restrict rho_s_H)
{
  const float *restrict G = M->geom + e * SPF_NGEOM;
  const float kappa = M->material[2 * e], mu = M->material[2 * e + 1];
  const float *restrict R = M->gravity + e * SPF_NGRAV;
  const float *restrict wcube = M->wgll_cube;
  float *restrict tx1 = d + SPF_T(0, 0), *restrict tx2 = d + SPF_T(0, 1), *restrict tx3 = d + SPF_T(0, 2);
  float *restrict ty1 = d + SPF_T(1, 0), *restrict ty2 = d + SPF_T(1, 1), *restrict ty3 = d + SPF_T(1, 2);
  float *restrict tz1 = d + SPF_T(2, 0), *restrict tz2 = d + SPF_T(2, 1), *restrict tz3 = d + SPF_T(2, 2);
  for (int p = 0; p < SPF_N3; ++p) {
    float t[9] = {tx1[p], tx2[p], tx3[p], ty1[p], ty2[p], ty3[p], tz1[p], tz2[p], tz3[p]}, r[3];
    const float s[3] = {u[p], u[SPF_N3 + p], u[2 * SPF_N3 + p]};
    SPF_FN(spf_point_stress_)(G, kappa, mu, s, R, wcube[p], t, r);
    rho_s_H[p] = r[0];
    rho_s_H[SPF_N3 + p] = r[1];
    rho_s_H[2 * SPF_N3 + p] = r[2];
    tx1[p] = t[0]; tx2[p] = t[1]; tx3[p] = t[2];
    ty1[p] = t[3]; ty2[p] = t[4]; ty3[p] = t[5];
    tz1[p] = t[6]; tz2[p] = t[7]; tz3[p] = t[8];
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
      const float g[10] = {xix[v], xiy[v], xiz[v], etax[v], etay[v], etaz[v], gammax[v], gammay[v], gammaz[v],
                           jac[v]};
      const float gr[9] = {R[v], R[SPF_G + v], R[2 * SPF_G + v], R[3 * SPF_G + v], R[4 * SPF_G + v],
                           R[5 * SPF_G + v], R[6 * SPF_G + v], R[7 * SPF_G + v], R[8 * SPF_G + v]};
      const float s[3] = {ux[v], uy[v], uz[v]};
      float t[9] = {tx1[v], tx2[v], tx3[v], ty1[v], ty2[v], ty3[v], tz1[v], tz2[v], tz3[v]}, r[3];
      SPF_FN(spf_point_stress_)(g, kap[v], muv[v], s, gr, w, t, r);
      rx[v] = r[0]; ry[v] = r[1]; rz[v] = r[2];
      tx1[v] = t[0]; tx2[v] = t[1]; tx3[v] = t[2];
      ty1[v] = t[3]; ty2[v] = t[4]; ty3[v] = t[5];
      tz1[v] = t[6]; tz2[v] = t[7]; tz3[v] = t[8];
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
