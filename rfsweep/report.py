"""`rfsweep report`: one self-contained HTML page about a sweep (the `plot` extra).

The page holds the counts and spec from the file's metadata, the exact Pareto
fronts of params and of MACs against RF (plotly: hover shows the stack, a
click shows its explain table, precomputed here for the front rows), RF and
params distributions by depth (exact counts, binned), the stack-vs-large-
kernel comparison (`analysis.compare`) for a few RFs the sweep contains, and
the first rows of the params front as a sortable table.

Everything is inlined (plotly.js too), so the file opens offline. Nothing
scales with the sweep but a fixed-size random sample behind each front and
the fronts themselves; a 5.4M-row sweep gives a page of about 5 MB, almost
all of it plotly.js. plotly is imported inside functions.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import RfsweepError

PLOT_INSTALL = 'pip install -e ".[plot]"'
MAX_EXPLAINED = 600          # explain tables embedded per front (the first rows, best first)
COMPARE_RFS = (3, 5, 7, 9, 11, 15)
COMPARE_SHOWN = 4            # RFs compared
COMPARE_ROWS = 6             # candidate stacks per RF shown (the single kernel always)
PARAM_BINS = 40
EXPLAIN_COLUMNS = ["#", "layer", "k", "s", "p", "d", "out", "ch", "jump", "RF", "start", "params", "MACs"]
TABLE_COLUMNS = ["config_id", "depth", "stack", "rf", "jump", "out_size", "out_channels", "params", "macs",
                 "erf_ratio"]
FRONT_COLOR = "#d62728"
# a few layout settings instead of a named plotly template (a template embeds ~7 KB of JSON per figure)
TEMPLATE = {"layout": {"plot_bgcolor": "white", "paper_bgcolor": "white", "font": {"size": 12},
                       "colorway": ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"],
                       "xaxis": {"gridcolor": "#eee", "zeroline": False, "linecolor": "#999"},
                       "yaxis": {"gridcolor": "#eee", "zeroline": False, "linecolor": "#999"}}}
CLOUD_COLOR = "rgba(120,120,120,0.35)"


def _plotly():
    try:
        import plotly.graph_objects as go
        import plotly.io  # noqa: F401 - to_html
    except ImportError:
        raise RfsweepError(f"report needs plotly: {PLOT_INSTALL}") from None
    return go


def _check_output(out) -> Path:
    from .writer import check_output_path

    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise RfsweepError(f"report writes HTML: give OUT a .html name, got {out}")
    check_output_path(out)
    return out


# ---------------------------------------------------------------- data

def _spec_of(meta: dict | None):
    """The sweep's GridSpec, or None (a Parquet file from elsewhere, or a spec this version cannot read)."""
    if not meta or not isinstance(meta.get("spec"), dict):
        return None
    from .grid import GridSpec

    try:
        return GridSpec.build(meta["spec"])
    except (RfsweepError, TypeError, KeyError, ValueError):
        return None


