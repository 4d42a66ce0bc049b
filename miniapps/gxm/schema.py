"""The prototxt schema of gxm: network topologies and solvers, parsed with protobuf's text_format.

The schema is built in Python as a ``FileDescriptorProto`` (no protoc step, nothing generated
to ship) and turned into message classes by ``message_factory``. Field names follow GxM's
``gxm.proto`` where GxM has them (``fc_param``, ``fused_bnorm_param``, ``fused_conv_bn_param``,
``learning_rate``, ``step_values``, ``checkpoint_dir``...); only what this mini-app implements
is in it, so an unknown or unsupported field is a parse error that names its line.
"""
import os
import re

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

PACKAGE = "smm.gxm"

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {"int32": _F.TYPE_INT32, "uint32": _F.TYPE_UINT32, "int64": _F.TYPE_INT64,
            "float": _F.TYPE_FLOAT, "bool": _F.TYPE_BOOL, "string": _F.TYPE_STRING,
            "bytes": _F.TYPE_BYTES}
_LABELS = {"optional": _F.LABEL_OPTIONAL, "repeated": _F.LABEL_REPEATED}

# enum name -> values (in order, numbered from 0)
_ENUMS = {
    "Mode": ["TRAIN", "TEST"],
    "DataType": ["FLOAT", "BF16"],
    "PoolMethod": ["MAX", "AVE"],
    "VarianceNorm": ["FAN_IN", "FAN_OUT", "AVERAGE"],
    "EltwiseOp": ["SUM"],
}

