"""Writes the model zoo's prototxt files (``python -m miniapps.gxm.models.make_zoo``).

The files are checked in; this script is how they were made, and how to make variants (other
batch sizes, unfused ResNet). LeNet and CIFAR-10 "quick" follow Caffe's examples, GoogLeNet-v1
follows BVLC's (without LRN and the auxiliary classifiers), ResNet-50 follows He et al. (v1:
the stride on the first 1x1 of a downsampling block) in GxM's FusedConvBN form.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


class Writer:
    def __init__(self, name):
        self.lines = [f'name: "{name}"']

    def node(self, name, type_, bottoms, tops, body="", mode=None, extra=""):
        b = "".join(f' bottom: "{x}"' for x in bottoms)
        t = "".join(f' top: "{x}"' for x in tops)
        m = f" mode: {mode}" if mode else ""
        self.lines.append(f'node {{ name: "{name}" type: "{type_}"{b}{t}{m}{extra}' + (f"\n  {body}" if body else "") + " }")
        return tops[0]

    def dummy(self, images, batch, c, h, w, classes):
        return self.node("data", "DummyData", [], ["data", "label"],
                         f"dummy_data_param {{ shape {{ dim: {images} dim: {batch} dim: {c} dim: {h} dim: {w} }} "
                         f'data_filler {{ type: "gaussian" std: 1 }} num_classes: {classes} }}')

    def images(self, source, test_source, batch, c, size, scale, means=()):
        mv = "".join(f" mean_values: {m}" for m in means)
        return self.node("data", "ImageData", [], ["data", "label"],
                         f'data_param {{ train_source: "{source}" test_source: "{test_source}" batch_size: {batch} '
                         f"shuffle: true image_xform_param {{ channels: {c} height: {size} width: {size} "
                         f"scale: {scale}{mv} }} }}")

    def conv(self, name, bottom, k, size, stride=1, pad=0, filler="xavier", std=None, propagate=True, bias=True):
        wf = f'weight_filler {{ type: "{filler}"' + (f" std: {std}" if std else "") + " }"
        body = (f"convolution_param {{ num_output: {k} kernel_size: {size} stride: {stride} pad: {pad} "
                f'{"" if bias else "bias_term: false "}{wf} bias_filler {{ type: "constant" }} }}')
        extra = "" if propagate else " propagate_down: false"
        return self.node(name, "Convolution", [bottom], [name], body, extra=extra + " param { lr_mult: 1 } param { lr_mult: 2 }")

    def convbn(self, name, bottom, k, size, stride=1, pad=0, relu=True, residual=None, propagate=True):
        body = (f"fused_conv_bn_param {{ num_output: {k} kernel_size: {size} stride: {stride} pad: {pad} "
                f"relu: {str(relu).lower()} eltwise: {str(residual is not None).lower()} "
                f'weight_filler {{ type: "msra" variance_norm: FAN_OUT }} }}')
        extra = ("" if propagate else " propagate_down: false") + \
            " param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 1 decay_mult: 0 }"
        bottoms = [bottom] + ([residual] if residual else [])
        return self.node(name, "FusedConvBN", bottoms, [name], body, extra=extra)

    def relu(self, name, bottom):
        return self.node(name, "ReLU", [bottom], [bottom])

    def pool(self, name, bottom, method, size=None, stride=1, pad=0, global_=False):
        what = "global_pooling: true" if global_ else f"kernel_size: {size} stride: {stride} pad: {pad}"
        return self.node(name, "Pooling", [bottom], [name], f"pooling_param {{ pool: {method} {what} }}")

    def fc(self, name, bottom, k, filler="xavier", std=None):
        wf = f'weight_filler {{ type: "{filler}"' + (f" std: {std}" if std else "") + " }"
        return self.node(name, "FullyConnected", [bottom], [name],
                         f'fc_param {{ num_output: {k} {wf} bias_filler {{ type: "constant" }} }}',
                         extra=" param { lr_mult: 1 } param { lr_mult: 2 }")

    def outputs(self, logits, top5=False):
        self.node("accuracy", "Accuracy", [logits, "label"], ["accuracy"], mode="TEST")
        if top5:
            self.node("accuracy_top5", "Accuracy", [logits, "label"], ["accuracy_top5"],
                      "accuracy_param { top_k: 5 }", mode="TEST")
        self.node("loss", "SoftmaxWithLoss", [logits, "label"], ["loss"])

    def save(self, *parts, header=""):
        path = os.path.join(HERE, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(header + "\n".join(self.lines) + "\n")
        return path


def lenet(data):
    w = Writer("LeNet")
    data(w)
    x = w.conv("conv1", "data", 20, 5, propagate=False)
    x = w.pool("pool1", x, "MAX", 2, 2)
    x = w.conv("conv2", x, 50, 5)
    x = w.pool("pool2", x, "MAX", 2, 2)
    x = w.fc("ip1", x, 500)
    w.relu("relu1", x)
    x = w.fc("ip2", x, 10)
    w.outputs(x)
    return w


def cifar10_quick(data):
    w = Writer("CIFAR10_quick")
    data(w)
    x = w.conv("conv1", "data", 32, 5, pad=2, filler="gaussian", std=0.0001, propagate=False)
    x = w.pool("pool1", x, "MAX", 3, 2)
    w.relu("relu1", x)
    x = w.conv("conv2", x, 32, 5, pad=2, filler="gaussian", std=0.01)
    w.relu("relu2", x)
    x = w.pool("pool2", x, "AVE", 3, 2)
    x = w.conv("conv3", x, 64, 5, pad=2, filler="gaussian", std=0.01)
    w.relu("relu3", x)
    x = w.pool("pool3", x, "AVE", 3, 2)
    x = w.fc("ip1", x, 64, filler="gaussian", std=0.1)
    x = w.fc("ip2", x, 10, filler="gaussian", std=0.1)
    w.outputs(x)
    return w


def googlenet_v1(data):
    w = Writer("GoogLeNet-v1")
    data(w)
    x = w.conv("conv1/7x7_s2", "data", 64, 7, 2, 3, propagate=False)
    w.relu("conv1/relu_7x7", x)
    x = w.pool("pool1/3x3_s2", x, "MAX", 3, 2)
    x = w.conv("conv2/3x3_reduce", x, 64, 1)
    w.relu("conv2/relu_3x3_reduce", x)
    x = w.conv("conv2/3x3", x, 192, 3, pad=1)
    w.relu("conv2/relu_3x3", x)
    x = w.pool("pool2/3x3_s2", x, "MAX", 3, 2)

    def inception(name, x, c1, c3r, c3, c5r, c5, cp):
        a = w.conv(f"{name}/1x1", x, c1, 1)
        w.relu(f"{name}/relu_1x1", a)
        b = w.conv(f"{name}/3x3_reduce", x, c3r, 1)
        w.relu(f"{name}/relu_3x3_reduce", b)
        b = w.conv(f"{name}/3x3", b, c3, 3, pad=1)
        w.relu(f"{name}/relu_3x3", b)
        c = w.conv(f"{name}/5x5_reduce", x, c5r, 1)
        w.relu(f"{name}/relu_5x5_reduce", c)
        c = w.conv(f"{name}/5x5", c, c5, 5, pad=2)
        w.relu(f"{name}/relu_5x5", c)
        d = w.pool(f"{name}/pool", x, "MAX", 3, 1, 1)
        d = w.conv(f"{name}/pool_proj", d, cp, 1)
        w.relu(f"{name}/relu_pool_proj", d)
        return w.node(f"{name}/output", "Concat", [a, b, c, d], [f"{name}/output"])

    x = inception("inception_3a", x, 64, 96, 128, 16, 32, 32)
    x = inception("inception_3b", x, 128, 128, 192, 32, 96, 64)
    x = w.pool("pool3/3x3_s2", x, "MAX", 3, 2)
    for name, cfg in (("4a", (192, 96, 208, 16, 48, 64)), ("4b", (160, 112, 224, 24, 64, 64)),
                      ("4c", (128, 128, 256, 24, 64, 64)), ("4d", (112, 144, 288, 32, 64, 64)),
                      ("4e", (256, 160, 320, 32, 128, 128))):
        x = inception(f"inception_{name}", x, *cfg)
    x = w.pool("pool4/3x3_s2", x, "MAX", 3, 2)
    x = inception("inception_5a", x, 256, 160, 320, 32, 128, 128)
    x = inception("inception_5b", x, 384, 192, 384, 48, 128, 128)
    x = w.pool("pool5/7x7_s1", x, "AVE", global_=True)
    w.node("pool5/drop_7x7_s1", "Dropout", [x], [x], "dropout_param { dropout_ratio: 0.4 }")
    x = w.fc("loss3/classifier", x, 1000)
    w.outputs(x, top5=True)
    return w


def resnet50(data, fused=True):
    w = Writer("ResNet-50" if fused else "ResNet-50-unfused")
    data(w)

    def cbr(name, x, k, size, stride=1, pad=0, relu=True, residual=None, propagate=True):
        if fused:
            return w.convbn(name, x, k, size, stride, pad, relu, residual, propagate)
        y = w.conv(name, x, k, size, stride, pad, filler="msra", propagate=propagate, bias=False)
        bottoms = [y] + ([residual] if residual else [])
        return w.node(f"{name}_bn", "FusedBatchNorm", bottoms, [f"{name}_bn"],
                      f"fused_bnorm_param {{ relu: {str(relu).lower()} eltwise: {str(residual is not None).lower()} }}",
                      extra=" param { lr_mult: 1 decay_mult: 0 }")

    x = cbr("conv1", "data", 64, 7, 2, 3, propagate=False)
    x = w.pool("pool1", x, "MAX", 3, 2)
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=2):
        for b in range(blocks):
            name = f"res{stage}{chr(ord('a') + b)}"
            stride = 2 if (b == 0 and stage > 2) else 1
            short = cbr(f"{name}_branch1", x, 4 * width, 1, stride, relu=False) if b == 0 else x
            y = cbr(f"{name}_branch2a", x, width, 1, stride)
            y = cbr(f"{name}_branch2b", y, width, 3, 1, 1)
            x = cbr(f"{name}_branch2c", y, 4 * width, 1, residual=short)
    x = w.pool("pool5", x, "AVE", global_=True)
    x = w.fc("fc1000", x, 1000, filler="msra")
    w.outputs(x, top5=True)
    return w


SOLVERS = {
    ("lenet", "lenet_solver.prototxt"): """# Caffe's LeNet solver (iterations, not epochs)
