"""Analysis on top of sweep files: exact Pareto fronts (and `compare`, from compare.py).

Nothing here re-derives receptive fields or costs: the Pareto functions only
read columns that `rfsweep sweep` wrote.

Pareto fronts are exact. A row is on the front when no other row is at least
as good in every objective and strictly better in one; rows with *identical*
objective vectors do not dominate each other, so ties are all kept (no
deduplication). Minimised and maximised columns may be any numeric columns.
The algorithm is sort based, in `@njit` kernels: a cheap prefilter first drops
every row dominated by the exact front of a small sample (one O(n log k) pass),
then the survivors are sorted lexicographically and scanned (2 objectives),
swept with a Fenwick tree of prefix minima (3 objectives, O(n log n)), or
checked against the growing front (4 or more, O(n * front)).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import RfsweepError, unknown_name
from .jit import compile_module, kernel_function
from .compare import compare, default_kernels  # noqa: F401 - re-exported: rfsweep.analysis.compare

SAMPLE_ROWS = 1 << 16      # rows in the prefilter's sample
FILTER_POINTS = 1024       # at most this many sample-front points filter the rest (m <= 3)
FILTER_POINTS_WIDE = 64    # ... and this many for 4 or more objectives (brute force)
BATCH_ROWS = 1 << 20       # rows per batch when pareto and report read a sweep
# columns a sweep never holds negative values in: a crafted file that does is refused, naming the column
NONNEGATIVE = ("config_id", "depth", "rf", "rf_min", "jump", "out_size", "out_channels", "params", "macs",
               "flops")


# ================================================================== Pareto kernels
#
# X is an (m, n) array, one row per objective, every objective to be minimised
# (maximised columns are negated before). All kernels are serial and cached.

@kernel_function(cache=True, nogil=True)
def _same(X, a, b):
    for c in range(X.shape[0]):
        if X[c, a] != X[c, b]:
            return False
    return True


@kernel_function(cache=True, nogil=True)
def _run_end(X, order, i):
    """End of the run of rows identical to order[i] (ties share one verdict)."""
    j = i + 1
    while j < order.shape[0] and _same(X, order[j], order[i]):
        j += 1
    return j


@kernel_function(cache=True, nogil=True)
def _scan2(X, order, keep):
    """Two objectives, rows visited in lexicographic order: one pass."""
    n = order.shape[0]
    have = False
    best = X[1, order[0]]  # lowest second objective among strictly smaller first objectives
    i = 0
    while i < n:
        first = order[i]
        x0 = X[0, first]
        low = X[1, first]  # the group's minimum (lexicographic order)
        alive = (not have) or low < best
        j = i
        while j < n and X[0, order[j]] == x0:
            row = order[j]
            keep[row] = alive and X[1, row] == low
            j += 1
        if alive:
            best = low
            have = True
        i = j


@kernel_function(cache=True, nogil=True)
def _sweep3(X, order, rank1, n_ranks, keep):
    """Three objectives in lexicographic order; a Fenwick tree over ranks of objective 1
    holds the lowest objective 2 seen so far (prefix minima)."""
    n = order.shape[0]
    tree = np.empty(n_ranks + 1, X.dtype)
    filled = np.zeros(n_ranks + 1, np.bool_)
    i = 0
    while i < n:
        a = order[i]
        j = _run_end(X, order, i)
        # every row inserted so far is lexicographically smaller and distinct from a
        dominated = False
        k = rank1[a] + 1
        while k > 0:
            if filled[k] and tree[k] <= X[2, a]:
                dominated = True
                break
            k -= k & (-k)
        for t in range(i, j):
            keep[order[t]] = not dominated
        if not dominated:
            k = rank1[a] + 1
            while k <= n_ranks:
                if not filled[k] or X[2, a] < tree[k]:
                    tree[k] = X[2, a]
                    filled[k] = True
                k += k & (-k)
        i = j


@kernel_function(cache=True, nogil=True)
def _sweep_many(X, order, keep):
    """Four or more objectives: each row (lexicographic order) against the front so far."""
    m = X.shape[0]
    n = order.shape[0]
    front = np.empty(n, np.int64)
    size = 0
    i = 0
    while i < n:
        a = order[i]
        j = _run_end(X, order, i)
        dominated = False
        for f in range(size):
            p = front[f]
            below = True
            for c in range(m):
                if X[c, p] > X[c, a]:
                    below = False
                    break
            if below:  # p is earlier and distinct, so it dominates a
                dominated = True
                break
        for t in range(i, j):
            keep[order[t]] = not dominated
        if not dominated:
            front[size] = a
            size += 1
        i = j


@kernel_function(cache=True, nogil=True)
def _filter2(X, u0, low, alive):
    """Drop rows dominated by a filter set summarised as low[i] = min x1 over x0 <= u0[i]."""
    for r in range(X.shape[1]):
        hi = np.searchsorted(u0, X[0, r], side="right") - 1
        if hi < 0:
            continue
        if low[hi] < X[1, r]:
            alive[r] = False
            continue
        lo = np.searchsorted(u0, X[0, r], side="left") - 1  # strictly smaller x0
        if lo >= 0 and low[lo] <= X[1, r]:
            alive[r] = False


@kernel_function(cache=True, nogil=True)
def _filter3(X, u0, u1, low, filled, alive):
    """As _filter2 with a 2-D table low[i, j] = min x2 over x0 <= u0[i], x1 <= u1[j]."""
    for r in range(X.shape[1]):
        i = np.searchsorted(u0, X[0, r], side="right") - 1
        j = np.searchsorted(u1, X[1, r], side="right") - 1
        if i < 0 or j < 0 or not filled[i, j]:
            continue
        x2 = X[2, r]
        if low[i, j] < x2:
            alive[r] = False
            continue
        i0 = np.searchsorted(u0, X[0, r], side="left") - 1
        j0 = np.searchsorted(u1, X[1, r], side="left") - 1
        if (i0 >= 0 and filled[i0, j] and low[i0, j] <= x2) or (j0 >= 0 and filled[i, j0] and low[i, j0] <= x2):
            alive[r] = False


@kernel_function(cache=True, nogil=True)
def _table3(X, rows, u0, u1):
    """Prefix-minimum table of x2 over the filter rows, on the grid u0 x u1."""
    low = np.empty((u0.shape[0], u1.shape[0]), X.dtype)
    filled = np.zeros((u0.shape[0], u1.shape[0]), np.bool_)
    for t in range(rows.shape[0]):
        r = rows[t]
        i = np.searchsorted(u0, X[0, r])
        j = np.searchsorted(u1, X[1, r])
        if not filled[i, j] or X[2, r] < low[i, j]:
            low[i, j] = X[2, r]
            filled[i, j] = True
    for i in range(u0.shape[0]):
        for j in range(u1.shape[0]):
            if i > 0 and filled[i - 1, j] and (not filled[i, j] or low[i - 1, j] < low[i, j]):
                low[i, j] = low[i - 1, j]
                filled[i, j] = True
            if j > 0 and filled[i, j - 1] and (not filled[i, j] or low[i, j - 1] < low[i, j]):
                low[i, j] = low[i, j - 1]
                filled[i, j] = True
    return low, filled


@kernel_function(cache=True, nogil=True)
def _filter_many(X, rows, alive):
    """Brute force against a few filter rows (4 or more objectives)."""
    m = X.shape[0]
    for r in range(X.shape[1]):
        for t in range(rows.shape[0]):
            p = rows[t]
            below = True
            strict = False
            for c in range(m):
                if X[c, p] > X[c, r]:
                    below = False
                    break
                if X[c, p] < X[c, r]:
                    strict = True
            if below and strict:
                alive[r] = False
                break


def _exact_front(X: np.ndarray) -> np.ndarray:
    """Column positions of X's exact front, in lexicographic order of the objectives."""
    compile_module(__name__)  # numba is loaded by the first front, not by `compare`
    m, n = X.shape
    if n == 0:
        return np.zeros(0, np.int64)
    if m == 1:
        return np.flatnonzero(X[0] == X[0].min())
    order = np.lexsort(X[::-1])  # objective 0 first; ties keep their position
    keep = np.zeros(n, np.bool_)
    if m == 2:
        _scan2(X, order, keep)
    elif m == 3:
        uniques, rank1 = np.unique(X[1], return_inverse=True)
        _sweep3(X, order, rank1.reshape(-1).astype(np.int64), uniques.size, keep)
    else:
        _sweep_many(X, order, keep)
    return order[keep[order]]


