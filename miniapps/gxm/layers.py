"""Compute, plumbing and output nodes of gxm, each a thin shell over core.conv / core.dnn.

Every forward and backward is a few calls into nogil kernels per minibatch; nothing here loops
over images or pixels in Python.
"""
import numpy as np

from core import conv, dnn

from .graph import BLOCK, SCALAR, Node, ParamDecl, Shape, make_filler, padded_vector, require
from .schema import POOL_METHODS


def _hw(p, name):
    """(h, w) of a Caffe-style size: ``kernel_size``/``stride``/``pad``, or their ``_h``/``_w``."""
    both = getattr(p, "kernel_size" if name == "kernel" else name)
    h = getattr(p, f"{name}_h") if p.HasField(f"{name}_h") else both
    w = getattr(p, f"{name}_w") if p.HasField(f"{name}_w") else both
    return int(h), int(w)


def _weight_mask(k, c, r, s):
    return conv.weights_to_blocked(np.ones((k, c, r, s), np.float32)) != 0


class _PlanCache:
    """ConvPlans by batch size (the test net may see a smaller last batch)."""

    def __init__(self, make):
        self.make, self.plans = make, {}

    def get(self, n):
        if n not in self.plans:
            self.plans[n] = self.make(n)
        return self.plans[n]


class Convolution(Node):
    type_name = "Convolution"
    has_params = True

    def setup(self, shapes):
        (x,) = shapes
        p = self.spec.convolution_param
        require(x.kind == "blocked", self, f"needs a spatial input, got a {x.kind} tensor {x}")
        require(p.HasField("num_output") and p.num_output > 0, self, "convolution_param.num_output must be > 0")
        require(p.group == 1, self, f"group={p.group}: grouped convolution is not supported")
        self.R, self.S = _hw(p, "kernel")
        require(self.R > 0 and self.S > 0, self, "convolution_param.kernel_size must be > 0")
        self.stride, self.pad = _hw(p, "stride"), _hw(p, "pad")
        self.C, self.K = x.c, p.num_output
        try:
            oh = conv.output_size(x.h, self.R, self.stride[0], self.pad[0])
            ow = conv.output_size(x.w, self.S, self.stride[1], self.pad[1])
            if not hasattr(self, "plans"):  # setup runs again when the batch size changes
                self.plans = _PlanCache(lambda n: conv.ConvPlan(
                    n, self.C, x.h, x.w, self.K, self.R, self.S, self.stride, self.pad,
                    threads=self.ctx.threads, target=self.ctx.target))
            self.plan = self.plans.get(x.n)
        except ValueError as exc:
            raise self.error(f"input {x}: {exc}") from None
        self.bias_term = p.bias_term
        return [Shape(x.n, self.K, oh, ow)]

    def declare_params(self):
        p = self.spec.convolution_param
        fan_in, fan_out = self.C * self.R * self.S, self.K * self.R * self.S
        wfill = make_filler(p.weight_filler if p.HasField("weight_filler") else None, self, "weight_filler",
                            default_type="xavier")
        lr, decay = self.param_spec(0)
        decls = [ParamDecl("weight", self.plan.weight_shape,
                           lambda rng: conv.weights_to_blocked(wfill(rng, (self.K, self.C, self.R, self.S), fan_in, fan_out)),
                           lr, decay, _weight_mask(self.K, self.C, self.R, self.S))]
        if self.bias_term:
            bfill = make_filler(p.bias_filler if p.HasField("bias_filler") else None, self, "bias_filler")
            lr, decay = self.param_spec(1)
            decls.append(ParamDecl("bias", (conv.blocks(self.K) * BLOCK,),
                                   lambda rng: padded_vector(bfill(rng, (self.K,), fan_in, fan_out), self.K),
                                   lr, decay, padded_vector(np.ones(self.K), self.K) != 0))
        return decls

    def flops(self):
        return self.plan.flops()

    def forward(self, bottoms, tops):
        self.plan = self.plans.get(bottoms[0].data.shape[0])
        self.plan.forward(bottoms[0].data, self.params[0], tops[0].data,
                          bias=self.params[1] if self.bias_term else None)

    def backward(self, bottoms, tops, propagate):
        dy = tops[0].diff
        self.plan.backward_weights(dy, self.grads[0], self.grads[1] if self.bias_term else None)
        if propagate[0]:
            self.plan.backward_data(dy, self.params[0], bottoms[0].diff)


