"""Measured latency of stacks and graphs (torch.utils.benchmark), next to rfsweep's exact MACs.

MACs are not time: three 3x3 convs have 0.55x the MACs of one 7x7 but three
kernel launches and three passes over memory. This module builds a stack as
a `torch.nn.Sequential` with exactly the layer fields rfsweep counts, and a
graph (catalog networks, block-space rows, graph JSON) as a module that runs
its nodes in order with the padding rfsweep resolves; it times them on the
user's device and reports median / IQR, achieved GMAC/s and the measured
time ratio beside the MAC ratio.

torch is an optional extra: it is imported only inside these functions, and
a missing torch is bad input (RfsweepError, exit 2) naming the install command.

Conventions:
- A ReLU (in place) follows every conv unless relu=False: a stack's depth is
  its number of nonlinearities (as `compare` says), and the extra pass over
  memory is part of what a stack of small kernels costs. Pools get none.
  AvgPool2d keeps PyTorch's count_include_pad=True (geometry is the same).
- Work: MACs per image from `rfsweep.analyze` x batch; with backward=True the
  step is forward + backward of every conv (input gradient included, as for a
  block inside a network), counted as 3x the forward MACs.
- Timing: warm-up steps (cudnn.benchmark picks its algorithms there), then
  `Timer.adaptive_autorange` (blocks of a fixed number of steps until the
  IQR is under 10% of the median after at least 4 blocks, or max_run_time),
  optionally in several rounds over all stacks; median and IQR are over the
  per-step times of all blocks.
  On CUDA the timer synchronises the device before reading the clock.
"""

from __future__ import annotations

import math
import os
import platform
import time
import timeit
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from .errors import RfsweepError, unknown_name
from .explain import analyze
from .layers import Stack, load_stack
# the builder lives in rfsweep.torch_builder; its names stay importable from here
from .torch_builder import INSTALL_HINT, build_graph_module, build_module, build_network, require_torch  # noqa: F401

DTYPES = ("float32", "float16", "bfloat16")
BACKWARD_WORK = 3  # forward + grad input + grad weight, each the forward's MACs (convs)
TIME_COLUMNS = ("latency_ms", "latency_iqr_ms", "gmacs_per_s")


@dataclass(frozen=True)
class BenchSetup:
    """How to time: device, batch, dtype, layout, direction, threads, run-time budget."""

    device: str = "cpu"
    batch: int = 1
    dtype: str = "float32"
    channels_last: bool = False
    backward: bool = False
    relu: bool = True
    threads: int | None = None     # None: torch's current intra-op thread count
    warmup: int = 2                # untimed steps before timing (>= 1)
    min_run_time: float = 0.2      # seconds per stack before the IQR may stop timing
    max_run_time: float = 2.0      # seconds per stack at most (one block always completes)
    threshold: float = 0.1         # stop once IQR / median is below this (after >= 4 blocks)
    rounds: int = 1                # time all stacks, then all again, ...: load drifts hit every stack alike

    def checked(self) -> "BenchSetup":
        """Validate every field (RfsweepError naming the option); resolve the device string."""
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise RfsweepError(f"--batch must be an integer >= 1, got {self.batch!r}")
        if self.dtype not in DTYPES:
            raise RfsweepError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise RfsweepError(f"--threads must be an integer >= 1, got {self.threads!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 1:
            raise RfsweepError(f"--warmup must be an integer >= 1, got {self.warmup!r}")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise RfsweepError(f"--rounds must be an integer >= 1, got {self.rounds!r}")
        for name in ("min_run_time", "max_run_time", "threshold"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise RfsweepError(f"{name} must be a number > 0, got {value!r}")
        if self.max_run_time < self.min_run_time:
            raise RfsweepError(f"max_run_time ({self.max_run_time}) must be >= min_run_time ({self.min_run_time})")
        return replace(self, device=resolve_device(self.device))


def resolve_device(device: str) -> str:
    """'cpu', 'cuda' or 'cuda:N', checked against this machine (RfsweepError otherwise)."""
    text = str(device).strip().lower()
    if text != "cpu" and text != "cuda" and not (text.startswith("cuda:") and text[5:].isdigit()):
        raise RfsweepError(f"unknown device {device!r}: use cpu, cuda or cuda:N")
    torch = require_torch("timing")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RfsweepError(f"--device {text}: no CUDA device available (torch.cuda.is_available() is False "
                               f"with torch {torch.__version__})")
        index = int(text[5:]) if ":" in text else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise RfsweepError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s)")
        return f"cuda:{index}"
    return "cpu"


def _conv_depth(graph) -> int:
    """Conv layers on the longest path to any node (a chain: its number of convs)."""
    depth: dict[str, int] = {"input": 0}
    for node in graph.nodes:
        depth[node["name"]] = max(depth[i] for i in node["inputs"]) + (node["type"] == "conv")
    return max(depth.values())


# ------------------------------------------------------------------ timing one callable

@dataclass
class Timing:
    """Per-step times of one timed callable (one per block, seconds) and their statistics."""

    times: list[float]
    steps: int

    @property
    def median(self) -> float:
        return _quantile(self.times, 0.5)

    @property
    def iqr(self) -> float:
        return _quantile(self.times, 0.75) - _quantile(self.times, 0.25)

    def merged(self, other: "Timing") -> "Timing":
        return Timing(self.times + other.times, self.steps + other.steps)


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), exact for equal values."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    if low == high or ordered[low] == ordered[high]:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def device_timer(device: str) -> Callable[[], float]:
    """A clock for `device`: perf_counter, after torch.cuda.synchronize on CUDA."""
    if not device.startswith("cuda"):
        return timeit.default_timer
    torch = require_torch()

    def synced() -> float:
        torch.cuda.synchronize(device)
        return timeit.default_timer()

    return synced