def _prefilter(X: np.ndarray) -> np.ndarray:
    """Positions of rows not dominated by the exact front of a fixed random sample.

    A superset of the front (dominance is transitive), found in one
    O(n log k) pass, so the exact sort-based step only sees the survivors.
    """
    compile_module(__name__)
    m, n = X.shape
    if n <= 4 * SAMPLE_ROWS or m == 1:
        return np.arange(n)
    sample = np.unique(np.random.default_rng(0).integers(0, n, SAMPLE_ROWS))
    front = sample[_exact_front(X[:, sample])]
    limit = FILTER_POINTS if m <= 3 else FILTER_POINTS_WIDE
    if front.size > limit:  # any data rows filter correctly; keep an even spread
        front = front[np.linspace(0, front.size - 1, limit).astype(np.int64)]
    alive = np.ones(n, np.bool_)
    if m == 2:
        u0 = np.unique(X[0, front])
        low = np.full(u0.size, X[1, front].max(), X.dtype)
        np.minimum.at(low, np.searchsorted(u0, X[0, front]), X[1, front])
        _filter2(X, u0, np.minimum.accumulate(low), alive)
    elif m == 3:
        u0, u1 = np.unique(X[0, front]), np.unique(X[1, front])
        low, filled = _table3(X, front, u0, u1)
        _filter3(X, u0, u1, low, filled, alive)
    else:
        _filter_many(X, front, alive)
    return np.flatnonzero(alive)


