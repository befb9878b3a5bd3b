"""rfsweep.timing, `rfsweep bench`, `rfsweep measure` and `compare --measure`.

The builder is checked against real forward passes (output shape, parameter
count, torch.utils.flop_counter's conv FLOPs); the ratio and GMAC/s
arithmetic against a fake clock that a global forward hook advances by a
seeded, known cost per conv, so the expected medians are exact. Real CPU
timings are only checked to be positive and finite (speed lives in
benchmarks/). CUDA tests skip with "no CUDA device" where torch sees none.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import rfsweep
from rfsweep.errors import RfsweepError
from cli_helpers import run_cli
from test_graph import networks as graph_networks  # random aligned networks: residual, inception, SE, ...

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason='torch not installed: pip install -e ".[torch]"')


def _cuda_available() -> bool:
    if not HAS_TORCH:
        return False
    import torch
    return torch.cuda.is_available()


needs_cuda = pytest.mark.skipif(not _cuda_available(), reason="no CUDA device")
FAST = dict(warmup=1, min_run_time=0.01, max_run_time=0.05)


def _setup(**kw):
    from rfsweep.timing import BenchSetup
    return BenchSetup(**{**FAST, **kw})


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("timing ")]
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------- the builder, against real forward passes

BUILD_CASES = [
    ("c3x8,c3x8,c3x8", 12, 3),
    ("c7s2p3x8,mp3s2p1,c3x8", 17, 3),
    ("c5s2p2d2x6g2nb,ap3s2p1ceil,c1x4", 15, 4),
    ("dw3x4,c1x8", 9, 4),
    ("mp3s2ceil,c3s2x4,ap2ceil", 10, 2),
    ("c1_7p0_3x6,c7_1p3_0x6,mp2", 14, 3),
    ("c3s3p0x4,mp2s1ceil", 11, 3),
]


def _conv_flops(module, x) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    import torch

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops()


@needs_torch
@pytest.mark.parametrize("text,size,c_in", BUILD_CASES)
def test_built_module_matches_the_arithmetic(text, size, c_in):
    """Output shape, parameter count and conv FLOPs of the real module = out_size, params, 2*MACs."""
    import torch
    from rfsweep.timing import build_module

    stack = rfsweep.load_stack(text, size, c_in)
    total = rfsweep.analyze(stack)["total"]
    module = build_module(stack)
    x = torch.randn(2, c_in, size, size)
    out = module(x)
    out_size = total["out_size"] if isinstance(total["out_size"], list) else [total["out_size"]] * 2
    assert tuple(out.shape) == (2, total["out_channels"], *out_size)
    assert sum(p.numel() for p in module.parameters()) == total["params"]
    assert _conv_flops(module, x) == 2 * total["macs"] * 2  # FLOPs = 2 MACs, batch 2
    convs = [m for m in module if isinstance(m, torch.nn.Conv2d)]
    relus = [m for m in module if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == len(convs)
    assert not any(isinstance(m, torch.nn.ReLU) for m in build_module(stack, relu=False))


@st.composite
def random_stacks(draw):
    layers, c = [], draw(st.sampled_from([1, 2, 4, 6]))
    c_in = c
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "maxpool", "avgpool"]))
        k = draw(st.sampled_from([1, 2, 3, 5, [1, 3], [3, 2]]))
        kmin = min(k) if isinstance(k, list) else k
        layer = {"type": kind, "kernel": k, "stride": draw(st.integers(1, 3))}
        if kind == "conv":
            out = draw(st.sampled_from([2, 4, 6]))
            groups = draw(st.sampled_from([g for g in (1, 2) if c % g == 0 and out % g == 0]))
            layer.update(dilation=draw(st.integers(1, 2)), out_channels=out, groups=groups,
                         bias=draw(st.booleans()))
            if draw(st.booleans()):
                layer["padding"] = draw(st.integers(0, 3))
            c = out
        else:
            layer.update(padding=draw(st.integers(0, kmin // 2)), ceil_mode=draw(st.booleans()))
        layers.append(layer)
    h, w = draw(st.integers(3, 20)), draw(st.integers(3, 20))
    return {"layers": layers, "in_channels": c_in, "input_size": [h, w]}


@needs_torch
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_stacks())
def test_random_stacks_build_to_the_arithmetic(data):
    import torch
    from rfsweep.timing import build_module

    h, w = data["input_size"]
    try:
        stack = rfsweep.load_stack(data["layers"], [h, w], data["in_channels"])
        total = rfsweep.analyze(stack)["total"]
    except RfsweepError:
        assume(False)
        return
    module = build_module(stack)
    x = torch.randn(1, data["in_channels"], h, w)
    out = module(x)
    out_size = total["out_size"] if isinstance(total["out_size"], list) else [total["out_size"]] * 2
    assert tuple(out.shape) == (1, total["out_channels"], *out_size)
    assert sum(p.numel() for p in module.parameters()) == total["params"]
    assert _conv_flops(module, x) == 2 * total["macs"]


# ---------------------------------------------------------------- real CPU timings

@needs_torch
def test_cpu_timings_positive_and_finite():
    from rfsweep.timing import bench

    result = bench(["c3x4,c3x4", "c5x4"], _setup(batch=2), input_size=8, in_channels=4)
    assert len(result.rows) == 2
    for row in result.rows:
        for key in ("latency_ms", "gmacs_per_s"):
            assert math.isfinite(row[key]) and row[key] > 0
        assert math.isfinite(row["latency_iqr_ms"]) and row["latency_iqr_ms"] >= 0
        assert row["steps"] >= row["blocks"] >= 1
    env = result.environment
    import torch
    assert env["device"] == "cpu" and env["torch"] == torch.__version__ and env["threads"] >= 1
    assert result.rows[0]["time_ratio"] == 1.0 and result.rows[0]["macs_ratio"] == 1.0


@needs_torch
@pytest.mark.parametrize("options", [{"backward": True}, {"channels_last": True}, {"dtype": "bfloat16"},
                                     {"relu": False, "threads": 1, "rounds": 2}])
def test_cpu_variants_run(options):
    from rfsweep.timing import bench

    row = bench(["c3x4,mp2,c3x4"], _setup(**options), input_size=8, in_channels=4).rows[0]
    assert math.isfinite(row["latency_ms"]) and row["latency_ms"] > 0
    assert row["work_macs"] == row["macs"] * (3 if options.get("backward") else 1)


# ---------------------------------------------------------------- exact arithmetic with a fake clock

class FakeClock:
    """A clock that only moves when a Conv2d runs: by a seeded per-MAC cost and per-launch overhead.

    Costs are dyadic fractions of a second, so sums and differences are exact in float64.
    """

    def __init__(self, seed: int):
        rng = random.Random(seed)
        self.per_mac = rng.randint(1, 8) * 2.0 ** -24     # ~60-480 ns per MAC
        self.per_launch = rng.randint(1, 8) * 2.0 ** -12  # ~0.24-2 ms per conv launch
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def cost(self, conv_macs: list[int]) -> float:
        """Seconds of one step: convs with these MACs (batch included)."""
        return sum(m * self.per_mac + self.per_launch for m in conv_macs)

    def install(self):
        import torch

        def hook(module, inputs, output):
            if isinstance(module, torch.nn.Conv2d):
                c_in = inputs[0].shape[1]
                kh, kw = module.kernel_size
                # MACs from the tensors, not from rfsweep: every output element reads k*k*c_in/groups inputs
                self.now += output.numel() * kh * kw * (c_in // module.groups) * self.per_mac + self.per_launch
        return torch.nn.modules.module.register_module_forward_hook(hook)


@pytest.fixture
def fake_clock(request):
    if not HAS_TORCH:
        pytest.skip('torch not installed: pip install -e ".[torch]"')
    clock = FakeClock(getattr(request, "param", 0))
    handle = clock.install()
    yield clock
    handle.remove()


def _conv_macs(text, size, c_in, batch) -> list[int]:
    """Per-conv MACs by hand: out_h*out_w*c_out*k*k*c_in/groups for the stride-1 'same' convs used here."""
    result = rfsweep.analyze(rfsweep.load_stack(text, size, c_in))
    macs, c = [], c_in
    for layer in result["layers"]:
        if layer["type"] == "conv":
            macs.append(batch * layer["out_size"] ** 2 * layer["out_channels"] * layer["kernel"] ** 2
                        * c // layer["groups"])
        c = layer["out_channels"]
    return macs


@pytest.mark.parametrize("fake_clock", [0, 1, 2], indirect=True)
def test_fake_clock_makes_ratios_and_rates_exact(fake_clock):
    from rfsweep.timing import bench

    stacks = ["c7x8", "c3x8,c3x8,c3x8", "c5x8,c3x8"]
    batch, size = 3, 10
    result = bench(stacks, _setup(batch=batch, min_run_time=0.05, max_run_time=100.0), input_size=size,
                   in_channels=8, timer=fake_clock)
    expected = [fake_clock.cost(_conv_macs(s, size, 8, batch)) for s in stacks]
    macs = [sum(_conv_macs(s, size, 8, 1)) for s in stacks]
    assert len(result.rows) == len(stacks)
    for row, seconds, m in zip(result.rows, expected, macs):
        assert row["macs"] == m
        assert row["latency_ms"] == pytest.approx(seconds * 1e3, rel=1e-12)
        assert row["latency_iqr_ms"] == 0
        assert row["gmacs_per_s"] == pytest.approx(m * batch / seconds / 1e9, rel=1e-12)
        assert row["time_ratio"] == pytest.approx(seconds / expected[0], rel=1e-12)
        assert row["macs_ratio"] == pytest.approx(m / macs[0], rel=1e-15)
        assert row["blocks"] >= 4  # adaptive_autorange needs more than 3 blocks to stop on a small IQR


def test_fake_clock_backward_counts_three_times_the_work(fake_clock):
    from rfsweep.timing import bench

    row = bench(["c3x4,c3x4"], _setup(backward=True, batch=2), input_size=6, in_channels=4,
                timer=fake_clock).rows[0]
    forward = fake_clock.cost(_conv_macs("c3x4,c3x4", 6, 4, 2))  # the hook sees forwards only
    assert row["latency_ms"] == pytest.approx(forward * 1e3, rel=1e-12)
    assert row["gmacs_per_s"] == pytest.approx(3 * row["macs"] * 2 / forward / 1e9, rel=1e-12)


def test_rounds_pool_the_blocks_of_every_round(fake_clock):
    from rfsweep.timing import bench

    one = bench(["c3x4"], _setup(), input_size=6, in_channels=4, timer=fake_clock).rows[0]
    three = bench(["c3x4"], _setup(rounds=3), input_size=6, in_channels=4, timer=fake_clock).rows[0]
    assert three["blocks"] == 3 * one["blocks"] and three["latency_ms"] == one["latency_ms"]


def test_quantiles_match_numpy():
    from rfsweep.timing import Timing

    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 4, 7, 50):
        values = list(rng.exponential(size=n))
        timing = Timing(values, n)
        assert timing.median == pytest.approx(float(np.median(values)), rel=1e-12)
        assert timing.iqr == pytest.approx(float(np.percentile(values, 75) - np.percentile(values, 25)),
                                           rel=1e-12, abs=1e-15)


# ---------------------------------------------------------------- the CLI: bench and compare --measure

FAST_FLAGS = ["--warmup", "1", "--min-time", "0.01", "--max-time", "0.05"]


@needs_torch
def test_bench_cli_json_and_table(capsys):
    code, out, err = run_cli(capsys, "bench", "c5x4", "c3x4,c3x4", "--input-size", "8", "--in-channels", "4",
                             "--format", "json", *FAST_FLAGS)
    assert code == 0, err
    data = json.loads(out)
    assert [row["stack"] for row in data["rows"]] == ["c5p2x4", "c3p1x4,c3p1x4"]
    assert data["environment"]["torch"] and data["environment"]["device"] == "cpu"
    code, out, err = run_cli(capsys, "bench", "c5x4", "c3x4,c3x4", "--input-size", "8", "--in-channels", "4",
                             *FAST_FLAGS)
    assert code == 0, err
    assert "measured on cpu" in out and "threads" in out and "torch" in out
    assert "0.72x MACs" in out  # 2 * 9 / 25


@pytest.fixture
def fast_cli(monkeypatch):
    """The CLI's compare --measure with a short timing budget (it has no --min-time flags)."""
    from dataclasses import replace
    from rfsweep.cli import timing as cli_timing

    real = cli_timing.make_setup
    monkeypatch.setattr(cli_timing, "make_setup", lambda *a, **k: replace(real(*a, **k), **FAST))


