# C-level interface of core.transpose: tiled, OpenMP-parallel transpose/copy/zero with no Python on
# the path (for other Cython modules). Column-major, leading dimensions in elements.
#
#   from core.transpose cimport otrans_c
#   p = core.transpose.plan(m, n, dtype=np.float64)        # once, with the GIL: tiles, threads, ISA
#   with nogil:
#       otrans_c(src, dst, 8, p["isa_id"], m, n, ldi, ldo, p["tile_m"], p["tile_n"], p["threads"], 0)
#
# The caller owns the checks (what the Python functions do): ld >= rows, disjoint buffers for the
# out-of-place routines, a CPU that runs `isa` (isa < 0: the process's path), elemsize 4, 8 or 16.
# tile <= 0 means the built-in default. Each returns 0, or -1 for an unsupported elemsize/isa.
from libc.stdint cimport int64_t

# out[i*ldo + j] = in[j*ldi + i], i < m, j < n
cdef int otrans_c(const void *inp, void *out, int elemsize, int isa, int64_t m, int64_t n, int64_t ldi,
                  int64_t ldo, int64_t tile_m, int64_t tile_n, int nthreads, int streaming) noexcept nogil
# In-place transpose of the n x n matrix at a (leading dimension ld), square tiles of `tile`.
cdef int itrans_square_c(void *a, int elemsize, int isa, int64_t n, int64_t ld, int64_t tile,
                         int nthreads) noexcept nogil
# out[j*ldo + i] = in[j*ldi + i], i < m, j < n
cdef int copy_c(const void *inp, void *out, int elemsize, int isa, int64_t m, int64_t n, int64_t ldi,
                int64_t ldo, int nthreads, int streaming) noexcept nogil
# a[j*ld + i] = 0, i < m, j < n
cdef int zero_c(void *a, int elemsize, int isa, int64_t m, int64_t n, int64_t ld, int nthreads,
                int streaming) noexcept nogil
