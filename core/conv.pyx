# cython: language_level=3
"""Direct 2-D convolution in f32 on the channel-blocked NCHWc layout (LIBXSMM's DNN layout).

Layouts (``BLOCK`` = 16 channels per block, missing channels of the last block are zero):

* activations ``(N, ceil(C/16), H, W, 16)``;
* weights ``(ceil(K/16), ceil(C/16), R, S, 16c, 16k)`` -- for one output block and one input
  channel, the 16 output channels are contiguous, so a weight column is one SIMD vector.

A :class:`ConvPlan` is made once per shape (like a LIBXSMM handle): it checks the geometry,
precomputes the operand offsets of the micro-kernel (``core/src/conv``), owns the padded input
and gradient scratch, and runs forward, backward-data and backward-weights with one nogil
OpenMP region each:

* forward: parallel over (image, output block); each output row is cut into column tiles that
  one register-blocked batch-reduce product computes over all (input block, r, s); bias is the
  accumulator's initial value; optionally the per-channel sum and sum of squares of the output
  are taken while the tile is in L1 (the statistics half of a fused conv + batch norm).
* backward-data: parallel over (image, input block). Stride 1: the forward kernel on dy padded
  by (R-1-pad) with flipped, transposed weights (gather). Other strides: every (r, s) tap
  scatters a tile of dy times the transposed weights into the zeroed (padded) input gradient.
* backward-weights: parallel over (output block, input block, batch group); per image and tap,
  one batch-reduce call over all output rows. Batch groups depend on the shape only, so
  results do not depend on the thread count.

Every reduction has a fixed order: results are identical for any number of threads.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memset, memcpy

from core.threads cimport resolve_threads, threads_for_work
from core import cpu as _cpu
from core._args import int_arg, pair_arg, no_overlap

cnp.import_array()

cdef extern from "conv_kernels.h" nogil:
    ctypedef void (*conv_brgemm16_fn)(int n, int k, int64_t count,
                                      const float *a, const int64_t *aoff,
                                      const float *b, const int64_t *boff, int64_t bl, int64_t bj,
                                      float *c, int64_t ldc, int accumulate, const float *bias)
    int conv_brgemm16_nmax(int isa)
    conv_brgemm16_fn conv_brgemm16_get(int isa, int n, int64_t bj)
    ctypedef void (*conv_stats_fn)(const float *c, int n, double *stats)
    conv_stats_fn conv_tile_stats_get(int isa)

cdef enum:
    VLEN = 16           # channels per block: one zmm, two ymm
    TILE = 256          # one 16x16 weight block
    NMAX_ALL = 16       # largest nmax over all ISA tables

BLOCK = VLEN

cdef int64_t _ZERO_OFFSET[1]
_ZERO_OFFSET[0] = 0


def blocks(channels):
    """Number of 16-channel blocks holding ``channels`` channels."""
    channels = int_arg(channels, "channels", 1)
    return (channels + VLEN - 1) // VLEN


def to_blocked(x):
    """``(N, C, H, W)`` -> ``(N, ceil(C/16), H, W, 16)`` float32, padding channels with zeros."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {x.shape}")
    n, c, h, w = x.shape
    cb = blocks(c)
    out = np.zeros((n, cb * VLEN, h, w), np.float32)
    out[:, :c] = x
    return np.ascontiguousarray(out.reshape(n, cb, VLEN, h, w).transpose(0, 1, 3, 4, 2))


def from_blocked(xb, channels):
    """``(N, Cb, H, W, 16)`` -> ``(N, channels, H, W)`` (a copy)."""
    xb = np.asarray(xb)
    if xb.ndim != 5 or xb.shape[4] != VLEN:
        raise ValueError(f"xb must be (N, Cb, H, W, 16), got shape {xb.shape}")
    channels = int_arg(channels, "channels", 1)
    if not 0 < channels <= xb.shape[1] * VLEN:
        raise ValueError(f"channels={channels} does not fit {xb.shape[1]} blocks")
    n, cb, h, w, _ = xb.shape
    return np.ascontiguousarray(xb.transpose(0, 1, 4, 2, 3).reshape(n, cb * VLEN, h, w)[:, :channels])


def weights_to_blocked(w):
    """``(K, C, R, S)`` -> ``(Kb, Cb, R, S, 16c, 16k)`` float32 with zero padding."""
    w = np.asarray(w)
    if w.ndim != 4:
        raise ValueError(f"w must be 4-D (K, C, R, S), got shape {w.shape}")
    k, c, r, s = w.shape
    kb, cb = blocks(k), blocks(c)
    full = np.zeros((kb * VLEN, cb * VLEN, r, s), np.float32)
    full[:k, :c] = w
    return np.ascontiguousarray(full.reshape(kb, VLEN, cb, VLEN, r, s).transpose(0, 2, 4, 5, 3, 1))


