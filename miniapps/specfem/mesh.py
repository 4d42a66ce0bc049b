"""The SPECFEM mini-app's mesh and model, synthesized deterministically as LIBXSMM's sample does.

Mesh. A block of NEX x NEY x NEZ elements (40 x 40 x 25 by default: 40,000 elements) of 5 x 5 x 5 GLL
points, collated side by side with shared faces: (4 NEX + 1)(4 NEY + 1)(4 NEZ + 1) global nodes
(161 * 161 * 101 = 2,618,021). Elements run x fastest, then y, then z; a request for another element
count keeps NEX = NEY = 40 and takes the first N elements of as many z-layers as needed. Global nodes
are numbered in order of first appearance over the elements (the sample's renumbering for cache
locality); ``ibool[e, p]`` is the global node of GLL point ``p = i + 5 j + 25 k`` of element ``e``.

Model. The sample uses dummy constants; here the physics is real and the data synthetic:
* GLL derivative matrix ``hprime`` and weights (``hprimewgll``, ``wgllwgll_*``) of degree 4;
* an affine (sheared) map from the reference cube to each element of unit size, so the inverse
  Jacobian terms (xix ... gammaz) and the Jacobian are constants per element;
* per element, bulk and shear moduli (kappa, mu) and self-gravitation terms (rho g, the gravity
  gradient H) varying smoothly with the element's position;
* displacement: a smooth field of wavelength ~10 elements (the sample's linear ramp over the node
  index gives strains of ~1e-6, too small for a validation to see the elastic terms).
"""
from dataclasses import dataclass

import numpy as np

from miniapps.nek.science import derivative_matrix, gll_points

NGLL = 5
NGLL3 = NGLL ** 3
NEX = 40
NEY = 40
NEZ = 25
DEFAULT_ELEMENTS = NEX * NEY * NEZ
# The affine map from reference coordinates (a unit cube per element) to physical ones: a mild
# shear, so that all nine inverse-Jacobian terms are non-zero as in a real (deformed) mesh.
SHEAR = np.array([[1.00, 0.10, 0.05],
                  [0.06, 1.00, 0.08],
                  [0.04, 0.07, 1.00]])


def gll_weights(n):
    """Quadrature weights of the ``n`` GLL points: 2 / (n (n-1) P_{n-1}(x_i)^2)."""
    x = gll_points(n)
    p = np.polynomial.legendre.legval(x, [0] * (n - 1) + [1])
    return 2.0 / (n * (n - 1) * p * p)


@dataclass
class Mesh:
    """Elements ``ibool`` (nspec x 125, global node ids), ``nglob`` nodes, the block's layout."""
    ibool: np.ndarray
    nglob: int
    nex: int
    ney: int
    nez: int

    @property
    def nspec(self):
        return self.ibool.shape[0]


