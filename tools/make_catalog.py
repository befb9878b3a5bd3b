"""Write the shipped catalog, rfsweep/architectures/<name>.json, as section-6 graphs.

Plain Python, no TensorFlow or PyTorch: each network is transcribed from its
reference definition (TF-Slim's research/slim/nets/*.py for the networks of
Google's receptive-field table, torchvision.models for resnet18/resnet50/
mobilenet_v2), layer by layer; the rank-1 and rank-3 networks (TCN, WaveNet, 3D U-Net,
R3D-18) from their papers and reference code (RANKED):

- TF padding='SAME' -> "same_tf"; 'VALID' -> 0; resnet_utils.conv2d_same with
  stride > 1 -> its explicit symmetric zero padding (k-1)//2 on each side.
- slim.conv2d with a normalizer -> conv (no bias) + bn node "<name>/BatchNorm";
  without one -> conv with bias. Activations are not written (they change
  nothing spatially and cost nothing).
- The table's end-points are nodes named as in the table without the network
  prefix; the table's last end-point is "output".

Run:  python tools/make_catalog.py            (rewrites every file)
      python tools/make_catalog.py --check    (exit 1 if a file is stale)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent.parent / "rfsweep" / "architectures"

TABLE_URL = ("https://github.com/google-research/receptive_field/blob/"
             "f12ae8e75a6e8178c6235ddc765bc90a3196ebc6/receptive_field/RECEPTIVE_FIELD_TABLE.md")
SLIM = "https://github.com/tensorflow/models/blob/master/research/slim/nets/"
DISTILL = ("Araujo, Norris & Sim, 'Computing Receptive Fields of Convolutional Neural Networks', "
           "Distill 2019 (doi:10.23915/distill.00021)")


class Graph:
    """A node list under construction; tracks channels so concat/add/groups are right."""

    def __init__(self, in_channels: int = 3):
        self.nodes: list[dict] = []
        self.channels = {"input": in_channels}
        self.last = "input"

    def _add(self, node: dict, out_channels: int) -> str:
        name = node["name"]
        if name in self.channels:
            raise ValueError(f"duplicate node name {name!r}")
        self.nodes.append(node)
        self.channels[name] = out_channels
        self.last = name
        return name

    def conv(self, name, out, kernel, stride=1, padding="same_tf", inp=None, groups=1,
             bias=True, dilation=1):
        inp = inp or self.last
        node = {"name": name, "type": "conv", "inputs": [inp], "kernel": kernel, "stride": stride,
                "padding": padding}
        if dilation != 1:
            node["dilation"] = dilation
        node["out_channels"] = out
        if groups != 1:
            node["groups"] = groups
        node["bias"] = bias
        return self._add(node, out)

    def bn(self, name, inp=None):
        inp = inp or self.last
        return self._add({"name": name, "type": "bn", "inputs": [inp]}, self.channels[inp])

    def pool(self, kind, name, kernel, stride, padding, inp=None):
        inp = inp or self.last
        node = {"name": name, "type": kind, "inputs": [inp], "kernel": kernel, "stride": stride,
                "padding": padding}
        return self._add(node, self.channels[inp])

    def concat(self, name, inputs):
        return self._add({"name": name, "type": "concat", "inputs": list(inputs)},
                         sum(self.channels[i] for i in inputs))

    def add(self, name, inputs):
        chans = {self.channels[i] for i in inputs}
        if len(chans) != 1:
            raise ValueError(f"add {name}: channels {chans}")
        return self._add({"name": name, "type": "add", "inputs": list(inputs)}, chans.pop())

    def identity(self, name, inp=None):
        inp = inp or self.last
        return self._add({"name": name, "type": "identity", "inputs": [inp]}, self.channels[inp])

    def node(self, kind, name, inp=None, out=None, **fields):
        """Any other node type (decoders: conv_transpose, upsample, crop, ...), fields as in the JSON."""
        inp = inp or self.last
        return self._add({"name": name, "type": kind, "inputs": [inp], **fields},
                         self.channels[inp] if out is None else out)

    def head(self, classes, pool_name="avgpool", fc_name="fc"):
        self._add({"name": pool_name, "type": "global_pool", "inputs": [self.last]},
                  self.channels[self.last])
        self._add({"name": "flatten", "type": "flatten", "inputs": [pool_name]}, self.channels[pool_name])
        return self._add({"name": fc_name, "type": "linear", "inputs": ["flatten"],
                          "out_features": classes, "bias": True}, classes)


# ----------------------------------------------------------------- TF-Slim


def slim_conv(g, name, out, kernel, stride=1, padding="same_tf", inp=None, bn=True):
    """slim.conv2d: with a normalizer (BN, no bias) or without (bias); returns the node to read from."""
    inp = inp or g.last
    g.conv(name, out, kernel, stride, padding, inp=inp, bias=not bn)
    if bn:
        g.bn(f"{name}/BatchNorm", inp=name)
    return g.last


def alexnet_v2():
    g = Graph()
    g.conv("conv1", 64, 11, 4, 0)
    g.pool("maxpool", "pool1", 3, 2, 0)
    g.conv("conv2", 192, 5, 1, "same_tf")
    g.pool("maxpool", "pool2", 3, 2, 0)
    g.conv("conv3", 384, 3, 1, "same_tf")
    g.conv("conv4", 384, 3, 1, "same_tf")
    g.conv("conv5", 256, 3, 1, "same_tf")
    g.pool("maxpool", "pool5", 3, 2, 0)
    return g, "pool5"


def vgg(repeats):
    g = Graph()
    for block, (count, width) in enumerate(zip(repeats, (64, 128, 256, 512, 512)), start=1):
        for j in range(1, count + 1):
            g.conv(f"conv{block}/conv{block}_{j}", width, 3, 1, "same_tf")
        g.pool("maxpool", f"pool{block}", 2, 2, 0)
    return g, "pool5"


def mobilenet_v1(multiplier=1.0):
    depth = lambda d: max(int(d * multiplier), 8)  # noqa: E731 (as mobilenet_v1_base)
    # _CONV_DEFS after the first Conv: DepthSepConv (stride, depth), all 3x3
    defs = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)] + [(1, 512)] * 5 + [(2, 1024), (1, 1024)]
    g = Graph()
    slim_conv(g, "Conv2d_0", depth(32), 3, 2)
    for i, (stride, width) in enumerate(defs, start=1):
        channels = g.channels[g.last]
        g.conv(f"Conv2d_{i}_depthwise", channels, 3, stride, "same_tf", groups=channels, bias=False)
        g.bn(f"Conv2d_{i}_depthwise/BatchNorm")
        slim_conv(g, f"Conv2d_{i}_pointwise", depth(width), 1, 1)
    return g, "Conv2d_13_pointwise"


def _branches(g, scope, inp, branches, concat_name=None):
    """Inception module: each branch a list of (kind, name, args...) applied in turn; concat."""
    outs = []
    for b, layers in enumerate(branches):
        x = inp
        for layer in layers:
            kind, name = layer[0], f"{scope}/Branch_{b}/{layer[1]}"
            if kind == "conv":
                out, kernel = layer[2], layer[3]
                stride = layer[4] if len(layer) > 4 else 1
                padding = layer[5] if len(layer) > 5 else "same_tf"
                x = slim_conv(g, name, out, kernel, stride, padding, inp=x)
            elif kind == "split":  # two parallel convs concatenated (v3/v4 1x3 + 3x1)
                parts = [slim_conv(g, f"{scope}/Branch_{b}/{n}", o, k, inp=x) for n, o, k in layer[2]]
                x = g.concat(f"{name}", parts)
            else:
                kernel, stride, padding = layer[2], layer[3], layer[4]
                x = g.pool(kind, name, kernel, stride, padding, inp=x)
        outs.append(x)
    return g.concat(concat_name or scope, outs)


def inception_v2(separable=True):
    g = Graph()
    if separable:  # slim.separable_conv2d(depth_multiplier=8): depthwise 3->24, then pointwise -> 64
        g.conv("Conv2d_1a_7x7/depthwise", 24, 7, 2, "same_tf", groups=3, bias=False)
        slim_conv(g, "Conv2d_1a_7x7", 64, 1, 1)
    else:
        slim_conv(g, "Conv2d_1a_7x7", 64, 7, 2)
    g.pool("maxpool", "MaxPool_2a_3x3", 3, 2, "same_tf")
    slim_conv(g, "Conv2d_2b_1x1", 64, 1)
    slim_conv(g, "Conv2d_2c_3x3", 192, 3)
    g.pool("maxpool", "MaxPool_3a_3x3", 3, 2, "same_tf")

    def module(scope, b0, b1, b2, b3, pool="avgpool"):
        branches = [[("conv", "Conv2d_0a_1x1", b0, 1)],
                    [("conv", "Conv2d_0a_1x1", b1[0], 1), ("conv", "Conv2d_0b_3x3", b1[1], 3)],
                    [("conv", "Conv2d_0a_1x1", b2[0], 1), ("conv", "Conv2d_0b_3x3", b2[1], 3),
                     ("conv", "Conv2d_0c_3x3", b2[1], 3)],
                    [(pool, ("AvgPool" if pool == "avgpool" else "MaxPool") + "_0a_3x3", 3, 1, "same_tf"),
                     ("conv", "Conv2d_0b_1x1", b3, 1)]]
        _branches(g, scope, g.last, branches)

    def reduction(scope, b0, b1):
        branches = [[("conv", "Conv2d_0a_1x1", b0[0], 1), ("conv", "Conv2d_1a_3x3", b0[1], 3, 2)],
                    [("conv", "Conv2d_0a_1x1", b1[0], 1), ("conv", "Conv2d_0b_3x3", b1[1], 3),
                     ("conv", "Conv2d_1a_3x3", b1[1], 3, 2)],
                    [("maxpool", "MaxPool_1a_3x3", 3, 2, "same_tf")]]
        _branches(g, scope, g.last, branches)

    module("Mixed_3b", 64, (64, 64), (64, 96), 32)
    module("Mixed_3c", 64, (64, 96), (64, 96), 64)
    reduction("Mixed_4a", (128, 160), (64, 96))
    module("Mixed_4b", 224, (64, 96), (96, 128), 128)
    module("Mixed_4c", 192, (96, 128), (96, 128), 128)
    module("Mixed_4d", 160, (128, 160), (128, 160), 96)
    module("Mixed_4e", 96, (128, 192), (160, 192), 96)
    reduction("Mixed_5a", (128, 192), (192, 256))
    module("Mixed_5b", 352, (192, 320), (160, 224), 128)
    module("Mixed_5c", 352, (192, 320), (192, 224), 128, pool="maxpool")
    return g, "Mixed_5c"


def inception_v3():
    g = Graph()
    slim_conv(g, "Conv2d_1a_3x3", 32, 3, 2, 0)
    slim_conv(g, "Conv2d_2a_3x3", 32, 3, 1, 0)
    slim_conv(g, "Conv2d_2b_3x3", 64, 3, 1, "same_tf")
    g.pool("maxpool", "MaxPool_3a_3x3", 3, 2, 0)
    slim_conv(g, "Conv2d_3b_1x1", 80, 1, 1, 0)
    slim_conv(g, "Conv2d_4a_3x3", 192, 3, 1, 0)
    g.pool("maxpool", "MaxPool_5a_3x3", 3, 2, 0)
    avg = ("avgpool", "AvgPool_0a_3x3", 3, 1, "same_tf")
    for scope, pool_width, names in (("Mixed_5b", 32, ("Conv2d_0a_1x1", "Conv2d_0b_5x5")),
                                     ("Mixed_5c", 64, ("Conv2d_0b_1x1", "Conv_1_0c_5x5")),
                                     ("Mixed_5d", 64, ("Conv2d_0a_1x1", "Conv2d_0b_5x5"))):
        _branches(g, scope, g.last, [
            [("conv", "Conv2d_0a_1x1", 64, 1)],
            [("conv", names[0], 48, 1), ("conv", names[1], 64, 5)],
            [("conv", "Conv2d_0a_1x1", 64, 1), ("conv", "Conv2d_0b_3x3", 96, 3), ("conv", "Conv2d_0c_3x3", 96, 3)],
            [avg, ("conv", "Conv2d_0b_1x1", pool_width, 1)]])
    _branches(g, "Mixed_6a", g.last, [
        [("conv", "Conv2d_1a_1x1", 384, 3, 2, 0)],
        [("conv", "Conv2d_0a_1x1", 64, 1), ("conv", "Conv2d_0b_3x3", 96, 3), ("conv", "Conv2d_1a_1x1", 96, 3, 2, 0)],
        [("maxpool", "MaxPool_1a_3x3", 3, 2, 0)]])
    for scope, mid in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        _branches(g, scope, g.last, [
            [("conv", "Conv2d_0a_1x1", 192, 1)],
            [("conv", "Conv2d_0a_1x1", mid, 1), ("conv", "Conv2d_0b_1x7", mid, [1, 7]),
             ("conv", "Conv2d_0c_7x1", 192, [7, 1])],
            [("conv", "Conv2d_0a_1x1", mid, 1), ("conv", "Conv2d_0b_7x1", mid, [7, 1]),
             ("conv", "Conv2d_0c_1x7", mid, [1, 7]), ("conv", "Conv2d_0d_7x1", mid, [7, 1]),
             ("conv", "Conv2d_0e_1x7", 192, [1, 7])],
            [avg, ("conv", "Conv2d_0b_1x1", 192, 1)]])
    _branches(g, "Mixed_7a", g.last, [
        [("conv", "Conv2d_0a_1x1", 192, 1), ("conv", "Conv2d_1a_3x3", 320, 3, 2, 0)],
        [("conv", "Conv2d_0a_1x1", 192, 1), ("conv", "Conv2d_0b_1x7", 192, [1, 7]),
         ("conv", "Conv2d_0c_7x1", 192, [7, 1]), ("conv", "Conv2d_1a_3x3", 192, 3, 2, 0)],
        [("maxpool", "MaxPool_1a_3x3", 3, 2, 0)]])
    for scope, second in (("Mixed_7b", "Conv2d_0b_3x1"), ("Mixed_7c", "Conv2d_0c_3x1")):
        _branches(g, scope, g.last, [
            [("conv", "Conv2d_0a_1x1", 320, 1)],
            [("conv", "Conv2d_0a_1x1", 384, 1),
             ("split", "concat", [("Conv2d_0b_1x3", 384, [1, 3]), (second, 384, [3, 1])])],
            [("conv", "Conv2d_0a_1x1", 448, 1), ("conv", "Conv2d_0b_3x3", 384, 3),
             ("split", "concat", [("Conv2d_0c_1x3", 384, [1, 3]), ("Conv2d_0d_3x1", 384, [3, 1])])],
            [avg, ("conv", "Conv2d_0b_1x1", 192, 1)]])
    return g, "Mixed_7c"


def inception_v4():
    g = Graph()
    slim_conv(g, "Conv2d_1a_3x3", 32, 3, 2, 0)
    slim_conv(g, "Conv2d_2a_3x3", 32, 3, 1, 0)
    slim_conv(g, "Conv2d_2b_3x3", 64, 3, 1, "same_tf")
    _branches(g, "Mixed_3a", g.last, [[("maxpool", "MaxPool_0a_3x3", 3, 2, 0)],
                                      [("conv", "Conv2d_0a_3x3", 96, 3, 2, 0)]])
    _branches(g, "Mixed_4a", g.last, [
        [("conv", "Conv2d_0a_1x1", 64, 1), ("conv", "Conv2d_1a_3x3", 96, 3, 1, 0)],
        [("conv", "Conv2d_0a_1x1", 64, 1), ("conv", "Conv2d_0b_1x7", 64, [1, 7]),
         ("conv", "Conv2d_0c_7x1", 64, [7, 1]), ("conv", "Conv2d_1a_3x3", 96, 3, 1, 0)]])
    _branches(g, "Mixed_5a", g.last, [[("conv", "Conv2d_1a_3x3", 192, 3, 2, 0)],
                                      [("maxpool", "MaxPool_1a_3x3", 3, 2, 0)]])
    avg = ("avgpool", "AvgPool_0a_3x3", 3, 1, "same_tf")
    for scope in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_5e"):  # block_inception_a
        _branches(g, scope, g.last, [
            [("conv", "Conv2d_0a_1x1", 96, 1)],
            [("conv", "Conv2d_0a_1x1", 64, 1), ("conv", "Conv2d_0b_3x3", 96, 3)],
            [("conv", "Conv2d_0a_1x1", 64, 1), ("conv", "Conv2d_0b_3x3", 96, 3), ("conv", "Conv2d_0c_3x3", 96, 3)],
            [avg, ("conv", "Conv2d_0b_1x1", 96, 1)]])
    _branches(g, "Mixed_6a", g.last, [  # block_reduction_a
        [("conv", "Conv2d_1a_3x3", 384, 3, 2, 0)],
        [("conv", "Conv2d_0a_1x1", 192, 1), ("conv", "Conv2d_0b_3x3", 224, 3), ("conv", "Conv2d_1a_3x3", 256, 3, 2, 0)],
        [("maxpool", "MaxPool_1a_3x3", 3, 2, 0)]])
    for scope in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_6f", "Mixed_6g", "Mixed_6h"):
        _branches(g, scope, g.last, [  # block_inception_b
            [("conv", "Conv2d_0a_1x1", 384, 1)],
            [("conv", "Conv2d_0a_1x1", 192, 1), ("conv", "Conv2d_0b_1x7", 224, [1, 7]),
             ("conv", "Conv2d_0c_7x1", 256, [7, 1])],
            [("conv", "Conv2d_0a_1x1", 192, 1), ("conv", "Conv2d_0b_7x1", 192, [7, 1]),
             ("conv", "Conv2d_0c_1x7", 224, [1, 7]), ("conv", "Conv2d_0d_7x1", 224, [7, 1]),
             ("conv", "Conv2d_0e_1x7", 256, [1, 7])],
            [avg, ("conv", "Conv2d_0b_1x1", 128, 1)]])
    _branches(g, "Mixed_7a", g.last, [  # block_reduction_b
        [("conv", "Conv2d_0a_1x1", 192, 1), ("conv", "Conv2d_1a_3x3", 192, 3, 2, 0)],
        [("conv", "Conv2d_0a_1x1", 256, 1), ("conv", "Conv2d_0b_1x7", 256, [1, 7]),
         ("conv", "Conv2d_0c_7x1", 320, [7, 1]), ("conv", "Conv2d_1a_3x3", 320, 3, 2, 0)],
        [("maxpool", "MaxPool_1a_3x3", 3, 2, 0)]])
    for scope in ("Mixed_7b", "Mixed_7c", "Mixed_7d"):  # block_inception_c
        _branches(g, scope, g.last, [
            [("conv", "Conv2d_0a_1x1", 256, 1)],
            [("conv", "Conv2d_0a_1x1", 384, 1),
             ("split", "concat", [("Conv2d_0b_1x3", 256, [1, 3]), ("Conv2d_0c_3x1", 256, [3, 1])])],
            [("conv", "Conv2d_0a_1x1", 384, 1), ("conv", "Conv2d_0b_3x1", 448, [3, 1]),
             ("conv", "Conv2d_0c_1x3", 512, [1, 3]),
             ("split", "concat", [("Conv2d_0d_1x3", 256, [1, 3]), ("Conv2d_0e_3x1", 256, [3, 1])])],
            [avg, ("conv", "Conv2d_0b_1x1", 256, 1)]])
    return g, "Mixed_7d"


def inception_resnet_v2(align_feature_maps=False):
    pad = "same_tf" if align_feature_maps else 0
    g = Graph()
    slim_conv(g, "Conv2d_1a_3x3", 32, 3, 2, pad)
    slim_conv(g, "Conv2d_2a_3x3", 32, 3, 1, pad)
    slim_conv(g, "Conv2d_2b_3x3", 64, 3, 1, "same_tf")
    g.pool("maxpool", "MaxPool_3a_3x3", 3, 2, pad)
    slim_conv(g, "Conv2d_3b_1x1", 80, 1, 1, pad)
    slim_conv(g, "Conv2d_4a_3x3", 192, 3, 1, pad)
    g.pool("maxpool", "MaxPool_5a_3x3", 3, 2, pad)
    _branches(g, "Mixed_5b", g.last, [
        [("conv", "Conv2d_1x1", 96, 1)],
        [("conv", "Conv2d_0a_1x1", 48, 1), ("conv", "Conv2d_0b_5x5", 64, 5)],
        [("conv", "Conv2d_0a_1x1", 64, 1), ("conv", "Conv2d_0b_3x3", 96, 3), ("conv", "Conv2d_0c_3x3", 96, 3)],
        [("avgpool", "AvgPool_0a_3x3", 3, 1, "same_tf"), ("conv", "Conv2d_0b_1x1", 64, 1)]])

    def residual(scope, branches):
        """block35/block17/block8: branches -> concat -> 1x1 'up' conv (bias, no BN) -> net + scale*up."""
        net = g.last
        mixed = _branches(g, scope, net, branches, concat_name=f"{scope}/concat")
        g.conv(f"{scope}/Conv2d_1x1", g.channels[net], 1, 1, "same_tf", inp=mixed, bias=True)
        return g.add(scope, [net, f"{scope}/Conv2d_1x1"])

    for i in range(1, 11):
        residual(f"Repeat/block35_{i}", [
            [("conv", "Conv2d_1x1", 32, 1)],
            [("conv", "Conv2d_0a_1x1", 32, 1), ("conv", "Conv2d_0b_3x3", 32, 3)],
            [("conv", "Conv2d_0a_1x1", 32, 1), ("conv", "Conv2d_0b_3x3", 48, 3), ("conv", "Conv2d_0c_3x3", 64, 3)]])
    _branches(g, "Mixed_6a", g.last, [
        [("conv", "Conv2d_1a_3x3", 384, 3, 2, pad)],
        [("conv", "Conv2d_0a_1x1", 256, 1), ("conv", "Conv2d_0b_3x3", 256, 3),
         ("conv", "Conv2d_1a_3x3", 384, 3, 2, pad)],
        [("maxpool", "MaxPool_1a_3x3", 3, 2, pad)]])
    for i in range(1, 21):
        residual(f"Repeat_1/block17_{i}", [
            [("conv", "Conv2d_1x1", 192, 1)],
            [("conv", "Conv2d_0a_1x1", 128, 1), ("conv", "Conv2d_0b_1x7", 160, [1, 7]),
             ("conv", "Conv2d_0c_7x1", 192, [7, 1])]])
    g.identity("PreAuxLogits")
    _branches(g, "Mixed_7a", g.last, [
        [("conv", "Conv2d_0a_1x1", 256, 1), ("conv", "Conv2d_1a_3x3", 384, 3, 2, pad)],
        [("conv", "Conv2d_0a_1x1", 256, 1), ("conv", "Conv2d_1a_3x3", 288, 3, 2, pad)],
        [("conv", "Conv2d_0a_1x1", 256, 1), ("conv", "Conv2d_0b_3x3", 288, 3),
         ("conv", "Conv2d_1a_3x3", 320, 3, 2, pad)],
        [("maxpool", "MaxPool_1a_3x3", 3, 2, pad)]])
    block8 = [[("conv", "Conv2d_1x1", 192, 1)],
              [("conv", "Conv2d_0a_1x1", 192, 1), ("conv", "Conv2d_0b_1x3", 224, [1, 3]),
               ("conv", "Conv2d_0c_3x1", 256, [3, 1])]]
    for i in range(1, 10):
        residual(f"Repeat_2/block8_{i}", block8)
    residual("Block8", block8)
    slim_conv(g, "Conv2d_7b_1x1", 1536, 1)
    return g, "Conv2d_7b_1x1"


def resnet_slim(version, units):
    """TF-Slim resnet_v1/resnet_v2 (resnet_utils): stride in the LAST unit of blocks 1-3."""
    v2 = version == 2
    g = Graph()
    if v2:  # conv1 without BN/activation (the first unit's preact does them)
        g.conv("conv1", 64, 7, 2, 3, bias=True)
    else:
        slim_conv(g, "conv1", 64, 7, 2, 3)
    g.pool("maxpool", "pool1", 3, 2, "same_tf")  # resnet_arg_scope: max_pool2d padding='SAME'
    for b, (count, base) in enumerate(zip(units, (64, 128, 256, 512)), start=1):
        depth = base * 4
        for u in range(1, count + 1):
            stride = 2 if (u == count and b < 4) else 1
            scope = f"block{b}/unit_{u}/bottleneck_v{version}"
            inp = g.last
            depth_in = g.channels[inp]
            if v2:
                preact = g.bn(f"{scope}/preact", inp=inp)
            if depth == depth_in:
                shortcut = inp if stride == 1 else g.pool(
                    "maxpool", f"{scope}/shortcut", 1, stride, "same_tf", inp=inp)  # resnet_utils.subsample
            elif v2:
                shortcut = g.conv(f"{scope}/shortcut", depth, 1, stride, "same_tf", inp=preact, bias=True)
            else:
                shortcut = slim_conv(g, f"{scope}/shortcut", depth, 1, stride, "same_tf", inp=inp)
            x = slim_conv(g, f"{scope}/conv1", base, 1, 1, "same_tf", inp=preact if v2 else inp)
            # resnet_utils.conv2d_same: 'SAME' if stride 1, else explicit pad (k-1)//2 each side + 'VALID'
            x = slim_conv(g, f"{scope}/conv2", base, 3, stride, "same_tf" if stride == 1 else 1, inp=x)
            if v2:
                x = g.conv(f"{scope}/conv3", depth, 1, 1, "same_tf", inp=x, bias=True)
            else:
                x = slim_conv(g, f"{scope}/conv3", depth, 1, 1, "same_tf", inp=x)
            g.add(scope, [shortcut, x])
        g.identity(f"block{b}")
    if v2:
        g.bn("postnorm")
    return g, "block4"


# ------------------------------------------------------------- torchvision


def torch_conv(g, name, out, kernel, stride, padding, inp=None, groups=1, dilation=1):
    """nn.Conv2d(bias=False) followed by its nn.BatchNorm2d, named as torchvision names them."""
    return g.conv(name, out, kernel, stride, padding, inp=inp, groups=groups, bias=False, dilation=dilation)


def resnet_torchvision(block, layers, head=True, dilate=(False, False, False)):
    """torchvision ResNet; `dilate` is replace_stride_with_dilation for layer2..layer4 (DeepLab: F, T, T)."""
    g = Graph()
    torch_conv(g, "conv1", 64, 7, 2, 3)
    g.bn("bn1")
    g.pool("maxpool", "maxpool", 3, 2, 1)
    inplanes = 64
    expansion = 4 if block == "bottleneck" else 1
    dilation = 1
    for stage, (count, planes) in enumerate(zip(layers, (64, 128, 256, 512)), start=1):
        previous = dilation
        first_stride = 1 if stage == 1 else 2
        if stage > 1 and dilate[stage - 2]:
            dilation *= first_stride
            first_stride = 1
        for i in range(count):
            stride = first_stride if i == 0 else 1
            d = previous if i == 0 else dilation
            scope = f"layer{stage}.{i}"
            inp = g.last
            if block == "basic":
                torch_conv(g, f"{scope}.conv1", planes, 3, stride, 1, inp=inp)
                g.bn(f"{scope}.bn1")
                torch_conv(g, f"{scope}.conv2", planes, 3, 1, 1)
                x = g.bn(f"{scope}.bn2")
            else:  # torchvision Bottleneck (v1.5): stride on the 3x3
                torch_conv(g, f"{scope}.conv1", planes, 1, 1, 0, inp=inp)
                g.bn(f"{scope}.bn1")
                torch_conv(g, f"{scope}.conv2", planes, 3, stride, d, dilation=d)
                g.bn(f"{scope}.bn2")
                torch_conv(g, f"{scope}.conv3", planes * 4, 1, 1, 0)
                x = g.bn(f"{scope}.bn3")
            shortcut = inp
            if stride != 1 or inplanes != planes * expansion:
                torch_conv(g, f"{scope}.downsample.0", planes * expansion, 1, stride, 0, inp=inp)
                shortcut = g.bn(f"{scope}.downsample.1")
            g.add(f"{scope}.add", [x, shortcut])
            inplanes = planes * expansion
        g.identity(f"layer{stage}")
    if head:
        g.head(1000)
    return g, "layer4"


def mobilenet_v2_torchvision():
    g = Graph()
    torch_conv(g, "features.0.0", 32, 3, 2, 1)
    g.bn("features.0.1")
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]
    index, inp_ch = 1, 32
    for t, c, n, s in settings:
        for i in range(n):
            stride = s if i == 0 else 1
            scope = f"features.{index}.conv"
            inp = g.last
            hidden = inp_ch * t
            layer = 0
            if t != 1:
                torch_conv(g, f"{scope}.0.0", hidden, 1, 1, 0, inp=inp)
                g.bn(f"{scope}.0.1")
                layer = 1
            torch_conv(g, f"{scope}.{layer}.0", hidden, 3, stride, 1, groups=hidden)
            g.bn(f"{scope}.{layer}.1")
            torch_conv(g, f"{scope}.{layer + 1}", c, 1, 1, 0)
            x = g.bn(f"{scope}.{layer + 2}")
            if stride == 1 and inp_ch == c:
                g.add(f"features.{index}.add", [inp, x])
            inp_ch = c
            index += 1
    torch_conv(g, "features.18.0", 1280, 1, 1, 0)
    g.bn("features.18.1")
    g.identity("features")
    g.head(1000, fc_name="classifier.1")
    return g, "features"


# ---------------------------------------------------------------- catalog


def _slim_source(files, extra=""):
    return (f"TF-Slim {', '.join(SLIM + f for f in files)}, as built by google-research/receptive_field's "
            f"rf_benchmark.py for the table of {DISTILL}. {extra}").strip()


TF_NOTES = ("Feature extractor up to the table's last end-point (classifier heads and, for alexnet_v2/vgg, the "
            "convolutional fc6/fc7 are not included). TF 'SAME' padding is written as \"same_tf\" and resolved "
            "against the incoming size, so effective padding depends on the input size wherever a stride-2 layer "
            "has SAME padding (the table's None). Normalisation as in the model's own arg scope (the released "
            "checkpoints): alexnet_v2 and vgg convs have a bias and no BN; the others are conv (no bias) + a bn "
            "node counted as 2*C params (TF-Slim's inception arg scope has BN without the scale, C params), except "
            "where the definition sets normalizer_fn=None (resnet_v2's conv1, shortcut and conv3, "
            "inception_resnet_v2's residual 1x1 'up' convs: bias, no BN). Activations are not written. Geometry "
            "does not depend on any of this.")


def catalog():
    """name -> (builder, title, source, notes, input_size, published extra)."""
    resnet_units = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3), 200: (3, 24, 36, 3)}
    entries = {
        "alexnet_v2": (alexnet_v2, "AlexNet v2 (TF-Slim alexnet_v2)", _slim_source(["alexnet.py"],
                       "Krizhevsky 2014, 'One weird trick' (arXiv:1404.5997)."), 224),
        "vgg_a": (lambda: vgg((1, 1, 2, 2, 2)), "VGG-A / VGG-11 (TF-Slim vgg_a)", _slim_source(["vgg.py"],
                  "Simonyan & Zisserman 2014 (arXiv:1409.1556), configuration A."), 224),
        "vgg_16": (lambda: vgg((2, 2, 3, 3, 3)), "VGG-16 (TF-Slim vgg_16)", _slim_source(["vgg.py"],
                   "Simonyan & Zisserman 2014 (arXiv:1409.1556), configuration D."), 224),
        "inception_v2": (lambda: inception_v2(True), "Inception v2 (TF-Slim inception_v2_base, separable stem)",
                         _slim_source(["inception_v2.py"], "Ioffe & Szegedy 2015 (arXiv:1502.03167)."), 224),
        "inception_v2-no-separable-conv": (lambda: inception_v2(False),
                                           "Inception v2 (TF-Slim, use_separable_conv=False)",
                                           _slim_source(["inception_v2.py"], "Ioffe & Szegedy 2015 "
                                                        "(arXiv:1502.03167); plain 7x7 stem conv."), 224),
        "inception_v3": (inception_v3, "Inception v3 (TF-Slim inception_v3_base)", _slim_source(
            ["inception_v3.py"], "Szegedy et al. 2015 (arXiv:1512.00567)."), 299),
        "inception_v4": (inception_v4, "Inception v4 (TF-Slim inception_v4_base)", _slim_source(
            ["inception_v4.py"], "Szegedy et al. 2016 (arXiv:1602.07261)."), 299),
        "inception_resnet_v2": (lambda: inception_resnet_v2(False),
                                "Inception-ResNet v2 (TF-Slim inception_resnet_v2_base, VALID reductions)",
                                _slim_source(["inception_resnet_v2.py"], "Szegedy et al. 2016 "
                                             "(arXiv:1602.07261); output_stride=16, align_feature_maps=False."), 299),
        "inception_resnet_v2-same": (lambda: inception_resnet_v2(True),
                                     "Inception-ResNet v2 (TF-Slim, align_feature_maps=True: SAME everywhere)",
                                     _slim_source(["inception_resnet_v2.py"], "Szegedy et al. 2016 "
                                                  "(arXiv:1602.07261); output_stride=16."), 299),
        "mobilenet_v1": (lambda: mobilenet_v1(1.0), "MobileNet v1 1.0 (TF-Slim mobilenet_v1_base)", _slim_source(
            ["mobilenet_v1.py"], "Howard et al. 2017 (arXiv:1704.04861)."), 224),
        "mobilenet_v1_075": (lambda: mobilenet_v1(0.75), "MobileNet v1 0.75 (TF-Slim, depth_multiplier=0.75)",
                             _slim_source(["mobilenet_v1.py"], "Howard et al. 2017 (arXiv:1704.04861)."), 224),
    }
    for version in (1, 2):
        paper = ("He et al. 2016 (arXiv:1512.03385)" if version == 1
                 else "He et al. 2016, 'Identity Mappings in Deep Residual Networks' (arXiv:1603.05027)")
        for depth, units in resnet_units.items():
            name = f"resnet_v{version}_{depth}"
            entries[name] = (lambda v=version, u=units: resnet_slim(v, u),
                             f"ResNet-{depth} v{version} (TF-Slim {name})",
                             _slim_source([f"resnet_v{version}.py", "resnet_utils.py"],
                                          f"{paper}; resnet_arg_scope (pool1 SAME); bottleneck units {units}, "
                                          "stride 2 in the 3x3 of the LAST unit of blocks 1-3."), 224)
    return entries


TORCHVISION = {
    "resnet18": (lambda: resnet_torchvision("basic", (2, 2, 2, 2)), "ResNet-18 (torchvision)",
                 "torchvision.models.resnet18 (torchvision/models/resnet.py: BasicBlock, layers [2, 2, 2, 2]); "
                 "He et al. 2016 (arXiv:1512.03385).", 11_689_512),
    "resnet50": (lambda: resnet_torchvision("bottleneck", (3, 4, 6, 3)), "ResNet-50 v1.5 (torchvision)",
                 "torchvision.models.resnet50 (torchvision/models/resnet.py: Bottleneck with the stride on the 3x3 "
                 "'ResNet V1.5', layers [3, 4, 6, 3]); He et al. 2016 (arXiv:1512.03385).", 25_557_032),
    "mobilenet_v2": (mobilenet_v2_torchvision, "MobileNet v2 1.0 (torchvision)",
                     "torchvision.models.mobilenet_v2 (torchvision/models/mobilenetv2.py: InvertedResidual, "
                     "settings t,c,n,s = 1,16,1,1 / 6,24,2,2 / 6,32,3,2 / 6,64,4,2 / 6,96,3,1 / 6,160,3,2 / "
                     "6,320,1,1, last conv 1280); Sandler et al. 2018 (arXiv:1801.04381).", 3_504_872),
}
TORCH_NOTES = ("The whole network: convs (no bias) each followed by its BatchNorm (2*C params), residual adds, "
               "global average pool, flatten and the 1000-class linear head, so params equal torchvision's total. "
               "Node names are torchvision's module names; identity nodes name the stage outputs "
               "(layer1..layer4, features). The end-point ('output') is the last spatial feature map; the head "
               "still counts in params and MACs. Activations and dropout are not written.")


# ---------------------------------------------------------------- decoders


def unet(valid=True, classes=2, in_channels=1, widths=(64, 128, 256, 512, 1024)):
    """Ronneberger et al. 2015: two 3x3 convs + ReLU per level, 2x2 max pools, 2x2 up-convs halving the
    channels, copy-and-crop skips, a final 1x1 conv. valid: unpadded convs (572 -> 388); else padding 1."""
    g = Graph(in_channels)
    pad = 0 if valid else 1
    skips = []
    for level, width in enumerate(widths, start=1):
        if level > 1:
            g.pool("maxpool", f"down{level - 1}", 2, 2, 0)
        g.conv(f"enc{level}.conv1", width, 3, 1, pad)
        g.conv(f"enc{level}.conv2", width, 3, 1, pad)
        skips.append(g.last)
    sizes = {}  # the crop amounts follow from the sizes at the paper's 572 x 572 input
    if valid:
        n = 572
        for level in range(1, len(widths) + 1):
            if level > 1:
                n //= 2
            n -= 4
            sizes[level] = n
    for level in range(len(widths) - 1, 0, -1):
        width = widths[level - 1]
        up = g.node("conv_transpose", f"up{level}", out=width, kernel=2, stride=2, out_channels=width)
        skip = skips[level - 1]
        if valid:
            up_size = sizes[level + 1] * 2
            sizes[level + 1] = up_size - 4
            side = (sizes[level] - up_size) // 2
            skip = g.node("crop", f"crop{level}", inp=skip, crop=side)
        g.concat(f"cat{level}", [skip, up])
        g.conv(f"dec{level}.conv1", width, 3, 1, pad)
        g.conv(f"dec{level}.conv2", width, 3, 1, pad)
        if valid:
            sizes[level] = up_size - 4
    g.conv("final", classes, 1, 1, 0)
    return g, "final"


def fcn8s(classes=21):
    """FCN-8s (Long, Shelhamer & Darrell 2015), the Caffe voc-fcn8s net: VGG-16 with conv1_1 padding 100,
    ceil-mode pools, fc6/fc7 as 7x7 / 1x1 convs, 2x / 2x / 8x transposed convs (no bias) and Caffe Crop
    layers (offsets 5, 9, 31) fusing pool4 and pool3 scores; crops as at the 500x500 input."""
    g = Graph()
    for block, (repeats, width) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], start=1):
        for i in range(1, repeats + 1):
            g.conv(f"conv{block}_{i}", width, 3, 1, 100 if (block, i) == (1, 1) else 1)
        g.node("maxpool", f"pool{block}", kernel=2, stride=2, padding=0, ceil_mode=True)
    g.conv("fc6", 4096, 7, 1, 0)
    g.conv("fc7", 4096, 1, 1, 0)
    g.conv("score_fr", classes, 1, 1, 0)
    g.node("conv_transpose", "upscore2", out=classes, kernel=4, stride=2, padding=0, out_channels=classes,
           bias=False)
    g.conv("score_pool4", classes, 1, 1, 0, inp="pool4")
    g.node("crop", "score_pool4c", crop=5)
    g.add("fuse_pool4", ["upscore2", "score_pool4c"])
    g.node("conv_transpose", "upscore_pool4", out=classes, kernel=4, stride=2, padding=0, out_channels=classes,
           bias=False)
    g.conv("score_pool3", classes, 1, 1, 0, inp="pool3")
    g.node("crop", "score_pool3c", crop=9)
    g.add("fuse_pool3", ["upscore_pool4", "score_pool3c"])
    g.node("conv_transpose", "upscore8", out=classes, kernel=16, stride=8, padding=0, out_channels=classes,
           bias=False)
    g.node("crop", "score", crop=[[31, 37], [31, 37]])
    return g, "score"


def deeplabv3_resnet50(classes=21, size=512):
    """torchvision deeplabv3_resnet50 (Chen et al. 2017): ResNet-50 with strides of layer3/layer4 replaced
    by dilation (output stride 8), ASPP (1x1, 3x3 at dilations 12/24/36, image pooling), projection,
    a 3x3 conv, the classifier and the final bilinear upsampling x8 to the input size."""
    g, _ = resnet_torchvision("bottleneck", (3, 4, 6, 3), head=False, dilate=(False, True, True))
    feat = "layer4"
    branches = []
    torch_conv(g, "classifier.0.convs.0.0", 256, 1, 1, 0, inp=feat)
    branches.append(g.bn("classifier.0.convs.0.1"))
    for i, rate in enumerate((12, 24, 36), start=1):
        torch_conv(g, f"classifier.0.convs.{i}.0", 256, 3, 1, rate, inp=feat, dilation=rate)
        branches.append(g.bn(f"classifier.0.convs.{i}.1"))
    g.node("global_pool", "classifier.0.convs.4.0", inp=feat)
    torch_conv(g, "classifier.0.convs.4.1", 256, 1, 1, 0)
    g.bn("classifier.0.convs.4.2")
    branches.append(g.node("upsample", "classifier.0.convs.4.up", scale=size // 8, mode="nearest"))
    g.concat("classifier.0.cat", branches)
    torch_conv(g, "classifier.0.project.0", 256, 1, 1, 0)
    g.bn("classifier.0.project.1")
    torch_conv(g, "classifier.1", 256, 3, 1, 1)
    g.bn("classifier.2")
    g.conv("classifier.4", classes, 1, 1, 0, bias=True)
    g.node("upsample", "out", scale=8, mode="bilinear", align_corners=False)
    return g, "out"


def fpn_resnet50(channels=256):
    """The FPN of torchvision's fasterrcnn/maskrcnn_resnet50_fpn (Lin et al. 2017): ResNet-50 C2..C5, 1x1
    lateral convs to 256, nearest 2x top-down upsampling added in, 3x3 output convs, and P6 = a stride-2
    1x1 max pool of P5 (LastLevelMaxPool). End-point: P2 (stride 4); P3..P6 are nodes."""
    g, _ = resnet_torchvision("bottleneck", (3, 4, 6, 3), head=False)
    inner = {}
    for level in range(4, 0, -1):
        g.conv(f"fpn.inner_blocks.{level - 1}", channels, 1, 1, 0, inp=f"layer{level}")
        inner[level] = g.last
        if level < 4:
            up = g.node("upsample", f"fpn.top_down.{level - 1}", inp=inner[level + 1], scale=2, mode="nearest")
            inner[level] = g.add(f"fpn.merge.{level - 1}", [inner[level], up])
    for level in range(4, 0, -1):
        g.conv(f"fpn.layer_blocks.{level - 1}", channels, 3, 1, 1, inp=inner[level])
        g.identity(f"P{level + 1}")
    g.pool("maxpool", "P6", 1, 2, 0, inp="P5")
    return g, "P2"


UNET_SOURCE = ("Ronneberger, Fischer & Brox, 'U-Net: Convolutional Networks for Biomedical Image Segmentation', "
               "MICCAI 2015 (arXiv:1505.04597), Fig. 1")
DECODERS = {
    "unet": (lambda: unet(True), "U-Net (original, valid convolutions)", UNET_SOURCE + ": 572x572 input tile, "
             "388x388 output map, 3x3 unpadded convs, 2x2 max pools, 2x2 up-convolutions, copy and crop.",
             "Channels 64-128-256-512-1024, two classes; ReLUs are not written. Crop amounts (4, 16, 40, 88 "
             "per side) are those of the 572 input; the network runs at any size = 572 (mod 16) >= 188.",
             572, 1, {"input_size": 572, "out_size": 388, "reference": UNET_SOURCE}),
    "unet_same": (lambda: unet(False), "U-Net (same padding)", UNET_SOURCE + ", with padding 1 on every 3x3 conv "
                  "(the common PyTorch re-implementations): output size = input size.",
                  "Channels 64-128-256-512-1024, two classes, no BN; ReLUs are not written. Runs at multiples "
                  "of 16.", 512, 1, {"input_size": 512, "out_size": 512, "reference": "github.com/milesial/"
                                     "Pytorch-UNet (unet/unet_parts.py: DoubleConv with padding=1): output = input"}),
    "fcn8s": (fcn8s, "FCN-8s (VGG-16, Caffe voc-fcn8s)",
              "Long, Shelhamer & Darrell, 'Fully Convolutional Networks for Semantic Segmentation', CVPR 2015 "
              "(arXiv:1411.4038); github.com/shelhamer/fcn.berkeleyvision.org voc-fcn8s/net.py (conv1_1 pad 100, "
              "Caffe ceil-mode pooling, Deconvolution 4x4/2, 4x4/2, 16x16/8 without bias, Crop offsets 5, 9, 31).",
              "21 classes (PASCAL VOC); ReLUs and dropout are not written. Crop amounts are those of a 500x500 "
              "input (Caffe's Crop layer follows the reference blob); the output then equals the input size.",
              500, 3, {"input_size": 500, "out_size": 500, "jump": 1, "reference": "voc-fcn8s/net.py: score = "
                       "crop(upscore8, data) at offset 31: the input's size and resolution"}),
    "deeplabv3_resnet50": (deeplabv3_resnet50, "DeepLab v3 (ASPP) on ResNet-50 (torchvision)",
                           "Chen, Papandreou, Schroff & Adam, 'Rethinking Atrous Convolution for Semantic Image "
                           "Segmentation' (arXiv:1706.05587); torchvision.models.segmentation.deeplabv3_resnet50 "
                           "(deeplabv3.py: ASPP rates 12, 24, 36; resnet50 replace_stride_with_dilation="
                           "[False, True, True]).",
                           "21 classes, no auxiliary head; ReLUs and dropout are not written. The ASPP image-"
                           "pooling branch (global average pool, 1x1 conv, BN, then F.interpolate of the 1x1 map "
                           "to the feature size) is written as an upsample by 64 (nearest: every unit reads the "
                           "one pooled value), so the file is for a 512x512 input; the final F.interpolate "
                           "(bilinear, align_corners=False) to the input size is an upsample by 8.",
                           512, 3, {"input_size": 512, "out_size": 512, "params": 39_638_869,
                                    "reference": "torchvision documentation: deeplabv3_resnet50 42,004,074 params "
                                                 "with its aux_classifier, FCNHead(1024, 21) = 3x3 conv 1024->256 "
                                                 "(2,359,296) + BN (512) + 1x1 conv 256->21 (5,397): "
                                                 "42,004,074 - 2,365,205"}),
    "fpn_resnet50": (fpn_resnet50, "FPN on ResNet-50 (the backbone of torchvision's Faster/Mask R-CNN)",
                     "Lin et al., 'Feature Pyramid Networks for Object Detection', CVPR 2017 (arXiv:1612.03144); "
                     "torchvision.ops.feature_pyramid_network.FeaturePyramidNetwork with LastLevelMaxPool, as "
                     "built by torchvision.models.detection.backbone_utils.resnet_fpn_backbone('resnet50').",
                     "Frozen BatchNorm counted like BatchNorm (2*C); the top-down F.interpolate(size=..., nearest) "
                     "is an exact 2x for inputs divisible by 32. End-point P2 (stride 4); P3, P4, P5, P6 are nodes.",
                     800, 3, {"input_size": 800, "out_size": 200, "jump": 4, "reference": "Lin et al. 2017, "
                              "Sec. 3: {P2, P3, P4, P5} have strides {4, 8, 16, 32} pixels"}),
}


# ----------------------------------------------------------- rank 1 and 3 (issue 19)


def _causal(kernel, dilation):
    """Per-side padding of a causal conv (rank 1): d*(k-1) before, none after."""
    return [[dilation * (kernel - 1), 0]]


def tcn_bai(levels=8, hidden=25, kernel=7, inputs=1, classes=10, length=784):
    """locuslab/TCN TemporalConvNet (Bai, Kolter & Koltun 2018) as its sequential-MNIST model: per level a
    TemporalBlock of two weight-normalised causal Conv1d (padding (k-1)*d then Chomp1d = the same field as
    (k-1)*d before, 0 after), dilation 2**i, a 1x1 downsample where channels change, a residual add; the
    head reads the last time step (y[:, :, -1], a crop) through nn.Linear(hidden, classes)."""
    g = Graph(inputs)
    for i in range(levels):
        d = 2 ** i
        x = g.last
        scope = f"tcn.network.{i}"
        g.conv(f"{scope}.conv1", hidden, kernel, 1, _causal(kernel, d), inp=x, dilation=d)
        g.conv(f"{scope}.conv2", hidden, kernel, 1, _causal(kernel, d), dilation=d)
        residual = x
        if g.channels[x] != hidden:
            residual = g.conv(f"{scope}.downsample", hidden, 1, 1, 0, inp=x)
        g.add(f"{scope}.add", [f"{scope}.conv2", residual])
    output = g.last
    g.node("crop", "last_step", crop=[[length - 1, 0]])
    g.node("flatten", "flatten")
    g._add({"name": "linear", "type": "linear", "inputs": ["flatten"], "out_features": classes, "bias": True},
           classes)
    return g, output


def wavenet(stacks=3, layers=10, residual=32, gate=32, skip=512, classes=256):
    """van den Oord et al. 2016, Fig. 4: a causal conv (kernel 2), then `stacks` x `layers` residual blocks
    with dilations 1, 2, ..., 512: a gated activation tanh(W_f * x) . sigmoid(W_g * x) of two dilated causal
    convs (kernel 2), a 1x1 residual conv added to the block input and a 1x1 skip conv; the skips summed,
    ReLU, 1x1, ReLU, 1x1 to the 256 mu-law classes."""
    g = Graph(classes)
    g.conv("causal_conv", residual, 2, 1, _causal(2, 1))
    skips = []
    for s in range(stacks):
        for i in range(layers):
            d = 2 ** i
            x = g.last
            scope = f"stack{s}.layer{i}"
            tanh = g.conv(f"{scope}.filter", gate, 2, 1, _causal(2, d), inp=x, dilation=d)
            sigmoid = g.conv(f"{scope}.gate", gate, 2, 1, _causal(2, d), inp=x, dilation=d)
            gated = g._add({"name": f"{scope}.gated", "type": "mul", "inputs": [tanh, sigmoid]}, gate)
            skips.append(g.conv(f"{scope}.skip", skip, 1, 1, 0, inp=gated))
            g.conv(f"{scope}.residual", residual, 1, 1, 0, inp=gated)
            g.add(f"{scope}.out", [f"{scope}.residual", x])
    g.add("skips", skips)
    g.node("relu", "relu1")
    g.conv("post1", skip, 1, 1, 0)
    g.node("relu", "relu2")
    g.conv("post2", classes, 1, 1, 0)
    return g, "post2"


def unet3d(in_channels=3, classes=3):
    """Cicek et al. 2016, Fig. 1: per analysis level two 3x3x3 convs (each followed by BN and ReLU), then a
    2x2x2 max pool with stride 2; channels 32-64, 64-128, 128-256, 256-512; per synthesis level a 2x2x2
    up-convolution by 2 (keeping its channels), concatenation with the cropped analysis map, two 3x3x3
    convs (BN, ReLU); a final 1x1x1 conv to the labels. Unpadded convolutions (132x132x116 -> 44x44x28)."""
    g = Graph(in_channels)
    widths = ((32, 64), (64, 128), (128, 256), (256, 512))
    skips = []
    for level, (first, second) in enumerate(widths, start=1):
        if level > 1:
            g.pool("maxpool", f"down{level - 1}", 2, 2, 0)
        g.conv(f"enc{level}.conv1", first, 3, 1, 0)
        skips.append(g.conv(f"enc{level}.conv2", second, 3, 1, 0))
    crops = {3: 4, 2: 16, 1: 40}  # per side on every axis, at the paper's 132x132x116 tile
    for level in (3, 2, 1):
        channels = g.channels[g.last]
        up = g.node("conv_transpose", f"up{level}", out=channels, kernel=2, stride=2, out_channels=channels,
                    bias=False)
        skip = g.node("crop", f"crop{level}", inp=skips[level - 1], crop=crops[level])
        g.concat(f"cat{level}", [skip, up])
        width = widths[level - 1][1]
        g.conv(f"dec{level}.conv1", width, 3, 1, 0)
        g.conv(f"dec{level}.conv2", width, 3, 1, 0)
    g.conv("final", classes, 1, 1, 0)
    return g, "final"


def r3d_18(classes=400):
    """torchvision.models.video.r3d_18 (Tran et al. 2018, R3D): BasicStem Conv3d 3x7x7, stride 1x2x2,
    padding 1x3x3, no bias, BN; four stages of two BasicBlocks of Conv3DSimple (3x3x3, no bias, BN),
    stages 2-4 with stride 2 on every axis and a 1x1x1 downsample conv + BN; adaptive average pool, fc."""
    g = Graph()
    torch_conv(g, "stem.0", 64, [3, 7, 7], [1, 2, 2], [1, 3, 3])
    g.bn("stem.1")
    inplanes = 64
    for stage, planes in enumerate((64, 128, 256, 512), start=1):
        for i in range(2):
            stride = 2 if stage > 1 and i == 0 else 1
            scope = f"layer{stage}.{i}"
            inp = g.last
            torch_conv(g, f"{scope}.conv1.0", planes, 3, stride, 1, inp=inp)
            g.bn(f"{scope}.conv1.1")
            torch_conv(g, f"{scope}.conv2.0", planes, 3, 1, 1)
            x = g.bn(f"{scope}.conv2.1")
            shortcut = inp
            if stride != 1 or inplanes != planes:
                torch_conv(g, f"{scope}.downsample.0", planes, 1, stride, 0, inp=inp)
                shortcut = g.bn(f"{scope}.downsample.1")
            g.add(f"{scope}.add", [x, shortcut])
            inplanes = planes
        g.identity(f"layer{stage}")
    g.head(classes)
    return g, "layer4"


TCN_SOURCE = ("Bai, Kolter & Koltun, 'An Empirical Evaluation of Generic Convolutional and Recurrent Networks "
              "for Sequence Modeling' (arXiv:1803.01271); github.com/locuslab/TCN TCN/tcn.py (TemporalBlock, "
              "TemporalConvNet) with the sequential-MNIST defaults of TCN/mnist_pixel/pmnist_test.py "
              "(levels 8, nhid 25, ksize 7).")
WAVENET_SOURCE = ("van den Oord et al., 'WaveNet: A Generative Model for Raw Audio' (arXiv:1609.03499), Sec. 2.1 "
                  "(dilations 1, 2, 4, ..., 512 repeated, kernel 2, causal), Sec. 2.3-2.4 (gated activation, "
                  "residual and skip connections) and Fig. 4.")
UNET3D_SOURCE = ("Cicek, Abdulkadir, Lienkamp, Brox & Ronneberger, '3D U-Net: Learning Dense Volumetric "
                 "Segmentation from Sparse Annotation', MICCAI 2016 (arXiv:1606.06650), Sec. 2 and Fig. 1.")
R3D_SOURCE = ("Tran et al., 'A Closer Look at Spatiotemporal Convolutions for Action Recognition', CVPR 2018 "
              "(arXiv:1711.11248); torchvision.models.video.r3d_18 (video/resnet.py: BasicStem, BasicBlock, "
              "Conv3DSimple).")
# name -> (builder, title, source, notes, rank, input_size, in_channels, published)
RANKED = {
    "tcn": (tcn_bai, "TCN (Bai et al. 2018), sequential MNIST", TCN_SOURCE,
            "Rank 1: 784 time steps (one pixel each), 1 channel, 10 classes. ReLUs and dropout are not written. "
            "nn.utils.weight_norm's g vectors (25 per conv, 400 in all) are not counted: rfsweep's conv has "
            "no weight-norm field. The head's crop keeps the last time step, as model.py's y[:, :, -1].",
            1, 784, 1, {"params_rounded": 70_000, "reference": "Bai et al. 2018, Table 1: Seq. MNIST, TCN "
                        "model size 70K"}),
    "wavenet": (wavenet, "WaveNet (3 stacks of dilations 1..512)", WAVENET_SOURCE,
                "Rank 1, one second at 16 kHz, 256 mu-law classes one-hot. The paper gives no channel widths: "
                "residual 32, gate 32 and skip 512 here are illustrative, so params and MACs are too; the "
                "receptive field is not. Activations are not written (the gate is a mul node).",
                1, 16000, 256, {"block_rf": 1024, "reference": "van den Oord et al. 2016, Sec. 2.1: 'each "
                                "1, 2, 4, ..., 512 block has receptive field of size 1024'"}),
    "unet3d": (unet3d, "3D U-Net (Cicek et al. 2016)", UNET3D_SOURCE,
               "Rank 3, axes in the paper's order (132x132x116 voxels, 3 channels), 3 labels. ReLUs and BN "
               "are not written: the paper's 19069955 parameters are exactly the convs' weights and biases "
               "plus the up-convolutions' weights (no bias), so neither BN's scale and shift nor an up-conv "
               "bias is in it. Crop amounts (4, 16, 40 per side on every axis) are those of the 132x132x116 "
               "tile.",
               3, [132, 132, 116], 3, {"input_size": [132, 132, 116], "out_size": [44, 44, 28],
                                       "params": 19_069_955, "reference": UNET3D_SOURCE + " Sec. 2: input "
                                       "132x132x116, output 44x44x28, 19069955 parameters in total"}),
    "r3d_18": (r3d_18, "R3D-18 (torchvision)", R3D_SOURCE,
               "Rank 3: a 16-frame 112x112 clip (frames x height x width), Kinetics-400 head. ReLUs are not "
               "written. End-point layer4; the head (adaptive average pool, fc) counts in params and MACs.",
               3, [16, 112, 112], 3, {"input_size": [16, 112, 112], "params": 33_371_472, "gmacs": 40.697,
                                      "reference": "torchvision R3D_18_Weights.KINETICS400_V1 meta: num_params "
                                                   "33371472, _ops 40.697 (GMACs at 16x112x112)"}),
}


def _table_last_rows():
    """The table's last end-point per network at 224 (for 'published'), from tests/data."""
    path = Path(__file__).resolve().parent.parent / "tests" / "data" / "receptive_field_table.json"
    table = json.loads(path.read_text())
    cols = table["columns"]
    last = {}
    for row in table["rows"]:
        row = dict(zip(cols, row))
        if row["resolution"] == "224":
            last[row["cnn"]] = row
    return last


