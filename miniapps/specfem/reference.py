"""The stiffness kernel in numpy (einsum, float64): the validation reference of every variant.

Same arithmetic as the C kernels (specfem_tpl.h), written array-wise over chunks of elements:
gradient pass with hprime, isotropic stress with self-gravitation, weighted transposed pass with
hprimewgll, then assembly of every element's contributions into the nodes it shares.
"""
import numpy as np

from .mesh import NGLL, NGLL3

CHUNK = 2048  # elements per step: bounds the float64 temporaries (~100 MB)


def element_forces(u, geom, material, gravity, ops):
    """sum_terms of a chunk of elements: u is (ne, 3, 5, 5, 5) indexed [e, c, k, j, i], computed in
    u's dtype."""
    dt = u.dtype
    h = ops["hprime"].astype(dt)
    hw = ops["hprimewgll"].astype(dt)
    d1 = np.einsum("il,eckjl->eckji", h, u)   # d/dxi
    d2 = np.einsum("jl,eckli->eckji", h, u)   # d/deta
    d3 = np.einsum("kl,eclji->eckji", h, u)   # d/dgamma
    g = geom.astype(dt)[:, :, None, None, None]
    xix, xiy, xiz, etax, etay, etaz, gammax, gammay, gammaz, jac = (g[:, i] for i in range(10))

    def grad(c):
        return (xix * d1[:, c] + etax * d2[:, c] + gammax * d3[:, c],
                xiy * d1[:, c] + etay * d2[:, c] + gammay * d3[:, c],
                xiz * d1[:, c] + etaz * d2[:, c] + gammaz * d3[:, c])

    duxdx, duxdy, duxdz = grad(0)
    duydx, duydy, duydz = grad(1)
    duzdx, duzdy, duzdz = grad(2)
    mat = material.astype(dt)[:, :, None, None, None]
    kappa, mu = mat[:, 0], mat[:, 1]
    l2m = kappa + dt.type(4.0 / 3.0) * mu
    lam = l2m - dt.type(2.0) * mu
    sxx = l2m * duxdx + lam * (duydy + duzdz)
    syy = l2m * duydy + lam * (duxdx + duzdz)
    szz = l2m * duzdz + lam * (duxdx + duydy)
    sxy_s = mu * (duxdy + duydx)
    sxz_s = mu * (duzdx + duxdz)
    syz_s = mu * (duzdy + duydz)
    r = gravity.astype(dt)[:, :, None, None, None]
    gx, gy, gz, hxx, hyy, hzz, hxy, hxz, hyz = (r[:, i] for i in range(9))
    sx, sy, sz = u[:, 0], u[:, 1], u[:, 2]
    sxx = sxx + sy * gy + sz * gz
    syy = syy + sx * gx + sz * gz
    szz = szz + sx * gx + sy * gy
    sxy, syx = sxy_s - sx * gy, sxy_s - sy * gx
    sxz, szx = sxz_s - sx * gz, sxz_s - sz * gx
    syz, szy = syz_s - sy * gz, syz_s - sz * gy
    factor = jac * ops["wgll_cube"].astype(dt)
    rho_s_h = np.stack([factor * (sx * hxx + sy * hxy + sz * hxz),
                        factor * (sx * hxy + sy * hyy + sz * hyz),
                        factor * (sx * hxz + sy * hyz + sz * hzz)], axis=1)
    def dot(a, b, c):
        """The stress dotted with one row of the inverse Jacobian, for the three components."""
        return np.stack([jac * (sxx * a + syx * b + szx * c), jac * (sxy * a + syy * b + szy * c),
                         jac * (sxz * a + syz * b + szz * c)], axis=1)

    t1 = dot(xix, xiy, xiz)
    t2 = dot(etax, etay, etaz)
    t3 = dot(gammax, gammay, gammaz)
    n1 = np.einsum("li,eckjl->eckji", hw, t1)
    n2 = np.einsum("lj,eckli->eckji", hw, t2)
    n3 = np.einsum("lk,eclji->eckji", hw, t3)
    w_yz, w_xz, w_xy = (ops[k].astype(dt) for k in ("wgll_yz", "wgll_xz", "wgll_xy"))
    return rho_s_h - (w_yz * n1 + w_xz * n2 + w_xy * n3)


def forces(ibool, displ, geom, material, gravity, ops, chunk=CHUNK, dtype=np.float64):
    """accel (nglob x 3) = the assembled stiffness forces of all elements of ``ibool``.

    ``dtype=np.float64`` is the validation reference; ``np.float32`` is what a Python user would
    run (the numpy baseline the mini-app times).
    """
    nspec = ibool.shape[0]
    nglob = displ.shape[0]
    dtype = np.dtype(dtype)
    accel = np.zeros((nglob, 3), dtype=dtype)
    disp = displ.astype(dtype)
    for e0 in range(0, nspec, chunk):
        ib = ibool[e0:e0 + chunk]
        ne = ib.shape[0]
        u = disp[ib].reshape(ne, NGLL, NGLL, NGLL, 3).transpose(0, 4, 1, 2, 3)
        st = element_forces(u, geom[e0:e0 + ne], material[e0:e0 + ne], gravity[e0:e0 + ne], ops)
        nodes = ib.reshape(-1)
        for c in range(3):
            accel[:, c] += np.bincount(nodes, weights=st[:, c].reshape(ne, NGLL3).reshape(-1), minlength=nglob)
    return accel