@needs_torch
def test_compare_measure_has_one_timed_row_per_candidate(capsys, fast_cli):
    args = ["compare", "--rf", "5", "--channels", "4", "--input-size", "8", "--format", "json"]
    code, plain, err = run_cli(capsys, *args)
    assert code == 0, err
    code, out, err = run_cli(capsys, *args, "--measure", "--batch", "2")
    assert code == 0, err
    plain_rows, rows = json.loads(plain)["rows"], json.loads(out)["rows"]
    assert [r["stack"] for r in rows] == [r["stack"] for r in plain_rows]
    single = next(r for r in rows if r["single"])
    for row in rows:
        assert row["latency_ms"] > 0 and math.isfinite(row["gmacs_per_s"])
        assert row["time_ratio"] == pytest.approx(row["latency_ms"] / single["latency_ms"])
    assert json.loads(out)["timing"]["batch"] == 2
    code, out, err = run_cli(capsys, "compare", "--rf", "5", "--channels", "4", "--input-size", "8", "--measure")
    assert code == 0, err
    assert "median ms" in out and "x time" in out


# ---------------------------------------------------------------- measure

SMALL_SPEC = {"depth": "1-2", "kernel": "1,3", "stride": "1,2", "dilation": "1", "channels": "2,4",
              "input_size": 9, "in_channels": 3}


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "small.parquet"
    rfsweep.run_sweep(rfsweep.GridSpec.build(SMALL_SPEC), path)
    return path


