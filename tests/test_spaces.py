"""The same checks for every kind of design space (the `space.Space` interface), as scikit-learn
runs its estimator checks on every estimator.

Each registered space brings a small example spec below (a new space fails
`test_every_registered_space_has_an_example` until it does). Every check
goes through the interface only: the registry finds the class, the stored
spec round-trips, rows come in config_id order with consistent counts,
every row equals `rfsweep.analyze` of the network the space rebuilds for its
id (the independent walker), and a directory of parts equals one file.
"""

from __future__ import annotations

import json
import tomllib

import pandas as pd
import pyarrow.parquet as pq
import pytest

import rfsweep
from rfsweep.distributed import run_local_parts, spec_of_output
from rfsweep.engines import write_range
from rfsweep.layers import Stack
from rfsweep import space
from rfsweep.errors import RfsweepError
from rfsweep.space import Space, load_spec, space_class, spaces, spec_from_dict
from rfsweep.sweep import network_of

EXAMPLES = {
    "chain": """
        depth = "1-2"
        types = ["conv", "maxpool"]
        kernel = [1, 3]
        stride = [1, 2]
        dilation = [1, 2]
        channels = [4, 8]
        input_size = 9
        in_channels = 2
        max_params = 500
    """,
    "blocks": """
        stem = "c3s2x8nb"
        input_size = 20
        max_macs = 400000
        [[stage]]
        block = ["basic", "dwsep", "bottleneck"]
        width = [8, 16]
        stride = [1, 2]
        expansion = [1, 2]
        [[stage]]
        block = ["conv", "mbconv"]
        kernel = [3, 5]
        width = [16]
        expansion = [1, 2]
        groups = [1, 2]
    """,
    "unet": """
        input_size = 60
        in_channels = 2
        tile = 16
        max_params = 20000
        [unet]
        levels = [1, 2]
        convs = [1, 2]
        kernel = [3, 5]
        padding = ["valid", "same"]
        upsampling = ["transposed", "bilinear"]
        base_width = [3, 4]
    """,
}
COMPARED = ("rf", "jump", "out_size", "out_channels", "params", "macs", "flops")


def example(kind: str) -> dict:
    return tomllib.loads("\n".join(line.strip() for line in EXAMPLES[kind].splitlines()))


def frame(path) -> pd.DataFrame:
    """Rows as plain values (dictionary columns as strings: categories depend on the file)."""
    df = pd.read_parquet(path)
    return df.assign(**{c: df[c].astype(str) for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)})


def test_every_registered_space_has_an_example():
    assert set(spaces()) == set(EXAMPLES)
    for kind, cls in spaces().items():
        assert cls.kind == kind and cls.unit in ("stacks", "networks")
    assert [cls.kind for cls in spaces().values() if cls.marker is None] == ["chain"]  # one default


def test_a_spec_with_two_kinds_of_marker_is_refused(monkeypatch):
    class Decoder:  # a stand-in for a second marked space
        kind, marker, unit = "decoder", "decoder", "networks"

    monkeypatch.setitem(space._REGISTRY, "decoder", Decoder)
    assert space_class({"decoder": [{}]}) is Decoder
    assert space_class({"depth": [1]}) is spaces()["chain"]
    with pytest.raises(RfsweepError, match="'stage' and 'decoder'|'decoder' and 'stage'"):
        space_class({"stage": [{}], "decoder": [{}]})


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_the_spec_finds_its_space_and_round_trips(kind, tmp_path):
    cls = spaces()[kind]
    path = tmp_path / "spec.toml"
    path.write_text("\n".join(line.strip() for line in EXAMPLES[kind].splitlines()))
    spec = load_spec(path)
    assert type(spec) is cls and space_class(example(kind)) is cls
    assert isinstance(spec, Space)
    stored = json.loads(json.dumps(spec.to_dict()))  # what the metadata holds
    again = spec_from_dict(stored)
    assert type(again) is cls and again.to_dict() == spec.to_dict() and again.total == spec.total
    assert sum(count for _key, _first, count in spec.depth_blocks()) == spec.total
    firsts = [first for _key, first, _count in spec.depth_blocks()]
    assert firsts[0] == 0 and firsts == sorted(firsts)
    line = spec.summary()
    assert line and "\n" not in line
    assert set(spec.estimate()) == {"stacks", "seconds", "bytes"}


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_rows_are_ordered_counted_and_equal_analyze_of_their_network(kind, tmp_path):
    spec = spaces()[kind].build(example(kind))
    out = tmp_path / "one.parquet"
    counts = write_range(spec, out, chunk_ids=7)
    meta = json.loads(pq.read_metadata(out).metadata[b"rfsweep"])
    df = frame(out)
    assert counts.enumerated == spec.total == counts.invalid + counts.pruned + counts.written
    assert counts.written == len(df) > 20 and counts.invalid + counts.pruned > 0
    assert df.config_id.is_monotonic_increasing and df.config_id.is_unique
    assert meta["spec"] == json.loads(json.dumps(spec.to_dict()))
    assert meta["conventions"] == spec.conventions and meta["counts"] == counts.as_dict()
    assert pq.read_schema(out).names == spec.schema().names
    assert type(spec_of_output(out)) is type(spec)
    for row in df.iloc[:: max(1, len(df) // 40)].to_dict("records"):
        config_id = int(row["config_id"])
        network = spec.network(config_id)
        assert isinstance(network, (Stack, dict))
        total = rfsweep.analyze(network)["total"]
        for key in COMPARED:
            if key in row and key in total:
                assert int(row[key]) == total[key], (config_id, key, row[key], total[key])
        assert spec.describe(config_id)
        rebuilt = network_of(out, config_id)
        assert rfsweep.analyze(rebuilt)["total"] == total


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_a_directory_of_parts_equals_one_file(kind, tmp_path):
    spec = spaces()[kind].build(example(kind))
    write_range(spec, tmp_path / "one.parquet", threads=1)
    totals = run_local_parts(spec, tmp_path / "parts", 3, workers=2, chunk_ids=5)
    pd.testing.assert_frame_equal(frame(tmp_path / "one.parquet"), frame(tmp_path / "parts"))
    assert type(spec_of_output(tmp_path / "parts")) is type(spec)
    assert totals.enumerated == spec.total


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_a_written_front_keeps_the_sweep_columns_and_shows_its_rows(kind, tmp_path, capsys):
    """pareto -> write_front: the front file gets the space's exact column types back (pandas turns
    nullable integers into floats), so `rfsweep show FRONT ID` rebuilds a front row."""
    from cli_helpers import run_cli
    from rfsweep.analysis import pareto_file, write_front

    spec = spaces()[kind].build(example(kind))
    out = tmp_path / "all.parquet"
    write_range(spec, out, chunk_ids=64)
    front = pareto_file(out)
    assert len(front) > 0
    path = write_front(front, tmp_path / "front.parquet")
    assert pq.read_schema(path).remove_metadata() == spec.schema().remove_metadata()
    config_id = int(front.config_id.iloc[0])
    code, shown, err = run_cli(capsys, "show", str(path), str(config_id), "--format", "json")
    assert code == 0, err
    assert json.loads(shown)["config_id"] == config_id