def _explain_rows(stack, result) -> dict:
    """The explain table of one stack as plain lists (what `rfsweep explain` prints)."""
    def cell(value):
        if isinstance(value, list):
            return "x".join(str(cell(v)) for v in value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    rows = []
    for layer, row in zip(stack.layers, result["layers"]):
        rows.append([row["index"], layer.compact(), *(cell(row[key]) for key in (
            "kernel", "stride", "padding", "dilation", "out_size", "out_channels", "jump", "rf", "start",
            "params", "macs"))])
    total = result["total"]
    rows.append(["", "total", "", "", "", "", *(cell(total[key]) for key in (
        "out_size", "out_channels", "jump", "rf", "start", "params", "macs"))])
    return {"rows": rows, "eff_padding": cell(total["eff_padding"])}


def _stacks(spec, ids) -> dict[int, object]:
    stacks = {}
    for config_id in ids:
        config_id = int(config_id)
        if config_id not in stacks:
            stacks[config_id] = spec.network(config_id)
    return stacks


@dataclass
class _Scan:
    """One read of a sweep: both fronts (full rows, best first), a background sample, exact histograms."""

    rows: int
    fronts: dict
    sample: object
    metadata: dict | None
    dist: dict


ROW_COLUMNS = ("config_id", "depth", "rf", "jump", "out_size", "out_channels", "params", "macs", "erf_ratio")


def _scan(path, allow_incomplete: bool, sample: int) -> _Scan:
    """One batched read of the few columns the page shows: both fronts as `rfsweep pareto
    --minimize COST --maximize rf` finds them (the same exact kernels, as running fronts),
    a running random sample and exact running counts. Memory: a batch, the fronts and the
    counts, never the file."""
    from .analysis import (RunningFront, RunningSample, _numeric_field, _open_sweep, batch_column,
                           read_errors, scan_batches)

    try:
        dataset, metadata = _open_sweep(path, allow_incomplete, strict=False)  # invalid: named on the page
        schema = dataset.schema
        for name in ("config_id", "rf", "params", "macs"):
            _numeric_field(schema, name, "report")
        names = [name for name in ROW_COLUMNS if name in schema.names]
        fronts = {cost: RunningFront([cost, "rf"], [False, True]) for cost in ("params", "macs")}
        sampler = RunningSample(sample)
        counts = _Counts(*_column_range(dataset, "params", path))
        rows = 0
        for batch in scan_batches(dataset, names):
            cols = {name: batch_column(batch, name, path, "" if name in _REQUIRED else None) for name in names}
            for front in fronts.values():
                front.add(cols)
            sampler.add({name: cols[name] for name in ("rf", "params", "macs")})
            counts.add(cols)
            rows += batch.num_rows
    except MemoryError:
        raise
    except read_errors() as exc:  # corrupt pages or footer (a page checksum names it)
        from .sweep_file import read_error
        raise read_error(path, exc) from None
    import pandas as pd

    frames = {cost: pd.DataFrame(front.rows(names)) for cost, front in fronts.items()}
    return _Scan(rows=rows, fronts=frames, sample=sampler.frame(("rf", "params", "macs")), metadata=metadata,
                 dist=counts.distributions())


_REQUIRED = ("config_id", "rf", "params", "macs", "depth")


def _column_range(dataset, name: str, path) -> tuple[float, float]:
    """(min, max) of a column from the row groups' statistics, or from one read of that column
    alone when a file has none: the params bins need both ends before the counting pass."""
    from .analysis import batch_column, scan_batches

    low = high = None
    try:
        for fragment in dataset.get_fragments():
            fragment.ensure_complete_metadata()
            for group in fragment.row_groups:
                stats = (group.statistics or {}).get(name)
                if not stats or stats.get("min") is None or stats.get("max") is None:
                    raise LookupError(name)
                low = stats["min"] if low is None else min(low, stats["min"])
                high = stats["max"] if high is None else max(high, stats["max"])
    except LookupError:
        low = high = None
        for batch in scan_batches(dataset, [name]):
            values = batch_column(batch, name, path, "")
            low = values.min() if low is None else min(low, values.min())
            high = values.max() if high is None else max(high, values.max())
    if low is not None and low < 0:
        raise RfsweepError(f"{path}: column {name!r} has negative values (down to {low}); "
                           "a sweep never writes them: the file is damaged or not from rfsweep")
    return (1.0, 1.0) if low is None else (max(float(low), 1.0), max(float(high), 1.0))


class _Counts:
    """Exact counts of rf per depth and of params in PARAM_BINS log bins per depth, batch by batch."""

    def __init__(self, params_low: float, params_high: float):
        self.low, self.high = params_low, params_high
        self.step = (np.log10(params_high) + 1e-9 - np.log10(params_low)) / PARAM_BINS
        self.rf_keys = np.zeros(0, np.int64)      # depth << RF_SHIFT | rf, distinct, with counts
        self.rf_counts = np.zeros(0, np.int64)
        self.params = np.zeros((0, PARAM_BINS), np.int64)

    def add(self, cols: dict) -> None:
        rf = cols["rf"].astype(np.int64)
        depth = cols["depth"].astype(np.int64) if "depth" in cols else np.zeros(rf.size, np.int64)
        if rf.max() >= 1 << RF_SHIFT or depth.max() >= 1 << (62 - RF_SHIFT):
            raise RfsweepError("report: rf or depth too large to count (rf < 2^40, depth < 2^22)")
        keys, counts = np.unique(depth << RF_SHIFT | rf, return_counts=True)
        merged, inverse = np.unique(np.concatenate([self.rf_keys, keys]), return_inverse=True)
        self.rf_counts = np.bincount(inverse.reshape(-1), weights=np.concatenate([self.rf_counts, counts]),
                                     minlength=merged.size).astype(np.int64)
        self.rf_keys = merged
        logs = np.log10(np.maximum(cols["params"].astype(np.float64), self.low))
        bins = np.clip(((logs - np.log10(self.low)) / self.step).astype(np.int64), 0, PARAM_BINS - 1)
        depths = int(depth.max()) + 1
        table = np.bincount(depth * PARAM_BINS + bins, minlength=depths * PARAM_BINS).reshape(-1, PARAM_BINS)
        if depths > self.params.shape[0]:
            self.params = np.vstack([self.params, np.zeros((depths - self.params.shape[0], PARAM_BINS), np.int64)])
        self.params[:depths] += table

    def distributions(self) -> dict:
        """Per depth: the RF values present and their counts; params (log-bin centre, count) pairs."""
        out = {"rf": {}, "params": {}, "rf_values": np.zeros(0, np.int64)}
        if not self.rf_keys.size:
            return out
        depth, rf = self.rf_keys >> RF_SHIFT, self.rf_keys & ((1 << RF_SHIFT) - 1)
        out["rf_values"] = np.unique(rf)
        for d in np.unique(depth):
            mine = depth == d
            out["rf"][int(d)] = (rf[mine], _compact(self.rf_counts[mine]))
        edges = np.logspace(np.log10(self.low), np.log10(self.high) + 1e-9, PARAM_BINS + 1)
        centres = np.sqrt(edges[:-1] * edges[1:]).astype(np.float32)
        for d in range(self.params.shape[0]):
            where = np.flatnonzero(self.params[d])
            if where.size:
                out["params"][d] = (centres[where], _compact(self.params[d, where]))
        return out


RF_SHIFT = 40


def _compact(values) -> np.ndarray:
    """Counts in the narrowest type plotly embeds as typed arrays (it has no 64-bit integers)."""
    values = np.asarray(values)
    return values.astype(np.uint32) if values.size == 0 or values.max() < 1 << 32 else values.astype(np.float64)


def _compare_rows(spec, rf_values) -> list[dict]:
    """`analysis.compare` for a few RFs the sweep holds, with the sweep's kernels, dilations, channels."""
    from .compare import compare

    present = {int(v) for v in rf_values}
    chosen = [r for r in COMPARE_RFS if r in present][:COMPARE_SHOWN]
    if not chosen:
        chosen = sorted(r for r in present if r > 1)[:3]
    kernels = sorted({int(k) for k in (getattr(spec, "kernel", None) or (3, 5)) if 1 < int(k)}) or [3, 5]
    dilations = sorted({int(d) for d in (getattr(spec, "dilation", None) or (1,))}) or [1]
    channels = max(getattr(spec, "channels", None) or [64])
    depth = min(max(getattr(spec, "depth", None) or [4]), 4)
    size = getattr(spec, "input_size", 56)
    size = size[0] if isinstance(size, (list, tuple)) else size
    out = []
    for rf in chosen:
        try:
            rows = compare(rf, channels=int(channels), max_depth=int(depth),
                           kernels=[k for k in kernels if k <= rf], dilations=dilations, input_size=int(size),
                           rank=getattr(spec, "rank", 2))
        except RfsweepError:
            continue
        single = [row for row in rows if row["single"]]
        others = [row for row in rows if not row["single"]][:COMPARE_ROWS]
        out.append({"rf": rf, "channels": int(channels), "input_size": int(size), "rank": getattr(spec, "rank", 2),
                    "rows": others + single})
    return out


def _single_kernel(rank: int) -> str:
    """How the large kernel compare sets the stacks against is named at this rank."""
    return {1: "R-tap", 2: "RxR", 3: "RxRxR"}[rank]


def _int(value):
    return int(value) if isinstance(value, (np.integer,)) else value


# ---------------------------------------------------------------- figures

LOG_AXIS = {"type": "log", "dtick": 1, "exponentformat": "power", "minor": {"ticks": "outside", "ticklen": 3}}
MAX_DEPTH_LINES = 6  # more depths are drawn as this many groups of consecutive depths


def _front_figure(go, sample, front, column: str, stacks: dict, label: str):
    figure = go.Figure(layout={"template": TEMPLATE})
    if sample is not None and len(sample):
        figure.add_trace(go.Scatter(
            x=sample[column].to_numpy(), y=sample["rf"].to_numpy(), mode="markers",
            name=f"random sample of {len(sample):,} rows",
            marker={"size": 4, "color": CLOUD_COLOR}, hoverinfo="skip"))
    ids = front["config_id"].to_numpy().astype(np.int64)
    texts = [stacks[int(i)].compact() if int(i) in stacks else f"config_id {int(i)}" for i in ids]
    figure.add_trace(go.Scatter(
        x=front[column].to_numpy(), y=front["rf"].to_numpy(), mode="markers", name=f"front ({len(front):,} rows)",
        marker={"size": 8, "color": FRONT_COLOR, "line": {"width": 1, "color": "white"}},
        customdata=ids, hovertext=texts,
        hovertemplate=f"%{{hovertext}}<br>{label} %{{x:,}}<br>RF %{{y}}<extra>config_id %{{customdata}}</extra>"))
    order = np.lexsort((front["rf"].to_numpy(), front[column].to_numpy()))
    figure.add_trace(go.Scatter(
        x=front[column].to_numpy()[order], y=front["rf"].to_numpy()[order], mode="lines",
        line={"shape": "hv", "color": FRONT_COLOR, "width": 1}, hoverinfo="skip", showlegend=False))
    figure.update_layout(xaxis={**LOG_AXIS, "title": label}, yaxis={"title": "receptive field (px)"},
                         height=460, margin={"l": 60, "r": 20, "t": 30, "b": 50},
                         legend={"x": 0.01, "y": 0.99})
    return figure


def depth_groups(depths) -> list[list[int]]:
    """The depths present, as at most MAX_DEPTH_LINES runs of consecutive ones (one line each)."""
    depths = sorted(int(d) for d in depths)
    if len(depths) <= MAX_DEPTH_LINES:
        return [[d] for d in depths]
    cuts = np.array_split(np.arange(len(depths)), MAX_DEPTH_LINES)
    return [[depths[i] for i in part] for part in cuts if part.size]


def _group_name(group: list[int]) -> str:
    return f"depth {group[0]}" if len(group) == 1 else f"depth {group[0]}-{group[-1]}"


def _distribution_figures(go, dist):
    """RF: per depth (group), the share of stacks with RF <= x (a monotone step line: exact
    counts, no zigzag between odd and even RFs); params: counts in log bins per depth (group)."""
    rf_fig = go.Figure(layout={"template": TEMPLATE})
    for group in depth_groups(dist["rf"]):
        values = np.concatenate([dist["rf"][d][0] for d in group])
        counts = np.concatenate([np.asarray(dist["rf"][d][1], np.float64) for d in group])
        xs, inverse = np.unique(values, return_inverse=True)
        summed = np.bincount(inverse.reshape(-1), weights=counts, minlength=xs.size)
        share = np.cumsum(summed) / summed.sum()
        rf_fig.add_trace(go.Scatter(x=xs, y=share, mode="lines", line={"shape": "hv"}, name=_group_name(group),
                                    hovertemplate="RF <= %{x}: %{y:.1%}<extra>" + _group_name(group) + "</extra>"))
    rf_fig.update_layout(xaxis={"title": "receptive field (px)"},
                         yaxis={"title": "share of stacks with RF <= x", "tickformat": ".0%", "range": [0, 1.02]},
                         height=380, margin={"l": 60, "r": 20, "t": 30, "b": 50})
    params_fig = go.Figure(layout={"template": TEMPLATE})
    for group in depth_groups(dist["params"]):
        centres = np.concatenate([dist["params"][d][0] for d in group])
        counts = np.concatenate([np.asarray(dist["params"][d][1], np.float64) for d in group])
        xs, inverse = np.unique(centres, return_inverse=True)
        summed = np.bincount(inverse.reshape(-1), weights=counts, minlength=xs.size)
        params_fig.add_trace(go.Scatter(x=xs, y=_compact(summed), mode="lines+markers", name=_group_name(group),
                                        marker={"size": 4}))
    params_fig.update_layout(xaxis={**LOG_AXIS, "title": f"params ({PARAM_BINS} log bins)"},
                             yaxis={**LOG_AXIS, "title": "stacks"}, height=380,
                             margin={"l": 60, "r": 20, "t": 30, "b": 50})
    return rf_fig, params_fig


def _compare_figure(go, compared):
    figure = go.Figure(layout={"template": TEMPLATE})
    for entry in compared:
        labels = [f"RF {entry['rf']}: {row['stack']}" for row in entry["rows"]]
        figure.add_trace(go.Bar(x=labels, y=[row["macs_ratio"] for row in entry["rows"]], name=f"RF {entry['rf']}",
                                hovertemplate="%{x}<br>MACs %{y:.3f}x the single kernel<extra></extra>"))
    figure.update_layout(yaxis={"title": "MACs / one RxR conv"}, height=420,
                         margin={"l": 60, "r": 20, "t": 30, "b": 160}, xaxis={"tickangle": -40})
    return figure


# ---------------------------------------------------------------- page

def _fmt(value) -> str:
    value = _int(value)
    if isinstance(value, bool) or value is None:
        return "none" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
        return json.dumps(value)  # nested (a block space's stages)
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _kv_table(pairs) -> str:
    """Key-value rows; a nested object becomes a nested table, a list of objects (a block
    space's stages) a table with one row per item, instead of raw JSON."""
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_value_html(v)}</td></tr>" for k, v in pairs)
    return f"<table class='kv'>{body}</table>"


