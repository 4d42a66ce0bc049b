"""The network: nodes from a prototxt, wired by tensor names, with one parameter arena.

* Nodes run in file order (a bottom must be produced by an earlier node). A node whose ``mode``
  is set exists only in that mode (TRAIN or TEST).
* A top with the name of a bottom ("in place", as Caffe writes ReLUs) becomes a new tensor of
  that name; a tensor read by several nodes gets a Split node, which sums their gradients.
* Parameters and their gradients live in two contiguous float32 arenas laid out in *reverse*
  node order, so that during backward the finished gradients always form a growing prefix:
  :meth:`Net.backward` reports that prefix after each node, and the trainer starts a
  non-blocking Allreduce on it while earlier layers are still computing.
* A test net shares the train net's parameter and state arrays (by node name).
"""
import time

import numpy as np

from .data import DATA_NODES
from .graph import Blob
from .layers import COMPUTE_NODES, Accuracy, SoftmaxWithLoss, Split
from .schema import MODES, NodeParameter, PrototxtError

NODE_TYPES = {**DATA_NODES, **COMPUTE_NODES}
_ALIGN = 16  # floats: each parameter starts on a 64-byte boundary


class Net:
    def __init__(self, net_param, node_lines, ctx, *, train=True, share=None):
        self.ctx = ctx
        self.train = train
        self.name = net_param.name or "net"
        self.path = ctx.path
        mode = MODES["TRAIN" if train else "TEST"]
        nodes = []
        for i, spec in enumerate(net_param.node):
            line = node_lines[i] if i < len(node_lines) else None
            if spec.HasField("mode") and spec.mode != mode:
                continue
            nodes.append(self._make_node(spec, line, len(nodes)))
        if not nodes:
            raise PrototxtError("the net has no nodes" + ("" if train else " for TEST mode"), self.path)
        names = {}
        for node in nodes:
            if node.name in names:
                raise node.error(f"the name is already used by the node at line {names[node.name].line}")
            names[node.name] = node
        self.nodes = self._wire(nodes)
        data = [n for n in self.nodes if n.is_data]
        if len(data) != 1 or not self.nodes[0].is_data:
            raise PrototxtError(f"the {'train' if train else 'test'} net needs exactly one data node, "
                                f"first (found {len(data)})", self.path)
        self.data = self.nodes[0]
        self.losses = [n for n in self.nodes if isinstance(n, SoftmaxWithLoss)]
        self.accuracies = [n for n in self.nodes if isinstance(n, Accuracy)]
        self._mark_gradients()
        self.batch = None
        self._setup()
        if share is None:
            self._allocate_params()
        else:
            self._share_params(share)
        self.timings = {n.name: [0.0, 0.0] for n in self.nodes}
        self.profile = False

    # ------------------------------------------------------------------------------ building
    def _make_node(self, spec, line, index):
        if not spec.type:
            raise PrototxtError(f"node '{spec.name}' has no type", self.path, line)
        cls = NODE_TYPES.get(spec.type)
        if cls is None:
            raise PrototxtError(f"node '{spec.name}': unknown node type {spec.type!r} (known: "
                                f"{', '.join(sorted(NODE_TYPES))})", self.path, line)
        node = cls(spec, self.ctx, line, index)
        lo, hi = cls.bottoms
        if not lo <= len(spec.bottom) <= hi:
            raise node.error(f"takes {lo if lo == hi else f'{lo} to {hi}'} bottom(s), got {len(spec.bottom)}")
        lo, hi = cls.tops
        if not lo <= len(spec.top) <= hi:
            raise node.error(f"makes {lo if lo == hi else f'{lo} to {hi}'} top(s), got {len(spec.top)}")
        return node

    def _wire(self, nodes):
        latest = {}
        for node in nodes:
            for name in node.spec.bottom:
                if name not in latest:
                    raise node.error(f"bottom '{name}' is not the top of an earlier node")
                node.bottom_blobs.append(latest[name])
                latest[name].consumers.append(node)
            for name in node.spec.top:
                blob = Blob(name)
                blob.producer = node
                node.top_blobs.append(blob)
                latest[name] = blob
        wired = []
        for node in nodes:
            wired.append(node)
            for blob in node.top_blobs:
                if len(blob.consumers) > 1 and not isinstance(node, Split):
                    wired.append(self._split(blob, len(wired)))
        self.blobs = [b for n in wired for b in n.top_blobs]
        return wired

    def _split(self, blob, index):
        spec = NodeParameter(name=f"{blob.name}_split", type="Split", bottom=[blob.name],
                             top=[f"{blob.name}_split_{i}" for i in range(len(blob.consumers))])
        split = Split(spec, self.ctx, blob.producer.line, index)
        split.bottom_blobs = [blob]
        for i, consumer in enumerate(blob.consumers):
            top = Blob(spec.top[i])
            top.producer = split
            top.consumers = [consumer]
            split.top_blobs.append(top)
            consumer.bottom_blobs = [top if b is blob else b for b in consumer.bottom_blobs]
        blob.consumers = [split]
        return split

    def _mark_gradients(self):
        for node in self.nodes:
            wants = (not node.is_data and not isinstance(node, Accuracy)
                     and (node.has_params or any(b.requires_grad for b in node.bottom_blobs)))
            node.needs_backward = wants
            for top in node.top_blobs:
                top.requires_grad = wants and not isinstance(node, SoftmaxWithLoss)
            node.propagate = [node.propagate_down and b.requires_grad for b in node.bottom_blobs]

    def _setup(self, batch=None):
        for node in self.nodes:
            shapes = [b.shape for b in node.bottom_blobs]
            try:
                tops = node.setup(shapes)
            except PrototxtError:
                raise
            except ValueError as exc:
                raise node.error(str(exc)) from None
            if node.is_data and batch is not None:
                tops = [s.with_batch(batch) for s in tops]
            for blob, shape in zip(node.top_blobs, tops):
                if blob.shape != shape:
                    self._allocate_blob(blob, shape)
            if isinstance(node, Split):
                for top in node.top_blobs:
                    top.data = node.bottom_blobs[0].data
        self.batch = self.nodes[0].top_blobs[0].shape.n

    @staticmethod
    def _allocate_blob(blob, shape):
        cache = blob.__dict__.setdefault("_cache", {})
        key = shape
        if key not in cache:
            blob.allocate(shape, blob.requires_grad)
            cache[key] = (blob.data, blob.diff)
        blob.shape = shape
        blob.data, blob.diff = cache[key]

    def set_batch(self, n):
        """Run with ``n`` images on this rank (the test net's last, smaller batch)."""
        if n != self.batch:
            self._setup(batch=n)

    def _allocate_params(self):
        rng = np.random.default_rng(self.ctx.seed)
        decls = {}
        for node in self.nodes:  # fill in forward order: the same numbers on every rank
            decls[node.name] = [(d, d.init(rng)) for d in node.declare_params()]
        offset = 0
        layout = []
        for node in reversed(self.nodes):
            for d, value in decls[node.name]:
                size = int(np.prod(d.shape))
                layout.append((node, d, value, offset, size))
                offset += -(-size // _ALIGN) * _ALIGN
            node.grad_end = offset
        self.arena = np.zeros(offset, np.float32)
        self.grad_arena = np.zeros(offset, np.float32)
        starts, lr, decay, self.param_names = [], [], [], []
        for node, d, value, start, size in layout:
            view = self.arena[start:start + size].reshape(d.shape)
            view[...] = value
            node.params.append(view)
            node.grads.append(self.grad_arena[start:start + size].reshape(d.shape))
            starts.append(start)
            lr.append(d.lr_mult)
            decay.append(d.decay_mult)
            self.param_names.append(f"{node.name}.{d.name}")
        self.segments = np.array(starts + [offset], np.int64)
        self.lr_mult = np.array(lr, np.float32)
        self.decay_mult = np.array(decay, np.float32)
        states = [(node, name, shape, init) for node in self.nodes
                  for name, (shape, init) in node.declare_state().items()]
        total = sum(int(np.prod(s)) for _, _, s, _ in states)
        self.state_arena = np.zeros(total, np.float32)
        offset = 0
        for node, name, shape, init in states:
            size = int(np.prod(shape))
            view = self.state_arena[offset:offset + size].reshape(shape)
            view[...] = init
            node.state[name] = view
            offset += size

    def _share_params(self, other):
        by_name = {n.name: n for n in other.nodes}
        for node in self.nodes:
            decls = node.declare_params()
            if not decls and not node.declare_state():
                continue
            src = by_name.get(node.name)
            if src is None or type(src) is not type(node):
                raise node.error("has parameters but no node of this name and type in the train net")
            for d, p in zip(decls, src.params):
                if p.shape != tuple(d.shape):
                    raise node.error(f"parameter {d.name} has shape {tuple(d.shape)} here, {p.shape} in the train net")
            node.params, node.grads, node.state = src.params, src.grads, src.state
        self.arena, self.grad_arena, self.state_arena = other.arena, other.grad_arena, other.state_arena
        self.segments, self.lr_mult, self.decay_mult = other.segments, other.lr_mult, other.decay_mult
        self.param_names = other.param_names

    # ------------------------------------------------------------------------------ running
    def forward(self):
        self.ctx.train = self.train
        prof = self.profile
        for node in self.nodes:
            t = time.perf_counter() if prof else 0.0
            node.forward(node.bottom_blobs, node.top_blobs)
            if prof:
                self.timings[node.name][0] += time.perf_counter() - t

    def backward(self, on_ready=None):
        """Gradients of the loss; ``on_ready(end)`` after each parameterised node: the gradient
        arena's prefix ``[0, end)`` is final."""
        for blob in self.blobs:
            blob.diff_valid = False
        prof = self.profile
        for node in reversed(self.nodes):
            if node.needs_backward:
                is_loss = isinstance(node, SoftmaxWithLoss)
                if is_loss or any(t.diff_valid for t in node.top_blobs):
                    t = time.perf_counter() if prof else 0.0
                    node.backward(node.bottom_blobs, node.top_blobs, node.propagate)
                    if prof:
                        self.timings[node.name][1] += time.perf_counter() - t
                    for blob, p in zip(node.bottom_blobs, node.propagate):
                        if p:
                            blob.diff_valid = True
                else:
                    for g in node.grads:
                        g[...] = 0  # not on a path to the loss: no gradient
            if node.grads and on_ready is not None:
                on_ready(node.grad_end)

    # ------------------------------------------------------------------------------ facts
    def forward_flops(self):
        return sum(n.flops() for n in self.nodes)

    def training_flops(self):
        """Forward + backward flops of one local batch: backward is about twice forward for
        parameterised layers (data and weight gradients), minus the skipped data gradients."""
        total = 0.0
        for n in self.nodes:
            f = n.flops()
            total += f * (2.0 + (1.0 if any(n.propagate) else 0.0)) if n.needs_backward else f
        return total

    def parameter_count(self):
        return int(sum(p.size for n in self.nodes for p in n.params))

    def memory_bytes(self):
        acts = sum(b.data.nbytes + (b.diff.nbytes if b.diff is not None else 0) for b in self.blobs
                   if not isinstance(b.producer, Split))
        return {"activations": acts, "parameters": self.arena.nbytes * 3 + self.state_arena.nbytes}

    def describe(self):
        lines = []
        for node in self.nodes:
            tops = ", ".join(f"{t.name} {t.shape}" for t in node.top_blobs)
            lines.append(f"  {node.type_name:<16s} {node.name:<24s} -> {tops}")
        return "\n".join(lines)