def time_callable(step: Callable[[], object], setup: BenchSetup, timer: Callable[[], float] | None = None,
                  label: str = "") -> Timing:
    """Time `step()` with torch.utils.benchmark.Timer.adaptive_autorange after `setup.warmup` calls.

    `timer` replaces the clock (default: device_timer(setup.device), which
    synchronises CUDA); tests inject a fake clock here. Runs with
    setup.threads intra-op threads and cudnn.benchmark on.
    """
    torch = require_torch()
    from torch.utils.benchmark import Timer

    clock = timer if timer is not None else device_timer(setup.device)
    threads = setup.threads or torch.get_num_threads()
    previous_threads = torch.get_num_threads()
    previous_cudnn = torch.backends.cudnn.benchmark
    torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = True
    try:
        for _ in range(setup.warmup):
            step()
        clock()  # on CUDA: wait for the warm-up before timing starts
        measurement = Timer("step()", globals={"step": step}, timer=clock, num_threads=threads,
                            label=label).adaptive_autorange(
            threshold=setup.threshold, min_run_time=setup.min_run_time, max_run_time=setup.max_run_time)
    finally:
        torch.backends.cudnn.benchmark = previous_cudnn
        torch.set_num_threads(previous_threads)
    times = [float(t) for t in measurement.times]
    return Timing(times, len(times) * int(measurement.number_per_run))


def _torch_dtype(torch, name: str):
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def as_network(source, input_size=None, in_channels=None, rank=None):
    """Any network `rfsweep.load_graph` takes (compact string, stack or graph JSON, dict, Stack,
    Graph) as a Graph; a chain keeps its Stack in `graph.chain`."""
    from .graph import Graph, load_graph

    if isinstance(source, Graph) and input_size is None and in_channels is None and rank is None:
        return source
    return load_graph(source, input_size, in_channels, rank)


def network_label(graph) -> str:
    """How rows and messages name a network: a stack's compact string or file name, a graph's name."""
    if graph.chain is not None:
        return graph.chain.name or graph.chain.compact()
    return graph.name or "graph"


def stack_step(stack, setup: BenchSetup):
    """(module, input, step): the built module on the device and a no-argument step to time.

    `stack` is any network as_network takes. With backward, the step
    back-propagates ones from every output (a graph's sinks) to the input.
    """
    torch = require_torch()
    graph = as_network(stack)
    dtype = _torch_dtype(torch, setup.dtype)
    module = build_network(graph, relu=setup.relu).to(device=setup.device, dtype=dtype)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(setup.batch, graph.in_channels, *graph.input_size, generator=generator).to(
        device=setup.device, dtype=dtype)  # (N, C, L), (N, C, H, W) or (N, C, D, H, W): any rank
    if setup.channels_last:
        if graph.rank != 2:
            raise RfsweepError(f"channels_last is a 2-D memory format; this network has rank {graph.rank}")
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if setup.backward:
        module.train()
        x.requires_grad_(True)
        grads = None

        def step():
            nonlocal grads
            module.zero_grad(set_to_none=True)
            x.grad = None
            out = module(x)
            outs = out if isinstance(out, tuple) else (out,)
            if grads is None:
                grads = tuple(torch.ones_like(o) for o in outs)
            torch.autograd.backward(outs, grads)
    else:
        module.eval()

        def step():
            with torch.no_grad():
                module(x)
    return module, x, step


