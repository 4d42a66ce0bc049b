"""The stiffness kernel behind a checked Python interface.

``Stiffness(ibool, nglob, geom, material, gravity)`` fixes a mesh and model (building the inverse
table of the race-free assembly and dispatching the core.smm kernels once); ``forces(displ, accel,
variant=...)`` then adds one time step's stiffness forces to ``accel``. Bad input raises
``TypeError``/``ValueError`` naming the argument before any ``nogil`` code runs.
"""
import numpy as np

import core.cpu
import core.smm

from . import _specfem_kernels
from .mesh import NGLL3, gll_operators, interleaved_table, inverse_table

VARIANTS = _specfem_kernels.VARIANTS
SMM_VARIANTS = _specfem_kernels.SMM_VARIANTS
F32 = np.dtype(np.float32)
# The sample's three GEMM shapes (m, n, k): xmm1 = hprime (5x5) . u (5x25), xmm2 = u (25x5) . hprimeT,
# xmm3 = one 5x5 slice . hprimeT.
SHAPES = {"xmm1": (5, 25, 5), "xmm2": (25, 5, 5), "xmm3": (5, 5, 5)}


def _array(name, x, dtype, shape, write=False):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {x.dtype}")
    if x.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {x.shape}")
    if not x.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if write and not x.flags.writeable:
        raise ValueError(f"{name} must be writable")
    return x


def _count(name, v, minimum=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return int(v)


def smm_kernels(target=None):
    """The six kernels of the LIBXSMM variants: xmm1..3 without and xmm1p..3p with prefetch."""
    kw = {} if target is None else {"target": target}
    out = {}
    for name, (m, n, k) in SHAPES.items():
        out[name] = core.smm.dispatch(m, n, k, alpha=1.0, beta=0.0, dtype=F32, prefetch="none", **kw)
        out[name + "p"] = core.smm.dispatch(m, n, k, alpha=1.0, beta=0.0, dtype=F32, prefetch="next", **kw)
    return out


class Stiffness:
    """SPECFEM's compute-forces kernel for one mesh (``ibool``: nspec x 125 node ids < nglob) and model.

    ``geom`` (nspec x 10: xix xiy xiz etax etay etaz gammax gammay gammaz jacobian), ``material``
    (nspec x 2: kappa mu), ``gravity`` (nspec x 9: rho g_x..z, H_xx H_yy H_zz H_xy H_xz H_yz), all
    float32. ``target`` forces an ISA path (default: the process's). ``static_available`` tells
    whether the SMM_MNK build has fully unrolled kernels for all three shapes.
    """

    def __init__(self, ibool, nglob, geom, material, gravity, *, ops=None, target=None):
        self.nglob = _count("nglob", nglob)
        if not isinstance(ibool, np.ndarray) or ibool.ndim != 2:
            raise ValueError("ibool must be a 2-D numpy array (elements, 125)")
        nspec = _count("elements (ibool.shape[0])", ibool.shape[0])
        self.ibool = _array("ibool", ibool, np.dtype(np.int32), (nspec, NGLL3))
        lo, hi = int(ibool.min()), int(ibool.max())
        if lo < 0 or hi >= self.nglob:
            raise ValueError(f"ibool holds node ids {lo}..{hi}, outside 0..{self.nglob - 1}")
        self.nspec = nspec
        self.geom = _array("geom", geom, F32, (nspec, 10))
        self.material = _array("material", material, F32, (nspec, 2))
        self.gravity = _array("gravity", gravity, F32, (nspec, 9))
        ops = gll_operators(F32) if ops is None else ops
        self.ops = {}
        for name, shape in (("hprime", (5, 5)), ("hprimeT", (5, 5)), ("hprimewgll", (5, 5)), ("hprimewgllT", (5, 5)),
                            ("wgll_yz", (5, 5, 5)), ("wgll_xz", (5, 5, 5)), ("wgll_xy", (5, 5, 5)),
                            ("wgll_cube", (5, 5, 5))):
            x = np.asarray(ops[name], dtype=F32)
            if x.shape != shape:
                raise ValueError(f"ops[{name!r}] must have shape {shape}, got {x.shape}")
            # Matrices go to the kernels column-major (M[i, l] at i + 5 l); weights as [k, j, i] (p = i + 5j + 25k).
            self.ops[name] = np.ascontiguousarray(x.ravel(order="F" if len(shape) == 2 else "C"))
        self.isa = core.cpu.target_id() if target is None else core.cpu.isa_id(target)
        self.target = core.cpu.ISA_NAMES[self.isa]
        self.inv_start, self.inv_table = inverse_table(self.ibool, self.nglob)
        group = _specfem_kernels.GROUP
        self.inv_table_g = interleaved_table(self.inv_table, group)
        self.sum_terms = np.zeros((nspec, 3, NGLL3), dtype=F32)
        self.sum_terms_g = np.zeros(-(-nspec // group) * group * 3 * NGLL3, dtype=F32)
        self.kernels = smm_kernels(None if target is None else target)
        self.static_available = all(self.kernels[n].specialized and self.kernels[n + "p"].specialized for n in SHAPES)
        o = self.ops
        self._loops = _specfem_kernels.StiffnessLoops(
            self.ibool, self.sum_terms, self.sum_terms_g, self.inv_start, self.inv_table, self.inv_table_g,
            self.geom, self.material,
            self.gravity, o["hprime"], o["hprimeT"], o["hprimewgll"], o["hprimewgllT"], o["wgll_yz"],
            o["wgll_xz"], o["wgll_xy"], o["wgll_cube"], self.kernels)

    def forces(self, displ, accel, *, variant="deville", threads=None):
        """``accel += K(displ)`` for one time step with the chosen variant; returns ``accel``."""
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if variant == "static" and not self.static_available:
            raise ValueError("variant 'static' needs fully unrolled kernels for 5x25x5, 25x5x5 and 5x5x5 "
                             "(build with SMM_MNK containing \"5 25\")")
        _array("displ", displ, F32, (self.nglob, 3))
        _array("accel", accel, F32, (self.nglob, 3), write=True)
        if np.shares_memory(displ, accel):
            raise ValueError("accel overlaps displ")
        if threads is None:
            import core.threads
            threads = core.threads.get_num_threads()
        threads = _count("threads", threads)
        self._loops.forces(VARIANTS.index(variant), self.isa, threads, displ, accel)
        return accel
