"""Overflow at the edges: params/MACs/FLOPs of huge stacks never wrap silently.

Expected values come from an independent Python-int implementation of the
contract's section 2 (`reference` below), never from rfsweep.analyze.
`explain` must give exact results right up to the edge (totals of 2**61 MACs
= 2**62 FLOPs), and refuse with exit 2 -- naming the layer and saying 64-bit
-- stacks whose totals do not fit int64. `sweep` must refuse grids whose
totals could overflow before doing any work, and a grid just within bounds
must store exact values in wide enough (uint64) columns.
"""

from __future__ import annotations

import json
import math
import time
from math import isqrt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import rfsweep
from rfsweep.cli import main

from cli_helpers import run_cli

INT64_MAX = 2**63 - 1
EDGE = 2**62          # FLOPs at the edge: 2**61 MACs
MAX_FIELD = 1 << 20


def run(capsys, *argv):
    code, out, err = run_cli(capsys, *argv)
    assert "Traceback" not in err, err
    return code, out, err


def strict_json(text):
    """Exactly one JSON object, and real JSON: no NaN/Infinity tokens."""
    def refuse(token):
        raise AssertionError(f"non-JSON token {token} in explain output")
    obj, end = json.JSONDecoder(parse_constant=refuse).raw_decode(text.lstrip())
    assert text.lstrip()[end:].strip() == ""
    return obj


def lenient_json(text):
    obj, end = json.JSONDecoder().raw_decode(text.lstrip())
    assert text.lstrip()[end:].strip() == ""
    return obj


def one_error_line(err):
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


# ================================================================== reference (Python ints)

def pair(value):
    return tuple(value) if isinstance(value, (list, tuple)) else (value, value)