def weights_from_blocked(wb, out_channels, in_channels):
    """``(Kb, Cb, R, S, 16c, 16k)`` -> ``(K, C, R, S)`` (a copy)."""
    wb = np.asarray(wb)
    if wb.ndim != 6 or wb.shape[4] != VLEN or wb.shape[5] != VLEN:
        raise ValueError(f"wb must be (Kb, Cb, R, S, 16, 16), got shape {wb.shape}")
    kb, cb, r, s = wb.shape[:4]
    out_channels, in_channels = int_arg(out_channels, "out_channels", 1), int_arg(in_channels, "in_channels", 1)
    if not (0 < out_channels <= kb * VLEN and 0 < in_channels <= cb * VLEN):
        raise ValueError(f"channels ({out_channels}, {in_channels}) do not fit blocks ({kb}, {cb})")
    full = wb.transpose(0, 5, 1, 4, 2, 3).reshape(kb * VLEN, cb * VLEN, r, s)
    return np.ascontiguousarray(full[:out_channels, :in_channels])


def output_size(size, kernel, stride, pad):
    """Output extent of a convolution along one axis (floor mode, as Caffe and PyTorch)."""
    size, kernel = int_arg(size, "size"), int_arg(kernel, "kernel", 1)
    stride, pad = int_arg(stride, "stride", 1), int_arg(pad, "pad")
    if kernel < 1 or stride < 1 or pad < 0:
        raise ValueError(f"need kernel >= 1, stride >= 1, pad >= 0 (got {kernel}, {stride}, {pad})")
    out = (size + 2 * pad - kernel) // stride + 1  # Python ints: no overflow near 2**31
    if out < 1:
        raise ValueError(f"kernel {kernel} with pad {pad} does not fit an input of size {size}")
    return out


def kernel_info(target=None):
    """Micro-kernel facts for an ISA path: ``{'target', 'nmax'}`` (what tests and docs report)."""
    cdef int isa = _isa_of(target)
    return {"target": _cpu.ISA_NAMES[isa], "nmax": conv_brgemm16_nmax(isa)}


cdef int _isa_of(object target) except -1:
    if target is None:
        return _cpu.target_id()
    if not isinstance(target, str):
        raise TypeError(f"target must be a str or None, got {type(target).__name__}")
    return _cpu.isa_id(target)


ctypedef struct geom_t:
    int N, C, Cb, H, W, K, Kb, R, S, sh, sw, ph, pw, OH, OW, Hp, Wp
    int rows, cols          # output rows and columns the kernels walk (1 x OH*OW when flat)
    int crem, krem          # channels in the last input / output block (1..16)
    int groups              # batch groups of backward-weights
    int kgroup, kgroups     # output blocks per forward work item (weights fit L2), and groups
    conv_stats_fn tile_stats
    int nmax


cdef inline int _tile_count(int cols, int nmax) noexcept nogil:
    return (cols + nmax - 1) // nmax


cdef inline int _tile_width(int cols, int nmax) noexcept nogil:
    # balanced tiles: 24 columns with nmax 16 become 12+12, not 16+8
    cdef int t = _tile_count(cols, nmax)
    return (cols + t - 1) // t


cdef void _fwd_item(const geom_t *g, int n, int kb0, int kb1, const float *xin, const float *w,
                    const float *bias, float *y, double *stats, const int64_t *aoff,
                    const int64_t *boff, const conv_brgemm16_fn *kern) noexcept nogil:
    # Output blocks kb0..kb1-1 of image n. The block loop is innermost so that a column tile's
    # input (all channels, R rows) is reused from L1 by every output block; the group's weights
    # were sized to stay in L2 (geom_t.kgroup). stats: this image's (Kb, 2, 16) partial sums.
    cdef const float *xn = xin + n * (<int64_t>g.Cb * g.Hp * g.Wp * VLEN)
    cdef int64_t wblk = <int64_t>g.Cb * g.R * g.S * TILE
    cdef int64_t rs = <int64_t>g.R * g.S
    cdef int64_t nfull = (g.Cb - 1) * rs if g.crem < VLEN else g.Cb * rs
    cdef int64_t col_stride = <int64_t>VLEN * g.sw
    cdef int64_t plane = <int64_t>g.OH * g.OW * VLEN
    cdef int width = _tile_width(g.cols, g.nmax)
    cdef int oh, ow0, nb, v, kb
    cdef const float *bbase
    cdef const float *wk
    cdef const float *bk
    cdef float *cout
    if stats != NULL:
        for kb in range(kb0, kb1):
            for v in range(2 * VLEN):
                stats[kb * 2 * VLEN + v] = 0
    for oh in range(g.rows):
        ow0 = 0
        while ow0 < g.cols:
            nb = width if g.cols - ow0 > width else g.cols - ow0
            bbase = xn + (<int64_t>oh * g.sh * g.Wp + <int64_t>ow0 * g.sw) * VLEN
            for kb in range(kb0, kb1):
                wk = w + kb * wblk
                bk = bias + kb * VLEN if bias != NULL else NULL
                cout = y + (<int64_t>n * g.Kb + kb) * plane + (<int64_t>oh * g.OW + ow0) * VLEN
                if nfull > 0:
                    kern[nb](nb, VLEN, nfull, wk, aoff, bbase, boff, 1, col_stride, cout, VLEN, 0, bk)
                if g.crem < VLEN:
                    kern[nb](nb, g.crem, rs, wk, aoff + nfull, bbase, boff + nfull, 1, col_stride,
                             cout, VLEN, 1 if nfull > 0 else 0, bk if nfull == 0 else NULL)
                if stats != NULL:
                    g.tile_stats(cout, nb, stats + kb * 2 * VLEN)
            ow0 += nb


