"""gxm against PyTorch CPU, in one run: the same model (built from the same prototxt, with the
same weights), the same batch, the same thread count.

    python bench/gxm.py                      # LeNet, CIFAR-10 quick (batch 64), ResNet-50 (batch 4)
    python bench/gxm.py --threads 1 --iters 20 --rounds 3 --resnet-batch 2 --json results/gxm_bench.json

Figures: training images/s (forward + backward + SGD update) for LeNet and CIFAR-10 quick,
forward+backward images/s for ResNet-50; gxm / torch ratios (> 1: gxm is faster). Before timing,
the two models' losses on the same batch are compared, so a ratio never compares different nets.
Needs ``torch`` (optional extra: ``pip install torch==2.13.0``). Timings are noisy on a shared
machine: compare the ratios within one run.
"""
import argparse
import json
import os
import re
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from threadpoolctl import threadpool_limits  # noqa: E402

from core import conv  # noqa: E402
from miniapps.gxm import schema  # noqa: E402
from miniapps.gxm.graph import NetContext  # noqa: E402
from miniapps.gxm.net import Net  # noqa: E402
from miniapps.gxm.solver import Solver  # noqa: E402

MODELS = os.path.join(os.path.dirname(HERE), "miniapps", "gxm", "models")
CASES = [  # name, prototxt, what is timed
    ("LeNet", "lenet/lenet_dummy_64.prototxt", "train"),
    ("CIFAR-10 quick", "cifar10_quick/cifar10_quick_dummy_64.prototxt", "train"),
    ("ResNet-50", "resnet50/resnet50_dummy_16.prototxt", "fwd+bwd"),
]
SOLVER = 'type: "SGD" learning_rate: 0.001 momentum: 0.9 weight_decay: 0.0005 lr_policy: "fixed" max_iter: 1000000'


def load_net(path, batch, threads):
    text = open(path).read()
    if batch:
        text = re.sub(r"shape \{ dim: (\d+) dim: (\d+)", lambda m: f"shape {{ dim: {m.group(1)} dim: {batch}", text)
    param, lines = schema.parse_net(text, path)
    return param, Net(param, lines, NetContext(path=path, threads=threads))


def torch_model(torch, param, net):
    """A torch.nn.Module running the prototxt's nodes in order, with the gxm net's weights."""
    nn = torch.nn
    by_name = {n.name: n for n in net.nodes}

    class Graph(nn.Module):
        def __init__(self):
            super().__init__()
            self.steps, self.mods = [], nn.ModuleDict()
            for spec in param.node:
                if spec.HasField("mode") and spec.mode == schema.MODES["TEST"]:
                    continue
                node = by_name[spec.name]
                key = re.sub(r"\W", "_", spec.name)
                mod = self._module(spec, node)
                if mod is not None:
                    self.mods[key] = mod
                self.steps.append((spec, key, node))

        @staticmethod
        def _module(spec, node):
            t = spec.type
            if t == "Convolution":
                p = spec.convolution_param
                m = nn.Conv2d(node.C, node.K, (node.R, node.S), node.stride, node.pad, bias=p.bias_term)
                m.weight.data = torch.from_numpy(conv.weights_from_blocked(node.params[0], node.K, node.C))
                if p.bias_term:
                    m.bias.data = torch.from_numpy(node.params[1][:node.K].copy())
                return m
            if t == "FusedConvBN":
                p = spec.fused_conv_bn_param
                c = nn.Conv2d(node.C, node.K, node.R, p.stride, p.pad, bias=False)
                c.weight.data = torch.from_numpy(conv.weights_from_blocked(node.params[0], node.K, node.C))
                bn = nn.BatchNorm2d(node.K, eps=p.eps)
                bn.weight.data = torch.from_numpy(node.params[1][:node.K].copy())
                bn.bias.data = torch.from_numpy(node.params[2][:node.K].copy())
                return nn.ModuleList([c, bn])
            if t == "FusedBatchNorm":
                bn = nn.BatchNorm2d(node.channels, eps=spec.fused_bnorm_param.eps)
                bn.weight.data = torch.from_numpy(node.params[0][:node.channels].copy())
                bn.bias.data = torch.from_numpy(node.params[1][:node.channels].copy())
                return bn
            if t == "FullyConnected":
                m = nn.Linear(node.C, node.K, bias=spec.fc_param.bias_term)
                m.weight.data = torch.from_numpy(node.params[0].copy())
                if spec.fc_param.bias_term:
                    m.bias.data = torch.from_numpy(node.params[1].copy())
                return m
            if t == "Pooling":
                if node.mode == 0:
                    return nn.MaxPool2d(node.kernel, node.stride, node.pad, ceil_mode=True)
                return nn.AvgPool2d(node.kernel, node.stride, node.pad, ceil_mode=True, count_include_pad=True)
            if t == "Dropout":
                return nn.Dropout(spec.dropout_param.dropout_ratio)
            return None

        def forward(self, x, labels):
            blobs = {"data": x, "label": labels}
            loss = None
            for spec, key, node in self.steps:
                t = spec.type
                ins = [blobs[b] for b in spec.bottom]
                if t in ("DummyData", "Accuracy"):
                    continue
                if t == "Convolution":
                    y = self.mods[key](ins[0])
                elif t in ("FusedConvBN", "FusedBatchNorm"):
                    p = spec.fused_conv_bn_param if t == "FusedConvBN" else spec.fused_bnorm_param
                    if t == "FusedConvBN":
                        y = self.mods[key][1](self.mods[key][0](ins[0]))
                    else:
                        y = self.mods[key](ins[0])
                    if p.eltwise:
                        y = y + ins[1]
                    if p.relu:
                        y = torch.relu(y)
                elif t == "FullyConnected":
                    y = self.mods[key](torch.flatten(ins[0], 1))
                elif t in ("Pooling", "Dropout"):
                    y = self.mods[key](ins[0])
                elif t == "ReLU":
                    y = torch.relu(ins[0])
                elif t == "Concat":
                    y = torch.cat(ins, 1)
                elif t == "Eltwise":
                    coeff = list(spec.eltwise_param.coeff) or [1.0] * len(ins)
                    y = sum(c * v for c, v in zip(coeff, ins))
                elif t == "SoftmaxWithLoss":
                    loss = nn.functional.cross_entropy(ins[0], ins[1])
                    continue
                else:
                    raise ValueError(f"bench: no torch equivalent for node type {t}")
                blobs[spec.top[0]] = y
            return loss

    return Graph()