# message -> [(label, type, name, default or None)]; field numbers are positions + 1
_MESSAGES = {
    "TensorShape": [("repeated", "int32", "dim", None)],
    "FillerParameter": [
        ("optional", "string", "type", "constant"), ("optional", "float", "value", "0"),
        ("optional", "float", "min", "0"), ("optional", "float", "max", "1"),
        ("optional", "float", "mean", "0"), ("optional", "float", "std", "1"),
        ("optional", "VarianceNorm", "variance_norm", "FAN_IN")],
    "ParamSpec": [("optional", "float", "lr_mult", "1"), ("optional", "float", "decay_mult", "1")],
    "ImageXformParameter": [
        ("optional", "uint32", "channels", "0"), ("optional", "uint32", "height", "0"),
        ("optional", "uint32", "width", "0"), ("optional", "float", "scale", "1"),
        ("repeated", "float", "mean_values", None)],
    "DataParameter": [
        ("optional", "string", "train_source", None), ("optional", "string", "test_source", None),
        ("optional", "string", "root_folder", ""), ("optional", "uint32", "batch_size", "0"),
        ("optional", "uint32", "test_batch_size", "0"), ("optional", "bool", "shuffle", "true"),
        ("optional", "uint32", "seed", "1"), ("optional", "ImageXformParameter", "image_xform_param", None)],
    "DummyDataParameter": [
        ("optional", "TensorShape", "shape", None), ("optional", "FillerParameter", "data_filler", None),
        ("optional", "uint32", "num_classes", "0"), ("optional", "uint32", "seed", "1")],
    "ConvolutionParameter": [
        ("optional", "uint32", "num_output", None), ("optional", "bool", "bias_term", "true"),
        ("optional", "uint32", "pad", "0"), ("optional", "uint32", "kernel_size", "0"),
        ("optional", "uint32", "stride", "1"), ("optional", "uint32", "pad_h", None),
        ("optional", "uint32", "pad_w", None), ("optional", "uint32", "kernel_h", None),
        ("optional", "uint32", "kernel_w", None), ("optional", "uint32", "stride_h", None),
        ("optional", "uint32", "stride_w", None), ("optional", "uint32", "group", "1"),
        ("optional", "FillerParameter", "weight_filler", None),
        ("optional", "FillerParameter", "bias_filler", None)],
    "FusedConvBNParameter": [
        ("optional", "uint32", "num_output", None), ("optional", "uint32", "pad", "0"),
        ("optional", "uint32", "kernel_size", "0"), ("optional", "uint32", "stride", "1"),
        ("optional", "FillerParameter", "weight_filler", None),
        ("optional", "float", "eps", "1e-5"), ("optional", "float", "moving_average_fraction", "0.9"),
        ("optional", "bool", "relu", "false"), ("optional", "bool", "eltwise", "false")],
    "FusedBNormParameter": [
        ("optional", "float", "eps", "1e-5"), ("optional", "float", "moving_average_fraction", "0.9"),
        ("optional", "bool", "use_global_stats", None), ("optional", "bool", "relu", "false"),
        ("optional", "bool", "eltwise", "false")],
    "FullyConnectedParameter": [
        ("optional", "uint32", "num_output", None), ("optional", "bool", "bias_term", "true"),
        ("optional", "FillerParameter", "weight_filler", None),
        ("optional", "FillerParameter", "bias_filler", None)],
    "PoolingParameter": [
        ("optional", "PoolMethod", "pool", "MAX"), ("optional", "uint32", "pad", "0"),
        ("optional", "uint32", "kernel_size", "0"), ("optional", "uint32", "stride", "1"),
        ("optional", "uint32", "pad_h", None), ("optional", "uint32", "pad_w", None),
        ("optional", "uint32", "kernel_h", None), ("optional", "uint32", "kernel_w", None),
        ("optional", "uint32", "stride_h", None), ("optional", "uint32", "stride_w", None),
        ("optional", "bool", "global_pooling", "false")],
    "ReLUParameter": [("optional", "float", "negative_slope", "0")],
    "DropoutParameter": [("optional", "float", "dropout_ratio", "0.5")],
    "ConcatParameter": [("optional", "int32", "axis", "1")],
    "EltwiseParameter": [("optional", "EltwiseOp", "operation", "SUM"), ("repeated", "float", "coeff", None)],
    "AccuracyParameter": [("optional", "uint32", "top_k", "1")],
    "NodeParameter": [
        ("optional", "string", "name", None), ("optional", "string", "type", None),
        ("repeated", "string", "bottom", None), ("repeated", "string", "top", None),
        ("optional", "Mode", "mode", None), ("repeated", "float", "loss_weight", None),
        ("optional", "bool", "propagate_down", "true"), ("repeated", "ParamSpec", "param", None),
        ("optional", "DataParameter", "data_param", None),
        ("optional", "DummyDataParameter", "dummy_data_param", None),
        ("optional", "ConvolutionParameter", "convolution_param", None),
        ("optional", "FusedConvBNParameter", "fused_conv_bn_param", None),
        ("optional", "FusedBNormParameter", "fused_bnorm_param", None),
        ("optional", "FullyConnectedParameter", "fc_param", None),
        ("optional", "PoolingParameter", "pooling_param", None),
        ("optional", "ReLUParameter", "relu_param", None),
        ("optional", "DropoutParameter", "dropout_param", None),
        ("optional", "ConcatParameter", "concat_param", None),
        ("optional", "EltwiseParameter", "eltwise_param", None),
        ("optional", "AccuracyParameter", "accuracy_param", None)],
    # Caffe's LMDB record (field numbers as Caffe's, so existing databases decode)
    "Datum": [("optional", "int32", "channels", None), ("optional", "int32", "height", None),
              ("optional", "int32", "width", None), ("optional", "bytes", "data", None),
              ("optional", "int32", "label", None), ("repeated", "float", "float_data", None),
              ("optional", "bool", "encoded", "false")],
    "NetParameter": [("optional", "string", "name", None), ("repeated", "NodeParameter", "node", None)],
    "SolverParameter": [
        ("optional", "uint32", "max_epochs", "0"), ("optional", "uint32", "test_epoch", "1"),
        ("optional", "float", "learning_rate", "0.01"), ("optional", "float", "warmup_lr", None),
        ("optional", "uint32", "warmup_epochs", "0"), ("optional", "float", "momentum", "0"),
        ("optional", "float", "weight_decay", "0"), ("optional", "string", "lr_policy", "fixed"),
        ("optional", "float", "gamma", "0.1"), ("optional", "float", "power", "1"),
        ("optional", "uint32", "stepsize", "0"), ("optional", "uint32", "max_iter", "0"),
        ("repeated", "uint32", "step_values", None), ("optional", "string", "type", "SGD"),
        ("optional", "bool", "global", "false"), ("optional", "DataType", "data_type", "FLOAT"),
        ("optional", "bool", "load_checkpoint", "false"),
        ("optional", "string", "checkpoint_dir", "./weights"),
        ("optional", "string", "checkpoint_format", "binary"),
        # beside GxM's fields (Caffe's names): iteration-based testing, printing, snapshots, seed
        ("optional", "uint32", "test_interval", "0"), ("optional", "uint32", "test_iter", "0"),
        ("optional", "uint32", "display", "1"), ("optional", "uint32", "snapshot", "0"),
        ("optional", "uint32", "random_seed", "1")],
}


