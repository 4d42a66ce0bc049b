# cython: language_level=3
"""Deep-learning layer kernels beside the convolution (core.conv), f32, nogil, OpenMP.

Spatial tensors use the channel-blocked layout of :mod:`core.conv` -- ``(N, Cb, H, W, 16)``
with zero in the channels past ``C`` -- and every kernel here keeps those padded channels at
zero. Flat tensors are ``(N, K)`` row-major. Each function validates its arguments in Python
(a ``TypeError``/``ValueError`` naming the argument) and then runs one nogil region.

Reductions (batch-norm statistics, bias gradients, loss) run in a fixed order over fixed work
items, so results do not depend on the thread count.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport exp, log, sqrt, INFINITY
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memset, memcpy

from core.threads cimport resolve_threads, threads_for_work
from core import cpu as _cpu
from core._args import int_arg, pair_arg, no_overlap, real_arg, flag_arg, dims_arg
from scipy.linalg.cython_blas cimport sgemm

cdef extern from "dnn_kernels.h" nogil:
    ctypedef struct dnn_pool_geom:
        int H, W, OH, OW, kh, kw, sh, sw, ph, pw
    ctypedef void (*dnn_maxpool_fn)(const dnn_pool_geom *g, const float *x, float *y, int32_t *argmax)
    ctypedef void (*dnn_avgpool_fn)(const dnn_pool_geom *g, const float *x, float *y)
    dnn_maxpool_fn dnn_maxpool_get(int isa)
    dnn_avgpool_fn dnn_avgpool_get(int isa)
    ctypedef void (*dnn_relu_fn)(const float *x, const float *g, float *y, int64_t n, float slope)
    dnn_relu_fn dnn_relu_get(int isa)

cnp.import_array()

cdef enum:
    VLEN = 16
    GRAIN = 16384       # elements per thread below which a second thread is not woken

MAX_POOL = 0
AVE_POOL = 1


# ----------------------------------------------------------------------------- argument checks

cdef object _f32(object arr, str name, object shape=None, bint writable=False):
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(arr).__name__}")
    if arr.dtype != np.float32:
        raise TypeError(f"{name} must be float32, got {arr.dtype}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not arr.flags.aligned:
        raise ValueError(f"{name} is not aligned to its element size")
    if writable and not arr.flags.writeable:
        raise ValueError(f"{name} must be writable")
    return arr


cdef object _f64(object arr, str name, object shape, bint writable=False):
    if not isinstance(arr, np.ndarray) or arr.dtype != np.float64 or arr.shape != tuple(shape) \
            or not arr.flags.c_contiguous or not arr.flags.aligned:
        raise ValueError(f"{name} must be a C-contiguous, aligned float64 array of shape {tuple(shape)}")
    if writable and not arr.flags.writeable:
        raise ValueError(f"{name} must be writable")
    return arr


cdef object _blocked(object arr, str name, bint writable=False):
    _f32(arr, name, None, writable)
    if arr.ndim != 5 or arr.shape[4] != VLEN:
        raise ValueError(f"{name} must be channel-blocked (N, Cb, H, W, 16), got shape {arr.shape}")
    dims_arg(arr, name, (0, 1, 2, 3), {1: VLEN})   # N, Cb*16, H, W are C ints in the kernels
    return arr


cdef inline float *_fp(object arr):
    return <float *>cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef inline double *_dp(object arr):
    return <double *>cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef inline int _nt(object threads, int64_t work) except -1:
    return threads_for_work(resolve_threads(threads), work, GRAIN)


def _in_place_or_apart(out, out_name, **inputs):
    """For kernels that read each input element before writing the same element of ``out``:
    ``out`` may be an input itself (in place: same data pointer, dtype and shape) but must not
    overlap one any other way (a shifted view would read elements already overwritten)."""
    for name, arr in inputs.items():
        if arr is not None and not (arr.dtype == out.dtype and arr.shape == out.shape and
                                    cnp.PyArray_DATA(<cnp.ndarray>arr) == cnp.PyArray_DATA(<cnp.ndarray>out)):
            no_overlap(out, out_name, **{name: arr})


# ----------------------------------------------------------------------------- elementwise

cdef int _relu(x, g, y, float slope, object threads, object target) except -1:
    cdef dnn_relu_fn fn = dnn_relu_get(_isa_of(target))
    cdef const float *xp = _fp(x)
    cdef const float *gp = _fp(g) if g is not None else NULL
    cdef float *yp = _fp(y)
    cdef int64_t n = x.size, chunks = (n + GRAIN - 1) // GRAIN, c, lo, hi
    cdef int nt = _nt(threads, n)
    with nogil:
        for c in prange(chunks, schedule="static", num_threads=nt):
            lo = c * GRAIN
            hi = lo + GRAIN if lo + GRAIN < n else n
            fn(xp + lo, (gp + lo) if gp != NULL else NULL, yp + lo, hi - lo, slope)
    return 0


def relu_forward(x, y, negative_slope=0.0, threads=None, target=None):
    """``y = x`` where ``x > 0``, else ``negative_slope * x``."""
    negative_slope = real_arg(negative_slope, "negative_slope")
    _f32(x, "x")
    _f32(y, "y", x.shape, True)
    _in_place_or_apart(y, "y", x=x)
    _relu(x, None, y, negative_slope, threads, target)
    return y


def relu_backward(x, dy, dx, negative_slope=0.0, threads=None, target=None):
    """``dx = dy`` where ``x > 0``, else ``negative_slope * dy``."""
    negative_slope = real_arg(negative_slope, "negative_slope")
    _f32(x, "x")
    _f32(dy, "dy", x.shape)
    _f32(dx, "dx", x.shape, True)
    _in_place_or_apart(dx, "dx", x=x, dy=dy)
    _relu(x, dy, dx, negative_slope, threads, target)
    return dx


def axpby(alpha, x, beta, y, threads=None):
    """``y = alpha * x + beta * y`` (``beta == 0``: y is not read)."""
    cdef float fa = real_arg(alpha, "alpha"), fb = real_arg(beta, "beta")
    _f32(x, "x")
    _f32(y, "y", x.shape, True)
    _in_place_or_apart(y, "y", x=x)
    cdef float *xp = _fp(x)
    cdef float *yp = _fp(y)
    cdef int64_t n = x.size, i
    cdef int nt = _nt(threads, n)
    with nogil:
        if fb == 0:
            for i in prange(n, schedule="static", num_threads=nt):
                yp[i] = fa * xp[i]
        else:
            for i in prange(n, schedule="static", num_threads=nt):
                yp[i] = fa * xp[i] + fb * yp[i]
    return y


cdef inline uint64_t _mix64(uint64_t z) noexcept nogil:
    # splitmix64 finaliser: a counter-based generator, so a dropout mask is a pure function of
    # (seed, sample, element) and does not depend on how the batch is split across ranks
    z = (z ^ (z >> 30)) * <uint64_t>0xbf58476d1ce4e5b9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94d049bb133111ebULL
    return z ^ (z >> 31)


def dropout_forward(x, y, mask, ratio, seed, first_sample, threads=None):
    """Inverted dropout: ``mask = (u >= ratio) / (1 - ratio)``, ``y = x * mask``.

    ``u`` is uniform in [0, 1), drawn from (seed, first_sample + n, element index within the
    sample): the same sample gets the same mask however the minibatch is sharded. ``seed`` is
    in [0, 2**64), ``first_sample`` any int64 (sample numbers wrap modulo 2**64). ``y`` may be
    ``x`` (in place); ``mask`` must be apart from both.
    """
    cdef float fr = real_arg(ratio, "ratio")
    _f32(x, "x")
    _f32(y, "y", x.shape, True)
    _f32(mask, "mask", x.shape, True)
    _in_place_or_apart(y, "y", x=x)
    no_overlap(mask, "mask", x=x, y=y)
    if not 0.0 <= fr < 1.0:
        raise ValueError(f"ratio must be in [0, 1), got {fr}")
    cdef uint64_t useed = int_arg(seed, "seed", 0, 2**64 - 1)
    # unsigned: first_sample + n wraps (defined) instead of overflowing int64 (undefined)
    cdef uint64_t ufirst = <uint64_t>(<int64_t>int_arg(first_sample, "first_sample", -2**63, 2**63 - 1))
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError("x must have a batch dimension")
    cdef int64_t N = x.shape[0], per = x.size // x.shape[0], total = x.size, i
    cdef float *xp = _fp(x)
    cdef float *yp = _fp(y)
    cdef float *mp = _fp(mask)
    cdef float keep = 1.0 / (1.0 - fr)
    cdef uint64_t threshold = <uint64_t>(<double>fr * 16777216.0)
    cdef uint64_t u, sample
    cdef int nt = _nt(threads, total)
    with nogil:
        for i in prange(total, schedule="static", num_threads=nt):
            sample = ufirst + <uint64_t>(i // per)
            u = _mix64(_mix64(useed * <uint64_t>0x9e3779b97f4a7c15ULL + sample) + <uint64_t>(i % per)) >> 40
            mp[i] = keep if u >= threshold else 0.0
            yp[i] = xp[i] * mp[i]
    return y


def multiply(a, b, out, threads=None):
    """``out = a * b`` elementwise (dropout backward: ``dx = dy * mask``)."""
    _f32(a, "a")
    _f32(b, "b", a.shape)
    _f32(out, "out", a.shape, True)
    _in_place_or_apart(out, "out", a=a, b=b)
    cdef float *ap = _fp(a)
    cdef float *bp = _fp(b)
    cdef float *op = _fp(out)
    cdef int64_t n = a.size, i
    cdef int nt = _nt(threads, n)
    with nogil:
        for i in prange(n, schedule="static", num_threads=nt):
            op[i] = ap[i] * bp[i]
    return out


# ----------------------------------------------------------------------------- pooling

def pool_output_size(size, kernel, stride, pad):
    """Caffe's pooled extent: ceil mode, and the last window must start inside the input."""
    size, kernel = int_arg(size, "size"), int_arg(kernel, "kernel", 1)
    stride, pad = int_arg(stride, "stride", 1), int_arg(pad, "pad")
    if kernel < 1 or stride < 1 or pad < 0:
        raise ValueError(f"need kernel >= 1, stride >= 1, pad >= 0 (got {kernel}, {stride}, {pad})")
    if pad >= kernel:
        raise ValueError(f"pad {pad} must be smaller than the pooling kernel {kernel}")
    cdef int64_t s = size, k = kernel, st = stride, pd = pad  # no int overflow near 2**31
    if s + 2 * pd < k:
        raise ValueError(f"pooling kernel {kernel} does not fit an input of size {size} (pad {pad})")
    cdef int64_t out = (s + 2 * pd - k + st - 1) // st + 1
    if pd > 0 and (out - 1) * st >= s + pd:
        out -= 1
    return out


