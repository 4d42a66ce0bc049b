# cython: language_level=3
"""Matrix transpose, copy and zeroing with leading dimensions (LIBXSMM's otrans/itrans/matcopy).

Column-major semantics as LIBXSMM's transpose sample: the input is ``m x n`` with leading dimension
``ldi``, the out-of-place result ``n x m`` with ``ldo``, and ``out[i*ldo + j] == in[j*ldi + i]``.
Two ways to call each routine:

* flat 1-D buffers plus ``m=``, ``n=``, ``ldi=``, ``ldo=`` (exactly the sample's semantics);
* numpy 2-D arrays (C or Fortran order, or views with a padded leading dimension): the result is
  ``a.T`` as values, in the memory order of ``out`` (by default the order of ``a``).

Tile sizes come, for each of M and N, from the arguments, then ``TRANS_M``/``TRANS_N``, then the
tuned-parameter file for this CPU model and ISA path (``python -m miniapps.transpose.tune`` writes
it; see :mod:`core.tuned`), then built-in defaults. :func:`plan` tells what a call would use.
The ISA path is the process's (``core.cpu.target()``) unless ``target=`` names another one the CPU
runs. See docs/transpose.md.
"""
from cython.parallel cimport parallel, prange
from libc.stdint cimport int32_t, int64_t, uintptr_t
from libc.stdlib cimport getenv
from libc.string cimport memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
cimport numpy as cnp

import operator

import numpy as np

from core.threads cimport resolve_threads, threads_for_work
from core import _config, cpu, tuned

cnp.import_array()

cdef extern from "transpose.h" nogil:
    ctypedef void (*smm_otrans_fn)(const void *, void *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                   int) noexcept nogil
    ctypedef void (*smm_itrans_swap_fn)(void *, void *, int64_t, int64_t, int64_t) noexcept nogil
    ctypedef void (*smm_itrans_diag_fn)(void *, int64_t, int64_t) noexcept nogil
    ctypedef void (*smm_copy_fn)(const void *, void *, int64_t, int64_t, int64_t, int64_t, int) noexcept nogil
    ctypedef void (*smm_zero_fn)(void *, int64_t, int64_t, int64_t, int) noexcept nogil
    ctypedef struct smm_trans_kernels:
        smm_otrans_fn otrans
        smm_itrans_swap_fn itrans_swap
        smm_itrans_diag_fn itrans_diag
        smm_copy_fn copy
        smm_zero_fn zero
        int32_t block_m, block_n, block_sq, isa, elemsize, streams
        const char *name
        const char *name_inplace
    const smm_trans_kernels *smm_trans_lookup(int isa, int elemsize)
    void smm_trans_fence()

__all__ = ["transpose", "transpose_inplace", "copy", "zero", "plan", "kernels", "tuned_key", "DEFAULT_TILES"]

# Below this many elements per thread a second thread costs more (team wake-up, ~ microseconds)
# than it saves.
cdef int64_t _GRAIN = 1 << 15
# Copy/zero tiles: 256 KiB keeps a tile's source and destination in a core's L2 (1 MiB on Zen 4,
# 1-2 MiB on recent Intel) and leaves enough tiles to balance two or more threads.
cdef int64_t COPY_TILE_BYTES = 1 << 18

# Built-in tile sizes (elements: rows x columns of the input) per element size, kind and size class,
# used when neither arguments, TRANS_M/TRANS_N nor the tuned-parameter file say otherwise. Measured
# on AMD EPYC Zen 4 (docs/transpose.md). Out of place: strips 2 output lines wide (tile N), tall
# (tile M = 2048 rows): streaming, a band that tall keeps the input streams long and the output
# rows in use few (20000^2 f64: 64 rows 43 %, 512 rows 62 %, 2048 rows 77 % of the copy; with the
# input read-ahead of trans_impl.h, 1024 / 2048 / 3072 / 4096 rows 80 / 86-92 / 83-93 / 84-95 %); in cache,
# tall tiles were as good as any (704^2: 256 to 2048 rows 88-89 %, 64 rows 81 %). In place: square
# tiles of 8 KiB columns (the mirrored tile's row panel is read in bursts that long; 20000^2 f64:
# tiles of 128 / 256 / 512 / 1024 gave 50 / 63 / 72 / 77 % of the copy). Rounded up to the register
# block at run time.
DEFAULT_TILES = {
    # (elemsize, kind): {size class: (tile_m, tile_n)}
    (4, "o"): {"small": (2048, 32), "medium": (2048, 32), "large": (2048, 32)},
    (8, "o"): {"small": (2048, 16), "medium": (2048, 16), "large": (2048, 16)},
    (16, "o"): {"small": (2048, 8), "medium": (2048, 8), "large": (2048, 8)},
    (4, "i"): {"small": (2048, 2048), "medium": (2048, 2048), "large": (2048, 2048)},
    (8, "i"): {"small": (1024, 1024), "medium": (1024, 1024), "large": (1024, 1024)},
    (16, "i"): {"small": (512, 512), "medium": (512, 512), "large": (512, 512)},
}

# Streaming transposes of inputs large enough to be read ahead whose columns lie a multiple of 2 KiB
# apart (2048^2, 4096^2, 8192^2 f64): tiles of 4 KiB columns and 512-byte output runs, with which
# the kernels bring each next tile into L2 column by column (trans_impl.h). Where that measured
# faster: AVX-512, 8-byte elements; % of the copy with the tiles above -> these: 4096^2 1 thread
# 70-73 -> 80-90 %, 2 threads 81-86 -> 87-94 %; 2048^2 1 thread 65-67 -> 84-87 %. Not with other
# strides, where the tiles above read each column ahead instead (20000^2, 1 thread: 86-88 against
# 81-84 % in one run, 71-89 against 92-95 % in another; 2 threads 89-91 against 68-86 %), nor on AVX2
# f64 or f32 on either path (4096^2 AVX2 f64, 1 thread: 61 -> 54 %). (elemsize, ISA path): tiles
READ_AHEAD_TILES = {(8, "avx512"): (512, 64)}

# The tuned-parameter file keys tiles by element size, named after the float type of that size.
_SIZE_KEY = {4: "f32", 8: "f64", 16: "c128"}
_KINDS = {"o": "otrans", "i": "itrans"}
_DTYPE_KINDS = "fciu"  # any real/complex/integer dtype of 4, 8 or 16 bytes moves as raw bits


# Non-temporal stores pay off once input and output together crowd the last-level cache (which other
# processes share, too): they skip the read-for-ownership (a third of the traffic) and do not evict
# the input. Below that, a caller's matrix is in cache, and plain stores keep it and the result
# there. Measured on Zen 4 (32 MiB L3, shared) with warm operands (each timing after a call of the
# same kind), % of the faster copy, plain / streaming stores, 1 and 2 threads: 1000^2 f64 (8 MB of
# output) 81 / 63 % and 68 / 30 %; 1100^2 54 / 39 % and 58 / 32 %; 1200^2 (11.5 MB) 53 / 79 % and
# 58 / 38 %; 1400^2 45 / 92 % and 49 / 53 %. A copy (plain / streaming, microseconds, 1 and 2
# threads): 1200^2 350 / 410 and 167 / 410; 1300^2 519 / 499 and 272 / 499; 2000^2 1577 / 1320 and
# 671 / 590. (Timed cold, after other work evicted the operands, streaming looked better from
# 4 MiB on: 1000^2 80-98 % streaming, 30-50 % not.)
_LLC_BYTES = cpu.cache_bytes(3)
_STREAM_BYTES = _LLC_BYTES // 3
_COPY_STREAM_BYTES = 3 * _LLC_BYTES // 8
# Streaming transposes of inputs at least this large also prefetch the input (trans_impl.h): an input
# that still sits in the last-level cache comes faster without (1000^2 f64, 8 MB: 96 % of the copy
# with, 109 % without; 1200^2: 102 % vs 115 %; 2000^2, 32 MB: 145 % vs 137 %; 20000^2 69 -> 90 %).
cdef int64_t _PREFETCH_BYTES = _LLC_BYTES // 2


