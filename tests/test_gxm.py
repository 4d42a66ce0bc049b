"""gxm end to end: digits training converges, checkpoint/resume, learning-rate policies, data
nodes, the model zoo, prototxt errors, the command line (1 and 2 ranks)."""
import os
import re

import numpy as np
import pytest

pytest.importorskip("core.conv")
pytest.importorskip("core.dnn")
pytest.importorskip("google.protobuf")
from miniapps.gxm import schema  # noqa: E402
from miniapps.gxm.graph import NetContext  # noqa: E402
from miniapps.gxm.net import Net  # noqa: E402
from miniapps.gxm.schema import PrototxtError  # noqa: E402
from miniapps.gxm.solver import Solver  # noqa: E402
from miniapps.gxm.train import Trainer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "miniapps", "gxm", "models")

# A small net with every kind of node the solver and the checkpoint must carry: convolution,
# fused conv+BN with a residual, batch norm, pooling, concat, eltwise, dropout, two FCs.
SMALL_NET = """
name: "small"
node { name: "data" type: "DummyData" top: "data" top: "label"
       dummy_data_param { shape { dim: 32 dim: 8 dim: 3 dim: 9 dim: 9 }
                          data_filler { type: "gaussian" std: 1 } num_classes: 5 } }
node { name: "c1" type: "Convolution" bottom: "data" top: "c1" propagate_down: false
       convolution_param { num_output: 12 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
node { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
node { name: "cb" type: "FusedConvBN" bottom: "c1" bottom: "c1" top: "cb"
       fused_conv_bn_param { num_output: 12 kernel_size: 3 pad: 1 relu: true eltwise: true } }
node { name: "bn" type: "FusedBatchNorm" bottom: "cb" top: "bn" fused_bnorm_param { relu: true } }
node { name: "p1" type: "Pooling" bottom: "bn" top: "p1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
node { name: "c2" type: "Convolution" bottom: "p1" top: "c2" convolution_param { num_output: 7 kernel_size: 1 } }
node { name: "cat" type: "Concat" bottom: "p1" bottom: "c2" top: "cat" }
node { name: "p2" type: "Pooling" bottom: "cat" top: "p2" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
node { name: "fc1" type: "FullyConnected" bottom: "p2" top: "fc1" fc_param { num_output: 20 } }
node { name: "drop" type: "Dropout" bottom: "fc1" top: "fc1" dropout_param { dropout_ratio: 0.3 } }
node { name: "fc2" type: "FullyConnected" bottom: "fc1" top: "fc2" fc_param { num_output: 5 } }
node { name: "fc3" type: "FullyConnected" bottom: "fc1" top: "fc3" fc_param { num_output: 5 } }
node { name: "sum" type: "Eltwise" bottom: "fc2" bottom: "fc3" top: "logits" }
node { name: "acc" type: "Accuracy" bottom: "logits" bottom: "label" top: "acc" mode: TEST }
node { name: "loss" type: "SoftmaxWithLoss" bottom: "logits" bottom: "label" top: "loss" }
"""

