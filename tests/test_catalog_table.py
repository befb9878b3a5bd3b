"""Every row of Google's published receptive-field table, reproduced from the shipped graphs.

The table (tests/data/receptive_field_table.json: receptive_field/RECEPTIVE_FIELD_TABLE.md of
google-research/receptive_field, Araujo, Norris & Sim, Distill 2019) gives, per TF-Slim network,
end-point and input resolution (None, 224, 321): RF, effective stride and effective padding.

- 224 / 321 rows: `rfsweep.analyze(arch, input_size=R, end_point=NAME)` must give the row's rf,
  jump and eff_padding exactly, on both axes; so must tests/catalog_reference.py, an independent
  interval walk written differently (absolute [lo, hi] of the first unit, TF's own SAME rule).
- None rows (input size unknown to Google's tool): RF and stride do not depend on the input size,
  so they must hold at every size we try. Where the row gives a padding, it must hold at every
  size too. Where it says None, the padding depends on the input size — TensorFlow 'SAME' padding
  on a stride-2 layer pads total max(k - (n mod s or s), 0), which changes with the parity of the
  incoming map (e.g. mobilenet_v1's Conv2d_0 pads 0 before at 224 and 1 at 321) — so we assert
  that it really does differ between sizes; Google's tool could then also not check alignment.
- FLOPs: the table counts with tf.profiler (a multiply-add is 2 FLOPs, plus bias adds and
  pooling), we count 2*MACs of convs only, so ours is at most the table's (up to its 3-decimal
  rounding) and within 5% of it: a check on the channel counts, which the RF cannot see.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rfsweep
from rfsweep.architectures import arch_path, list_archs
from rfsweep.graph import ancestors, load_graph

from catalog_reference import load, reference

TABLE = json.loads((Path(__file__).parent / "data" / "receptive_field_table.json").read_text())
ROWS = [dict(zip(TABLE["columns"], row)) for row in TABLE["rows"]]
SIZES = (224, 225, 256, 299, 320, 321, 512)  # for the size-independent (None) rows


def _end_point(row) -> str:
    """The table's end-point without the network prefix (resnet_v1_50/block4 -> block4)."""
    prefix = row["cnn"] + "/"
    return row["end_point"][len(prefix):] if row["end_point"].startswith(prefix) else row["end_point"]


def _id(row) -> str:
    return f"{row['cnn']}-{row['resolution']}-{_end_point(row)}"


def _both_axes(value):
    return value if isinstance(value, list) else [value, value]


def _analyze(row, size):
    return rfsweep.analyze(arch_path(row["cnn"]), input_size=size, end_point=_end_point(row))


SIZED = [pytest.param(row, id=_id(row)) for row in ROWS if row["resolution"] != "None"]
UNSIZED = [pytest.param(row, id=_id(row)) for row in ROWS if row["resolution"] == "None"]


def test_table_copy_is_complete():
    """Every network and resolution of the table is here (187 end-points x 3 resolutions)."""
    assert len(ROWS) == 561
    assert {row["resolution"] for row in ROWS} == {"None", "224", "321"}
    assert {row["cnn"] for row in ROWS} <= set(list_archs())
    assert "f12ae8e75a6e8178c6235ddc765bc90a3196ebc6" in TABLE["source"] and "Apache" in TABLE["license"]


@pytest.mark.parametrize("row", SIZED)
def test_sized_row(row):
    size = int(row["resolution"])
    expected = {"rf": int(row["rf"]), "jump": int(row["effective_stride"]),
                "eff_padding": int(row["effective_padding"])}
    total = _analyze(row, size)["total"]
    assert {key: _both_axes(total[key]) for key in expected} == {k: [v, v] for k, v in expected.items()}
    oracle = reference(load(arch_path(row["cnn"])), size, _end_point(row))
    assert {key: oracle[key] for key in expected} == {k: [v, v] for k, v in expected.items()}


@pytest.mark.parametrize("row", UNSIZED)
def test_unsized_row(row):
    paddings = set()
    for size in SIZES:
        total = _analyze(row, size)["total"]
        assert _both_axes(total["rf"]) == [int(row["rf"])] * 2, size
        assert _both_axes(total["jump"]) == [int(row["effective_stride"])] * 2, size
        paddings.add(tuple(_both_axes(total["eff_padding"])))
    if row["effective_padding"] == "None":  # TF 'SAME' on a stride-2 layer: depends on the input size
        assert len(paddings) > 1, paddings
    else:
        assert paddings == {(int(row["effective_padding"]),) * 2}


