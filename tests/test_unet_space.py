"""The U-Net design space: every column of the closed-form kernel against independent oracles.

- every id of small spaces (all upsampling kinds, valid and same, several levels and sizes) against
  `rfsweep.analyze` (rf, out size, params, MACs), `tile_plan` (halo, multiple) and `tile.peak_bytes`
  of the graph `UNetSpec.network` builds; an id without a row is one those refuse;
- random small spaces (hypothesis), the same way;
- the catalog U-Nets (written by hand from the paper) as rows of the space;
- a plain torch U-Net written here: numel, flop_counter / 2, output size and gradient support;
- limits prune exactly the rows outside them; partitions and Dask give the same rows as one file;
  the CLI (sweep, show, pareto) and bad input (exit 2 naming the key).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rfsweep
from cli_helpers import run_cli
from rfsweep.distributed import run_local_parts
from rfsweep.engines import write_range
from rfsweep.errors import RfsweepError
from rfsweep.graph import load_graph
from rfsweep.space import load_spec
from rfsweep.tile import peak_bytes
from rfsweep.unet_fields import AXES
from rfsweep.unet_space import UNetSpec

ARCHITECTURES = Path(rfsweep.__file__).parent / "architectures"
ALL_KINDS = {"padding": ["valid", "same"], "upsampling": ["transposed", "nearest", "bilinear"]}


def space(input_size, tile, **values) -> UNetSpec:
    """A space with every padding and upsampling kind; axis keys go to [unet], the rest to the top."""
    axes = {key: value for key, value in values.items() if key in AXES}
    top = {key: value for key, value in values.items() if key not in AXES}
    return UNetSpec.build({"unet": {**ALL_KINDS, **axes}, "input_size": input_size, "tile": tile,
                           "in_channels": 2, "out_channels": 3, **top})


def rows_of(spec, tmp_path, **kwargs) -> dict:
    out = tmp_path / f"u{random.random()}.parquet"
    counts = write_range(spec, out, **kwargs)
    df = pd.read_parquet(out)
    assert df.config_id.is_monotonic_increasing and df.config_id.is_unique
    assert counts.enumerated == spec.total == counts.invalid + counts.pruned + counts.written == \
        counts.invalid + counts.pruned + len(df)
    return {int(row["config_id"]): row for row in df.to_dict("records")}


STRUCTURE = ("levels", "convs", "kernel", "padding", "upsampling")


def expected_row(spec, config_id, plans=None):
    """The oracle's columns for one id, or None when the graph path refuses it (an invalid id).

    `plans` caches tile_plan per structure: the plan reads fields and sizes, never channels.
    """
    choices = spec.choices(config_id)
    key = tuple(choices[axis] for axis in STRUCTURE)
    try:
        graph = spec.network(config_id)
        total = rfsweep.analyze(graph)["total"]
        plan = plans[key] if plans is not None and key in plans else rfsweep.tile_plan(graph, tile=spec.tile)
    except RfsweepError:
        return None
    if plans is not None:
        plans[key] = plan
    read = max(t["read"][0][1] - t["read"][0][0] for t in plan["tiles"])
    assert read == max(t["read"][1][1] - t["read"][1][0] for t in plan["tiles"])
    assert plan["halo"][0] == plan["halo"][1] and plan["multiple"][0] == plan["multiple"][1]
    return {"rf": total["rf"], "out_size": total["out_size"], "params": total["params"], "macs": total["macs"],
            "halo_before": plan["halo"][0][0], "halo_after": plan["halo"][0][1], "multiple": plan["multiple"][0],
            "peak_bytes": peak_bytes(load_graph(graph), graph["output"], (read, read), 4),
            **spec.choices(config_id)}


def check_every_id(spec, rows, ids=None):
    plans = {}
    for config_id in ids if ids is not None else range(spec.total):
        expected = expected_row(spec, config_id, plans)
        if expected is None:
            assert config_id not in rows, config_id
            continue
        row = rows[config_id]
        got = {key: row[key] for key in expected}
        assert got == expected, (spec.describe(config_id), got, expected)
        assert row["macs_per_pixel"] == pytest.approx(expected["macs"] / expected["out_size"] ** 2, rel=1e-12)


@pytest.mark.parametrize("input_size, tile, levels, kernel", [
    (70, 16, [1, 2], [1, 3, 5]),  # 70: a valid U-Net whose peak is at a crop (the skip outweighs the concat)
    (68, 8, [1, 3], [1, 3, 5]), (92, 24, [2, 3], [3, 7])])
def test_every_id_equals_the_graph_path(input_size, tile, levels, kernel, tmp_path):
    spec = space(input_size, tile, levels=levels, convs=[1, 2], kernel=kernel, base_width=[3, 40],
                 width_multiplier=[1, 2, 6])  # wide and narrow: each step of the schedule is the peak somewhere
    rows = rows_of(spec, tmp_path)
    assert len(rows) > 20 and len(rows) < spec.total  # valid and invalid ids both present
    kinds = {(row["padding"], row["upsampling"]) for row in rows.values()}
    assert len(kinds) == 6
    check_every_id(spec, rows)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_spaces_equal_the_graph_path(data, tmp_path):
    levels = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=2, unique=True))
    multiple = 2 ** max(levels)
    axes = dict(levels=levels,
                convs=data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2, unique=True)),
                kernel=data.draw(st.lists(st.sampled_from([1, 3, 5, 7]), min_size=1, max_size=2, unique=True)),
                padding=data.draw(st.lists(st.sampled_from(["valid", "same"]), min_size=1, max_size=2, unique=True)),
                upsampling=data.draw(st.lists(st.sampled_from(["transposed", "nearest", "bilinear"]), min_size=1,
                                              max_size=3, unique=True)),
                width_multiplier=data.draw(st.lists(st.integers(1, 8), min_size=1, max_size=2, unique=True)),
                base_width=data.draw(st.lists(st.integers(1, 64), min_size=1, max_size=3, unique=True)))
    input_size = data.draw(st.integers(multiple, 160))
    tile = data.draw(st.integers(multiple, 96))
    spec = UNetSpec.build({"unet": axes, "input_size": input_size, "tile": tile,
                           "in_channels": data.draw(st.integers(1, 3)), "out_channels": data.draw(st.integers(1, 3))})
    rows = rows_of(spec, tmp_path, chunk_ids=data.draw(st.integers(1, 50)))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    ids = sorted(rng.sample(range(spec.total), min(spec.total, 25)))
    check_every_id(spec, rows, ids + sorted(rows)[:5])


@pytest.mark.parametrize("name, padding, input_size, tile", [("unet", "valid", 572, 128), ("unet", "valid", 508, 64),
                                                            ("unet_same", "same", 512, 128)])
def test_the_catalog_unets_are_rows_of_the_space(name, padding, input_size, tile, tmp_path):
    """The catalog graphs are written by hand from the paper (572 -> 388, 31,030,658 params)."""
    catalog = json.loads((ARCHITECTURES / f"{name}.json").read_text())
    catalog["input_size"] = input_size
    spec = UNetSpec.build({"unet": {"levels": [3, 4], "convs": [2], "kernel": [3], "padding": [padding],
                                    "upsampling": ["transposed"], "width_multiplier": [2], "base_width": [32, 64]},
                           "input_size": input_size, "tile": tile, "in_channels": 1, "out_channels": 2})
    rows = rows_of(spec, tmp_path)
    row = rows[spec.config_id_of(levels=4, base_width=64)]
    total = rfsweep.analyze(catalog)["total"]
    plan = rfsweep.tile_plan(catalog, tile=tile)
    read = max(t["read"][0][1] - t["read"][0][0] for t in plan["tiles"])
    assert row["params"] == total["params"] == 31_030_658
    assert (row["rf"], row["out_size"], row["macs"]) == (total["rf"], total["out_size"], total["macs"])
    assert [row["halo_before"], row["halo_after"]] == plan["halo"][0] and row["multiple"] == 16
    assert row["peak_bytes"] == peak_bytes(load_graph(catalog), "final", (read, read), 4)
    if input_size == 572:
        assert row["out_size"] == 388  # the paper's Fig. 1


class PlainUNet:
    """A U-Net written directly in torch from the axis values (not from the graph)."""

    def __new__(cls, c: dict, in_channels: int, out_channels: int, support: bool):
        import torch
        import torch.nn.functional as F
        from torch import nn

        k, levels, convs = c["kernel"], c["levels"], c["convs"]
        pad = (k - 1) // 2 if c["padding"] == "same" else 0
        widths = [c["base_width"] * c["width_multiplier"] ** level for level in range(levels + 1)]

        def stack(c_in, c_out):
            return nn.Sequential(*[nn.Conv2d(c_in if j == 0 else c_out, c_out, k, padding=pad) for j in range(convs)])

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.down = nn.ModuleList([stack(in_channels if i == 0 else widths[i - 1], widths[i])
                                           for i in range(levels + 1)])
                self.up = nn.ModuleList()
                for i in range(levels):
                    if c["upsampling"] == "transposed":
                        self.up.append(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2))
                    else:
                        self.up.append(nn.Sequential(
                            nn.Upsample(scale_factor=2, mode=c["upsampling"],
                                        align_corners=False if c["upsampling"] == "bilinear" else None),
                            nn.Conv2d(widths[i + 1], widths[i], k, padding=pad)))
                self.dec = nn.ModuleList([stack(2 * widths[i], widths[i]) for i in range(levels)])
                self.head = nn.Conv2d(widths[0], out_channels, 1)

            def forward(self, x):
                skips = []
                for i, block in enumerate(self.down):
                    if i:  # an average pool has the max pool's window and passes gradient to all of it
                        x = F.avg_pool2d(x, 2) if support else F.max_pool2d(x, 2)
                    x = block(x)
                    skips.append(x)
                for i in reversed(range(levels)):
                    x = self.up[i](x)
                    skip = skips[i]
                    side = (skip.shape[-1] - x.shape[-1]) // 2
                    skip = skip[..., side:side + x.shape[-2], side:side + x.shape[-1]]
                    x = self.dec[i](torch.cat([skip, x], 1))
                return self.head(x)

        torch.manual_seed(0)
        return Net().double()


def test_a_plain_torch_unet_agrees(tmp_path):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    spec = UNetSpec.build({"unet": {"levels": [2, 3], "convs": [1, 2], "kernel": [3], **ALL_KINDS,
                                    "width_multiplier": [2], "base_width": [2]},
                           "input_size": 104, "tile": 32, "in_channels": 2, "out_channels": 3})
    rows = rows_of(spec, tmp_path)
    rng = random.Random(5)
    sample = rng.sample(sorted(rows), 8)
    kinds = set()
    for config_id in sample:
        row, c = rows[config_id], spec.choices(config_id)
        kinds.add((c["padding"], c["upsampling"]))
        net = PlainUNet(c, 2, 3, support=False)
        assert sum(p.numel() for p in net.parameters()) == row["params"]
        x = torch.randn(1, 2, 104, 104, dtype=torch.float64)
        with FlopCounterMode(display=False) as counter:
            y = net(x)
        assert counter.get_total_flops() == 2 * row["macs"]
        assert tuple(y.shape[-2:]) == (row["out_size"], row["out_size"])
        # rf: the widest gradient support over a full period of interior units (every phase)
        net = PlainUNet(c, 2, 3, support=True)
        x = torch.randn(1, 2, 104, 104, dtype=torch.float64, requires_grad=True)
        y = net(x)
        period = 2 ** c["levels"]
        first = (row["out_size"] - period) // 2
        widest = 0
        for u in range(first, first + period):
            grad, = torch.autograd.grad(y[0, :, u, y.shape[-1] // 2].sum(), x, retain_graph=True)
            rows_read = grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
            assert 0 < rows_read[0] and rows_read[-1] < 103  # not clipped by the border
            widest = max(widest, int(rows_read[-1] - rows_read[0]) + 1)
        assert widest == row["rf"], spec.describe(config_id)
    assert len(kinds) >= 4


def test_config_id_is_the_documented_mixed_radix():
    spec = space(64, 16, levels=[1, 2], convs=[1, 2, 3], kernel=[3, 5], base_width=[8, 9, 10, 11],
                 width_multiplier=[2, 3])
    # levels slowest, then convs, kernel, padding, upsampling, width_multiplier, base_width fastest
    radices = [2, 3, 2, 2, 3, 2, 4]
    digits = [1, 2, 0, 1, 2, 1, 3]
    value = 0
    for digit, radix in zip(digits, radices):
        value = value * radix + digit
    assert spec.total == 2 * 3 * 2 * 2 * 3 * 2 * 4
    assert spec.config_id_of(levels=2, convs=3, kernel=3, padding="same", upsampling="bilinear",
                             width_multiplier=3, base_width=11) == value
    assert spec.choices(value) == dict(levels=2, convs=3, kernel=3, padding="same", upsampling="bilinear",
                                       width_multiplier=3, base_width=11)
    assert spec.describe(value) == "L2 w11x3 3x k3 same bilinear"


def test_limits_prune_exactly_the_rows_outside_them(tmp_path):
    axes = dict(levels=[1, 2], convs=[1, 2], kernel=[3, 5], base_width=[2, 4, 8, 16], width_multiplier=[1, 2])
    free = rows_of(space(60, 16, **axes), tmp_path)
    limits = dict(min_rf=20, max_rf=60, max_params=20_000, max_macs=30_000_000, min_out_size=30)
    spec = UNetSpec.build({**space(60, 16, **axes).to_dict(), **limits})
    limited = rows_of(spec, tmp_path, threads=1)
    kept = {i: r for i, r in free.items() if limits["min_rf"] <= r["rf"] <= limits["max_rf"]
            and r["params"] <= limits["max_params"] and r["macs"] <= limits["max_macs"]
            and r["out_size"] >= limits["min_out_size"]}
    assert 0 < len(kept) < len(free) and limited.keys() == kept.keys()
    for config_id in kept:
        assert limited[config_id] == free[config_id]


def test_threads_chunks_and_partitions_give_the_same_rows(tmp_path):
    spec = space(64, 32, levels=[1, 2, 3], convs=[1, 2], kernel=[3], base_width=list(range(4, 40)),
                 width_multiplier=[1, 2, 3], max_params=200_000)
    write_range(spec, tmp_path / "one.parquet", threads=1)
    write_range(spec, tmp_path / "two.parquet", threads=2, chunk_ids=777)
    run_local_parts(spec, tmp_path / "parts", 3, workers=2, chunk_ids=1000)
    one = pd.read_parquet(tmp_path / "one.parquet")
    assert len(one) > 1000
    for other in ("two.parquet", "parts"):
        pd.testing.assert_frame_equal(one, pd.read_parquet(tmp_path / other))


def test_dask_gives_the_same_rows(tmp_path):
    pytest.importorskip("distributed")
    from rfsweep.distributed import run_dask

    spec = space(64, 32, levels=[1, 2], convs=[1, 2], kernel=[3], base_width=list(range(4, 20)))
    write_range(spec, tmp_path / "one.parquet", threads=1)
    counts = run_dask(spec, tmp_path / "dask", partitions=3, n_workers=2)
    assert counts.enumerated == spec.total
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "one.parquet"), pd.read_parquet(tmp_path / "dask"))


SPEC_TOML = """
input_size = 64
in_channels = 1
tile = 32
max_params = 100_000

