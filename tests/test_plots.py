"""rfsweep.plots: every figure is a non-empty 800x500 PNG drawn on the Agg canvas."""

from __future__ import annotations

import sys

import matplotlib
import matplotlib.image
import numpy as np
import pandas as pd
import pytest

import rfsweep
from rfsweep import RfsweepError, plots
from rfsweep.analysis import compare

SHAPE = (500, 800)  # rows, columns: figsize (8, 5) at dpi 100


def check_png(path):
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == SHAPE
    assert image[..., :3].std() > 0.01  # something was drawn
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("source", [
    "c3x64,c3x64,c3x64", "c7s2p3x64,mp3s2p1,c3x64,c3x64", "c3d2x8,c3d4x8", "c1_7p0_3x192,c7_1p3_0x192",
    "c3s2p0x8,mp2ceil,c3p0x8",
    "c3x64,c3x64,mp2,c3x128,c3x128,mp2,c3x256,c3x256,c3x256,mp2,c3x512,c3x512,c3x512,mp2,c3x512,c3x512,c3x512,mp2",
])
def test_plot_rf_growth(tmp_path, source):
    stack = rfsweep.load_stack(source)
    path = plots.plot_rf_growth(stack, rfsweep.analyze(stack), tmp_path / "rf.png")
    assert path == tmp_path / "rf.png"
    check_png(path)


def test_plot_front(tmp_path):
    rng = np.random.default_rng(0)
    sample = pd.DataFrame({"params": rng.integers(1, 10**7, 5000), "rf": rng.integers(1, 200, 5000)})
    front = rfsweep.analysis.pareto_front(sample, ["params"], ["rf"])
    check_png(plots.plot_front(sample, front, tmp_path / "front.png"))
    check_png(plots.plot_front(None, front, tmp_path / "front_only.png", x="params", y="rf"))
    zeros = pd.DataFrame({"params": [0, 10, 1000], "macs": [0, 5, 7]})  # pools cost 0: symlog axis
    check_png(plots.plot_front(zeros, zeros, tmp_path / "zeros.png", x="params", y="macs"))
    with pytest.raises(RfsweepError, match="'flops'"):
        plots.plot_front(sample, front, tmp_path / "bad.png", x="flops")


def test_plot_compare(tmp_path):
    check_png(plots.plot_compare(compare(7), tmp_path / "compare.png"))
    many = compare(17, channels=16, kernels=(2, 3, 5, 7), dilations=(1, 2, 3), max_depth=5)
    assert len(many) > 30
    check_png(plots.plot_compare(many, tmp_path / "many.png"))
    with pytest.raises(RfsweepError, match="no rows"):
        plots.plot_compare([], tmp_path / "empty.png")


def test_plots_use_agg_and_leave_pyplot_alone(tmp_path):
    backend = matplotlib.get_backend()
    plots.plot_compare(compare(5), tmp_path / "c.png")
    assert matplotlib.get_backend() == backend
    assert "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()


def test_missing_matplotlib_is_a_clear_error(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    with pytest.raises(RfsweepError, match=r'pip install -e "\.\[plot\]"'):
        plots.plot_compare(compare(5), tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_missing_directory_is_bad_input(tmp_path):
    with pytest.raises(RfsweepError, match="does not exist"):
        plots.plot_compare(compare(5), tmp_path / "nope" / "c.png")


def test_explain_plot_flag(tmp_path, capsys):
    from rfsweep.cli import main

    with pytest.raises(SystemExit) as info:
        main(["explain", "c7s2p3x64,mp3s2p1,c3x64", "--plot", str(tmp_path / "explain.png")])
    assert (info.value.code or 0) == 0, capsys.readouterr().err
    check_png(tmp_path / "explain.png")
