"""Decoder graphs as torch modules, written without rfsweep, and random decoder graphs.

`GraphNet(graph)` runs a graph dict (contract sections 6 and 8) with torch's
own layers: nn.Conv2d / ConvTranspose2d / AvgPool2d / MaxPool2d, F.interpolate,
nn.PixelShuffle / PixelUnshuffle, slicing for crops, torch.cat / + for merges.
Weights are random; float64 by default. Supports are read off gradients.
`random_decoder(rng)` draws encoder-decoder graphs: strided convs and pools
down; transposed convs (every padding / output_padding PyTorch allows),
nearest / bilinear / bicubic upsampling (with and without align_corners),
pixel shuffles up; crops; skip concats and adds between maps of equal size.
"""

from __future__ import annotations

import random

import torch
import torch.nn as nn
import torch.nn.functional as F


def _pair(value):
    return tuple(value) if isinstance(value, (list, tuple)) else (value, value)


def _sides(value):
    if isinstance(value, list) and all(isinstance(v, list) for v in value):
        return tuple(tuple(v) for v in value)
    h, w = _pair(value)
    return (h, h), (w, w)


def _key(name):
    return name.replace(".", "_")  # ModuleDict keys cannot hold dots


class GraphNet(nn.Module):
    def __init__(self, graph, dtype=torch.float64, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.nodes, self.output = [], None
        self.mods = nn.ModuleDict()
        channels = {"input": graph.get("in_channels", 3)}
        previous = "input"
        for raw in graph["nodes"]:
            node = dict(raw)
            node.setdefault("inputs", [previous])
            c = channels[node["inputs"][0]]
            kind = node["type"]
            name = node["name"]
            if kind == "conv":
                pads = node.get("padding")
                k = _pair(node["kernel"])
                d = _pair(node.get("dilation", 1))
                if pads is None:
                    pads = [d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2]
                (t, b), (l, r) = _sides(pads)
                out = node.get("out_channels", c)
                self.mods[_key(name)] = nn.Sequential(
                    nn.ZeroPad2d((l, r, t, b)),
                    nn.Conv2d(c, out, k, _pair(node.get("stride", 1)), 0, d, node.get("groups", 1),
                              node.get("bias", True)))
                c = out
            elif kind in ("avgpool", "maxpool"):
                k = _pair(node["kernel"])
                cls = nn.AvgPool2d if kind == "avgpool" else nn.MaxPool2d
                extra = {"count_include_pad": True} if kind == "avgpool" else {}
                self.mods[_key(name)] = cls(k, _pair(node.get("stride", k)), _pair(node.get("padding", 0)),
                                      ceil_mode=node.get("ceil_mode", False), **extra)
            elif kind == "conv_transpose":
                out = node.get("out_channels", c)
                self.mods[_key(name)] = nn.ConvTranspose2d(
                    c, out, _pair(node["kernel"]), _pair(node.get("stride", 1)), _pair(node.get("padding", 0)),
                    _pair(node.get("output_padding", 0)), node.get("groups", 1), node.get("bias", True),
                    _pair(node.get("dilation", 1)))
                c = out
            elif kind == "pixel_shuffle":
                self.mods[_key(name)] = nn.PixelShuffle(node["factor"])
                c //= node["factor"] ** 2
            elif kind == "pixel_unshuffle":
                self.mods[_key(name)] = nn.PixelUnshuffle(node["factor"])
                c *= node["factor"] ** 2
            elif kind == "concat":
                c = sum(channels[i] for i in node["inputs"])
            channels[name] = c
            self.nodes.append(node)
            previous = name
        self.output = graph.get("output", previous)
        self.to(dtype)

    def forward(self, x):
        values = {"input": x}
        for node in self.nodes:
            kind, name = node["type"], node["name"]
            ins = [values[i] for i in node["inputs"]]
            if _key(name) in self.mods:
                y = self.mods[_key(name)](ins[0])
            elif kind == "upsample":
                scale = _pair(node["scale"])
                mode = node.get("mode", "nearest")
                corners = node.get("align_corners", False) if mode != "nearest" else None
                y = F.interpolate(ins[0], scale_factor=tuple(float(s) for s in scale), mode=mode,
                                  align_corners=corners)
            elif kind == "crop":
                (t, b), (l, r) = _sides(node["crop"])
                h, w = ins[0].shape[-2:]
                y = ins[0][..., t:h - b, l:w - r]
            elif kind == "concat":
                y = torch.cat(ins, dim=1)
            elif kind == "add":
                y = sum(ins[1:], ins[0])
            elif kind == "relu":
                y = torch.relu(ins[0])
            else:  # identity, bn
                y = ins[0]
            values[name] = y
        return values[self.output]


def support_extents(net, size, in_channels, units, axis, other):
    """Per unit (along `axis`, the other coordinate fixed at `other`): (first, last) input index it depends on."""
    x = torch.randn(1, in_channels, size[0], size[1], dtype=torch.float64, requires_grad=True)
    y = net(x)
    result = {}
    for u in units:
        index = (u, other) if axis == 0 else (other, u)
        grad, = torch.autograd.grad(y[0, :, index[0], index[1]].sum(), x, retain_graph=True)
        nonzero = grad.abs().sum(dim=(0, 1)).sum(dim=1 - axis).nonzero().flatten().tolist()
        result[u] = (nonzero[0], nonzero[-1]) if nonzero else None
    return result, tuple(y.shape[-2:])


# ---------------------------------------------------------------- random decoders

def _transposed(rng):
    k, s, d = rng.randint(1, 5), rng.randint(1, 3), rng.choice([1, 1, 2])
    p = rng.randint(0, d * (k - 1))
    op = rng.randint(0, max(s, d) - 1)
    return {"type": "conv_transpose", "kernel": k, "stride": s, "padding": p, "output_padding": op,
            "dilation": d}


def _upsample(rng, corners_ok):
    mode = rng.choice(["nearest", "nearest", "bilinear", "bilinear", "bicubic"])
    scale = rng.choice([2, 2, 3]) if mode == "nearest" else rng.choice([2, 2, 4])
    node = {"type": "upsample", "scale": scale if rng.random() < 0.8 else [scale, rng.choice([1, 2])],
            "mode": mode}
    if mode != "nearest":
        node["align_corners"] = corners_ok and rng.random() < 0.3
    return node


def random_decoder(rng: random.Random, corners=True, channels=2):
    """An encoder-decoder graph dict (input 40-56), with skips where sizes and jumps allow."""
    nodes = []
    size = rng.choice([40, 48, 56])

    def add(node, inputs=None):
        node["name"] = f"n{len(nodes)}"
        if inputs is not None:
            node["inputs"] = inputs
        nodes.append(node)
        return node["name"]

    add({"type": "conv", "kernel": rng.choice([1, 3]), "out_channels": channels})
    downs = rng.randint(1, 2)
    for _ in range(downs):
        if rng.random() < 0.5:
            add({"type": "avgpool", "kernel": 2})
        else:
            add({"type": "conv", "kernel": rng.choice([2, 3]), "stride": 2, "padding": rng.randint(0, 1)})
        if rng.random() < 0.5:
            add({"type": "conv", "kernel": rng.choice([1, 3, 5]), "padding": rng.choice([None, 0])})
            if nodes[-1]["padding"] is None:
                del nodes[-1]["padding"]
    ups = rng.randint(1, 3)
    for _ in range(ups):
        roll = rng.random()
        if roll < 0.4:
            add(_transposed(rng))
        elif roll < 0.8:
            add(_upsample(rng, corners))
        else:
            add({"type": "conv", "kernel": 1, "out_channels": channels * 4})
            add({"type": "pixel_shuffle", "factor": 2})
        if rng.random() < 0.4:
            sides = [[rng.randint(0, 2), rng.randint(0, 2)], [rng.randint(0, 2), rng.randint(0, 2)]]
            add({"type": "crop", "crop": sides})
        if rng.random() < 0.6:
            add({"type": "conv", "kernel": rng.choice([1, 3]), "dilation": rng.choice([1, 2])})
    if rng.random() < 0.3:
        add({"type": "pixel_unshuffle", "factor": 2})
    return {"input_size": size, "in_channels": channels, "nodes": nodes}


def add_skips(graph, analyze, rng):
    """Merge the last node, once or twice, with earlier nodes of the same size and jump (concat or add)."""
    rows = analyze(graph)["nodes"]
    last = rows[-1]
    key = (str(last["out_size"]), str(last.get("jump_fraction", last["jump"])))
    earlier = [row for row in rows[:-2] if (str(row["out_size"]), str(row.get("jump_fraction", row["jump"]))) == key]
    nodes, previous, channels = list(graph["nodes"]), last["name"], last["out_channels"]
    for _ in range(min(len(earlier), rng.randint(1, 2))):
        other = rng.choice(earlier)
        kind = "add" if other["out_channels"] == channels and rng.random() < 0.4 else "concat"
        name = f"skip{len(nodes)}"
        nodes.append({"name": name, "type": kind, "inputs": [previous, other["name"]]})
        channels = channels if kind == "add" else channels + other["out_channels"]
        previous = name
    return dict(graph, nodes=nodes)


# ---------------------------------------------------------------- torch models for the importer

class Block(nn.Sequential):
    def __init__(self, cin, cout, padding=1):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=padding), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=padding), nn.ReLU())


