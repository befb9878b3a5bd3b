"""A slow, obviously-correct reference for multi-path networks (contract section 6).

Nothing here imports rfsweep, and nothing uses the recurrences of
rfsweep/arithmetic.py (no "rf += (k-1)*jump", no interval unions of
(rf, start) pairs).  Each spatial axis is treated on its own:

* Output sizes: every window of a layer is laid out over the real, padded
  map and counted (``count_windows``); TF 'SAME' padding is resolved the way
  TensorFlow documents it: the output is ceil(n/s) and the total padding is
  what that output needs, the smaller half before.

* Receptive fields: the *support* of a unit -- the set of input-plane
  coordinates it depends on -- is built by walking back from that unit
  through every path.  The input plane is infinite: a padding position of
  any map is one more virtual unit with its honest coordinate, never clipped.
  A window reads units ``u*s - p_before + t*d`` (t < k) of its input; a merge
  (add, mul, concat) unions its inputs' supports at the same unit, except
  that a 1x1 input broadcast over a larger map contributes its unit 0 to
  every unit; global pooling and flatten read every unit of their input.
  Sets are Python ints used as bitsets (with a base coordinate).
  rf = max - min + 1 and start = (max + min) / 2 of unit 0; jump = start of
  unit 1 - start of unit 0, measured on the supports that move with the unit
  (a broadcast gate is the same for every unit, so it is left out of the
  jump's measurement only).

* rf_min: every path from the input to the node is enumerated and the
  support of unit 0 is built along that single path; rf_min is the smallest
  extent.

* Params / MACs: the weight, bias and output arrays' shapes are written
  down and their elements counted.

* ERF (uniform normalised weights, no nonlinearity): the probability
  distribution over input coordinates of unit 0 is propagated: a window is
  the mean of k shifted copies of its input's distribution (spacing
  d * the measured jump), add the mean of its inputs, concat the mean
  weighted by channels.
"""

from __future__ import annotations

import math

import numpy as np

LAYERS = ("conv", "maxpool", "avgpool")
MERGES = ("add", "mul", "concat")
HEADS = ("global_pool", "flatten", "linear")


class OracleInvalid(Exception):
    """The network is invalid at node `name` (reason in words)."""

    def __init__(self, name, reason):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def _pair(value):
    if isinstance(value, (list, tuple)):
        h, w = value
        return int(h), int(w)
    return int(value), int(value)


# ------------------------------------------------------------------- one axis

def count_windows(n, k, s, p_before, p_after, d, ceil_mode=False):
    """Windows of kernel k (dilation d) every s positions that fit in the padded map of length n."""
    k_eff = d * (k - 1) + 1
    length = n + p_before + p_after + (s - 1 if ceil_mode else 0)
    count = 0
    for first in range(0, length, s):  # padded-map index of the window's first tap
        if first + k_eff > length:
            break
        if ceil_mode and first >= n + p_before:  # PyTorch: a window must start inside input + left pad
            break
        count += 1
    return count