SOLVER = """
type: "{type}"
learning_rate: 0.05
momentum: 0.9
weight_decay: 0.001
lr_policy: "step"
stepsize: 2
gamma: 0.5
max_iter: 6
warmup_lr: 0.01
warmup_epochs: 1
display: 1
test_epoch: 0
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    pytest.importorskip("sklearn")
    pytest.importorskip("PIL")
    from miniapps.gxm.datasets import export_digits
    d = tmp_path_factory.mktemp("digits")
    ntrain, ntest = export_digits(str(d))
    assert (ntrain, ntest) == (1438, 359)
    return d


def digits_files(tmp_path, digits_dir, solver_extra=""):
    with open(os.path.join(MODELS, "lenet", "lenet_digits.prototxt")) as fh:
        net = fh.read().replace("data/digits/", f"{digits_dir}/")
    with open(os.path.join(MODELS, "lenet", "lenet_digits_solver.prototxt")) as fh:
        solver = fh.read() + solver_extra
    return write(tmp_path, "net.prototxt", net), write(tmp_path, "solver.prototxt", solver)


def test_digits_training_loss_falls_and_accuracy_passes(tmp_path, digits_dir):
    net, solver = digits_files(tmp_path, digits_dir)
    lines = []
    t = Trainer(net, solver, threads=1, max_iter=110, display=11, checkpoint_dir=str(tmp_path / "w"),
                out=lines.append)
    result = t.train()
    losses = [loss for _, loss in t.history]
    assert losses[0] > 1.0 and losses[-1] < 0.25 * losses[0], losses
    assert result["accuracy"] >= 0.93, result
    assert result["test_images"] == 359
    assert any(re.match(r"iter 10: loss = [\d.]+, lr = .* fwd .* ms, bwd .* ms, .* images/s", s) for s in lines), lines
    assert any(s.startswith("Training throughput = ") for s in lines)
    assert os.path.isfile(result["checkpoint"])
    # `test` on the saved weights reproduces the final accuracy
    t2 = Trainer(net, solver, threads=1, out=lines.append)
    t2.solver.restore(str(tmp_path / "w"))
    assert t2.test()["accuracy"] == pytest.approx(result["accuracy"])


@pytest.mark.parametrize("solver_type", ["SGD", "NESTEROV", "SGD_MC"])
def test_resume_from_checkpoint_equals_uninterrupted(tmp_path, solver_type):
    net = write(tmp_path, "net.prototxt", SMALL_NET)
    solver = write(tmp_path, "solver.prototxt", SOLVER.format(type=solver_type))
    quiet = dict(threads=1, out=lambda *a: None, checkpoint_dir=str(tmp_path / "ck"))
    straight = Trainer(net, solver, **quiet)
    straight.train(snapshot_at_end=False, final_test=False)
    first = Trainer(net, solver, max_iter=3, **quiet)
    first.train(final_test=False)
    resumed = Trainer(net, solver, **quiet)
    resumed.train(resume=str(tmp_path / "ck"), snapshot_at_end=False, final_test=False)
    assert resumed.solver.iteration == 6
    np.testing.assert_array_equal(resumed.net.arena, straight.net.arena)
    np.testing.assert_array_equal(resumed.solver.history, straight.solver.history)
    np.testing.assert_array_equal(resumed.net.state_arena, straight.net.state_arena)
    assert not np.array_equal(first.net.arena, straight.net.arena)


def test_two_threads_train_like_one(tmp_path):
    net = write(tmp_path, "net.prototxt", SMALL_NET)
    solver = write(tmp_path, "solver.prototxt", SOLVER.format(type="SGD"))
    runs = []
    for threads in (1, 2):
        t = Trainer(net, solver, threads=threads, max_iter=3, out=lambda *a: None)
        t.train(snapshot_at_end=False, final_test=False)
        runs.append(t.net.arena.copy())
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-4, atol=1e-5)


def test_learning_rate_policies(tmp_path):
    net = write(tmp_path, "net.prototxt", SMALL_NET)
    param, lines = schema.load_net(net)
    n = Net(param, lines, NetContext(path=net, threads=1))

    def lr(text, it, ipe=10):
        return Solver(schema.parse_solver(text + "\nmax_iter: 100"), n, iters_per_epoch=ipe).learning_rate(it)

    assert lr('learning_rate: 0.1 lr_policy: "fixed"', 57) == pytest.approx(0.1)
    assert lr('learning_rate: 0.1 lr_policy: "step" gamma: 0.5 stepsize: 20', 57) == pytest.approx(0.1 * 0.25)
    assert lr('learning_rate: 0.1 lr_policy: "multistep" gamma: 0.1 step_values: 30 step_values: 50', 57) == \
        pytest.approx(0.001)
    assert lr('learning_rate: 0.1 lr_policy: "multistep" gamma: 0.1 step_values: 30 step_values: 50', 30) == \
        pytest.approx(0.01)
    assert lr('learning_rate: 0.1 lr_policy: "poly" power: 2', 57) == pytest.approx(0.1 * (1 - 0.57) ** 2)
    assert lr('learning_rate: 0.1 lr_policy: "inv" gamma: 0.01 power: 0.75', 57) == \
        pytest.approx(0.1 * (1 + 0.57) ** -0.75)
    assert lr('learning_rate: 0.1 lr_policy: "exp" gamma: 0.99', 57) == pytest.approx(0.1 * 0.99 ** 57)
    warm = 'learning_rate: 0.4 lr_policy: "fixed" warmup_lr: 0.1 warmup_epochs: 2'
    assert lr(warm, 0) == pytest.approx(0.1)
    assert lr(warm, 10) == pytest.approx(0.25)
    assert lr(warm, 20) == pytest.approx(0.4)
    with pytest.raises(PrototxtError, match="lr_policy 'cosine'"):
        lr('lr_policy: "cosine"', 0)
    with pytest.raises(PrototxtError, match="type 'ADAM'"):
        lr('type: "ADAM"', 0)
    with pytest.raises(PrototxtError, match="stepsize"):
        lr('lr_policy: "step"', 0)
    with pytest.raises(PrototxtError, match="max_iter or max_epochs"):
        Solver(schema.parse_solver("learning_rate: 0.1"), n, iters_per_epoch=1)


def test_image_and_lmdb_data_nodes(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 3, 4, 5)).astype(np.uint8)
    (tmp_path / "img").mkdir()
    with open(tmp_path / "list.txt", "w") as fh:
        for i, p in enumerate(pixels):
            Image.fromarray(p.transpose(1, 2, 0), "RGB").save(tmp_path / "img" / f"{i}.png")
            fh.write(f"img/{i}.png {i % 3}\n")
    xform = "image_xform_param { channels: 3 scale: 0.5 mean_values: 10 mean_values: 20 mean_values: 30 }"
    text = (f'node {{ name: "d" type: "ImageData" top: "data" top: "label" data_param {{ train_source: "{tmp_path}/list.txt" '
            f'batch_size: 4 shuffle: false {xform} }} }}')
    net = Net(*schema.parse_net(text), NetContext(threads=1))
    net.data.fill(net.data.top_blobs, [5, 0, 2, 3])
    from core import conv
    want = (pixels[[5, 0, 2, 3]].astype(np.float32) - np.array([10, 20, 30], np.float32)[None, :, None, None]) * 0.5
    np.testing.assert_allclose(conv.from_blocked(net.data.top_blobs[0].data, 3), want)
    np.testing.assert_array_equal(net.data.top_blobs[1].data, [2, 0, 2, 0])

    # a folder with a sub-folder per class: sorted class names are the labels
    for i, p in enumerate(pixels):
        (tmp_path / "byclass" / f"cls{i % 3}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(p.transpose(1, 2, 0), "RGB").save(tmp_path / "byclass" / f"cls{i % 3}" / f"{i}.png")
    net = Net(*schema.parse_net(text.replace(f"{tmp_path}/list.txt", str(tmp_path / "byclass"))), NetContext(threads=1))
    assert net.data.num_samples == 6
    np.testing.assert_array_equal(net.data.labels, [0, 0, 1, 1, 2, 2])

    lmdb = pytest.importorskip("lmdb")
    datum = schema.CLASSES["Datum"]
    with lmdb.open(str(tmp_path / "db"), map_size=1 << 20) as env, env.begin(write=True) as txn:
        for i, p in enumerate(pixels):
            txn.put(f"{i:08d}".encode(), datum(channels=3, height=4, width=5, data=p.tobytes(), label=i % 3)
                    .SerializeToString())
    text = text.replace("ImageData", "LMDBData").replace(f"{tmp_path}/list.txt", str(tmp_path / "db"))
    net = Net(*schema.parse_net(text), NetContext(threads=1))
    assert net.data.num_samples == 6
    net.data.fill(net.data.top_blobs, [5, 0, 2, 3])
    np.testing.assert_allclose(conv.from_blocked(net.data.top_blobs[0].data, 3), want)
    np.testing.assert_array_equal(net.data.top_blobs[1].data, [2, 0, 2, 0])


@pytest.mark.parametrize("model,batch", [("lenet/lenet_dummy_64.prototxt", None),
                                         ("cifar10_quick/cifar10_quick_dummy_64.prototxt", None),
                                         ("googlenet_v1/googlenet_v1_dummy_32.prototxt", 1),
                                         ("resnet50/resnet50_dummy_16.prototxt", 1),
                                         ("resnet50/resnet50_unfused_dummy_16.prototxt", 1)])
def test_model_zoo_forward_backward(model, batch, tmp_path):
    path = os.path.join(MODELS, model)
    text = open(path).read()
    if batch:  # the big ones: one image, one forward + backward
        text = re.sub(r"shape \{ dim: (\d+) dim: (\d+)", lambda m: f"shape {{ dim: {m.group(1)} dim: {batch}", text)
    param, lines = schema.parse_net(text, path)
    net = Net(param, lines, NetContext(path=path, threads=1))
    net.data.fill(net.data.top_blobs, np.arange(net.batch))
    net.forward()
    loss = float(net.losses[0].top_blobs[0].data[0])
    assert np.isfinite(loss) and loss > 0
    net.backward()
    assert np.all(np.isfinite(net.grad_arena)) and np.any(net.grad_arena != 0)
    test = Net(param, lines, NetContext(path=path, threads=1), train=False, share=net)
    assert test.arena is net.arena


@pytest.mark.parametrize("text,pattern", [
    ('node {\n  name: "a"\n  type: "Convolution"\n  foo: 3\n}', r":4: .*no field named \"foo\""),
    ('node { name: "d" type: "DummyData" top: "data" top: "label"\n'
     '  dummy_data_param { shape { dim: 2 dim: 1 dim: 4 dim: 4 } } }\n'
     'node {\n  name: "x"\n  type: "Convolutio" bottom: "data" top: "y" }', r":3: node 'x': unknown node type 'Convolutio'"),
    ('node { name: "d" type: "DummyData" top: "data" top: "label"\n'
     '  dummy_data_param { shape { dim: 2 dim: 1 dim: 4 dim: 4 } } }\n'
     'node { name: "x" type: "ReLU" bottom: "nothing" top: "y" }', r":3: .*bottom 'nothing' is not the top"),
    ('node { name: "d" type: "DummyData" top: "data" top: "label"\n'
     '  dummy_data_param { shape { dim: 2 dim: 1 dim: 4 dim: 4 } } }\n'
     'node { name: "x" type: "Convolution" bottom: "data" top: "y"\n'
     '  convolution_param { num_output: 3 kernel_size: 7 } }', r":3: node 'x' \(Convolution\): .*does not fit"),
    ('node { name: "d" type: "DummyData" top: "data" top: "label"\n'
     '  dummy_data_param { shape { dim: 2 dim: 1 dim: 4 dim: 4 } } }\n'
     'node { name: "d" type: "ReLU" bottom: "data" top: "y" }', r":3: .*already used by the node at line 1"),
    ('node { name: "d" type: "DummyData" top: "data" top: "label"\n'
     '  dummy_data_param { shape { dim: 2 dim: 1 dim: 4 dim: 4 } } }\n'
     'node { name: "e" type: "Eltwise" bottom: "data" top: "y" }', r":3: .*takes 2 to 64 bottom"),
    ('node { name: "r" type: "ReLU" bottom: "x" top: "y" }', r"bottom 'x' is not the top"),
    ('node { name: "d" type: "DummyData" top: "data" top: "label"\n'
     '  dummy_data_param { shape { dim: 3 dim: 1 dim: 4 dim: 4 } } }', r"not divisible by the 2 ranks"),
    ('node { pooling_param { pool: STOCHASTIC } }', r":1: .*PoolMethod\" has no value named STOCHASTIC"),
])
def test_bad_prototxt_names_the_line(text, pattern):
    with pytest.raises(PrototxtError, match=pattern):
        Net(*schema.parse_net(text, "bad.prototxt"), NetContext(path="bad.prototxt", threads=1, size=2))


def test_command_line_train_test_and_errors(tmp_path, run_app):
    net = write(tmp_path, "net.prototxt", SMALL_NET)
    solver = write(tmp_path, "solver.prototxt", SOLVER.format(type="NESTEROV") + f'checkpoint_dir: "{tmp_path}/ck"\n')
    r = run_app("miniapps.gxm", "train", net, solver, "--threads", "1", "--json", f"{tmp_path}/rec/", timeout=120)
    assert r.returncode == 0, r.stderr
    assert re.search(r"iter 5: loss = [\d.]+", r.stdout) and "Training throughput" in r.stdout, r.stdout
    assert "Top-1 testing accuracy" in r.stdout
    assert (tmp_path / "rec" / "gxm.jsonl").is_file()
    r = run_app("miniapps.gxm", "test", net, solver, "--threads", "1", "--min-accuracy", "1.01", timeout=120)
    assert r.returncode == 1 and "validation FAILED" in r.stderr, r.stdout + r.stderr
    r = run_app("miniapps.gxm", "test", net, solver, "--threads", "1", "--weights", str(tmp_path / "nothing"),
                timeout=60)
    assert r.returncode == 1 and "no weights to test" in r.stderr and "Traceback" not in r.stderr, r.stderr
    bad = write(tmp_path, "bad.prototxt", SMALL_NET.replace('type: "Pooling"', 'type: "Poolin"', 1))
    r = run_app("miniapps.gxm", "train", bad, solver, "--threads", "1", timeout=60)
    assert r.returncode == 1 and re.search(r"bad\.prototxt:\d+: node 'p1': unknown node type", r.stderr), r.stderr
    assert "Traceback" not in r.stderr


def test_two_ranks_train_like_one_rank(tmp_path, run_app):
    """The command line under mpiexec -n 2: the same losses as 1 rank with the same global batch."""
    net = write(tmp_path, "net.prototxt", SMALL_NET.replace('node { name: "cb"', '# no BN: batch statistics are per rank\n'
                                                           'node { name: "cb_off"', 1)
                .replace('type: "FusedConvBN" bottom: "c1" bottom: "c1" top: "cb"', 'type: "Eltwise" bottom: "c1" bottom: "c1" top: "cb"')
                .replace('fused_conv_bn_param { num_output: 12 kernel_size: 3 pad: 1 relu: true eltwise: true }', '')
                .replace('type: "FusedBatchNorm" bottom: "cb" top: "bn" fused_bnorm_param { relu: true }',
                         'type: "ReLU" bottom: "cb" top: "bn"'))
    solver = write(tmp_path, "solver.prototxt", SOLVER.format(type="SGD"))
    losses = []
    for ranks in (None, 2):
        r = run_app("miniapps.gxm", "train", net, solver, "--threads", "1", "--no-test",
                    "--checkpoint-dir", str(tmp_path / f"ck{ranks}"), ranks=ranks, timeout=120)
        assert r.returncode == 0, r.stderr
        losses.append([float(v) for v in re.findall(r"loss = ([\d.]+)", r.stdout)])
    assert len(losses[0]) == 6
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