INT64 = np.iinfo(np.int64)


def _objective_matrix(columns: Sequence[np.ndarray], flips: Sequence[bool],
                      names: Sequence[str]) -> np.ndarray:
    """Objective columns as one (m, n) matrix to minimise (maximised ones negated), exactly.

    int64 when no column is floating point, else float64; a column whose
    values would not survive that cast (or the negation) exactly is replaced
    by its dense ranks, which order the rows the same way.
    """
    cols = []
    for values, name in zip(columns, names):
        values = np.asarray(values)
        if values.dtype.kind == "b":
            values = values.astype(np.int64)
        if values.dtype.kind not in "iuf":
            raise RfsweepError(f"objective column {name!r} is not numeric (dtype {values.dtype})")
        if values.dtype.kind == "f" and np.isnan(values).any():
            raise RfsweepError(f"objective column {name!r} has missing (NaN) values")
        cols.append(values)
    floating = any(v.dtype.kind == "f" for v in cols)
    limit = 2 ** 53 if floating else INT64.max
    X = np.empty((len(cols), cols[0].shape[0]), np.float64 if floating else np.int64)
    for c, (values, flip) in enumerate(zip(cols, flips)):
        exact = values.dtype.kind == "f" or values.size == 0 or (
            int(values.max()) <= limit and int(values.min()) >= -limit)
        if not exact:
            values = np.unique(values, return_inverse=True)[1].reshape(-1)
        X[c] = values
        if flip:  # after the cast: unsigned columns would wrap
            np.negative(X[c], out=X[c])
    return X


def _objectives(minimize, maximize) -> tuple[list[str], list[bool]]:
    minimize, maximize = column_names(minimize, "minimize"), column_names(maximize, "maximize")
    names = minimize + maximize
    if not names:
        raise RfsweepError("give at least one column to minimize or maximize")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise RfsweepError(f"column {repeated[0]!r} is named twice in minimize/maximize")
    return names, [False] * len(minimize) + [True] * len(maximize)