ctypedef struct pool_t:
    int N, Cb, H, W, OH, OW, kh, kw, sh, sw, ph, pw


cdef int64_t _maxpool_back_item(const pool_t *p, int64_t it, const float *dy, const int32_t *arg,
                                float *dx) noexcept nogil:
    # Scatters dy into the plane at argmax; an entry outside [0, H*W) is skipped and counted (one
    # unsigned compare per element, predicted taken: the caller raises on a nonzero count).
    cdef int64_t hw = <int64_t>p.H * p.W
    cdef float *di = dx + it * hw * VLEN
    cdef const float *dyo = dy + it * p.OH * p.OW * VLEN
    cdef const int32_t *ao = arg + it * p.OH * p.OW * VLEN
    cdef int64_t o, bad = 0
    cdef uint32_t j, limit = <uint32_t>hw     # hw <= INT32_MAX (_pool_geom)
    cdef int v
    memset(di, 0, <size_t>hw * VLEN * sizeof(float))
    for o in range(<int64_t>p.OH * p.OW):
        for v in range(VLEN):
            j = <uint32_t>ao[o * VLEN + v]      # negative entries become >= 2**31: out of range too
            if j < limit:
                di[<int64_t>j * VLEN + v] += dyo[o * VLEN + v]
            else:
                bad += 1
    return bad