@pytest.mark.parametrize("row", SIZED)
def test_flops_within_the_profilers_count(row):
    size = int(row["resolution"])
    result = _analyze(row, size)
    graph = load_graph(arch_path(row["cnn"]), input_size=size)
    upstream = ancestors(graph, _end_point(row)) | {_end_point(row)}
    ours = sum(node["flops"] for node in result["nodes"] if node["name"] in upstream) / 1e9
    table = float(row["flops_billion"])
    assert ours <= table + 0.0005 and ours >= table / 1.05, (ours, table)


@pytest.mark.parametrize("name", sorted({row["cnn"] for row in ROWS}))
def test_end_points_are_named_nodes(name):
    """Each table end-point is a node; the table's last end-point is the default output."""
    data = json.loads(arch_path(name).read_text())
    names = [node["name"] for node in data["nodes"]]
    end_points = [_end_point(row) for row in ROWS if row["cnn"] == name and row["resolution"] == "224"]
    assert set(end_points) <= set(names)
    assert data["output"] == end_points[-1]
    assert rfsweep.analyze(arch_path(name))["output"] == end_points[-1]


def test_readme_headline():
    """`rfsweep explain --arch resnet_v1_50 --end-point block4`: rf 483, stride 32, padding 239."""
    total = rfsweep.analyze(arch_path("resnet_v1_50"), end_point="block4")["total"]
    assert (total["rf"], total["jump"], total["eff_padding"]) == (483, 32, 239)
    assert total["out_size"] == 7 and total["out_channels"] == 2048


# torchvision's published totals (https://pytorch.org/vision/stable/models.html, IMAGENET1K_V1):
# num_params exactly, and "GFLOPS" (which torchvision counts as multiply-adds) to its 2 decimals.
TORCHVISION = {"resnet18": (11_689_512, 1.81), "resnet50": (25_557_032, 4.09), "mobilenet_v2": (3_504_872, 0.30)}


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_totals(name):
    params, gmacs = TORCHVISION[name]
    result = rfsweep.analyze(arch_path(name), input_size=224)
    assert result["total"]["params"] == params
    assert round(result["total"]["macs"] / 1e9, 2) == gmacs
    assert result["total"]["out_size"] == 7  # the end-point is the last 7x7 feature map
    assert result["nodes"][-1]["type"] == "linear" and result["nodes"][-1]["out_channels"] == 1000


def test_torchvision_resnet_by_hand():
    """ResNet v1.5 (stride on the 3x3 of the FIRST unit) by hand, independent of the JSON.

    One axis: conv1 7/2 p3 (rf 7, jump 2), maxpool 3/2 p1 (11, 4); every 3x3 adds 2*jump;
    layer1 (3 units, jump 4): 11 + 3*8 = 35; layer2 unit 1 stride-2 3x3 at jump 4: 43, then
    jump 8, 3 units: 91; layer3: 91 + 16 = 107, jump 16, 5 units: 267; layer4: 267 + 32 = 299,
    jump 32, 2 units: 427. Every layer has an odd kernel and pads (k-1)/2 on both sides, so the
    first unit's RF stays centred on input pixel 0: eff_padding = (rf-1)/2 = 213.
    """
    total = rfsweep.analyze(arch_path("resnet50"), end_point="layer4")["total"]
    assert (total["rf"], total["jump"], total["eff_padding"]) == (427, 32, 213)
    assert rfsweep.analyze(arch_path("resnet50"), end_point="layer1")["total"]["rf"] == 35


@pytest.mark.parametrize(("name", "torchvision_params"), [
    ("resnet_v1_50", 25_557_032), ("resnet_v1_101", 44_549_160), ("resnet_v1_152", 60_192_808)])
def test_slim_resnet_v1_params_equal_torchvision_without_fc(name, torchvision_params):
    """TF-Slim's v1 units have the same convs and BNs as torchvision's (only the stride moves),
    so their params are torchvision's published totals minus the 2048 x 1000 (+ bias) fc."""
    assert rfsweep.analyze(arch_path(name))["total"]["params"] == torchvision_params - (2048 * 1000 + 1000)
