"""A check both tile test files share: the plan's halo is not larger than needed."""

from __future__ import annotations

import copy
import json

from rfsweep import tile_plan


def check_halo_is_needed(graph, plan, tile, stitch):
    """Each halo side reduced by one multiple: some output differs from the whole image's.

    stitch(plan) -> (whole, tiled): the network run whole and tile by tile (tiled None when a
    tile's output is too small for what it must keep, which is a difference too).
    """
    for axis in range(len(plan["halo"])):
        for side in range(2):
            halo = copy.deepcopy(plan["halo"])
            if halo[axis][side] < plan["multiple"][axis]:
                continue
            halo[axis][side] -= plan["multiple"][axis]
            smaller = tile_plan(graph, tile=tile, halo=halo)
            if all(t["read"] == u["read"] for t, u in zip(smaller["tiles"], plan["tiles"])):
                continue  # the side never mattered: every tile is clipped by the image there
            whole, tiled = stitch(smaller)
            assert tiled is None or (whole - tiled).abs().max().item() > 1e-9, (axis, side, halo, json.dumps(graph))