cdef inline void _avg_window(const pool_t *p, int oh, int ow, int *hs, int *he, int *ws, int *we,
                             float *inv) noexcept nogil:
    # Caffe: the divisor counts the window clipped to the padded input, padding included
    cdef int h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw
    cdef int h1 = h0 + p.kh if h0 + p.kh < p.H + p.ph else p.H + p.ph
    cdef int w1 = w0 + p.kw if w0 + p.kw < p.W + p.pw else p.W + p.pw
    inv[0] = 1.0 / ((h1 - h0) * (w1 - w0))
    hs[0] = h0 if h0 > 0 else 0
    ws[0] = w0 if w0 > 0 else 0
    he[0] = h1 if h1 < p.H else p.H
    we[0] = w1 if w1 < p.W else p.W


cdef void _avgpool_back_item(const pool_t *p, int64_t it, const float *dy, float *dx) noexcept nogil:
    cdef float *di = dx + it * p.H * p.W * VLEN
    cdef const float *dyo = dy + it * p.OH * p.OW * VLEN
    cdef int oh, ow, h, w, hs, ws, he, we, v
    cdef float inv
    memset(di, 0, <size_t>p.H * p.W * VLEN * sizeof(float))
    for oh in range(p.OH):
        for ow in range(p.OW):
            _avg_window(p, oh, ow, &hs, &he, &ws, &we, &inv)
            for h in range(hs, he):
                for w in range(ws, we):
                    for v in range(VLEN):
                        di[(<int64_t>h * p.W + w) * VLEN + v] += dyo[(<int64_t>oh * p.OW + ow) * VLEN + v] * inv


cdef pool_t _pool_geom(object x, object y, object kernel, object stride, object pad, str xname,
                       str yname, bint x_out):
    """The pooling of input x into y; x_out: x is the output (backward: dx from dy)."""
    cdef pool_t p
    _blocked(x, xname, x_out)
    p.N, p.Cb, p.H, p.W = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    p.kh, p.kw = pair_arg(kernel, "kernel", 1)
    p.sh, p.sw = pair_arg(stride, "stride", 1)
    p.ph, p.pw = pair_arg(pad, "pad")
    oh, ow = pool_output_size(p.H, p.kh, p.sh, p.ph), pool_output_size(p.W, p.kw, p.sw, p.pw)
    # argmax holds h*W + w as int32 and the kernels index planes with int: planes must fit
    int_arg(<int64_t>p.H * p.W, f"{xname} plane H*W", 1)
    p.OH, p.OW = int_arg(oh, "OH"), int_arg(ow, "OW")
    int_arg(oh * ow, f"{yname} plane OH*OW", 1)
    _f32(y, yname, (p.N, p.Cb, p.OH, p.OW, VLEN), not x_out)
    if x_out:
        no_overlap(x, xname, **{yname: y})
    else:
        no_overlap(y, yname, **{xname: x})
    return p


cdef int32_t *_argmax(object argmax, object like, str like_name, bint writable) except NULL:
    if not isinstance(argmax, np.ndarray) or argmax.dtype != np.int32 or argmax.shape != like.shape \
            or not argmax.flags.c_contiguous or not argmax.flags.aligned:
        raise ValueError(f"argmax must be a C-contiguous, aligned int32 array of shape {like.shape} "
                         f"(as {like_name})")
    if writable and not argmax.flags.writeable:
        raise ValueError("argmax must be writable")
    return <int32_t *>cnp.PyArray_DATA(<cnp.ndarray>argmax)


cdef int _pool_mode(object mode) except -1:
    if int_arg(mode, "mode", -2**63, 2**63) not in (MAX_POOL, AVE_POOL):
        raise ValueError(f"mode must be MAX_POOL or AVE_POOL, got {mode}")
    return mode


cdef int _isa_of(object target) except -1:
    if target is None:
        return _cpu.target_id()
    if not isinstance(target, str):
        raise TypeError(f"target must be a str or None, got {type(target).__name__}")
    return _cpu.isa_id(target)