# ------------------------------------------------------------------ stacks, ratios

def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _facts(graph) -> dict:
    """Per-image figures of the whole network (a graph's head included: every node runs)."""
    total = analyze(graph)["total"]
    return {"stack": network_label(graph), "depth": _conv_depth(graph), "params": total["params"],
            "macs": total["macs"]}


def _time_once(graph, setup: BenchSetup, timer) -> Timing:
    """Build, warm up and time one network once; torch failures become one-line RfsweepErrors."""
    torch = require_torch()
    text = network_label(graph)
    try:
        _, _, step = stack_step(graph, setup)
        return time_callable(step, setup, timer, label=text)
    except (RuntimeError, NotImplementedError) as exc:  # unsupported dtype on this device, out of memory
        if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
            raise RfsweepError(f"{text}: out of memory on {setup.device} at batch {setup.batch}; "
                               "lower --batch or --input-size") from None
        raise RfsweepError(f"{text}: torch cannot run it on {setup.device} as {setup.dtype}: "
                           f"{_first_line(exc)}") from None


def time_stacks(stacks: Sequence, setup: BenchSetup, timer: Callable[[], float] | None = None,
                progress: Callable[[int, int, str], None] | None = None) -> list[dict]:
    """One row per network (Stack, Graph or anything as_network takes): stack (its label), depth
    (convs on the longest path), params, macs (per image), work_macs, latency_ms and
    latency_iqr_ms (median and IQR of the per-step block times, all rounds pooled), gmacs_per_s,
    blocks, steps. With setup.rounds > 1 every network is timed once per round, in turn."""
    graphs = [as_network(item) for item in stacks]
    rows = [_facts(graph) for graph in graphs]
    timings: list[Timing | None] = [None] * len(graphs)
    for _ in range(setup.rounds):
        for i, graph in enumerate(graphs):
            if progress is not None:
                progress(i, len(graphs), rows[i]["stack"])
            once = _time_once(graph, setup, timer)
            timings[i] = once if timings[i] is None else timings[i].merged(once)
    work_factor = setup.batch * (BACKWARD_WORK if setup.backward else 1)
    for row, timing in zip(rows, timings):
        work = row["macs"] * work_factor
        row.update({"work_macs": work, "latency_ms": timing.median * 1e3, "latency_iqr_ms": timing.iqr * 1e3,
                    "gmacs_per_s": work / timing.median / 1e9, "blocks": len(timing.times), "steps": timing.steps})
    return rows


def time_stack(stack: Stack, setup: BenchSetup, timer: Callable[[], float] | None = None) -> dict:
    """time_stacks for one stack: its row."""
    return time_stacks([stack], setup, timer)[0]


def add_ratios(rows: list[dict], reference: int = 0) -> list[dict]:
    """macs_ratio and time_ratio of every row against rows[reference] (in place; returns rows)."""
    ref = rows[reference]
    for row in rows:
        row["macs_ratio"] = row["macs"] / ref["macs"] if ref["macs"] else math.nan
        row["time_ratio"] = row["latency_ms"] / ref["latency_ms"]
    return rows


def ratio_text(row: dict) -> str:
    """'0.55x MACs, 0.81x time'."""
    return f"{row['macs_ratio']:.2f}x MACs, {row['time_ratio']:.2f}x time"


def environment(setup: BenchSetup) -> dict:
    """What the numbers were measured on: device, versions, threads, layout, load."""
    torch = require_torch()
    cuda = setup.device.startswith("cuda")
    if cuda:
        name = torch.cuda.get_device_name(setup.device)
    else:
        name = _cpu_name()
    return {"device": setup.device, "device_name": name, "torch": torch.__version__,
            "cuda": torch.version.cuda if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "threads": setup.threads or torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "loadavg": _loadavg(),
            "dtype": setup.dtype, "batch": setup.batch, "channels_last": setup.channels_last,
            "direction": "forward+backward" if setup.backward else "forward", "relu": setup.relu,
            "timer": "torch.utils.benchmark.Timer.adaptive_autorange", "warmup": setup.warmup,
            "min_run_time": setup.min_run_time, "max_run_time": setup.max_run_time,
            "threshold": setup.threshold, "rounds": setup.rounds, "cudnn_benchmark": True,
            "work": "macs x batch" + (" x 3 (forward, grad input, grad weight)" if setup.backward else ""),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


@dataclass
class BenchResult:
    """Rows (first = the reference of the ratios) plus the environment they were measured in."""

    rows: list[dict]
    environment: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"environment": self.environment, "rows": self.rows}