class _BatchNormMixin:
    """Batch normalisation over (N, H, W) per channel, on blocked tensors, with the ReLU and the
    residual sum that GxM fuses into it. Statistics are this rank's minibatch (as GxM/Caffe);
    running averages are for testing."""

    def bn_setup(self, p, channels, shape):
        self.eps = float(p.eps)
        self.fraction = float(p.moving_average_fraction)
        self.relu = p.relu
        self.eltwise = p.eltwise
        self.channels = channels
        self.cp = conv.blocks(channels) * BLOCK
        self.mean = np.zeros(self.cp)
        self.var = np.zeros(self.cp)
        self.stats = np.zeros((2, self.cp))
        self.sums = np.zeros((2, self.cp))
        self.invstd = np.zeros(self.cp)

    def bn_params(self, index):
        lr, decay = self.param_spec(index)
        c = self.channels
        real = padded_vector(np.ones(c), c) != 0
        return [ParamDecl("scale", (self.cp,), lambda rng: padded_vector(np.ones(c), c), lr, decay, real),
                ParamDecl("shift", (self.cp,), lambda rng: padded_vector(np.zeros(c), c), lr, decay, real)]

    def declare_state(self):
        c = self.channels
        return {"running_mean": ((self.cp,), padded_vector(np.zeros(c), c)),
                "running_var": ((self.cp,), padded_vector(np.ones(c), c))}

    def use_global_stats(self):
        return not self.ctx.train

    def bn_forward(self, z, stats_ready, gamma, beta, residual, y):
        """y = relu(gamma * (z - mean) / sqrt(var + eps) + beta + residual)."""
        count = z.shape[0] * z.shape[2] * z.shape[3]
        if self.use_global_stats():
            self.mean[:] = self.state["running_mean"]
            self.var[:] = self.state["running_var"]
        else:
            if not stats_ready:
                dnn.channel_stats(z, self.stats, threads=self.ctx.threads)
            self.mean[:] = self.stats[0] / count
            self.var[:] = np.maximum(self.stats[1] / count - self.mean ** 2, 0.0)
            f = self.fraction
            unbiased = count / max(count - 1, 1)
            self.state["running_mean"][:] = f * self.state["running_mean"] + (1 - f) * self.mean
            self.state["running_var"][:] = f * self.state["running_var"] + (1 - f) * self.var * unbiased
        self.invstd[:] = 1.0 / np.sqrt(self.var + self.eps)
        scale = (gamma * self.invstd).astype(np.float32)
        shift = (beta - self.mean * gamma * self.invstd).astype(np.float32)
        dnn.channel_affine(z, scale, shift, y, residual=residual, relu=self.relu, threads=self.ctx.threads)

    def bn_backward(self, z, y, dy, gamma, dgamma, dbeta, dz, dz_in):
        """dz = relu'(y) * dy (also the residual's gradient); dz_in = gradient w.r.t. z (not
        computed when None)."""
        count = z.shape[0] * z.shape[2] * z.shape[3]
        dnn.bn_backward_reduce(dy, z, self.mean, dz, self.sums, y=y if self.relu else None,
                               threads=self.ctx.threads)
        dbeta[:] = self.sums[0]
        dgamma[:] = self.sums[1] * self.invstd
        if dz_in is None:
            return
        g = gamma.astype(np.float64)
        ka = g * self.invstd
        kx = -g * self.invstd ** 2 * dgamma / count
        k0 = -ka * self.sums[0] / count - kx * self.mean
        dnn.channel_affine2(dz, ka.astype(np.float32), z, kx.astype(np.float32), k0.astype(np.float32),
                            dz_in, threads=self.ctx.threads)


class FusedBatchNorm(_BatchNormMixin, Node):
    type_name = "FusedBatchNorm"
    has_params = True
    bottoms = (1, 2)

    def setup(self, shapes):
        p = self.spec.fused_bnorm_param
        x = shapes[0]
        require(x.kind == "blocked", self, f"needs a spatial input, got {x.kind} {x}")
        require(len(shapes) == (2 if p.eltwise else 1), self,
                "takes 2 bottoms with eltwise: true (the residual), else 1")
        if p.eltwise:
            require(shapes[1] == x, self, f"residual {shapes[1]} must have the shape of the input {x}")
        self.bn_setup(p, x.c, x)
        self.global_stats = p.use_global_stats if p.HasField("use_global_stats") else None
        self.dz = None
        return [x]

    def use_global_stats(self):
        return self.global_stats if self.global_stats is not None else not self.ctx.train

    def declare_params(self):
        return self.bn_params(0)

    def forward(self, bottoms, tops):
        residual = bottoms[1].data if self.eltwise else None
        self.bn_forward(bottoms[0].data, False, self.params[0], self.params[1], residual, tops[0].data)

    def backward(self, bottoms, tops, propagate):
        x = bottoms[0].data
        if self.eltwise and propagate[1]:
            dz = bottoms[1].diff  # the residual's gradient is dz itself
        else:
            if self.dz is None or self.dz.shape != x.shape:
                self.dz = np.empty_like(x)
            dz = self.dz
        dz_in = bottoms[0].diff if propagate[0] else None
        self.bn_backward(x, tops[0].data, tops[0].diff, self.params[0], self.grads[0], self.grads[1], dz, dz_in)


