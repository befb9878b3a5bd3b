"""rfsweep.report: the page is opened in a real headless Chromium (Debian's `chromium`).

Checked there, after its JavaScript ran: no script errors, no network
requests (file:// URL, every host unresolvable, a dead proxy), as many front
points drawn as `rfsweep pareto` finds, a click on a front point shows that
stack's explain table, the table sorts, and a screenshot shows the red front.
Chromium is required, not optional: CI installs it (a missing browser fails).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import rfsweep
from rfsweep.grid import load_spec
from rfsweep.report import build_report, write_report
from rfsweep.sweep import run_sweep, stack_of
from cli_helpers import run_cli

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
FRONT_RGB = (0xd6, 0x27, 0x28)


def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is needed for the report tests: apt-get install -y chromium")


def run_browser(tmp: Path, url: str, *args: str, timeout: int = 180) -> str:
    """Headless Chromium, offline: a fresh profile, no background traffic, every host unresolvable."""
    command = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-extensions", "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'profile'}",
               "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
               "--virtual-time-budget=20000", *args, url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A small sweep with strides, dilations and ties: depth 1-3, kernels 1,3,5, 16x16 input."""
    out = tmp_path_factory.mktemp("sweep") / "small.parquet"
    spec = load_spec(None, {"depth": "1-3", "kernel": "1,3,5", "stride": "1,2", "dilation": "1,2",
                            "channels": "4,8", "input_size": 16, "in_channels": 3})
    run_sweep(spec, out)
    return out