def _build_classes():
    fdp = descriptor_pb2.FileDescriptorProto(name="smm_gxm.proto", package=PACKAGE, syntax="proto2")
    for name, values in _ENUMS.items():
        enum = fdp.enum_type.add(name=name)
        for i, value in enumerate(values):
            enum.value.add(name=value, number=i)
    for name, fields in _MESSAGES.items():
        msg = fdp.message_type.add(name=name)
        for number, (label, ftype, fname, default) in enumerate(fields, start=1):
            field = msg.field.add(name=fname, number=number, label=_LABELS[label])
            if ftype in _SCALARS:
                field.type = _SCALARS[ftype]
            elif ftype in _ENUMS:
                field.type, field.type_name = _F.TYPE_ENUM, f".{PACKAGE}.{ftype}"
            else:
                field.type, field.type_name = _F.TYPE_MESSAGE, f".{PACKAGE}.{ftype}"
            if default is not None:
                field.default_value = default
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.21
        make = message_factory.GetMessageClass
    else:
        make = message_factory.MessageFactory(pool).GetPrototype
    return {name: make(pool.FindMessageTypeByName(f"{PACKAGE}.{name}")) for name in _MESSAGES}


CLASSES = _build_classes()
NetParameter = CLASSES["NetParameter"]
SolverParameter = CLASSES["SolverParameter"]
NodeParameter = CLASSES["NodeParameter"]
MODES = {name: i for i, name in enumerate(_ENUMS["Mode"])}
POOL_METHODS = {name: i for i, name in enumerate(_ENUMS["PoolMethod"])}
VARIANCE_NORMS = {name: i for i, name in enumerate(_ENUMS["VarianceNorm"])}


class PrototxtError(ValueError):
    """A prototxt that does not parse or does not describe a valid net/solver: names file and line."""

    def __init__(self, message, path=None, line=None):
        where = path or "<prototxt>"
        if line:
            where += f":{line}"
        super().__init__(f"{where}: {message}")
        self.path, self.line = path, line


_POSITION = re.compile(r"^(\d+):(\d+)\s*:\s*")


def _parse(text, message, path):
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        msg = str(exc)
        m = _POSITION.match(msg)
        line = None
        if m:
            line, msg = int(m.group(1)), msg[m.end():]
        raise PrototxtError(msg.replace(f"{PACKAGE}.", ""), path, line) from None
    return message


def read_text(path):
    if not os.path.isfile(path):
        raise PrototxtError("no such file", path)
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def parse_net(text, path=None):
    """NetParameter from prototxt text; ``net.node_lines[i]`` is the line of node i's opening."""
    net = _parse(text, NetParameter(), path)
    return net, _top_level_block_lines(text, "node")


def parse_solver(text, path=None):
    return _parse(text, SolverParameter(), path)


def load_net(path):
    return parse_net(read_text(path), path)


def load_solver(path):
    return parse_solver(read_text(path), path)


def _top_level_block_lines(text, keyword):
    """Line numbers of the top-level ``keyword { ... }`` blocks, in order (comments and strings
    skipped). text_format keeps no positions; this maps a node back to its line for errors."""
    lines, depth, i, line = [], 0, 0, 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif ch in "\"'":
            quote, i = ch, i + 1
            while i < n and text[i] != quote:
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    line += 1
                i += 1
        elif ch in "{<":
            depth += 1
        elif ch in "}>":
            depth -= 1
        elif depth == 0 and text.startswith(keyword, i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            j = i + len(keyword)
            if j >= n or not (text[j].isalnum() or text[j] == "_"):
                lines.append(line)
                i = j
                continue
        i += 1
    return lines
