"""gxm: train or test a convolutional net described in Caffe/GxM prototxt files, on this
project's own convolution and layer kernels (core.conv, core.dnn), data-parallel under MPI.

  python -m miniapps.gxm train <topology.prototxt> <solver.prototxt>
  python -m miniapps.gxm test  <topology.prototxt> <solver.prototxt> [--weights CKPT]
  mpirun -n 4 python -m miniapps.gxm train miniapps/gxm/models/resnet50/resnet50_dummy_16.prototxt \\
      miniapps/gxm/models/resnet50/solver_dummy.prototxt --max-iter 10 --no-test

Prints, per displayed iteration, the loss, forward and backward time and images/s; at the end
the average training time and throughput, and the test set's loss and top-k accuracy. Node
types, solver fields and the model zoo: docs/gxm.md.
"""
from miniapps import runtime as rt


def add_arguments(parser):
    parser.add_argument("mode", choices=("train", "test"), help="train the net, or test saved weights")
    parser.add_argument("topology", help="net prototxt (nodes)")
    parser.add_argument("solver", help="solver prototxt")
    parser.add_argument("--max-iter", type=int, default=None, metavar="N", help="override the solver's max_iter")
    parser.add_argument("--test-iter", type=int, default=None, metavar="N",
                        help="test on at most N batches per rank (default: the whole test set)")
    parser.add_argument("--test-interval", type=int, default=None, metavar="N",
                        help="test every N iterations (overrides test_epoch)")
    parser.add_argument("--display", type=int, default=None, metavar="N", help="print every N iterations")
    parser.add_argument("--no-test", action="store_true", help="train only: no test at the end")
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="CKPT",
                        help="resume training from a checkpoint (default: the latest in checkpoint_dir)")
    parser.add_argument("--weights", default=None, metavar="CKPT",
                        help="test: checkpoint file or directory (default: the solver's checkpoint_dir)")
    parser.add_argument("--checkpoint-dir", default=None, metavar="DIR", help="override checkpoint_dir")
    parser.add_argument("--min-accuracy", type=float, default=None, metavar="A",
                        help="validation: exit 1 unless the final top-1 accuracy is at least A")
    parser.add_argument("--profile", action="store_true", help="print forward/backward time per node")


def main(ctx):
    from .schema import PrototxtError
    from .solver import CheckpointError
    from .train import Trainer, find_weights
    a = ctx.args
    try:
        trainer = Trainer(a.topology, a.solver, comm=ctx.comm, threads=ctx.threads, out=ctx.print,
                          max_iter=a.max_iter, test_iter=a.test_iter, test_interval=a.test_interval,
                          display=a.display, checkpoint_dir=a.checkpoint_dir)
    except PrototxtError as exc:
        ctx.fail(str(exc))
    ctx.header(trainer.header())
    trainer.net.profile = a.profile
    try:
        if a.mode == "train":
            resume = None if a.resume is None else (a.resume or trainer.sp.checkpoint_dir)
            result = trainer.train(resume=resume, final_test=not a.no_test)
            timing = ctx.gather_timing(result.get("seconds_per_iter_local", 0.0))
            flops = result.get("train_flops_per_iter")
        else:
            trainer.solver.restore(find_weights(a.weights, trainer.sp))
            result = trainer.test()
            timing = ctx.gather_timing(result["test_seconds"])
            flops = None
    except (PrototxtError, CheckpointError) as exc:
        ctx.fail(str(exc))
    if a.profile and ctx.rank == 0:
        iters = max(1, result.get("iterations", 1))
        for node in trainer.net.nodes:
            fwd, bwd = trainer.net.timings[node.name]
            ctx.print(f"  {node.type_name:<16s} {node.name:<24s} fwd {1e3 * fwd / iters:8.3f} ms  "
                      f"bwd {1e3 * bwd / iters:8.3f} ms")
    extra = {k: (float(v) if hasattr(v, "__float__") and not isinstance(v, (bool, int)) else v)
             for k, v in result.items()}
    ctx.report(a.mode, timing, flops=flops, extra=extra)
    if a.min_accuracy is not None:
        acc = result.get("accuracy")
        if acc is None:
            ctx.fail("--min-accuracy: the net has no Accuracy node in TEST mode")
        if acc < a.min_accuracy:
            ctx.fail(f"validation FAILED: top-1 accuracy {acc:.4f} < {a.min_accuracy}")
        ctx.print(f"validation: top-1 accuracy {acc:.4f} >= {a.min_accuracy}")


if __name__ == "__main__":
    rt.run("gxm", main, add_arguments, doc=__doc__, dtype="f32", dtypes=("f32",))