def check_networks(graphs: Sequence, where: Callable[[int, object], str] | None = None) -> None:
    """Bad geometry or a node the builder cannot run is bad input before any timing starts.

    Each network is analysed and built once on torch's meta device (no memory,
    no weights initialised); `where(i, graph)` prefixes error messages.
    """
    torch = require_torch()
    for i, graph in enumerate(graphs):
        try:
            analyze(graph)
            if graph.chain is None:
                with torch.device("meta"):
                    build_graph_module(graph)
        except RfsweepError as exc:
            if where is None:
                raise
            raise RfsweepError(f"{where(i, graph)}: {exc}") from None


def bench(stacks: Sequence = (), setup: BenchSetup = BenchSetup(), input_size: int | None = None,
          in_channels: int | None = None, timer: Callable[[], float] | None = None,
          progress: Callable[[int, int, str], None] | None = None, archs: Sequence[str] = (),
          rank: int | None = None) -> BenchResult:
    """Time every network and compare with the first: stacks (compact string, JSON stack file,
    list, Stack), graphs (graph JSON file, dict, Graph), then the known networks `archs`
    (names from `rfsweep archs`: resnet18, mobilenet_v2, ...). `rank` (1-3) sets the spatial axes of
    compact strings and overrides the files' (Conv1d/Conv3d modules then); `input_size` is one length
    for every axis or one per axis.

    Each row has stack (the network's label), depth (convs on the longest
    path), params, macs (per image, rfsweep's arithmetic of the whole graph,
    head included), work_macs (x batch, x3 with backward), latency_ms and
    latency_iqr_ms (per step), gmacs_per_s, blocks, steps, and macs_ratio /
    time_ratio against the first. The environment (device, torch and cuDNN
    versions, threads, load average before and after) comes with it.
    """
    from .architectures import arch_path

    sources = list(stacks or ()) + [arch_path(name) for name in archs or ()]
    if not sources:
        raise RfsweepError("bench needs at least one STACK, graph file or --arch NAME")
    setup = setup.checked()
    resolved = [as_network(source, input_size, in_channels, rank) for source in sources]
    check_networks(resolved)
    env = environment(setup)
    rows = time_stacks(resolved, setup, timer, progress)
    env["loadavg_after"] = _loadavg()
    return BenchResult(add_ratios(rows), env)


def time_compare_rows(rows: list[dict], input_size: int, in_channels: int, setup: BenchSetup = BenchSetup(),
                      timer: Callable[[], float] | None = None, rank: int = 2) -> dict:
    """Time the rows of rfsweep.analysis.compare in place (latency_ms, latency_iqr_ms, gmacs_per_s,
    time_ratio against the single conv) and return the environment."""
    setup = setup.checked()
    env = environment(setup)
    timed = time_stacks([load_stack(row["stack"], input_size, in_channels, rank) for row in rows], setup, timer)
    for row, measured in zip(rows, timed):
        row.update({k: measured[k] for k in (*TIME_COLUMNS, "work_macs", "blocks", "steps")})
    single = next((row for row in rows if row.get("single")), rows[0])
    for row in rows:
        row["time_ratio"] = row["latency_ms"] / single["latency_ms"]
    env["loadavg_after"] = _loadavg()
    return env


# ------------------------------------------------------------------ sweep files and fronts

@dataclass
class MeasureResult:
    """What measure_file wrote: the output path, rows timed, the setup stored in the metadata."""

    path: Path
    rows: int
    timing: dict
    table: object = None