def _prefetch_bytes(value=None):
    """The input size from which streaming transposes prefetch; a test hook: sets it if ``value`` is
    given (an int >= 0) and returns the previous value."""
    global _PREFETCH_BYTES
    old = _PREFETCH_BYTES
    if value is not None:
        _PREFETCH_BYTES = _count(value, "value")
    return old

cdef int _default_isa = cpu.target_id()



# ----------------------------------------------------------------------------------- nogil drivers

cdef inline int64_t _round_up(int64_t x, int64_t b) noexcept nogil:
    return ((x + b - 1) // b) * b


cdef inline int64_t _min(int64_t a, int64_t b) noexcept nogil:
    return a if a < b else b


cdef inline void _otrans_unit(const smm_trans_kernels *k, const char *inp, char *out, int64_t m, int64_t n,
                              int64_t ldi, int64_t ldo, int64_t tm, int64_t tn, int bands, int64_t u,
                              int streaming) noexcept nogil:
    cdef int64_t es = k.elemsize, i0, j0
    if bands:  # unit u: rows [u*tm, u*tm + tm), every column
        i0 = u * tm
        k.otrans(inp + i0 * es, out + i0 * ldo * es, _min(tm, m - i0), n, ldi, ldo, tm, tn, streaming)
    else:      # unit u: columns [u*tn, u*tn + tn), every row
        j0 = u * tn
        k.otrans(inp + j0 * ldi * es, out + j0 * es, m, _min(tn, n - j0), ldi, ldo, tm, tn, streaming)


cdef void _otrans_run(const smm_trans_kernels *k, const char *inp, char *out, int64_t m, int64_t n,
                      int64_t ldi, int64_t ldo, int64_t tm, int64_t tn, int nthreads,
                      int streaming) noexcept nogil:
    cdef int64_t units, u
    cdef int bands
    if m <= 0 or n <= 0:
        return
    if nthreads > 1:
        # Threads take whole units: bands of tm rows when streaming (each thread then writes its own
        # output rows), strips of tn columns otherwise (its own input columns); strips also when there
        # are too few bands to share. Dynamic, so that a thread slowed by a neighbour on a shared
        # node takes fewer. Output rows off the 64-byte lines stream through a staging tile that
        # wants whole rows (trans_impl.h): always bands then, lower ones if needed.
        if streaming and k.streams and (ldo * k.elemsize) % 64 != 0 and (m + tm - 1) // tm < 2 * nthreads:
            tm = _round_up((m + 2 * nthreads - 1) // (2 * nthreads), k.block_m)
        # In cache, too: bands (lower ones if needed). Strips there write parts of every output row
        # from every thread; rows that do not start on 64-byte lines then share a line between
        # neighbouring strips (warm 700^2 f64, 2 threads: 23-43 % of the copy with strips, 68-71 %
        # with bands of 64-128 rows; 1000^2: 36 % -> 59-60 % with bands of 256 rows).
        if not streaming and (m + tm - 1) // tm < 2 * nthreads and m >= 2 * nthreads * k.block_m:
            tm = _round_up((m + 2 * nthreads - 1) // (2 * nthreads), k.block_m)
        units = (m + tm - 1) // tm
        bands = units >= 2 * nthreads
        if not bands:
            units = (n + tn - 1) // tn
        if nthreads > units:
            nthreads = <int>units
    if nthreads <= 1:
        k.otrans(inp, out, m, n, ldi, ldo, tm, tn, streaming)
        if streaming:
            smm_trans_fence()
        return
    with parallel(num_threads=nthreads):
        for u in prange(units, schedule="dynamic", chunksize=1):
            _otrans_unit(k, inp, out, m, n, ldi, ldo, tm, tn, bands, u, streaming)
        if streaming:
            smm_trans_fence()  # each thread, once: its streaming stores are done before the join


cdef inline int64_t _to_line(const void *p, int64_t es, int64_t bound=64) noexcept nogil:
    """Elements from p to the next `bound`-byte boundary (0 when p is not even element-aligned)."""
    if (<uintptr_t>p) % es:
        return 0
    return <int64_t>(((bound - ((<uintptr_t>p) & (bound - 1))) & (bound - 1)) // es)


cdef inline int64_t _peel_bound(int64_t ld, int64_t es) noexcept nogil:
    """The alignment (bytes) that a peel can give every column: 64 when ld * es is a whole number of
    lines, else 32 when it is a whole number of half lines (then no 32-byte access splits a line), else 0."""
    if (ld * es) % 64 == 0:
        return 64
    if (ld * es) % 32 == 0:
        return 32
    return 0


# Out-of-place transposes of at most this many elements run as one tile of the kernel: the peels and
# borders below cost more than the whole move (4^2 f64, 1 thread: about 0.3 us of a 0.74 us call).
cdef int64_t SMALL_TRANSPOSE = 256


cdef int otrans_c(const void *inp, void *out, int elemsize, int isa, int64_t m, int64_t n, int64_t ldi,
                  int64_t ldo, int64_t tile_m, int64_t tile_n, int nthreads, int streaming) noexcept nogil:
    cdef const smm_trans_kernels *k = smm_trans_lookup(isa if isa >= 0 else _default_isa, elemsize)
    cdef int64_t es, tm, tn, pi = 0, pj = 0
    cdef const char *src = <const char *>inp
    cdef char *dst = <char *>out
    if k == NULL:
        return -1
    if m <= 0 or n <= 0:
        return 0
    es = k.elemsize
    if m * n <= SMALL_TRANSPOSE:  # the whole matrix as one tile of the kernel (blocks and edge loops)
        k.otrans(src, dst, m, n, ldi, ldo, m, n, 0)
        return 0
    tm = _round_up(tile_m if tile_m > 0 else 2048, k.block_m)
    tn = _round_up(tile_n if tile_n > 0 else 128 // es, k.block_n)
    # numpy aligns arrays to 16 bytes only. When a leading dimension is a whole number of 64-byte
    # lines, the first pi rows (and pj columns) go apart, so that every register block of the rest
    # loads whole input lines and stores whole output lines (which streaming stores require). When
    # it is a whole number of 32-byte halves (700^2 f64: 5600 bytes), they go apart up to a 32-byte
    # boundary: no 32-byte load or store of the rest then splits a line (warm 700^2, 1 thread:
    # 65-66 % of the copy from numpy's 16-byte-aligned arrays, 75-77 % from 32-byte-aligned ones).
    cdef int64_t bi = _peel_bound(ldi, es), bo = _peel_bound(ldo, es)
    if bi:
        pi = _min(_to_line(inp, es, bi), m)
    if bo:
        pj = _min(_to_line(out, es, bo), n)
    # The rows (columns) past the last whole register block go apart too, with the peeled ones, so
    # that the main part runs whole blocks only.
    cdef int64_t ti = (m - pi) % k.block_m, tj = (n - pj) % k.block_n
    _otrans_border(k, src, dst, m, n, ldi, ldo, pi, ti, pj, tj, nthreads)
    if streaming and m * n * es >= _PREFETCH_BYTES:
        streaming = 2
    if m - ti > pi and n - tj > pj:
        _otrans_run(k, src + (pj * ldi + pi) * es, dst + (pi * ldo + pj) * es, m - pi - ti, n - pj - tj,
                    ldi, ldo, tm, tn, nthreads, streaming)
    return 0


cdef enum:
    BORDER_CHUNK = 256


cdef void _otrans_border(const smm_trans_kernels *k, const char *src, char *dst, int64_t m, int64_t n,
                         int64_t ldi, int64_t ldo, int64_t pi, int64_t ti, int64_t pj, int64_t tj,
                         int nthreads) noexcept nogil:
    """The border of an out-of-place transpose: the first pi and last ti rows of every column, then
    the first pj and last tj columns of the rows between. Done in chunks of BORDER_CHUNK columns
    (rows) whose two parts run back to back: in a contiguous matrix one column's last rows share a
    line with the next column's first rows, and an output row's last columns with the next row's
    first ones, so each such line is then read (written) once, not once per part at two distant
    times; and the border takes two parallel regions, not three, with no partial blocks left in the
    main part. 16-byte-aligned numpy arrays (peels of 6 rows and columns), % of the copy, before ->
    after: 1000^2 f64 in cache, 2 threads, 47-56 -> 54-65 %; 700^2 51-54 -> 54-74 %; 2000^2
    (streaming) 80-84 -> 91-97 %; 4096^2 even (1 thread 85-91 -> 89-92 %)."""
    cdef int64_t nc, c, r0 = pi, r1 = m - ti
    if pi > 0 or ti > 0:
        nc = (n + BORDER_CHUNK - 1) // BORDER_CHUNK
        if nthreads > 1 and nc > 1:
            for c in prange(nc, num_threads=nthreads, schedule="static"):
                _border_rows(k, src, dst, m, n, ldi, ldo, pi, ti, c)
        else:
            for c in range(nc):
                _border_rows(k, src, dst, m, n, ldi, ldo, pi, ti, c)
    if (pj > 0 or tj > 0) and r1 > r0:
        nc = (r1 - r0 + BORDER_CHUNK - 1) // BORDER_CHUNK
        if nthreads > 1 and nc > 1:
            for c in prange(nc, num_threads=nthreads, schedule="static"):
                _border_cols(k, src, dst, r0, r1, n, ldi, ldo, pj, tj, c)
        else:
            for c in range(nc):
                _border_cols(k, src, dst, r0, r1, n, ldi, ldo, pj, tj, c)


cdef inline void _border_rows(const smm_trans_kernels *k, const char *src, char *dst, int64_t m, int64_t n,
                              int64_t ldi, int64_t ldo, int64_t pi, int64_t ti, int64_t c) noexcept nogil:
    """Columns [c0, c0 + w) of chunk c: their first pi rows, then their last ti rows."""
    cdef int64_t es = k.elemsize, c0 = c * BORDER_CHUNK, w = _min(BORDER_CHUNK, n - c * BORDER_CHUNK)
    if pi > 0:
        k.otrans(src + c0 * ldi * es, dst + c0 * es, pi, w, ldi, ldo, pi, w, 0)
    if ti > 0:
        k.otrans(src + (c0 * ldi + m - ti) * es, dst + ((m - ti) * ldo + c0) * es, ti, w, ldi, ldo, ti, w, 0)


cdef inline void _border_cols(const smm_trans_kernels *k, const char *src, char *dst, int64_t r0, int64_t r1,
                              int64_t n, int64_t ldi, int64_t ldo, int64_t pj, int64_t tj, int64_t c) noexcept nogil:
    """Rows [i0, i0 + h) of chunk c (within [r0, r1)): their first pj columns, then their last tj."""
    cdef int64_t es = k.elemsize, i0 = r0 + c * BORDER_CHUNK, h = _min(BORDER_CHUNK, r1 - r0 - c * BORDER_CHUNK)
    if pj > 0:
        k.otrans(src + i0 * es, dst + i0 * ldo * es, h, pj, ldi, ldo, h, pj, 0)
    if tj > 0:
        k.otrans(src + ((n - tj) * ldi + i0) * es, dst + (i0 * ldo + n - tj) * es, h, tj, ldi, ldo, h, tj, 0)


cdef inline void _itrans_tile_row(const smm_trans_kernels *k, char *a, int64_t n, int64_t ld, int64_t tile,
                                  int64_t ntiles, int64_t ti) noexcept nogil:
    cdef int64_t es = k.elemsize, i0 = ti * tile, mi = _min(tile, n - ti * tile), tj, j0
    k.itrans_diag(a + (i0 * ld + i0) * es, mi, ld)
    for tj in range(ti + 1, ntiles):
        j0 = tj * tile
        k.itrans_swap(a + (j0 * ld + i0) * es, a + (i0 * ld + j0) * es, mi, _min(tile, n - j0), ld)


cdef void _itrans_square_run(const smm_trans_kernels *k, char *a, int64_t n, int64_t ld, int64_t t,
                             int nthreads) noexcept nogil:
    cdef int64_t nt = (n + t - 1) // t, ti
    if nthreads > nt:
        nthreads = <int>nt
    if nthreads <= 1:
        for ti in range(nt):
            _itrans_tile_row(k, a, n, ld, t, nt, ti)
    else:
        # Tile row ti holds nt - ti tile pairs: dynamic scheduling balances the triangle.
        for ti in prange(nt, num_threads=nthreads, schedule="dynamic", chunksize=1):
            _itrans_tile_row(k, a, n, ld, t, nt, ti)


cdef int itrans_square_c(void *a, int elemsize, int isa, int64_t n, int64_t ld, int64_t tile,
                         int nthreads) noexcept nogil:
    cdef const smm_trans_kernels *k = smm_trans_lookup(isa if isa >= 0 else _default_isa, elemsize)
    cdef int64_t t, es, p = 0, c, nc, chunk = 1024
    cdef char *base = <char *>a
    if k == NULL:
        return -1
    if n <= 1:
        return 0
    es = k.elemsize
    t = _round_up(tile if tile > 0 else 8192 // es, k.block_sq)
    # As out of place: with a line-multiple leading dimension, the first p rows and columns go apart
    # (a thin border: the p x p corner and the p-row strip swapped with the p-column strip), so that
    # the tiles of the rest load and store whole lines (with a leading dimension of whole 32-byte
    # halves: halves, which no 32-byte access of the rest then splits).
    cdef int64_t bound = _peel_bound(ld, es)
    if bound:
        p = _min(_to_line(a, es, bound), n)
    if p > 0:
        k.itrans_diag(base, p, ld)
        nc = (n - p + chunk - 1) // chunk
        if nthreads <= 1 or nc == 1:
            for c in range(nc):
                k.itrans_swap(base + (p + c * chunk) * ld * es, base + (p + c * chunk) * es, p,
                              _min(chunk, n - p - c * chunk), ld)
        else:
            for c in prange(nc, num_threads=nthreads, schedule="static"):
                k.itrans_swap(base + (p + c * chunk) * ld * es, base + (p + c * chunk) * es, p,
                              _min(chunk, n - p - c * chunk), ld)
    if n - p > 1:
        _itrans_square_run(k, base + (p * ld + p) * es, n - p, ld, t, nthreads)
    return 0


cdef int _bytes_tiles(const smm_trans_kernels *k, const char *inp, char *out, int64_t rowbytes, int64_t n,
                      int64_t ldib, int64_t ldob, int nthreads, int streaming) noexcept nogil:
    """Copy (inp != NULL) or zero (inp == NULL) n columns of rowbytes bytes, tiled over threads."""
    cdef int64_t rc, cc, nr, nc, ntiles, t
    if rowbytes <= 0 or n <= 0:
        return 0
    if ldob == rowbytes and (inp == NULL or ldib == rowbytes):
        rowbytes *= n  # one contiguous block: split it anywhere
        n = 1
    if rowbytes <= COPY_TILE_BYTES:
        rc = rowbytes
        cc = COPY_TILE_BYTES // rowbytes
    else:
        rc = COPY_TILE_BYTES
        cc = 1
    nr = (rowbytes + rc - 1) // rc
    nc = (n + cc - 1) // cc
    ntiles = nr * nc
    if nthreads > ntiles:
        nthreads = <int>ntiles
    if nthreads <= 1:
        for t in range(ntiles):
            _bytes_tile(k, inp, out, rowbytes, n, ldib, ldob, rc, cc, nr, t, streaming)
        if streaming:
            smm_trans_fence()
    else:
        with parallel(num_threads=nthreads):
            for t in prange(ntiles, schedule="dynamic", chunksize=4):
                _bytes_tile(k, inp, out, rowbytes, n, ldib, ldob, rc, cc, nr, t, streaming)
            if streaming:
                smm_trans_fence()
    return 0


cdef inline void _bytes_tile(const smm_trans_kernels *k, const char *inp, char *out, int64_t rowbytes,
                             int64_t n, int64_t ldib, int64_t ldob, int64_t rc, int64_t cc, int64_t nr,
                             int64_t t, int streaming) noexcept nogil:
    cdef int64_t r0 = (t % nr) * rc, c0 = (t // nr) * cc
    if inp != NULL:
        k.copy(inp + c0 * ldib + r0, out + c0 * ldob + r0, _min(rc, rowbytes - r0), _min(cc, n - c0),
               ldib, ldob, streaming)
    else:
        k.zero(out + c0 * ldob + r0, _min(rc, rowbytes - r0), _min(cc, n - c0), ldob, streaming)


cdef int copy_c(const void *inp, void *out, int elemsize, int isa, int64_t m, int64_t n, int64_t ldi,
                int64_t ldo, int nthreads, int streaming) noexcept nogil:
    cdef const smm_trans_kernels *k = smm_trans_lookup(isa if isa >= 0 else _default_isa, elemsize)
    if k == NULL:
        return -1
    return _bytes_tiles(k, <const char *>inp, <char *>out, m * elemsize, n, ldi * elemsize, ldo * elemsize,
                        nthreads, streaming)


cdef int zero_c(void *a, int elemsize, int isa, int64_t m, int64_t n, int64_t ld, int nthreads,
                int streaming) noexcept nogil:
    cdef const smm_trans_kernels *k = smm_trans_lookup(isa if isa >= 0 else _default_isa, elemsize)
    if k == NULL:
        return -1
    return _bytes_tiles(k, NULL, <char *>a, m * elemsize, n, 0, ld * elemsize, nthreads, streaming)


# ------------------------------------------------------------------------------ argument checking

cdef inline uintptr_t _addr(cnp.ndarray arr):
    return <uintptr_t>cnp.PyArray_DATA(arr)


cdef int _es(cnp.ndarray a, str name) except -1:
    """Element size of a's dtype (the float types through numpy's C API, the rest via _elemsize)."""
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_DOUBLE or t == cnp.NPY_FLOAT or t == cnp.NPY_CDOUBLE or t == cnp.NPY_CFLOAT:
        return cnp.PyArray_ITEMSIZE(a)
    return _elemsize(a.dtype, name)


def _elemsize(dtype, name):
    dtype = np.dtype(dtype)
    if dtype.kind not in _DTYPE_KINDS or dtype.itemsize not in _SIZE_KEY or dtype.hasobject:
        raise TypeError(f"{name} has dtype {dtype}; supported: float32, float64, complex64, complex128 "
                        "(and 4/8-byte integers)")
    return dtype.itemsize


def _isa(target):
    if target is None:
        return _default_isa
    if not isinstance(target, str):
        raise TypeError(f"target must be None or an ISA path name, got {type(target).__name__}")
    return cpu.isa_id(target)


# No buffer holds more elements than this: larger sizes and leading dimensions are refused here,
# before they reach the int64 arithmetic of the C side.
_MAX_COUNT = 1 << 62


def _count(value, name):
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    if v > _MAX_COUNT:
        raise ValueError(f"{name}={v} is too large (at most 2**62)")
    return v


def _lead(value, name, rows, rows_name):
    if value is None:
        return max(rows, 1)
    v = _count(value, name)
    if v < max(rows, 1):
        raise ValueError(f"{name}={v} is too small: it must be >= {rows_name}={rows} (and >= 1)")
    return v


def _tile(value, name):
    if value is None:
        return None
    v = _count(value, name)
    if v < 1:
        raise ValueError(f"{name} must be >= 1, got {v}")
    return v


def _streaming(value):
    if value is None or isinstance(value, bool):
        return value
    raise TypeError(f"streaming must be None (automatic), True or False, got {value!r}")


ctypedef struct _Lay:
    int axis         # the array axis with unit stride: it becomes the matrix's rows m
    int64_t m, n     # the array as a column-major m x n matrix
    int64_t ld       # the other axis' stride in elements


cdef bint _layout(cnp.ndarray arr, _Lay *L) noexcept:
    """A 2-D array as a column-major m x n matrix into L (numpy's C API only: this runs on every
    call); False if it is not one (no unit-stride axis, or the other stride too short)."""
    cdef cnp.npy_intp *shape = cnp.PyArray_DIMS(arr)
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(arr)
    cdef int64_t s = cnp.PyArray_ITEMSIZE(arr), rows, cols, st
    cdef int ax, other, k
    cdef int prefs[4]
    if shape[0] == 0 or shape[1] == 0:  # numpy gives empty arrays zero strides
        L.axis = 1; L.m = shape[1]; L.n = shape[0]; L.ld = shape[1] if shape[1] > 1 else 1
        return True
    k = 0   # a unit-stride axis of extent > 1 first (axis 1, then 0), then any axis
    for ax in (1, 0):
        if shape[ax] > 1 and strides[ax] == s:
            prefs[k] = ax; k += 1
    prefs[k] = 1; prefs[k + 1] = 0
    for i in range(k + 2):
        ax = prefs[i]
        other = 1 - ax
        if shape[ax] > 1 and strides[ax] != s:
            continue
        rows, cols = shape[ax], shape[other]
        if cols <= 1:
            L.axis = ax; L.m = rows; L.n = cols; L.ld = rows if rows > 1 else 1
            return True
        st = strides[other]
        if st <= 0 or st % s or st // s < rows:
            continue
        L.axis = ax; L.m = rows; L.n = cols; L.ld = st // s
        return True
    return False


cdef object _input_2d(cnp.ndarray a, _Lay *L):
    """A 2-D input and its layout in L: arrays without a unit stride (or misaligned) are copied once."""
    if not (cnp.PyArray_FLAGS(a) & cnp.NPY_ARRAY_ALIGNED and _layout(a, L)):
        a = np.ascontiguousarray(a)
        _layout(a, L)
    return a


cdef int _output_2d(object out, cnp.ndarray a, int64_t rows, int64_t cols, _Lay *L) except -1:
    """Checks out (2-D, a's dtype, rows x cols, writeable) and puts its layout in L."""
    if not cnp.PyArray_Check(out):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    cdef cnp.ndarray o = <cnp.ndarray>out
    if <object>cnp.PyArray_DESCR(o) is not <object>cnp.PyArray_DESCR(a) and out.dtype != a.dtype:
        raise TypeError(f"out has dtype {out.dtype}, the input {a.dtype}")
    if cnp.PyArray_NDIM(o) != 2 or cnp.PyArray_DIMS(o)[0] != rows or cnp.PyArray_DIMS(o)[1] != cols:
        raise ValueError(f"out has shape {out.shape}, expected {(rows, cols)}")
    cdef int flags = cnp.PyArray_FLAGS(o)
    if not flags & cnp.NPY_ARRAY_WRITEABLE:
        raise ValueError("out is read-only")
    if not (flags & cnp.NPY_ARRAY_ALIGNED and _layout(o, L)):
        raise ValueError(f"out (strides {out.strides}) needs one axis with unit stride, the other a "
                         "positive multiple of the element size, and element alignment")
    return 0


def _flat(arr, name, writeable):
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(arr).__name__}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a flat (1-D) buffer here, got ndim={arr.ndim}")
    if arr.shape[0] > 1 and arr.strides[0] != arr.itemsize:
        raise ValueError(f"{name} must be contiguous (stride {arr.itemsize} bytes), got stride {arr.strides[0]}")
    if not arr.flags.aligned:
        raise ValueError(f"{name} is not aligned to its element size")
    if writeable and not arr.flags.writeable:
        raise ValueError(f"{name} is read-only")


def _need(arr, name, rows, cols, ld, what):
    """Checks that flat arr holds the rows x cols matrix; returns the leading dimension to pass to C
    (a single column's, which no element offset uses, is replaced by its rows)."""
    need = (cols - 1) * ld + rows if rows and cols else 0
    if arr.shape[0] < need:
        raise ValueError(f"{name} has {arr.shape[0]} elements, {what} needs {need}")
    return ld if cols > 1 else max(rows, 1)


def _new_flat(count, dtype, zeroed, what):
    """A new flat output of count elements (zeroed: its padding is defined)."""
    dtype = np.dtype(dtype)
    if count * dtype.itemsize > _MAX_COUNT:
        raise ValueError(f"out would need {count} elements ({what}): more than any buffer can hold")
    return (np.zeros if zeroed else np.empty)(count, dtype=dtype)


cdef int _check_disjoint(uintptr_t pa, uintptr_t ea, uintptr_t pb, uintptr_t eb) except -1:
    if pa < eb and pb < ea:
        raise ValueError("out overlaps the input: an out-of-place routine needs disjoint memory "
                         "(use transpose_inplace to transpose within one buffer)")
    return 0


cdef uintptr_t _end(uintptr_t start, int64_t rows, int64_t cols, int64_t ld, int64_t es):
    return start + ((cols - 1) * ld + rows) * es if rows > 0 and cols > 0 else start


cdef int _threads(threads, int64_t work) except -1:
    return threads_for_work(resolve_threads(threads), work, _GRAIN)


cdef int _stream_choice(streaming, int64_t nbytes, int64_t threshold=-1) except -1:
    if streaming is not None:
        return 1 if streaming else 0
    return 1 if nbytes >= (_STREAM_BYTES if threshold < 0 else threshold) else 0


# ---------------------------------------------------------------------------------- tile resolution

cdef bint _read_ahead(int es, int64_t m, int64_t n, int64_t ldi, int streaming) noexcept:
    """True when READ_AHEAD_TILES apply: a streaming transpose of an input large enough to be read
    ahead, with columns a multiple of 2 KiB apart."""
    return streaming != 0 and m * n * es >= _PREFETCH_BYTES and (ldi * es) % 2048 == 0


_TILE_VARS_C = tuple(name.encode() for name in _config.TRANSPOSE_TILE_VARS)


cdef bint _tile_env_set():
    cdef const char *v
    for name in _TILE_VARS_C:
        v = getenv(name)
        if v != NULL and v[0] != 0:
            return True
    return False


cdef dict _TUNED_STATE = tuned._current   # tuned.current()'s own record: {"checked", "path", "doc"}
cdef double _TUNED_RECHECK = tuned.RECHECK_SECONDS


cdef object _tuned_doc():
    """tuned.current() without the Python call while its last check is recent (the same clock as
    time.monotonic; tuned.refresh() resets "checked", which sends the next call to tuned.current())."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    doc = _TUNED_STATE["doc"]
    if doc is not None and ts.tv_sec + 1e-9 * ts.tv_nsec - <double>_TUNED_STATE["checked"] < _TUNED_RECHECK:
        return doc
    return tuned.current()


# tuned.SIZE_CLASSES as C values (the size class is looked up on every call)
_SC_NAMES = tuple(name for name, _ in tuned.SIZE_CLASSES)
cdef int64_t _SC_UPPER[8]
for _i, (_, _upper) in enumerate(tuned.SIZE_CLASSES):
    _SC_UPPER[_i] = -1 if _upper is None else _upper


cdef int _size_class_index(int64_t nbytes) noexcept:
    """Index into tuned.SIZE_CLASSES of an operand of nbytes bytes (tuned.size_class in C)."""
    cdef int i = 0
    while _SC_UPPER[i] >= 0 and nbytes >= _SC_UPPER[i]:
        i += 1
    return i


cdef object _size_class(int64_t nbytes):
    return _SC_NAMES[_size_class_index(nbytes)]


# The run paths' tiles when neither arguments nor TRANS_M/TRANS_N give them (tuned file or
# defaults), per (kind, element size, ISA, size class, read-ahead): 0 = not looked up yet. Valid for
# the tuned document _TILE_DOC; a new one (the file changed, or tuned.refresh()) clears them.
cdef int64_t _TILE_HIT[2][3][4][4][2][2]
cdef object _TILE_DOC = None


cdef int _tile_pair(str kind, int es, int isa, int64_t m, int64_t n, tile_m, tile_n, bint read_ahead,
                    int64_t *tm, int64_t *tn) except -1:
    """The tiles (before rounding to the register block) that _tiles gives, into tm, tn; the
    common call (no tile arguments, no TRANS_M/TRANS_N) from a C table."""
    global _TILE_DOC
    cdef int ki = 0 if kind == "o" else 1, ei = 0 if es == 4 else (1 if es == 8 else 2)
    cdef int ci = _size_class_index(m * n * es)
    cdef int64_t *hit
    if tile_m is None and tile_n is None and isa < 4 and ci < 4 and not _tile_env_set():
        doc = _tuned_doc()
        if doc is not _TILE_DOC:
            memset(_TILE_HIT, 0, sizeof(_TILE_HIT))
            _TILE_DOC = doc
        hit = _TILE_HIT[ki][ei][isa][ci][1 if read_ahead else 0]
        if hit[0] == 0:
            (a, b), _ = _resolve_tiles(kind, es, isa, _SC_NAMES[ci], None, None, (None, None), read_ahead)
            hit[0] = a
            hit[1] = b
        tm[0] = hit[0]
        tn[0] = hit[1]
        return 0
    (a, b), _ = _tiles(kind, es, isa, m, n, tile_m, tile_n, read_ahead)
    tm[0] = a
    tn[0] = b
    return 0


cdef object _tiles(str kind, int es, int isa, int64_t m, int64_t n, tile_m, tile_n, bint read_ahead=False):
    """((tile_m, tile_n), (source_m, source_n)) before rounding to the register block; with
    ``read_ahead`` (see _read_ahead) the default comes from READ_AHEAD_TILES where it has the path."""
    if tile_m is not None and tile_n is not None:
        return (tile_m, tile_n), ("argument", "argument")
    # TRANS_M/TRANS_N through the C library (os.environ writes reach it with putenv): parsed and
    # checked by _config only when set. os.environ look-ups cost 1.8 us a call, a third of the
    # whole call for a small matrix.
    env = _config.transpose_tiles() if _tile_env_set() else (None, None)
    return _resolve_tiles(kind, es, isa, _size_class(m * n * es), tile_m, tile_n, env, read_ahead)


def _resolve_tiles(kind, int es, int isa, cls, tile_m, tile_n, env, read_ahead):
    found = None
    values, sources = [], []
    for which, arg, env_value in (("m", tile_m, env[0]), ("n", tile_n, env[1])):
        if arg is not None:
            values.append(arg)
            sources.append("argument")
            continue
        if env_value is not None:
            values.append(env_value)
            sources.append("TRANS_" + which.upper())
            continue
        if found is None:
            found = tuned.lookup("transpose", f"{_KINDS[kind]}-{_SIZE_KEY[es]}", cls,
                                 isa=cpu.ISA_NAMES[isa]) or {}
        value = found.get("tile_" + which)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            values.append(value)
            sources.append("tuned")
        else:
            default = READ_AHEAD_TILES.get((es, cpu.ISA_NAMES[isa])) if read_ahead and kind == "o" else None
            values.append((default or DEFAULT_TILES[(es, kind)][cls])[0 if which == "m" else 1])
            sources.append("default")
    return tuple(values), tuple(sources)


cdef const smm_trans_kernels *_kernels(int isa, int es) except NULL:
    cdef const smm_trans_kernels *k = smm_trans_lookup(isa, es)
    if k == NULL:
        raise ValueError(f"no transpose kernels for ISA {isa} and {es}-byte elements")
    return k


def plan(m, n, *, dtype=np.float64, kind="o", tile_m=None, tile_n=None, threads=None, target=None,
         streaming=None):
    """What a call on an m x n matrix would run: a dict with ``target``, ``kernel``, the effective
    ``tile_m``/``tile_n`` (rounded up to the register block), ``tile_source`` (each of ``argument``,
    ``TRANS_M``/``TRANS_N``, ``tuned`` or ``default``), ``size_class``, ``threads``, ``streaming``,
    ``prefetch`` (streaming with software prefetches of the input).

    ``kind``: ``'o'`` out-of-place, ``'i'`` in-place (square tiles of ``tile_m``).
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be 'o' or 'i', got {kind!r}")
    m, n = _count(m, "m"), _count(n, "n")
    cdef int es = _elemsize(dtype, "dtype")
    cdef int isa = _isa(target)
    cdef const smm_trans_kernels *k = _kernels(isa, es)
    stream = bool(_stream_choice(_streaming(streaming), m * n * es)) and kind == "o" and bool(k.streams)
    (tm, tn), src = _tiles(kind, es, isa, m, n, _tile(tile_m, "tile_m"), _tile(tile_n, "tile_n"),
                           _read_ahead(es, m, n, m, stream))  # contiguous: ldi = m
    if kind == "o":
        tm, tn = _round_up(tm, k.block_m), _round_up(tn, k.block_n)
        ntiles = -(-m // tm) * -(-n // tn) if m and n else 0
    else:
        tm = tn = _round_up(tm, k.block_sq)
        src = (src[0], src[0])
        ntiles = -(-m // tm) if m else 0
    return {
        "target": cpu.ISA_NAMES[isa], "isa_id": isa,
        "kernel": (k.name if kind == "o" else k.name_inplace).decode(), "kind": kind,
        "dtype": str(np.dtype(dtype)), "tile_m": tm, "tile_n": tn,
        "tile_source": {"m": src[0], "n": src[1]}, "size_class": tuned.size_class(m * n * es),
        "threads": max(1, min(_threads(threads, m * n), ntiles)),
        "streaming": stream,
        # the input is also read ahead (trans_impl.h: strips of 512 bytes or more bring the next
        # tile into L2; narrower ones read each column ahead, unless they lie a multiple of 2 KiB apart)
        "prefetch": stream and m * n * es >= _PREFETCH_BYTES,
        "register_block": (k.block_m, k.block_n) if kind == "o" else (k.block_sq, k.block_sq),
    }


def tuned_key(kind, dtype):
    """Key of the tuned-parameter file's ``transpose`` section for a kind and dtype, e.g.
    ``'otrans-f64'`` (tiles are tuned per element size: complex64 shares the f64 entry)."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be 'o' or 'i', got {kind!r}")
    return f"{_KINDS[kind]}-{_SIZE_KEY[_elemsize(dtype, 'dtype')]}"


def kernels():
    """Out-of-place kernel names per ISA path this CPU runs: ``{'avx2': ['trans_avx2_f32_8x8', ...]}``
    (``plan(..., kind='i')`` names the in-place ones, which a path may borrow from another)."""
    cdef const smm_trans_kernels *k
    out = {}
    for name in cpu.available_targets():
        names = []
        for es in (4, 8, 16):
            k = smm_trans_lookup(cpu.ISA_NAMES.index(name), es)
            if k != NULL:
                names.append(k.name.decode())
        out[name] = names
    return out


# ---------------------------------------------------------------------------------------- the API

cdef _run_otrans(cnp.ndarray a, cnp.ndarray out, int es, int isa, int64_t m, int64_t n, int64_t ldi,
                 int64_t ldo, tile_m, tile_n, threads, streaming):
    cdef int st = _stream_choice(streaming, m * n * es)
    cdef int nt = _threads(threads, m * n)
    cdef int64_t ctm, ctn
    _tile_pair("o", es, isa, m, n, tile_m, tile_n, _read_ahead(es, m, n, ldi, st), &ctm, &ctn)
    cdef const void *src = cnp.PyArray_DATA(a)
    cdef void *dst = cnp.PyArray_DATA(out)
    cdef int rc
    _check_disjoint(<uintptr_t>src, _end(<uintptr_t>src, m, n, ldi, es),
                    <uintptr_t>dst, _end(<uintptr_t>dst, n, m, ldo, es))
    with nogil:
        rc = otrans_c(src, dst, es, isa, m, n, ldi, ldo, ctm, ctn, nt, st)
    if rc:
        raise ValueError(f"no transpose kernel for {es}-byte elements")


cdef _run_copy(cnp.ndarray a, cnp.ndarray out, int es, int isa, int64_t m, int64_t n, int64_t ldi,
               int64_t ldo, threads, streaming):
    cdef int nt = _threads(threads, m * n)
    cdef int st = _stream_choice(streaming, m * n * es, _COPY_STREAM_BYTES)
    cdef const void *src = cnp.PyArray_DATA(a)
    cdef void *dst = cnp.PyArray_DATA(out)
    cdef int rc
    _check_disjoint(<uintptr_t>src, _end(<uintptr_t>src, m, n, ldi, es),
                    <uintptr_t>dst, _end(<uintptr_t>dst, m, n, ldo, es))
    with nogil:
        rc = copy_c(src, dst, es, isa, m, n, ldi, ldo, nt, st)
    if rc:
        raise ValueError(f"no copy kernel for {es}-byte elements")


def _no_flat_args(fn, **kw):
    given = [k for k, v in kw.items() if v is not None]
    if given:
        raise TypeError(f"{fn}: {', '.join(given)} describe flat (1-D) buffers; with 2-D arrays the "
                        "shape and strides come from the arrays")


def transpose(a, out=None, *, m=None, n=None, ldi=None, ldo=None, tile_m=None, tile_n=None,
              threads=None, target=None, streaming=None):
    """Out-of-place transpose; returns ``out``.

    * 2-D ``a``: ``out`` (allocated in ``a``'s memory order if not given) receives ``a.T``.
    * 1-D ``a`` with ``m``, ``n`` (and ``ldi`` >= m, default m; ``ldo`` >= n, default n):
      ``out[i*ldo + j] = a[j*ldi + i]`` for ``i < m``, ``j < n``; ``out`` defaults to ``m*ldo``
      elements (padding zeroed).

    ``tile_m``/``tile_n``: tile extents along the input's rows/columns (elements). ``threads``:
    OpenMP threads (None: the process default, small matrices use fewer). ``target``: ISA path
    (None: the process's). ``streaming``: non-temporal stores (None: when the output exceeds the
    last-level cache). Overlapping input and output raise ``ValueError``.
    """
    if not cnp.PyArray_Check(a):
        a = np.asarray(a)
    cdef int es = _es(a, "a")
    cdef int isa = _isa(target)
    resolve_threads(threads)  # checked even when there is nothing to do
    if tile_m is not None or tile_n is not None:
        tile_m, tile_n = _tile(tile_m, "tile_m"), _tile(tile_n, "tile_n")
    streaming = _streaming(streaming)
    cdef _Lay lay, lay_out
    cdef int64_t rows, cols
    if cnp.PyArray_NDIM(a) == 2:
        if m is not None or n is not None or ldi is not None or ldo is not None:
            _no_flat_args("transpose", m=m, n=n, ldi=ldi, ldo=ldo)
        a = _input_2d(a, &lay)
        rows, cols = cnp.PyArray_DIMS(a)[0], cnp.PyArray_DIMS(a)[1]
        if out is None:
            out = np.empty((cols, rows), dtype=a.dtype, order="F" if lay.axis == 0 else "C")
            _layout(out, &lay_out)
        else:
            _output_2d(out, a, cols, rows, &lay_out)
        if rows == 0 or cols == 0:
            return out
        if lay_out.axis == lay.axis:  # same memory order: the memory moves transposed
            _run_otrans(a, out, es, isa, lay.m, lay.n, lay.ld, lay_out.ld, tile_m, tile_n, threads, streaming)
        else:                      # opposite orders: a.T has a's memory layout already
            _run_copy(a, out, es, isa, lay.m, lay.n, lay.ld, lay_out.ld, threads, streaming)
        return out
    if a.ndim != 1:
        raise ValueError(f"a must be 2-D, or a flat 1-D buffer with m= and n=; got ndim={a.ndim}")
    if m is None or n is None:
        raise TypeError("transpose of a flat (1-D) buffer needs m= and n= (rows and columns of the input)")
    m, n = _count(m, "m"), _count(n, "n")
    ldi, ldo = _lead(ldi, "ldi", m, "m"), _lead(ldo, "ldo", n, "n")
    _flat(a, "a", False)
    ldi = _need(a, "a", m, n, ldi, f"an m={m} x n={n} input with ldi={ldi}")
    if out is None:
        out = _new_flat(m * ldo, a.dtype, ldo > n, f"m={m} rows of ldo={ldo}")
    else:
        _flat(out, "out", True)
        if out.dtype != a.dtype:
            raise TypeError(f"out has dtype {out.dtype}, a has {a.dtype}")
    ldo = _need(out, "out", n, m, ldo, f"an n={n} x m={m} output with ldo={ldo}")
    if m and n:
        _run_otrans(a, out, es, isa, m, n, ldi, ldo, tile_m, tile_n, threads, streaming)
    return out


def transpose_inplace(a, *, m=None, n=None, ldi=None, ldo=None, tile=None, threads=None, target=None):
    """In-place transpose; returns the array holding the result.

    * 2-D square ``a`` (any leading dimension): ``a`` becomes ``a.T``; returns ``a``.
    * 2-D non-square ``a``: must be contiguous (C or Fortran); returns a view of the same memory
      with shape ``a.shape[::-1]`` and the same order. Anything else raises ``ValueError``.
    * 1-D buffer with ``m``, ``n``, ``ldi`` (default m), ``ldo`` (default n): the ``m x n`` matrix
      at ``a`` (``ldi``) is replaced by its ``n x m`` transpose (``ldo``); the buffer must hold both.

    Square matrices with one leading dimension are transposed by swapping tile pairs (no extra
    memory, square tiles of ``tile``, TRANS_M or the tuned/default size); anything else goes
    through an ``m*n`` scratch buffer.
    """
    if not isinstance(a, np.ndarray):
        raise TypeError(f"a must be a numpy array, got {type(a).__name__}")
    cdef int es = _es(a, "a")
    cdef int isa = _isa(target)
    resolve_threads(threads)  # checked even when there is nothing to do
    tile = _tile(tile, "tile")
    cdef _Lay lay
    if not a.flags.writeable:
        raise ValueError("a is read-only")
    if not a.flags.aligned:
        raise ValueError("a is not aligned to its element size")
    if a.ndim == 2:
        _no_flat_args("transpose_inplace", m=m, n=n, ldi=ldi, ldo=ldo)
        rows, cols = a.shape
        if rows == cols:
            if not _layout(a, &lay):
                raise ValueError(f"a (strides {a.strides}) needs one axis with unit stride for an in-place transpose")
            _square(a, es, isa, lay.m, lay.ld, tile, threads)
            return a
        if a.flags.c_contiguous:
            _general(a, es, isa, cols, rows, cols, rows, tile, threads)
            return a.reshape((cols, rows))
        if a.flags.f_contiguous:
            _general(a, es, isa, rows, cols, rows, cols, tile, threads)
            return a.reshape((cols, rows), order="F")
        raise ValueError(f"in-place transpose of a non-square {rows}x{cols} array needs it contiguous "
                         f"(its strides {a.strides} leave no room for the {cols}x{rows} result); "
                         "use transpose() with an output array")
    if a.ndim != 1:
        raise ValueError(f"a must be 2-D, or a flat 1-D buffer with m= and n=; got ndim={a.ndim}")
    if m is None or n is None:
        raise TypeError("transpose_inplace of a flat (1-D) buffer needs m= and n=")
    m, n = _count(m, "m"), _count(n, "n")
    ldi, ldo = _lead(ldi, "ldi", m, "m"), _lead(ldo, "ldo", n, "n")
    _flat(a, "a", True)
    ldi = _need(a, "a", m, n, ldi, f"the m={m} x n={n} input with ldi={ldi}")
    ldo = _need(a, "a", n, m, ldo, f"the n={n} x m={m} result with ldo={ldo} (no room for an in-place transpose)")
    if m and n:
        if m == n and ldi == ldo:
            _square(a, es, isa, m, ldi, tile, threads)
        else:
            _general(a, es, isa, m, n, ldi, ldo, tile, threads)
    return a


cdef _square(cnp.ndarray a, int es, int isa, int64_t n, int64_t ld, tile, threads):
    cdef int64_t ct, unused
    _tile_pair("i", es, isa, n, n, tile, None, False, &ct, &unused)
    cdef int nt = _threads(threads, n * n)
    cdef void *p = cnp.PyArray_DATA(a)
    with nogil:
        itrans_square_c(p, es, isa, n, ld, ct, nt)


cdef _general(cnp.ndarray a, int es, int isa, int64_t m, int64_t n, int64_t ldi, int64_t ldo, tile, threads):
    # Any shape and pair of leading dimensions: transpose into scratch, copy back. Costs m*n
    # elements of memory and one more pass, but is as fast as the out-of-place kernels allow.
    cdef cnp.ndarray scratch = np.empty(m * n, dtype=a.dtype)
    cdef int64_t ctm, ctn
    _tile_pair("o", es, isa, m, n, tile, tile, False, &ctm, &ctn)
    cdef int nt = _threads(threads, m * n)
    cdef int st = _stream_choice(None, m * n * es, _COPY_STREAM_BYTES)
    # The scratch is read back at once: keep it in cache unless it cannot stay there anyway.
    cdef int st_scratch = _stream_choice(None, m * n * es, _LLC_BYTES)
    cdef void *p = cnp.PyArray_DATA(a)
    cdef void *s = cnp.PyArray_DATA(scratch)
    with nogil:
        otrans_c(p, s, es, isa, m, n, ldi, n, ctm, ctn, nt, st_scratch)
        copy_c(s, p, es, isa, n, m, n, ldo, nt, st)


def copy(a, out=None, *, m=None, n=None, ldi=None, ldo=None, threads=None, target=None, streaming=None):
    """Matrix copy with leading dimensions; returns ``out``.

    * 2-D ``a``: ``out[...] = a`` (``out`` allocated in ``a``'s order if not given; any mix of
      C/Fortran order and padded leading dimensions).
    * 1-D ``a`` with ``m``, ``n``, ``ldi`` (default m), ``ldo`` (default m):
      ``out[j*ldo + i] = a[j*ldi + i]``; ``out`` defaults to ``n*ldo`` elements (padding zeroed).
    """
    if not cnp.PyArray_Check(a):
        a = np.asarray(a)
    cdef int es = _es(a, "a")
    cdef int isa = _isa(target)
    resolve_threads(threads)  # checked even when there is nothing to do
    streaming = _streaming(streaming)
    cdef _Lay lay, lay_out
    if cnp.PyArray_NDIM(a) == 2:
        if m is not None or n is not None or ldi is not None or ldo is not None:
            _no_flat_args("copy", m=m, n=n, ldi=ldi, ldo=ldo)
        a = _input_2d(a, &lay)
        if out is None:
            out = np.empty(a.shape, dtype=a.dtype, order="F" if lay.axis == 0 else "C")
            _layout(out, &lay_out)
        else:
            _output_2d(out, a, cnp.PyArray_DIMS(a)[0], cnp.PyArray_DIMS(a)[1], &lay_out)
        if cnp.PyArray_SIZE(a) == 0:
            return out
        if lay_out.axis == lay.axis:
            _run_copy(a, out, es, isa, lay.m, lay.n, lay.ld, lay_out.ld, threads, streaming)
        else:
            _run_otrans(a, out, es, isa, lay.m, lay.n, lay.ld, lay_out.ld, None, None, threads, streaming)
        return out
    if a.ndim != 1:
        raise ValueError(f"a must be 2-D, or a flat 1-D buffer with m= and n=; got ndim={a.ndim}")
    if m is None or n is None:
        raise TypeError("copy of a flat (1-D) buffer needs m= and n=")
    m, n = _count(m, "m"), _count(n, "n")
    ldi, ldo = _lead(ldi, "ldi", m, "m"), _lead(ldo, "ldo", m, "m")
    _flat(a, "a", False)
    ldi = _need(a, "a", m, n, ldi, f"an m={m} x n={n} input with ldi={ldi}")
    if out is None:
        out = _new_flat(n * ldo, a.dtype, ldo > m, f"n={n} columns of ldo={ldo}")
    else:
        _flat(out, "out", True)
        if out.dtype != a.dtype:
            raise TypeError(f"out has dtype {out.dtype}, a has {a.dtype}")
    ldo = _need(out, "out", m, n, ldo, f"an m={m} x n={n} output with ldo={ldo}")
    if m and n:
        _run_copy(a, out, es, isa, m, n, ldi, ldo, threads, streaming)
    return out


def zero(a, *, m=None, n=None, ld=None, threads=None, target=None, streaming=None):
    """Set a matrix to zero; returns ``a``. 2-D ``a``: all of it. 1-D ``a`` with ``m``, ``n``,
    ``ld`` (default m): ``a[j*ld + i] = 0`` for ``i < m``, ``j < n`` (padding untouched)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"a must be a numpy array, got {type(a).__name__}")
    cdef int es = _es(a, "a")
    cdef int isa = _isa(target)
    resolve_threads(threads)  # checked even when there is nothing to do
    streaming = _streaming(streaming)
    cdef _Lay lay
    if not a.flags.writeable:
        raise ValueError("a is read-only")
    if a.ndim == 2:
        _no_flat_args("zero", m=m, n=n, ld=ld)
        if not (a.flags.aligned and _layout(a, &lay)):
            raise ValueError(f"a (strides {a.strides}) needs one axis with unit stride")
        rows, cols, lead = lay.m, lay.n, lay.ld
    elif a.ndim == 1:
        if m is None or n is None:
            raise TypeError("zero of a flat (1-D) buffer needs m= and n=")
        rows, cols = _count(m, "m"), _count(n, "n")
        lead = _lead(ld, "ld", rows, "m")
        _flat(a, "a", True)
        lead = _need(a, "a", rows, cols, lead, f"an m={rows} x n={cols} matrix with ld={lead}")
    else:
        raise ValueError(f"a must be 2-D, or a flat 1-D buffer with m= and n=; got ndim={a.ndim}")
    cdef int64_t cm = rows, cn = cols, cld = lead
    cdef int nt = _threads(threads, cm * cn)
    cdef int st = _stream_choice(streaming, cm * cn * es, _COPY_STREAM_BYTES)
    cdef void *p = cnp.PyArray_DATA(a)
    if cm and cn:
        with nogil:
            zero_c(p, es, isa, cm, cn, cld, nt, st)
    return a
