"""Which learned parameters the forward uses, and which node uses each first (contract section 7:
`params` is sum(p.numel()) over every parameter the forward uses, whatever op consumes it).

A parameter reaches a node either whole (a leaf module's weight) or through arithmetic on
constants (a conv weight scaled by a learned gain, a layer-scale vector, a positional embedding):
every tensor computed from parameters alone carries the names it came from. A node is charged
the parameters its call consumes for the first time; `extras` compares that with what the
node's own formula counts (graph.py), and the difference becomes the node's `params` field.

The same bookkeeping follows *work* done on constants (ConstantWork): a conv on a Fourier
positional grid built from x.shape (EdgeNeXt) costs MACs that no graph node's formula counts;
each such op is an item whose count is its MACs per image, carried by the tensors computed from
it and added to the `macs` of the first node that uses them.
"""

from __future__ import annotations

import torch


class ParamUse:
    def __init__(self, module=None):
        self.numel: dict[str, int] = {}
        self.canonical: dict[str, str] = {}  # every (tied) name -> the first name of that tensor
        first: dict[int, str] = {}
        for name, p in module.named_parameters(remove_duplicate=False) if module is not None else ():
            self.canonical[name] = first.setdefault(id(p), name)
            self.numel[first[id(p)]] = p.numel()
        self.origin: dict[int, tuple] = {}  # id(tensor) -> (tensor kept alive, frozenset of names)
        self.charged: set[str] = set()
        self.consumed: dict[str, int] = {}  # node -> numel of the parameters it used first

    def add(self, name: str, count: int) -> str:
        """A new item of `count` units (work done on constants: ConstantWork), under a unique name."""
        name = f"{name}#{len(self.numel)}"
        self.canonical[name] = name
        self.numel[name] = int(count)
        return name

    def mark(self, tensor, names) -> None:
        """`tensor` is computed from the parameters `names` only."""
        names = frozenset(self.canonical.get(n, n) for n in names if self.canonical.get(n, n) in self.numel)
        if names and isinstance(tensor, torch.Tensor):
            self.origin[id(tensor)] = (tensor, names | self.origin.get(id(tensor), (None, frozenset()))[1])

    def sources(self, obj) -> frozenset:
        """The parameter names behind every constant tensor in obj (nested lists, tuples, dicts)."""
        if isinstance(obj, torch.Tensor):
            entry = self.origin.get(id(obj))
            return entry[1] if entry is not None and entry[0] is obj else frozenset()
        if isinstance(obj, (list, tuple)):
            return frozenset().union(*(self.sources(o) for o in obj)) if obj else frozenset()
        if isinstance(obj, dict):
            return self.sources(list(obj.values()))
        return frozenset()

    def propagate(self, inputs, out) -> None:
        """An op on constants: its outputs come from its inputs' parameters."""
        names = self.sources(inputs)
        if names:
            for t in out if isinstance(out, (list, tuple)) else (out,):
                self.mark(t, names)

    def fresh(self, names) -> frozenset:
        """The names not charged to any node yet."""
        return frozenset(self.canonical.get(n, n) for n in names) - self.charged

    def charge(self, node: str, names) -> None:
        names = self.fresh(names)
        self.charged |= names
        if names:
            self.consumed[node] = self.consumed.get(node, 0) + sum(self.numel[n] for n in names)

    def charge_to(self, node: dict, names) -> None:
        """Charge the fresh `names` to `node` and add their count to its `macs` (ConstantWork only)."""
        fresh = self.fresh(names)
        self.charge(node["name"], fresh)
        if fresh:
            node["macs"] = node.get("macs", 0) + sum(self.numel[n] for n in fresh)

    def extras(self, formula: dict[str, int]) -> dict[str, int]:
        """node -> parameters it uses beyond its formula's count (formula: node -> params)."""
        return {node: used - formula.get(node, 0) for node, used in self.consumed.items()
                if used > formula.get(node, 0)}