def _read(path):
    import pyarrow.parquet as pq
    return pq.read_table(path), json.loads(pq.read_metadata(path).metadata[b"rfsweep"])


@needs_torch
def test_measure_writes_the_same_rows_plus_times(capsys, small_sweep, tmp_path):
    out = tmp_path / "timed.parquet"
    code, _, err = run_cli(capsys, "measure", small_sweep, "--top", "5", "-o", out, *FAST_FLAGS)
    assert code == 0, err
    source, source_meta = _read(small_sweep)
    timed, meta = _read(out)
    new = ["latency_ms", "latency_iqr_ms", "gmacs_per_s"]
    assert timed.schema.names == source.schema.names + new
    assert timed.select(source.schema.names).equals(source.slice(0, 5))  # same rows, same types, same order
    for name in new:
        values = timed.column(name).to_numpy()
        assert np.isfinite(values).all() and (values[:1 if name == "latency_iqr_ms" else None] >= 0).all()
    assert (timed.column("latency_ms").to_numpy() > 0).all()
    assert meta["spec"] == source_meta["spec"] and meta["version"] == source_meta["version"]
    assert meta["timing"]["device"] == "cpu" and meta["timing"]["rows"] == 5
    assert meta["timing"]["source_counts"] == source_meta["counts"]
    assert not list(tmp_path.glob(".*tmp"))
    # the timed file is a front-like sweep file: pareto and show read it
    front_out = tmp_path / "front.parquet"
    code, out_text, err = run_cli(capsys, "pareto", out, "--minimize", "latency_ms", "--maximize", "rf",
                                  "--format", "json", "-o", front_out)
    assert code == 0, err
    front = json.loads(out_text)["rows"]
    lat = timed.column("latency_ms").to_pylist()
    ids = timed.column("config_id").to_pylist()
    assert ids[lat.index(min(lat))] in [r["config_id"] for r in front]
    assert {r["config_id"] for r in front} <= set(ids)
    code, _, err = run_cli(capsys, "show", out, ids[-1])
    assert code == 0, err


@needs_torch
def test_measure_rebuilds_each_rows_stack(fake_clock, small_sweep, tmp_path):
    """With the fake clock each latency is that row's own conv MACs x cost: rows and stacks match."""
    from rfsweep.timing import measure_file

    result = measure_file(small_sweep, tmp_path / "t.parquet", _setup(batch=2), top=24, sort_by="macs",
                          descending=True, timer=fake_clock)
    table = result.table
    macs = table.column("macs").to_pylist()
    assert macs == sorted(_read(small_sweep)[0].column("macs").to_pylist(), reverse=True)[:24]
    for row, (m, depth, lat) in enumerate(zip(macs, table.column("depth").to_pylist(),
                                               table.column("latency_ms").to_pylist())):
        expected = 2 * m * fake_clock.per_mac + depth * fake_clock.per_launch  # every layer here is a conv
        assert lat == pytest.approx(expected * 1e3, rel=1e-12), row


