"""core.dnn: layer kernels against numpy references, thread-count invariance, bad input."""
import numpy as np
import pytest

dnn = pytest.importorskip("core.dnn")
conv = pytest.importorskip("core.conv")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def blocked(rng, n, c, h, w):
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    return x, conv.to_blocked(x)


def ref_pool(x, mode, k, s, p):
    """Caffe pooling on NCHW float64 (ceil mode; average divisor counts padding)."""
    n, c, h, w = x.shape
    oh, ow = dnn.pool_output_size(h, k[0], s[0], p[0]), dnn.pool_output_size(w, k[1], s[1], p[1])
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            h1, w1 = min(h0 + k[0], h + p[0]), min(w0 + k[1], w + p[1])
            size = (h1 - h0) * (w1 - w0)
            win = x[:, :, max(h0, 0):min(h1, h), max(w0, 0):min(w1, w)]
            y[:, :, i, j] = win.max(axis=(2, 3)) if mode == dnn.MAX_POOL else win.sum(axis=(2, 3)) / size
    return y


@pytest.mark.parametrize("mode", [dnn.MAX_POOL, dnn.AVE_POOL])
@pytest.mark.parametrize("geom", [((3, 3), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((2, 2), (2, 2), (0, 0)),
                                  ((3, 2), (1, 2), (1, 0)), ((7, 5), (1, 1), (0, 0))])
def test_pooling_forward_and_backward(mode, geom, rng):
    k, s, p = geom
    x, xb = blocked(rng, 2, 19, 7, 5)
    oh, ow = dnn.pool_output_size(7, k[0], s[0], p[0]), dnn.pool_output_size(5, k[1], s[1], p[1])
    y = np.empty((2, 2, oh, ow, 16), np.float32)
    arg = np.empty(y.shape, np.int32)
    dnn.pool_forward(xb, y, mode, k, s, p, argmax=arg)
    np.testing.assert_allclose(conv.from_blocked(y, 19), ref_pool(x.astype(np.float64), mode, k, s, p),
                               rtol=1e-6, atol=1e-6)
    assert np.all(conv.from_blocked(y, 32)[:, 19:] == 0)
    # backward is the adjoint of forward: <pool(x), dy> = <x, pool^T(dy)> for average pooling,
    # and routes dy to the argmax for max pooling
    dy = rng.standard_normal((2, 19, oh, ow)).astype(np.float32)
    dx = np.empty_like(xb)
    dnn.pool_backward(conv.to_blocked(dy), dx, mode, k, s, p, argmax=arg)
    if mode == dnn.AVE_POOL:
        lhs = np.vdot(conv.from_blocked(y, 19).astype(np.float64), dy)
        rhs = np.vdot(x.astype(np.float64), conv.from_blocked(dx, 19))
        assert abs(lhs - rhs) < 1e-4 * (1 + abs(lhs))
    else:
        want = np.zeros_like(x, dtype=np.float64)
        for i in range(oh):
            for j in range(ow):
                h0, w0 = max(i * s[0] - p[0], 0), max(j * s[1] - p[1], 0)
                h1, w1 = min(i * s[0] - p[0] + k[0], 7), min(j * s[1] - p[1] + k[1], 5)
                win = x[:, :, h0:h1, w0:w1].reshape(2, 19, -1)
                pos = win.argmax(axis=2)
                hh, ww = h0 + pos // (w1 - w0), w0 + pos % (w1 - w0)
                for n in range(2):
                    for c in range(19):
                        want[n, c, hh[n, c], ww[n, c]] += dy[n, c, i, j]
        np.testing.assert_allclose(conv.from_blocked(dx, 19), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", [dnn.MAX_POOL, dnn.AVE_POOL])
def test_pooling_isa_paths_agree(mode, rng):
    from core import cpu
    _, xb = blocked(rng, 2, 33, 9, 8)
    xb[0, 0, 2, 3, :4] = np.nan          # NaN never wins a max
    xb[1, 1, :, :, 5] = -np.inf          # all -inf: the window's first pixel
    xb[0, 1, 4, 4] = xb[0, 1, 4, 5]      # ties: the first in window order
    out = []
    for target in cpu.available_targets():
        y = np.empty((2, 3, 5, 4, 16), np.float32)
        arg = np.empty(y.shape, np.int32)
        dnn.pool_forward(xb, y, mode, (3, 2), (2, 2), (1, 0), argmax=arg, target=target)
        out.append((y, arg))
    for y, arg in out[1:]:
        np.testing.assert_array_equal(y, out[0][0])
        if mode == dnn.MAX_POOL:
            np.testing.assert_array_equal(arg, out[0][1])


def test_pool_output_size_follows_caffe():
    assert dnn.pool_output_size(32, 3, 2, 0) == 16      # ceil: CIFAR-10 quick
    assert dnn.pool_output_size(112, 3, 2, 0) == 56     # GoogLeNet
    assert dnn.pool_output_size(112, 3, 2, 1) == 57     # ceil with padding
    assert dnn.pool_output_size(5, 2, 2, 1) == 3        # ceil gives 4, but that window would start in the padding
    assert dnn.pool_output_size(7, 7, 1, 0) == 1
    with pytest.raises(ValueError, match="does not fit"):
        dnn.pool_output_size(2, 3, 1, 0)
    with pytest.raises(ValueError, match="smaller than"):
        dnn.pool_output_size(8, 3, 1, 3)


def test_relu_and_dropout(rng):
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    y = np.empty_like(x)
    dnn.relu_forward(x, y, 0.1)
    np.testing.assert_array_equal(y, np.where(x > 0, x, np.float32(0.1) * x))
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx = np.empty_like(x)
    dnn.relu_backward(x, dy, dx, 0.1)
    np.testing.assert_array_equal(dx, np.where(x > 0, dy, np.float32(0.1) * dy))

    from core import cpu
    odd = rng.standard_normal(16 * 1000 + 7).astype(np.float32)   # a vector body and a tail
    odd[:4] = [np.nan, -np.inf, np.inf, 0.0]
    for target in cpu.available_targets():
        for slope in (0.0, 0.25):
            out = np.empty_like(odd)
            dnn.relu_forward(odd, out, slope, target=target)
            with np.errstate(invalid="ignore"):
                np.testing.assert_array_equal(out, np.where(odd > 0, odd, np.float32(slope) * odd))
            g = rng.standard_normal(odd.size).astype(np.float32)
            dnn.relu_backward(odd, g, out, slope, target=target)
            np.testing.assert_array_equal(out, np.where(odd > 0, g, np.float32(slope) * g))

    big = np.ones((64, 1000), np.float32)
    out, mask = np.empty_like(big), np.empty_like(big)
    dnn.dropout_forward(big, out, mask, 0.3, 7, 0)
    kept = mask > 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(mask[kept], 1 / 0.7, rtol=1e-6)
    np.testing.assert_array_equal(out, big * mask)
    # the same samples get the same mask when the batch is split (rank sharding)
    lo, hi = np.empty((32, 1000), np.float32), np.empty((32, 1000), np.float32)
    dnn.dropout_forward(big[:32].copy(), np.empty_like(lo), lo, 0.3, 7, 0)
    dnn.dropout_forward(big[32:].copy(), np.empty_like(hi), hi, 0.3, 7, 32)
    np.testing.assert_array_equal(np.concatenate([lo, hi]), mask)
    other = np.empty_like(big)
    dnn.dropout_forward(big, np.empty_like(big), other, 0.3, 8, 0)
    assert np.mean(other != mask) > 0.2, "another seed gives another mask"
    g = np.empty_like(big)
    dnn.multiply(big, mask, g)
    np.testing.assert_array_equal(g, mask)


def test_batch_norm_kernels(rng):
    x, xb = blocked(rng, 3, 21, 4, 5)
    stats = np.zeros((2, 32))
    dnn.channel_stats(xb, stats)
    xd = x.astype(np.float64)
    np.testing.assert_allclose(stats[0, :21], xd.sum(axis=(0, 2, 3)), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(stats[1, :21], (xd ** 2).sum(axis=(0, 2, 3)), rtol=1e-6)
    assert np.all(stats[:, 21:] == 0)
    scale = rng.standard_normal(32).astype(np.float32)
    shift = rng.standard_normal(32).astype(np.float32)
    scale[21:] = shift[21:] = 0
    res, resb = blocked(rng, 3, 21, 4, 5)
    y = np.empty_like(xb)
    dnn.channel_affine(xb, scale, shift, y, residual=resb, relu=True)
    want = np.maximum(xd * scale[None, :21, None, None] + shift[None, :21, None, None] + res, 0)
    np.testing.assert_allclose(conv.from_blocked(y, 21), want, rtol=1e-5, atol=1e-5)
    dy, dyb = blocked(rng, 3, 21, 4, 5)
    mean = stats[0] / 60
    dz = np.empty_like(xb)
    sums = np.zeros((2, 32))
    dnn.bn_backward_reduce(dyb, xb, mean, dz, sums, y=y)
    gate = want > 0
    np.testing.assert_array_equal(conv.from_blocked(dz, 21), np.where(gate, dy, 0))
    np.testing.assert_allclose(sums[0, :21], np.where(gate, dy, 0).sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sums[1, :21], (np.where(gate, dy, 0) * (xd - mean[None, :21, None, None])).sum(axis=(0, 2, 3)),
                               rtol=1e-5, atol=1e-5)
    ka, kx, k0 = (rng.standard_normal(32).astype(np.float32) for _ in range(3))
    out = np.empty_like(xb)
    dnn.channel_affine2(dz, ka, xb, kx, k0, out)
    full = lambda v: v[None, :21, None, None]  # noqa: E731
    np.testing.assert_allclose(conv.from_blocked(out, 21),
                               conv.from_blocked(dz, 21) * full(ka) + xd * full(kx) + full(k0), rtol=1e-5, atol=1e-5)


def test_channel_plumbing(rng):
    a, ab = blocked(rng, 2, 20, 3, 3)
    b, bb = blocked(rng, 2, 13, 3, 3)
    cat = np.zeros((2, 3, 3, 3, 16), np.float32)
    dnn.copy_channels(ab, 0, cat, 0, 20)
    dnn.copy_channels(bb, 0, cat, 20, 13)
    np.testing.assert_array_equal(conv.from_blocked(cat, 48), np.concatenate([a, b, np.zeros((2, 15, 3, 3), np.float32)], 1))
    back = np.zeros_like(bb)
    dnn.copy_channels(cat, 20, back, 0, 13)
    np.testing.assert_array_equal(back, bb)
    dnn.copy_channels(cat, 20, back, 0, 13, add=True)
    np.testing.assert_array_equal(back, 2 * bb)
    flat = np.empty((2, 20 * 9), np.float32)
    dnn.blocked_to_flat(ab, 20, flat)
    np.testing.assert_array_equal(flat, a.reshape(2, -1))
    again = np.full_like(ab, 7.0)
    dnn.flat_to_blocked(flat, 20, again)
    np.testing.assert_array_equal(again, ab)
    y = np.empty_like(flat)
    dnn.axpby(2.0, flat, 0.0, y)
    dnn.axpby(1.0, flat, 0.25, y)
    np.testing.assert_allclose(y, 1.5 * flat, rtol=1e-6)


def test_fully_connected(rng):
    x = rng.standard_normal((5, 37)).astype(np.float32)
    w = rng.standard_normal((11, 37)).astype(np.float32)
    b = rng.standard_normal(11).astype(np.float32)
    y = np.empty((5, 11), np.float32)
    dnn.fc_forward(x, w, b, y)
    np.testing.assert_allclose(y, x.astype(np.float64) @ w.T + b, rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal((5, 11)).astype(np.float32)
    dw, db, dx = np.empty_like(w), np.empty_like(b), np.empty_like(x)
    dnn.fc_backward(x, w, dy, dw, db, dx)
    np.testing.assert_allclose(dw, dy.T.astype(np.float64) @ x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db, dy.sum(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, dy.astype(np.float64) @ w, rtol=1e-5, atol=1e-5)


def test_softmax_cross_entropy_and_accuracy(rng):
    z = (3 * rng.standard_normal((6, 10))).astype(np.float32)
    lab = rng.integers(0, 10, 6).astype(np.int32)
    p = np.empty_like(z)
    loss = dnn.softmax_xent_forward(z, lab, p)
    zd = z.astype(np.float64)
    pr = np.exp(zd - zd.max(1, keepdims=True))
    pr /= pr.sum(1, keepdims=True)
    np.testing.assert_allclose(p, pr, rtol=1e-5, atol=1e-7)
    assert loss == pytest.approx(-np.log(pr[np.arange(6), lab]).sum(), rel=1e-6)
    d = np.empty_like(z)
    dnn.softmax_xent_backward(p, lab, d, 0.25)
    want = pr.copy()
    want[np.arange(6), lab] -= 1
    np.testing.assert_allclose(d, 0.25 * want, rtol=1e-5, atol=1e-6)
    for k in (1, 3, 10):
        ranks = (zd > zd[np.arange(6), lab][:, None]).sum(1)
        assert dnn.topk_correct(z, lab, k) == int((ranks < k).sum())
    with pytest.raises(ValueError, match="labels must be in"):
        dnn.softmax_xent_forward(z, np.full(6, 10, np.int32), p)
    with pytest.raises(ValueError, match="int32"):
        dnn.topk_correct(z, lab.astype(np.int64))


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_update(nesterov, rng):
    w = rng.standard_normal(50).astype(np.float32)
    g = rng.standard_normal(50).astype(np.float32)
    h = rng.standard_normal(50).astype(np.float32)
    seg = np.array([0, 20, 20, 50])
    lr = np.array([0.1, 0.5, 0.01], np.float32)
    wd = np.array([0.001, 0.0, 0.1], np.float32)
    w0, h0 = w.astype(np.float64), h.astype(np.float64)
    lr_e = np.repeat(lr, np.diff(seg)).astype(np.float64)
    wd_e = np.repeat(wd, np.diff(seg)).astype(np.float64)
    v = 0.9 * h0 + lr_e * (g + wd_e * w0)
    want = w0 - ((1.9 * v - 0.9 * h0) if nesterov else v)
    dnn.sgd_update(w, g, h, seg, lr, wd, 0.9, nesterov)
    np.testing.assert_allclose(h, v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="segments"):
        dnn.sgd_update(w, g, h, [0, 10], lr[:1], wd[:1], 0.9)


def test_two_threads_equal_one(rng):
    x, xb = blocked(rng, 8, 40, 17, 19)
    for fn in (lambda t: dnn.channel_stats(xb, np.zeros((2, 48)), threads=t),
               lambda t: dnn.pool_forward(xb, np.empty((8, 3, 8, 9, 16), np.float32), dnn.AVE_POOL,
                                          (3, 3), (2, 2), (0, 0), threads=t),
               lambda t: dnn.relu_forward(xb, np.empty_like(xb), threads=t)):
        np.testing.assert_array_equal(fn(1), fn(2))


def test_bad_input_names_the_argument(rng):
    _, xb = blocked(rng, 1, 3, 4, 4)
    with pytest.raises(TypeError, match="x must be float32"):
        dnn.relu_forward(xb.astype(np.float64), xb)
    with pytest.raises(ValueError, match="y must have shape"):
        dnn.relu_forward(xb, np.empty(3, np.float32))
    with pytest.raises(ValueError, match="channel-blocked"):
        dnn.channel_stats(np.zeros((1, 3, 4, 4), np.float32), np.zeros((2, 16)))
    with pytest.raises(ValueError, match="stats"):
        dnn.channel_stats(xb, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="argmax"):
        dnn.pool_forward(xb, np.empty((1, 1, 2, 2, 16), np.float32), dnn.MAX_POOL, (2, 2), (2, 2), (0, 0))
    with pytest.raises(ValueError, match="w must be"):
        dnn.fc_forward(np.zeros((2, 3), np.float32), np.zeros((4, 5), np.float32), None, np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="ratio"):
        dnn.dropout_forward(xb, np.empty_like(xb), np.empty_like(xb), 1.0, 0, 0)
    with pytest.raises(ValueError, match=r"count must be in \[0, 6\], got 10"):
        dnn.copy_channels(xb, 0, np.zeros_like(xb), 10, 10)


# ---- inputs a fuzzer found: each once crashed, wrote outside its buffer or wrote a read-only array

def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _misaligned(shape, dtype=np.float32):
    """A writable C-contiguous array whose data pointer is not a multiple of the element size."""
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer(bytearray(n + 1), np.uint8)[1:].view(dtype).reshape(shape)


@pytest.mark.parametrize("value", [16, 2**20, -1, -2**31])
def test_pool_backward_refuses_argmax_outside_the_plane(rng, value):
    _, xb = blocked(rng, 1, 16, 4, 4)                  # a 4x4 plane: positions 0..15
    guard = np.full(4096, 7.0, np.float32)
    dx = guard[1024:1024 + xb.size].reshape(xb.shape)
    dy = np.ones((1, 1, 2, 2, 16), np.float32)
    am = np.zeros(dy.shape, np.int32)
    am[0, 0, 1, 1, 5] = value
    with pytest.raises(ValueError, match="argmax holds positions outside the 4x4 input plane"):
        dnn.pool_backward(dy, dx, dnn.MAX_POOL, 2, 2, 0, argmax=am)
    assert (guard[:1024] == 7).all() and (guard[1024 + xb.size:] == 7).all()


@pytest.mark.parametrize("src_first, dst_first, count, name", [
    (2**31 - 1, 0, 1, "src_first"), (0, 2**31 - 1, 1, "dst_first"), (0, 0, 2**31 - 1, "count"),
    (2**40, 0, 1, "src_first"), (-1, 0, 1, "src_first"), (0, 0, -1, "count"), (1.5, 0, 1, "src_first")])
def test_copy_channels_range_cannot_wrap(rng, src_first, dst_first, count, name):
    _, xb = blocked(rng, 1, 16, 2, 2)
    with pytest.raises((ValueError, TypeError), match=name):
        dnn.copy_channels(xb, src_first, np.zeros_like(xb), dst_first, count)


def test_outputs_must_be_writable_aligned_and_apart_from_inputs(rng):
    _, xb = blocked(rng, 1, 16, 4, 4)
    yb = np.empty((1, 1, 2, 2, 16), np.float32)
    am = np.zeros(yb.shape, np.int32)
    w, g = np.ones(4, np.float32), np.ones(4, np.float32)
    seg, lr, wd = [0, 4], np.ones(1, np.float32), np.zeros(1, np.float32)
    read_only_outputs = [
        ("w", lambda: dnn.sgd_update(_readonly(w), g, np.zeros(4, np.float32), seg, lr, wd, 0.9)),
        ("y", lambda: dnn.pool_forward(xb, _readonly(yb), dnn.MAX_POOL, 2, 2, 0, argmax=am)),
        ("argmax", lambda: dnn.pool_forward(xb, yb, dnn.MAX_POOL, 2, 2, 0, argmax=_readonly(am))),
        ("dx", lambda: dnn.pool_backward(yb, _readonly(xb), dnn.AVE_POOL, 2, 2, 0)),
        ("dst", lambda: dnn.copy_channels(xb, 0, _readonly(xb), 0, 1)),
        ("x", lambda: dnn.flat_to_blocked(np.zeros((1, 16 * 16), np.float32), 16, _readonly(xb))),
        ("stats", lambda: dnn.channel_stats(xb, _readonly(np.zeros((2, 16))))),
        ("sums", lambda: dnn.bn_backward_reduce(xb, xb, np.zeros(16), np.empty_like(xb),
                                                _readonly(np.zeros((2, 16))))),
    ]
    for name, call in read_only_outputs:
        with pytest.raises(ValueError, match=f"{name} must be writable"):
            call()
    with pytest.raises(ValueError, match="y is not aligned"):
        dnn.relu_forward(xb, _misaligned(xb.shape))
    with pytest.raises(ValueError, match="x is not aligned"):
        dnn.relu_forward(_misaligned(xb.shape), np.empty_like(xb))
    x2 = np.ones((3, 4), np.float32)
    w2 = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="y overlaps x"):
        dnn.fc_forward(x2, w2, None, x2)
    with pytest.raises(ValueError, match="dx overlaps"):
        dnn.fc_backward(x2, w2, np.ones((3, 4), np.float32), np.empty((4, 4), np.float32), None, x2)
    with pytest.raises(ValueError, match="dx overlaps dy"):
        dnn.pool_backward(xb, xb, dnn.AVE_POOL, 1, 1, 0)
    with pytest.raises(ValueError, match="w overlaps"):
        dnn.sgd_update(w, w, np.zeros(4, np.float32), seg, lr, wd, 0.9)


@pytest.mark.parametrize("call, exc, match", [
    (lambda xb: dnn.blocked_to_flat(xb, 2**31, np.zeros((1, 16), np.float32)), ValueError, "channels must be in"),
    (lambda xb: dnn.flat_to_blocked(np.zeros((1, 16), np.float32), 2**31, xb), ValueError, "channels must be in"),
    (lambda xb: dnn.topk_correct(np.zeros((2, 3), np.float32), np.zeros(2, np.int32), k=2**31), ValueError,
     "k must be >= 1|k must be in"),
    (lambda xb: dnn.topk_correct(np.zeros((2, 3), np.float32), np.zeros(2, np.int32), k=0), ValueError, "k must be >= 1"),
    (lambda xb: dnn.dropout_forward(xb, np.empty_like(xb), np.empty_like(xb), 0.5, -1, 0), ValueError, "seed"),
    (lambda xb: dnn.dropout_forward(xb, np.empty_like(xb), np.empty_like(xb), 0.5, 2**64, 0), ValueError, "seed"),
    (lambda xb: dnn.pool_forward(xb, np.empty((1, 1, 2, 2, 16), np.float32), dnn.AVE_POOL, (2**31, 2), 2, 0),
     ValueError, r"kernel\[0\] must be in"),
    (lambda xb: dnn.pool_forward(xb, np.empty((1, 1, 2, 2, 16), np.float32), dnn.AVE_POOL, "2", 2, 0),
     TypeError, "kernel must be an int or a pair"),
    (lambda xb: dnn.pool_forward(xb, np.empty((1, 1, 2, 2, 16), np.float32), dnn.AVE_POOL, 2, 0, 0),
     ValueError, "stride must be >= 1"),
    (lambda xb: dnn.sgd_update(np.ones(4, np.float32), np.ones(4, np.float32), np.zeros(4, np.float32),
                               np.array([[0, 4]]), np.ones(1, np.float32), np.ones(1, np.float32), 0.9),
     ValueError, "segments must be a 1-D integer"),
    (lambda xb: dnn.sgd_update(np.ones(4, np.float32), np.ones(4, np.float32), np.zeros(4, np.float32),
                               [0.0, 4.0], np.ones(1, np.float32), np.ones(1, np.float32), 0.9),
     ValueError, "segments must be a 1-D integer"),
])
def test_bad_scalars_name_the_argument(rng, call, exc, match):
    _, xb = blocked(rng, 1, 16, 4, 4)
    with pytest.raises(exc, match=match):
        call(xb)


def test_pool_takes_an_int_for_a_square_window(rng):
    _, xb = blocked(rng, 2, 16, 6, 6)
    y1, y2 = np.empty((2, 1, 3, 3, 16), np.float32), np.empty((2, 1, 3, 3, 16), np.float32)
    a1, a2 = np.empty(y1.shape, np.int32), np.empty(y1.shape, np.int32)
    dnn.pool_forward(xb, y1, dnn.MAX_POOL, 2, 2, 0, argmax=a1)
    dnn.pool_forward(xb, y2, dnn.MAX_POOL, (2, 2), (2, 2), (0, 0), argmax=a2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(a1, a2)


# ---- second audit: C-int scalars, element offsets past INT32_MAX, partial overlaps, alignment

def _fake(shape, dtype=np.float32):
    """A C-contiguous array claiming ``shape`` over a 64-byte buffer: for checks that must fire
    before any element is touched (a real one would need > 8 GiB)."""
    return np.lib.stride_tricks.as_strided(np.zeros(16, dtype), shape,
                                           np.cumprod((1,) + shape[:0:-1])[::-1] * np.dtype(dtype).itemsize)


@pytest.mark.parametrize("call, exc, match", [
    (lambda xb, yb: dnn.pool_forward(xb, yb, 2**31, 2, 2, 0), ValueError, "mode must be MAX_POOL or AVE_POOL, got 2147483648"),
    (lambda xb, yb: dnn.pool_forward(xb, yb, 7, 2, 2, 0), ValueError, "mode must be MAX_POOL or AVE_POOL"),
    (lambda xb, yb: dnn.pool_backward(yb, xb, "max", 2, 2, 0), TypeError, "mode must be an int"),
    (lambda xb, yb: dnn.pool_output_size(2**31, 2, 2, 0), ValueError, "size must be in"),
    (lambda xb, yb: dnn.pool_output_size(8, 2, 2**40, 0), ValueError, "stride must be in"),
    (lambda xb, yb: dnn.dropout_forward(xb, np.empty_like(xb), np.empty_like(xb), 0.5, 0, 2**63),
     ValueError, "first_sample must be in"),
    (lambda xb, yb: dnn.pool_forward(_fake((1, 1, 2**16, 2**15 + 1, 16)), yb, dnn.AVE_POOL, 2, 2, 0),
     ValueError, r"x plane H\*W must be in \[1, 2147483647\], got 2147549184"),
    (lambda xb, yb: dnn.pool_backward(yb, _fake((1, 1, 2**16, 2**15 + 1, 16)), dnn.AVE_POOL, 2, 2, 0),
     ValueError, r"dx plane H\*W must be in \[1, 2147483647\], got 2147549184"),
])
def test_scalars_past_c_int_name_the_argument(rng, call, exc, match):
    _, xb = blocked(rng, 1, 16, 4, 4)
    with pytest.raises(exc, match=match):
        call(xb, np.empty((1, 1, 2, 2, 16), np.float32))


def test_dropout_sample_numbers_wrap_instead_of_overflowing(rng):
    x = np.ones((2, 64), np.float32)
    y, m = np.empty_like(x), np.empty_like(x)
    dnn.dropout_forward(x, y, m, 0.5, 7, 2**63 - 1)              # sample 2**63 - 1, then -2**63
    y1, m1 = np.empty_like(x[:1]), np.empty_like(x[:1])
    dnn.dropout_forward(x[1:], y1, m1, 0.5, 7, -2**63)
    np.testing.assert_array_equal(m[1:], m1)


@pytest.mark.parametrize("case", ["relu_shifted", "relu_backward_shifted", "axpby_shifted", "multiply_shifted",
                                  "dropout_mask_is_x", "dropout_mask_is_y", "softmax_prob_is_logits",
                                  "softmax_labels_in_dlogits", "bn_dz_is_x", "bn_sums_is_mean",
                                  "stats_in_x", "affine_y_is_scale", "affine2_out_is_ka", "sgd_lr_in_w"])
def test_outputs_may_not_partially_overlap_inputs(rng, case):
    buf = rng.standard_normal(4 * 16 * 16 + 64).astype(np.float32)
    x = buf[:16 * 16].reshape(1, 1, 4, 4, 16)
    shifted = buf[16:16 + 16 * 16].reshape(x.shape)           # overlaps x one pixel later
    f2 = rng.standard_normal((4, 8)).astype(np.float32)
    lab = np.zeros(4, np.int32)
    ch = np.ones(16, np.float32)
    xb = buf[:256].reshape(1, 1, 4, 4, 16)
    w = np.ones(64, np.float32)
    out, out2, d32 = np.empty_like(xb), np.zeros((4, 8), np.float32), np.zeros(32)
    calls = {
        "relu_shifted": ("y overlaps x", lambda: dnn.relu_forward(x, shifted)),
        "relu_backward_shifted": ("dx overlaps dy", lambda: dnn.relu_backward(np.ones_like(x), x, shifted)),
        "axpby_shifted": ("y overlaps x", lambda: dnn.axpby(1.0, x, 1.0, shifted)),
        "multiply_shifted": ("out overlaps a", lambda: dnn.multiply(x, np.ones_like(x), shifted)),
        "dropout_mask_is_x": ("mask overlaps x", lambda: dnn.dropout_forward(x, np.empty_like(x), x, 0.5, 1, 0)),
        "dropout_mask_is_y": ("mask overlaps y", lambda: dnn.dropout_forward(np.ones_like(x), shifted, shifted, 0.5, 1, 0)),
        "softmax_prob_is_logits": ("prob overlaps logits", lambda: dnn.softmax_xent_forward(f2, lab, f2)),
        "softmax_labels_in_dlogits": ("dlogits overlaps labels",
                                      lambda: dnn.softmax_xent_backward(f2, out2.view(np.int32)[0, :4], out2, 1.0)),
        "bn_dz_is_x": ("dz overlaps x", lambda: dnn.bn_backward_reduce(np.ones_like(xb), xb, np.zeros(16), xb, np.zeros((2, 16)))),
        "bn_sums_is_mean": ("sums overlaps mean", lambda: dnn.bn_backward_reduce(
            np.ones_like(xb), xb, d32[:16], np.empty_like(xb), d32.reshape(2, 16))),
        "stats_in_x": ("stats overlaps x", lambda: dnn.channel_stats(xb, buf[:64].view(np.float64).reshape(2, 16))),
        "affine_y_is_scale": ("y overlaps scale", lambda: dnn.channel_affine(xb, out.reshape(-1)[:16], ch, out)),
        "affine2_out_is_ka": ("out overlaps ka", lambda: dnn.channel_affine2(xb, out.reshape(-1)[:16], xb, ch, ch, out)),
        "sgd_lr_in_w": ("w overlaps lr", lambda: dnn.sgd_update(w, np.ones(64, np.float32), np.zeros(64, np.float32),
                                                                [0, 64], w[:1], np.zeros(1, np.float32), 0.9)),
    }
    match, call = calls[case]
    with pytest.raises(ValueError, match=match):
        call()


def test_elementwise_kernels_still_run_in_place(rng):
    x = rng.standard_normal((2, 40)).astype(np.float32)
    want = np.where(x > 0, x, 0.1 * x)
    dnn.relu_forward(x, x, 0.1)
    np.testing.assert_array_equal(x, want)
    a = rng.standard_normal(33).astype(np.float32)
    b = a.copy()
    dnn.axpby(2.0, a, 1.0, a)
    np.testing.assert_allclose(a, 3 * b, rtol=1e-6)
    p = rng.random((3, 5)).astype(np.float32)
    lab = np.array([0, 4, 2], np.int32)
    want = p.copy()
    want[np.arange(3), lab] -= 1
    dnn.softmax_xent_backward(p, lab, p, 1.0)
    np.testing.assert_allclose(p, want, rtol=1e-6)


def test_misaligned_integer_arrays(rng):
    z = rng.standard_normal((4, 5)).astype(np.float32)
    lab = _misaligned((4,), np.int32)
    with pytest.raises(ValueError, match="labels must be a contiguous, aligned int32"):
        dnn.softmax_xent_forward(z, lab, np.empty_like(z))
    # misaligned segments are copied to an aligned int64 array, not read as int64 in place
    seg = _misaligned((2,), np.int64)
    seg[:] = [0, 4]
    w, w2 = np.ones(4, np.float32), np.ones(4, np.float32)
    args = (np.ones(4, np.float32), np.ones(1, np.float32), np.zeros(1, np.float32), 0.0)
    dnn.sgd_update(w, args[0], np.zeros(4, np.float32), seg, *args[1:])
    dnn.sgd_update(w2, args[0], np.zeros(4, np.float32), [0, 4], *args[1:])
    np.testing.assert_array_equal(w, w2)


@pytest.mark.parametrize("threads", [1, 2])
def test_pool_backward_counts_every_bad_argmax_without_writing_outside_dx(rng, threads):
    guard = np.full(2 * 16 * 16 + 2048, 7.0, np.float32)
    dx = guard[1024:1024 + 2 * 256].reshape(2, 1, 4, 4, 16)
    dy = np.ones((2, 1, 2, 2, 16), np.float32)
    am = np.zeros(dy.shape, np.int32)
    am[0, 0, 0, 0, :3] = [16, 2**28, -2**31]                   # 2**28 * 16 wraps int32
    am[1, 0, 1, 1, 15] = 2**31 - 1
    with pytest.raises(ValueError, match=r"argmax holds positions outside the 4x4 input plane \(4 entries"):
        dnn.pool_backward(dy, dx, dnn.MAX_POOL, 2, 2, 0, argmax=am, threads=threads)
    assert (guard[:1024] == 7).all() and (guard[1024 + 512:] == 7).all()


# ---- third audit (random fuzz of the elementwise, batch-norm and softmax kernels): dimensions
# the kernels hold in C int, checked even for empty arrays; float and flag arguments named

def test_channel_blocks_past_c_int_are_refused_even_when_empty():
    x = np.zeros((1, 2**28 + 1, 0, 1, 16), np.float32)     # Cb*16 wrapped to 16: stats were written far past
    s16, c16 = np.zeros((2, 16)), np.zeros(16, np.float32)
    msg = r"x.shape\[1\] = 268435457 is too large: the kernels index it as a C int"
    with pytest.raises(ValueError, match=msg):
        dnn.channel_stats(x, s16)
    with pytest.raises(ValueError, match=msg):
        dnn.bn_backward_reduce(x, x.copy(), np.zeros(16), np.zeros_like(x), s16)
    with pytest.raises(ValueError, match=msg):
        dnn.channel_affine(x, c16, c16, np.zeros_like(x))
    with pytest.raises(ValueError, match=r"a.shape\[1\] = 268435457"):
        dnn.channel_affine2(x, c16, x.copy(), c16, c16, np.zeros_like(x))
    with pytest.raises(ValueError, match=r"x.shape\[0\] = 2147483648"):
        dnn.channel_stats(np.zeros((2**31, 1, 0, 1, 16), np.float32), s16)


@pytest.mark.parametrize("call, match", [
    (lambda z, lab: dnn.softmax_xent_forward(z, lab, np.zeros_like(z)), r"logits.shape\[1\] = 2147483648"),
    (lambda z, lab: dnn.softmax_xent_backward(z, lab, np.zeros_like(z), 1.0), r"prob.shape\[1\] = 2147483648"),
    (lambda z, lab: dnn.topk_correct(z, lab), r"logits.shape\[1\] = 2147483648"),
    (lambda z, lab: dnn.fc_forward(z, np.zeros((1, 2**31), np.float32), None, np.zeros((0, 1), np.float32)),
     r"x.shape\[1\] = 2147483648"),
])
def test_matrix_dims_past_c_int_name_the_array(call, match):
    with pytest.raises(ValueError, match=match):          # was a bare OverflowError
        call(np.zeros((0, 2**31), np.float32), np.zeros(0, np.int32))


@pytest.mark.parametrize("call, exc, match", [
    (lambda x: dnn.relu_forward(x, np.empty_like(x), 2**1024), ValueError, "negative_slope is too large for a float"),
    (lambda x: dnn.relu_backward(x, x, np.empty_like(x), None), TypeError, "negative_slope must be a real number"),
    (lambda x: dnn.axpby(2**1024, x, 1.0, np.empty_like(x)), ValueError, "alpha is too large"),
    (lambda x: dnn.axpby(1.0, x, "1.0", np.empty_like(x)), TypeError, "beta must be a real number, got str"),
    (lambda x: dnn.dropout_forward(x, np.empty_like(x), np.empty_like(x), True, 0, 0), TypeError, "ratio must be a real"),
    (lambda x: dnn.softmax_xent_backward(x, np.zeros(2, np.int32), np.empty_like(x), None), TypeError,
     "scale must be a real number"),
    (lambda x: dnn.sgd_update(x.reshape(-1), x.reshape(-1), np.zeros(x.size, np.float32), [0, x.size],
                              np.ones(1, np.float32), np.zeros(1, np.float32), 2**1024), ValueError, "momentum is too large"),
    (lambda x: dnn.sgd_update(x.reshape(-1), x.reshape(-1).copy(), np.zeros(x.size, np.float32), [0, x.size],
                              np.ones(1, np.float32), np.zeros(1, np.float32), 0.9, nesterov=2), TypeError,
     "nesterov must be a bool, got 2"),
])
def test_float_and_flag_arguments_name_themselves(call, exc, match):
    with pytest.raises(exc, match=match):
        call(np.ones((2, 3), np.float32))


def test_channel_affine_relu_flag_and_keywords(rng):
    _, xb = blocked(rng, 1, 16, 2, 2)
    ch = np.ones(16, np.float32)
    with pytest.raises(TypeError, match="relu must be a bool, got ndarray"):
        dnn.channel_affine(xb, ch, ch, np.empty_like(xb), relu=np.ones(2))
    y1, y2 = np.empty_like(xb), np.empty_like(xb)
    dnn.channel_affine(xb, ch, -ch, y1, relu=True)
    dnn.channel_affine(xb, ch, -ch, y2, relu=np.bool_(True))
    np.testing.assert_array_equal(y1, np.maximum(xb - 1, 0))
    np.testing.assert_array_equal(y1, y2)
    # keywords keep their names; numpy scalars are accepted as before
    y = np.zeros_like(xb)
    dnn.axpby(alpha=np.float32(2.0), x=xb, beta=np.int64(0), y=y)
    np.testing.assert_array_equal(y, 2 * xb)
