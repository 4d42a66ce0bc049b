"""gxm nodes one by one: forward against a numpy reference on logical (NCHW) tensors, backward
against central differences of a random linear objective, padded channels kept at zero."""
import numpy as np
import pytest
from google.protobuf import text_format

pytest.importorskip("core.conv")
pytest.importorskip("core.dnn")
from core import conv  # noqa: E402
from miniapps.gxm.graph import Blob, NetContext, Shape  # noqa: E402
from miniapps.gxm.net import NODE_TYPES  # noqa: E402
from miniapps.gxm.schema import NodeParameter  # noqa: E402


class Harness:
    """One node with random bottoms and parameters; L = sum(r * top) for a fixed random r."""

    def __init__(self, text, shapes, seed=0, train=True, threads=1):
        self.rng = np.random.default_rng(seed)
        self.ctx = NetContext(threads=threads, seed=3)
        self.ctx.train = train
        self.ctx.global_batch = shapes[0].n
        spec = text_format.Parse(text, NodeParameter())
        self.node = NODE_TYPES[spec.type](spec, self.ctx, 1, 0)
        out = self.node.setup(shapes)
        self.node.params, self.masks = [], []
        for d in self.node.declare_params():
            v = d.init(self.rng)
            real = np.ones(v.shape, bool) if d.real is None else d.real
            assert np.all(v[~real] == 0), f"{d.name}: the filler must leave layout padding at zero"
            v += (0.3 * self.rng.standard_normal(v.shape) * real).astype(np.float32)  # not just ones/zeros
            self.node.params.append(v)
            self.masks.append(real)
        self.node.grads = [np.zeros_like(p) for p in self.node.params]
        self.node.state = {k: init.copy() for k, (shape, init) in self.node.declare_state().items()}
        self.bottoms = [self._blob(f"b{i}", s, True) for i, s in enumerate(shapes)]
        self.tops = [self._blob(f"t{i}", s, False) for i, s in enumerate(out)]
        self.out_shapes = out
        self.r = [self._random(s) for s in out]

    def _random(self, shape):
        if shape.kind == "blocked":
            return conv.to_blocked(self.rng.standard_normal((shape.n, shape.c, shape.h, shape.w)))
        if shape.kind == "label":
            return self.rng.integers(0, 5, shape.n).astype(np.int32)
        return self.rng.standard_normal(shape.array_shape).astype(np.float32)

    def _blob(self, name, shape, fill):
        b = Blob(name)
        b.allocate(shape, shape.kind != "label")
        if fill:
            b.data[...] = self._random(shape)
        return b

    def forward(self):
        self.node.forward(self.bottoms, self.tops)
        return sum(float(np.vdot(r.astype(np.float64), t.data)) for r, t in zip(self.r, self.tops)
                   if t.shape.kind != "scalar") + sum(float(t.data[0]) for t in self.tops if t.shape.kind == "scalar")

    def backward(self):
        for r, t in zip(self.r, self.tops):
            t.diff[...] = r if t.shape.kind != "scalar" else 0
            t.diff_valid = True
        prop = [b.shape.kind != "label" for b in self.bottoms]
        for b in self.bottoms:
            if b.diff is not None:
                b.diff[...] = np.nan
        self.node.backward(self.bottoms, self.tops, prop)

    def check_gradients(self, count=12, eps=(1e-2, 3e-3, 1e-3), rtol=3e-2, atol=2e-3):
        """Central differences at random real coordinates. A ReLU or max kink inside the probe
        spoils a difference; a smaller step then gets away from it, so each coordinate may
        pass at any of the steps -- a wrong gradient fails at all of them."""
        self.forward()
        self.backward()
        tensors = [(b.data, b.diff, b.shape, None) for b in self.bottoms if b.shape.kind != "label"]
        tensors += [(p, g, None, m) for p, g, m in zip(self.node.params, self.node.grads, self.masks)]
        for value, grad, shape, mask in tensors:
            assert np.all(np.isfinite(grad)), f"{self.node.type_name}: gradient not written everywhere"
            for idx in self._real_indices(value, shape, mask, count):
                old = value[idx]
                nums = []
                for e in eps:
                    value[idx] = old + e
                    up = self.forward()
                    value[idx] = old - e
                    down = self.forward()
                    value[idx] = old
                    nums.append((up - down) / (2 * e))
                    if abs(grad[idx] - nums[-1]) <= atol + rtol * abs(nums[-1]):
                        break
                else:
                    raise AssertionError(f"{self.node.type_name}: d/d{idx} analytic {grad[idx]}, numeric {nums}")
        self.forward()

    def _real_indices(self, arr, shape, mask, count):
        """Random coordinates that hold real (not layout padding) values."""
        if shape is not None and shape.kind == "blocked":
            n, c, h, w = (self.rng.integers(0, v, count) for v in (shape.n, shape.c, shape.h, shape.w))
            return list(zip(n, c // 16, h, w, c % 16))
        real = np.flatnonzero(mask.reshape(-1)) if mask is not None else np.arange(arr.size)
        pick = self.rng.choice(real, min(count, real.size), replace=False)
        return [np.unravel_index(i, arr.shape) for i in pick]


def logical(blob):
    return conv.from_blocked(blob.data, blob.shape.c).astype(np.float64) if blob.shape.kind == "blocked" \
        else blob.data.astype(np.float64)


def assert_padding_zero(*blobs):
    for b in blobs:
        for arr in (b.data, b.diff):
            if arr is not None and b.shape.kind == "blocked" and b.shape.c % 16:
                assert np.all(arr[:, -1, ..., b.shape.c % 16:] == 0), f"{b.name}: padded channels not zero"


def ref_conv(x, w, stride, pad):
    (sh, sw), (ph, pw) = stride, pad
    n, c, h, wd = x.shape
    k, _, r, s = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (h + 2 * ph - r) // sh + 1, (wd + 2 * pw - s) // sw + 1
    y = np.zeros((n, k, oh, ow))
    for i in range(r):
        for j in range(s):
            y += np.einsum("nchw,kc->nkhw", xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw], w[:, :, i, j])
    return y


def ref_bn(z, gamma, beta, eps=1e-5):
    mean = z.mean(axis=(0, 2, 3), keepdims=True)
    var = z.var(axis=(0, 2, 3), keepdims=True)
    return gamma[None, :, None, None] * (z - mean) / np.sqrt(var + eps) + beta[None, :, None, None]


B = Shape  # shorthand: Shape(n, c, h, w[, kind])


def test_convolution():
    h = Harness('type: "Convolution" convolution_param { num_output: 19 kernel_size: 3 stride: 2 pad: 1 '
                'weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" } }',
                [B(2, 5, 7, 6)])
    h.forward()
    w = conv.weights_from_blocked(h.node.params[0], 19, 5).astype(np.float64)
    want = ref_conv(logical(h.bottoms[0]), w, (2, 2), (1, 1)) + h.node.params[1][:19][None, :, None, None]
    np.testing.assert_allclose(logical(h.tops[0]), want, rtol=1e-4, atol=1e-4)
    h.check_gradients()
    assert_padding_zero(*h.tops, *h.bottoms)


def test_convolution_rectangular_kernel():
    h = Harness('type: "Convolution" convolution_param { num_output: 4 kernel_h: 1 kernel_w: 3 pad_w: 1 bias_term: false '
                'weight_filler { type: "xavier" } }', [B(1, 17, 4, 5)])
    h.forward()
    w = conv.weights_from_blocked(h.node.params[0], 4, 17).astype(np.float64)
    np.testing.assert_allclose(logical(h.tops[0]), ref_conv(logical(h.bottoms[0]), w, (1, 1), (0, 1)),
                               rtol=1e-4, atol=1e-4)
    h.check_gradients()


@pytest.mark.parametrize("relu,eltwise", [(False, False), (False, True), (True, False), (True, True)])
def test_fused_conv_bn(relu, eltwise):
    shapes = [B(3, 6, 5, 5)] + ([B(3, 18, 5, 5)] if eltwise else [])
    h = Harness(f'type: "FusedConvBN" fused_conv_bn_param {{ num_output: 18 kernel_size: 3 pad: 1 '
                f'relu: {str(relu).lower()} eltwise: {str(eltwise).lower()} }}', shapes)
    h.forward()
    w = conv.weights_from_blocked(h.node.params[0], 18, 6).astype(np.float64)
    z = ref_conv(logical(h.bottoms[0]), w, (1, 1), (1, 1))
    want = ref_bn(z, h.node.params[1][:18].astype(np.float64), h.node.params[2][:18].astype(np.float64))
    if eltwise:
        want += logical(h.bottoms[1])
    if relu:
        want = np.maximum(want, 0)
    np.testing.assert_allclose(logical(h.tops[0]), want, rtol=1e-4, atol=1e-4)
    if not relu:
        h.check_gradients(rtol=5e-2, atol=5e-3)
    else:
        # Batch norm couples every output to every input, so some unit always sits within a
        # float32-sized probe of the ReLU's kink. Instead: the fused ReLU's gradients must be
        # those of the same node without it, fed the ReLU-gated top gradient (checked above).
        h.forward()
        h.backward()
        plain = Harness(f'type: "FusedConvBN" fused_conv_bn_param {{ num_output: 18 kernel_size: 3 pad: 1 '
                        f'eltwise: {str(eltwise).lower()} }}', shapes)
        for a, b in zip(plain.bottoms, h.bottoms):
            a.data[...] = b.data
        for a, b in zip(plain.node.params, h.node.params):
            a[...] = b
        plain.forward()
        plain.r = [h.r[0] * (h.tops[0].data > 0)]
        plain.backward()
        for a, b in zip(plain.node.grads + [x.diff for x in plain.bottoms],
                        h.node.grads + [x.diff for x in h.bottoms]):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert_padding_zero(*h.tops, *h.bottoms)


def test_fused_conv_bn_test_mode_uses_running_statistics():
    h = Harness('type: "FusedConvBN" fused_conv_bn_param { num_output: 4 kernel_size: 1 }', [B(4, 3, 3, 3)])
    h.forward()  # training step: running stats move towards the batch stats (fraction 0.9)
    w = conv.weights_from_blocked(h.node.params[0], 4, 3).astype(np.float64)
    z = ref_conv(logical(h.bottoms[0]), w, (1, 1), (0, 0))
    m = z.mean(axis=(0, 2, 3))
    np.testing.assert_allclose(h.node.state["running_mean"][:4], 0.1 * m, rtol=1e-4, atol=1e-5)
    h.ctx.train = False
    h.forward()
    rm = h.node.state["running_mean"][:4].astype(np.float64)
    rv = h.node.state["running_var"][:4].astype(np.float64)
    g, b = h.node.params[1][:4].astype(np.float64), h.node.params[2][:4].astype(np.float64)
    want = g[None, :, None, None] * (z - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-5) \
        + b[None, :, None, None]
    np.testing.assert_allclose(logical(h.tops[0]), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("relu,eltwise", [(False, False), (True, True)])
def test_fused_batch_norm(relu, eltwise):
    shapes = [B(4, 21, 3, 4)] * (2 if eltwise else 1)
    h = Harness(f'type: "FusedBatchNorm" fused_bnorm_param {{ relu: {str(relu).lower()} '
                f'eltwise: {str(eltwise).lower()} }}', shapes)
    h.forward()
    want = ref_bn(logical(h.bottoms[0]), h.node.params[0][:21].astype(np.float64),
                  h.node.params[1][:21].astype(np.float64))
    if eltwise:
        want += logical(h.bottoms[1])
    if relu:
        want = np.maximum(want, 0)
    np.testing.assert_allclose(logical(h.tops[0]), want, rtol=1e-4, atol=1e-4)
    h.check_gradients(rtol=5e-2, atol=5e-3)
    assert_padding_zero(*h.tops, *h.bottoms)


@pytest.mark.parametrize("shape", [B(3, 7, 2, 3), B(3, 11, 1, 1, "flat")])
def test_fully_connected(shape):
    h = Harness('type: "FullyConnected" fc_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 } '
                'bias_filler { type: "gaussian" } }', [shape])
    h.forward()
    x = logical(h.bottoms[0]).reshape(3, -1)
    want = x @ h.node.params[0].T.astype(np.float64) + h.node.params[1]
    np.testing.assert_allclose(h.tops[0].data, want, rtol=1e-4, atol=1e-4)
    h.check_gradients()


@pytest.mark.parametrize("text,kernel,stride,pad", [
    ('pool: MAX kernel_size: 3 stride: 2', 3, 2, 0),
    ('pool: AVE kernel_size: 3 stride: 2 pad: 1', 3, 2, 1),
    ('pool: MAX kernel_size: 2 stride: 2', 2, 2, 0),
    ('pool: AVE global_pooling: true', None, 1, 0)])
def test_pooling(text, kernel, stride, pad):
    h = Harness(f'type: "Pooling" pooling_param {{ {text} }}', [B(2, 18, 7, 7)])
    # distinct values, well apart: max pooling's gradient is then smooth under the probe
    x = (h.rng.permutation(2 * 18 * 49).reshape(2, 18, 7, 7) - 882) * 0.01
    h.bottoms[0].data[...] = conv.to_blocked(x)
    h.forward()
    k = kernel or 7
    oh = h.out_shapes[0].h
    xr = np.pad(x, ((0, 0), (0, 0), (pad, pad + k), (pad, pad + k)), constant_values=np.nan)
    want = np.zeros((2, 18, oh, oh))
    for i in range(oh):
        for j in range(oh):
            win = xr[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            if "MAX" in text:
                want[:, :, i, j] = np.nanmax(win, axis=(2, 3))
            else:  # Caffe: padding counts in the divisor, the input's far side does not
                hs, ws = i * stride - pad, j * stride - pad
                size = (min(hs + k, 7 + pad) - hs) * (min(ws + k, 7 + pad) - ws)
                want[:, :, i, j] = np.nansum(win, axis=(2, 3)) / size
    np.testing.assert_allclose(logical(h.tops[0]), want, rtol=1e-5, atol=1e-5)
    h.check_gradients(eps=(1e-3,))
    assert_padding_zero(*h.tops, *h.bottoms)


def test_relu_and_dropout():
    h = Harness('type: "ReLU" relu_param { negative_slope: 0.1 }', [B(2, 5, 3, 3)])
    x = logical(h.bottoms[0])
    x[np.abs(x) < 0.05] = 0.5  # away from the kink
    h.bottoms[0].data[...] = conv.to_blocked(x)
    h.forward()
    np.testing.assert_allclose(logical(h.tops[0]), np.where(x > 0, x, 0.1 * x), rtol=1e-6)
    h.check_gradients()

    h = Harness('type: "Dropout" dropout_param { dropout_ratio: 0.4 }', [B(4, 30, 1, 1, "flat")])
    h.forward()
    y, x = h.tops[0].data, h.bottoms[0].data
    kept = y != 0
    assert 0.3 < kept.mean() < 0.9
    np.testing.assert_allclose(y[kept], x[kept] / 0.6, rtol=1e-6)
    h.check_gradients()
    h.ctx.train = False
    h.forward()
    np.testing.assert_array_equal(h.tops[0].data, x)


def test_concat_split_eltwise():
    h = Harness('type: "Concat"', [B(2, 20, 3, 3), B(2, 5, 3, 3), B(2, 16, 3, 3)])
    h.forward()
    np.testing.assert_array_equal(logical(h.tops[0]), np.concatenate([logical(b) for b in h.bottoms], 1))
    h.check_gradients()
    assert_padding_zero(*h.tops, *h.bottoms)

    h = Harness('type: "Eltwise" eltwise_param { coeff: 1 coeff: -0.5 }', [B(2, 7, 2, 2), B(2, 7, 2, 2)])
    h.forward()
    np.testing.assert_allclose(logical(h.tops[0]), logical(h.bottoms[0]) - 0.5 * logical(h.bottoms[1]), rtol=1e-6)
    h.check_gradients()

    h = Harness('type: "Split" top: "a" top: "b"', [B(2, 7, 2, 2)])
    for t in h.tops:
        t.data = h.bottoms[0].data  # the net aliases a split's tops to its bottom
    h.forward()
    h.backward()
    np.testing.assert_allclose(h.bottoms[0].diff, h.r[0] + h.r[1], rtol=1e-6)


def test_softmax_loss_and_accuracy():
    h = Harness('type: "SoftmaxWithLoss"', [B(6, 5, 1, 1, "flat"), B(6, 1, 1, 1, "label")])
    loss = h.forward()
    z = h.bottoms[0].data.astype(np.float64)
    lab = h.bottoms[1].data
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    assert loss == pytest.approx(np.mean(lse - z[np.arange(6), lab]), rel=1e-5)
    h.check_gradients(atol=1e-4)

    h = Harness('type: "Accuracy" accuracy_param { top_k: 2 }', [B(6, 5, 1, 1, "flat"), B(6, 1, 1, 1, "label")])
    h.forward()
    z = h.bottoms[0].data
    top2 = np.argsort(-z, axis=1)[:, :2]
    assert h.node.correct == sum(lab in row for lab, row in zip(h.bottoms[1].data, top2))
    assert h.tops[0].data[0] == pytest.approx(h.node.correct / 6)


def test_shape_errors_name_the_node():
    from miniapps.gxm.schema import PrototxtError
    with pytest.raises(PrototxtError, match="node 'c' .*does not fit an input"):
        Harness('name: "c" type: "Convolution" convolution_param { num_output: 2 kernel_size: 5 }', [B(1, 3, 3, 3)])
    with pytest.raises(PrototxtError, match="needs a spatial input"):
        Harness('type: "Convolution" convolution_param { num_output: 2 kernel_size: 1 }', [B(1, 3, 1, 1, "flat")])
    with pytest.raises(PrototxtError, match="group=2"):
        Harness('type: "Convolution" convolution_param { num_output: 2 kernel_size: 1 group: 2 }', [B(1, 4, 2, 2)])
    with pytest.raises(PrototxtError, match="differ in more than channels"):
        Harness('type: "Concat"', [B(1, 3, 2, 2), B(1, 3, 3, 3)])
    with pytest.raises(PrototxtError, match="residual"):
        Harness('type: "FusedBatchNorm" fused_bnorm_param { eltwise: true }', [B(1, 3, 2, 2), B(1, 4, 2, 2)])
    with pytest.raises(PrototxtError, match="flat logits"):
        Harness('type: "SoftmaxWithLoss"', [B(2, 3, 2, 2), B(2, 1, 1, 1, "label")])
    with pytest.raises(PrototxtError, match="filler type"):
        h = Harness('type: "FullyConnected" fc_param { num_output: 2 weight_filler { type: "magic" } }',
                    [B(1, 3, 1, 1, "flat")])