class FusedConvBN(_BatchNormMixin, Node):
    """Convolution (no bias) + batch norm (+ residual sum) (+ ReLU), GxM's FusedConvBN. The
    per-channel statistics come out of the convolution kernel while each tile is in cache."""
    type_name = "FusedConvBN"
    has_params = True
    bottoms = (1, 2)

    def setup(self, shapes):
        p = self.spec.fused_conv_bn_param
        x = shapes[0]
        require(x.kind == "blocked", self, f"needs a spatial input, got {x.kind} {x}")
        require(p.HasField("num_output") and p.num_output > 0, self, "fused_conv_bn_param.num_output must be > 0")
        require(p.kernel_size > 0, self, "fused_conv_bn_param.kernel_size must be > 0")
        require(len(shapes) == (2 if p.eltwise else 1), self,
                "takes 2 bottoms with eltwise: true (the residual), else 1")
        self.R = self.S = p.kernel_size
        self.C, self.K = x.c, p.num_output
        try:
            oh = conv.output_size(x.h, self.R, p.stride, p.pad)
            ow = conv.output_size(x.w, self.S, p.stride, p.pad)
            if not hasattr(self, "plans"):
                self.plans = _PlanCache(lambda n: conv.ConvPlan(
                    n, self.C, x.h, x.w, self.K, self.R, self.S, p.stride, p.pad,
                    threads=self.ctx.threads, target=self.ctx.target))
            self.plan = self.plans.get(x.n)
        except ValueError as exc:
            raise self.error(f"input {x}: {exc}") from None
        out = Shape(x.n, self.K, oh, ow)
        if p.eltwise:
            require(shapes[1] == out, self, f"residual {shapes[1]} must have the output's shape {out}")
        self.bn_setup(p, self.K, out)
        if not hasattr(self, "z"):
            self.z = {}
        return [out]

    def declare_params(self):
        p = self.spec.fused_conv_bn_param
        fan_in, fan_out = self.C * self.R * self.S, self.K * self.R * self.S
        wfill = make_filler(p.weight_filler if p.HasField("weight_filler") else None, self, "weight_filler",
                            default_type="msra")
        lr, decay = self.param_spec(0)
        return [ParamDecl("weight", self.plan.weight_shape,
                          lambda rng: conv.weights_to_blocked(wfill(rng, (self.K, self.C, self.R, self.S), fan_in, fan_out)),
                          lr, decay, _weight_mask(self.K, self.C, self.R, self.S))] + self.bn_params(1)

    def flops(self):
        return self.plan.flops()

    def _buffers(self, shape):
        """(conv output z, relu'-gated gradient dz, gradient w.r.t. z) for a batch size."""
        n = shape[0]
        if n not in self.z:
            self.z[n] = tuple(np.empty(shape, np.float32) for _ in range(3))
        return self.z[n]

    def forward(self, bottoms, tops):
        n = bottoms[0].data.shape[0]
        self.plan = self.plans.get(n)
        z = self._buffers(tops[0].data.shape)[0]
        train_stats = not self.use_global_stats()
        self.plan.forward(bottoms[0].data, self.params[0], z, stats=self.stats if train_stats else None)
        residual = bottoms[1].data if self.eltwise else None
        self.bn_forward(z, train_stats, self.params[1], self.params[2], residual, tops[0].data)

    def backward(self, bottoms, tops, propagate):
        z, dz, dz_in = self._buffers(tops[0].data.shape)
        if self.eltwise and propagate[1]:
            dz = bottoms[1].diff  # the residual's gradient is dz itself
        self.bn_backward(z, tops[0].data, tops[0].diff, self.params[1], self.grads[1], self.grads[2], dz, dz_in)
        self.plan.backward_weights(dz_in, self.grads[0])
        if propagate[0]:
            self.plan.backward_data(dz_in, self.params[0], bottoms[0].diff)


