"""The effective receptive field (uniform weights, no nonlinearity, Luo et al. 2016).

`rfsweep.analyze` and the sweep's erf_std/erf_ratio columns come from a
closed form (variances of the layers' footprints add up). The oracle here is
the literal definition, tests/naive.py::axis_erf_std: convolve a delta with
each layer's footprint -- k ones spaced dilation*jump input pixels apart --
normalise, and take the standard deviation.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rfsweep
from naive import axis_erf_std

settings_erf = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def uniform_std(rf: int) -> float:
    return math.sqrt((rf * rf - 1) / 12)


def _pair(value):
    return tuple(value) if isinstance(value, (list, tuple)) else (value, value)


@st.composite
def strided_stacks(draw):
    """Conv and pool stacks with strides and dilations; square or rectangular kernels."""
    layers = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["conv", "conv", "conv", "maxpool", "avgpool"]))
        kernel = draw(st.integers(1, 5)) if draw(st.booleans()) else [draw(st.integers(1, 5)), draw(st.integers(1, 5))]
        layer = {"type": kind, "kernel": kernel, "stride": draw(st.integers(1, 3))}
        if kind == "conv":
            layer["dilation"] = draw(st.integers(1, 3))
            layer["out_channels"] = 4
        else:
            layer["padding"] = 0
        layers.append(layer)
    return layers


def _axis_layers(stack, axis):
    return [(layer.kernel[axis], layer.stride[axis], layer.padding[axis], layer.dilation[axis], layer.ceil_mode)
            for layer in stack.layers]


@settings_erf
@given(strided_stacks())
def test_analyze_erf_std_matches_impulse_convolution(layers):
    stack = rfsweep.load_stack(layers, 2048, 4)
    total = rfsweep.analyze(stack)["total"]
    for axis, (std, ratio, rf) in enumerate(zip(_pair(total["erf_std"]), _pair(total["erf_ratio"]),
                                                _pair(total["rf"]))):
        want = axis_erf_std(_axis_layers(stack, axis))
        assert std == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert ratio == pytest.approx(want / uniform_std(rf) if rf > 1 else 1.0, rel=1e-9)


def test_known_erf_values():
    one = rfsweep.analyze("c7x8", 32, 8)["total"]
    three = rfsweep.analyze("c3x8,c3x8,c3x8", 32, 8)["total"]
    assert one["erf_std"] == pytest.approx(2.0) and one["erf_ratio"] == 1.0
    assert three["erf_std"] == pytest.approx(math.sqrt(2)) and three["erf_ratio"] == pytest.approx(math.sqrt(0.5))
    # n stacked 3x3 convs: variances 8/12 add up, so the ERF std grows like sqrt(n), the RF like n
    ten = rfsweep.analyze(",".join(["c3x8"] * 10), 64, 8)["total"]
    assert ten["erf_std"] == pytest.approx(math.sqrt(20 / 3))
    # stride spreads later footprints: c3s2 then c3 -> taps of the second are 2 px apart
    strided = rfsweep.analyze("c3s2x8,c3x8", 32, 8)["total"]
    assert strided["erf_std"] == pytest.approx(math.sqrt(8 / 12 + 8 / 12 * 4))


@pytest.fixture(scope="module")
def sweep_rows(tmp_path_factory):
    spec = rfsweep.GridSpec.build({"depth": "1-3", "types": "conv,maxpool,avgpool", "kernel": [1, 2, 3, 5],
                                   "stride": [1, 2, 3], "dilation": [1, 3], "channels": [4],
                                   "input_size": 96})
    path = tmp_path_factory.mktemp("erf") / "erf.parquet"
    rfsweep.write_range(spec, path)
    return pd.read_parquet(path)


def test_sweep_erf_columns_match_impulse_convolution(sweep_rows):
    df = sweep_rows
    assert len(df) > 50_000 and set(df["depth"]) == {1, 2, 3}
    sample = pd.concat([df[df["depth"] < 3], df[df["depth"] == 3].sample(3000, random_state=0)])
    assert set(sample["l2_type"].dropna().astype(str)) == {"conv", "maxpool", "avgpool"}
    assert {1, 3} <= set(sample["l3_dilation"].dropna()) and {1, 2, 3} <= set(sample["l3_stride"].dropna())
    for row in sample.itertuples(index=False):
        axis = [(int(getattr(row, f"l{i}_kernel")), int(getattr(row, f"l{i}_stride")), 0,
                 int(getattr(row, f"l{i}_dilation")), False) for i in range(1, row.depth + 1)]
        want = axis_erf_std(axis)
        assert row.erf_std == pytest.approx(want, rel=2e-7, abs=1e-6), row.config_id
        ratio = want / uniform_std(row.rf) if row.rf > 1 else 1.0
        assert row.erf_ratio == pytest.approx(ratio, rel=2e-7, abs=1e-6), row.config_id


def test_sweep_erf_columns_equal_analyze(tmp_path):
    spec = rfsweep.GridSpec.build({"depth": "1-2", "kernel": [1, 3, 7], "stride": [1, 2], "dilation": [1, 2],
                                   "channels": [4], "input_size": 40})
    path = tmp_path / "small.parquet"
    rfsweep.write_range(spec, path)
    for row in pd.read_parquet(path).itertuples(index=False):
        total = rfsweep.analyze(rfsweep.stack_of(path, row.config_id))["total"]
        assert row.erf_std == np.float32(total["erf_std"])
        assert row.erf_ratio == np.float32(total["erf_ratio"])