@needs_torch
def test_measure_top_by_column_and_directory_input(capsys, tmp_path):
    out_dir = tmp_path / "parts"
    rfsweep.run_sweep(rfsweep.GridSpec.build(SMALL_SPEC), out_dir, partitions=2)
    out = tmp_path / "timed.parquet"
    code, _, err = run_cli(capsys, "measure", out_dir, "--top", "3", "--sort-by", "params", "-o", out, *FAST_FLAGS)
    assert code == 0, err
    import pyarrow.dataset as ds
    everything = ds.dataset(str(out_dir), format="parquet").to_table().column("params").to_pylist()
    timed, meta = _read(out)
    assert timed.column("params").to_pylist() == sorted(everything)[:3]
    assert meta["timing"]["sort_by"] == "params" and "spec" in meta


@needs_torch
def test_measure_a_file_with_a_stack_column(capsys, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "stacks.parquet"
    pq.write_table(pa.table({"stack": ["c3x4", "c3x4,c3x4"], "note": ["a", "b"]}), src)
    out = tmp_path / "timed.parquet"
    code, _, err = run_cli(capsys, "measure", src, "--input-size", "8", "--in-channels", "2", "-o", out, *FAST_FLAGS)
    assert code == 0, err
    timed, meta = _read(out)
    assert timed.column("note").to_pylist() == ["a", "b"] and meta["timing"]["input_size"] == [8, 8]
    assert meta["timing"]["in_channels"] == 2


# ---------------------------------------------------------------- bad input: exit 2, one line

@needs_torch
@pytest.mark.parametrize("args,needle", [
    (["bench", "c3x4", "--device", "tpu"], "unknown device 'tpu'"),
    (["bench", "c3x4", "--dtype", "float64"], "--dtype"),
    (["bench", "c3x4", "--batch", "0"], "--batch"),
    (["bench", "c9p0", "--input-size", "4", "--in-channels", "2"], "layer 1"),
    (["bench", "c3x4", "--min-time", "1", "--max-time", "0.5"], "max_run_time"),
    (["measure", "/nonexistent/sweep.parquet", "-o", "x.parquet"], "not found"),
    (["compare", "--rf", "5", "--measure", "--device", "gpu"], "unknown device"),
])
def test_bad_input_exits_2_with_one_line(capsys, args, needle):
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert needle in _one_line(err)


@needs_torch
@pytest.mark.skipif(_cuda_available(), reason="a CUDA device is present")
@pytest.mark.parametrize("command", [["bench", "c3x4"], ["compare", "--rf", "5", "--measure"]])
def test_cuda_without_a_gpu_exits_2(capsys, command):
    code, _, err = run_cli(capsys, *command, "--device", "cuda")
    assert code == 2 and "no CUDA device" in _one_line(err)


@needs_torch
def test_measure_refuses_files_it_cannot_rebuild(capsys, tmp_path, small_sweep):
    import pyarrow as pa
    import pyarrow.parquet as pq

    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"config_id": [1, 2], "params": [3, 4]}), plain)
    code, _, err = run_cli(capsys, "measure", plain, "-o", tmp_path / "o.parquet")
    assert code == 2 and "cannot rebuild the stacks" in _one_line(err)
    staged = tmp_path / "staged.parquet"  # a block-space spec without its stage's width
    pq.write_table(pa.table({"config_id": [1]}).replace_schema_metadata(
        {b"rfsweep": json.dumps({"spec": {"stage": [{"block": ["basic"]}]}}).encode()}), staged)
    code, _, err = run_cli(capsys, "measure", staged, "-o", tmp_path / "o.parquet")
    assert code == 2 and "width" in _one_line(err)
    code, _, err = run_cli(capsys, "measure", small_sweep, "--sort-by", "nope", "-o", tmp_path / "o.parquet")
    assert code == 2 and "nope" in _one_line(err)
    code, _, err = run_cli(capsys, "measure", small_sweep, "-o", tmp_path / "missing" / "o.parquet")
    assert code == 2 and "does not exist" in _one_line(err)
    assert not (tmp_path / "o.parquet").exists()