[unet]
levels = [2, 3]
convs = [1, 2]
kernel = [3, 5]
padding = ["valid", "same"]
upsampling = ["transposed", "bilinear"]
base_width = "4-12"
"""


def test_cli_sweep_partitions_show_and_pareto(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("unet.toml").write_text(SPEC_TOML)
    code, out, err = run_cli(capsys, "sweep", "--spec", "unet.toml", "-o", "one.parquet", "-q")
    assert code == 0, err
    code, _, err = run_cli(capsys, "sweep", "--spec", "unet.toml", "--partitions", "3", "-o", "parts", "-q")
    assert code == 0, err
    one = pd.read_parquet("one.parquet")
    pd.testing.assert_frame_equal(one, pd.read_parquet("parts"))
    spec = load_spec("unet.toml")
    config_id = int(one.config_id.iloc[len(one) // 2])
    code, out, err = run_cli(capsys, "show", "one.parquet", config_id, "--format", "json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["row"] is True and shown["total"]["params"] == int(one.set_index("config_id").params[config_id])
    code, out, err = run_cli(capsys, "pareto", "one.parquet", "--minimize", "params,peak_bytes", "--maximize", "rf",
                             "--format", "json")
    assert code == 0, err
    assert spec.describe(config_id)
    # an invalid id is explained as such, not shown
    invalid = next(i for i in range(spec.total) if i not in set(one.config_id))
    code, _, err = run_cli(capsys, "show", "one.parquet", invalid, "--strict")
    assert code == 2 and "not a row" in err


@pytest.mark.parametrize("text, key", [
    ("[unet]\nlevels = [2]\nkernel = [4]\n", "unet.kernel"),
    ("[unet]\nlevels = [2]\nwidth = [4]\n", "'width'"),
    ("tile = 8\n[unet]\nlevels = [4]\n", "tile"),
    ("[unet]\nupsampling = ['bicubic']\n", "unet.upsampling"),
    ("[unet]\nlevels = [0]\n", "unet.levels"),
    ("depth = 3\n[unet]\nlevels = [2]\n", "'depth'"),
])
def test_bad_specs_exit_2_naming_the_key(text, key, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, _, err = run_cli(capsys, "sweep", "--spec", path, "-o", tmp_path / "x.parquet", "-q")
    assert code == 2 and err.startswith("error:") and key in err and "Traceback" not in err
    assert not (tmp_path / "x.parquet").exists()


def test_chain_flags_are_refused_for_a_unet_spec(tmp_path, capsys):
    path = tmp_path / "u.toml"
    path.write_text(SPEC_TOML)
    code, _, err = run_cli(capsys, "sweep", "--spec", path, "--kernel", "3", "-q")
    assert code == 2 and "--kernel" in err


def test_show_refuses_a_spec_that_disagrees_with_the_row(tmp_path, capsys, monkeypatch):
    """The file's kernels are 3,5; metadata claiming 3,7 would rebuild a kernel-5 row with 7: refused."""
    import pyarrow.parquet as pq

    monkeypatch.chdir(tmp_path)
    Path("unet.toml").write_text(SPEC_TOML)
    assert run_cli(capsys, "sweep", "--spec", "unet.toml", "-o", "one.parquet", "-q")[0] == 0
    meta = json.loads(pq.read_metadata("one.parquet").metadata[b"rfsweep"])
    meta["spec"]["unet"]["kernel"] = [3, 7]
    table = pq.read_table("one.parquet")
    pq.write_table(table.replace_schema_metadata({b"rfsweep": json.dumps(meta).encode()}), "altered.parquet")
    row = next(r["config_id"] for r in table.select(["config_id", "kernel", "padding"]).to_pylist()
               if r["kernel"] == 5 and r["padding"] == "same")  # a same U-Net with k7 is valid too
    code, _, err = run_cli(capsys, "show", "altered.parquet", row)
    assert code == 2 and "kernel" in err and "5" in err and "7" in err and "Traceback" not in err