class FullyConnected(Node):
    type_name = "FullyConnected"
    has_params = True

    def setup(self, shapes):
        (x,) = shapes
        p = self.spec.fc_param
        require(p.HasField("num_output") and p.num_output > 0, self, "fc_param.num_output must be > 0")
        require(x.kind in ("blocked", "flat"), self, f"cannot take a {x.kind} tensor")
        self.in_shape = x
        self.C = x.c * x.h * x.w
        self.K = p.num_output
        self.bias_term = p.bias_term
        self.flat_in = {}
        self.flat_din = {}
        return [Shape(x.n, self.K, 1, 1, "flat")]

    def declare_params(self):
        p = self.spec.fc_param
        wfill = make_filler(p.weight_filler if p.HasField("weight_filler") else None, self, "weight_filler",
                            default_type="xavier")
        lr, decay = self.param_spec(0)
        decls = [ParamDecl("weight", (self.K, self.C), lambda rng: wfill(rng, (self.K, self.C), self.C, self.K),
                           lr, decay)]
        if self.bias_term:
            bfill = make_filler(p.bias_filler if p.HasField("bias_filler") else None, self, "bias_filler")
            lr, decay = self.param_spec(1)
            decls.append(ParamDecl("bias", (self.K,), lambda rng: bfill(rng, (self.K,), self.C, self.K), lr, decay))
        return decls

    def flops(self):
        return 2.0 * self.in_shape.n * self.C * self.K

    def _flat(self, bottom):
        if self.in_shape.kind == "flat":
            return bottom.data
        n = bottom.data.shape[0]
        if n not in self.flat_in:
            self.flat_in[n] = np.empty((n, self.C), np.float32)
        return dnn.blocked_to_flat(bottom.data, self.in_shape.c, self.flat_in[n], threads=self.ctx.threads)

    def forward(self, bottoms, tops):
        self.x = self._flat(bottoms[0])
        dnn.fc_forward(self.x, self.params[0], self.params[1] if self.bias_term else None, tops[0].data,
                       threads=self.ctx.threads)

    def backward(self, bottoms, tops, propagate):
        dx = None
        if propagate[0]:
            if self.in_shape.kind == "flat":
                dx = bottoms[0].diff
            else:
                n = self.x.shape[0]
                if n not in self.flat_din:
                    self.flat_din[n] = np.empty((n, self.C), np.float32)
                dx = self.flat_din[n]
        dnn.fc_backward(self.x, self.params[0], tops[0].diff, self.grads[0],
                        self.grads[1] if self.bias_term else None, dx, threads=self.ctx.threads)
        if propagate[0] and self.in_shape.kind != "flat":
            dnn.flat_to_blocked(dx, self.in_shape.c, bottoms[0].diff, threads=self.ctx.threads)


class Pooling(Node):
    type_name = "Pooling"

    def setup(self, shapes):
        (x,) = shapes
        p = self.spec.pooling_param
        require(x.kind == "blocked", self, f"needs a spatial input, got {x.kind} {x}")
        self.mode = dnn.MAX_POOL if p.pool == POOL_METHODS["MAX"] else dnn.AVE_POOL
        if p.global_pooling:
            self.kernel, self.stride, self.pad = (x.h, x.w), (1, 1), (0, 0)
        else:
            self.kernel, self.stride, self.pad = _hw(p, "kernel"), _hw(p, "stride"), _hw(p, "pad")
            require(min(self.kernel) > 0, self, "pooling_param.kernel_size must be > 0 (or global_pooling: true)")
        try:
            oh = dnn.pool_output_size(x.h, self.kernel[0], self.stride[0], self.pad[0])
            ow = dnn.pool_output_size(x.w, self.kernel[1], self.stride[1], self.pad[1])
        except ValueError as exc:
            raise self.error(f"input {x}: {exc}") from None
        self.argmax = {}
        return [Shape(x.n, x.c, oh, ow)]

    def forward(self, bottoms, tops):
        y = tops[0].data
        arg = None
        if self.mode == dnn.MAX_POOL:
            if y.shape not in self.argmax:
                self.argmax[y.shape] = np.empty(y.shape, np.int32)
            arg = self.argmax[y.shape]
        dnn.pool_forward(bottoms[0].data, y, self.mode, self.kernel, self.stride, self.pad, argmax=arg,
                         threads=self.ctx.threads)

    def backward(self, bottoms, tops, propagate):
        if propagate[0]:
            dnn.pool_backward(tops[0].diff, bottoms[0].diff, self.mode, self.kernel, self.stride, self.pad,
                              argmax=self.argmax.get(tops[0].diff.shape), threads=self.ctx.threads)