def _select(dataset, top: int, sort_by: str | None, descending: bool):
    """The first `top` rows in file order (0: all), or the `top` smallest (largest) by a column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if sort_by is None:
        return dataset.head(top) if top else dataset.to_table()
    if sort_by not in dataset.schema.names:
        raise unknown_name("--sort-by: no column", sort_by, dataset.schema.names)
    column = dataset.to_table(columns=[sort_by]).column(sort_by)
    try:  # a stable sort: ties keep file order
        order = pc.array_sort_indices(column, order="descending" if descending else "ascending",
                                      null_placement="at_end")
    except pa.ArrowNotImplementedError:
        raise RfsweepError(f"--sort-by: column {sort_by!r} cannot be sorted ({column.type})") from None
    if top:
        order = order[:top]
    return dataset.take(order)


def _stacks_of_rows(table, metadata: dict | None, path, input_size, in_channels) -> list:
    """Rebuild each row's network from the spec in the metadata and config_id (`Space.network`: a
    chain's stack, a block space's graph), else from a 'stack' column."""
    names = table.schema.names
    spec_dict = (metadata or {}).get("spec")
    if isinstance(spec_dict, dict) and "config_id" in names:
        from .space import spec_from_dict

        spec = spec_from_dict(spec_dict)
        networks = []
        for i in (int(i) for i in table.column("config_id").to_pylist()):
            try:
                network = spec.network(i)
            except RfsweepError as exc:
                raise RfsweepError(f"{path}: {exc}") from None
            if isinstance(network, dict):  # a graph: named by its row (a stack names itself)
                network = {**network, "name": f"config_id {i}"}
            networks.append(as_network(network, input_size, in_channels))
        return networks
    if "stack" in names:
        return [as_network(str(text), input_size, in_channels) for text in table.column("stack").to_pylist()]
    raise RfsweepError(f"{path}: cannot rebuild the stacks: no rfsweep spec metadata with a config_id column, "
                       "and no 'stack' column of compact strings")


def measure_file(path, out, setup: BenchSetup = BenchSetup(), top: int = 20, sort_by: str | None = None,
                 descending: bool = False, input_size: int | None = None, in_channels: int | None = None,
                 allow_incomplete: bool = False, timer: Callable[[], float] | None = None,
                 progress: Callable[[int, int, str], None] | None = None) -> MeasureResult:
    """Time rows of a sweep file, front or directory and write them with latency columns.

    Rows: the first `top` in file order (top=0: all), or the `top` smallest
    by `sort_by` (largest with descending); they are written in that order.
    Each row's stack is rebuilt from the spec in the file's rfsweep metadata
    and its config_id (or from a 'stack' column of compact strings), at the
    spec's input size unless `input_size` is given. The output has the same
    columns and types plus latency_ms, latency_iqr_ms and gmacs_per_s (float64;
    replaced if present), and the rfsweep metadata with a "timing" entry
    (the environment and selection), so `rfsweep pareto OUT --minimize
    latency_ms` and `rfsweep show OUT ID` work. Written to a temporary file
    beside OUT, then renamed.
    """
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from .analysis import _open_sweep
    from .writer import atomic_output, check_output_path

    if isinstance(top, bool) or not isinstance(top, int) or top < 0:
        raise RfsweepError(f"--top must be an integer >= 0, got {top!r}")
    setup = setup.checked()
    out = Path(out)
    check_output_path(out)
    try:
        dataset, metadata = _open_sweep(path, allow_incomplete)
        table = _select(dataset, top, sort_by, descending)
    except (OSError, pa.ArrowException) as exc:
        from .sweep_file import read_error
        raise read_error(path, exc) from None  # a corrupt page: exit 2; out of memory: exit 1
    if table.num_rows == 0:
        raise RfsweepError(f"{path}: no rows to time")
    stacks = _stacks_of_rows(table, metadata, path, input_size, in_channels)
    check_networks(stacks, lambda i, graph: f"{path}: row {i} ({network_label(graph)})")
    env = environment(setup)
    timed = time_stacks(stacks, setup, timer, progress)
    env["loadavg_after"] = _loadavg()
    for name in TIME_COLUMNS:
        values = [row[name] for row in timed]
        if name in table.schema.names:
            table = table.drop_columns([name])
        table = table.append_column(pa.field(name, pa.float64(), nullable=False), pa.array(values, pa.float64()))
    meta = dict(metadata or {})
    source_counts = meta.pop("counts", None)
    timing = {**env, "source": str(path), "rows": table.num_rows, "top": top, "sort_by": sort_by,
              "descending": descending if sort_by else None,
              "input_size": list(stacks[0].input_size), "in_channels": stacks[0].in_channels,
              "source_counts": source_counts,
              "columns": {"latency_ms": "median time of one step (batch images) in ms",
                          "latency_iqr_ms": "interquartile range of the step time in ms",
                          "gmacs_per_s": "work MACs / median time / 1e9"}}
    meta["timing"] = timing
    table = table.replace_schema_metadata({b"rfsweep": json.dumps(meta).encode()})
    with atomic_output(out) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)  # verified on read
    return MeasureResult(out, table.num_rows, timing, table)