type: "SGD"
learning_rate: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "inv"
gamma: 0.0001
power: 0.75
max_iter: 10000
test_interval: 500
display: 100
snapshot: 5000
checkpoint_dir: "./weights/lenet"
""",
    ("cifar10_quick", "cifar10_quick_solver.prototxt"): """# Caffe's CIFAR-10 quick solver
type: "SGD"
learning_rate: 0.001
momentum: 0.9
weight_decay: 0.004
lr_policy: "fixed"
max_iter: 4000
test_interval: 500
display: 100
checkpoint_dir: "./weights/cifar10_quick"
""",
    ("googlenet_v1", "googlenet_v1_solver.prototxt"): """# BVLC GoogLeNet quick solver (poly decay)
type: "SGD"
learning_rate: 0.01
momentum: 0.9
weight_decay: 0.0002
lr_policy: "poly"
power: 0.5
max_iter: 2400000
display: 40
checkpoint_dir: "./weights/googlenet_v1"
""",
    ("resnet50", "resnet50_solver.prototxt"): """# GxM's ResNet-50 solver: multistep, Nesterov, linear warm-up
type: "NESTEROV"
learning_rate: 0.1
warmup_lr: 0.1
warmup_epochs: 5
momentum: 0.9
weight_decay: 0.0001
lr_policy: "multistep"
step_values: 150000
step_values: 300000
step_values: 400000
gamma: 0.1
max_iter: 450450
checkpoint_dir: "./weights/resnet50"
""",
    ("dummy_solver.prototxt",): """# Benchmarking on DummyData: a few iterations, no test, no snapshot in between