@pytest.fixture(scope="module")
def page(sweep, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    info = write_report(sweep, out)
    return out, info


class _Status(HTMLParser):
    """The attributes of #rfsweep-status and #explain, and the top table's first column, in a dumped DOM."""

    def __init__(self):
        super().__init__()
        self.status, self.explain, self.first_column, self._cell = {}, {}, [], None
        self._in_rows = False
        self._explain_text, self._in_explain = [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id") == "rfsweep-status":
            self.status = attrs
        if attrs.get("id") == "explain":
            self.explain, self._in_explain = attrs, True
        if attrs.get("id") == "top-rows":
            self._in_rows = True
        if self._in_rows and tag == "tr":
            self._cell = 0
        elif self._in_rows and tag == "td" and self._cell is not None:
            self._cell += 1
            if self._cell == 1:
                self.first_column.append(attrs.get("data-v"))

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_rows = False
        if tag == "div" and self._in_explain:
            self._in_explain = False

    def handle_data(self, data):
        if self._in_explain:
            self._explain_text.append(data)


def dump(tmp: Path, html_path: Path) -> _Status:
    parser = _Status()
    parser.feed(run_browser(tmp, html_path.resolve().as_uri(), "--dump-dom"))
    parser.explain_text = " ".join(parser._explain_text)
    return parser


def pareto_count(capsys, sweep, cost: str) -> int:
    code, out, err = run_cli(capsys, "pareto", sweep, "--minimize", cost, "--maximize", "rf", "--format", "json")
    assert code == 0, err
    return json.loads(out)["front_rows"]


def test_page_loads_without_errors_and_draws_the_exact_fronts(sweep, page, tmp_path, capsys):
    html_path, info = page
    status = dump(tmp_path, html_path).status
    assert status.get("data-ready") == "1", status
    assert status.get("data-errors") == "0", status
    assert status.get("data-resources") == "0"  # nothing fetched: everything is inline
    n_params, n_macs = pareto_count(capsys, sweep, "params"), pareto_count(capsys, sweep, "macs")
    assert n_params > 5 and n_macs > 5
    assert int(status["data-front-params"]) == n_params == info["front_params"]
    assert int(status["data-front-macs"]) == n_macs == info["front_macs"]


def test_page_is_self_contained(page):
    html_path, info = page
    text = html_path.read_text()
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc\s*=", text, re.I)
    assert not re.search(r"<link[^>]*href\s*=", text, re.I)
    assert "Plotly.newPlot" in text and text.count("<!DOCTYPE html>") == 1
    assert info["bytes"] == len(html_path.read_bytes()) < 5_000_000
    assert [p.name for p in html_path.parent.iterdir()] == ["report.html"]  # no temporary file left


def test_click_shows_the_explain_table_and_headers_sort(sweep, page, tmp_path):
    html_path, info = page
    text = html_path.read_text()
    data = json.loads(re.search(r'<script type="application/json" id="rfsweep-data">(.*?)</script>', text,
                                re.S).group(1))
    best = max(data["explain"], key=lambda key: data["explain"][key]["rows"][-1][9])  # widest RF
    stack = stack_of(sweep, int(best))
    expected = rfsweep.analyze(stack)
    # what a click on that front point does: plotly emits plotly_click with the point's customdata
    probe = f"""<script>
    window.addEventListener('load', function () {{ setTimeout(function () {{
      var gd = document.getElementById('front-params');
      gd.emit('plotly_click', {{points: [{{customdata: {int(best)}}}]}});
      document.querySelector('#top-rows th[data-col="0"]').click();
      document.querySelector('#top-rows th[data-col="0"]').click();
    }}, 10); }});
    </script></body>"""
    clicked = tmp_path / "clicked.html"
    clicked.write_text(text.replace("</body>", probe))
    result = dump(tmp_path, clicked)
    assert result.status.get("data-errors") == "0"
    assert result.explain.get("data-shown") == best
    assert stack.compact() in result.explain_text
    for row in expected["layers"]:  # every layer's RF and MACs of that stack are in the panel
        assert f"{row['macs']:,}" in result.explain_text
    assert f"{expected['total']['rf']}" in result.explain_text
    ids = [int(v) for v in result.first_column]
    assert ids == sorted(ids, reverse=True) and len(ids) == min(50, info["front_params"])  # clicked twice


def test_screenshot_shows_the_front(page, tmp_path):
    html_path, _ = page
    shot = tmp_path / "shot.png"
    run_browser(tmp_path, html_path.resolve().as_uri(), f"--screenshot={shot}", "--window-size=1280,1400",
                "--hide-scrollbars")
    image = np.asarray(Image.open(shot).convert("RGB"), np.int16)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    red = np.all(np.abs(image - FRONT_RGB) < 12, axis=-1).sum()
    assert red > 200  # the front's red markers were drawn


def test_front_rows_and_explain_tables_match_analyze(sweep, page):
    html_path, info = page
    page_text, summary = build_report(sweep)
    assert summary["front_params"] == info["front_params"]
    data = json.loads(re.search(r'id="rfsweep-data">(.*?)</script>', page_text, re.S).group(1))
    assert len(data["explain"]) == info["explained"] > 0
    for key, entry in list(data["explain"].items())[:20]:
        stack = stack_of(sweep, int(key))
        result = rfsweep.analyze(stack)
        assert entry["stack"] == stack.compact()
        total = entry["rows"][-1]
        assert total[9] == result["total"]["rf"] and total[11] == result["total"]["params"]


def test_default_top_and_compare_sections(page):
    html_path, info = page
    text = html_path.read_text()
    assert info["compared_rfs"] and all(f"RF {rf} (" in text for rf in info["compared_rfs"])
    assert "Counts and spec" in text and "enumerated" in text


# ---------------------------------------------------------------- bad input

def test_cli_report(sweep, tmp_path, capsys):
    code, out, err = run_cli(capsys, "report", sweep, "-o", tmp_path / "r.html", "--top", "5")
    assert code == 0, err
    assert out.startswith(f"wrote {tmp_path / 'r.html'}")
    assert (tmp_path / "r.html").read_text().count("<tr data-id=") == 5


@pytest.mark.parametrize("case,message", [
    ("missing", "not found"),
    ("garbage", "not a readable Parquet"),
    ("no_dir", "output directory does not exist"),
    ("extension", "give OUT a .html name"),
])
def test_cli_report_bad_input(sweep, tmp_path, capsys, case, message):
    source, out = sweep, tmp_path / "r.html"
    if case == "missing":
        source = tmp_path / "nope.parquet"
    elif case == "garbage":
        source = tmp_path / "garbage.parquet"
        source.write_bytes(b"PAR1 this is not parquet" * 10)
    elif case == "no_dir":
        out = tmp_path / "missing" / "r.html"
    else:
        out = tmp_path / "r.png"
    code, _, err = run_cli(capsys, "report", source, "-o", out)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_plotly_names_the_extra(sweep, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    code, _, err = run_cli(capsys, "report", sweep, "-o", tmp_path / "r.html")
    assert code == 2 and 'pip install -e ".[plot]"' in err and len(err.strip().splitlines()) == 1


def test_the_error_probe_sees_script_errors(page, tmp_path):
    """The no-errors check can fail: a page with a broken script reports it."""
    html_path, _ = page
    broken = tmp_path / "broken.html"
    broken.write_text(html_path.read_text().replace("</body>", "<script>notAFunction();</script></body>"))
    status = dump(tmp_path, broken).status
    assert status.get("data-ready") == "1" and int(status["data-errors"]) >= 1
    assert "notAFunction" in run_browser(tmp_path, broken.resolve().as_uri(), "--dump-dom")


def test_block_space_sweep_report(tmp_path, capsys):
    """A block/stage sweep (no chain grid): fronts and distributions still, and the panel says how to explain."""
    spec = Path(__file__).parents[1] / "data" / "resnet18_space.toml"
    sweep_path = tmp_path / "blocks.parquet"
    code, _, err = run_cli(capsys, "sweep", "--spec", spec, "-o", sweep_path, "-q")
    assert code == 0, err
    out = tmp_path / "blocks.html"
    info = write_report(sweep_path, out)
    assert info["front_params"] == pareto_count(capsys, sweep_path, "params") and info["explained"] == 0
    status = dump(tmp_path, out).status
    assert status.get("data-ready") == "1" and status.get("data-errors") == "0"
    assert int(status["data-front-params"]) == info["front_params"]
    assert info["bytes"] < 5_000_000 and "rfsweep show" in out.read_text()
    text = out.read_text()
    spec_part = text.split("<h2>Counts and spec</h2>")[1].split("<h2>")[0]
    assert "[{" not in spec_part and "{&quot;" not in spec_part  # the stages are a table, not raw JSON
    assert "<table class='rows nested'>" in spec_part
    assert "Stacks against one large kernel" not in text  # a comparison of chains does not apply
    head = text.split("id='top-rows'")[1].split("</thead>")[0]
    assert ">stack<" not in head  # no empty column
    figures = _figures(text)
    assert len(figures["dist-rf"]["data"]) <= 6 and len(figures["dist-params"]["data"]) <= 6
    for trace in figures["dist-rf"]["data"]:  # a cumulative share: never goes down, ends at 1
        share = _values(trace["y"])
        assert np.all(np.diff(share) >= 0) and abs(share[-1] - 1) < 1e-9
    assert figures["front-params"]["data"][0]["name"] == f"random sample of {info['sample']:,} rows"
    assert figures["front-params"]["layout"]["xaxis"]["dtick"] == 1  # decades only, no minor labels
    assert figures["dist-params"]["layout"]["yaxis"]["dtick"] == 1


def _figures(text: str) -> dict:
    """The plotly figure JSON of every div on the page, by div id."""
    out = {}
    for match in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{"displaylogo"', text, re.S):
        out[match.group(1)] = {"data": json.loads(match.group(2)), "layout": json.loads(match.group(3))}
    return out


def _values(array) -> np.ndarray:
    """A plotly array: a plain list, or a typed array {"dtype", "bdata"} (base64)."""
    import base64

    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array, dtype=float)


# ---------------------------------------------------------------- reading in batches (issue 22)

def _brute(X: np.ndarray) -> set[int]:
    """Positions of rows of X (n, m; minimise all) that no other row dominates: O(n^2)."""
    le = (X[None, :, :] <= X[:, None, :]).all(axis=2)
    lt = (X[None, :, :] < X[:, None, :]).any(axis=2)
    return set(np.flatnonzero(~(le & lt).any(axis=1)).tolist())


@pytest.mark.parametrize("m", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", range(6))
def test_running_front_equals_the_whole_read_and_brute_force(m, seed):
    from rfsweep import analysis

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 700))
    X = rng.integers(0, 6 if seed % 2 else 40, size=(n, m))  # small ranges: many exact ties
    flips = [bool(f) for f in rng.integers(0, 2, m)]
    names = [f"o{i}" for i in range(m)]
    columns = {name: X[:, i].copy() for i, name in enumerate(names)}
    columns["row"] = np.arange(n)
    running = analysis.RunningFront(names, flips)
    cuts = np.sort(rng.integers(0, n, int(rng.integers(0, 8))))
    for part in np.split(np.arange(n), cuts):
        running.add({name: values[part] for name, values in columns.items()})
    whole = analysis._front_positions([columns[name] for name in names], flips, names)  # the one-read answer
    got = running.rows(["row"])["row"]
    assert got.tolist() == whole.tolist()  # same rows, same order (objectives, then file order)
    signed = np.where(flips, -X, X)
    assert set(got.tolist()) == _brute(signed)


def test_running_sample_is_uniform_without_replacement():
    from rfsweep.analysis import RunningSample

    hits = np.zeros(100)
    for seed in range(300):
        sampler = RunningSample(10, seed)
        for part in np.split(np.arange(100), [7, 30, 31, 80]):
            sampler.add({"row": part})
        rows = sampler.columns["row"]
        assert len(rows) == 10 and len(set(rows.tolist())) == 10 and list(rows) == sorted(rows)
        hits[rows] += 1
    assert hits.min() > 5 and hits.max() < 60  # each row ~30 times out of 300


def test_pareto_and_report_in_tiny_batches_equal_a_naive_read(sweep, monkeypatch, capsys):
    import pyarrow.parquet as pq

    from rfsweep import analysis, report

    full = pq.read_table(sweep).to_pandas()
    default = analysis.pareto_file(sweep, ("params", "macs"), ("rf",))
    monkeypatch.setattr(analysis, "BATCH_ROWS", 37)
    assert len(list(analysis.scan_batches(analysis._open_sweep(sweep, False)[0], ["rf"]))) > 10
    small = analysis.pareto_file(sweep, ("params", "macs"), ("rf",))
    pd.testing.assert_frame_equal(small, default)
    X = np.column_stack([full["params"], full["macs"], -full["rf"]])
    assert set(small["config_id"]) == set(full["config_id"].to_numpy()[sorted(_brute(X))])
    scan = report._scan(sweep, False, 100)
    for cost in ("params", "macs"):
        X = np.column_stack([full[cost], -full["rf"]])
        assert set(scan.fronts[cost]["config_id"]) == set(full["config_id"].to_numpy()[sorted(_brute(X))])
    assert scan.rows == len(full) and len(scan.sample) == 100
    for depth, group in full.groupby("depth"):
        values, counts = scan.dist["rf"][depth]
        expected = group["rf"].value_counts().sort_index()
        assert values.tolist() == expected.index.tolist() and counts.tolist() == expected.tolist()
        low, high = max(float(full["params"].min()), 1.0), max(float(full["params"].max()), 1.0)
        edges = np.logspace(np.log10(low), np.log10(high) + 1e-9, report.PARAM_BINS + 1)
        edges[0] = low  # 10**log10(low) may round above low
        binned = np.histogram(np.maximum(group["params"], low), bins=edges)[0]
        assert scan.dist["params"][depth][1].tolist() == binned[binned > 0].tolist()


@pytest.mark.parametrize("column", ["rf", "params", "config_id"])
def test_negative_values_are_refused_naming_the_column(sweep, tmp_path, capsys, column):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(sweep)
    values = table.column(column).to_numpy().astype(np.int64)
    values[5] = -3
    crafted = tmp_path / "crafted.parquet"
    index = table.schema.get_field_index(column)
    pq.write_table(table.set_column(index, pa.field(column, pa.int64()), pa.array(values)), crafted)
    for args in (["report", crafted, "-o", tmp_path / "r.html"], ["pareto", crafted]):
        code, _, err = run_cli(capsys, *args)
        assert code == 2, err
        assert f"column {column!r} has negative values" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_pareto_plot_has_one_panel_per_minimised_objective(sweep, tmp_path, capsys, monkeypatch):
    from rfsweep import plots

    saved = []
    original = plots._save
    monkeypatch.setattr(plots, "_save", lambda figure, path: (saved.append(figure), original(figure, path))[1])
    for minimize, panels in (("params,macs", ["params", "macs"]), ("params", ["params"]),
                             ("params,macs,erf_std", ["params", "macs", "erf_std"])):
        code, _, err = run_cli(capsys, "pareto", sweep, "--minimize", minimize, "--plot", tmp_path / "f.png")
        assert code == 0, err
        axes = saved[-1].axes
        assert [ax.get_xlabel() for ax in axes] == panels and {ax.get_ylabel() for ax in axes} == {"rf"}
        assert all(ax.get_xscale() in ("log", "symlog") for ax in axes)
        labels = [text.get_text() for ax in axes for text in ax.get_legend().get_texts()]
        assert any(label.startswith("random sample of ") for label in labels)