def element_layout(nspec, nex=NEX, ney=NEY):
    """(ix, iy, iz) of elements 0..nspec-1: x fastest, then y, then z."""
    e = np.arange(nspec, dtype=np.int64)
    return e % nex, (e // nex) % ney, e // (nex * ney)


def build_mesh(nspec=DEFAULT_ELEMENTS, nex=NEX, ney=NEY):
    """The block mesh of ``nspec`` elements with shared faces, nodes numbered by first appearance."""
    if isinstance(nspec, bool) or not isinstance(nspec, (int, np.integer)):
        raise TypeError(f"elements must be an int, got {type(nspec).__name__}")
    if nspec < 1:
        raise ValueError(f"elements must be >= 1, got {nspec}")
    nez = -(-nspec // (nex * ney))
    ix, iy, iz = element_layout(nspec, nex, ney)
    i = np.arange(NGLL)
    # Structured node coordinates of every GLL point: element corner + local index (faces shared).
    X = (NGLL - 1) * ix[:, None, None, None] + i[None, None, None, :]
    Y = (NGLL - 1) * iy[:, None, None, None] + i[None, None, :, None]
    Z = (NGLL - 1) * iz[:, None, None, None] + i[None, :, None, None]
    nx, ny = (NGLL - 1) * nex + 1, (NGLL - 1) * ney + 1
    structured = (X + nx * (Y + ny * Z)).reshape(nspec, NGLL3)  # p = i + 5 j + 25 k
    uniq, first, inverse = np.unique(structured.ravel(), return_index=True, return_inverse=True)
    order = np.empty(uniq.size, dtype=np.int64)
    order[np.argsort(first, kind="stable")] = np.arange(uniq.size)
    ibool = order[inverse].reshape(nspec, NGLL3).astype(np.int32)
    return Mesh(ibool, int(uniq.size), nex, ney, nez)


def node_positions(mesh):
    """Physical coordinates (nglob x 3) of the global nodes (element size 1, sheared)."""
    ix, iy, iz = element_layout(mesh.nspec, mesh.nex, mesh.ney)
    xi = (gll_points(NGLL) + 1.0) / 2.0  # positions of the GLL points inside a unit element
    ref = np.empty((mesh.nspec, NGLL, NGLL, NGLL, 3))
    ref[..., 0] = ix[:, None, None, None] + xi[None, None, None, :]
    ref[..., 1] = iy[:, None, None, None] + xi[None, None, :, None]
    ref[..., 2] = iz[:, None, None, None] + xi[None, :, None, None]
    pos = np.empty((mesh.nglob, 3))
    pos[mesh.ibool.ravel()] = ref.reshape(-1, 3) @ SHEAR.T
    return pos


def displacement(positions, dtype=np.float32):
    """A smooth displacement field (nglob x 3) of wavelength ~10 elements, different per component."""
    k = 2.0 * np.pi / np.array([[10.0, 13.0, 7.0], [11.0, 9.0, 8.0], [12.0, 10.0, 9.0]])
    phase = np.array([0.3, 1.1, 2.0])
    amp = np.array([1.0, 0.7, 0.5])
    return (amp * np.sin(positions @ k.T + phase)).astype(dtype)


def gll_operators(dtype=np.float32):
    """The 5 x 5 matrices (column-major order for the kernels) and 125-point weight arrays.

    Returns a dict with hprime (hprime[i, l] = l_l'(xi_i)), hprimeT, hprimewgll
    (hprimewgll[l, i] = hprime[l, i] w_l), hprimewgllT, and wgll_yz, wgll_xz, wgll_xy, wgll_cube as
    (5, 5, 5) arrays indexed [k, j, i].
    """
    h = derivative_matrix(NGLL)
    w = gll_weights(NGLL)
    hw = h * w[:, None]
    wk, wj, wi = np.meshgrid(w, w, w, indexing="ij")  # [k, j, i]
    ops = {"hprime": h, "hprimeT": h.T, "hprimewgll": hw, "hprimewgllT": hw.T,
           "wgll_yz": wj * wk, "wgll_xz": wi * wk, "wgll_xy": wi * wj, "wgll_cube": wi * wj * wk}
    return {name: np.ascontiguousarray(v, dtype=dtype) for name, v in ops.items()}


def element_model(mesh, dtype=np.float32):
    """Per-element geometry (nspec x 10), material (nspec x 2) and gravity (nspec x 9) arrays."""
    nspec = mesh.nspec
    ix, iy, iz = element_layout(nspec, mesh.nex, mesh.ney)
    # Reference cube [-1, 1]^3 -> a unit element: dx/dxi = SHEAR / 2 everywhere.
    jac = SHEAR / 2.0
    inv = np.linalg.inv(jac)  # inv[a, b] = d(xi_a)/d(x_b): rows xi, eta, gamma; columns x, y, z
    geom = np.empty((nspec, 10))
    geom[:, 0:9] = inv.ravel()
    geom[:, 9] = np.linalg.det(jac)
    depth = (iz + 0.5) / max(mesh.nez, 1)
    cx = (ix + 0.5) / mesh.nex - 0.5
    cy = (iy + 0.5) / mesh.ney - 0.5
    material = np.stack([1.0 + 0.5 * depth, 0.6 + 0.2 * depth], axis=1)
    gravity = np.stack([0.05 * cx, 0.05 * cy, -0.3 * (1.0 - 0.3 * depth),
                        0.02 + 0.01 * depth, 0.02 + 0.01 * depth, -0.04 - 0.02 * depth,
                        0.005 * cx, 0.004 * cy, 0.003 + 0.0 * depth], axis=1)
    return (np.ascontiguousarray(geom, dtype=dtype), np.ascontiguousarray(material, dtype=dtype),
            np.ascontiguousarray(gravity, dtype=dtype))


def local_part(mesh, first, count):
    """One rank's elements [first, first + count): ``(ibool_local, global_nodes)``.

    ``ibool_local`` numbers the rank's nodes 0..n-1 in global order, ``global_nodes[l]`` is the global
    id of local node l (so shared-face nodes appear on every rank that touches them).
    """
    part = mesh.ibool[first:first + count]
    nodes, inverse = np.unique(part.ravel(), return_inverse=True)
    return inverse.reshape(part.shape).astype(np.int32), nodes


def inverse_table(ibool, nglob):
    """For race-free assembly: ``(start, table)`` with the contributions of node g at
    ``table[start[g]:start[g+1]]``, each an offset ``e * 375 + p`` into sum_terms (nspec x 3 x 125).
    int32 (half the index traffic of the assembly); ValueError when the offsets would not fit."""
    nspec = ibool.shape[0]
    if nspec * 3 * NGLL3 + 3 * NGLL3 * 16 >= 2 ** 31:
        raise ValueError(f"{nspec} elements are too many for one rank's int32 assembly tables; "
                         "split the mesh over more MPI ranks")
    flat = ibool.ravel().astype(np.int64)
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=nglob)
    start = np.zeros(nglob + 1, dtype=np.int32)
    np.cumsum(counts, out=start[1:])
    e, p = np.divmod(order, NGLL3)
    return start, (e * 3 * NGLL3 + p).astype(np.int32)


def interleaved_table(table, group):
    """``table``'s offsets in the interleaved layout (groups x 3 x 125 x group; element e in lane
    e % group of group e // group)."""
    e, p = np.divmod(table.astype(np.int64), 3 * NGLL3)
    g, lane = np.divmod(e, group)
    return (g * 3 * NGLL3 * group + p * group + lane).astype(np.int32)


def split_elements(total, size, rank):
    """``(first, count)``: rank's contiguous share of ``total`` elements (counts differ by at most 1)."""
    base, extra = divmod(total, size)
    return rank * base + min(rank, extra), base + (1 if rank < extra else 0)