class TorchUNet(nn.Module):
    """A U-Net as users write it: ModuleLists, F.max_pool2d, an up step (ConvTranspose2d, nn.Upsample +
    1x1 conv, F.interpolate, or a conv + PixelShuffle), torch.cat; valid convs crop the skip by slicing
    (or by a negative F.pad)."""

    def __init__(self, c=4, levels=3, up="transpose", valid=False, crop="slice"):
        super().__init__()
        pad = 0 if valid else 1
        self.valid, self.up, self.crop = valid, up, crop
        self.enc = nn.ModuleList([Block(1 if i == 0 else c * 2 ** (i - 1), c * 2 ** i, pad) for i in range(levels)])
        self.ups, self.dec = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(levels - 1)):
            wide, narrow = c * 2 ** (i + 1), c * 2 ** i
            if up == "transpose":
                self.ups.append(nn.ConvTranspose2d(wide, narrow, 2, stride=2))
            elif up == "shuffle":
                self.ups.append(nn.Sequential(nn.Conv2d(wide, narrow * 4, 1), nn.PixelShuffle(2)))
            elif up == "functional":
                self.ups.append(nn.Conv2d(wide, narrow, 1))
            else:
                self.ups.append(nn.Sequential(nn.Upsample(scale_factor=2, mode=up), nn.Conv2d(wide, narrow, 1)))
            self.dec.append(Block(wide, narrow, pad))
        self.head = nn.Conv2d(c, 2, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.enc):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for up, dec, skip in zip(self.ups, self.dec, reversed(skips[:-1])):
            if self.up == "functional":
                x = up(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
            else:
                x = up(x)
            if self.valid:
                side = (skip.shape[-1] - x.shape[-1]) // 2
                if self.crop == "slice":
                    skip = skip[:, :, side:side + x.shape[-2], side:side + x.shape[-1]]
                else:
                    skip = F.pad(skip, (-side, -side, -side, -side))
            x = dec(torch.cat([skip, x], 1))
        return self.head(x)