cdef inline void _fwd_group(const geom_t *g, int64_t it, const float *xin, const float *w,
                            const float *bias, float *y, double *stats, const int64_t *aoff,
                            const int64_t *boff, const conv_brgemm16_fn *kern) noexcept nogil:
    cdef int n = <int>(it // g.kgroups)
    cdef int kb0 = <int>(it % g.kgroups) * g.kgroup
    cdef int kb1 = kb0 + g.kgroup if kb0 + g.kgroup < g.Kb else g.Kb
    _fwd_item(g, n, kb0, kb1, xin, w, bias, y,
              stats + <int64_t>n * g.Kb * 2 * VLEN if stats != NULL else NULL, aoff, boff, kern)


cdef void _set_kgroups(geom_t *g) noexcept:
    # ~512 KB of weights per group: half of a 1-2 MB L2, the rest for the input rows
    cdef int64_t per_block = <int64_t>g.Cb * g.R * g.S * TILE * sizeof(float)
    cdef int64_t fit = (512 * 1024) // per_block
    g.kgroup = <int>(1 if fit < 1 else (g.Kb if fit > g.Kb else fit))
    g.kgroups = (g.Kb + g.kgroup - 1) // g.kgroup


cdef void _bwd_data_item(const geom_t *g, int n, int cb, const float *dy, const float *wt,
                         float *dxbuf, float *dx, const int64_t *aoff, const int64_t *boff,
                         int overwrite, const conv_brgemm16_fn *kern) noexcept nogil:
    cdef int64_t plane = <int64_t>g.Hp * g.Wp * VLEN
    cdef float *dxo = dxbuf + (<int64_t>n * g.Cb + cb) * plane
    cdef const float *wtc = wt + <int64_t>cb * g.Kb * g.R * g.S * TILE
    cdef const float *dyn = dy + <int64_t>n * g.Kb * g.OH * g.OW * VLEN
    cdef int64_t nfull = g.Kb - 1 if g.krem < VLEN else g.Kb
    cdef int64_t ldc = <int64_t>VLEN * g.sw
    cdef int width = _tile_width(g.cols, g.nmax)
    cdef int oh, ow0, nb, r, s_, h
    cdef const float *a
    cdef const float *bbase
    cdef float *cout
    cdef float *dst
    cdef int acc
    if not overwrite:
        memset(dxo, 0, plane * sizeof(float))
    acc = 0 if overwrite else 1
    for oh in range(g.rows):
        ow0 = 0
        while ow0 < g.cols:
            nb = width if g.cols - ow0 > width else g.cols - ow0
            bbase = dyn + (<int64_t>oh * g.OW + ow0) * VLEN
            for r in range(g.R):
                for s_ in range(g.S):
                    a = wtc + (r * g.S + s_) * TILE
                    cout = dxo + ((<int64_t>oh * g.sh + r) * g.Wp + <int64_t>ow0 * g.sw + s_) * VLEN
                    if nfull > 0:
                        kern[nb](nb, VLEN, nfull, a, aoff, bbase, boff, 1, VLEN, cout, ldc, acc, NULL)
                    if g.krem < VLEN:
                        kern[nb](nb, g.krem, 1, a, aoff + nfull, bbase, boff + nfull, 1, VLEN,
                                 cout, ldc, 1 if (nfull > 0 or acc) else 0, NULL)
            ow0 += nb
    if dx != NULL:
        # crop the padded gradient into the caller's tensor
        dst = dx + (<int64_t>n * g.Cb + cb) * g.H * g.W * VLEN
        for h in range(g.H):
            memcpy(dst + <int64_t>h * g.W * VLEN, dxo + ((<int64_t>h + g.ph) * g.Wp + g.pw) * VLEN,
                   <size_t>g.W * VLEN * sizeof(float))


cdef void _bwd_weights_item(const geom_t *g, int kb, int cb, int grp, const float *xin,
                            const float *dy, float *dwbuf, const int64_t *aoff, const int64_t *boff,
                            const conv_brgemm16_fn *kern, const conv_brgemm16_fn *kern_taps) noexcept nogil:
    # per image, one batch-reduce call over all output rows for each (r, s, channel tile): the
    # image's dy and x planes stay in L2 across the R*S taps, the accumulators in registers
    cdef int64_t blk = <int64_t>g.R * g.S * TILE
    cdef float *dwb = dwbuf + (<int64_t>grp * g.Kb * g.Cb + <int64_t>kb * g.Cb + cb) * blk
    cdef int cn = g.crem if cb == g.Cb - 1 else VLEN
    cdef int n0 = <int>((<int64_t>g.N * grp) // g.groups)
    cdef int n1 = <int>((<int64_t>g.N * (grp + 1)) // g.groups)
    cdef int64_t bl = <int64_t>VLEN * g.sw
    cdef int width = _tile_width(cn, g.nmax)
    cdef int n, r, s_, c0, nb
    cdef const float *aimg
    cdef const float *ximg
    cdef const float *bbase
    memset(dwb, 0, blk * sizeof(float))
    cdef int taps = _tile_width(g.S, g.nmax)
    for n in range(n0, n1):
        aimg = dy + (<int64_t>n * g.Kb + kb) * g.OH * g.OW * VLEN
        ximg = xin + (<int64_t>n * g.Cb + cb) * g.Hp * g.Wp * VLEN
        if cn < g.S:
            # few input channels (a first layer: 1 or 3): the S taps of a kernel row are the
            # columns instead, so each dy vector feeds S accumulators rather than cn
            for r in range(g.R):
                for c0 in range(cn):
                    s_ = 0
                    while s_ < g.S:
                        nb = taps if g.S - s_ > taps else g.S - s_
                        kern_taps[nb](nb, g.cols, g.rows, aimg, aoff,
                                      ximg + (<int64_t>r * g.Wp + s_) * VLEN + c0, boff, bl, VLEN,
                                      dwb + (r * g.S + s_) * TILE + c0 * VLEN, TILE, 1, NULL)
                        s_ += nb
            continue
        for r in range(g.R):
            for s_ in range(g.S):
                bbase = ximg + (<int64_t>r * g.Wp + s_) * VLEN
                c0 = 0
                while c0 < cn:
                    nb = width if cn - c0 > width else cn - c0
                    kern[nb](nb, g.cols, g.rows, aimg, aoff, bbase + c0, boff, bl, 1,
                             dwb + (r * g.S + s_) * TILE + c0 * VLEN, VLEN, 1, NULL)
                    c0 += nb


cdef void _bias_grad_item(const geom_t *g, int kb, const float *dy, float *db) noexcept nogil:
    cdef double acc[VLEN]
    cdef int64_t plane = <int64_t>g.OH * g.OW
    cdef int64_t i
    cdef int n, v
    cdef const float *p
    for v in range(VLEN):
        acc[v] = 0
    for n in range(g.N):
        p = dy + (<int64_t>n * g.Kb + kb) * plane * VLEN
        for i in range(plane):
            for v in range(VLEN):
                acc[v] += p[i * VLEN + v]
    for v in range(VLEN):
        db[kb * VLEN + v] = <float>acc[v]


cdef void _transpose_item(const geom_t *g, int kb, int cb, const float *w, float *wt,
                         int flip) noexcept nogil:
    # w[kb][cb][r][s][c][k] -> wt[cb][kb][r][s][k][c], or [R-1-r][S-1-s] with flip
    cdef int64_t rs = <int64_t>g.R * g.S
    cdef const float *src = w + (<int64_t>kb * g.Cb + cb) * rs * TILE
    cdef float *dst = wt + (<int64_t>cb * g.Kb + kb) * rs * TILE
    cdef int64_t t, u
    cdef int c, k
    for t in range(rs):
        u = rs - 1 - t if flip else t
        for c in range(VLEN):
            for k in range(VLEN):
                dst[u * TILE + k * VLEN + c] = src[t * TILE + c * VLEN + k]


cdef void _pad_item(const geom_t *g, int n, int cb, const float *x, float *xpad) noexcept nogil:
    cdef const float *src = x + (<int64_t>n * g.Cb + cb) * g.H * g.W * VLEN
    cdef float *dst = xpad + (<int64_t>n * g.Cb + cb) * g.Hp * g.Wp * VLEN
    cdef int h
    for h in range(g.H):
        memcpy(dst + ((<int64_t>h + g.ph) * g.Wp + g.pw) * VLEN, src + <int64_t>h * g.W * VLEN,
               <size_t>g.W * VLEN * sizeof(float))


cdef object _check(object arr, tuple shape, str name, bint writable=False):
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(arr).__name__}")
    if arr.dtype != np.float32:
        raise TypeError(f"{name} must be float32, got {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not arr.flags.aligned:
        raise ValueError(f"{name} is not aligned to its element size")
    if writable and not arr.flags.writeable:
        raise ValueError(f"{name} must be writable")
    return arr


cdef inline float *_fptr(object arr):
    return <float *>cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef class ConvPlan:
    """One convolution shape: ``N`` images of ``C x H x W`` into ``K`` outputs of ``R x S`` taps.

    ``stride`` and ``pad`` are an int or an ``(h, w)`` pair; ``threads`` follows
    :mod:`core.threads` (None: the process setting); ``target`` forces an ISA path
    (``'generic'``/``'avx2'``/``'avx512'``; None: the process's path).
    """
    cdef geom_t g
    cdef geom_t gd          # backward-data of a stride-1 conv as a forward conv (see __init__)
    cdef int isa, nthreads, dual
    # kernels per column tile n, with each pass's column stride folded in
    cdef conv_brgemm16_fn kern_fwd[NMAX_ALL + 1]
    cdef conv_brgemm16_fn kern_bd[NMAX_ALL + 1]
    cdef conv_brgemm16_fn kern_bw[NMAX_ALL + 1]
    cdef object fwd_aoff, fwd_boff, bd_aoff, bd_boff, bw_aoff, bw_boff
    cdef object xpad, dxpad, dypad, wt, dw_partial, stats_partial, last_input
    cdef readonly tuple input_shape, output_shape, weight_shape
    cdef readonly int flat

    def __init__(self, N, C, H, W, K, R, S, stride=1, pad=0, *, threads=None, target=None):
        cdef int sh, sw, ph, pw, i, cb, r, s
        cdef geom_t *g = &self.g
        N, C, H, W, K, R, S = [int_arg(v, name, 1) for v, name in zip((N, C, H, W, K, R, S), "NCHWKRS")]
        sh, sw = pair_arg(stride, "stride", 1)
        pads = pair_arg(pad, "pad")     # Python ints: 2*pad below must not wrap as C int
        ph, pw = pads
        if ph >= R or pw >= S:
            raise ValueError(f"pad {(ph, pw)} must be smaller than the kernel {(R, S)}")
        oh, ow = output_size(H, R, sh, ph), output_size(W, S, sw, pw)
        # the kernels compute these in C int: refuse (naming the sizes) what would wrap
        for v, name in ((H + 2 * pads[0], "H + 2*pad[0]"), (W + 2 * pads[1], "W + 2*pad[1]"),
                        (H + R - 1, "H + R - 1"), (W + S - 1, "W + S - 1"),  # backward-data's dy
                        (oh * ow, "OH*OW (output pixels)"), (R * S * TILE, "R*S*256 (a weight block)")):
            int_arg(v, name, 1)
        self.isa = _isa_of(target)
        self.nthreads = resolve_threads(threads)
        g.N, g.C, g.H, g.W, g.K, g.R, g.S = N, C, H, W, K, R, S
        g.sh, g.sw, g.ph, g.pw = sh, sw, ph, pw
        g.OH, g.OW = oh, ow
        g.Cb, g.Kb = blocks(C), blocks(K)
        g.Hp, g.Wp = H + 2 * ph, W + 2 * pw
        g.crem = C - (g.Cb - 1) * VLEN
        g.krem = K - (g.Kb - 1) * VLEN
        self.flat = int(R == 1 and S == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0)
        if self.flat:
            g.rows, g.cols = 1, g.OH * g.OW
        else:
            g.rows, g.cols = g.OH, g.OW
        # batch groups only when (Kb, Cb) pairs alone cannot feed a few threads; shape-only choice
        g.groups = max(1, min(N, (8 + g.Kb * g.Cb - 1) // (g.Kb * g.Cb)))
        g.nmax = conv_brgemm16_nmax(self.isa)
        g.tile_stats = conv_tile_stats_get(self.isa)
        _set_kgroups(g)
        for i in range(NMAX_ALL + 1):
            self.kern_fwd[i] = conv_brgemm16_get(self.isa, i, VLEN * sw) if 1 <= i <= g.nmax else NULL
            self.kern_bd[i] = conv_brgemm16_get(self.isa, i, VLEN) if 1 <= i <= g.nmax else NULL
            self.kern_bw[i] = conv_brgemm16_get(self.isa, i, 1) if 1 <= i <= g.nmax else NULL
        rs = R * S
        self.fwd_aoff = np.arange(g.Cb * rs, dtype=np.int64) * TILE
        boff = np.empty(g.Cb * rs, np.int64)
        for cb in range(g.Cb):
            for r in range(R):
                for s in range(S):
                    boff[(cb * R + r) * S + s] = ((<int64_t>cb * g.Hp + r) * g.Wp + s) * VLEN
        self.fwd_boff = boff
        self.bw_aoff = np.arange(g.rows, dtype=np.int64) * (<int64_t>g.OW * VLEN)
        self.bw_boff = np.arange(g.rows, dtype=np.int64) * (<int64_t>g.sh * g.Wp * VLEN)
        # Stride 1 (not 1x1): dx is a forward convolution of dy, padded by (R-1-ph, S-1-pw), with
        # the spatially flipped, transposed weights -- the gather form computes each dx tile once
        # in registers. It multiplies every dx pixel by all R*S taps, also where dy's padding is
        # zero: for "valid" convolutions of small images (LeNet: 12x12 -> 8x8 with 5x5) that is
        # (H*W)/(OH*OW) = 2.25 times the work, and the scatter form wins. Other strides scatter
        # every tap into a zeroed dx (any stride works).
        self.dual = int(sh == 1 and sw == 1 and not self.flat and 4 * H * W <= 5 * g.OH * g.OW)
        self.dypad = None
        if self.dual:
            gd = &self.gd
            gd.N, gd.C, gd.H, gd.W, gd.K, gd.R, gd.S = N, K, g.OH, g.OW, C, R, S
            gd.sh, gd.sw, gd.ph, gd.pw = 1, 1, R - 1 - ph, S - 1 - pw
            gd.OH, gd.OW, gd.Cb, gd.Kb = H, W, g.Kb, g.Cb
            gd.Hp, gd.Wp = g.OH + 2 * gd.ph, g.OW + 2 * gd.pw
            gd.rows, gd.cols = H, W
            gd.crem, gd.krem = g.krem, g.crem
            gd.groups, gd.nmax = 1, g.nmax
            gd.tile_stats = g.tile_stats
            _set_kgroups(gd)
            self.bd_aoff = np.arange(g.Kb * rs, dtype=np.int64) * TILE
            boff = np.empty(g.Kb * rs, np.int64)
            for cb in range(g.Kb):
                for r in range(R):
                    for s in range(S):
                        boff[(cb * R + r) * S + s] = ((<int64_t>cb * gd.Hp + r) * gd.Wp + s) * VLEN
            self.bd_boff = boff
            if gd.ph or gd.pw:
                self.dypad = np.zeros((N, g.Kb, gd.Hp, gd.Wp, VLEN), np.float32)
        else:
            self.bd_aoff = np.arange(g.Kb, dtype=np.int64) * (rs * TILE)
            self.bd_boff = np.arange(g.Kb, dtype=np.int64) * (<int64_t>g.OH * g.OW * VLEN)
        self.input_shape = (N, g.Cb, H, W, VLEN)
        self.output_shape = (N, g.Kb, g.OH, g.OW, VLEN)
        self.weight_shape = (g.Kb, g.Cb, R, S, VLEN, VLEN)
        padded = (N, g.Cb, g.Hp, g.Wp, VLEN)
        self.xpad = np.zeros(padded, np.float32) if (ph or pw) else None
        self.dxpad = np.zeros(padded, np.float32) if (ph or pw) and not self.dual else None
        self.wt = np.empty((g.Cb, g.Kb, R, S, VLEN, VLEN), np.float32)
        self.dw_partial = (np.empty((g.groups,) + self.weight_shape, np.float32)
                           if g.groups > 1 else None)
        self.stats_partial = np.empty((N, g.Kb, 2, VLEN), np.float64)
        self.last_input = None

    @property
    def target(self):
        return _cpu.ISA_NAMES[self.isa]

    @property
    def threads(self):
        return self.nthreads

    @property
    def geometry(self):
        g = self.g
        return {"N": g.N, "C": g.C, "H": g.H, "W": g.W, "K": g.K, "R": g.R, "S": g.S,
                "stride": (g.sh, g.sw), "pad": (g.ph, g.pw), "OH": g.OH, "OW": g.OW,
                "groups": g.groups, "nmax": g.nmax, "flat": bool(self.flat),
                "backward_data": "gather" if self.dual else "scatter"}

    def flops(self):
        """Multiply-adds x 2 of one pass (forward, backward-data and backward-weights each)."""
        g = self.g
        return 2.0 * g.N * g.K * g.C * g.R * g.S * g.OH * g.OW

    def forward(self, x, w, y, bias=None, stats=None):
        """``y = conv(x, w) + bias``; with ``stats`` (float64 ``(2, Kb*16)``), also the
        per-channel sum and sum of squares of ``y`` over images and pixels."""
        cdef geom_t *g = &self.g
        _check(x, self.input_shape, "x")
        _check(w, self.weight_shape, "w")
        _check(y, self.output_shape, "y", True)
        cdef const float *bp = NULL
        if bias is not None:
            _check(bias, (g.Kb * VLEN,), "bias")
            bp = _fptr(bias)
        no_overlap(y, "y", x=x, w=w, bias=bias)
        cdef double *sp = NULL
        if stats is not None:
            if not isinstance(stats, np.ndarray) or stats.dtype != np.float64 or \
                    stats.shape != (2, g.Kb * VLEN) or not stats.flags.c_contiguous:
                raise ValueError(f"stats must be a C-contiguous float64 array of shape {(2, g.Kb * VLEN)}")
            if not stats.flags.writeable:
                raise ValueError("stats must be writable")
            sp = <double *>cnp.PyArray_DATA(<cnp.ndarray>self.stats_partial)
        cdef const float *xp = _fptr(x)
        cdef float *xin = <float *>xp
        cdef int64_t items, it
        cdef int nt
        if self.xpad is not None:
            xin = _fptr(self.xpad)
            items = <int64_t>g.N * g.Cb
            nt = threads_for_work(self.nthreads, items, 1)
            with nogil:
                for it in prange(items, schedule="static", num_threads=nt):
                    _pad_item(g, <int>(it // g.Cb), <int>(it % g.Cb), xp, xin)
        else:
            self.last_input = x
        cdef const float *wp = _fptr(w)
        cdef float *yp = _fptr(y)
        cdef const int64_t *aoff = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>self.fwd_aoff)
        cdef const int64_t *boff = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>self.fwd_boff)
        items = <int64_t>g.N * g.kgroups
        nt = threads_for_work(self.nthreads, items, 1)
        with nogil:
            for it in prange(items, schedule="static", num_threads=nt):
                _fwd_group(g, it, xin, wp, bp, yp, sp, aoff, boff, self.kern_fwd)
        if stats is not None:
            stats[...] = self.stats_partial.sum(axis=0).transpose(1, 0, 2).reshape(2, g.Kb * VLEN)
        return y

    def backward_data(self, dy, w, dx):
        """``dx`` = gradient of the input given ``dy`` (overwrites ``dx``)."""
        cdef geom_t *g = &self.g
        _check(dy, self.output_shape, "dy")
        _check(w, self.weight_shape, "w")
        _check(dx, self.input_shape, "dx", True)
        no_overlap(dx, "dx", dy=dy, w=w)
        cdef const float *wp = _fptr(w)
        cdef float *wtp = _fptr(self.wt)
        cdef int64_t items = <int64_t>g.Kb * g.Cb, it
        cdef int nt = threads_for_work(self.nthreads, items, 1)
        cdef int flip = self.dual
        with nogil:
            for it in prange(items, schedule="static", num_threads=nt):
                _transpose_item(g, <int>(it // g.Cb), <int>(it % g.Cb), wp, wtp, flip)
        cdef float *dxp = _fptr(dx)
        cdef float *buf = dxp
        cdef float *crop = NULL
        cdef const float *dyp = _fptr(dy)
        cdef const int64_t *aoff = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>self.bd_aoff)
        cdef const int64_t *boff = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>self.bd_boff)
        cdef int overwrite = self.flat
        cdef geom_t *gd = &self.gd
        cdef float *dyin = <float *>dyp
        if self.dual:
            if self.dypad is not None:
                dyin = _fptr(self.dypad)
                items = <int64_t>g.N * g.Kb
                nt = threads_for_work(self.nthreads, items, 1)
                with nogil:
                    for it in prange(items, schedule="static", num_threads=nt):
                        _pad_item(gd, <int>(it // g.Kb), <int>(it % g.Kb), dyp, dyin)
            items = <int64_t>g.N * gd.kgroups
            nt = threads_for_work(self.nthreads, items, 1)
            with nogil:
                for it in prange(items, schedule="static", num_threads=nt):
                    _fwd_group(gd, it, dyin, wtp, NULL, dxp, NULL, aoff, boff, self.kern_bd)
            return dx
        if self.dxpad is not None:
            buf = _fptr(self.dxpad)
            crop = dxp
        items = <int64_t>g.N * g.Cb
        nt = threads_for_work(self.nthreads, items, 1)
        with nogil:
            for it in prange(items, schedule="static", num_threads=nt):
                _bwd_data_item(g, <int>(it // g.Cb), <int>(it % g.Cb), dyp, wtp, buf, crop,
                               aoff, boff, overwrite, self.kern_bd)
        return dx

    def backward_weights(self, dy, dw, dbias=None, x=None):
        """``dw`` (and ``dbias``) = gradients of the weights given ``dy`` and the input of the
        last :meth:`forward` (or ``x``, when given). Overwrites them."""
        cdef geom_t *g = &self.g
        _check(dy, self.output_shape, "dy")
        _check(dw, self.weight_shape, "dw", True)
        if dbias is not None:
            _check(dbias, (g.Kb * VLEN,), "dbias", True)
            no_overlap(dbias, "dbias", dy=dy, x=x, dw=dw)
        if x is not None:
            _check(x, self.input_shape, "x")
        no_overlap(dw, "dw", dy=dy, x=x)
        cdef const float *xin
        cdef const float *xp
        cdef float *dbp
        cdef int64_t items, it
        cdef int nt
        if x is not None:
            if self.xpad is not None:
                xin = _fptr(self.xpad)
                xp = _fptr(x)
                items = <int64_t>g.N * g.Cb
                nt = threads_for_work(self.nthreads, items, 1)
                with nogil:
                    for it in prange(items, schedule="static", num_threads=nt):
                        _pad_item(g, <int>(it // g.Cb), <int>(it % g.Cb), xp, <float *>xin)
            else:
                xin = _fptr(x)
        elif self.xpad is not None:
            xin = _fptr(self.xpad)
        elif self.last_input is not None:
            xin = _fptr(self.last_input)
        else:
            raise ValueError("backward_weights needs x, or a forward call before it")
        cdef const float *dyp = _fptr(dy)
        cdef float *dwp = _fptr(dw)
        cdef float *target = dwp if g.groups == 1 else _fptr(self.dw_partial)
        cdef const int64_t *aoff = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>self.bw_aoff)
        cdef const int64_t *boff = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>self.bw_boff)
        items = <int64_t>g.Kb * g.Cb * g.groups
        nt = threads_for_work(self.nthreads, items, 1)
        with nogil:
            for it in prange(items, schedule="static", num_threads=nt):
                _bwd_weights_item(g, <int>((it // g.groups) // g.Cb), <int>((it // g.groups) % g.Cb),
                                  <int>(it % g.groups), xin, dyp, target, aoff, boff, self.kern_bw,
                                  self.kern_bd)
        if g.groups > 1:
            np.sum(self.dw_partial, axis=0, out=dw)
        if dbias is not None:
            dbp = _fptr(dbias)
            items = g.Kb
            nt = threads_for_work(self.nthreads, items, 1)
            with nogil:
                for it in prange(items, schedule="static", num_threads=nt):
                    _bias_grad_item(g, <int>it, dyp, dbp)
        return dw


def brgemm16(a, aoff, b, boff, bl, bj, c, ldc, *, n, k, accumulate=False, bias=None, target=None):
    """Run one micro-kernel call from Python (tests of the kernel contract, conv_kernels.h).

    ``a``, ``b``, ``c`` are flat float32 arrays; ``aoff``/``boff`` integer element offsets. Bounds
    are checked here (in Python integers, so no offset can wrap) so that a bad call is a
    ValueError, not a crash.
    """
    cdef int isa = _isa_of(target)
    n = int_arg(n, "n", 1, conv_brgemm16_nmax(isa))
    k = int_arg(k, "k", 0)
    bl, bj = int_arg(bl, "bl", 0, 2**62), int_arg(bj, "bj", 0, 2**62)
    ldc = int_arg(ldc, "ldc", VLEN, 2**62)
    for arr, name in ((a, "a"), (b, "b"), (c, "c")):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.float32 or arr.ndim != 1 or \
                not arr.flags.c_contiguous or not arr.flags.aligned:
            raise TypeError(f"{name} must be a contiguous, aligned 1-D float32 array")
    if not c.flags.writeable:
        raise ValueError("c must be writable")
    cdef const float *biasp = NULL
    if bias is not None:
        _check(bias, (VLEN,), "bias")
        biasp = _fptr(bias)
    no_overlap(c, "c", a=a, b=b, bias=bias)
    offs = []
    for arr, name in ((aoff, "aoff"), (boff, "boff")):
        arr = np.asarray(arr)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer offsets, got {arr.dtype}")
        offs.append(np.require(arr, np.int64, ["C", "A"]))    # contiguous, aligned int64 for C
    aoff, boff = offs
    if aoff.shape != boff.shape or aoff.ndim != 1:
        raise ValueError("aoff and boff must be 1-D and of equal length")
    count = aoff.shape[0]
    # footprints in Python ints (no wrap): A_p spans 16*k floats, B_p reaches (k-1)*bl + (n-1)*bj
    if count:
        if int(aoff.min()) < 0 or int(aoff.max()) > a.shape[0] - 16 * k:
            raise ValueError(f"aoff points outside a (offsets must be in [0, {a.shape[0]} - 16*k])")
        last = (k - 1) * bl + (n - 1) * bj if k else -1
        if int(boff.min()) < 0 or int(boff.max()) > b.shape[0] - 1 - last:
            raise ValueError(f"boff points outside b (offsets + (k-1)*bl + (n-1)*bj must be < {b.shape[0]})")
    if (n - 1) * ldc + VLEN > c.shape[0]:
        raise ValueError(f"c is too small for n columns at ldc: needs (n-1)*ldc + 16 = "
                         f"{(n - 1) * ldc + VLEN} floats, has {c.shape[0]}")
    cdef conv_brgemm16_fn fn = conv_brgemm16_get(isa, n, bj)
    cdef int acc = 1 if accumulate else 0
    cdef int64_t cnt = count
    cdef const float *ap = _fptr(a)
    cdef const float *bp = _fptr(b)
    cdef float *cp = _fptr(c)
    cdef const int64_t *ao = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>aoff)
    cdef const int64_t *bo = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>boff)
    cdef int cn = n, ck = k
    cdef int64_t cbl = bl, cbj = bj, cldc = ldc
    with nogil:
        fn(cn, ck, cnt, ap, ao, bp, bo, cbl, cbj, cp, cldc, acc, biasp)
    return c
