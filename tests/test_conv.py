"""core.conv: the NCHWc direct convolution against a float64 numpy reference.

Every ISA path the CPU can run, 1 and 2 threads, shapes with channel and column remainders,
strides, paddings and non-square kernels; the micro-kernel contract on its own; bad input.
"""
import numpy as np
import pytest

conv = pytest.importorskip("core.conv")
from core import cpu  # noqa: E402

TARGETS = list(cpu.available_targets())


def ref_forward(x, w, b, stride, pad):
    """float64 y[n,k] = sum_{c,r,s} w[k,c,r,s] x[n,c,oh*sh+r-ph,ow*sw+s-pw] + b[k]."""
    (sh, sw), (ph, pw) = stride, pad
    n, c, h, wd = x.shape
    k, _, r, s = w.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh, ow = (h + 2 * ph - r) // sh + 1, (wd + 2 * pw - s) // sw + 1
    y = np.zeros((n, k, oh, ow))
    for i in range(r):
        for j in range(s):
            patch = xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
            y += np.einsum("nchw,kc->nkhw", patch, w[:, :, i, j].astype(np.float64))
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    return y


def ref_backward(x, w, dy, stride, pad):
    """float64 (dx, dw, db) of ref_forward."""
    (sh, sw), (ph, pw) = stride, pad
    n, c, h, wd = x.shape
    k, _, r, s = w.shape
    oh, ow = dy.shape[2:]
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    dxp = np.zeros_like(xp)
    dw = np.zeros((k, c, r, s))
    dy = dy.astype(np.float64)
    for i in range(r):
        for j in range(s):
            dxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += np.einsum("nkhw,kc->nchw", dy, w[:, :, i, j])
            dw[:, :, i, j] = np.einsum("nkhw,nchw->kc", dy, xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw])
    return dxp[:, :, ph:ph + h, pw:pw + wd], dw, dy.sum(axis=(0, 2, 3))


def run_all(shape, stride, pad, target, threads, rng, bias=True):
    n, c, h, wd, k, r, s = shape
    x = rng.standard_normal((n, c, h, wd)).astype(np.float32)
    w = rng.standard_normal((k, c, r, s)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32) if bias else None
    plan = conv.ConvPlan(n, c, h, wd, k, r, s, stride, pad, threads=threads, target=target)
    xb, wb = conv.to_blocked(x), conv.weights_to_blocked(w)
    bb = None
    if bias:
        bb = np.zeros(plan.output_shape[1] * 16, np.float32)
        bb[:k] = b
    y = np.full(plan.output_shape, np.nan, np.float32)
    stats = np.zeros((2, plan.output_shape[1] * 16))
    plan.forward(xb, wb, y, bias=bb, stats=stats)
    dy = rng.standard_normal((n, k) + y.shape[2:4]).astype(np.float32)
    dyb = conv.to_blocked(dy)
    dx = np.full(plan.input_shape, np.nan, np.float32)
    plan.backward_data(dyb, wb, dx)
    dw = np.full(plan.weight_shape, np.nan, np.float32)
    db = np.full(plan.output_shape[1] * 16, np.nan, np.float32) if bias else None
    plan.backward_weights(dyb, dw, db)
    return x, w, b, dy, y, stats, dx, dw, db