def build_all() -> dict[str, dict]:
    last = _table_last_rows()
    out = {}
    for name, (builder, title, source, size) in catalog().items():
        g, output = builder()
        row = last[name]
        end_point = row["end_point"].split("/", 1)[1] if row["end_point"].startswith(name + "/") else row["end_point"]
        assert end_point == output, (name, end_point, output)
        published = {"rf": int(row["rf"]), "jump": int(row["effective_stride"]),
                     "eff_padding": int(row["effective_padding"]), "input_size": 224, "end_point": output,
                     "reference": f"{DISTILL}; table {TABLE_URL}, row {name} / 224 / {row['end_point']}"}
        out[name] = {"name": name, "title": title, "source": source, "notes": TF_NOTES, "input_size": size,
                     "in_channels": 3, "published": published, "output": output, "nodes": g.nodes}
    for name, (builder, title, source, params) in TORCHVISION.items():
        g, output = builder()
        published = {"params": params, "reference": "torchvision model documentation (num_params of the "
                     "IMAGENET1K_V1 weights), https://pytorch.org/vision/stable/models.html"}
        out[name] = {"name": name, "title": title, "source": source, "notes": TORCH_NOTES, "input_size": 224,
                     "in_channels": 3, "published": published, "output": output, "nodes": g.nodes}
    for name, (builder, title, source, notes, size, channels, published) in DECODERS.items():
        g, output = builder()
        data = {"name": name, "title": title, "source": source, "notes": notes, "input_size": size,
                "in_channels": channels}
        if published:
            data["published"] = published
        out[name] = {**data, "output": output, "nodes": g.nodes}
    for name, (builder, title, source, notes, rank, size, channels, published) in RANKED.items():
        g, output = builder()
        out[name] = {"name": name, "title": title, "source": source, "notes": notes, "rank": rank,
                     "input_size": size, "in_channels": channels, "published": published, "output": output,
                     "nodes": g.nodes}
    return out


def render(data: dict) -> str:
    """Readable JSON: metadata keys one per line, one node per line."""
    head = {k: v for k, v in data.items() if k != "nodes"}
    lines = ["{"]
    for key, value in head.items():
        lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    lines.append('  "nodes": [')
    nodes = [f"    {json.dumps(node)}" for node in data["nodes"]]
    lines.append(",\n".join(nodes))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


OBSOLETE = ("alexnet", "vgg16")  # replaced by alexnet_v2 / vgg_16 (aliases in rfsweep/architectures)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the files are up to date")
    args = parser.parse_args(argv)
    stale = []
    for name, data in build_all().items():
        path = OUT_DIR / f"{name}.json"
        text = render(data)
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(path.name)
        if not args.check:
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(text)
            tmp.replace(path)
    for name in OBSOLETE:
        path = OUT_DIR / f"{name}.json"
        if path.is_file():
            stale.append(path.name)
            if not args.check:
                path.unlink()
    if args.check and stale:
        print("stale: " + ", ".join(stale), file=sys.stderr)
        return 1
    print(("would update: " if args.check else "updated: ") + (", ".join(stale) or "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