def column_names(value, what: str) -> list[str]:
    """'params,macs' or a sequence of names -> a list of names ('' or None -> [])."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    names = list(value)
    bad = [name for name in names if not isinstance(name, str) or not name]
    if bad:
        raise RfsweepError(f"{what}: column names must be non-empty strings, got {bad[0]!r}")
    return names


def _front_positions(columns: Sequence[np.ndarray], flips: Sequence[bool], names: Sequence[str]) -> np.ndarray:
    """Row positions of the front, sorted by the objectives in the order given (ties by position)."""
    X = _objective_matrix(columns, flips, names)
    survivors = _prefilter(X)
    if survivors.size < X.shape[1]:
        return survivors[_exact_front(X[:, survivors])]
    return _exact_front(X)


def pareto_front(df, minimize=("params", "macs"), maximize=("rf",)):
    """The exact Pareto front of a DataFrame: rows no other row dominates.

    A row dominates another when it is no worse in every objective (lower for
    `minimize` columns, higher for `maximize` ones) and strictly better in at
    least one. Rows with identical objective vectors are all kept. Returns
    the front rows (original index labels) sorted by the objectives in the
    order given, best first. Fast on tens of millions of rows (njit kernels).
    """
    names, flips = _objectives(minimize, maximize)
    missing = [name for name in names if name not in df.columns]
    if missing:
        raise unknown_name("no column", missing[0], df.columns)
    columns = []
    for name in names:
        series = df[name]
        if series.isna().any():
            raise RfsweepError(f"objective column {name!r} has missing values")
        try:
            columns.append(series.to_numpy())
        except (TypeError, ValueError):
            raise RfsweepError(f"objective column {name!r} is not numeric") from None
    return df.iloc[_front_positions(columns, flips, names)]


# ================================================================== sweep files

_CLAUSE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*"
                     r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))\s*$")
# a text column (a U-Net's padding, a chain layer's type) compared with a word: padding==valid, l1_type!='maxpool'
_TEXT_CLAUSE = re.compile(r"""^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(==|!=)\s*(['"]?)([A-Za-z_][A-Za-z0-9_.+-]*)\3\s*$""")


def parse_where(text: str | None, schema) -> tuple[object | None, list[str]]:
    """`"out_size>=7, rf<=100"` (clauses joined by ',' or 'and') -> (Arrow filter, columns).

    Each clause is `column OP number` with OP one of >= <= > < == !=, on a
    numeric column of the file, or `column == word` / `column != word` on a
    text column (`padding==valid`, `upsampling!=bilinear`). Rows where the
    column is null (per-layer columns past a stack's depth) never match.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if text is None or not text.strip():
        return None, []
    expression = None
    used = []
    for clause in re.split(r",|\band\b", text, flags=re.IGNORECASE):
        if not clause.strip():
            raise RfsweepError(f"--where {text!r}: empty clause (join clauses with ',' or 'and')")
        match = _CLAUSE.match(clause)
        text_match = None if match else _TEXT_CLAUSE.match(clause)
        if text_match:
            name, op, _, word = text_match.groups()
            _text_field(schema, name)
            clause_expr = pc.field(name) == word if op == "==" else pc.field(name) != word
            expression = clause_expr if expression is None else expression & clause_expr
            used.append(name)
            continue
        if not match:
            raise RfsweepError(f"--where: cannot read {clause.strip()!r} "
                               "(expected 'column OP number', OP one of >= <= > < == !=, e.g. out_size>=7, "
                               "or 'column == word' on a text column, e.g. padding==valid)")
        name, op, number = match.groups()
        kind = _numeric_field(schema, name, "--where")
        value = float(number) if re.search(r"[.eE]", number) else int(number)
        field_ = pc.field(name)
        if isinstance(value, float) and pa.types.is_integer(kind):
            if value.is_integer() and abs(value) < 2 ** 63:
                value = int(value)  # 2e8 on an integer column: an exact integer comparison
            else:  # Arrow would cast the integers to float32 and fail past 2**24: compare as float64
                field_ = field_.cast(pa.float64())
        if isinstance(value, int):
            if value > np.iinfo(np.uint64).max or value < np.iinfo(np.int64).min:
                raise RfsweepError(f"--where: {number} is out of the 64-bit range")
            value = pa.scalar(value, pa.uint64() if value > np.iinfo(np.int64).max else pa.int64())
        clause_expr = {">=": field_ >= value, "<=": field_ <= value, ">": field_ > value,
                       "<": field_ < value, "==": field_ == value, "!=": field_ != value}[op]
        expression = clause_expr if expression is None else expression & clause_expr
        used.append(name)
    return expression, used


def _text_field(schema, name: str):
    import pyarrow as pa

    if name not in schema.names:
        raise unknown_name("--where: the sweep has no column", name, schema.names)
    kind = schema.field(name).type
    values = kind.value_type if pa.types.is_dictionary(kind) else kind
    if not (pa.types.is_string(values) or pa.types.is_large_string(values)):
        raise RfsweepError(f"--where: column {name!r} is {kind}, not text: compare it with a number")
    return kind


def _numeric_field(schema, name: str, what: str, per_axis: bool = False):
    """The Arrow type of a numeric column, else the one-line error; with per_axis, a column of one
    number per axis (a per-axis block space's rf, jump, ...) too."""
    import pyarrow as pa

    if name not in schema.names:
        raise unknown_name(f"{what}: the sweep has no column", name, schema.names)
    kind = schema.field(name).type
    values = kind.value_type if pa.types.is_fixed_size_list(kind) else kind
    if not (pa.types.is_integer(values) or pa.types.is_floating(values)):
        raise RfsweepError(f"{what}: column {name!r} is not numeric ({kind})")
    if values is not kind and not per_axis:
        raise RfsweepError(f"{what}: column {name!r} holds one value per axis (a space whose axes differ); "
                           "use a column of one number per row (params, macs, depth, ...)")
    return kind


def _objective_names(schema, names: Sequence[str], flips: Sequence[bool]) -> tuple[list[str], list[bool]]:
    """The objectives a front compares: a per-axis column is one objective per axis, `rf[0]`, `rf[1]`, ..."""
    import pyarrow as pa

    out, out_flips = [], []
    for name, flip in zip(names, flips):
        kind = _numeric_field(schema, name, "minimize/maximize", per_axis=True)
        axes = [f"{name}[{a}]" for a in range(kind.list_size)] if pa.types.is_fixed_size_list(kind) else [name]
        out += axes
        out_flips += [flip] * len(axes)
    return out, out_flips


def _objective_columns(batch, names: Sequence[str], path) -> dict[str, np.ndarray]:
    """config_id and the objective columns of a batch as numpy, a per-axis column split into its axes."""
    import pyarrow as pa

    out = {}
    for name in names:
        column = batch.column(name)
        if not pa.types.is_fixed_size_list(column.type):
            out[name] = batch_column(batch, name, path, "; filter them out with --where")
            continue
        if column.null_count or column.flatten().null_count:
            raise RfsweepError(f"{path}: column {name!r} has null values; filter them out with --where")
        size = column.type.list_size
        values = column.flatten().to_numpy().reshape(-1, size)
        out.update({f"{name}[{a}]": values[:, a] for a in range(size)})
    return out


def _open_sweep(path, allow_incomplete: bool, strict: bool = True):
    """A pyarrow dataset over a sweep file or a sharded OUT_DIR of parts, plus its metadata.

    A directory is read through its `_rfsweep.json` manifest (the parts it
    lists, its spec and total counts); without a complete manifest it is an
    unfinished run, refused unless allow_incomplete (then: the parts present).
    Pages are verified by checksum as they are read. Metadata that is present
    but invalid (not JSON, an unknown spec key, other columns than the rows)
    is refused, or with strict=False returned as None (`report` names it).
    """
    import pyarrow as pa

    from .distributed import MANIFEST, is_complete, read_manifest
    from .sweep_file import open_dataset, raw_metadata, validated_metadata

    path = Path(path)
    metadata = None
    if path.is_dir():
        if is_complete(path):
            manifest = read_manifest(path)
            files = [path / name for name in sorted(manifest["parts"])]
            metadata = {key: manifest.get(key) for key in ("version", "spec", "counts")}
        elif not allow_incomplete:
            raise RfsweepError(f"{path}: no complete {MANIFEST} manifest, so this is an incomplete run "
                               "(parts missing or still being written); finish it by rerunning the same "
                               "sweep command, or pass --allow-incomplete to use the parts present")
        else:
            files = sorted(p for p in path.glob("*.parquet") if p.is_file() and not p.name.startswith((".", "_")))
        if not files:
            raise RfsweepError(f"{path}: no Parquet parts in this directory")
    elif path.is_file():
        files = [path]
    else:
        raise RfsweepError(f"sweep file not found: {path}")
    try:
        dataset = open_dataset(files)
    except (OSError, pa.ArrowException) as exc:
        raise RfsweepError(f"{path}: not a readable Parquet sweep ({exc})") from None
    try:
        if metadata is None:
            metadata = raw_metadata(files[0])  # None: a Parquet file from elsewhere (fronts work)
        if metadata is not None:
            validated_metadata(path, metadata, dataset.schema)
    except RfsweepError:
        if strict:
            raise
        metadata = None
    return dataset, metadata


class RunningFront:
    """The exact Pareto front of every row added so far, with the columns carried along.

    front(A + B) = front(front(A) + B): a row dominated in A is dominated by some
    row of A's front (dominance is transitive), and rows with identical
    objective vectors never dominate each other, so keeping only the front
    between batches loses nothing. Memory: one batch plus the front. Rows are
    kept sorted by the objectives, ties in the order they were added.
    """

    def __init__(self, names: Sequence[str], flips: Sequence[bool]):
        self.names, self.flips = list(names), list(flips)
        self.columns: dict[str, np.ndarray] | None = None

    def add(self, columns: dict[str, np.ndarray]) -> None:
        pool = columns if self.columns is None else {
            name: np.concatenate([self.columns[name], values]) for name, values in columns.items()}
        positions = _front_positions([pool[name] for name in self.names], self.flips, self.names)
        self.columns = {name: values[positions] for name, values in pool.items()}

    def rows(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        if self.columns is None:
            return {name: np.zeros(0, np.int64) for name in names}
        return {name: self.columns[name] for name in names}


class RunningSample:
    """A uniform random sample of at most `size` rows, without replacement, in one pass.

    Every row draws a random key (seeded: the same file gives the same sample);
    the rows with the `size` smallest keys are kept, in the order they came.
    """

    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.keys = np.zeros(0)
        self.columns: dict[str, np.ndarray] | None = None

    def add(self, columns: dict[str, np.ndarray]) -> None:
        if not self.size:
            return
        n = len(next(iter(columns.values())))
        keys = np.concatenate([self.keys, self.rng.random(n)])
        pool = columns if self.columns is None else {
            name: np.concatenate([self.columns[name], values]) for name, values in columns.items()}
        if keys.size > self.size:
            keep = np.sort(np.argpartition(keys, self.size - 1)[:self.size])
            keys, pool = keys[keep], {name: values[keep] for name, values in pool.items()}
        self.keys, self.columns = keys, pool

    def frame(self, names: Sequence[str]):
        import pandas as pd

        return pd.DataFrame({name: (self.columns or {}).get(name, np.zeros(0)) for name in names})


def scan_batches(dataset, columns: Sequence[str], where=None, where_columns: Sequence[str] = ()):
    """The sweep's rows as pyarrow record batches of `columns` (about BATCH_ROWS rows each), in
    file order, filtered by `where` (on `where_columns`): report and pareto hold one batch at a
    time. Each file is read row group by row group (pyarrow's dataset scanner reads ahead and
    held over a GB on a 10^8-row file)."""
    import pyarrow.parquet as pq

    wanted = list(dict.fromkeys([*columns, *where_columns]))
    for name in dataset.files:
        pages = pq.ParquetFile(name, page_checksum_verification=True)  # a changed byte: an error, not numbers
        for batch in pages.iter_batches(batch_size=BATCH_ROWS, columns=wanted):
            if where is not None:
                batch = batch.filter(where)
            if batch.num_rows:
                yield batch.select(list(columns))


def batch_column(batch, name: str, path, nulls: str | None = None) -> np.ndarray:
    """One column of a batch as numpy; nulls refused (`nulls` says what to do about them) unless
    None; negative values refused in the columns a sweep never makes negative."""
    column = batch.column(name)
    if column.null_count:
        if nulls is not None:
            raise RfsweepError(f"{path}: column {name!r} has null values{nulls}")
        return column.to_numpy(zero_copy_only=False)
    values = column.to_numpy()
    if name in NONNEGATIVE and values.dtype.kind in "if" and values.size and values.min() < 0:
        raise RfsweepError(f"{path}: column {name!r} has negative values (down to {values.min()}); "
                           "a sweep never writes them: the file is damaged or not from rfsweep")
    return values


def read_errors():
    """What reading a damaged or foreign Parquet file raises (exit 2), out-of-memory excluded."""
    import pyarrow as pa

    return (OSError, pa.ArrowException, UnicodeDecodeError)


@dataclass
class ParetoResult:
    """What `pareto_scan` found: the front (all columns), rows considered, a sample for plots."""

    front: object
    considered: int
    sample: object = None
    metadata: dict | None = None


def pareto_scan(path, minimize=("params", "macs"), maximize=("rf",), where: str | None = None,
                top: int | None = None, allow_incomplete: bool = False, sample: int = 0,
                plot_columns: Sequence[str] = ()) -> ParetoResult:
    """`pareto_file` plus the number of rows considered and, with sample > 0, a random
    sample of up to `sample` rows of `plot_columns` (for plot_front).

    The file is read in batches of the needed columns only, keeping a running
    front and a running sample: memory is bounded by a batch and the front,
    never by the file. Out of memory stays a MemoryError (exit 1), not bad input.
    """
    try:
        return _pareto_scan(path, minimize, maximize, where, top, allow_incomplete, sample, plot_columns)
    except MemoryError:
        raise
    except read_errors() as exc:  # corrupt pages/footer: exit 2 (a page checksum names it)
        from .sweep_file import read_error
        raise read_error(path, exc) from None


def _pareto_scan(path, minimize, maximize, where, top, allow_incomplete, sample, plot_columns) -> ParetoResult:
    names, flips = _objectives(minimize, maximize)
    dataset, metadata = _open_sweep(path, allow_incomplete)
    schema = dataset.schema
    objectives, flips = _objective_names(schema, names, flips)
    if "config_id" not in schema.names:
        raise RfsweepError(f"{path}: no config_id column (not a sweep written by rfsweep sweep)")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 0):
        raise RfsweepError(f"top must be an integer >= 0, got {top!r}")
    expression, where_columns = parse_where(where, schema)
    for name in plot_columns:
        _numeric_field(schema, name, "plot")
    wanted = list(dict.fromkeys(["config_id", *names]))
    running = RunningFront(objectives, flips)
    sampler = RunningSample(sample if plot_columns else 0)
    considered = 0
    for batch in scan_batches(dataset, list(dict.fromkeys([*wanted, *plot_columns])), expression, where_columns):
        columns = _objective_columns(batch, wanted, path)
        running.add(columns)
        sampler.add({name: columns[name] if name in columns else batch_column(batch, name, path)
                     for name in plot_columns})
        considered += batch.num_rows
    front_ids = running.rows(["config_id"])["config_id"]
    front_rows = int(front_ids.size)
    ids = front_ids[:top] if top else front_ids
    front = _rows_by_id(dataset, ids).to_pandas()
    if len(front) != len(ids) or np.unique(ids).size != ids.size:
        raise RfsweepError(f"{path}: config_id is not unique (overlapping parts?); "
                           f"{len(ids)} front ids match {len(front)} rows")
    # back into the front's order (best first), whatever order the file had
    import pandas as pd

    order = np.argsort(pd.Index(ids).get_indexer(front["config_id"]))
    front = front.iloc[order].reset_index(drop=True)
    meta = dict(metadata or {})
    meta.pop("counts", None)
    meta["pareto"] = {"source": str(path), "minimize": column_names(minimize, "minimize"),
                      "maximize": column_names(maximize, "maximize"), "where": where or None,
                      "rows_considered": considered, "front_rows": front_rows,
                      "source_counts": (metadata or {}).get("counts")}
    front.attrs["rfsweep"] = meta
    sampled = sampler.frame(list(plot_columns)) if sample and plot_columns else None
    return ParetoResult(front, considered, sampled, meta)


def _rows_by_id(dataset, ids: np.ndarray):
    """Full rows whose config_id is in `ids`, reading only row groups whose id range holds one."""
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = np.sort(ids)
    expression = pc.field("config_id").isin(pa.array(wanted, pa.uint64()))
    tables = []
    for fragment in dataset.get_fragments():
        fragment.ensure_complete_metadata()
        groups = []
        for group in fragment.row_groups:
            stats = (group.statistics or {}).get("config_id")
            if (stats is None or np.searchsorted(wanted, stats["max"], "right")
                    > np.searchsorted(wanted, stats["min"], "left")):
                groups.append(group.id)
        if groups:
            tables.append(fragment.subset(row_group_ids=groups).to_table(schema=dataset.schema, filter=expression))
    return pa.concat_tables(tables) if tables else dataset.schema.empty_table()


def pareto_file(path, minimize=("params", "macs"), maximize=("rf",), where: str | None = None,
                top: int | None = None, allow_incomplete: bool = False):
    """The exact Pareto front of a sweep file (or a directory of parts), as a DataFrame.

    Reads only config_id and the objective columns (with `where`, e.g.
    "out_size>=7, rf<=100", pushed down to pyarrow), finds the front, then
    reads the full rows of the front by config_id. The DataFrame has the
    file's columns, rows sorted by the objectives (best first; `top` keeps the
    first N), and df.attrs["rfsweep"] holds the source metadata plus a
    "pareto" entry. A directory without a _rfsweep.json manifest is an
    incomplete run and is refused unless allow_incomplete=True.
    """
    return pareto_scan(path, minimize, maximize, where, top, allow_incomplete).front


def write_front(df, out_path, metadata: dict | None = None):
    """Write a front DataFrame to Parquet atomically (temp file beside OUT, then os.replace).

    `metadata` (default: df.attrs["rfsweep"], as set by pareto_file) is
    stored under the `rfsweep` key; when it holds the sweep spec and the
    columns are a sweep's, the file gets the sweep's exact column types back
    (pandas turns nullable integer columns into floats), so `rfsweep show
    FRONT.parquet ID` works on it. Returns the path.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .writer import atomic_output

    meta = metadata if metadata is not None else df.attrs.get("rfsweep")
    table = pa.Table.from_pandas(df, preserve_index=False)
    schema = _sweep_schema_of(meta)
    if schema is not None and table.schema.names == schema.names:
        table = table.cast(schema)
    # like a sweep file: no pandas metadata, the rfsweep object when there is one
    table = table.replace_schema_metadata({b"rfsweep": json.dumps(meta).encode()} if meta else None)
    with atomic_output(out_path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)  # verified on read
    return Path(out_path)


def _sweep_schema_of(meta: dict | None):
    if not meta or not isinstance(meta.get("spec"), dict):
        return None
    from .space import spec_from_dict

    try:  # whatever space wrote the file: the registry picks it by the spec's marker key
        return spec_from_dict(meta["spec"]).schema()
    except (RfsweepError, TypeError, KeyError, ValueError):
        return None