def time_loop(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t) / iters


def run_case(torch, name, rel, what, threads, batch, iters, warmup, rounds=3):
    path = os.path.join(MODELS, rel)
    param, net = load_net(path, batch, threads)
    n = net.batch
    net.data.fill(net.data.top_blobs, np.arange(n))
    solver = Solver(schema.parse_solver(SOLVER), net, iters_per_epoch=1, threads=threads)

    def gxm_step():
        net.forward()
        net.backward()
        if what == "train":
            solver.step()

    model = torch_model(torch, param, net)
    model.train()
    x = torch.from_numpy(conv.from_blocked(net.data.top_blobs[0].data, net.data.top_blobs[0].shape.c))
    labels = torch.from_numpy(net.data.top_blobs[1].data.astype(np.int64))
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=0.0005)

    def torch_step():
        opt.zero_grad(set_to_none=True)
        loss = model(x, labels)
        loss.backward()
        if what == "train":
            opt.step()

    # same model? (dropout off for the comparison: the two draw different masks)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p_saved, m.p = m.p, 0.0
    drops = [nd for nd in net.nodes if nd.type_name == "Dropout"]
    saved = [d.ratio for d in drops]
    for d in drops:
        d.ratio = 0.0
    torch.set_num_threads(threads)
    with threadpool_limits(1, user_api="blas"):
        net.forward()
    ours = float(net.losses[0].top_blobs[0].data[0])
    with torch.no_grad():
        theirs = float(model(x, labels))
    for d, r in zip(drops, saved):
        d.ratio = r
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = m.p_saved
    if abs(ours - theirs) > 1e-3 * max(1.0, abs(theirs)):
        raise SystemExit(f"{name}: gxm loss {ours} and torch loss {theirs} differ: not the same model")

    # rounds alternate the two engines and keep each one's best: on a shared machine a burst of
    # someone else's load then hits both, and rarely the same engine's every round
    t_gxm = t_torch = float("inf")
    for r in range(rounds):
        with threadpool_limits(1, user_api="blas"):
            t_gxm = min(t_gxm, time_loop(gxm_step, iters, warmup if r == 0 else 0))
        t_torch = min(t_torch, time_loop(torch_step, iters, warmup if r == 0 else 0))
    return {"model": name, "timed": what, "batch": n, "threads": threads, "gxm_s": t_gxm, "torch_s": t_torch,
            "gxm_images_per_s": n / t_gxm, "torch_images_per_s": n / t_torch, "ratio": t_torch / t_gxm,
            "loss_gxm": ours, "loss_torch": theirs}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="alternating timed rounds per engine; the best counts")
    ap.add_argument("--batch", type=int, default=64, help="LeNet and CIFAR-10 quick batch")
    ap.add_argument("--resnet-batch", type=int, default=4)
    ap.add_argument("--resnet-iters", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=[c[0] for c in CASES])
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        raise SystemExit("bench/gxm.py compares with PyTorch: pip install torch==2.13.0") from None
    from core import cpu
    print(f"gxm vs torch {torch.__version__} (CPU), {cpu.model()}, target {cpu.target()}")
    print(f"{'model':<16s} {'timed':<8s} {'batch':>5s} {'thr':>3s} {'gxm img/s':>10s} {'torch img/s':>12s} {'ratio':>6s}")
    rows = []
    for name, rel, what in CASES:
        if name not in args.models:
            continue
        resnet = name == "ResNet-50"
        for threads in args.threads:
            row = run_case(torch, name, rel, what, threads, args.resnet_batch if resnet else args.batch,
                           args.resnet_iters if resnet else args.iters, 1 if resnet else args.warmup,
                           args.rounds)
            rows.append(row)
            print(f"{name:<16s} {what:<8s} {row['batch']:>5d} {threads:>3d} {row['gxm_images_per_s']:>10.1f} "
                  f"{row['torch_images_per_s']:>12.1f} {row['ratio']:>6.2f}", flush=True)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump({"torch": torch.__version__, "cpu": cpu.model(), "target": cpu.target(), "results": rows}, fh,
                      indent=1)
    return rows


if __name__ == "__main__":
    main()
