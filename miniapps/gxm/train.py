"""Training and testing loops of gxm: data sharding, gradient Allreduce overlapped with backward,
per-iteration figures, tests, checkpoints.

Data parallelism: every rank holds the whole net; the global minibatch (``batch_size``) is cut
into equal contiguous shards, one per rank; the loss is normalised by the global batch, so the
*sum* of the ranks' gradients is the gradient of the whole minibatch. Sums run as non-blocking
``Iallreduce`` calls on contiguous slices of the gradient arena, started during backward as soon
as a slice is final. Every rank then applies the same update to the same weights.
"""
import math
import os
import time

import numpy as np

from .graph import NetContext
from .net import Net
from .schema import PrototxtError, load_net, load_solver
from .solver import CheckpointError, Solver

BUCKET_FLOATS = 1 << 20  # 4 MB: Allreduce slices big enough to run at bandwidth


class SerialComm:
    """The few communicator calls the trainer makes, for one process without MPI."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def allreduce(self, obj, op=None):
        return obj

    def Barrier(self):
        pass


class GradientReducer:
    """Sums the gradient arena over ranks in slices, started while backward still runs."""

    def __init__(self, comm, grads):
        self.comm, self.grads = comm, grads
        self.active = comm.Get_size() > 1
        self.requests, self.sent = [], 0
        if self.active:
            from mpi4py import MPI
            self.MPI = MPI

    def begin(self):
        self.requests, self.sent = [], 0

    def ready(self, end):
        if self.active and end - self.sent >= BUCKET_FLOATS:
            self._launch(end)

    def _launch(self, end):
        view = self.grads[self.sent:end]
        self.requests.append(self.comm.Iallreduce(self.MPI.IN_PLACE, view, op=self.MPI.SUM))
        self.sent = end
        self.MPI.Request.Testall(self.requests)  # let the library progress what it can

    def finish(self):
        if not self.active:
            return
        if self.sent < self.grads.size:
            self._launch(self.grads.size)
        self.MPI.Request.Waitall(self.requests)


class Trainer:
    """``Trainer(topology, solver, comm=...)``; then :meth:`train` or :meth:`test`.

    ``out`` prints on rank 0 (a function like ``print``); ``threads`` and ``target`` go to the
    kernels; ``max_iter``/``test_iter``/``test_interval`` override the solver file.
    """

    def __init__(self, topology, solver, *, comm=None, threads=None, target=None, out=print,
                 max_iter=None, test_iter=None, test_interval=None, display=None, seed=None,
                 checkpoint_dir=None):
        self.comm = comm or SerialComm()
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.out = out if self.rank == 0 else (lambda *a, **k: None)
        self.net_param, lines = load_net(topology)
        self.sp = load_solver(solver)
        for name, value in (("max_iter", max_iter), ("test_iter", test_iter), ("test_interval", test_interval),
                            ("display", display), ("random_seed", seed), ("checkpoint_dir", checkpoint_dir)):
            if value is not None:
                setattr(self.sp, name, value)
        self.ctx = NetContext(path=topology, threads=threads, rank=self.rank, size=self.size,
                              seed=self.sp.random_seed, target=target)
        self.net = Net(self.net_param, lines, self.ctx, train=True)
        self.test_ctx = NetContext(path=topology, threads=threads, rank=self.rank, size=self.size,
                                   seed=self.sp.random_seed, target=target)
        self.test_ctx.train = False
        self.test_net = Net(self.net_param, lines, self.test_ctx, train=False, share=self.net)
        self.global_batch = self.ctx.global_batch
        self.local_batch = self.ctx.local_batch
        n = self.net.data.num_samples
        if n < self.global_batch:
            raise PrototxtError(f"the training set has {n} samples, fewer than the batch size {self.global_batch}",
                                topology)
        self.iters_per_epoch = n // self.global_batch
        self.solver = Solver(self.sp, self.net, iters_per_epoch=self.iters_per_epoch, path=solver, threads=threads)
        self.reducer = GradientReducer(self.comm, self.net.grad_arena)
        self.shuffle = self._shuffle_flag()
        self._perm_epoch, self._perm = None, None
        self.history = []

    def _shuffle_flag(self):
        spec = self.net.data.spec
        return spec.data_param.shuffle if spec.HasField("data_param") else False

    # ------------------------------------------------------------------------------ data
    def _train_indices(self, it):
        """Global sample indices of this rank's shard of iteration ``it``'s minibatch."""
        epoch, b = divmod(it, self.iters_per_epoch)
        if self._perm_epoch != epoch:
            n = self.net.data.num_samples
            if self.shuffle:
                self._perm = np.random.default_rng([self.sp.random_seed, epoch]).permutation(n)
            else:
                self._perm = np.arange(n)
            self._perm_epoch = epoch
        start = b * self.global_batch + self.rank * self.local_batch
        return self._perm[start:start + self.local_batch]

    # ------------------------------------------------------------------------------ one step
    def step(self):
        it = self.solver.iteration
        net = self.net
        self.ctx.sample_base = it * self.global_batch + self.rank * self.local_batch
        net.data.fill(net.data.top_blobs, self._train_indices(it))
        t0 = time.perf_counter()
        net.forward()
        t1 = time.perf_counter()
        self.reducer.begin()
        net.backward(self.reducer.ready)
        self.reducer.finish()
        t2 = time.perf_counter()
        lr = self.solver.step()
        t3 = time.perf_counter()
        loss = sum(float(n.top_blobs[0].data[0]) for n in net.losses)
        return {"iter": it, "loss_local": loss, "fwd": t1 - t0, "bwd": t2 - t1, "update": t3 - t2,
                "total": t3 - t0, "lr": lr}

    # ------------------------------------------------------------------------------ train
    def header(self):
        mem = self.net.memory_bytes()
        return (f"gxm: net {self.net.name!r}, {len(self.net.nodes)} nodes, {self.net.parameter_count()} parameters, "
                f"global batch {self.global_batch} ({self.local_batch} per rank x {self.size}), "
                f"{self.net.data.num_samples} training samples ({self.iters_per_epoch} iterations/epoch), "
                f"solver {self.solver.type} lr_policy={self.solver.policy} max_iter={self.solver.max_iter}\n"
                f"memory: activations {mem['activations'] / 2**20:.1f} MB, parameters+gradients+history "
                f"{mem['parameters'] / 2**20:.1f} MB per rank")

    def train(self, resume=None, snapshot_at_end=True, final_test=True):
        """Train to max_iter; returns a summary dict (same on every rank)."""
        sp = self.sp
        if resume is not None or sp.load_checkpoint:
            path = self.solver.restore(resume)
            self.out(f"resumed from {path} at iteration {self.solver.iteration}")
        test_every = sp.test_interval or (sp.test_epoch * self.iters_per_epoch if sp.test_epoch else 0)
        display = max(1, sp.display)
        times, last = [], None
        while self.solver.iteration < self.solver.max_iter:
            rec = self.step()
            it = rec["iter"]
            times.append(rec)
            if (it + 1) % display == 0 or it + 1 == self.solver.max_iter:
                loss = self.comm.allreduce(rec["loss_local"])
                rec["loss"] = loss
                last = loss
                if not math.isfinite(loss):
                    raise FloatingPointError(f"the loss became {loss} at iteration {it}")
                self.history.append((it, loss))
                self.out(f"iter {it}: loss = {loss:.6f}, lr = {rec['lr']:.6g}, fwd {1e3 * rec['fwd']:.2f} ms, "
                         f"bwd {1e3 * rec['bwd']:.2f} ms, Fwd-Bwd time: {1e3 * (rec['fwd'] + rec['bwd']):.2f} ms, "
                         f"{self.global_batch / rec['total']:.1f} images/s")
            if test_every and (it + 1) % test_every == 0 and it + 1 < self.solver.max_iter:
                self.test()
            if sp.snapshot and (it + 1) % sp.snapshot == 0 and self.rank == 0:
                self.solver.save()
        summary = self._summary(times, last)
        if snapshot_at_end and self.rank == 0 and times:
            summary["checkpoint"] = self.solver.save()
        if final_test:
            summary.update(self.test())
        return summary

    def _summary(self, times, last_loss):
        # the first iteration allocates and warms caches: leave it out of the averages when we can
        timed = times[1:] if len(times) > 1 else times
        if not timed:
            return {"iterations": 0, "loss": last_loss}
        avg = {k: float(np.mean([t[k] for t in timed])) for k in ("fwd", "bwd", "update", "total")}
        slowest = self.comm.allreduce(avg["total"], op=_max_op(self.comm))
        images_per_s = self.global_batch / slowest
        self.out(f"Average Training time = {avg['total']:.6f} seconds (fwd {1e3 * avg['fwd']:.2f} ms, "
                 f"bwd+allreduce {1e3 * avg['bwd']:.2f} ms, update {1e3 * avg['update']:.2f} ms)")
        self.out(f"Training throughput = {images_per_s:.1f} images/s")
        return {"iterations": len(times), "loss": last_loss, "seconds_per_iter": slowest,
                "seconds_per_iter_local": avg["total"], "fwd_seconds": avg["fwd"], "bwd_seconds": avg["bwd"],
                "update_seconds": avg["update"], "images_per_s": images_per_s,
                "train_flops_per_iter": self.net.training_flops()}

    # ------------------------------------------------------------------------------ test
    def test(self):
        """Loss and top-k accuracy over the test set (each rank a strided share), all ranks."""
        net = self.test_net
        n = net.data.num_samples
        mine = np.arange(self.rank, n, self.size)
        per = self.test_ctx.local_batch
        limit = self.sp.test_iter * per if self.sp.test_iter else len(mine)
        mine = mine[:limit]
        loss_sum, count = 0.0, 0
        correct = np.zeros(len(net.accuracies))
        t0 = time.perf_counter()
        for start in range(0, len(mine), per):
            idx = mine[start:start + per]
            net.set_batch(len(idx))
            net.data.fill(net.data.top_blobs, idx)
            net.forward()
            loss_sum += sum(node.loss_sum for node in net.losses)
            correct += [a.correct for a in net.accuracies]
            count += len(idx)
        seconds = time.perf_counter() - t0
        totals = self.comm.allreduce(np.concatenate([[loss_sum, count], correct]))
        count = int(totals[1])
        result = {"test_images": count, "test_loss": totals[0] / max(count, 1) if net.losses else None,
                  "test_seconds": seconds}
        parts = [f"Test: {count} images"]
        if net.losses:
            parts.append(f"loss = {result['test_loss']:.6f}")
        for a, c in zip(net.accuracies, totals[2:]):
            acc = c / max(count, 1)
            result.setdefault("accuracy", acc)
            result[f"top{a.top_k}_accuracy"] = acc
            parts.append(f"Top-{a.top_k} testing accuracy = {acc:.4f}")
        self.out(", ".join(parts))
        return result


def _max_op(comm):
    try:
        from mpi4py import MPI
        return MPI.MAX if comm.Get_size() > 1 else None
    except ImportError:
        return None


def find_weights(path, solver_param):
    """A checkpoint file from ``path`` (file or directory) or the solver's checkpoint_dir."""
    where = path or solver_param.checkpoint_dir
    if os.path.isfile(where):
        return where
    latest = os.path.join(where, "latest")
    if os.path.isfile(latest):
        return where
    raise CheckpointError(f"no weights to test: {where!r} is not a checkpoint file or a directory with one")
