"""Tensors, the node interface and weight fillers shared by gxm's layers.

A tensor (:class:`Blob`) is one of three kinds:

* ``blocked`` -- an activation map in core.conv's channel-blocked layout ``(N, Cb, H, W, 16)``
  (channels past C are zero, and every layer keeps them zero);
* ``flat``    -- a matrix ``(N, C)`` (fully connected outputs, logits);
* ``label``   -- int32 ``(N,)``.

A node declares its parameters (shapes in the kernels' own layouts, with their fillers); the
net places all of them in one contiguous arena so that gradients are summed across ranks with
few Allreduce calls and the solver updates everything with one kernel call.
"""
from dataclasses import dataclass

import numpy as np

from core import conv

from .schema import PrototxtError, VARIANCE_NORMS

BLOCK = conv.BLOCK


@dataclass(frozen=True)
class Shape:
    n: int
    c: int
    h: int = 1
    w: int = 1
    kind: str = "blocked"

    @property
    def array_shape(self):
        if self.kind == "blocked":
            return (self.n, conv.blocks(self.c), self.h, self.w, BLOCK)
        if self.kind == "flat":
            return (self.n, self.c)
        if self.kind == "label":
            return (self.n,)
        return (1,)  # scalar output (loss, accuracy)

    @property
    def dtype(self):
        return np.int32 if self.kind == "label" else np.float32

    def with_batch(self, n):
        return Shape(n, self.c, self.h, self.w, self.kind)

    def __str__(self):
        if self.kind == "blocked":
            return f"{self.n}x{self.c}x{self.h}x{self.w}"
        if self.kind == "flat":
            return f"{self.n}x{self.c}"
        return f"{self.n}" if self.kind == "label" else "scalar"


SCALAR = Shape(1, 1, 1, 1, "scalar")


class Blob:
    """A named tensor: ``data``, and ``diff`` (its gradient) when something needs it."""

    def __init__(self, name):
        self.name = name
        self.shape = None
        self.data = None
        self.diff = None
        self.requires_grad = False
        self.diff_valid = False   # set by the consumer that wrote diff during this backward
        self.producer = None
        self.consumers = []

    def allocate(self, shape, with_diff):
        self.shape = shape
        self.data = np.zeros(shape.array_shape, shape.dtype)
        self.diff = np.zeros(shape.array_shape, np.float32) if with_diff else None

    def __repr__(self):
        return f"Blob({self.name!r}, {self.shape})"


@dataclass
class ParamDecl:
    """A trainable tensor of a node: its array shape, how to fill it, its solver multipliers."""
    name: str
    shape: tuple
    init: object          # rng -> np.ndarray of `shape` (float32)
    lr_mult: float = 1.0
    decay_mult: float = 1.0
    real: object = None   # bool mask of the entries that are not layout padding (None: all)


class NetContext:
    """What nodes need to know about the run: threads, ranks, batch, seeds, where errors point."""

    def __init__(self, *, path=None, threads=None, rank=0, size=1, seed=1, target=None):
        self.path = path
        self.threads = threads
        self.rank = rank
        self.size = size
        self.seed = seed
        self.target = target
        self.global_batch = None   # set by the data node
        self.local_batch = None
        self.sample_base = 0       # global id of this rank's first sample in the current batch
        self.train = True


class Node:
    """Base of every node type. Subclasses set ``type_name``, ``bottoms`` (min, max) and ``tops``
    (min, max), and implement :meth:`setup`, :meth:`forward` and (if trainable) :meth:`backward`."""

    type_name = None
    bottoms = (1, 1)
    tops = (1, 1)
    is_data = False
    has_params = False

    def __init__(self, spec, ctx, line=None, index=0):
        self.spec = spec
        self.ctx = ctx
        self.line = line
        self.index = index
        self.name = spec.name or f"{self.type_name}{index}"
        self.bottom_blobs = []
        self.top_blobs = []
        self.params = []       # arrays (views into the net's arena), in declaration order
        self.grads = []
        self.state = {}        # non-trained tensors kept in checkpoints (batch-norm running stats)
        self.propagate_down = spec.propagate_down
        self.needs_backward = False

    # -- errors ----------------------------------------------------------------------------
    def error(self, msg):
        return PrototxtError(f"node '{self.name}' ({self.type_name}): {msg}", self.ctx.path, self.line)

    def param_spec(self, i):
        """(lr_mult, decay_mult) of the i-th parameter from the node's ``param { }`` blocks."""
        if i < len(self.spec.param):
            p = self.spec.param[i]
            return p.lr_mult, p.decay_mult
        return 1.0, 1.0

    # -- interface -------------------------------------------------------------------------
    def setup(self, shapes):
        """Bottom shapes -> top shapes (called again when the batch size changes)."""
        raise NotImplementedError

    def declare_params(self):
        """ParamDecls (called once, after the first setup)."""
        return []

    def declare_state(self):
        """{name: (shape, initial value)} of checkpointed non-trained tensors."""
        return {}

    def forward(self, bottoms, tops):
        raise NotImplementedError

    def backward(self, bottoms, tops, propagate):
        """Write gradients: ``self.grads`` and, where ``propagate[i]``, ``bottoms[i].diff``."""
        raise NotImplementedError

    def flops(self):
        """Forward multiply-add flops x 2 of the current batch (for the printed rates)."""
        return 0.0


def require(cond, node, msg):
    if not cond:
        raise node.error(msg)


# ----------------------------------------------------------------------------- fillers

def make_filler(spec, node, what, default_type="constant", default_value=0.0):
    """A function (rng, logical_shape, fan_in, fan_out) -> float32 array, from a FillerParameter."""
    has = spec is not None and spec.ByteSize() > 0
    kind = (spec.type if has else default_type).lower()
    value = spec.value if has else default_value
    norm = spec.variance_norm if has else VARIANCE_NORMS["FAN_IN"]

    def fan(fan_in, fan_out):
        if norm == VARIANCE_NORMS["FAN_OUT"]:
            return fan_out
        if norm == VARIANCE_NORMS["AVERAGE"]:
            return (fan_in + fan_out) / 2.0
        return fan_in

    if kind == "constant":
        return lambda rng, shape, fi, fo: np.full(shape, value, np.float32)
    if kind == "gaussian":
        return lambda rng, shape, fi, fo: (spec.mean + spec.std * rng.standard_normal(shape)).astype(np.float32)
    if kind == "uniform":
        return lambda rng, shape, fi, fo: rng.uniform(spec.min, spec.max, shape).astype(np.float32)
    if kind == "xavier":
        def xavier(rng, shape, fi, fo):
            a = np.sqrt(3.0 / fan(fi, fo))
            return rng.uniform(-a, a, shape).astype(np.float32)
        return xavier
    if kind == "msra":
        return lambda rng, shape, fi, fo: (np.sqrt(2.0 / fan(fi, fo)) * rng.standard_normal(shape)).astype(np.float32)
    raise node.error(f"{what}: unknown filler type {spec.type!r} (constant, gaussian, uniform, xavier, msra)")


def padded_vector(values, channels):
    """A per-channel vector padded with zeros to whole 16-channel blocks (kernels' layout)."""
    out = np.zeros(conv.blocks(channels) * BLOCK, np.float32)
    out[:channels] = values
    return out
