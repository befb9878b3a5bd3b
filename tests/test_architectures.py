"""The shipped architectures parse, carry their sources, and match the published figures.

`published` holds only figures that apply to exactly the file's layer list
(rf, jump, eff_padding, and where a source gives them params, macs). An
optional "axis": "h" or "w" says the figure holds for that axis only (e.g.
Inception v3, whose longest path differs per axis).
"""

import json

import pytest

import rfsweep
from rfsweep.architectures import arch_path, list_archs

ARCHS = list_archs()
COMPARED = ("rf", "jump", "eff_padding", "out_size", "params", "macs")
AXIS = {"h": 0, "w": 1}


def test_known_networks_are_shipped():
    assert {"alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v1", "inception_v3"} <= set(ARCHS)


@pytest.mark.parametrize("name", ARCHS)
def test_file_has_metadata_and_layers(name):
    data = json.loads(arch_path(name).read_text())
    assert data["name"] == name
    assert data["source"].strip() and data["notes"].strip()
    assert isinstance(data["layers"], list) and data["layers"]
    for layer in data["layers"]:  # written out in full, never left to defaults
        assert "stride" in layer and "padding" in layer, layer
    published = data["published"]
    assert published is None or published["reference"].strip()
    stack = rfsweep.load_stack(arch_path(name))
    assert len(stack.layers) == len(data["layers"])


def _published_cases():
    for name in ARCHS:
        published = json.loads(arch_path(name).read_text())["published"]
        for key in COMPARED:
            if published and key in published:
                yield pytest.param(name, key, published[key], published.get("axis"), id=f"{name}-{key}")


@pytest.mark.parametrize(("name", "key", "expected", "axis"), list(_published_cases()))
def test_matches_published(name, key, expected, axis):
    got = rfsweep.analyze(rfsweep.load_stack(arch_path(name)))["total"][key]
    if isinstance(got, list):
        got = [got[AXIS[axis]]] if axis else got
    else:
        got = [got]
    assert all(value == pytest.approx(expected) for value in got), (name, key, got, expected)


def test_vgg16_by_hand(tmp_path):
    """Independent of the shipped JSON: Distill 2019 gives VGG-16 rf 212, jump 32, P 90."""
    layers = []
    for repeats, channels in [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]:
        layers += [{"type": "conv", "kernel": 3, "stride": 1, "padding": 1, "out_channels": channels}] * repeats
        layers.append({"type": "maxpool", "kernel": 2, "stride": 2, "padding": 0})
    path = tmp_path / "vgg16.json"
    path.write_text(json.dumps(layers))
    total = rfsweep.analyze(rfsweep.load_stack(path))["total"]
    assert (total["rf"], total["jump"], total["eff_padding"]) == (212, 32, 90)
    assert total["out_size"] == 7 and total["params"] == 14_714_688  # VGG-16's conv layers