type: "SGD"
learning_rate: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "fixed"
max_iter: 20
test_epoch: 0
display: 1
checkpoint_dir: "./weights/dummy"
""",
}


def main():
    written = []
    dummy = lambda n, b, c, s, k: (lambda w: w.dummy(n, b, c, s, s, k))  # noqa: E731
    written.append(lenet(dummy(6400, 64, 1, 28, 10)).save("lenet", "lenet_dummy_64.prototxt"))
    written.append(lenet(lambda w: w.images("data/mnist/train.txt", "data/mnist/test.txt", 64, 1, 28, 0.00390625))
                   .save("lenet", "lenet_train_test.prototxt",
                         header="# MNIST as image folders with list files (paths relative to the working directory)\n"))
    written.append(cifar10_quick(dummy(6400, 64, 3, 32, 10)).save("cifar10_quick", "cifar10_quick_dummy_64.prototxt"))
    written.append(cifar10_quick(lambda w: w.images("data/cifar10/train.txt", "data/cifar10/test.txt", 100, 3, 32, 1,
                                                    (125.307, 122.95, 113.865)))
                   .save("cifar10_quick", "cifar10_quick_train_test.prototxt",
                         header="# CIFAR-10 as image folders with list files (paths relative to the working directory)\n"))
    written.append(googlenet_v1(dummy(1280, 32, 3, 224, 1000)).save("googlenet_v1", "googlenet_v1_dummy_32.prototxt"))
    written.append(resnet50(dummy(1600, 16, 3, 224, 1000)).save("resnet50", "resnet50_dummy_16.prototxt"))
    written.append(resnet50(dummy(1600, 16, 3, 224, 1000), fused=False)
                   .save("resnet50", "resnet50_unfused_dummy_16.prototxt",
                         header="# ResNet-50 with plain Convolution + FusedBatchNorm nodes (no FusedConvBN)\n"))
    for parts, text in SOLVERS.items():
        path = os.path.join(HERE, *parts)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        written.append(path)
    for p in written:
        print(os.path.relpath(p, HERE))


if __name__ == "__main__":
    main()