class ReLU(Node):
    type_name = "ReLU"

    def setup(self, shapes):
        require(shapes[0].kind in ("blocked", "flat"), self, f"cannot take a {shapes[0].kind} tensor")
        self.slope = float(self.spec.relu_param.negative_slope)
        return [shapes[0]]

    def forward(self, bottoms, tops):
        dnn.relu_forward(bottoms[0].data, tops[0].data, self.slope, threads=self.ctx.threads)

    def backward(self, bottoms, tops, propagate):
        if propagate[0]:
            dnn.relu_backward(bottoms[0].data, tops[0].diff, bottoms[0].diff, self.slope, threads=self.ctx.threads)


class Dropout(Node):
    """Inverted dropout whose mask is a function of (seed, node, global sample id): the same on
    1 rank and on N ranks, and after a resume."""
    type_name = "Dropout"

    def setup(self, shapes):
        require(shapes[0].kind in ("blocked", "flat"), self, f"cannot take a {shapes[0].kind} tensor")
        self.ratio = float(self.spec.dropout_param.dropout_ratio)
        require(0.0 <= self.ratio < 1.0, self, f"dropout_ratio must be in [0, 1), got {self.ratio}")
        self.mask = {}
        self.seed = (self.ctx.seed * 1_000_003 + self.index) & (2 ** 63 - 1)
        return [shapes[0]]

    def forward(self, bottoms, tops):
        x, y = bottoms[0].data, tops[0].data
        if not self.ctx.train or self.ratio == 0.0:
            dnn.axpby(1.0, x, 0.0, y, threads=self.ctx.threads)
            return
        if x.shape not in self.mask:
            self.mask[x.shape] = np.empty_like(x)
        dnn.dropout_forward(x, y, self.mask[x.shape], self.ratio, self.seed, self.ctx.sample_base,
                            threads=self.ctx.threads)

    def backward(self, bottoms, tops, propagate):
        if propagate[0]:
            if self.ratio == 0.0:
                dnn.axpby(1.0, tops[0].diff, 0.0, bottoms[0].diff, threads=self.ctx.threads)
            else:
                dnn.multiply(tops[0].diff, self.mask[tops[0].diff.shape], bottoms[0].diff, threads=self.ctx.threads)


class Concat(Node):
    type_name = "Concat"
    bottoms = (1, 64)

    def setup(self, shapes):
        axis = self.spec.concat_param.axis
        require(axis == 1, self, f"concat_param.axis={axis}: only the channel axis (1) is supported")
        first = shapes[0]
        for s in shapes[1:]:
            require(s.kind == first.kind and (s.n, s.h, s.w) == (first.n, first.h, first.w), self,
                    f"bottoms {', '.join(map(str, shapes))} differ in more than channels")
        require(first.kind in ("blocked", "flat"), self, f"cannot take a {first.kind} tensor")
        self.offsets = np.cumsum([0] + [s.c for s in shapes]).tolist()
        return [Shape(first.n, self.offsets[-1], first.h, first.w, first.kind)]

    def forward(self, bottoms, tops):
        y = tops[0].data
        for b, first in zip(bottoms, self.offsets):
            if y.ndim == 2:
                y[:, first:first + b.data.shape[1]] = b.data
            else:
                dnn.copy_channels(b.data, 0, y, first, b.shape.c, threads=self.ctx.threads)

    def backward(self, bottoms, tops, propagate):
        dy = tops[0].diff
        for b, first, prop in zip(bottoms, self.offsets, propagate):
            if not prop:
                continue
            if dy.ndim == 2:
                b.diff[:] = dy[:, first:first + b.diff.shape[1]]
            else:
                dnn.copy_channels(dy, first, b.diff, 0, b.shape.c, threads=self.ctx.threads)
                if b.shape.c % BLOCK:
                    b.diff[:, -1, ..., b.shape.c % BLOCK:] = 0  # the layout's padding stays zero