def reference(layers, size, c_in):
    """Contract section 2 with Python ints, per axis. layers: dicts with type, k, s, p, d, c, g, bias
    (pairs or ints). Returns (rows, first_empty) where rows are per-layer dicts with cumulative
    totals; first_empty is the 1-based layer that empties the map (None if none)."""
    n = pair(size)
    rf, jump = [1, 1], [1, 1]
    params = macs = 0
    rows = []
    for index, layer in enumerate(layers, start=1):
        k, s, p, d = pair(layer["k"]), pair(layer["s"]), pair(layer["p"]), pair(layer.get("d", 1))
        new = []
        for axis in (0, 1):
            k_eff = d[axis] * (k[axis] - 1) + 1
            span = n[axis] + 2 * p[axis] - k_eff
            if span < 0:
                return rows, index
            new.append(span // s[axis] + 1)
            rf[axis] += (k_eff - 1) * jump[axis]
            jump[axis] *= s[axis]
        n = tuple(new)
        layer_params = layer_macs = 0
        if layer["type"] == "conv":
            c_out, groups = layer["c"], layer.get("g", 1)
            weights = k[0] * k[1] * (c_in // groups) * c_out
            layer_params = weights + (c_out if layer.get("bias", True) else 0)
            layer_macs = weights * n[0] * n[1]
            c_in = c_out
        params += layer_params
        macs += layer_macs
        rows.append({"out_size": n, "rf": tuple(rf), "jump": tuple(jump), "out_channels": c_in,
                     "layer_params": layer_params, "layer_macs": layer_macs, "layer_flops": 2 * layer_macs,
                     "params": params, "macs": macs, "flops": 2 * macs})
    return rows, None


def fits_int64(row):
    return max(row["flops"], row["params"], *row["rf"], *row["jump"]) <= INT64_MAX


def compact(layers):
    parts = []
    for layer in layers:
        def num(v):
            h, w = pair(v)
            return str(h) if h == w else f"{h}_{w}"
        if layer["type"] == "conv":
            text = f"c{num(layer['k'])}s{num(layer['s'])}p{num(layer['p'])}d{num(layer.get('d', 1))}x{layer['c']}"
            if layer.get("g", 1) != 1:
                text += f"g{layer['g']}"
            if not layer.get("bias", True):
                text += "nb"
        else:
            text = f"{'mp' if layer['type'] == 'maxpool' else 'ap'}{num(layer['k'])}s{num(layer['s'])}p{num(layer['p'])}"
        parts.append(text)
    return ",".join(parts)


def conv(k=1, c=1, s=1, p=0, d=1, g=1, bias=True):
    return {"type": "conv", "k": k, "s": s, "p": p, "d": d, "c": c, "g": g, "bias": bias}


def axis(value):
    """explain prints one number for square stacks, [h, w] otherwise."""
    return list(value) if isinstance(value, list) else [value, value]


def assert_matches(obj, rows):
    assert len(obj["layers"]) == len(rows)
    for got, want in zip(obj["layers"], rows):
        assert axis(got["out_size"]) == list(want["out_size"])
        assert axis(got["rf"]) == list(want["rf"])
        assert axis(got["jump"]) == list(want["jump"])
        assert (got["params"], got["macs"], got["flops"]) == (
            want["layer_params"], want["layer_macs"], want["layer_flops"]), got
    total, last = obj["total"], rows[-1]
    assert (total["params"], total["macs"], total["flops"]) == (last["params"], last["macs"], last["flops"])
    assert axis(total["rf"]) == list(last["rf"]) and axis(total["jump"]) == list(last["jump"])
    assert axis(total["out_size"]) == list(last["out_size"])
    assert total["out_channels"] == last["out_channels"]
    for value in (total["params"], total["macs"], total["flops"]):
        assert type(value) is int


# ================================================================== explain: exact at the edge

def _edge_cases():
    cases = []
    # 1. exactly 2**61 MACs = 2**62 FLOPs
    cases.append(("pow2-edge", [conv(k=1, c=2**19)], 2**11, 2**20))
    # 2. odd channel counts, input chosen so MACs are just below 2**61 (values far above 2**53)
    a, b = 1048573, 1048571
    cases.append(("odd-edge", [conv(k=1, c=b)], isqrt(2**61 // (a * b)), a))
    # 3. four 1x1 layers whose sum is just below 2**61
    chans = [3, 1048575, 1048573, 1048571, 1048569]
    weights = sum(chans[i] * chans[i + 1] for i in range(4))
    cases.append(("deep-edge", [conv(k=1, c=c) for c in chans[1:]], isqrt(2**61 // weights), 3))
    # 4. 3x3 valid convs (output n-2): exact value below its n+2p bound
    a, b = 1048575, 1048573
    n = isqrt(2**61 // (9 * a * b))
    cases.append(("k3-valid", [conv(k=3, c=b)], n, a))
    # 5. grouped and bias-free convs at full width
    cases.append(("groups", [conv(k=1, c=2**20, g=4, bias=False), conv(k=1, c=2**20, g=2**20)],
                  isqrt(2**61 // (2**38 + 2**20)), 2**20))
    # 6. strides up to 2**20 per layer: jump 2**60, within int64
    cases.append(("big-jump", [conv(k=3, s=2**20, p=1, c=1)] * 3, 1, 1))
    return cases


EDGE_CASES = _edge_cases()


@pytest.mark.parametrize("name,layers,size,c_in", EDGE_CASES, ids=[case[0] for case in EDGE_CASES])
def test_explain_exact_up_to_the_edge(capsys, name, layers, size, c_in):
    rows, empty = reference(layers, size, c_in)
    assert empty is None and rows[-1]["flops"] <= EDGE
    if name != "big-jump":
        assert rows[-1]["flops"] > 2**60, "the case should sit near the edge"
    code, out, err = run(capsys, "explain", "--format", "json", "--input-size", size,
                         "--in-channels", c_in, compact(layers))
    assert code == 0, err
    assert_matches(lenient_json(out), rows)


def test_explain_exact_rectangular_json(capsys, tmp_path):
    """Rectangular input and kernels from a JSON file, totals just below 2**61 MACs."""
    a, b = 1048575, 1048573
    h = 1021
    w = 2**61 // (a * b * h)
    layers = [{"type": "conv", "k": (1, 1), "s": 1, "p": 0, "c": b}]
    rows, empty = reference(layers, (h, w), a)
    assert empty is None and 2**60 < rows[-1]["flops"] <= EDGE
    path = tmp_path / "rect.json"
    path.write_text(json.dumps({"input_size": [h, w], "in_channels": a,
                                "layers": [{"type": "conv", "kernel": [1, 1], "padding": 0, "out_channels": b}]}))
    code, out, err = run(capsys, "explain", "--format", "json", path)
    assert code == 0, err
    assert_matches(lenient_json(out), rows)


# ================================================================== explain: refused past int64

OVER_CASES = [
    # name, layers, input size, in channels, first layer whose exact totals exceed int64
    ("one-wide-layer", [conv(k=1, c=2**20)], 2**20, 2**20, 1),
    ("just-above", [conv(k=1, c=2**20)], 2**11 + 1, 2**20, 1),
    ("fourth-layer", [conv(k=1, c=16), conv(k=1, c=16), conv(k=1, c=2**20), conv(k=1, c=2**20)], 2**12, 3, 4),
    ("third-of-three", [conv(k=1, c=16), conv(k=1, c=16), conv(k=3, c=2**20, p=1)], 2**20, 16, 3),
    ("kernel-large", [conv(k=2**10 + 1, c=2**20, p=2**9)], 2**12, 2**20, 1),
    ("jump", [conv(k=1, s=2**20, c=1)] * 4, 1, 1, 4),
]


@pytest.mark.parametrize("name,layers,size,c_in,first_over", OVER_CASES, ids=[case[0] for case in OVER_CASES])
def test_explain_refuses_int64_overflow(capsys, name, layers, size, c_in, first_over):
    rows, empty = reference(layers, size, c_in)
    assert empty is None
    over = next(i for i, row in enumerate(rows, start=1) if not fits_int64(row))
    assert over == first_over
    code, out, err = run(capsys, "explain", "--format", "json", "--input-size", size,
                         "--in-channels", c_in, compact(layers))
    assert code == 2, f"exit {code}, stdout {out[:300]!r}"
    line = one_error_line(err)
    assert "64-bit" in line or "overflow" in line.lower(), line
    assert "layer " in line
    index = int(line.split("layer ", 1)[1].split()[0].rstrip(":,)"))
    # a conservative bound may name an earlier layer, never a later one; here the earlier
    # layers are tiny, so it must be exactly the first overflowing layer
    assert index == first_over, line
    assert out == ""


def test_explain_refuses_overflow_from_json_file(capsys, tmp_path):
    path = tmp_path / "wide.json"
    path.write_text(json.dumps({"input_size": [2**20, 2**20], "in_channels": 2**20,
                                "layers": [{"type": "maxpool", "kernel": 2},
                                           {"type": "conv", "kernel": 3, "out_channels": 2**20}]}))
    code, out, err = run(capsys, "explain", "--format", "json", path)
    assert code == 2
    line = one_error_line(err)
    assert "layer 2" in line and ("64-bit" in line or "overflow" in line.lower()), line


# property: whatever the stack, exact or refused -- never wrapped

layer_strategy = st.one_of(
    st.builds(lambda k, s, p, d, c: conv(k=k, s=s, p=min(p, MAX_FIELD), d=d, c=c),
              k=st.sampled_from([1, 2, 3, 5, 1025]), s=st.sampled_from([1, 2, 3, 1024, 2**20]),
              p=st.sampled_from([0, 1, 2, 512, 2**20]), d=st.sampled_from([1, 2, 1024]),
              c=st.sampled_from([1, 3, 1023, 65537, 1048575, 2**20])),
    st.builds(lambda k, s, kind: {"type": kind, "k": k, "s": s, "p": k // 2},
              k=st.sampled_from([1, 2, 3, 1024]), s=st.sampled_from([1, 2, 2**20]),
              kind=st.sampled_from(["maxpool", "avgpool"])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layers=st.lists(layer_strategy, min_size=1, max_size=5),
       size=st.sampled_from([1, 7, 224, 4097, 2**20]), c_in=st.sampled_from([1, 3, 2**20 - 1, 2**20]))
def test_explain_exact_or_refused(capsys, layers, size, c_in):
    rows, empty = reference(layers, size, c_in)
    overflow = any(not fits_int64(row) for row in rows)
    code, out, err = run(capsys, "explain", "--format", "json", "--input-size", size,
                         "--in-channels", c_in, compact(layers))
    assert code in (0, 2), err
    if code == 0:
        event("exact")
        assert empty is None and not overflow
        assert_matches(lenient_json(out), rows)
        return
    event("refused: overflow" if overflow else "refused: empty map" if empty else "refused: bound only")
    line = one_error_line(err)
    assert "layer " in line, line
    if "output size" in line:  # an arithmetic refusal must agree with the reference
        assert f"layer {empty} " in line or f"layer {empty}:" in line, (line, empty)
    else:
        assert "64-bit" in line or "overflow" in line.lower(), line


def test_explain_huge_rf_keeps_erf_finite(capsys):
    """rf above 2**32 (strides of 2**20): erf_ratio needs rf*rf, which must not wrap to NaN."""
    layers = [conv(k=3, s=2**20, p=1, c=1)] * 3
    rows, _ = reference(layers, 1, 1)
    rf = rows[-1]["rf"][0]
    assert rf > 2**32
    code, out, err = run(capsys, "explain", "--format", "json", "--input-size", 1, "--in-channels", 1,
                         compact(layers))
    assert code == 0, err
    obj = strict_json(out)
    total = obj["total"]
    assert total["rf"] == rf
    expected = total["erf_std"] / math.sqrt((rf * rf - 1) / 12)
    assert math.isfinite(total["erf_ratio"]) and total["erf_ratio"] == pytest.approx(expected, rel=1e-6)


# ================================================================== sweep: refused before any work

HUGE = ["--channels", "1048576", "--input-size", "1048576", "--depth", "1-8"]


@pytest.mark.parametrize("extra", [[], ["--dry-run"]], ids=["run", "dry-run"])
def test_sweep_overflowing_spec_refused_before_work(capsys, tmp_path, extra):
    out_path = tmp_path / "out.parquet"
    start = time.perf_counter()
    code, out, err = run(capsys, "sweep", *HUGE, *extra, "-o", out_path)
    assert code == 2
    assert time.perf_counter() - start < 5
    line = one_error_line(err)
    assert "64-bit" in line or "overflow" in line.lower(), line
    assert list(tmp_path.iterdir()) == []  # no file, no temporary left behind


def test_sweep_overflow_keeps_previous_file(capsys, tmp_path):
    out_path = tmp_path / "out.parquet"
    out_path.write_bytes(b"previous contents")
    code, out, err = run(capsys, "sweep", *HUGE, "-o", out_path)
    assert code == 2
    assert out_path.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


def test_sweep_overflowing_toml_spec_refused(capsys, tmp_path):
    spec = tmp_path / "huge.toml"
    spec.write_text('depth = "1-8"\nchannels = [1048576]\ninput_size = 1048576\n')
    code, out, err = run(capsys, "sweep", "--spec", spec, "-o", tmp_path / "out.parquet")
    assert code == 2
    line = one_error_line(err)
    assert "64-bit" in line or "overflow" in line.lower(), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.toml"]


def test_sweep_overflowing_api_spec_refused():
    with pytest.raises(rfsweep.RfsweepError, match="64-bit"):
        rfsweep.GridSpec.build({"channels": "1048576", "input_size": 1048576, "depth": "1-8"})


# ================================================================== sweep: exact just within bounds

EDGE_SPEC = dict(types=["conv", "maxpool"], depth=[1, 2], kernel=[1, 3], stride=[1, 2], dilation=[1],
                 padding=["same"], channels=[1048573, 1048571], input_size=331, in_channels=3)
EDGE_ARGS = ["--types", "conv,maxpool", "--depth", "1-2", "--kernel", "1,3", "--stride", "1,2",
             "--dilation", "1", "--padding", "same", "--channels", "1048573,1048571",
             "--input-size", "331", "--in-channels", "3"]


def my_bound(spec):
    """Contract-level upper bound of FLOPs: every layer at the largest k, c and n + 2p."""
    pad = max((spec["dilation"][-1] * (k - 1)) // 2 for k in spec["kernel"])
    c = max(spec["in_channels"], *spec["channels"])
    k = max(spec["kernel"])
    n, macs = spec["input_size"], 0
    for _ in range(max(spec["depth"])):
        n += 2 * pad
        macs += k * k * c * c * n * n
    return 2 * macs


def decode(spec, config_id):
    """Contract section 4, independently: depth-major, layer 1 most significant, channels fastest."""
    lists = [spec["types"], spec["kernel"], spec["stride"], spec["dilation"], spec["padding"], spec["channels"]]
    radix = math.prod(len(x) for x in lists)
    base = 0
    for depth in spec["depth"]:
        if config_id < base + radix**depth:
            break
        base += radix**depth
    rel = config_id - base
    digits = []
    for _ in range(depth):
        rel, digit = divmod(rel, radix)
        digits.append(digit)
    layers = []
    for digit in reversed(digits):
        idx = []
        for choices in reversed(lists):
            digit, i = divmod(digit, len(choices))
            idx.append(i)
        t, k, s, d, p, c = (choices[i] for choices, i in zip(lists, reversed(idx)))
        d_used = d if t == "conv" else 1
        pad = d_used * (k - 1) // 2 if p == "same" else 0 if p == "valid" else p
        layers.append({"type": t, "k": k, "s": s, "p": pad, "d": d_used, "c": c,
                       "pool_dup": t != "conv" and (idx[0] != 0 or idx[2] != 0)})
    return depth, base, radix, layers


def reference_of_row(spec, config_id):
    """(depth, decoded layers, last layer of the Python-int reference) of one sweep row."""
    depth, _, _, layers = decode(spec, config_id)
    c_in, resolved = spec["in_channels"], []
    for layer in layers:
        if layer["type"] != "conv":  # pools keep their input's channels
            layer = {**layer, "c": c_in}
        resolved.append(layer)
        c_in = layer["c"]
    ref, empty = reference(resolved, spec["input_size"], spec["in_channels"])
    assert empty is None
    return depth, layers, ref[-1]


@pytest.fixture(scope="module")
def edge_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("edge") / "edge.parquet"
    try:
        main(["sweep", *EDGE_ARGS, "-q", "-o", str(out)])
    except SystemExit as exc:
        assert exc.code in (0, None), f"edge spec refused (exit {exc.code})"
    return out, pq.read_table(out)


def test_edge_spec_is_near_the_edge():
    bound = my_bound(EDGE_SPEC)
    assert 2**61 < bound <= EDGE, bound
    rfsweep.GridSpec.build({key: (",".join(map(str, v)) if isinstance(v, list) else v)
                            for key, v in EDGE_SPEC.items()})  # accepted


def test_sweep_edge_values_exact(edge_sweep):
    path, table = edge_sweep
    rows = table.to_pylist()
    assert rows, "nothing written"
    meta = json.loads(pq.read_metadata(path).metadata[b"rfsweep"])
    radix = 2 * 2 * 2 * 1 * 1 * 2
    assert meta["counts"]["enumerated"] == radix + radix**2
    biggest = 0
    for row in rows:
        depth, layers, last = reference_of_row(EDGE_SPEC, row["config_id"])
        assert not any(layer["pool_dup"] for layer in layers)
        assert row["depth"] == depth
        for name in ("params", "macs", "flops"):
            assert row[name] == last[name], (row["config_id"], name, row[name], last[name])
            assert type(row[name]) is int
        assert (row["rf"], row["jump"], row["out_size"]) == (last["rf"][0], last["jump"][0], last["out_size"][0])
        assert row["out_channels"] == last["out_channels"]
        # per-layer columns agree with the decoded stack
        for i, layer in enumerate(layers, start=1):
            assert row[f"l{i}_kernel"] == layer["k"] and row[f"l{i}_stride"] == layer["s"]
            assert row[f"l{i}_padding"] == layer["p"]
        biggest = max(biggest, row["flops"])
    assert biggest > 2**60, "the grid should reach values near the edge"


def test_sweep_edge_rows_via_stack_of(edge_sweep):
    """stack_of rebuilds each row's stack; a Python-int formula on it gives the row's totals."""
    path, table = edge_sweep
    ids = table.column("config_id").to_pylist()
    values = {name: table.column(name).to_pylist() for name in ("params", "macs", "flops", "rf")}
    picks = sorted({0, len(ids) // 3, len(ids) // 2, len(ids) - 1,
                    int(np.argmax(values["flops"])), int(np.argmin(values["flops"]))})
    for pos in picks:
        stack = rfsweep.stack_of(path, ids[pos])
        layers = [{"type": layer.type, "k": layer.kernel, "s": layer.stride, "p": layer.padding,
                   "d": layer.dilation, "c": layer.out_channels, "g": layer.groups, "bias": layer.bias}
                  for layer in stack.layers]
        ref, empty = reference(layers, stack.input_size, stack.in_channels)
        assert empty is None
        for name in ("params", "macs", "flops"):
            assert values[name][pos] == ref[-1][name], (ids[pos], name)
        assert values["rf"][pos] == ref[-1]["rf"][0]


def test_sweep_edge_show_agrees(capsys, edge_sweep):
    """`show` re-explains a row near the edge: same exact totals, not refused."""
    path, table = edge_sweep
    flops = table.column("flops").to_pylist()
    pos = int(np.argmax(flops))
    config_id = table.column("config_id")[pos].as_py()
    code, out, err = run(capsys, "show", "--format", "json", path, config_id)
    assert code == 0, err
    total = lenient_json(out)["total"]
    for name in ("params", "macs", "flops"):
        assert total[name] == table.column(name)[pos].as_py()


def test_sweep_edge_column_types(edge_sweep):
    _, table = edge_sweep
    schema = table.schema
    assert schema.field("config_id").type == pa.uint64()
    bound = my_bound(EDGE_SPEC)
    for name in ("params", "macs", "flops"):
        kind = schema.field(name).type
        assert pa.types.is_integer(kind), (name, kind)
        assert kind == pa.uint64(), (name, kind)
    for name in ("macs", "flops"):
        assert np.iinfo(schema.field(name).type.to_pandas_dtype()).max >= bound


@pytest.mark.parametrize("spec", [
    dict(types=["conv"], depth=[1, 2, 3], kernel=[1, 3, 5], stride=[1, 2], dilation=[1, 2],
         padding=["same"], channels=[16, 64], input_size=64, in_channels=3),
    dict(types=["conv", "avgpool"], depth=[1, 2, 3], kernel=[3, 7], stride=[1, 2], dilation=[1],
         padding=["valid", 1], channels=[255, 256], input_size=250, in_channels=255),
], ids=["small", "narrow-edges"])
def test_sweep_narrow_columns_exact(tmp_path, spec):
    """Narrow column types (the smallest that fits the bound) must never wrap."""
    out = tmp_path / "s.parquet"
    grid = rfsweep.GridSpec.build(spec)
    rfsweep.write_range(grid, out)
    table = pq.read_table(out)
    bound = my_bound(spec) if spec["padding"] == ["same"] else None
    for name in ("params", "macs", "flops", "rf", "jump", "out_size"):
        kind = table.schema.field(name).type
        assert pa.types.is_unsigned_integer(kind) or pa.types.is_signed_integer(kind)
    if bound is not None:
        assert np.iinfo(table.schema.field("flops").type.to_pandas_dtype()).max >= bound
    rows = table.to_pylist()
    assert rows
    for row in rows[:: max(1, len(rows) // 400)]:
        _, _, last = reference_of_row(spec, row["config_id"])
        assert (row["params"], row["macs"], row["flops"]) == (last["params"], last["macs"], last["flops"])
        assert (row["rf"], row["jump"], row["out_size"]) == (last["rf"][0], last["jump"][0], last["out_size"][0])


# ================================================================== monotonic along prefixes

def _check_prefix_monotone(spec, table):
    cols = {name: table.column(name).to_pylist() for name in ("config_id", "depth", "params", "macs", "flops", "rf")}
    by_id = {cid: i for i, cid in enumerate(cols["config_id"])}
    checked = 0
    for i, cid in enumerate(cols["config_id"]):
        depth, base, radix, _ = decode(spec, cid)
        if depth - 1 not in spec["depth"]:
            continue
        prev_base = base - radix ** (depth - 1)
        prefix = prev_base + (cid - base) // radix
        assert prefix in by_id, f"prefix {prefix} of valid stack {cid} missing"
        j = by_id[prefix]
        assert cols["depth"][j] == depth - 1
        for name in ("params", "macs", "flops", "rf"):
            assert cols[name][i] >= cols[name][j], (name, cid, prefix)
        checked += 1
    assert checked > 0


def test_sweep_edge_monotone_along_prefixes(edge_sweep):
    _check_prefix_monotone(EDGE_SPEC, edge_sweep[1])


def test_sweep_deeper_monotone_along_prefixes(tmp_path):
    spec = dict(types=["conv", "maxpool"], depth=[1, 2, 3], kernel=[1, 3], stride=[1, 2], dilation=[1, 2],
                padding=["same"], channels=[65535, 65521], input_size=509, in_channels=3)
    out = tmp_path / "deep.parquet"
    rfsweep.write_range(rfsweep.GridSpec.build(spec), out)
    table = pq.read_table(out)
    assert max(table.column("flops").to_pylist()) > 2**53
    _check_prefix_monotone(spec, table)


# ================================================================== other 64-bit edges

def test_sweep_huge_rf_keeps_erf_finite(capsys, tmp_path):
    """rf above 2**32 in a sweep (strides 2**20): erf_ratio must stay finite, as in explain."""
    out = tmp_path / "rf.parquet"
    code, _, err = run(capsys, "sweep", "--depth", "3", "--kernel", "3", "--stride", "1048576", "--dilation", "1",
                       "--channels", "1", "--in-channels", "1", "--input-size", "1", "-q", "-o", out)
    assert code == 0, err
    table = pq.read_table(out)
    rf = table.column("rf").to_pylist()
    assert max(rf) > 2**32
    ratio = np.asarray(table.column("erf_ratio").to_numpy(), dtype=np.float64)
    assert np.isfinite(ratio).all(), ratio
    # sparse footprints (taps 2**20 apart) spread more than a uniform window: ratio sqrt(2) here
    assert (ratio > 0).all(), ratio


@pytest.mark.parametrize("flag,value", [("--max-params", 10**30), ("--max-macs", 2**63), ("--max-rf", 2**64),
                                        ("--min-rf", 2**63), ("--min-out-size", 10**20)])
def test_sweep_limit_beyond_int64(capsys, tmp_path, flag, value):
    """A limit past int64 is either refused (2) or means 'no limit' / 'nothing passes' -- never exit 1."""
    out = tmp_path / "lim.parquet"
    code, _, err = run(capsys, "sweep", "--depth", "1", "--kernel", "1,3", "--channels", "8", flag, value,
                       "-q", "-o", out)
    assert code in (0, 2), err
    if code == 2:
        assert flag.lstrip("-").replace("-", "_") in err or flag in err, err
        assert not out.exists()
    else:
        counts = json.loads(pq.read_metadata(out).metadata[b"rfsweep"])["counts"]
        written = counts["written"]
        if flag.startswith("--max"):
            assert written == counts["enumerated"] - counts["invalid"]
        else:
            assert written == 0