def pool_forward(x, y, mode, kernel, stride, pad, argmax=None, threads=None, target=None):
    """Max (``mode=MAX_POOL``, fills int32 ``argmax`` shaped like ``y``) or average pooling.
    ``kernel``, ``stride``, ``pad`` are each an int (the same for height and width: a square
    window) or an (h, w) pair; ``target`` forces an ISA path."""
    mode = _pool_mode(mode)
    cdef pool_t p = _pool_geom(x, y, kernel, stride, pad, "x", "y", False)
    cdef dnn_pool_geom g
    g.H, g.W, g.OH, g.OW = p.H, p.W, p.OH, p.OW
    g.kh, g.kw, g.sh, g.sw, g.ph, g.pw = p.kh, p.kw, p.sh, p.sw, p.ph, p.pw
    cdef int isa = _isa_of(target)
    cdef dnn_maxpool_fn maxpool = dnn_maxpool_get(isa)
    cdef dnn_avgpool_fn avgpool = dnn_avgpool_get(isa)
    cdef float *xp = _fp(x)
    cdef float *yp = _fp(y)
    cdef int32_t *ap = NULL
    cdef int64_t items = <int64_t>p.N * p.Cb, it
    cdef int64_t xplane = <int64_t>p.H * p.W * VLEN, yplane = <int64_t>p.OH * p.OW * VLEN
    cdef int nt = threads_for_work(resolve_threads(threads), items, 1)
    if mode == MAX_POOL:
        ap = _argmax(argmax, y, "y", True)
        no_overlap(argmax, "argmax", x=x, y=y)
        with nogil:
            for it in prange(items, schedule="static", num_threads=nt):
                maxpool(&g, xp + it * xplane, yp + it * yplane, ap + it * yplane)
    else:
        with nogil:
            for it in prange(items, schedule="static", num_threads=nt):
                avgpool(&g, xp + it * xplane, yp + it * yplane)
    return y


def pool_backward(dy, dx, mode, kernel, stride, pad, argmax=None, threads=None):
    """Gradient of :func:`pool_forward` (overwrites ``dx``; MAX_POOL takes the forward pass's
    ``argmax``, whose entries must index the input plane: 0 <= argmax < H*W). An entry outside
    it is skipped and the call raises ValueError afterwards (checked in the kernel loop, which
    costs one compare per element); ``dx`` then holds no meaningful gradient. ``kernel``,
    ``stride``, ``pad``: as :func:`pool_forward`."""
    mode = _pool_mode(mode)
    cdef pool_t p = _pool_geom(dx, dy, kernel, stride, pad, "dx", "dy", True)
    cdef float *dyp = _fp(dy)
    cdef float *dxp = _fp(dx)
    cdef int32_t *ap = NULL
    cdef int64_t items = <int64_t>p.N * p.Cb, it
    cdef int nt = threads_for_work(resolve_threads(threads), items, 1)
    cdef int64_t bad = 0
    if mode == MAX_POOL:
        ap = _argmax(argmax, dy, "dy", False)
        no_overlap(dx, "dx", argmax=argmax)
        with nogil:
            for it in prange(items, schedule="static", num_threads=nt):
                bad += _maxpool_back_item(&p, it, dyp, ap, dxp)
        if bad:
            raise ValueError(f"argmax holds positions outside the {p.H}x{p.W} input plane ({bad} "
                             f"entries, range [{argmax.min()}, {argmax.max()}], valid [0, {p.H * p.W})); "
                             f"dx holds no meaningful gradient")
    else:
        with nogil:
            for it in prange(items, schedule="static", num_threads=nt):
                _avgpool_back_item(&p, it, dyp, dxp)
    return dx


# ----------------------------------------------------------------------------- batch norm

cdef void _stats_item(int cb, int N, int Cb, int64_t plane, const float *x, double *out) noexcept nogil:
    cdef double s[VLEN]
    cdef double q[VLEN]
    cdef int n, v
    cdef int64_t i
    cdef const float *p
    cdef double t
    for v in range(VLEN):
        s[v] = 0
        q[v] = 0
    for n in range(N):
        p = x + (<int64_t>n * Cb + cb) * plane * VLEN
        for i in range(plane):
            for v in range(VLEN):
                t = p[i * VLEN + v]
                s[v] += t
                q[v] += t * t
    for v in range(VLEN):
        out[cb * VLEN + v] = s[v]
        out[Cb * VLEN + cb * VLEN + v] = q[v]


def channel_stats(x, stats, threads=None):
    """Per channel of a blocked tensor: ``stats[0]`` = sum, ``stats[1]`` = sum of squares
    (float64 ``(2, Cb*16)``) over images and pixels."""
    _blocked(x, "x")
    cdef int N = x.shape[0], Cb = x.shape[1]
    cdef int64_t plane = <int64_t>x.shape[2] * x.shape[3]
    _f64(stats, "stats", (2, Cb * VLEN), True)
    no_overlap(stats, "stats", x=x)
    cdef float *xp = _fp(x)
    cdef double *sp = _dp(stats)
    cdef int it
    cdef int nt = threads_for_work(resolve_threads(threads), Cb, 1)
    with nogil:
        for it in prange(Cb, schedule="static", num_threads=nt):
            _stats_item(it, N, Cb, plane, xp, sp)
    return stats