SHAPES = [  # n, c, h, w, k, r, s
    (2, 3, 7, 9, 5, 3, 3),
    (1, 1, 8, 8, 20, 5, 5),
    (3, 17, 6, 5, 33, 3, 3),
    (2, 32, 5, 7, 16, 1, 1),
    (2, 20, 9, 6, 50, 1, 3),
    (1, 16, 11, 13, 16, 7, 7),
    (2, 3, 12, 11, 8, 7, 7),      # a first layer: fewer channels than taps per kernel row
]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("stride,pad", [((1, 1), (0, 0)), ((1, 1), (1, 1)), ((2, 2), (1, 1)), ((2, 1), (0, 2))])
def test_conv_matches_reference(shape, stride, pad, target, rng):
    n, c, h, wd, k, r, s = shape
    if pad[0] >= r or pad[1] >= s or (h + 2 * pad[0] < r) or (wd + 2 * pad[1] < s):
        pytest.skip("padding not smaller than the kernel, or kernel larger than the input")
    x, w, b, dy, y, stats, dx, dw, db = run_all(shape, stride, pad, target, 1, rng)
    yr = ref_forward(x, w, b, stride, pad)
    dxr, dwr, dbr = ref_backward(x, w, dy, stride, pad)
    scale = np.sqrt(c * r * s)
    np.testing.assert_allclose(conv.from_blocked(y, k), yr, atol=2e-5 * scale * 4, rtol=1e-4)
    kb = y.shape[1]
    assert np.all(y.transpose(0, 1, 4, 2, 3).reshape(n, kb * 16, *y.shape[2:4])[:, k:] == 0), \
        "padded output channels must stay zero"
    np.testing.assert_allclose(stats[0, :k], yr.sum(axis=(0, 2, 3)), rtol=1e-4, atol=1e-3 * scale)
    np.testing.assert_allclose(stats[1, :k], (yr ** 2).sum(axis=(0, 2, 3)), rtol=1e-4, atol=1e-3 * scale)
    np.testing.assert_allclose(conv.from_blocked(dx, c), dxr, atol=1e-4 * np.sqrt(k * r * s), rtol=1e-4)
    assert np.all(conv.from_blocked(dx, dx.shape[1] * 16)[:, c:] == 0)
    np.testing.assert_allclose(conv.weights_from_blocked(dw, k, c), dwr, rtol=1e-4,
                               atol=1e-4 * np.sqrt(n * dy[0, 0].size))
    np.testing.assert_allclose(db[:k], dbr, rtol=1e-4, atol=1e-4 * np.sqrt(dy[:, 0].size))
    full = conv.weights_from_blocked(dw, dw.shape[0] * 16, dw.shape[1] * 16)
    assert np.all(full[k:] == 0) and np.all(full[:, c:] == 0), "padded weight gradients must be zero"


@pytest.mark.parametrize("target", TARGETS)
def test_two_threads_equal_one(target, rng):
    shape, stride, pad = (4, 19, 9, 11, 37, 3, 3), (1, 1), (1, 1)
    one = run_all(shape, stride, pad, target, 1, np.random.default_rng(5))
    two = run_all(shape, stride, pad, target, 2, np.random.default_rng(5))
    for a, b in zip(one[4:], two[4:]):
        np.testing.assert_array_equal(a, b)


def test_each_backward_path_is_exercised():
    paths = {conv.ConvPlan(1, 3, 8, 8, 4, 3, 3, 1, 1).geometry["backward_data"],   # same-size: gather
             conv.ConvPlan(1, 3, 8, 8, 4, 5, 5, 1, 0).geometry["backward_data"],   # valid 5x5: scatter
             conv.ConvPlan(1, 3, 8, 8, 4, 3, 3, 2, 1).geometry["backward_data"]}   # stride 2: scatter
    assert paths == {"gather", "scatter"}
    assert conv.ConvPlan(1, 3, 8, 8, 4, 1, 1).geometry["flat"]