def tf_same_sides(n, k, s, d):
    """TensorFlow 'SAME': output ceil(n/s); the padding that output needs, smaller half first."""
    out = -(-n // s)
    needed = (out - 1) * s + d * (k - 1) + 1  # input span the last window reaches
    total = max(needed - n, 0)
    return total // 2, total - total // 2


def _sides(padding, axis):
    """(before, after) of explicit padding: int, [h, w] or [[top, bottom], [left, right]]."""
    if isinstance(padding, (list, tuple)):
        item = padding[axis]
        if isinstance(item, (list, tuple)):
            return int(item[0]), int(item[1])
        return int(item), int(item)
    return int(padding), int(padding)


# ---------------------------------------------------------------- supports

def _union(a, b):
    if a is None:
        return b
    if b is None:
        return a
    base = min(a[0], b[0])
    return base, (a[1] << (a[0] - base)) | (b[1] << (b[0] - base))


def _extent(support):
    base, mask = support
    return base + (mask & -mask).bit_length() - 1, base + mask.bit_length() - 1


# ------------------------------------------------------------------ the graph

def normalise(graph, input_size=None, in_channels=None):
    """(nodes with explicit inputs, (h, w), c_in, output name) of a graph dict."""
    size = _pair(graph.get("input_size", 224) if input_size is None else input_size)
    c_in = int(graph.get("in_channels", 3) if in_channels is None else in_channels)
    nodes, previous = [], "input"
    for raw in graph["nodes"]:
        node = dict(raw)
        inputs = node.get("inputs", [previous])
        node["inputs"] = [inputs] if isinstance(inputs, str) else list(inputs)
        nodes.append(node)
        previous = node["name"]
    return nodes, size, c_in, graph.get("output", previous)


class Oracle:
    """Everything about every node of one graph, measured the slow way."""

    def __init__(self, graph, input_size=None, in_channels=None):
        self.nodes, self.input_size, self.in_channels, self.output = normalise(graph, input_size, in_channels)
        self.by_name = {node["name"]: node for node in self.nodes}
        self.size = {"input": self.input_size}
        self.channels = {"input": self.in_channels}
        self.window = {}  # name -> per axis (k, s, p_before, d) for window nodes
        self.params, self.macs = {}, {}
        for node in self.nodes:
            self._forward(node)
        self._memo = [{}, {}]
        self._local = [{}, {}]
        self._erf = [{}, {}]

    # ---- sizes, channels, costs (forward, counting)
    def _forward(self, node):
        name, kind, inputs = node["name"], node["type"], node["inputs"]
        sizes = [self.size[i] for i in inputs]
        chans = [self.channels[i] for i in inputs]
        params = macs = 0
        if kind in LAYERS:
            (n_h, n_w), c = sizes[0], chans[0]
            kernel = _pair(node["kernel"])
            dil = _pair(node.get("dilation", 1))
            stride = _pair(node.get("stride", 1 if kind == "conv" else node["kernel"]))
            ceil_mode = bool(node.get("ceil_mode", False))
            out, win = [], []
            for a, n in enumerate((n_h, n_w)):
                k, s, d = kernel[a], stride[a], dil[a]
                padding = node.get("padding")
                if padding == "same_tf":
                    pb, pa = tf_same_sides(n, k, s, d)
                    assert count_windows(n, k, s, pb, pa, d) == -(-n // s)
                elif padding is None:
                    pb = pa = d * (k - 1) // 2 if kind == "conv" else 0
                else:
                    pb, pa = _sides(padding, a)
                m = count_windows(n, k, s, pb, pa, d, ceil_mode)
                if m < 1:
                    raise OracleInvalid(name, "empty output")
                out.append(m)
                win.append((k, s, pb, d))
            self.window[name] = tuple(win)
            c_out = c
            if kind == "conv":
                c_out = int(node.get("out_channels", c))
                groups = int(node.get("groups", 1))
                weight = (c_out, c // groups, kernel[0], kernel[1])
                bias = (c_out,) if node.get("bias", True) else (0,)
                output = (c_out, out[0], out[1])
                params = math.prod(weight) + math.prod(bias)
                macs = math.prod(output) * math.prod(weight[1:])  # one MAC per weight per output element
            size = tuple(out)
        elif kind == "pad":
            win = []
            for a in range(2):
                pb, pa = _sides(node["padding"], a)
                win.append((1, 1, pb, 1))
            self.window[name] = tuple(win)
            size = tuple(sizes[0][a] + sum(_sides(node["padding"], a)) for a in range(2))
            c_out = chans[0]
        elif kind in MERGES:
            maps = {s for s in sizes if s != (1, 1)} if kind != "concat" else set(sizes)
            if len(maps) > 1:
                raise OracleInvalid(name, "different sizes")
            size = maps.pop() if maps else (1, 1)
            if kind == "concat":
                c_out = sum(chans)
            elif kind == "add":
                if len(set(chans)) > 1:
                    raise OracleInvalid(name, "different channels")
                c_out = chans[0]
            else:
                if len(set(chans) - {1}) > 1:
                    raise OracleInvalid(name, "different channels")
                c_out = max(chans)
        elif kind in ("global_pool", "flatten"):
            n_h, n_w = sizes[0]
            if kind == "flatten" and (n_h, n_w) == (1, 1):
                self.window[name] = ((1, 1, 0, 1), (1, 1, 0, 1))
            else:
                self.window[name] = ((n_h, n_h, 0, 1), (n_w, n_w, 0, 1))
            size = (1, 1)
            c_out = chans[0] * (n_h * n_w if kind == "flatten" else 1)
        elif kind == "linear":
            if sizes[0] != (1, 1):
                raise OracleInvalid(name, "linear on a spatial map")
            c_out = int(node["out_features"])
            weight = (c_out, chans[0])
            params = math.prod(weight) + (c_out if node.get("bias", True) else 0)
            macs = math.prod(weight)
            size = (1, 1)
        elif kind == "slice":
            lo, hi = node["channels"]
            c_out = len(range(chans[0])[lo:hi])
            size = sizes[0]
        elif kind == "bn":
            size, c_out = sizes[0], chans[0]
            params = 2 * c_out  # weight and bias per channel
        else:  # identity, relu
            size, c_out = sizes[0], chans[0]
        self.size[name] = size
        self.channels[name] = c_out
        self.params[name] = params
        self.macs[name] = macs

    def check_alignment(self):
        """Raise OracleInvalid at the first merge whose map inputs step differently on an axis."""
        for node in self.nodes:
            if node["type"] not in MERGES:
                continue
            name = node["name"]
            for a in range(2):
                if self.size[name][a] < 2:
                    continue
                jumps = {self._spacing(source, a) for source in node["inputs"]
                         if not self._is_broadcast(name, source) and self.size[source][a] > 1}
                if len(jumps) > 1:
                    raise OracleInvalid(name, "misaligned")

    def _is_broadcast(self, merge, source):
        return self.size[source] == (1, 1) and self.size[merge] != (1, 1)

    # ---- supports (backward, unit by unit)
    def support(self, name, unit, axis, local=False):
        """Input coordinates that unit `unit` of node `name` depends on, as (base, bitmask)."""
        memo = (self._local if local else self._memo)[axis]
        key = (name, unit)
        if key in memo:
            return memo[key]
        if name == "input":
            result = (unit, 1)
        else:
            node = self.by_name[name]
            kind = node["type"]
            result = None
            if name in self.window:
                k, s, pb, d = self.window[name][axis]
                for t in range(k):
                    result = _union(result, self.support(node["inputs"][0], unit * s - pb + t * d, axis, local))
            elif kind in MERGES:
                for source in node["inputs"]:
                    if self._is_broadcast(name, source):
                        if not local:
                            result = _union(result, self.support(source, 0, axis, local))
                    else:
                        result = _union(result, self.support(source, unit, axis, local))
                if result is None:  # only broadcast inputs (cannot happen: one input is the map)
                    result = self.support(node["inputs"][0], 0, axis, local)
            else:  # identity, relu, bn, slice, linear: the same unit
                result = self.support(node["inputs"][0], unit, axis, local)
        memo[key] = result
        return result

    def paths(self, name):
        """Every path from the input to `name`, as tuples of node names ending at `name`."""
        if name == "input":
            return [("input",)]
        out = []
        for source in dict.fromkeys(self.by_name[name]["inputs"]):
            out.extend(path + (name,) for path in self.paths(source))
        return out

    def path_support(self, path, index, unit, axis, memo):
        """Support of `unit` of path[index], following only that path back to the input."""
        key = (index, unit)
        if key in memo:
            return memo[key]
        name = path[index]
        if name == "input":
            result = (unit, 1)
        else:
            source = path[index - 1]
            kind = self.by_name[name]["type"]
            if name in self.window:
                k, s, pb, d = self.window[name][axis]
                result = None
                for t in range(k):
                    result = _union(result, self.path_support(path, index - 1, unit * s - pb + t * d, axis, memo))
            elif kind in MERGES and self._is_broadcast(name, source):
                result = self.path_support(path, index - 1, 0, axis, memo)
            else:
                result = self.path_support(path, index - 1, unit, axis, memo)
        memo[key] = result
        return result

    # ---- what a node's report should say
    def rf_start(self, name, axis):
        lo, hi = _extent(self.support(name, 0, axis))
        return hi - lo + 1, (hi + lo) / 2

    def jump(self, name, axis):
        lo0, hi0 = _extent(self.support(name, 0, axis, local=True))
        lo1, hi1 = _extent(self.support(name, 1, axis, local=True))
        jump = (hi1 + lo1) / 2 - (hi0 + lo0) / 2
        assert hi1 - lo1 == hi0 - lo0 and jump == int(jump), "units are not shifted copies"
        return int(jump)

    def rf_min(self, name, axis):
        best = None
        for path in self.paths(name):
            lo, hi = _extent(self.path_support(path, len(path) - 1, 0, axis, {}))
            best = hi - lo + 1 if best is None else min(best, hi - lo + 1)
        return best

    def erf(self, name, axis):
        """(first coordinate, probabilities) of unit 0's uniform-weight ERF; no mul nodes."""
        memo = self._erf[axis]
        if name in memo:
            return memo[name]
        if name == "input":
            result = (0, np.array([1.0]))
        else:
            node = self.by_name[name]
            kind = node["type"]
            if name in self.window:
                source = node["inputs"][0]
                k, s, pb, d = self.window[name][axis]
                step = self._spacing(source, axis)
                first, dist = self.erf(source, axis)
                copies = [(first + (t * d - pb) * step, dist / k) for t in range(k)]
                result = _add_dists(copies)
            elif kind in ("add", "concat"):
                weights = [self.channels[s] if kind == "concat" else 1 for s in node["inputs"]]
                total = sum(weights)
                copies = []
                for source, weight in zip(node["inputs"], weights):
                    first, dist = self.erf(source, axis)
                    copies.append((first, dist * weight / total))
                result = _add_dists(copies)
            elif kind == "mul":
                raise ValueError("the ERF oracle does not model mul")
            else:
                result = self.erf(node["inputs"][0], axis)
        memo[name] = result
        return result

    def _spacing(self, name, axis):
        """Input pixels between neighbouring units of `name` (its jump), measured on supports."""
        return 1 if name == "input" else self.jump(name, axis)

    def erf_std(self, name, axis):
        first, dist = self.erf(name, axis)
        x = first + np.arange(len(dist), dtype=np.float64)
        mean = float((x * dist).sum())
        return math.sqrt(float(((x - mean) ** 2 * dist).sum()))

    # ---- convenience
    def spatial(self, name):
        """Some path from the input reaches `name` without passing a head (global_pool/flatten/linear)."""
        if name == "input":
            return True
        node = self.by_name[name]
        if node["type"] in HEADS:
            return False
        return any(self.spatial(source) for source in node["inputs"])

    def ancestors(self, name):
        seen, todo = {name}, [name]
        while todo:
            for source in self.by_name[todo.pop()]["inputs"]:
                if source != "input" and source not in seen:
                    seen.add(source)
                    todo.append(source)
        return seen

    def report(self, name):
        """Per-axis (h, w) figures of one node."""
        rf, start = zip(*(self.rf_start(name, a) for a in range(2)))
        return {"out_size": self.size[name], "out_channels": self.channels[name], "rf": rf, "start": start,
                "rf_min": tuple(self.rf_min(name, a) for a in range(2)),
                "jump": tuple(self.jump(name, a) for a in range(2)),
                "params": self.params[name], "macs": self.macs[name], "flops": 2 * self.macs[name]}


def _add_dists(parts):
    first = min(f for f, _ in parts)
    last = max(f + len(d) for f, d in parts)
    out = np.zeros(last - first)
    for f, d in parts:
        out[f - first:f - first + len(d)] += d
    return first, out