def channel_affine(x, scale, shift, y, residual=None, relu=False, threads=None):
    """``y = x * scale[c] + shift[c] (+ residual) (then max(., 0))`` on a blocked tensor --
    batch-norm apply, fused with the eltwise sum and the ReLU that follow it."""
    cdef bint frelu = flag_arg(relu, "relu")
    _blocked(x, "x")
    _f32(y, "y", x.shape, True)
    cdef int Cb = x.shape[1]
    _f32(scale, "scale", (Cb * VLEN,))
    _f32(shift, "shift", (Cb * VLEN,))
    cdef float *rp = NULL
    if residual is not None:
        _f32(residual, "residual", x.shape)
        rp = _fp(residual)
    _in_place_or_apart(y, "y", x=x, residual=residual)
    no_overlap(y, "y", scale=scale, shift=shift)
    cdef float *xp = _fp(x)
    cdef float *yp = _fp(y)
    cdef float *a = _fp(scale)
    cdef float *b = _fp(shift)
    cdef int64_t plane = <int64_t>x.shape[2] * x.shape[3]
    cdef int64_t rows = <int64_t>x.shape[0] * Cb, it, i, base
    cdef int v, cb
    cdef float t
    cdef int nt = _nt(threads, x.size)
    with nogil:
        for it in prange(rows, schedule="static", num_threads=nt):
            cb = <int>(it % Cb)
            base = it * plane * VLEN
            for i in range(plane):
                for v in range(VLEN):
                    t = xp[base + i * VLEN + v] * a[cb * VLEN + v] + b[cb * VLEN + v]
                    if rp != NULL:
                        t = t + rp[base + i * VLEN + v]
                    if frelu and t < 0:
                        t = 0
                    yp[base + i * VLEN + v] = t
    return y


cdef void _bn_reduce_item(int cb, int N, int Cb, int64_t plane, const float *dy, const float *y,
                          const float *x, const double *mean, float *dz, double *out) noexcept nogil:
    cdef double s[VLEN]
    cdef double q[VLEN]
    cdef int n, v
    cdef int64_t i, base
    cdef float g
    for v in range(VLEN):
        s[v] = 0
        q[v] = 0
    cdef float fs[VLEN]
    cdef float fq[VLEN]
    cdef float m[VLEN]
    cdef float zero = 0
    for v in range(VLEN):
        m[v] = <float>mean[cb * VLEN + v]
    for n in range(N):
        base = (<int64_t>n * Cb + cb) * plane * VLEN
        # float partial sums per image row of pixels (branch-free, so the lanes vectorise),
        # folded into double per image
        for v in range(VLEN):
            fs[v] = 0
            fq[v] = 0
        if y != NULL:
            for i in range(plane):
                for v in range(VLEN):
                    g = dy[base + i * VLEN + v]  # loaded unconditionally: the select below vectorises
                    g = g if y[base + i * VLEN + v] > zero else zero
                    dz[base + i * VLEN + v] = g
                    fs[v] += g
                    fq[v] += g * (x[base + i * VLEN + v] - m[v])
        else:
            for i in range(plane):
                for v in range(VLEN):
                    g = dy[base + i * VLEN + v]
                    dz[base + i * VLEN + v] = g
                    fs[v] += g
                    fq[v] += g * (x[base + i * VLEN + v] - m[v])
        for v in range(VLEN):
            s[v] += fs[v]
            q[v] += fq[v]
    for v in range(VLEN):
        out[cb * VLEN + v] = s[v]
        out[Cb * VLEN + cb * VLEN + v] = q[v]


def bn_backward_reduce(dy, x, mean, dz, sums, y=None, threads=None):
    """First backward pass of batch norm (with a fused ReLU when ``y``, its output, is given):
    ``dz = dy * (y > 0)``; ``sums[0] = sum dz``, ``sums[1] = sum dz * (x - mean)`` per channel."""
    _blocked(x, "x")
    _f32(dy, "dy", x.shape)
    _f32(dz, "dz", x.shape, True)
    cdef int N = x.shape[0], Cb = x.shape[1]
    _f64(mean, "mean", (Cb * VLEN,))
    _f64(sums, "sums", (2, Cb * VLEN), True)
    cdef float *yp = NULL
    if y is not None:
        _f32(y, "y", x.shape)
        yp = _fp(y)
    _in_place_or_apart(dz, "dz", dy=dy, y=y)
    no_overlap(dz, "dz", x=x, mean=mean, sums=sums)   # x is read after dz is written
    no_overlap(sums, "sums", dy=dy, x=x, mean=mean, y=y)
    cdef int64_t plane = <int64_t>x.shape[2] * x.shape[3]
    cdef float *dyp = _fp(dy)
    cdef float *xp = _fp(x)
    cdef float *dzp = _fp(dz)
    cdef double *mp = _dp(mean)
    cdef double *sp = _dp(sums)
    cdef int it
    cdef int nt = threads_for_work(resolve_threads(threads), Cb, 1)
    with nogil:
        for it in prange(Cb, schedule="static", num_threads=nt):
            _bn_reduce_item(it, N, Cb, plane, dyp, yp, xp, mp, dzp, sp)
    return sums


def channel_affine2(a, ka, x, kx, k0, out, threads=None):
    """``out = a * ka[c] + x * kx[c] + k0[c]`` on blocked tensors (batch-norm backward apply)."""
    _blocked(a, "a")
    _f32(x, "x", a.shape)
    _f32(out, "out", a.shape, True)
    cdef int Cb = a.shape[1]
    for v, name in ((ka, "ka"), (kx, "kx"), (k0, "k0")):
        _f32(v, name, (Cb * VLEN,))
    _in_place_or_apart(out, "out", a=a, x=x)
    no_overlap(out, "out", ka=ka, kx=kx, k0=k0)
    cdef float *ap = _fp(a)
    cdef float *xp = _fp(x)
    cdef float *op = _fp(out)
    cdef float *c1 = _fp(ka)
    cdef float *c2 = _fp(kx)
    cdef float *c3 = _fp(k0)
    cdef int64_t plane = <int64_t>a.shape[2] * a.shape[3]
    cdef int64_t rows = <int64_t>a.shape[0] * Cb, it, i, base
    cdef int v2, cb
    cdef int nt = _nt(threads, a.size)
    with nogil:
        for it in prange(rows, schedule="static", num_threads=nt):
            cb = <int>(it % Cb)
            base = it * plane * VLEN
            for i in range(plane):
                for v2 in range(VLEN):
                    op[base + i * VLEN + v2] = (ap[base + i * VLEN + v2] * c1[cb * VLEN + v2]
                                                + xp[base + i * VLEN + v2] * c2[cb * VLEN + v2]
                                                + c3[cb * VLEN + v2])
    return out