def test_isa_paths_agree(rng):
    if len(TARGETS) < 2:
        pytest.skip("only the generic path runs on this CPU")
    shape, stride, pad = (2, 21, 8, 10, 18, 3, 3), (2, 2), (1, 1)
    results = [run_all(shape, stride, pad, t, 1, np.random.default_rng(9)) for t in TARGETS]
    for other in results[1:]:
        for a, b in zip(results[0][4:], other[4:]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_batch_groups_do_not_change_weight_gradient(rng):
    # one (K, C) block pair: backward-weights splits the batch into groups and reduces them
    plan = conv.ConvPlan(6, 5, 6, 6, 7, 3, 3, 1, 1, threads=2)
    assert plan.geometry["groups"] > 1
    x = rng.standard_normal((6, 5, 6, 6)).astype(np.float32)
    w = rng.standard_normal((7, 5, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((6, 7, 6, 6)).astype(np.float32)
    y = np.empty(plan.output_shape, np.float32)
    plan.forward(conv.to_blocked(x), conv.weights_to_blocked(w), y)
    dw = np.empty(plan.weight_shape, np.float32)
    plan.backward_weights(conv.to_blocked(dy), dw)
    _, dwr, _ = ref_backward(x, w, dy, (1, 1), (1, 1))
    np.testing.assert_allclose(conv.weights_from_blocked(dw, 7, 5), dwr, rtol=1e-4, atol=1e-3)


def test_forward_is_a_linear_map_whose_adjoint_is_backward_data(rng):
    # <conv(x), dy> == <x, conv^T(dy)>: ties forward and backward-data without the reference
    plan = conv.ConvPlan(2, 9, 7, 8, 11, 3, 2, (2, 1), (1, 1))
    x = conv.to_blocked(rng.standard_normal((2, 9, 7, 8)))
    w = conv.weights_to_blocked(rng.standard_normal((11, 9, 3, 2)))
    dy = conv.to_blocked(rng.standard_normal((2, 11) + plan.output_shape[2:4]))
    y = np.empty(plan.output_shape, np.float32)
    dx = np.empty(plan.input_shape, np.float32)
    plan.forward(x, w, y)
    plan.backward_data(dy, w, dx)
    lhs = np.vdot(y.astype(np.float64), dy)
    rhs = np.vdot(x.astype(np.float64), dx)
    assert abs(lhs - rhs) <= 1e-4 * abs(lhs) + 1e-3


def test_backward_weights_with_explicit_input(rng):
    plan = conv.ConvPlan(1, 4, 5, 5, 4, 3, 3, 1, 1)
    x1 = conv.to_blocked(rng.standard_normal((1, 4, 5, 5)))
    x2 = conv.to_blocked(rng.standard_normal((1, 4, 5, 5)))
    w = conv.weights_to_blocked(rng.standard_normal((4, 4, 3, 3)))
    dy = conv.to_blocked(rng.standard_normal((1, 4, 5, 5)))
    y = np.empty(plan.output_shape, np.float32)
    plan.forward(x1, w, y)
    dw_a = np.empty(plan.weight_shape, np.float32)
    dw_b = np.empty(plan.weight_shape, np.float32)
    plan.backward_weights(dy, dw_a, x=x2)
    plan.forward(x2, w, y)
    plan.backward_weights(dy, dw_b)
    np.testing.assert_array_equal(dw_a, dw_b)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("bj", [1, 16, 32, 7])
def test_micro_kernel_contract(target, bj, rng):
    nmax = conv.kernel_info(target)["nmax"]
    for n in sorted({1, 2, nmax - 1, nmax} - {0}):
        k, count, bl = 5, 3, 3
        a = rng.standard_normal(16 * k * count + 40).astype(np.float32)
        aoff = np.array([0, 16 * k + 7, 2 * 16 * k + 13], np.int64)
        blen = count * 50 + k * bl + n * bj + 10
        b = rng.standard_normal(blen).astype(np.float32)
        boff = np.array([0, 50, 100], np.int64)
        ldc = 20
        c0 = rng.standard_normal(ldc * n + 16).astype(np.float32)
        bias = rng.standard_normal(16).astype(np.float32)
        want = np.zeros((n, 16))
        for p in range(count):
            A = a[aoff[p]:aoff[p] + 16 * k].reshape(k, 16).astype(np.float64)
            for j in range(n):
                want[j] += A.T @ b[boff[p] + j * bj + np.arange(k) * bl]
        for acc, init in ((False, None), (False, bias), (True, None)):
            c = c0.copy()
            conv.brgemm16(a, aoff, b, boff, bl, bj, c, ldc, n=n, k=k, accumulate=acc, bias=init,
                          target=target)
            got = np.stack([c[j * ldc:j * ldc + 16] for j in range(n)])
            base = (c0[np.arange(n)[:, None] * ldc + np.arange(16)] if acc else
                    (np.broadcast_to(bias, (n, 16)) if init is not None else 0))
            np.testing.assert_allclose(got, want + base, rtol=1e-5, atol=1e-5)
            # columns between the ldc-strided 16-vectors are not touched
            gaps = np.ones_like(c, bool)
            for j in range(n):
                gaps[j * ldc:j * ldc + 16] = False
            np.testing.assert_array_equal(c[gaps], c0[gaps])


def test_layout_round_trips(rng):
    x = rng.standard_normal((2, 19, 3, 4)).astype(np.float32)
    xb = conv.to_blocked(x)
    assert xb.shape == (2, 2, 3, 4, 16)
    np.testing.assert_array_equal(conv.from_blocked(xb, 19), x)
    w = rng.standard_normal((33, 5, 3, 2)).astype(np.float32)
    wb = conv.weights_to_blocked(w)
    assert wb.shape == (3, 1, 3, 2, 16, 16)
    np.testing.assert_array_equal(conv.weights_from_blocked(wb, 33, 5), w)
    # the weight column for (k-block, c) is the 16 output channels of that block
    np.testing.assert_array_equal(wb[1, 0, 2, 1, 4], w[16:32, 4, 2, 1])


def test_bad_input_is_a_clear_error():
    plan = conv.ConvPlan(1, 3, 5, 5, 4, 3, 3, 1, 1)
    x = np.zeros(plan.input_shape, np.float32)
    w = np.zeros(plan.weight_shape, np.float32)
    y = np.zeros(plan.output_shape, np.float32)
    with pytest.raises(ValueError, match="x must have shape"):
        plan.forward(np.zeros((1, 1, 5, 4, 16), np.float32), w, y)
    with pytest.raises(TypeError, match="w must be float32"):
        plan.forward(x, w.astype(np.float64), y)
    with pytest.raises(ValueError, match="C-contiguous"):
        plan.forward(x, w, np.zeros(plan.output_shape[::-1], np.float32).T)
    with pytest.raises(ValueError, match="bias"):
        plan.forward(x, w, y, bias=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="stats"):
        plan.forward(x, w, y, stats=np.zeros((2, 16), np.float32))
    with pytest.raises(ValueError, match="does not fit an input"):
        conv.ConvPlan(1, 3, 2, 2, 4, 5, 5, 1, 0)
    with pytest.raises(ValueError, match="pad"):
        conv.ConvPlan(1, 3, 8, 8, 4, 3, 3, 1, 3)
    with pytest.raises(ValueError, match="stride"):
        conv.ConvPlan(1, 3, 8, 8, 4, 3, 3, 0, 0)
    with pytest.raises(ValueError, match=">= 1"):
        conv.ConvPlan(0, 3, 8, 8, 4, 3, 3)
    with pytest.raises(TypeError, match="threads"):
        conv.ConvPlan(1, 3, 8, 8, 4, 3, 3, threads="two")
    with pytest.raises(ValueError, match="target"):
        conv.ConvPlan(1, 3, 8, 8, 4, 3, 3, target="sse9")
    fresh = conv.ConvPlan(1, 3, 5, 5, 4, 3, 3, 1, 0)
    with pytest.raises(ValueError, match="forward call"):
        fresh.backward_weights(np.zeros(fresh.output_shape, np.float32), np.zeros(fresh.weight_shape, np.float32))
    with pytest.raises(ValueError, match="n must be in"):
        conv.brgemm16(np.zeros(16, np.float32), [0], np.zeros(4, np.float32), [0], 1, 1,
                      np.zeros(16, np.float32), 16, n=0, k=1)
    with pytest.raises(ValueError, match="outside"):
        conv.brgemm16(np.zeros(16, np.float32), [0], np.zeros(4, np.float32), [10], 1, 1,
                      np.zeros(16, np.float32), 16, n=1, k=1)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


# ---- inputs a fuzzer found: each once crashed, read outside its buffer or wrote a read-only array

@pytest.mark.parametrize("kwargs, match", [
    (dict(bl=2**30 + 1, bj=0, ldc=16, n=1, k=3), "boff points outside b"),          # (k-1)*bl wrapped
    (dict(bl=1, bj=1, ldc=2**31 - 6, n=3, k=1), "c is too small"),                    # (n-1)*ldc wrapped
    (dict(bl=1, bj=2**31, ldc=16, n=2, k=1), "boff points outside b"),
    (dict(bl=2**63, bj=0, ldc=16, n=1, k=1), r"bl must be in"),
    (dict(bl=1, bj=0, ldc=8, n=1, k=1), r"ldc must be in"),
    (dict(bl=1, bj=0, ldc=16, n=1, k=-1), "k must be >= 0"),
    (dict(bl=1.0, bj=0, ldc=16, n=1, k=1), "bl must be an int"),
])
def test_brgemm16_sizes_cannot_wrap(kwargs, match):
    a, b, c = np.ones(64, np.float32), np.ones(64, np.float32), np.zeros(16, np.float32)
    kw = dict(kwargs)
    bl, bj, ldc = kw.pop("bl"), kw.pop("bj"), kw.pop("ldc")
    with pytest.raises((ValueError, TypeError), match=match):
        conv.brgemm16(a, np.zeros(1, np.int64), b, np.zeros(1, np.int64), bl, bj, c, ldc, **kw)


@pytest.mark.parametrize("name", ["aoff", "boff"])
@pytest.mark.parametrize("value", [2**63 - 1, 2**63 - 4, 2**62, -1])
def test_brgemm16_offsets_near_the_int64_limits(name, value):
    guard = np.full(256, 1000.0, np.float32)
    a = guard[64:128]
    a[:] = 0
    offs = {"aoff": np.zeros(1, np.int64), "boff": np.zeros(1, np.int64)}
    offs[name] = np.array([value], np.int64)
    c = np.zeros(16, np.float32)
    with pytest.raises(ValueError, match=f"{name} points outside"):
        conv.brgemm16(a, offs["aoff"], np.ones(64, np.float32), offs["boff"], 1, 1, c, 16, n=1, k=1)
    assert (c == 0).all()


def test_brgemm16_refuses_float_offsets_and_read_only_or_aliased_c():
    a, b = np.zeros(16, np.float32), np.zeros(16, np.float32)
    with pytest.raises(TypeError, match="aoff must hold integer offsets"):
        conv.brgemm16(a, [0.5], b, [0], 1, 1, np.zeros(16, np.float32), 16, n=1, k=1)
    c = np.zeros(16, np.float32)
    c.flags.writeable = False
    with pytest.raises(ValueError, match="c must be writable"):
        conv.brgemm16(a, [0], b, [0], 1, 1, c, 16, n=1, k=1)
    with pytest.raises(ValueError, match="c overlaps a"):
        conv.brgemm16(a, [0], b, [0], 1, 1, a, 16, n=1, k=1)


def test_plan_outputs_must_be_writable_and_apart_from_inputs():
    plan = conv.ConvPlan(1, 3, 5, 5, 4, 3, 3, 1, 1)
    x = np.ones(plan.input_shape, np.float32)
    w = np.ones(plan.weight_shape, np.float32)
    y = np.zeros(plan.output_shape, np.float32)
    db = np.zeros(16, np.float32)

    def ro(arr):
        arr = arr.copy()
        arr.flags.writeable = False
        return arr
    for name, call in [("y", lambda: plan.forward(x, w, ro(y))),
                       ("stats", lambda: plan.forward(x, w, y, stats=ro(np.zeros((2, 16))))),
                       ("dx", lambda: plan.backward_data(y, w, ro(x))),
                       ("dw", lambda: plan.backward_weights(y, ro(w), x=x)),
                       ("dbias", lambda: plan.backward_weights(y, np.empty_like(w), ro(db), x=x))]:
        with pytest.raises(ValueError, match=f"{name} must be writable"):
            call()
    assert plan.output_shape == plan.input_shape        # 3x3 taps, pad 1: same extent
    with pytest.raises(ValueError, match="y overlaps x"):
        plan.forward(x, w, x)
    with pytest.raises(ValueError, match="dx overlaps dy"):
        plan.backward_data(y, w, y)
    with pytest.raises(ValueError, match="dw overlaps"):
        plan.backward_weights(y, w, x=w.reshape(-1)[:x.size].reshape(x.shape))
    misaligned = np.frombuffer(bytearray(y.nbytes + 1), np.uint8)[1:].view(np.float32).reshape(y.shape)
    with pytest.raises(ValueError, match="y is not aligned"):
        plan.forward(x, w, misaligned)


@pytest.mark.parametrize("args, exc, match", [
    ((1, 1, 2**31, 4, 1, 1, 1), ValueError, "H must be in|H must be >="),
    ((0, 3, 8, 8, 4, 3, 3), ValueError, "N must be >= 1"),
    ((1.5, 3, 8, 8, 4, 3, 3), TypeError, "N must be an int"),
    ((1, 3, 8, 8, 4, 3, 3, (1, 2**31)), ValueError, r"stride\[1\] must be in"),
    ((1, 3, 8, 8, 4, 3, 3, 1, "1"), TypeError, "pad must be an int or a pair"),
])
def test_plan_sizes_name_the_argument(args, exc, match):
    with pytest.raises(exc, match=match):
        conv.ConvPlan(*args)


# ---- second audit: sizes the kernels would compute in C int, offset footprints, alignment

@pytest.mark.parametrize("args, kwargs, match", [
    ((1, 1, 2**31 - 2, 4, 1, 3, 3), dict(pad=1), r"H \+ 2\*pad\[0\] must be in"),     # padded height wraps
    ((1, 1, 4, 2**31 - 2, 1, 3, 3), dict(pad=1), r"W \+ 2\*pad\[1\] must be in"),
    ((1, 1, 2**16, 2**16, 1, 1, 1), {}, r"OH\*OW \(output pixels\) must be in"),       # 1x1: one flat row
    ((1, 1, 2**31 - 10, 64, 1, 20, 1), {}, r"H \+ R - 1 must be in"),
    ((1, 1, 2**12, 2**12, 1, 2**12, 2**12), {}, r"R\*S\*256 \(a weight block\) must be in"),
])
def test_plan_geometry_that_would_wrap_c_int(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv.ConvPlan(*args, **kwargs)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: conv.output_size(2**31, 3, 1, 0), ValueError, "size must be in"),
    (lambda: conv.output_size(8, 3, 1.0, 0), TypeError, "stride must be an int"),
    (lambda: conv.blocks(2**31), ValueError, "channels must be in"),
    (lambda: conv.from_blocked(np.zeros((1, 1, 2, 2, 16), np.float32), 2**31), ValueError, "channels must be in"),
    (lambda: conv.weights_from_blocked(np.zeros((1, 1, 1, 1, 16, 16), np.float32), 2**31, 1), ValueError,
     "out_channels must be in"),
    (lambda: conv.weights_from_blocked(np.zeros((1, 1, 1, 1, 16, 16), np.float32), 1, -2**40), ValueError,
     "in_channels must be"),
])
def test_helpers_name_sizes_past_c_int(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_brgemm16_footprints_and_offset_arrays():
    a, b, c = np.ones(64, np.float32), np.ones(64, np.float32), np.zeros(16, np.float32)
    z = np.zeros(1, np.int64)
    with pytest.raises(ValueError, match="boff points outside b"):         # k = 0: still a pointer into b
        conv.brgemm16(a, z, b, np.array([2**62]), 1, 1, c, 16, n=1, k=0)
    with pytest.raises(ValueError, match="aoff points outside a"):
        conv.brgemm16(a, np.array([2**62]), b, z, 1, 1, c, 16, n=1, k=0)
    with pytest.raises(ValueError, match=r"c is too small for n columns at ldc: needs \(n-1\)\*ldc \+ 16 = 4294967310"):
        conv.brgemm16(a, z, b, z, 1, 1, np.zeros(64, np.float32), 2**31 - 1, n=3, k=1)
    with pytest.raises(TypeError, match="boff must hold integer offsets"):
        conv.brgemm16(a, z, b, np.array([0.0]), 1, 1, c, 16, n=1, k=1)
    # misaligned int64 offsets are copied aligned (the kernels read them as int64_t)
    off = np.frombuffer(bytearray(17), np.uint8)[1:].view(np.int64)
    off[:] = [0, 16]
    want = conv.brgemm16(a, [0, 16], b, [0, 1], 1, 1, np.zeros(16, np.float32), 16, n=1, k=2)
    got = conv.brgemm16(a, off, b, [0, 1], 1, 1, np.zeros(16, np.float32), 16, n=1, k=2)
    np.testing.assert_array_equal(got, want)
    assert off.ctypes.data % 8 != 0