def _value_html(value) -> str:
    if isinstance(value, dict):
        return _kv_table(value.items())
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, dict) for item in value):
        keys = list(dict.fromkeys(key for item in value for key in item))
        head = "".join(f"<th>{html.escape(str(key))}</th>" for key in ["#", *keys])
        body = "".join("<tr>" + f"<td>{i}</td>" + "".join(
            f"<td>{_value_html(item[key]) if key in item else ''}</td>" for key in keys) + "</tr>"
            for i, item in enumerate(value, start=1))
        return f"<table class='rows nested'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return html.escape(_fmt(value))


def _rows_table(front, stacks, top: int) -> str:
    """The first `top` front rows; a `stack` column only when the stacks are known (chain grids)."""
    shown = front.head(top)
    columns = [c for c in TABLE_COLUMNS if (c == "stack" and stacks) or c in shown.columns]
    head = "".join(f"<th data-col='{i}'>{html.escape(c)}</th>" for i, c in enumerate(columns))
    body = []
    values = {c: shown[c].tolist() for c in columns if c != "stack"}
    for r in range(len(shown)):
        config_id = int(values["config_id"][r])
        cells = []
        for c in columns:
            if c == "stack":
                text = stacks[config_id].compact() if config_id in stacks else ""
                cells.append(f"<td class='stack'>{html.escape(text)}</td>")
                continue
            value = values[c][r]
            sort = "" if value is None or value != value else value
            cells.append(f"<td data-v='{html.escape(str(sort))}'>{html.escape(_fmt(round(value, 4) if isinstance(value, float) else value))}</td>")
        body.append(f"<tr data-id='{config_id}'>{''.join(cells)}</tr>")
    return (f"<table id='top-rows' class='rows sortable'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _compare_tables(compared) -> str:
    parts = []
    for entry in compared:
        head = "".join(f"<th>{c}</th>" for c in ("stack", "depth", "params", "x params", "MACs", "x MACs",
                                                  "ERF ratio"))
        body = "".join(
            f"<tr class='{'single' if row['single'] else ''}'><td class='stack'>{html.escape(row['stack'])}</td>"
            f"<td>{row['depth']}</td><td>{row['params']:,}</td><td>{row['params_ratio']:.3f}</td>"
            f"<td>{row['macs']:,}</td><td>{row['macs_ratio']:.3f}</td><td>{row['erf_ratio']:.3f}</td></tr>"
            for row in entry["rows"])
        parts.append(f"<div class='cmp'><h3>RF {entry['rf']} ({entry['channels']} channels, "
                     f"{'x'.join([str(entry['input_size'])] * entry['rank'])} input, stride 1)</h3>"
                     f"<table class='rows'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")
    return "".join(parts) or "<p>No RF of this sweep has a stack of smaller kernels to compare.</p>"


HEAD_SCRIPT = """
window.__rfsweepErrors = [];
window.addEventListener('error', function (e) {
  var what = e.message || (e.target && (e.target.src || e.target.href)) || 'error';
  window.__rfsweepErrors.push(String(what));
}, true);
window.addEventListener('unhandledrejection', function (e) { window.__rfsweepErrors.push('rejection: ' + e.reason); });
(function () {
  var original = console.error;
  console.error = function () {
    window.__rfsweepErrors.push(Array.prototype.join.call(arguments, ' '));
    return original.apply(console, arguments);
  };
})();
"""

PAGE_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById('rfsweep-data').textContent);
  function cell(v) { return typeof v === 'number' ? v.toLocaleString('en-US') : String(v); }
  function showExplain(id) {
    var panel = document.getElementById('explain');
    var entry = data.explain[String(id)];
    if (!entry) { panel.textContent = 'config_id ' + id + ': ' + data.note.replace('{id}', id); return; }
    var html = '<h3>config_id ' + id + ': ' + entry.stack + '</h3><table class="rows"><thead><tr>';
    data.columns.forEach(function (c) { html += '<th>' + c + '</th>'; });
    html += '</tr></thead><tbody>';
    entry.rows.forEach(function (row) {
      html += '<tr>' + row.map(function (v) { return '<td>' + cell(v) + '</td>'; }).join('') + '</tr>';
    });
    html += '</tbody></table><p>effective padding ' + cell(entry.eff_padding) + '; FLOPs = 2 x MACs</p>';
    panel.innerHTML = html;
    panel.dataset.shown = String(id);
  }
  window.rfsweepShowExplain = showExplain;
  ['front-params', 'front-macs'].forEach(function (name) {
    var gd = document.getElementById(name);
    if (gd && gd.on) gd.on('plotly_click', function (ev) {
      var p = ev.points && ev.points[0];
      if (p && p.customdata !== undefined) showExplain(p.customdata);
    });
  });
  document.querySelectorAll('#top-rows tbody tr').forEach(function (tr) {
    tr.addEventListener('click', function () { showExplain(tr.dataset.id); });
  });
  document.querySelectorAll('table.sortable th').forEach(function (th) {
    th.addEventListener('click', function () {
      var table = th.closest('table'), body = table.tBodies[0], col = +th.dataset.col;
      var up = th.dataset.dir !== 'asc';
      table.querySelectorAll('th').forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = up ? 'asc' : 'desc';
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        var u = x.dataset.v !== undefined ? parseFloat(x.dataset.v) : NaN, v = y.dataset.v !== undefined ? parseFloat(y.dataset.v) : NaN;
        var r = (!isNaN(u) && !isNaN(v)) ? u - v : x.textContent.localeCompare(y.textContent);
        return up ? r : -r;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  function frontPoints(name) {  // the points plotly drew for the front trace (trace named 'front ...')
    var gd = document.getElementById(name);
    if (!gd || !gd.data) return -1;
    var traces = gd.querySelectorAll('.scatterlayer .trace');
    for (var i = 0; i < gd.data.length; i++) {
      if ((gd.data[i].name || '').indexOf('front') === 0 && traces[i]) return traces[i].querySelectorAll('path.point').length;
    }
    return -1;
  }
  window.addEventListener('load', function () {
    setTimeout(function () {
      var status = document.getElementById('rfsweep-status');
      status.dataset.frontParams = String(frontPoints('front-params'));
      status.dataset.frontMacs = String(frontPoints('front-macs'));
      status.dataset.resources = String(performance.getEntriesByType('resource').length);
      status.dataset.errors = String(window.__rfsweepErrors.length);
      status.textContent = window.__rfsweepErrors.join('\\n');
      status.dataset.ready = '1';
    }, 50);
  });
})();
"""

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px auto; max-width: 1200px;
       color: #222; padding: 0 16px; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.note { color: #666; font-size: 0.9em; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
table { border-collapse: collapse; font-size: 0.85em; }
table.kv th { text-align: left; padding: 2px 12px 2px 0; font-weight: 600; vertical-align: top; }
table.nested { font-size: 1em; }
table.rows th, table.rows td { border-bottom: 1px solid #eee; padding: 3px 8px; text-align: right; }
table.rows td.stack { text-align: left; font-family: ui-monospace, monospace; }
table.sortable th { cursor: pointer; background: #f5f5f5; } table.sortable th[data-dir=asc]::after { content: ' \\25B2'; }
table.sortable th[data-dir=desc]::after { content: ' \\25BC'; }
table.sortable tbody tr { cursor: pointer; } table.sortable tbody tr:hover { background: #fff4e5; }
tr.single td { color: #666; font-style: italic; }
#explain { min-height: 3em; background: #fafafa; border: 1px solid #eee; padding: 8px 12px; margin-top: 8px; }
#rfsweep-status { display: none; }
.cmp { display: inline-block; vertical-align: top; margin: 0 24px 16px 0; }
"""


def build_report(path, top: int = 50, sample: int = 1500, allow_incomplete: bool = False) -> tuple[str, dict]:
    """The report page for sweep `path` as an HTML string, and a summary dict (rows, front sizes)."""
    go = _plotly()
    import plotly.io as pio

    from .explain import analyze

    scan = _scan(path, allow_incomplete, sample)
    front_params, front_macs = scan.fronts["params"], scan.fronts["macs"]
    meta = scan.metadata or {}
    problem = None
    if scan.metadata is None:  # no valid rfsweep metadata: say so here and on stderr
        from .sweep_file import metadata_problem
        problem = metadata_problem(path) or f"{path}: no valid rfsweep metadata"
        logging.getLogger("rfsweep").warning("warning: %s; the report shows the rows without spec or counts",
                                             problem)
    counts = meta.get("counts") or {}
    spec = _spec_of(meta)
    ids = list(dict.fromkeys([*front_params["config_id"].head(MAX_EXPLAINED).tolist(),
                              *front_macs["config_id"].head(MAX_EXPLAINED).tolist()]))
    stacks = _stacks(spec, ids) if spec is not None else {}
    explain = {}
    for config_id, stack in stacks.items():
        entry = _explain_rows(stack, analyze(stack))
        explain[str(config_id)] = {"stack": stack.compact(), **entry}
    dist = scan.dist
    compared = _compare_rows(spec, dist["rf_values"]) if spec is not None and len(dist["rf_values"]) else []

    config = {"displaylogo": False, "responsive": True}
    figures = [("front-params", _front_figure(go, scan.sample, front_params, "params", stacks, "params"))]
    figures.append(("front-macs", _front_figure(go, scan.sample, front_macs, "macs", stacks, "MACs")))
    rf_fig, params_fig = _distribution_figures(go, dist)
    figures += [("dist-rf", rf_fig), ("dist-params", params_fig)]
    if compared:
        figures.append(("compare", _compare_figure(go, compared)))
    divs = {}
    for i, (name, figure) in enumerate(figures):
        divs[name] = pio.to_html(figure, include_plotlyjs=(i == 0), full_html=False, div_id=name, config=config,
                                 validate=False)

    source = html.escape(str(path))
    spec_pairs = list((meta.get("spec") or {}).items())
    count_pairs = [(k, v) for k, v in counts.items()]
    considered = scan.rows
    note = ("no explain table embedded (only the first rows of each front have one)" if spec is not None else
            f"no explain table embedded for this sweep (not a chain grid); `rfsweep show {path} {{id}}` explains it")
    payload = json.dumps({"columns": EXPLAIN_COLUMNS, "explain": explain, "note": note}, separators=(",", ":"))
    payload = payload.replace("</", "<\\/")
    n_params, n_macs = len(front_params), len(front_macs)
    explained_note = ("" if n_params <= MAX_EXPLAINED and n_macs <= MAX_EXPLAINED else
                      f" Explain tables are embedded for the first {MAX_EXPLAINED} rows of each front.")
    sample_rows = len(scan.sample)
    compare_section = "" if spec is None else f"""<h2>Stacks against one large kernel</h2>
<p class="note">For RFs in this sweep: one {_single_kernel(getattr(spec, "rank", 2))} conv against stacks of smaller convs with the same RF
(rfsweep compare: stride 1, 'same' padding, the sweep's kernels and dilations, its widest channel count,
at most 4 layers). The cheapest stacks are shown; italic: the single kernel.</p>
{divs.get('compare', '')}
{_compare_tables(compared)}
"""
    groups = depth_groups(dist["rf"])
    grouped = ("" if all(len(group) == 1 for group in groups) else
               f" The {sum(map(len, groups))} depths are drawn as {len(groups)} groups of consecutive depths.")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rfsweep report: {source}</title>
<script>{HEAD_SCRIPT}</script>
<style>{CSS}</style></head>
<body>
<div id="rfsweep-status" data-ready="0"></div>
<h1>rfsweep report: {source}</h1>
<p class="note">rfsweep {html.escape(str(meta.get('version', '?')))}; {considered:,} rows. MACs count one
multiply-accumulate as 1 (bias adds not counted); FLOPs = 2&middot;MACs. RF in input pixels.</p>
<h2>Counts and spec</h2>
{f'<p class="note"><strong>No valid rfsweep metadata:</strong> {html.escape(problem)}. The rows are shown as read; '
 'spec, counts and explain tables are not.</p>' if problem else ''}
<div class="grid2"><div>{_kv_table(count_pairs) if count_pairs else '<p>no counts in the metadata</p>'}</div>
<div>{_kv_table(spec_pairs) if spec_pairs else '<p>no spec in the metadata</p>'}</div></div>
<h2>Pareto fronts against RF</h2>
<p class="note">Exact fronts (the rows no other row beats in both cost and RF; ties all kept):
{n_params:,} rows for params, {n_macs:,} for MACs, over {considered:,} rows. Grey: a random sample of
{sample_rows:,} rows. Hover a red point for its stack; click it for its explain table below.{explained_note}</p>
<div class="grid2"><div>{divs['front-params']}</div><div>{divs['front-macs']}</div></div>
<div id="explain">Click a front point (or a row of the table below) to see its explain table.</div>
<h2>Distributions by depth</h2>
<p class="note">Exact counts over all {considered:,} rows: left, the share of stacks whose RF is at most x
(cumulative, so odd and even RFs do not zigzag); right, params in {PARAM_BINS} log-spaced bins.{grouped}</p>
<div class="grid2"><div>{divs['dist-rf']}</div><div>{divs['dist-params']}</div></div>
{compare_section}<h2>Top rows: the params front</h2>
<p class="note">The first {min(top, n_params):,} rows of the params-vs-RF front, cheapest first. Click a column
to sort, a row for its explain table.</p>
{_rows_table(front_params, stacks, top)}
<script type="application/json" id="rfsweep-data">{payload}</script>
<script>{PAGE_SCRIPT}</script>
</body></html>
"""
    info = {"metadata_problem": problem, "rows": considered, "front_params": n_params, "front_macs": n_macs, "explained": len(explain),
            "compared_rfs": [entry["rf"] for entry in compared], "sample": sample_rows}
    return page, info


def write_report(path, out, top: int = 50, sample: int = 1500, allow_incomplete: bool = False) -> dict:
    """Write the report of sweep `path` to `out` (.html) atomically; returns the summary with "bytes"."""
    from .writer import atomic_output

    out = _check_output(out)
    page, info = build_report(path, top=top, sample=sample, allow_incomplete=allow_incomplete)
    data = page.encode("utf-8")
    with atomic_output(out) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
    info["bytes"] = len(data)
    return info
