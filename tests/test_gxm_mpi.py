"""gxm under MPI (run with ``mpiexec -n 2 python -m pytest --with-mpi tests/test_gxm_mpi.py``):
N-rank data-parallel training equals 1-rank training with the same global batch, every rank
holds the same weights, and a checkpoint taken under MPI resumes exactly."""
import numpy as np
import pytest

pytest.importorskip("core.conv")
MPI = pytest.importorskip("mpi4py.MPI")
from miniapps.gxm.train import SerialComm, Trainer  # noqa: E402

# no batch norm: its statistics are per rank (as in GxM and Caffe), so only BN-free nets train
# identically on any number of ranks; dropout masks follow the global sample id, so it stays
NET = """
name: "mpi"
node { name: "data" type: "DummyData" top: "data" top: "label"
       dummy_data_param { shape { dim: 48 dim: 12 dim: 2 dim: 8 dim: 8 }
                          data_filler { type: "gaussian" std: 1 } num_classes: 4 } }
node { name: "c1" type: "Convolution" bottom: "data" top: "c1" convolution_param { num_output: 10 kernel_size: 3 } }
node { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
node { name: "c2" type: "Convolution" bottom: "c1" top: "c2" convolution_param { num_output: 6 kernel_size: 1 } }
node { name: "cat" type: "Concat" bottom: "c1" bottom: "c2" top: "cat" }
node { name: "p" type: "Pooling" bottom: "cat" top: "p" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
node { name: "fc1" type: "FullyConnected" bottom: "p" top: "fc1" fc_param { num_output: 16 } }
node { name: "d" type: "Dropout" bottom: "fc1" top: "fc1" dropout_param { dropout_ratio: 0.25 } }
node { name: "fc2" type: "FullyConnected" bottom: "fc1" top: "fc2" fc_param { num_output: 4 } }
node { name: "acc" type: "Accuracy" bottom: "fc2" bottom: "label" top: "acc" mode: TEST }
node { name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }
"""
SOLVER = """type: "NESTEROV" learning_rate: 0.05 momentum: 0.9 weight_decay: 0.001
lr_policy: "step" stepsize: 3 gamma: 0.5 max_iter: 8 display: 1 test_epoch: 0"""


@pytest.fixture
def files(tmp_path_factory):
    comm = MPI.COMM_WORLD
    d = comm.bcast(str(tmp_path_factory.mktemp("gxm_mpi")) if comm.rank == 0 else None)
    if comm.rank == 0:
        with open(f"{d}/net.prototxt", "w") as fh:
            fh.write(NET)
        with open(f"{d}/solver.prototxt", "w") as fh:
            fh.write(SOLVER)
    comm.Barrier()
    return d


def quiet(**kw):
    return dict(threads=1, out=lambda *a, **k: None, **kw)


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("bucket", [1 << 20, 97])
def test_ranks_train_like_one_rank(files, bucket, monkeypatch):
    # bucket 97 floats: many Iallreduce slices started during backward, not one at the end
    from miniapps.gxm import train as train_module
    monkeypatch.setattr(train_module, "BUCKET_FLOATS", bucket)
    comm = MPI.COMM_WORLD
    many = Trainer(f"{files}/net.prototxt", f"{files}/solver.prototxt", comm=comm, **quiet())
    assert many.local_batch * comm.size == many.global_batch == 12
    launched = []
    ready = many.reducer.ready
    many.reducer.ready = lambda end: (ready(end), launched.append(len(many.reducer.requests)))
    summary = many.train(snapshot_at_end=False)
    assert (max(launched) > 1) == (bucket < 1000), "slices must start during backward when the bucket is small"
    one = Trainer(f"{files}/net.prototxt", f"{files}/solver.prototxt", comm=SerialComm(), **quiet())
    ref = one.train(snapshot_at_end=False)
    np.testing.assert_allclose(many.net.arena, one.net.arena, rtol=2e-4, atol=2e-6)
    np.testing.assert_allclose([l for _, l in many.history], [l for _, l in one.history], rtol=1e-4)
    assert summary["test_images"] == ref["test_images"] == 48
    assert summary["accuracy"] == pytest.approx(ref["accuracy"], abs=1 / 48)
    # every rank ends with bit-identical weights
    digests = comm.allgather(many.net.arena.tobytes())
    assert all(d == digests[0] for d in digests)


@pytest.mark.mpi(min_size=2)
def test_resume_under_mpi(files):
    comm = MPI.COMM_WORLD
    ck = comm.bcast(f"{files}/ck_{comm.size}" if comm.rank == 0 else None)
    straight = Trainer(f"{files}/net.prototxt", f"{files}/solver.prototxt", comm=comm, **quiet())
    straight.train(snapshot_at_end=False, final_test=False)
    first = Trainer(f"{files}/net.prototxt", f"{files}/solver.prototxt", comm=comm,
                    **quiet(max_iter=4, checkpoint_dir=ck))
    first.train(final_test=False)
    comm.Barrier()  # rank 0 wrote the checkpoint
    resumed = Trainer(f"{files}/net.prototxt", f"{files}/solver.prototxt", comm=comm, **quiet(checkpoint_dir=ck))
    resumed.train(resume=ck, snapshot_at_end=False, final_test=False)
    np.testing.assert_array_equal(resumed.net.arena, straight.net.arena)
    np.testing.assert_array_equal(resumed.solver.history, straight.solver.history)
