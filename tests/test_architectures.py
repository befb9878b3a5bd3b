"""The shipped architectures: well-formed graphs with sources, generated, matching their published figures.

`published` holds figures from the literature for exactly the file's network: for the TF-Slim
networks the last end-point's row of Google's receptive-field table (rf, jump, eff_padding at
its `input_size`; every row is tested in test_catalog_table.py), for the torchvision ones
torchvision's parameter total.
"""

import importlib.util
import json
from pathlib import Path

import pytest

import rfsweep
from rfsweep.architectures import ALIASES, arch_info, arch_path, list_archs
from rfsweep.errors import RfsweepError
from rfsweep.graph import load_graph

ARCHS = list_archs()
TOOL = Path(__file__).resolve().parent.parent / "tools" / "make_catalog.py"
LAYER_TYPES = ("conv", "maxpool", "avgpool")
# decoders (issue 18): name -> (in_channels, input_size) of the paper's or library's setting
DECODERS = {"unet": (1, 572), "unet_same": (1, 512), "fcn8s": (3, 500), "deeplabv3_resnet50": (3, 512),
            "fpn_resnet50": (3, 800)}
# rank 1 and 3 (issue 19): name -> (rank, in_channels, input_size)
RANKED = {"tcn": (1, 1, 784), "wavenet": (1, 256, 16000), "unet3d": (3, 3, [132, 132, 116]),
          "r3d_18": (3, 3, [16, 112, 112])}


def test_known_networks_are_shipped():
    table = {"alexnet_v2", "vgg_a", "vgg_16", "inception_v2", "inception_v2-no-separable-conv", "inception_v3",
             "inception_v4", "inception_resnet_v2", "inception_resnet_v2-same", "mobilenet_v1", "mobilenet_v1_075"}
    table |= {f"resnet_v{v}_{d}" for v in (1, 2) for d in (50, 101, 152, 200)}
    assert table | {"resnet18", "resnet50", "mobilenet_v2"} | set(DECODERS) | set(RANKED) == set(ARCHS)


@pytest.mark.parametrize("name", ARCHS)
def test_file_is_a_graph_with_metadata(name):
    data = json.loads(arch_path(name).read_text())
    assert data["name"] == name and data["title"].strip()
    assert data["source"].strip() and data["notes"].strip()
    if name in DECODERS:
        assert (data["in_channels"], data["input_size"]) == DECODERS[name]
    elif name in RANKED:
        assert (data["rank"], data["in_channels"], data["input_size"]) == RANKED[name]
    else:
        assert data["in_channels"] == 3 and data["input_size"] in (224, 299)
    names = [node["name"] for node in data["nodes"]]
    assert len(names) == len(set(names)) and "input" not in names
    assert data["output"] in names
    for node in data["nodes"]:
        assert node["inputs"], node  # written out, never left to "the previous node"
        if node["type"] in LAYER_TYPES:  # written out in full, never left to defaults
            assert "stride" in node and "padding" in node, node
    graph = load_graph(arch_path(name))
    assert len(graph.nodes) == len(data["nodes"])


def test_catalog_is_generated():
    """The files are exactly what tools/make_catalog.py writes (edit the generator, not the JSON)."""
    spec = importlib.util.spec_from_file_location("make_catalog", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.build_all()
    assert sorted(built) == ARCHS
    for name, data in built.items():
        assert arch_path(name).read_text() == module.render(data), name


def _published_cases():
    for name in ARCHS:
        published = arch_info(name)["published"]
        for key in ("rf", "jump", "eff_padding", "params", "out_size"):
            if key in published:
                yield pytest.param(name, key, published[key], id=f"{name}-{key}")


@pytest.mark.parametrize(("name", "key", "expected"), list(_published_cases()))
def test_matches_published(name, key, expected):
    published = arch_info(name)["published"]
    assert published["reference"].strip()
    result = rfsweep.analyze(arch_path(name), input_size=published.get("input_size"),
                             end_point=published.get("end_point"))
    got = result["total"][key]
    if isinstance(expected, list):  # per axis, as published (rank 3: three axes)
        assert got == expected, (name, key, got)
        return
    assert (got if isinstance(got, list) else [got, got]) == [expected, expected], (name, key, got)


def test_aliases():
    assert arch_path("vgg16") == arch_path("vgg_16") and arch_path("VGG16") == arch_path("vgg_16")
    assert arch_path("alexnet") == arch_path("alexnet_v2")
    assert arch_path("inception_resnet_v2_same") == arch_path("inception_resnet_v2-same")
    assert set(ALIASES.values()) <= set(ARCHS) and not set(ALIASES) & set(ARCHS)
    with pytest.raises(RfsweepError, match="unknown architecture 'nope'.*resnet_v1_50"):
        arch_path("nope")
    with pytest.raises(RfsweepError, match="unknown architecture"):
        arch_path("../architectures/resnet50")


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
    shipped = rfsweep.analyze(arch_path("vgg_16"))["total"]  # same convs as a graph
    assert (shipped["rf"], shipped["jump"], shipped["eff_padding"], shipped["params"]) == (212, 32, 90, 14_714_688)