def test_without_torch_the_commands_name_the_install(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    for args in (["bench", "c3x4"], ["measure", "x.parquet", "-o", "y.parquet"],
                 ["compare", "--rf", "5", "--measure"]):
        code, _, err = run_cli(capsys, *args)
        assert code == 2
        assert 'pip install -e ".[torch]"' in _one_line(err)
    with pytest.raises(RfsweepError, match="not installed"):
        from rfsweep.timing import require_torch
        require_torch()


def test_the_cli_does_not_import_torch():
    code = ("import sys, rfsweep.cli, rfsweep.cli.timing, rfsweep.timing, rfsweep.cli.analysis; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------- CUDA (skipped without a GPU)

@needs_cuda
@pytest.mark.parametrize("options", [{}, {"dtype": "float16", "channels_last": True}, {"backward": True}])
def test_cuda_timings_positive_and_finite(options):
    from rfsweep.timing import bench

    result = bench(["c7x16", "c3x16,c3x16,c3x16"], _setup(device="cuda", batch=4, **options), input_size=16,
                   in_channels=16)
    assert len(result.rows) == 2 and result.environment["cudnn"]
    for row in result.rows:
        assert math.isfinite(row["latency_ms"]) and row["latency_ms"] > 0 and row["gmacs_per_s"] > 0


@needs_cuda
def test_cuda_synchronize_is_honoured():
    """A kernel that spins ~50M GPU cycles (tens of ms) must not be timed near zero (launch time)."""
    import torch
    from rfsweep.timing import time_callable

    setup = _setup(device="cuda").checked()
    timing = time_callable(lambda: torch.cuda._sleep(50_000_000), setup)
    assert timing.median > 5e-3


# ---------------------------------------------------------------- graphs as torch modules

def _pair(value):
    return tuple(value) if isinstance(value, list) else (value, value)


def _shape_matches(tensor, batch, figures):
    """A map is (batch, C, h, w); a head output (batch, C) where rfsweep says 1x1."""
    if tensor.dim() == 2:
        return _pair(figures["out_size"]) == (1, 1) and tuple(tensor.shape) == (batch, figures["out_channels"])
    return tuple(tensor.shape) == (batch, figures["out_channels"], *_pair(figures["out_size"]))


def _run_with_flops(module, x):
    from torch.utils.flop_counter import FlopCounterMode
    import torch

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = module(x)
    return out, counter.get_total_flops()


def check_graph_module(source, end_point=None, batch=2):
    """Real forward passes against rfsweep.analyze: at the end-point (the network cut there) and
    for the whole graph (every node, head included; outputs are the nodes nobody reads)."""
    import torch
    from rfsweep.timing import build_graph_module

    graph = rfsweep.load_graph(source)
    end = end_point or graph.output
    x = torch.randn(batch, graph.in_channels, *graph.input_size)
    cut = rfsweep.analyze(graph, end_point=end)["total"]
    module = build_graph_module(graph, end_point=end).eval()
    out, flops = _run_with_flops(module, x)
    assert _shape_matches(out, batch, cut), (tuple(out.shape), cut["out_size"], cut["out_channels"])
    assert sum(p.numel() for p in module.parameters()) == cut["params"]
    assert flops == 2 * cut["macs"] * batch  # conv + linear FLOPs = 2 MACs per image
    whole = rfsweep.analyze(graph)
    module = build_graph_module(graph).eval()
    out, flops = _run_with_flops(module, x)
    read = {item for node in graph.nodes for item in node["inputs"]}
    sinks = [node["name"] for node in graph.nodes if node["name"] not in read]
    outs = out if isinstance(out, tuple) else (out,)
    assert len(outs) == len(sinks)
    rows = {row["name"]: row for row in whole["nodes"]}
    for tensor, name in zip(outs, sinks):
        assert _shape_matches(tensor, batch, rows[name]), (name, tuple(tensor.shape))
    assert sum(p.numel() for p in module.parameters()) == whole["total"]["params"]
    assert flops == 2 * whole["total"]["macs"] * batch
    return module


def _avg_pools(graph: dict) -> dict:
    """The same geometry with average pools: every tap of every window gets gradient."""
    nodes = [{**node, "type": "avgpool"} if node["type"] == "maxpool" else node for node in graph["nodes"]]
    return {**graph, "nodes": nodes}


def check_rf_by_gradient(source, end_point=None, exact=True):
    """Each probed output unit's input gradient (positive weights) lies exactly on analyze's RF
    interval start + i*jump +- (rf-1)/2: inside it, and (`exact`) reaching both ends where they are
    on the image. Exact ends need every extreme tap to land on real pixels of every intermediate map,
    which small random graphs (a dilated 'SAME' conv on a 1-pixel map) do not give; inside holds always."""
    import torch
    from rfsweep.timing import build_graph_module

    graph = rfsweep.load_graph(source)
    end = end_point or graph.output
    total = rfsweep.analyze(graph, end_point=end)["total"]
    rf, jump, start, size = (_pair(total[k]) for k in ("rf", "jump", "start", "out_size"))
    module = build_graph_module(graph, end_point=end).double().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(0.05)
    # a slice keeps its input's facts (a slice of a concat: the union of all parts), so behind a
    # slice the field only has to contain the gradient's support
    kinds = {node["name"]: node for node in graph.nodes}
    # behind a gate (a global pool broadcast back by mul/add) part of the field does not move with
    # the unit, so start + i*jump holds for unit 0 only
    todo, behind_slice, gated = [end], not exact, False
    while todo:
        node = kinds.get(todo.pop())
        if node is not None:
            behind_slice |= node["type"] == "slice"
            gated |= node["type"] == "global_pool"
            todo += node["inputs"]
    h, w = graph.input_size
    probes = sorted({0, size[0] // 2, size[0] - 1}), sorted({0, size[1] // 2, size[1] - 1})
    if gated:
        probes = [0], [0]
    for i in probes[0]:
        for j in probes[1]:
            x = torch.ones(1, graph.in_channels, h, w, dtype=torch.float64, requires_grad=True)
            out = module(x)
            out[0, :, i, j].sum().backward()  # all channels: a concat's RF is the union of its parts'
            support = (x.grad[0].abs().sum(0) > 0).nonzero()
            bounds = [(start[a] + unit * jump[a] - (rf[a] - 1) / 2, start[a] + unit * jump[a] + (rf[a] - 1) / 2)
                      for a, unit in enumerate((i, j))]
            if len(support) == 0:  # a unit of padding (a pad node's border) sees no pixel
                if not exact:
                    continue
                assert any(hi < 0 or lo > n - 1 for (lo, hi), n in zip(bounds, (h, w))), (end, i, j, bounds)
                continue
            for a, ((lo, hi), n) in enumerate(zip(bounds, (h, w))):
                got_lo, got_hi = support[:, a].min().item(), support[:, a].max().item()
                assert lo <= got_lo and got_hi <= hi, (end, i, j, a, lo, hi, got_lo, got_hi)
                if lo >= 0 and not behind_slice:
                    assert got_lo == lo, (end, i, j, a, lo, got_lo)
                if hi <= n - 1 and not behind_slice:
                    assert got_hi == hi, (end, i, j, a, hi, got_hi)


RESIDUAL = {"input_size": [13, 11], "in_channels": 3, "nodes": [
    {"name": "stem", "type": "conv", "kernel": 3, "stride": 2, "padding": [[0, 1], [1, 1]], "out_channels": 8,
     "bias": False},
    {"name": "stem.bn", "type": "bn"},
    {"name": "a", "type": "conv", "kernel": 3, "out_channels": 8},
    {"name": "a.bn", "type": "bn"},
    {"name": "b", "type": "conv", "kernel": [3, 5], "dilation": [2, 1], "out_channels": 8, "bias": False},
    {"name": "sum", "type": "add", "inputs": ["b", "stem.bn"]},
    {"name": "down", "type": "conv", "inputs": ["stem.bn"], "kernel": 1, "stride": 2, "padding": 0,
     "out_channels": 16},
    {"name": "main", "type": "conv", "inputs": ["sum"], "kernel": 3, "stride": 2, "padding": "same_tf",
     "out_channels": 16},
    {"name": "out", "type": "add", "inputs": ["main", "down"]},
    {"name": "pool", "type": "avgpool", "kernel": 3, "stride": 2, "padding": [[1, 0], [0, 1]], "ceil_mode": True},
]}

INCEPTION = {"input_size": 12, "in_channels": 4, "nodes": [
    {"name": "b1", "type": "conv", "inputs": ["input"], "kernel": 1, "out_channels": 3},
    {"name": "b2a", "type": "conv", "inputs": ["input"], "kernel": [1, 3], "padding": [0, 1], "out_channels": 2},
    {"name": "b2b", "type": "conv", "kernel": [3, 1], "padding": "same_tf", "out_channels": 3},
    {"name": "b3a", "type": "maxpool", "inputs": ["input"], "kernel": 3, "stride": 1, "padding": "same_tf"},
    {"name": "b3b", "type": "conv", "kernel": 1, "out_channels": 2},
    {"name": "b4a", "type": "pad", "inputs": ["input"], "padding": [[1, 1], [2, 0]]},
    {"name": "b4b", "type": "conv", "kernel": 3, "padding": 0, "out_channels": 2},
    {"name": "cat", "type": "concat", "inputs": ["b1", "b2b", "b3b", "b4b"]},
    {"name": "part", "type": "slice", "channels": [2, 7]},
    {"name": "dw", "type": "conv", "kernel": 3, "groups": "depthwise", "out_channels": 5},
    {"name": "cat2", "type": "concat", "inputs": ["dw", "cat"]},
    {"name": "pool", "type": "maxpool", "kernel": 2, "stride": 2, "padding": [[0, 1], [0, 1]], "ceil_mode": True},
]}

SE_GATES = {"input_size": 10, "in_channels": 6, "output": "gated", "nodes": [
    {"name": "conv", "type": "conv", "kernel": 3, "out_channels": 8, "bias": False},
    {"name": "bn", "type": "bn"},
    {"name": "squeeze", "type": "global_pool"},
    {"name": "reduce", "type": "conv", "kernel": 1, "out_channels": 2},
    {"name": "act", "type": "relu"},
    {"name": "expand", "type": "conv", "kernel": 1, "out_channels": 8},
    {"name": "scale", "type": "mul", "inputs": ["bn", "expand"]},
    {"name": "one", "type": "conv", "inputs": ["act"], "kernel": 1, "out_channels": 1},
    {"name": "scale1", "type": "mul", "inputs": ["one", "scale"]},
    {"name": "flat", "type": "flatten", "inputs": ["squeeze"]},
    {"name": "fc_gate", "type": "linear", "out_features": 8, "bias": False},
    {"name": "gated", "type": "mul", "inputs": ["scale1", "fc_gate"]},
    {"name": "head1", "type": "global_pool", "inputs": ["gated"]},
    {"name": "fc1", "type": "linear", "out_features": 5},
    {"name": "flat2", "type": "flatten", "inputs": ["gated"]},
    {"name": "fc2", "type": "linear", "out_features": 3},
]}

SAME_TF = {"input_size": [15, 16], "in_channels": 3, "nodes": [
    {"name": "c1", "type": "conv", "kernel": 3, "stride": 2, "padding": "same_tf", "out_channels": 4},
    {"name": "p1", "type": "maxpool", "kernel": 3, "stride": 2, "padding": "same_tf"},
    {"name": "c2", "type": "conv", "kernel": [5, 2], "stride": [2, 1], "dilation": [1, 2], "padding": "same_tf",
     "out_channels": 4},
    {"name": "p2", "type": "avgpool", "kernel": 2, "stride": 2, "padding": "same_tf"},
]}

HAND_GRAPHS = {"residual": RESIDUAL, "inception": INCEPTION, "se_gates": SE_GATES, "same_tf": SAME_TF}


@needs_torch
@pytest.mark.parametrize("name", sorted(HAND_GRAPHS))
def test_hand_written_graphs_build_to_the_arithmetic(name):
    graph = HAND_GRAPHS[name]
    check_graph_module(graph)
    for node in graph["nodes"][::3]:
        check_graph_module(graph, end_point=node["name"], batch=1)


def test_hand_written_graphs_pad_where_rfsweep_says():
    """The per-side and TF 'SAME' paddings really are asymmetric here, so the gradient test below
    would see a pad on the wrong side."""
    rows = {name: {row["name"]: row for row in rfsweep.analyze(g)["nodes"]} for name, g in HAND_GRAPHS.items()}
    assert rows["same_tf"]["c1"]["padding"] == [[1, 1], [0, 1]]  # 15 -> 8 and 16 -> 8 at stride 2
    assert rows["residual"]["stem"]["padding"] == [[0, 1], [1, 1]]
    assert rows["residual"]["pool"]["padding"] == [[1, 0], [0, 1]]
    assert rows["inception"]["b2b"]["padding"] == [1, 0]  # symmetric: 'SAME' of a 3x1 kernel


@needs_torch
@pytest.mark.parametrize("name", ["residual", "inception", "same_tf", "se_gates"])
def test_hand_written_graphs_see_the_rf_by_gradient(name):
    graph = _avg_pools(HAND_GRAPHS[name])
    ends = [node["name"] for node in graph["nodes"] if node["type"] not in ("global_pool", "flatten", "linear")
            and node["name"] not in ("squeeze", "reduce", "act", "expand", "one")]
    for end in ends:
        check_rf_by_gradient(graph, end)


@needs_torch
def test_se_gate_unit_sees_the_whole_input():
    """A broadcast gate reads every pixel: the gradient of one gated unit covers the input."""
    import torch
    from rfsweep.timing import build_graph_module

    module = build_graph_module(SE_GATES, end_point="scale").double().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(0.05)
    x = torch.ones(1, 6, 10, 10, dtype=torch.float64, requires_grad=True)
    module(x)[0, 0, 0, 0].backward()
    assert (x.grad[0].abs().sum(0) > 0).all()
    assert _pair(rfsweep.analyze(SE_GATES, end_point="scale")["total"]["rf"]) >= (10, 10)


@needs_torch
@pytest.mark.parametrize("arch,size", [("resnet18", 64), ("mobilenet_v2", 64), ("mobilenet_v1", 65),
                                       ("inception_v3", 99)])
def test_catalog_graphs_build_to_the_arithmetic(arch, size):
    from rfsweep.architectures import arch_path

    check_graph_module(rfsweep.load_graph(arch_path(arch), size, None), batch=1)


@needs_torch
def test_resnet18_matches_torchvision_figures():
    """ResNet-18 at 224: torchvision's 11,689,512 parameters and 1.814 GMACs (fvcore's 1.82G)."""
    import torch
    from rfsweep.architectures import arch_path
    from rfsweep.timing import build_graph_module

    with torch.device("meta"):
        module = build_graph_module(arch_path("resnet18"))
    assert sum(p.numel() for p in module.parameters()) == 11_689_512
    assert sum(isinstance(m, torch.nn.Conv2d) for m in module.modules()) == 20
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules()) == 20


@needs_torch
def test_added_relus_follow_each_conv_or_its_bn():
    from rfsweep.torch_builder import _relu_after, build_graph_module

    graph = rfsweep.load_graph(RESIDUAL)
    assert _relu_after(graph) == {"stem.bn", "a.bn", "b", "down", "main"}
    module = build_graph_module(RESIDUAL)
    assert [name for name, relu in zip(module.names, module.relus) if relu] == ["stem.bn", "a.bn", "b", "down",
                                                                               "main"]
    assert not any(build_graph_module(RESIDUAL, relu=False).relus)
    assert not any(build_graph_module(SE_GATES).relus)  # it writes its own relu node
    # a chain graph gets the same ReLUs as the Sequential of the stack
    chain = rfsweep.load_graph("c3x4,mp2,c3x4", 8, 2)
    assert _relu_after(chain) == {"1", "3"}


@needs_torch
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_networks(se=True))
def test_random_graphs_build_to_the_arithmetic(case):
    graph, end = case
    try:
        rfsweep.analyze(graph)
    except RfsweepError:
        assume(False)
        return
    check_graph_module(graph, end_point=end, batch=1)
    row = next(r for r in rfsweep.analyze(graph, end_point=end)["nodes"] if r["name"] == end)
    if row["spatial"]:
        check_rf_by_gradient(_avg_pools(graph), end, exact=False)


@needs_torch
@pytest.mark.parametrize("options", [{"backward": True, "batch": 2}, {"channels_last": True, "dtype": "bfloat16"}])
def test_graphs_time_on_cpu(options):
    from rfsweep.timing import bench

    result = bench([SE_GATES, RESIDUAL], _setup(**options))
    for row, graph in zip(result.rows, (SE_GATES, RESIDUAL)):
        assert math.isfinite(row["latency_ms"]) and row["latency_ms"] > 0
        assert row["macs"] == rfsweep.analyze(graph)["total"]["macs"]
    assert result.rows[0]["stack"] == "graph"


@pytest.mark.parametrize("fake_clock", [3], indirect=True)
def test_fake_clock_times_a_graph_by_its_convs(fake_clock):
    """Every conv of the graph runs once per step (sinks and gates included), nothing else is a conv."""
    from rfsweep.timing import bench

    batch = 3
    row = bench([SE_GATES], _setup(batch=batch, min_run_time=0.05, max_run_time=100.0), timer=fake_clock).rows[0]
    rows = rfsweep.analyze(SE_GATES)["nodes"]
    convs = [r for r in rows if r["type"] == "conv"]
    # MACs per conv by hand from the rows: out_h*out_w*c_out * k*k*c_in/groups
    c_of = {"input": 6, **{r["name"]: r["out_channels"] for r in rows}}
    inputs = {node["name"]: node.get("inputs") for node in SE_GATES["nodes"]}
    prev = "input"
    for node in SE_GATES["nodes"]:
        inputs[node["name"]] = inputs[node["name"]] or [prev]
        prev = node["name"]
    macs = [batch * r["out_size"] ** 2 * r["out_channels"] * r["kernel"] ** 2 * c_of[inputs[r["name"]][0]]
            for r in convs]
    assert row["latency_ms"] == pytest.approx(fake_clock.cost(macs) * 1e3, rel=1e-12)
    assert row["depth"] == 3  # conv -> reduce -> expand (or one): the longest path


@needs_torch
def test_bench_cli_graph_file_and_arch(capsys, tmp_path):
    path = tmp_path / "se_net.json"
    path.write_text(json.dumps(SE_GATES))
    code, out, err = run_cli(capsys, "bench", path, "--arch", "resnet18", "--arch", "mobilenet_v2",
                             "--input-size", "32", "--format", "json", *FAST_FLAGS)
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [row["stack"] for row in rows] == ["se_net", "resnet18", "mobilenet_v2"]
    from rfsweep.architectures import arch_path
    for row, source in zip(rows, (path, arch_path("resnet18"), arch_path("mobilenet_v2"))):
        total = rfsweep.analyze(source, input_size=32)["total"]
        assert (row["macs"], row["params"]) == (total["macs"], total["params"])
        assert row["latency_ms"] > 0
    assert rows[1]["depth"] == 17 and rows[2]["macs_ratio"] == pytest.approx(rows[2]["macs"] / rows[0]["macs"])
    code, out, err = run_cli(capsys, "bench", "--arch", "resnet18", "--input-size", "32", *FAST_FLAGS)
    assert code == 0, err
    assert "resnet18" in out and "network" in out


@needs_torch
@pytest.mark.parametrize("args,needle", [
    (["bench"], "at least one"),
    (["bench", "--arch", "nonet"], "unknown architecture 'nonet'"),
    (["bench", "GRAPH_BAD_TYPE"], "unknown node type 'gelu'"),
    (["bench", "GRAPH_MISALIGNED"], "concat of different spatial sizes"),
])
def test_bench_bad_graphs_exit_2_with_one_line(capsys, tmp_path, args, needle):
    bad = {"GRAPH_BAD_TYPE": {"nodes": [{"name": "c", "type": "conv", "kernel": 3}, {"name": "g", "type": "gelu"}]},
           "GRAPH_MISALIGNED": {"input_size": 8, "nodes": [
               {"name": "a", "type": "conv", "kernel": 3, "stride": 2, "inputs": ["input"]},
               {"name": "b", "type": "conv", "kernel": 3, "inputs": ["input"]},
               {"name": "m", "type": "concat", "inputs": ["a", "b"]}]}}
    resolved = []
    for arg in args:
        if arg in bad:
            path = tmp_path / f"{arg.lower()}.json"
            path.write_text(json.dumps(bad[arg]))
            arg = str(path)
        resolved.append(arg)
    code, _, err = run_cli(capsys, *resolved, *FAST_FLAGS)
    assert code == 2
    assert needle in _one_line(err)


@needs_torch
def test_a_node_the_builder_cannot_run_exits_2_with_one_line(capsys, tmp_path, monkeypatch):
    from rfsweep import torch_builder

    monkeypatch.delitem(torch_builder._NODE_OPS, "mul")  # as if graphs gained a node type the builder lacks
    path = tmp_path / "se.json"
    path.write_text(json.dumps(SE_GATES))
    code, _, err = run_cli(capsys, "bench", path, *FAST_FLAGS)
    assert code == 2
    line = _one_line(err)
    assert "node 'scale'" in line and "cannot run a 'mul' node" in line
    with pytest.raises(RfsweepError, match="node 'scale'"):
        torch_builder.build_graph_module(SE_GATES)


# ---------------------------------------------------------------- measure on block design spaces

BLOCK_SPEC = {"stem": "c3x4nb", "input_size": 12, "in_channels": 3, "stage": [
    {"block": ["basic", "mbconv"], "repeats": [1, 2], "kernel": [3], "stride": [1, 2], "width": [4, 8],
     "expansion": [2]}]}


@pytest.fixture(scope="module")
def block_sweep(tmp_path_factory):
    from rfsweep.blocks import BlockSpec

    path = tmp_path_factory.mktemp("blocks") / "blocks.parquet"
    rfsweep.run_sweep(BlockSpec.build(BLOCK_SPEC), path)
    return path


def _convs_by_hand(block, repeats, stride, width, c_in=4) -> int:
    """Conv layers of a row from its stage columns (torchvision's blocks), the stem's one included."""
    count, c = 1, c_in
    for b in range(repeats):
        s = stride if b == 0 else 1
        if block == "basic":
            count += 2 + (s != 1 or c != width)
        else:  # mbconv, expansion 2: expand, depthwise, project
            count += 3
        c = width
    return count


@needs_torch
def test_measure_block_space_writes_the_same_rows_plus_times(capsys, block_sweep, tmp_path):
    out = tmp_path / "timed.parquet"
    code, _, err = run_cli(capsys, "measure", block_sweep, "--top", "0", "-o", out, *FAST_FLAGS)
    assert code == 0, err
    source, source_meta = _read(block_sweep)
    timed, meta = _read(out)
    assert source.num_rows == 16
    assert timed.schema.names == source.schema.names + ["latency_ms", "latency_iqr_ms", "gmacs_per_s"]
    assert timed.select(source.schema.names).equals(source)
    assert (timed.column("latency_ms").to_numpy() > 0).all()
    assert np.isfinite(timed.column("gmacs_per_s").to_numpy()).all()
    assert meta["spec"] == source_meta["spec"] and meta["timing"]["rows"] == 16
    code, out_text, err = run_cli(capsys, "pareto", out, "--minimize", "latency_ms", "--maximize", "rf",
                                  "--format", "json")
    assert code == 0, err and json.loads(out_text)["rows"]
    code, _, err = run_cli(capsys, "show", out, timed.column("config_id").to_pylist()[-1])
    assert code == 0, err


@pytest.mark.parametrize("fake_clock", [4], indirect=True)
def test_measure_rebuilds_each_block_rows_network(fake_clock, block_sweep, tmp_path):
    """Fake clock: each row's latency is its own MACs x cost + its own number of convs x launch."""
    from rfsweep.timing import measure_file

    table = measure_file(block_sweep, tmp_path / "t.parquet", _setup(batch=2), top=0, timer=fake_clock).table
    columns = {name: table.column(name).to_pylist() for name in table.schema.names}
    for i, lat in enumerate(columns["latency_ms"]):
        convs = _convs_by_hand(str(columns["s1_block"][i]), columns["s1_repeats"][i], columns["s1_stride"][i],
                               columns["s1_width"][i])
        expected = 2 * columns["macs"][i] * fake_clock.per_mac + convs * fake_clock.per_launch
        assert lat == pytest.approx(expected * 1e3, rel=1e-12), i
    macs = columns["macs"]
    assert len(set(macs)) > 4  # rows really differ


@needs_torch
def test_measure_block_space_at_another_input_size(block_sweep, tmp_path):
    from rfsweep.timing import measure_file

    result = measure_file(block_sweep, tmp_path / "t.parquet", _setup(), top=2, input_size=20)
    assert result.timing["input_size"] == [20, 20] and result.rows == 2
