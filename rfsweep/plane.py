"""A 1-D or 3-D network as the 2-D network of one plane, so that `draw` pictures it exactly.

Every field in rfsweep is per axis: a unit's footprint is the product of one
index set per axis, and each axis's set depends only on that axis's kernel,
stride, dilation, padding and size. So the 2-D network made of two of a
3-D network's axes draws exactly the slice of the footprint through the
traced unit in that plane, and a 1-D network drawn with a unit second axis
(kernel 1, stride 1, no padding) is its footprint as an L x 1 strip.
Channels and costs are not drawn, so they need not survive the projection.
"""

from __future__ import annotations

from dataclasses import replace

from .errors import RfsweepError
from .graph import Graph
from .layers import Stack

PLANES = {"height,width": (1, 2), "depth,height": (0, 1), "depth,width": (0, 2)}
# a unit axis: what a per-axis key is on the axis a 1-D network does not have
_NEUTRAL = {"kernel": 1, "stride": 1, "dilation": 1, "padding": 0, "output_padding": 0, "scale": 1}
_SIDED = ("padding", "crop")  # keys that may be [before, after] pairs per axis
_AXIS_KEYS = tuple(_NEUTRAL) + ("crop",)
_NO_PLANE = ("pixel_shuffle", "pixel_unshuffle")  # channels and space trade by factor^rank


def plane_axes(rank: int, plane: str | None) -> tuple[int, int] | None:
    """The two axes a rank-`rank` network is drawn on (None: the network is drawn as it is)."""
    if rank == 3:
        key = (plane or "height,width").replace(" ", "")
        if key not in PLANES:
            raise RfsweepError(f"plane must be one of {', '.join(PLANES)}, got {plane!r}")
        return PLANES[key]
    if plane is not None:
        raise RfsweepError(f"--plane picks two axes of a 3-D network; this one has rank {rank}")
    return (0, None) if rank == 1 else None


def _axis_value(key: str, value, axes, rank: int):
    if isinstance(value, (str, bool)) or value is None:
        return value  # "same", "valid", "same_tf": the same rule on every axis
    sided = key in _SIDED and isinstance(value, list) and value and all(isinstance(v, list) for v in value)
    neutral = [0, 0] if sided or key == "crop" else _NEUTRAL.get(key, 0)
    if isinstance(value, list):
        if len(value) != rank:
            return value  # the loader names the mismatch
        picked = [value[a] for a in axes if a is not None]
        return picked + [neutral] if rank == 1 else picked
    return [value, neutral] if rank == 1 else value


def _plane_node(node: dict, axes, rank: int) -> dict:
    if node.get("type") in _NO_PLANE:
        raise RfsweepError(f"node {node.get('name')!r}: a {node['type']} at rank {rank} trades space for "
                           f"channels by factor^{rank}; it has no 2-D picture (rfsweep explain reports it)")
    out = dict(node)
    for key in _AXIS_KEYS:
        if key in out:
            out[key] = _axis_value(key, out[key], axes, rank)
    if "layer" in out:
        out["layer"] = _plane_layer(out["layer"], axes, rank)
    return out


def _plane_layer(layer, axes, rank: int):
    def pick(values, neutral):
        return tuple(values[a] for a in axes if a is not None) + ((neutral,) if rank == 1 else ())
    return replace(layer, kernel=pick(layer.kernel, 1), stride=pick(layer.stride, 1),
                   padding=pick(layer.padding, 0), dilation=pick(layer.dilation, 1))


def plane_network(network, plane: str | None = None):
    """A loaded Graph or Stack of rank 1 or 3 as the Graph (the Stack, for a chain) of one plane.

    Returns (network, words, axis): words say what the picture shows, axis names the
    network's axis drawn as the picture's rows. Rank 2 comes back unchanged ("", "height").
    """
    rank = len(network.input_size)
    axes = plane_axes(rank, plane)
    if axes is None:
        return network, "", "height"
    size = tuple(network.input_size[a] for a in axes if a is not None) + ((1,) if rank == 1 else ())
    names = ("depth", "height", "width")
    if rank == 1:
        axis, words = "length", f"1-D network, drawn as a {size[0]} x 1 strip"
    else:
        axis = names[axes[0]]
        words = (f"3-D network: the {axis} x {names[axes[1]]} slice through the traced unit "
                 f"(input {'x'.join(map(str, network.input_size))})")
    if isinstance(network, Graph) and network.chain is not None:
        network = network.chain
    if isinstance(network, Stack):
        return replace(network, layers=tuple(_plane_layer(layer, axes, rank) for layer in network.layers),
                       input_size=size), words, axis
    return replace(network, nodes=tuple(_plane_node(node, axes, rank) for node in network.nodes),
                   input_size=size), words, axis
