"""Solver: learning-rate policies, SGD / SGD_MC / NESTEROV updates, checkpoints.

Learning rate at iteration ``it`` (``base`` = ``learning_rate``)::

    fixed      base
    step       base * gamma ^ floor(it / stepsize)
    multistep  base * gamma ^ (number of step_values <= it)
    poly       base * (1 - it / max_iter) ^ power
    inv        base * (1 + gamma * it) ^ -power
    exp        base * gamma ^ it

During the first ``warmup_epochs`` (when ``warmup_lr`` is set) the rate ramps linearly from
``warmup_lr`` to the policy's rate. Update (per parameter, with its lr_mult and decay_mult)::

    v = momentum * v + lr * lr_mult * (g + weight_decay * decay_mult * w);  w -= v        (SGD)
    w -= (1 + momentum) * v - momentum * v_previous                                      (NESTEROV)

``SGD_MC`` is SGD whose history is rescaled by lr_t / lr_(t-1) when the rate changes (momentum
correction, which keeps warm-up stable).
"""
import json
import os

import numpy as np

from core import dnn

from .schema import PrototxtError

POLICIES = ("fixed", "step", "multistep", "poly", "inv", "exp")


class CheckpointError(ValueError):
    """A checkpoint that does not exist or does not belong to this net."""
TYPES = ("SGD", "SGD_MC", "NESTEROV")


class Solver:
    def __init__(self, sp, net, *, iters_per_epoch, path=None, threads=None):
        self.sp = sp
        self.net = net
        self.path = path
        self.threads = threads
        self.iters_per_epoch = max(1, iters_per_epoch)
        self.type = sp.type.upper()
        if self.type not in TYPES:
            raise PrototxtError(f"type {sp.type!r} is not one of {', '.join(TYPES)}", path)
        self.policy = sp.lr_policy.lower()
        if self.policy not in POLICIES:
            raise PrototxtError(f"lr_policy {sp.lr_policy!r} is not one of {', '.join(POLICIES)}", path)
        if sp.data_type != 0:
            raise PrototxtError("data_type: only FLOAT is supported", path)
        if sp.checkpoint_format.lower() not in ("binary", "npz"):
            raise PrototxtError(f"checkpoint_format {sp.checkpoint_format!r}: only 'binary' (npz) is supported", path)
        if sp.max_iter:
            self.max_iter = sp.max_iter
        elif sp.max_epochs:
            self.max_iter = sp.max_epochs * self.iters_per_epoch
        else:
            raise PrototxtError("set max_iter or max_epochs", path)
        if self.policy == "step" and sp.stepsize == 0:
            raise PrototxtError("lr_policy 'step' needs stepsize > 0", path)
        if self.policy == "multistep" and not sp.step_values:
            raise PrototxtError("lr_policy 'multistep' needs step_values", path)
        self.warmup_iters = sp.warmup_epochs * self.iters_per_epoch if sp.HasField("warmup_lr") else 0
        self.history = np.zeros_like(net.arena)
        self.iteration = 0
        self.previous_lr = None
        self._lr = np.empty_like(net.lr_mult)
        self._decay = np.empty_like(net.decay_mult)

    def learning_rate(self, it):
        sp, base = self.sp, self.sp.learning_rate
        p = self.policy
        if p == "fixed":
            lr = base
        elif p == "step":
            lr = base * sp.gamma ** (it // sp.stepsize)
        elif p == "multistep":
            lr = base * sp.gamma ** sum(1 for s in sp.step_values if it >= s)
        elif p == "poly":
            lr = base * max(0.0, 1.0 - it / self.max_iter) ** sp.power
        elif p == "inv":
            lr = base * (1.0 + sp.gamma * it) ** (-sp.power)
        else:
            lr = base * sp.gamma ** it
        if it < self.warmup_iters:
            lr = sp.warmup_lr + (lr - sp.warmup_lr) * it / self.warmup_iters
        return float(lr)

    def step(self):
        """Apply the update for the current iteration (gradients already summed over ranks)."""
        lr = self.learning_rate(self.iteration)
        momentum = self.sp.momentum
        if self.type == "SGD_MC" and self.previous_lr and self.previous_lr != lr:
            momentum *= lr / self.previous_lr
        np.multiply(self.net.lr_mult, lr, out=self._lr)
        np.multiply(self.net.decay_mult, self.sp.weight_decay, out=self._decay)
        dnn.sgd_update(self.net.arena, self.net.grad_arena, self.history, self.net.segments,
                       self._lr, self._decay, momentum, self.type == "NESTEROV", threads=self.threads)
        self.previous_lr = lr
        self.iteration += 1
        return lr

    # ------------------------------------------------------------------------------ checkpoints
    def checkpoint_path(self, directory=None, iteration=None):
        directory = directory or self.sp.checkpoint_dir
        it = self.iteration if iteration is None else iteration
        return os.path.join(directory, f"{self.net.name}_iter_{it}.npz")

    def save(self, directory=None):
        """Write params, history, state and the iteration atomically; point ``latest`` at it."""
        directory = directory or self.sp.checkpoint_dir
        os.makedirs(directory, exist_ok=True)
        path = self.checkpoint_path(directory)
        tmp = path + ".tmp.npz"
        meta = {"net": self.net.name, "iteration": self.iteration, "previous_lr": self.previous_lr,
                "params": self.net.param_names, "size": int(self.net.arena.size)}
        np.savez(tmp, params=self.net.arena, history=self.history, state=self.net.state_arena,
                 meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
        os.replace(tmp, path)
        latest = os.path.join(directory, "latest")
        with open(latest + ".tmp", "w", encoding="utf-8") as fh:
            fh.write(os.path.basename(path) + "\n")
        os.replace(latest + ".tmp", latest)
        return path

    def restore(self, path=None):
        """Load a checkpoint file, or the ``latest`` one in ``checkpoint_dir``."""
        if path is None or os.path.isdir(path):
            directory = path or self.sp.checkpoint_dir
            latest = os.path.join(directory, "latest")
            if not os.path.isfile(latest):
                raise CheckpointError(f"no checkpoint in {directory!r} (no 'latest' file)")
            with open(latest, encoding="utf-8") as fh:
                path = os.path.join(directory, fh.read().strip())
        if not os.path.isfile(path):
            raise CheckpointError(f"no checkpoint file {path!r}")
        with np.load(path) as ck:
            meta = json.loads(ck["meta"].tobytes().decode())
            if meta["params"] != self.net.param_names or meta["size"] != self.net.arena.size:
                raise CheckpointError(f"checkpoint {path!r} was written for another net "
                                      f"({meta['net']!r}, {len(meta['params'])} parameters)")
            self.net.arena[...] = ck["params"]
            self.history[...] = ck["history"]
            self.net.state_arena[...] = ck["state"]
        self.iteration = int(meta["iteration"])
        self.previous_lr = meta["previous_lr"]
        return path