# ----------------------------------------------------------------------------- channel plumbing

def copy_channels(src, src_first, dst, dst_first, count, bint add=False, threads=None):
    """Blocked tensors: ``dst[:, dst_first:dst_first+count] (+)= src[:, src_first:...]``
    (logical channels; concat forward and backward)."""
    _blocked(src, "src")
    _blocked(dst, "dst", True)
    if src.shape[0] != dst.shape[0] or src.shape[2:] != dst.shape[2:]:
        raise ValueError(f"src {src.shape} and dst {dst.shape} differ in batch or spatial size")
    no_overlap(dst, "dst", src=src)
    cdef int sf = int_arg(src_first, "src_first", 0, src.shape[1] * VLEN)
    cdef int df = int_arg(dst_first, "dst_first", 0, dst.shape[1] * VLEN)
    cdef int count_ = int_arg(count, "count", 0, min(src.shape[1] * VLEN - sf, dst.shape[1] * VLEN - df))
    cdef int N = src.shape[0], Sb = src.shape[1], Db = dst.shape[1]
    cdef int64_t plane = <int64_t>src.shape[2] * src.shape[3]
    cdef float *sp = _fp(src)
    cdef float *dp = _fp(dst)
    cdef int64_t items = <int64_t>N * count_, it, i
    cdef int n, c, sc, dc
    cdef const float *s
    cdef float *d
    cdef int nt = _nt(threads, items * plane)
    with nogil:
        for it in prange(items, schedule="static", num_threads=nt):
            n = <int>(it // count_)
            c = <int>(it % count_)
            sc = sf + c
            dc = df + c
            s = sp + ((<int64_t>n * Sb + sc // VLEN) * plane) * VLEN + sc % VLEN
            d = dp + ((<int64_t>n * Db + dc // VLEN) * plane) * VLEN + dc % VLEN
            if add:
                for i in range(plane):
                    d[i * VLEN] += s[i * VLEN]
            else:
                for i in range(plane):
                    d[i * VLEN] = s[i * VLEN]
    return dst


def blocked_to_flat(x, channels, out, threads=None):
    """``(N, Cb, H, W, 16)`` -> ``(N, C*H*W)`` in NCHW order (fully connected input)."""
    _blocked(x, "x")
    cdef int N = x.shape[0], Cb = x.shape[1]
    cdef int64_t plane = <int64_t>x.shape[2] * x.shape[3]
    cdef int nch = int_arg(channels, "channels", 1, Cb * VLEN)
    _f32(out, "out", (N, nch * plane), True)
    no_overlap(out, "out", x=x)
    cdef float *xp = _fp(x)
    cdef float *op = _fp(out)
    cdef int64_t items = <int64_t>N * nch, it, i
    cdef int n, c
    cdef int nt = _nt(threads, items * plane)
    with nogil:
        for it in prange(items, schedule="static", num_threads=nt):
            n = <int>(it // nch)
            c = <int>(it % nch)
            for i in range(plane):
                op[it * plane + i] = xp[((<int64_t>n * Cb + c // VLEN) * plane + i) * VLEN + c % VLEN]
    return out


def flat_to_blocked(flat, channels, x, threads=None):
    """Inverse of :func:`blocked_to_flat`; padded channels of ``x`` are set to zero."""
    _blocked(x, "x", True)
    cdef int N = x.shape[0], Cb = x.shape[1]
    cdef int64_t plane = <int64_t>x.shape[2] * x.shape[3]
    cdef int nch = int_arg(channels, "channels", 1, Cb * VLEN)
    _f32(flat, "flat", (N, nch * plane))
    no_overlap(x, "x", flat=flat)
    if nch % VLEN:
        x[:, Cb - 1] = 0
    cdef float *fp = _fp(flat)
    cdef float *xp = _fp(x)
    cdef int64_t items = <int64_t>N * nch, it, i
    cdef int n, c
    cdef int nt = _nt(threads, items * plane)
    with nogil:
        for it in prange(items, schedule="static", num_threads=nt):
            n = <int>(it // nch)
            c = <int>(it % nch)
            for i in range(plane):
                xp[((<int64_t>n * Cb + c // VLEN) * plane + i) * VLEN + c % VLEN] = fp[it * plane + i]
    return x


# ----------------------------------------------------------------------------- fully connected

cdef int _blas_gemm(char ta, char tb, int m, int n, int k, float alpha, const float *a, int lda,
                    const float *b, int ldb, float beta, float *c, int ldc) noexcept nogil:
    sgemm(&ta, &tb, &m, &n, &k, &alpha, <float *>a, &lda, <float *>b, &ldb, &beta, c, &ldc)
    return 0


cdef inline void _span(int64_t total, int parts, int part, int64_t *lo, int64_t *hi) noexcept nogil:
    lo[0] = total * part // parts
    hi[0] = total * (part + 1) // parts


def fc_forward(x, w, bias, y, threads=None):
    """``y = x @ w.T + bias``: x ``(N, C)``, w ``(K, C)``, y ``(N, K)``.

    Single-threaded BLAS sgemm calls on row slices, one per OpenMP thread (the runtime limits
    BLAS pools to one thread so they do not fight the OpenMP team for cores).
    """
    _f32(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (N, C), got shape {x.shape}")
    dims_arg(x, "x", (0, 1))
    cdef int N = x.shape[0], C = x.shape[1]
    _f32(w, "w")
    if w.ndim != 2 or w.shape[1] != C:
        raise ValueError(f"w must be (K, {C}), got shape {w.shape}")
    dims_arg(w, "w", (0,))
    cdef int K = w.shape[0]
    _f32(y, "y", (N, K), True)
    cdef float *bp = NULL
    if bias is not None:
        _f32(bias, "bias", (K,))
        bp = _fp(bias)
    no_overlap(y, "y", x=x, w=w, bias=bias)
    cdef float *xp = _fp(x)
    cdef float *wp = _fp(w)
    cdef float *yp = _fp(y)
    cdef int nt = threads_for_work(resolve_threads(threads), <int64_t>N * K * C, 1 << 18)
    cdef int part, n, k
    cdef int64_t lo, hi
    with nogil:
        for part in prange(nt, schedule="static", num_threads=nt):
            _span(N, nt, part, &lo, &hi)
            if hi > lo:
                # row-major y (rows x K) is column-major y^T = W (K x C) . x^T (C x rows)
                _blas_gemm(b'T', b'N', K, <int>(hi - lo), C, 1.0, wp, C, xp + lo * C, C, 0.0,
                           yp + lo * K, K)
                if bp != NULL:
                    for n in range(<int>lo, <int>hi):
                        for k in range(K):
                            yp[<int64_t>n * K + k] += bp[k]
    return y


cdef void _column_sums(const float *a, int rows, int cols, int c0, int c1, float *out) noexcept nogil:
    cdef double acc
    cdef int r, c
    for c in range(c0, c1):
        acc = 0
        for r in range(rows):
            acc += a[<int64_t>r * cols + c]
        out[c] = <float>acc


def fc_backward(x, w, dy, dw, dbias, dx, threads=None):
    """Gradients of :func:`fc_forward`: ``dw = dy.T @ x``, ``dbias = sum dy``, ``dx = dy @ w``
    (``dbias``/``dx`` may be None). Threads split the rows of dw and of dx."""
    _f32(x, "x")
    _f32(w, "w")
    if x.ndim != 2 or w.ndim != 2 or w.shape[1] != x.shape[1]:
        raise ValueError(f"x (N, C) and w (K, C) do not match: {x.shape}, {w.shape}")
    dims_arg(x, "x", (0, 1))
    dims_arg(w, "w", (0,))
    cdef int N = x.shape[0], C = x.shape[1], K = w.shape[0]
    _f32(dy, "dy", (N, K))
    _f32(dw, "dw", (K, C), True)
    cdef float *dbp = NULL
    cdef float *dxp = NULL
    if dbias is not None:
        _f32(dbias, "dbias", (K,), True)
        dbp = _fp(dbias)
    if dx is not None:
        _f32(dx, "dx", (N, C), True)
        dxp = _fp(dx)
    no_overlap(dw, "dw", x=x, w=w, dy=dy, dbias=dbias, dx=dx)
    if dbias is not None:
        no_overlap(dbias, "dbias", x=x, w=w, dy=dy, dx=dx)
    if dx is not None:
        no_overlap(dx, "dx", x=x, w=w, dy=dy)
    cdef float *xp = _fp(x)
    cdef float *wp = _fp(w)
    cdef float *dyp = _fp(dy)
    cdef float *dwp = _fp(dw)
    cdef int nt = threads_for_work(resolve_threads(threads), <int64_t>N * K * C, 1 << 18)
    cdef int part
    cdef int64_t lo, hi
    with nogil:
        for part in prange(nt, schedule="static", num_threads=nt):
            _span(K, nt, part, &lo, &hi)
            if hi > lo:
                # column-major dW^T (C x rows) = x^T (C x N) . dy[:, lo:hi] (N x rows)
                _blas_gemm(b'N', b'T', C, <int>(hi - lo), N, 1.0, xp, C, dyp + lo, K, 0.0,
                           dwp + lo * C, C)
                if dbp != NULL:
                    _column_sums(dyp, N, K, <int>lo, <int>hi, dbp)
            if dxp != NULL:
                _span(N, nt, part, &lo, &hi)
                if hi > lo:
                    # column-major dx^T (C x rows) = W^T (C x K) . dy^T (K x rows)
                    _blas_gemm(b'N', b'N', C, <int>(hi - lo), K, 1.0, wp, C, dyp + lo * K, K, 0.0,
                               dxp + lo * C, C)
    return dw


# ----------------------------------------------------------------------------- loss and metrics

def softmax_xent_forward(logits, labels, prob):
    """Softmax of each row into ``prob``; returns the summed cross-entropy (float64).
    Labels must be int32 in [0, K)."""
    _f32(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (N, K), got shape {logits.shape}")
    dims_arg(logits, "logits", (0, 1))
    cdef int N = logits.shape[0], K = logits.shape[1]
    _f32(prob, "prob", (N, K), True)
    _labels(labels, N, K)
    no_overlap(prob, "prob", logits=logits, labels=labels)   # the loss reads logits after prob
    cdef float *lp = _fp(logits)
    cdef float *pp = _fp(prob)
    cdef int32_t *yp = <int32_t *>cnp.PyArray_DATA(<cnp.ndarray>labels)
    cdef double total = 0, m, z
    cdef int n, k
    with nogil:
        for n in range(N):
            m = lp[<int64_t>n * K]
            for k in range(1, K):
                if lp[<int64_t>n * K + k] > m:
                    m = lp[<int64_t>n * K + k]
            z = 0
            for k in range(K):
                z += exp(lp[<int64_t>n * K + k] - m)
            for k in range(K):
                pp[<int64_t>n * K + k] = <float>(exp(lp[<int64_t>n * K + k] - m) / z)
            total += log(z) + m - lp[<int64_t>n * K + yp[n]]
    return total


def softmax_xent_backward(prob, labels, dlogits, scale):
    """``dlogits = (prob - onehot(labels)) * scale``."""
    cdef float fs = real_arg(scale, "scale")
    _f32(prob, "prob")
    if prob.ndim != 2:
        raise ValueError(f"prob must be 2-D (N, K), got shape {prob.shape}")
    dims_arg(prob, "prob", (0, 1))
    cdef int N = prob.shape[0], K = prob.shape[1]
    _f32(dlogits, "dlogits", (N, K), True)
    _labels(labels, N, K)
    _in_place_or_apart(dlogits, "dlogits", prob=prob)
    no_overlap(dlogits, "dlogits", labels=labels)
    cdef float *pp = _fp(prob)
    cdef float *dp = _fp(dlogits)
    cdef int32_t *yp = <int32_t *>cnp.PyArray_DATA(<cnp.ndarray>labels)
    cdef int n, k
    with nogil:
        for n in range(N):
            for k in range(K):
                dp[<int64_t>n * K + k] = pp[<int64_t>n * K + k] * fs
            dp[<int64_t>n * K + yp[n]] -= fs
    return dlogits


def topk_correct(logits, labels, k=1):
    """Number of rows whose label is among the ``k`` largest logits (ties count against)."""
    _f32(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (N, K), got shape {logits.shape}")
    dims_arg(logits, "logits", (0, 1))
    cdef int N = logits.shape[0], K = logits.shape[1]
    cdef int top = int_arg(k, "k", 1)
    _labels(labels, N, K)
    cdef float *lp = _fp(logits)
    cdef int32_t *yp = <int32_t *>cnp.PyArray_DATA(<cnp.ndarray>labels)
    cdef int n, j, above
    cdef int64_t correct = 0
    cdef float t
    with nogil:
        for n in range(N):
            t = lp[<int64_t>n * K + yp[n]]
            above = 0
            for j in range(K):
                if lp[<int64_t>n * K + j] > t or (lp[<int64_t>n * K + j] == t and j < yp[n]):
                    above += 1
            if above < top:
                correct += 1
    return correct


cdef _labels(object labels, int N, int K):
    if not isinstance(labels, np.ndarray) or labels.dtype != np.int32 or labels.shape != (N,) \
            or not labels.flags.c_contiguous or not labels.flags.aligned:
        raise ValueError(f"labels must be a contiguous, aligned int32 array of shape ({N},)")
    if N and (labels.min() < 0 or labels.max() >= K):
        raise ValueError(f"labels must be in [0, {K}), got range [{labels.min()}, {labels.max()}]")


# ----------------------------------------------------------------------------- solver

def sgd_update(w, g, history, segments, lr, decay, momentum, nesterov=False,
               threads=None):
    """One SGD step over a flat parameter arena, per segment ``s`` (``segments[s]`` ..
    ``segments[s+1]``) with its own learning rate ``lr[s]`` and weight decay ``decay[s]``::

        v_new = momentum * v + lr * (g + decay * w)
        w    -= v_new                                   (SGD)
        w    -= (1 + momentum) * v_new - momentum * v   (Nesterov, as Caffe)
    """
    cdef float fm = real_arg(momentum, "momentum")
    cdef bint fn = flag_arg(nesterov, "nesterov")
    _f32(w, "w", None, True)
    _f32(g, "g", w.shape)
    _f32(history, "history", w.shape, True)
    if w.ndim != 1:
        raise ValueError("w must be 1-D (the parameter arena)")
    no_overlap(w, "w", g=g, history=history)
    no_overlap(history, "history", g=g)
    seg = np.asarray(segments)
    if seg.ndim != 1 or seg.dtype.kind not in "iu":
        raise ValueError(f"segments must be a 1-D integer sequence, got shape {seg.shape} of {seg.dtype}")
    dims_arg(seg, "segments", (0,))
    segments = np.require(seg, np.int64, ["C", "A"])   # a contiguous, aligned int64 copy if need be
    cdef int nseg = segments.shape[0] - 1
    if nseg < 0 or segments[0] != 0 or segments[nseg] != w.shape[0] or np.any(np.diff(segments) < 0):
        raise ValueError("segments must rise from 0 to len(w)")
    _f32(lr, "lr", (nseg,))
    _f32(decay, "decay", (nseg,))
    no_overlap(w, "w", lr=lr, decay=decay)
    no_overlap(history, "history", lr=lr, decay=decay)
    cdef float *wp = _fp(w)
    cdef float *gp = _fp(g)
    cdef float *hp = _fp(history)
    cdef int64_t *sp = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>segments)
    cdef float *lp = _fp(lr)
    cdef float *dp = _fp(decay)
    cdef int s
    cdef int64_t i, e
    cdef float v_old, v_new, a, b
    cdef int nt = threads_for_work(resolve_threads(threads), w.shape[0], GRAIN)
    with nogil:
        for s in range(nseg):
            a = lp[s]
            b = dp[s]
            e = sp[s + 1]
            for i in prange(sp[s], e, schedule="static", num_threads=nt):
                v_old = hp[i]
                v_new = fm * v_old + a * (gp[i] + b * wp[i])
                hp[i] = v_new
                if fn:
                    wp[i] = wp[i] - ((1 + fm) * v_new - fm * v_old)
                else:
                    wp[i] = wp[i] - v_new
    return w
