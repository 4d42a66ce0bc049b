# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The SPECFEM stiffness kernel's parallel loops: OpenMP threads over elements (guided, as the
sample), each computing its element's contributions into sum_terms, then threads over node ranges
assembling them into accel through the inverse table (one writer per node: no atomics, no races).

Callers: ``miniapps.specfem.kernels.Stiffness`` validates every array; this module trusts it.
"""
from cython.parallel cimport prange, parallel
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free

from core.smm cimport Kernel, smm_kernel

cdef extern from "specfem_kernels.h" nogil:
    ctypedef struct spf_model:
        int64_t nspec
        const int32_t *ibool
        const float *displ
        float *sum_terms
        float *sum_terms_g
        float *accel
        const int32_t *inv_start
        const int32_t *inv_table
        const int32_t *inv_table_g
        const float *geom
        const float *material
        const float *gravity
        const float *hprime
        const float *hprimeT
        const float *hprimewgll
        const float *hprimewgllT
        const float *wgll_yz
        const float *wgll_xz
        const float *wgll_xy
        const float *wgll_cube
    ctypedef struct spf_kernels:
        const smm_kernel *xmm1
        const smm_kernel *xmm2
        const smm_kernel *xmm3
        const smm_kernel *xmm1p
        const smm_kernel *xmm2p
        const smm_kernel *xmm3p
    ctypedef void (*spf_element_fn)(const spf_model *, const spf_kernels *, int64_t)
    ctypedef void (*spf_assemble_fn)(const spf_model *, const int32_t *, const float *, int64_t, int64_t, int64_t)
    ctypedef void (*spf_group_fn)(const spf_model *, int64_t, float *)
    spf_element_fn spf_element[5][3]
    spf_assemble_fn spf_assemble[3]
    spf_group_fn spf_group[3]
    enum:
        SPF_G
        SPF_N3
        SPF_GROUP_SCRATCH

cdef extern from "stdlib.h" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)

VARIANTS = ("deville", "unrolled", "dispatched", "prefetch", "static", "interleaved")
INTERLEAVED = 5
GROUP = SPF_G
SMM_VARIANTS = ("dispatched", "prefetch", "static")
DEF ASSEMBLY_CHUNK = 2048  # nodes per scheduling unit of the assembly loop


cdef class StiffnessLoops:
    """The element loop and the assembly over one fixed mesh and model (arrays kept alive here)."""
    cdef spf_model M
    cdef spf_kernels K
    cdef list keep
    cdef readonly int64_t nspec, nglob
    cdef bint have_kernels

    def __init__(self, const int32_t[:, ::1] ibool, float[:, :, ::1] sum_terms, float[::1] sum_terms_g,
                 const int32_t[::1] inv_start, const int32_t[::1] inv_table, const int32_t[::1] inv_table_g,
                 const float[:, ::1] geom, const float[:, ::1] material, const float[:, ::1] gravity,
                 const float[::1] hprime, const float[::1] hprimeT, const float[::1] hprimewgll,
                 const float[::1] hprimewgllT, const float[::1] wgll_yz, const float[::1] wgll_xz,
                 const float[::1] wgll_xy, const float[::1] wgll_cube, kernels=None):
        self.nspec = ibool.shape[0]
        self.nglob = inv_start.shape[0] - 1
        if sum_terms_g.shape[0] < ((self.nspec + SPF_G - 1) // SPF_G) * SPF_G * 3 * SPF_N3:
            raise ValueError("sum_terms_g is too small for the interleaved layout")
        self.keep = [ibool, sum_terms, sum_terms_g, inv_start, inv_table, inv_table_g, geom, material, gravity, hprime, hprimeT,
                     hprimewgll, hprimewgllT, wgll_yz, wgll_xz, wgll_xy, wgll_cube, kernels]
        self.M.nspec = self.nspec
        self.M.ibool = &ibool[0, 0]
        self.M.sum_terms = &sum_terms[0, 0, 0]
        self.M.sum_terms_g = &sum_terms_g[0]
        self.M.inv_start = &inv_start[0]
        self.M.inv_table = &inv_table[0]
        self.M.inv_table_g = &inv_table_g[0]
        self.M.geom = &geom[0, 0]
        self.M.material = &material[0, 0]
        self.M.gravity = &gravity[0, 0]
        self.M.hprime = &hprime[0]
        self.M.hprimeT = &hprimeT[0]
        self.M.hprimewgll = &hprimewgll[0]
        self.M.hprimewgllT = &hprimewgllT[0]
        self.M.wgll_yz = &wgll_yz[0]
        self.M.wgll_xz = &wgll_xz[0]
        self.M.wgll_xy = &wgll_xy[0]
        self.M.wgll_cube = &wgll_cube[0]
        self.have_kernels = kernels is not None
        if kernels is not None:
            self.K.xmm1 = (<Kernel?>kernels["xmm1"]).kern
            self.K.xmm2 = (<Kernel?>kernels["xmm2"]).kern
            self.K.xmm3 = (<Kernel?>kernels["xmm3"]).kern
            self.K.xmm1p = (<Kernel?>kernels["xmm1p"]).kern
            self.K.xmm2p = (<Kernel?>kernels["xmm2p"]).kern
            self.K.xmm3p = (<Kernel?>kernels["xmm3p"]).kern

    def forces(self, int variant, int isa, int nthreads, const float[:, ::1] displ, float[:, ::1] accel):
        """accel += the stiffness forces of every element for displacement displ (one time step)."""
        if variant < 0 or variant >= len(VARIANTS):
            raise ValueError(f"variant id {variant} out of range")
        if 2 <= variant <= 4 and not self.have_kernels:
            raise ValueError(f"variant {VARIANTS[variant]!r} needs the core.smm kernels")
        if isa < 0 or isa >= 3:
            raise ValueError(f"isa id {isa} out of range")
        cdef spf_model m = self.M
        cdef spf_kernels kk = self.K
        m.displ = &displ[0, 0]
        m.accel = &accel[0, 0]
        cdef bint grouped = variant == INTERLEAVED
        cdef spf_element_fn element = NULL if grouped else spf_element[variant][isa]
        cdef spf_group_fn group = spf_group[isa]
        cdef spf_assemble_fn assemble = spf_assemble[isa]
        cdef const int32_t *table = m.inv_table_g if grouped else m.inv_table
        cdef const float *st = m.sum_terms_g if grouped else m.sum_terms
        cdef int64_t cs = SPF_N3 * SPF_G if grouped else SPF_N3
        cdef int64_t e, c, g0, g1
        cdef int64_t nchunks = (self.nglob + ASSEMBLY_CHUNK - 1) // ASSEMBLY_CHUNK
        cdef int64_t ngroups = (self.nspec + SPF_G - 1) // SPF_G
        cdef int64_t nglob = self.nglob
        cdef void *scratch
        cdef int nomem = 0
        cdef int *pnomem = &nomem
        with nogil, parallel(num_threads=nthreads):
            if grouped:
                scratch = NULL
                if posix_memalign(&scratch, 64, SPF_GROUP_SCRATCH * sizeof(float)) != 0:
                    pnomem[0] = 1
                    scratch = NULL
                for e in prange(ngroups, schedule="guided"):
                    if scratch != NULL:
                        group(&m, e, <float *>scratch)
                free(scratch)
            else:
                for e in prange(self.nspec, schedule="guided"):
                    element(&m, &kk, e)
            # guided, not static: a thread that loses its core for a while (shared machines,
            # oversubscribed ranks) should not hold the whole step up.
            for c in prange(nchunks, schedule="guided"):
                g0 = c * ASSEMBLY_CHUNK
                g1 = g0 + ASSEMBLY_CHUNK
                if g1 > nglob:
                    g1 = nglob
                assemble(&m, table, st, cs, g0, g1)
        if nomem:
            raise MemoryError("could not allocate the per-thread scratch of the interleaved variant")