class Split(Node):
    """One tensor to several consumers: tops share the bottom's data; gradients are summed.
    The net inserts one wherever a tensor has more than one consumer."""
    type_name = "Split"
    tops = (1, 64)

    def setup(self, shapes):
        return [shapes[0]] * len(self.spec.top)

    def forward(self, bottoms, tops):
        pass  # tops alias the bottom's array (set up by the net)

    def backward(self, bottoms, tops, propagate):
        if not propagate[0]:
            return
        valid = [t for t in tops if t.diff_valid]
        dx = bottoms[0].diff
        if not valid:
            dx[...] = 0
            return
        dnn.axpby(1.0, valid[0].diff, 0.0, dx, threads=self.ctx.threads)
        for t in valid[1:]:
            dnn.axpby(1.0, t.diff, 1.0, dx, threads=self.ctx.threads)


class Eltwise(Node):
    type_name = "Eltwise"
    bottoms = (2, 64)

    def setup(self, shapes):
        for s in shapes[1:]:
            require(s == shapes[0], self, f"bottoms must have one shape, got {', '.join(map(str, shapes))}")
        require(shapes[0].kind in ("blocked", "flat"), self, f"cannot take a {shapes[0].kind} tensor")
        coeff = list(self.spec.eltwise_param.coeff)
        require(not coeff or len(coeff) == len(shapes), self,
                f"eltwise_param has {len(coeff)} coeff for {len(shapes)} bottoms")
        self.coeff = coeff or [1.0] * len(shapes)
        return [shapes[0]]

    def forward(self, bottoms, tops):
        y = tops[0].data
        dnn.axpby(self.coeff[0], bottoms[0].data, 0.0, y, threads=self.ctx.threads)
        for c, b in zip(self.coeff[1:], bottoms[1:]):
            dnn.axpby(c, b.data, 1.0, y, threads=self.ctx.threads)

    def backward(self, bottoms, tops, propagate):
        for c, b, prop in zip(self.coeff, bottoms, propagate):
            if prop:
                dnn.axpby(c, tops[0].diff, 0.0, b.diff, threads=self.ctx.threads)


class SoftmaxWithLoss(Node):
    """Cross-entropy of the softmax, normalised by the *global* minibatch: summed over ranks
    (as the gradients are), it is the loss of the whole minibatch."""
    type_name = "SoftmaxWithLoss"
    bottoms = (2, 2)

    def setup(self, shapes):
        logits, labels = shapes
        require(logits.kind == "flat", self, f"needs flat logits (a FullyConnected output), got {logits}")
        require(labels.kind == "label" and labels.n == logits.n, self,
                f"second bottom must be the labels of the {logits.n} images, got {labels}")
        self.weight = self.spec.loss_weight[0] if len(self.spec.loss_weight) else 1.0
        self.prob = {}
        self.loss_sum = 0.0
        self.count = 0
        return [SCALAR]

    def forward(self, bottoms, tops):
        z = bottoms[0].data
        if z.shape not in self.prob:
            self.prob[z.shape] = np.empty_like(z)
        try:
            self.loss_sum = dnn.softmax_xent_forward(z, bottoms[1].data, self.prob[z.shape])
        except ValueError as exc:
            raise self.error(str(exc)) from None
        self.count = z.shape[0]
        tops[0].data[0] = self.loss_sum / self.ctx.global_batch

    def backward(self, bottoms, tops, propagate):
        if propagate[0]:
            z = bottoms[0].data
            dnn.softmax_xent_backward(self.prob[z.shape], bottoms[1].data, bottoms[0].diff,
                                      self.weight / self.ctx.global_batch)


class Accuracy(Node):
    type_name = "Accuracy"
    bottoms = (2, 2)

    def setup(self, shapes):
        logits, labels = shapes
        require(logits.kind == "flat", self, f"needs flat scores, got {logits}")
        require(labels.kind == "label" and labels.n == logits.n, self, f"second bottom must be labels, got {labels}")
        self.top_k = int(self.spec.accuracy_param.top_k)
        require(1 <= self.top_k <= logits.c, self, f"top_k={self.top_k} must be in 1..{logits.c}")
        self.correct = 0
        self.count = 0
        return [SCALAR]

    def forward(self, bottoms, tops):
        try:
            self.correct = dnn.topk_correct(bottoms[0].data, bottoms[1].data, self.top_k)
        except ValueError as exc:
            raise self.error(str(exc)) from None
        self.count = bottoms[0].data.shape[0]
        tops[0].data[0] = self.correct / max(self.count, 1)


COMPUTE_NODES = {cls.type_name: cls for cls in (
    Convolution, FusedConvBN, FusedBatchNorm, FullyConnected, Pooling, ReLU, Dropout, Concat,
    Split, Eltwise, SoftmaxWithLoss, Accuracy)}
