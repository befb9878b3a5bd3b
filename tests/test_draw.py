"""rfsweep.draw: the traced footprint is checked against an impulse oracle and `analyze`,
and the figure is checked by content (the highlighted cell patches), not only by size.

The oracle pushes one impulse per input pixel forward through windows of ones
(numpy sliding_window_view, dilation as a strided slice of the window), with
its own output-size rule (PyTorch's, ceil_mode included); the input pixels
whose impulse reaches the chosen top unit are its footprint.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

import rfsweep
from rfsweep import RfsweepError
from rfsweep.draw import draw, footprint
from cli_helpers import run_cli


# ---------------------------------------------------------------- the oracle

def _out_size(n: int, k_eff: int, s: int, p: int, ceil: bool) -> int:
    """PyTorch's output size (ceil_mode: the last window must start inside the input or left padding)."""
    if not ceil:
        return (n + 2 * p - k_eff) // s + 1
    out = -(-(n + 2 * p - k_eff) // s) + 1
    if (out - 1) * s >= n + p:
        out -= 1
    return out


def _forward(x: np.ndarray, layer) -> np.ndarray:
    """x: (batch, H, W) -> (batch, H', W'): sums over each (dilated) window, zero padding."""
    sizes, pads, steps = [], [], []
    for axis in (0, 1):
        k, s, p, d = layer.kernel[axis], layer.stride[axis], layer.padding[axis], layer.dilation[axis]
        k_eff = d * (k - 1) + 1
        n = x.shape[1 + axis]
        out = _out_size(n, k_eff, s, p, layer.ceil_mode)
        need = (out - 1) * s + k_eff  # padded length the windows cover (ceil mode may run past the padding)
        pads.append((p, max(need - n - p, 0)))
        sizes.append((out, k_eff, s, d))
    padded = np.pad(x, [(0, 0), *pads])
    windows = sliding_window_view(padded, (sizes[0][1], sizes[1][1]), axis=(1, 2))
    (oh, _, sh, dh), (ow, _, sw, dw) = sizes
    windows = windows[:, ::sh, ::sw][:, :oh, :ow, ::dh, ::dw]
    return windows.sum(axis=(3, 4))


def oracle_support(stack, unit):
    """Input pixels whose impulse reaches `unit` of the last map, and every map's size."""
    h, w = stack.input_size
    impulses = np.eye(h * w).reshape(h * w, h, w)
    sizes = [(h, w)]
    x = impulses
    for layer in stack.layers:
        x = _forward(x, layer)
        sizes.append(x.shape[1:])
    reached = np.flatnonzero(x[:, unit[0], unit[1]] > 0)
    return {(int(i // w), int(i % w)) for i in reached}, sizes


def rf_interval(result, unit):
    """Per axis, the [lo, hi] input interval analyze gives for `unit` of the last layer."""
    total = result["total"]
    out = []
    for axis in (0, 1):
        rf = total["rf"][axis] if isinstance(total["rf"], list) else total["rf"]
        jump = total["jump"][axis] if isinstance(total["jump"], list) else total["jump"]
        start = total["start"][axis] if isinstance(total["start"], list) else total["start"]
        centre = start + unit[axis] * jump
        out.append((centre - (rf - 1) / 2, centre + (rf - 1) / 2))
    return out


def check_against_oracle(text: str, size: int, unit=None):
    stack = rfsweep.load_stack(text, size, 4)
    result = rfsweep.analyze(stack)
    found = footprint(stack, unit)
    expected, sizes = oracle_support(stack, found.unit)
    assert [tuple(s) for s in sizes] == found.sizes  # analyze's map sizes = the oracle's
    assert found.cells[0] == expected
    # the highlighted input lies in analyze's RF interval at the unit's position, clipped to the input;
    # when no map in between reads padding, the walk's extent (padding included) is that interval exactly
    for axis, (lo, hi) in enumerate(rf_interval(result, found.unit)):
        touched = found.rows if axis == 0 else found.cols
        inside = found.inside(0)[axis]
        if not inside:  # the unit reads only padding (the oracle agreed above: no input pixel)
            assert not expected
            continue
        assert max(lo, 0) <= min(inside) and max(inside) <= min(hi, size - 1)
        between = range(1, len(found.sizes) - 1)
        if all(0 <= i < found.sizes[level][axis] for level in between for i in touched[level]):
            assert (touched[0][0], touched[0][-1]) == (lo, hi)
    return found, result


def clipped(result, unit, size, axis=0):
    lo, hi = rf_interval(result, unit)[axis]
    return list(range(max(int(lo), 0), min(int(hi), size - 1) + 1))


# ---------------------------------------------------------------- hand-checked cases

def test_three_3x3_on_7x7_is_3_then_5_then_7():
    found, result = check_against_oracle("c3x8,c3x8,c3x8", 7)
    assert found.unit == (3, 3)
    assert [len(found.inside(level)[0]) for level in (3, 2, 1, 0)] == [1, 3, 5, 7]  # CS231n
    assert found.cells[0] == {(r, c) for r in range(7) for c in range(7)}
    assert found.rows[0] == list(range(0, 7)) == clipped(result, (3, 3), 7)
    assert result["total"]["rf"] == 7


def test_corner_unit_reads_padding_and_clips_to_the_input():
    found, result = check_against_oracle("c3x8,c3x8,c3x8", 7, unit=(0, 0))
    assert rf_interval(result, (0, 0))[0] == (-3, 3)
    assert found.inside(0) == (clipped(result, (0, 0), 7), clipped(result, (0, 0), 7, 1)) == ([0, 1, 2, 3],) * 2
    assert found.rows[0] == [-1, 0, 1, 2, 3]  # padding read directly; padding of padding reads nothing
    assert found.cells[0] == {(r, c) for r in range(4) for c in range(4)}


def test_stride_two_leaves_gaps():
    # a 1x1 stride-2 conv samples every other pixel; the 3x3 above it reads 3 of those
    found, _ = check_against_oracle("c1s2p0x8,c3x8", 9)
    assert found.inside(0)[0] == [2, 4, 6]
    found, result = check_against_oracle("c3s2x8,c3x8", 9)
    assert found.inside(0)[0] == list(range(1, 8)) == clipped(result, found.unit, 9)


def test_dilation_highlights_only_the_taps():
    found, result = check_against_oracle("c3d2x8,c3d2x8", 9)
    assert result["total"]["rf"] == 9
    assert found.inside(0)[0] == [0, 2, 4, 6, 8] == clipped(result, found.unit, 9)[::2]
    assert found.inside(1)[1] == [2, 4, 6]


def test_ceil_mode_pool():
    found, _ = check_against_oracle("c3x8,mp2ceil,c3x8", 7)
    assert found.sizes[2] == (4, 4)  # ceil((7 - 2) / 2) + 1
    for unit in [(3, 3), (0, 3), (2, 1)]:
        check_against_oracle("c3x8,mp2ceil,c3x8", 7, unit=unit)
    check_against_oracle("c3s2p0x8,mp2ceil,c3p0x8", 13)


def test_rectangular_kernels():
    check_against_oracle("c3_5x8,c3x8", 9)
    check_against_oracle("c1_7p0_3x8,c7_1p3_0x8", 9, unit=(1, 7))


@pytest.mark.parametrize("text,size", [("c3x8,c3x8,c3x8", 7), ("c3s2x8,c3x8", 9), ("c3d2x8,c3d2x8", 9),
                                       ("c3x8,mp2ceil,c3x8", 7), ("c5s2p1x8,ap3s1p1,c3d2x8", 11)])
def test_every_top_unit(text, size):
    stack = rfsweep.load_stack(text, size, 4)
    top = footprint(stack).sizes[-1]
    for i in range(top[0]):
        for j in range(top[1]):
            check_against_oracle(text, size, unit=(i, j))


@st.composite
def small_stacks(draw_):
    layers = []
    for _ in range(draw_(st.integers(1, 3))):
        kind = draw_(st.sampled_from(["c", "c", "mp", "ap"]))
        k = draw_(st.integers(1, 4))
        s = draw_(st.integers(1, 3))
        if kind == "c":
            d = draw_(st.integers(1, 3))
            p = draw_(st.integers(0, d * (k - 1)))
            layers.append(f"c{k}s{s}p{p}d{d}x4")
        else:
            p = draw_(st.integers(0, k // 2))
            layers.append(f"{kind}{k}s{s}p{p}" + ("ceil" if draw_(st.booleans()) else ""))
    return ",".join(layers), draw_(st.integers(4, 12))


@settings(max_examples=80, deadline=None)
@given(small_stacks(), st.integers(0, 10_000))
def test_random_stacks_match_the_oracle(case, seed):
    text, size = case
    try:
        stack = rfsweep.load_stack(text, size, 4)
        top = footprint(stack).sizes[-1]
    except RfsweepError:  # the map vanished: nothing to draw
        return
    unit = (seed % top[0], (seed // 7) % top[1])
    check_against_oracle(text, size, unit=unit)


# ---------------------------------------------------------------- the figure's content

def _patch_states(figure):
    """{level: {state: {(r, c)}}} from the gids of the cell patches."""
    states: dict = {}
    for patch in figure.axes[0].patches:
        gid = patch.get_gid() or ""
        if not gid.startswith("map"):
            continue
        level, r, c, state = gid.split(":")
        states.setdefault(int(level[3:]), {}).setdefault(state, set()).add((int(r[1:]), int(c[1:])))
    return states


@pytest.mark.parametrize("text,size,unit", [
    ("c3x8,c3x8,c3x8", 7, None), ("c3s2x8,c3x8", 9, (1, 3)), ("c3d2x8,c3d2x8", 9, None),
    ("c3x8,mp2ceil,c3x8", 7, (3, 0)), ("c1s2p0x8,c3x8", 9, (0, 4))])
def test_grid_figure_highlights_exactly_the_footprint(tmp_path, text, size, unit):
    stack = rfsweep.load_stack(text, size, 4)
    drawing = draw(stack, tmp_path / "rf.png", unit=unit)
    assert drawing.mode == "grid"
    expected, _ = oracle_support(stack, drawing.unit)
    states = _patch_states(drawing.figure)
    assert states[0]["fp"] == expected  # the orange input cells are the oracle's support
    depth = len(stack.layers)
    assert states[depth]["unit"] == {drawing.unit}
    for level, (h, w) in enumerate(drawing.sizes):
        cells = set().union(*states[level].values())
        assert {(r, c) for r in range(h) for c in range(w)} <= cells  # every map cell drawn
        real = states[level].get("fp", set()) | states[level].get("cell", set()) | states[level].get("unit", set())
        assert real == {(r, c) for r in range(h) for c in range(w)}  # padding cells are drawn as padding
        assert all(not (0 <= r < h and 0 <= c < w) for r, c in states[level].get("pad", set()))
        if level < depth:
            assert states[level].get("fp", set()) == drawing.cells[level]
            touched = {(r, c) for r in drawing.rows[level] for c in drawing.cols[level]}
            assert states[level].get("fppad", set()) == {cell for cell in touched if cell not in real}
    image = Image.open(tmp_path / "rf.png").convert("RGB")
    assert len(image.getcolors(1 << 20)) > 10
    orange = np.all(np.abs(np.asarray(image, np.int16) - (0xf2, 0x8e, 0x2b)) < 8, axis=-1).sum()
    assert orange > 100  # the footprint is visible in the written PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rf.png"]


def test_svg_carries_the_cell_ids(tmp_path):
    drawing = draw("c3d2x8,c3d2x8", tmp_path / "rf.svg", input_size=9)
    text = (tmp_path / "rf.svg").read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    for r, c in drawing.cells[0]:
        assert f'id="map0:r{r}:c{c}:fp"' in text
    assert text.count(':fp"') == sum(len(cells) for cells in drawing.cells[:-1])


def test_gif_steps_layer_by_layer(tmp_path):
    drawing = draw("c3x8,c3x8,c3x8", tmp_path / "rf.gif", input_size=7)
    image = Image.open(tmp_path / "rf.gif")
    assert image.format == "GIF" and image.n_frames == 4  # top unit alone, then one more map per frame
    frames = []
    for i in range(image.n_frames):
        image.seek(i)
        frames.append(np.asarray(image.convert("RGB"), np.int16))
    legend = drawing.figure.legends[0].get_window_extent()  # pixels from the bottom
    height = frames[0].shape[0]
    maps = slice(0, height - int(legend.y1) - 2)  # image rows above the legend
    orange = [np.all(np.abs(f[maps] - (0xf2, 0x8e, 0x2b)) < 8, axis=-1).sum() for f in frames]
    assert orange[0] == 0 and orange[1] < orange[2] < orange[3]
    strip = slice(height - int(legend.y1) - 1, height - int(legend.y0) + 1)
    swatches = [np.all(np.abs(f[strip] - (0xf2, 0x8e, 0x2b)) < 8, axis=-1).sum() for f in frames]
    assert swatches[0] > 20 and len(set(swatches)) == 1  # the legend looks the same in every frame
    assert all(np.array_equal(f[strip], frames[-1][strip]) for f in frames)


def test_large_input_gets_a_schematic(tmp_path):
    text = "c7s2p3x64,mp3s2p1,c3x64,c3x64,c3s2x128,c3x128"
    drawing = draw(text, tmp_path / "rf.png", input_size=224)
    assert drawing.mode == "schematic"
    result = rfsweep.analyze(text, 224)
    (lo, hi), _ = rf_interval(result, drawing.unit)
    assert (drawing.rows[0][0], drawing.rows[0][-1]) == (lo, hi)
    ax = drawing.figure.axes[0]
    assert len(ax.get_yticks()) == 7  # one row per map
    marked = [c for c in ax.collections if (c.get_gid() or "").startswith("trace:")]
    xs = {int(c.get_gid().split(":")[1]): sorted(float(x) for x, _ in c.get_offsets()) for c in marked}
    assert xs[0] == [float(r) for r in drawing.inside(0)[0]]  # input row: exactly the traced pixels
    deep = "," .join(["c3x8"] * 12)
    assert draw(deep, tmp_path / "deep.png", input_size=16).mode == "schematic"
    assert draw("c3x8,c3x8", None, input_size=40).mode == "schematic"
    assert draw("c3x8,c3x8", None, input_size=40, mode="grid").mode == "grid"


# ---------------------------------------------------------------- CLI

def test_cli_draw(tmp_path, capsys):
    code, out, err = run_cli(capsys, "draw", "c3x8,c3x8,c3x8", "--input-size", "7", "-o", tmp_path / "rf.png")
    assert code == 0, err
    assert "unit (3, 3) of layer 3 sees input rows 0..6, cols 0..6" in out
    assert (tmp_path / "rf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = run_cli(capsys, "draw", "c3x8,c3x8", "--input-size", "7", "--unit", "0,6",
                             "-o", tmp_path / "corner.svg")
    assert code == 0 and "rows 0..2, cols 4..6" in out


@pytest.mark.parametrize("args,message", [
    (["--unit", "7,0"], "outside the top map"),
    (["--unit", "3"], "--unit must be I,J"),
    (["--unit", "a,b"], "--unit must be I,J"),
    (["-o", "{tmp}/missing/rf.png"], "output directory does not exist"),
    (["-o", "{tmp}/rf.jpg"], "use .png, .svg or .gif"),
    (["--mode", "fancy"], "fancy"),
])
def test_cli_draw_bad_input(tmp_path, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "rf.png")]
    code, out, err = run_cli(capsys, "draw", "c3x8,c3x8,c3x8", "--input-size", "7", *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stack", ["c3x8,c9p0x8", "c3x8,zz", "missing.json"])
def test_cli_draw_bad_stack(tmp_path, capsys, stack):
    code, _, err = run_cli(capsys, "draw", stack, "--input-size", "7", "-o", tmp_path / "rf.png")
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_missing_matplotlib_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    code, _, err = run_cli(capsys, "draw", "c3x8", "--input-size", "7", "-o", tmp_path / "rf.png")
    assert code == 2 and 'pip install -e ".[plot]"' in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- multi-path networks (schematic)

def _tf_same(n, k, s, d):
    """TensorFlow 'SAME' (its documented rule): output ceil(n/s), the smaller half of the padding before."""
    total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def _window(x, k, s, d, pads):
    """Sum over (dilated) windows of a (batch, H, W) array with per-side zero padding."""
    padded = np.pad(x, [(0, 0), *pads])
    k_eff = d * (k - 1) + 1
    windows = sliding_window_view(padded, (k_eff, k_eff), axis=(1, 2))[:, ::s, ::s, ::d, ::d]
    return windows.sum(axis=(3, 4))


def graph_support(graph: dict, end: str, unit):
    """Input pixels whose impulse reaches `unit` of node `end`: a numpy forward pass of windows of ones."""
    n = graph["input_size"]
    maps = {"input": np.eye(n * n).reshape(n * n, n, n)}
    previous = "input"
    for node in graph["nodes"]:
        ins = [maps[name] for name in node.get("inputs", [previous])]
        kind = node["type"]
        if kind in ("conv", "maxpool", "avgpool"):
            k = node["kernel"]
            s = node.get("stride", 1 if kind == "conv" else k)
            d = node.get("dilation", 1)
            p = node.get("padding", d * (k - 1) // 2 if kind == "conv" else 0)
            pads = [_tf_same(ins[0].shape[1 + a], k, s, d) for a in (0, 1)] if p == "same_tf" else [(p, p)] * 2
            out = _window(ins[0], k, s, d, pads)
        elif kind == "pad":
            out = np.pad(ins[0], [(0, 0), *[tuple(side) for side in node["padding"]]])
        elif kind in ("add", "mul"):  # support: a unit depends on every factor (1x1 gates broadcast)
            out = sum(ins)
        elif kind == "concat":
            out = sum(ins)
        elif kind == "global_pool":
            out = ins[0].sum(axis=(1, 2), keepdims=True)
        else:
            out = ins[0]
        maps[node["name"]] = out
        previous = node["name"]
    n_ = maps[end].shape
    reached = np.flatnonzero(maps[end][:, unit[0], unit[1]] > 0)
    return {(int(i // n), int(i % n)) for i in reached}, n_[1:]


GRAPHS = {
    "residual": {"input_size": 12, "in_channels": 4, "nodes": [
        {"name": "a", "type": "conv", "kernel": 3, "out_channels": 4, "inputs": ["input"]},
        {"name": "b", "type": "conv", "kernel": 3, "dilation": 2, "out_channels": 4},
        {"name": "sum", "type": "add", "inputs": ["b", "input"]},
        {"name": "r", "type": "relu"},
        {"name": "down", "type": "conv", "kernel": 3, "stride": 2, "padding": "same_tf", "out_channels": 8}]},
    "inception": {"input_size": 11, "in_channels": 4, "nodes": [
        {"name": "b1", "type": "conv", "kernel": 1, "out_channels": 2, "inputs": ["input"]},
        {"name": "b3", "type": "conv", "kernel": 3, "out_channels": 2, "inputs": ["input"]},
        {"name": "b5", "type": "conv", "kernel": 5, "dilation": 2, "out_channels": 2, "inputs": ["input"]},
        {"name": "bp", "type": "maxpool", "kernel": 3, "stride": 1, "padding": 1, "inputs": ["input"]},
        {"name": "cat", "type": "concat", "inputs": ["b1", "b3", "b5", "bp"]},
        {"name": "down", "type": "conv", "kernel": 3, "stride": 2, "padding": 0, "out_channels": 8}]},
    "gate": {"input_size": 9, "in_channels": 4, "nodes": [
        {"name": "c", "type": "conv", "kernel": 3, "out_channels": 4, "inputs": ["input"]},
        {"name": "squeeze", "type": "global_pool"},
        {"name": "excite", "type": "conv", "kernel": 1, "out_channels": 4},
        {"name": "scaled", "type": "mul", "inputs": ["c", "excite"]},
        {"name": "after", "type": "conv", "kernel": 1, "out_channels": 4}]},
    "padded": {"input_size": 8, "in_channels": 2, "nodes": [
        {"name": "p", "type": "pad", "padding": [[1, 2], [0, 1]], "inputs": ["input"]},
        {"name": "c", "type": "conv", "kernel": 3, "padding": 0, "out_channels": 2},
        {"name": "d", "type": "conv", "kernel": 2, "stride": 2, "padding": 0, "out_channels": 2}]},
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_graph_footprint_matches_a_forward_impulse_pass(name):
    graph = GRAPHS[name]
    end = graph["nodes"][-1]["name"]
    for unit_seed in range(6):
        first = draw(graph, mode="schematic")  # the default unit first, then several others
        top = first.sizes[-1]
        unit = None if unit_seed == 0 else (unit_seed * 5 % top[0], unit_seed * 3 % top[1])
        drawing = draw(graph, unit=unit)
        expected, size = graph_support(graph, end, drawing.unit)
        assert tuple(size) == drawing.sizes[-1]
        # per axis, the traced rows / columns are the projections of the impulse support
        assert drawing.inside(0) == (sorted({r for r, _ in expected}), sorted({c for _, c in expected}))
        assert drawing.mode == "schematic" and drawing.names[0] == "input" and drawing.names[-1] == end
        if name == "gate":  # a broadcast gate sees the whole map: no interval to compare (see the test below)
            continue
        result = rfsweep.analyze(graph, end_point=end)
        rf, jump, start = (result["total"][key] for key in ("rf", "jump", "start"))
        rf, jump, start = (v[0] if isinstance(v, list) else v for v in (rf, jump, start))  # the height axis
        lo, hi = start + drawing.unit[0] * jump - (rf - 1) / 2, start + drawing.unit[0] * jump + (rf - 1) / 2
        rows = drawing.inside(0)[0]
        assert max(lo, 0) <= rows[0] and rows[-1] <= min(hi, graph["input_size"] - 1)


def test_graph_gate_sees_the_whole_input():
    drawing = draw(GRAPHS["gate"], unit=(0, 0))
    assert drawing.inside(0) == (list(range(9)), list(range(9)))


def test_graph_end_point_and_cli(tmp_path, capsys):
    path = tmp_path / "net.json"
    path.write_text(__import__("json").dumps(GRAPHS["residual"]))
    code, out, err = run_cli(capsys, "draw", path, "--end-point", "sum", "-o", tmp_path / "net.png")
    assert code == 0, err
    assert "unit (5, 5) of node 'sum' sees input rows 2..8, cols 2..8" in out  # 5 -+ 3: RF 3 + 2*2
    image = Image.open(tmp_path / "net.png")
    assert image.size[0] == 1000
    for args, message in ((["--end-point", "nope"], "not a node"), (["--mode", "grid"], "schematic"),
                          (["--unit", "0,12"], "outside the map of 'down'")):
        code, _, err = run_cli(capsys, "draw", path, *args, "-o", tmp_path / "x.png")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "draw", "c3x8", "--end-point", "a", "-o", tmp_path / "x.png")
    assert code == 2 and "--end-point" in err


# ---------------------------------------------------------------- size guard and big networks

DILATED = "c3d2x8,c3d4x8,c3d8x8,c3d16x8"


def _suggested(message: str) -> int:
    return int(message.split("--input-size ")[1].split(";")[0])


@pytest.mark.parametrize("out", [None, "rf.gif"])
def test_grid_too_large_is_refused_with_the_largest_size_that_fits(tmp_path, monkeypatch, out):
    drawn = []
    monkeypatch.setattr("rfsweep.draw._render_grid", lambda figure, *args: drawn.append(args))
    target = None if out is None else tmp_path / out
    with pytest.raises(RfsweepError) as refused:
        draw(DILATED, target, input_size=100_000, mode="grid")
    assert drawn == [] and "cells" in str(refused.value) and "--mode schematic" in str(refused.value)
    size = _suggested(str(refused.value))
    assert draw(DILATED, None, input_size=size, mode="grid").mode == "grid"  # it fits ...
    with pytest.raises(RfsweepError):  # ... and one more pixel does not
        draw(DILATED, target, input_size=size + 1, mode="grid")
    assert list(tmp_path.iterdir()) == []


def test_grid_gif_too_large_in_auto_mode_becomes_a_schematic(tmp_path):
    text = ",".join(["c3x8"] * 8)
    assert draw(text, None, input_size=24).mode == "grid"  # one picture fits ...
    drawing = draw(text, tmp_path / "rf.gif", input_size=24)  # ... nine frames of it do not
    assert drawing.mode == "schematic" and Image.open(tmp_path / "rf.gif").n_frames == 9


def test_cli_draw_refuses_a_huge_grid(tmp_path, capsys):
    code, _, err = run_cli(capsys, "draw", DILATED, "--input-size", "100000", "--mode", "grid",
                           "-o", tmp_path / "rf.png")
    assert code == 2 and "the largest input size that fits is --input-size" in err
    assert len(err.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def chain_graph(n: int) -> dict:
    return {"name": f"chain{n}", "input_size": 32, "in_channels": 4, "nodes": [
        {"name": f"stage{i // 100}.block{i % 100}.conv", "type": "conv", "kernel": 3, "out_channels": 4}
        for i in range(n)]}


def fan_in_graph(n: int) -> dict:
    nodes = [{"name": f"branch{i}", "type": "conv", "kernel": 1 + 2 * (i % 4), "out_channels": 1,
              "inputs": ["input"]} for i in range(n)]
    return {"name": f"fan{n}", "input_size": 16, "in_channels": 2,
            "nodes": nodes + [{"name": "cat", "type": "concat", "inputs": [f"branch{i}" for i in range(n)]}]}


def test_a_long_graph_shows_its_widest_path_sampled():
    from rfsweep.draw import MAX_ROWS

    drawing = draw(chain_graph(2_000))
    names = drawing.names
    assert names[0] == "input" and names[-1] == "stage19.block99.conv" and len(names) == MAX_ROWS
    depth = [int(name.split(".")[0][5:]) * 100 + int(name.split(".")[1][5:]) for name in names[1:]]
    gaps = {b - a for a, b in zip(depth, depth[1:])}
    assert max(gaps) - min(gaps) <= 1  # evenly spaced
    ax = drawing.figure.axes[0]
    assert len(ax.get_yticks()) == MAX_ROWS
    assert "rows: the widest path" in drawing.figure._suptitle.get_text()
    assert "chain2000" in drawing.figure._suptitle.get_text()  # the title names the network


def test_a_wide_fan_in_shows_the_branch_that_sets_the_rf():
    drawing = draw(fan_in_graph(600))
    assert drawing.names == ["input", "branch3", "cat"]  # kernel 7: the widest of the 600 branches
    assert drawing.unit == (7, 7) and drawing.inside(0)[0] == list(range(7 - 3, 7 + 4))  # 7 rows round it


def test_abbreviated_labels_keep_where_and_what():
    from rfsweep.draw import abbreviate

    assert abbreviate("block3/unit_6/bottleneck_v1/conv1", 28) == "block3/unit_6/…/conv1"
    assert abbreviate("layer3.5.downsample.0", 16) == "layer3.5.….0"
    assert abbreviate("short", 28) == "short"
    assert all(len(abbreviate(name, 20)) <= 20 for name in ("a" * 40, "a/" * 20 + "b", "x.yyyyyyyyyyyyyyyyyyyyyyyyyy"))


def _inside_figure(figure):
    """Every text and the legend lie inside the figure; the legend does not cover the axes."""
    figure.canvas.draw()  # lay out as when saved
    renderer = figure.canvas.get_renderer()
    box = figure.bbox
    texts = [t for t in figure.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent"))
             if t.get_text() and t.get_visible()]
    assert texts
    for text in texts:
        extent = text.get_window_extent(renderer)
        assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1, text.get_text()
        assert box.y0 - 1 <= extent.y0 and extent.y1 <= box.y1 + 1, text.get_text()
    legend = figure.legends[0].get_window_extent(renderer)
    for ax in figure.axes:
        assert not legend.overlaps(ax.get_window_extent(renderer))


def test_big_network_picture_is_readable():
    from rfsweep.architectures import arch_path

    drawing = draw(arch_path("resnet_v1_50"))
    figure = drawing.figure
    _inside_figure(figure)
    ax = figure.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert any("block3/unit_" in label for label in labels)  # the unit number survives
    top = drawing.sizes[-1]
    assert drawing.unit == ((top[0] - 1) // 2, (top[1] - 1) // 2)  # a central unit
    result = rfsweep.analyze(arch_path("resnet_v1_50"), end_point=drawing.names[-1])
    rf, jump, start = (result["total"][key] for key in ("rf", "jump", "start"))
    centre = start + drawing.unit[0] * jump
    bars = [p for p in ax.patches if (p.get_gid() or "").startswith("bar:")]
    assert len(bars) == len(drawing.names)
    for bar in bars:  # every bar is centred within half a jump of the traced unit's centre
        level = int(bar.get_gid().split(":")[1])
        middle = bar.get_x() + bar.get_width() / 2 - 0.5
        row_jump = result["nodes"][[n["name"] for n in result["nodes"]].index(drawing.names[level])]["jump"] \
            if level else 1
        assert abs(middle - centre) <= (row_jump[0] if isinstance(row_jump, list) else row_jump) / 2
    assert "resnet_v1_50" in figure._suptitle.get_text()


def test_grid_labels_and_legend_stay_clear():
    drawing = draw("c3x8,c3x8,c3x8", None, input_size=7)
    _inside_figure(drawing.figure)
    texts = [t.get_text() for t in drawing.figure.axes[0].texts]
    assert "traced: 3x3 units (each sees 5x5 input pixels)" in texts[2]  # the 3x3 patch is called 3x3
    assert "traced: 5x5 units (each sees 3x3 input pixels)" in texts[1]
    lines = [line for line in drawing.figure.axes[0].lines if line.get_gid() == "projection"]
    cells = [p.get_zorder() for p in drawing.figure.axes[0].patches]
    assert lines and min(line.get_zorder() for line in lines) > max(cells)  # never hidden by a plane


def test_explain_table_of_a_big_graph_elides_the_middle(tmp_path, capsys):
    import json

    path = tmp_path / "chain.json"
    path.write_text(json.dumps(chain_graph(1_000)))
    code, out, err = run_cli(capsys, "explain", path)
    assert code == 0, err
    assert "... 600 rows not shown (--format json" in out
    assert "stage0.block0.conv" in out and "stage9.block99.conv" in out and "stage5.block0.conv " not in out
    code, out, _ = run_cli(capsys, "explain", path, "--format", "json")
    assert code == 0 and len(json.loads(out)["nodes"]) == 1_000


def test_cli_draw_arch_and_torch(tmp_path, capsys):
    from pathlib import Path

    from rfsweep.torch_import import from_torch, load_target

    code, out, err = run_cli(capsys, "draw", "--arch", "resnet_v1_50", "-o", tmp_path / "r50.png")
    assert code == 0, err
    assert "(schematic): unit (3, 3) of node 'block4'" in out
    target = f"{Path(__file__).parents[1] / 'examples' / 'residual_model.py'}:build"
    code, out, err = run_cli(capsys, "draw", "--torch", target, "--input-size", "64", "-o", tmp_path / "t.png")
    assert code == 0, err
    expected = draw(from_torch(load_target(target), 64), name=target)
    rows, cols = expected.inside(0)
    assert f"sees input rows {rows[0]}..{rows[-1]}, cols {cols[0]}..{cols[-1]}" in out
    assert target in expected.figure._suptitle.get_text()  # the title names the model
    for args in (["c3x8", "--arch", "resnet_v1_50"], []):
        code, _, err = run_cli(capsys, "draw", *args, "-o", tmp_path / "x.png")
        assert code == 2 and "exactly one of STACK, --arch NAME or --torch TARGET" in err



@pytest.mark.parametrize("key, value, rows", [
    (None, None, list(range(16))),  # attention: every pixel
    ("window", 2, [4, 5, 6, 7]),  # unit 3's tile: units 2-3, pixels 4-7
    ("period", 2, [2, 3, 6, 7, 10, 11, 14, 15]),  # the units at unit 3's offset: 1, 3, 5, 7
])
def test_attention_footprints(key, value, rows):
    """2x2-stride-2 patches of a 16 px input (8 units), then a global node: unit (3, 3)'s footprint."""
    attn = {"name": "attn", "type": "global", **({key: value} if key else {})}
    graph = {"input_size": 16, "in_channels": 1, "nodes": [
        {"name": "patch", "type": "conv", "kernel": 2, "stride": 2, "out_channels": 2}, attn]}
    drawing = draw(graph, unit=(3, 3), mode="schematic")
    assert drawing.inside(0) == (rows, rows)
