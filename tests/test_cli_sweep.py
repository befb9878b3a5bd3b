"""`rfsweep sweep` and `rfsweep show` as a user runs them: real subprocesses of the console script.

Contract sections 4 (sweep, Parquet file, metadata) and 5 (exit codes, one-line
errors, no tracebacks, nothing half-written at OUT, 130/143 after signals).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rfsweep.output import temporary_name

RFSWEEP = str(Path(sys.executable).with_name("rfsweep"))
SPEC_KEYS = {"depth", "types", "kernel", "stride", "dilation", "padding", "channels", "input_size",
             "in_channels", "bias", "min_rf", "max_rf", "max_params", "max_macs", "min_out_size"}
TINY = ["--depth", "1-2", "--kernel", "1,3", "--channels", "8"]


def run(*args, cwd, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([RFSWEEP, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def rfsweep_meta(path) -> dict:
    return json.loads(pq.read_metadata(path).metadata[b"rfsweep"])


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def assert_no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


# ---------------------------------------------------------------- sweep: success paths

def test_sweep_writes_default_file_with_normalised_spec(tmp_path):
    proc = run("sweep", *TINY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    out = tmp_path / "sweep.parquet"
    assert out.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.parquet"]  # no temporary left
    frame = pd.read_parquet(out)
    meta = rfsweep_meta(out)
    assert set(meta["spec"]) == SPEC_KEYS
    spec = meta["spec"]
    assert spec["depth"] == [1, 2] and spec["kernel"] == [1, 3] and spec["channels"] == [8]
    assert spec["types"] == ["conv"] and spec["stride"] == [1, 2] and spec["dilation"] == [1, 2]
    assert spec["padding"] == ["same"] and spec["input_size"] == 224 and spec["in_channels"] == 3
    assert spec["bias"] is True
    assert all(spec[key] is None for key in ("min_rf", "max_rf", "max_params", "max_macs", "min_out_size"))
    for key in ("depth", "kernel", "stride", "dilation", "channels"):
        assert all(type(v) is int for v in spec[key]), key
    assert isinstance(meta["version"], str) and meta["version"]
    counts = meta["counts"]
    assert counts["enumerated"] == 8 + 64 == counts["invalid"] + counts["pruned"] + counts["written"]
    assert counts["written"] == len(frame) == 72
    assert frame["config_id"].tolist() == list(range(72))
    assert {"config_id", "depth", "rf", "jump", "out_size", "out_channels", "params", "macs", "flops",
            "l1_kernel", "l1_stride", "l1_dilation", "l1_padding", "l1_channels", "l2_kernel"} <= set(frame.columns)
    assert "l1_type" not in frame.columns  # only when --types has several
    assert "wrote 72 rows" in proc.stderr


def test_sweep_output_path(tmp_path):
    (tmp_path / "results").mkdir()
    proc = run("sweep", *TINY, "--types", "conv,maxpool", "-o", "results/grid.parquet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "results" / "grid.parquet"
    assert out.is_file() and not (tmp_path / "sweep.parquet").exists()
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["grid.parquet"]
    frame = pd.read_parquet(out)
    assert set(frame["l1_type"].dropna()) == {"conv", "maxpool"}
    assert rfsweep_meta(out)["spec"]["types"] == ["conv", "maxpool"]


def test_sweep_spec_file_with_flags_overriding(tmp_path):
    (tmp_path / "grid.toml").write_text(
        'depth = "1-2"\nkernel = [3, 5]\nstride = [1]\ndilation = [1]\npadding = ["same", 0]\n'
        'channels = [4, 8]\ninput_size = 32\nin_channels = 1\nmax_rf = 7\nmin_out_size = 20\n')
    proc = run("sweep", "--spec", "grid.toml", "--kernel", "1,3", "--input-size", "24", "-o", "g.parquet",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    spec = rfsweep_meta(tmp_path / "g.parquet")["spec"]
    assert set(spec) == SPEC_KEYS
    assert spec["kernel"] == [1, 3] and spec["input_size"] == 24  # flags win
    assert spec["depth"] == [1, 2] and spec["padding"] == ["same", 0] and spec["channels"] == [4, 8]
    assert spec["in_channels"] == 1 and spec["max_rf"] == 7 and spec["min_out_size"] == 20  # from the file
    frame = pd.read_parquet(tmp_path / "g.parquet")
    assert len(frame) > 0
    assert frame["rf"].max() <= 7 and frame["out_size"].min() >= 20
    assert set(frame["l1_kernel"]) <= {1, 3}


def test_sweep_dry_run_writes_nothing(tmp_path):
    proc = run("sweep", *TINY, "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.iterdir()) == []
    assert "72" in proc.stdout  # the grid size


def test_sweep_quiet_prints_nothing_on_stderr(tmp_path):
    proc = run("sweep", *TINY, "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert (tmp_path / "sweep.parquet").is_file()


def test_first_run_says_it_compiles_and_new_channels_do_not_compile(tmp_path):
    """A fresh numba cache (a fresh install) compiles once, and says so; another --channels
    (other narrow column types) on that cache compiles nothing (issue 14)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))

    def sweep(*args):
        proc = subprocess.run([RFSWEEP, "sweep", *TINY[:-2], *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    first = sweep("--channels", "8")
    assert first.count("compiling the kernel (first run only)") == 1
    assert "wrote" in first and "M stacks/s" in first
    for channels in ("300", "8,70000"):  # uint16 and uint32 channel columns, uint64 params
        again = sweep("--channels", channels)
        assert "compiling" not in again and "wrote" in again
    assert "compiling" not in sweep("--channels", "8", "--quiet")

# ---------------------------------------------------------------- show vs explain

def test_show_equals_explain_of_its_compact_stack(tmp_path):
    proc = run("sweep", "--depth", "2", "--types", "conv,maxpool", "--kernel", "3", "--stride", "1,2",
               "--dilation", "1,2", "--channels", "8,16", "--no-bias", "--input-size", "31",
               "--in-channels", "5", "-o", "s.parquet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_parquet(tmp_path / "s.parquet")
    # a conv then a pool, a pool then a strided dilated conv, two convs
    picks = [frame[(frame["l1_type"] == "conv") & (frame["l2_type"] == "maxpool")].iloc[0],
             frame[(frame["l1_type"] == "maxpool") & (frame["l2_dilation"] == 2) & (frame["l2_stride"] == 2)].iloc[0],
             frame[(frame["l1_type"] == "conv") & (frame["l2_type"] == "conv")].iloc[-1]]
    for row in picks:
        config_id = int(row["config_id"])
        shown = run("show", "s.parquet", config_id, "--format", "json", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        shown_json = json.loads(shown.stdout)
        explained = run("explain", shown_json["stack"], "--input-size", 31, "--in-channels", 5,
                        "--format", "json", cwd=tmp_path)
        assert explained.returncode == 0, explained.stderr
        explained_json = json.loads(explained.stdout)
        assert shown_json["total"] == explained_json["total"]
        assert shown_json["layers"] == explained_json["layers"]
        for key in ("rf", "jump", "out_size", "out_channels", "params", "macs", "flops"):
            assert shown_json["total"][key] == int(row[key]), (config_id, key)
        for layer in shown_json["stack"].split(","):  # --no-bias survives the round trip
            assert layer.startswith("mp") or layer.endswith("nb"), shown_json["stack"]


# ---------------------------------------------------------------- bad input: exit 2, one line, no traceback

def _make_parquet_without_metadata(path):
    pq.write_table(pa.table({"config_id": pa.array([0, 1], pa.uint64())}), path)


# name: (argv, setup(tmp) -> None, words the first line must contain)
BAD = {
    "unknown toml key": (["sweep", "--spec", "s.toml"], lambda d: (d / "s.toml").write_text("kernels = [3]\n"),
                         ["kernels"]),
    "malformed toml": (["sweep", "--spec", "s.toml"], lambda d: (d / "s.toml").write_text("depth = [1,\n"),
                       ["s.toml"]),
    "toml wrong type": (["sweep", "--spec", "s.toml"], lambda d: (d / "s.toml").write_text('stride = "x"\n'),
                        ["stride"]),
    "missing spec file": (["sweep", "--spec", "nope.toml"], None, ["nope.toml"]),
    "depth backwards": (["sweep", "--depth", "4-1"], None, ["depth"]),
    "depth not a number": (["sweep", "--depth", "x"], None, ["depth"]),
    "kernel zero": (["sweep", "--kernel", "0"], None, ["kernel"]),
    "unknown type": (["sweep", "--types", "conv,foo"], None, ["types", "foo"]),
    "negative padding": (["sweep", "--padding=-1"], None, ["padding"]),
    "padding full": (["sweep", "--padding", "full"], None, ["padding", "full"]),
    "output dir missing": (["sweep", *TINY, "-o", "missing/out.parquet"], None, ["missing"]),
    "output parent is a file": (["sweep", *TINY, "-o", "afile/out.parquet"],
                                lambda d: (d / "afile").write_text("x"), ["afile"]),
    "output is a directory": (["sweep", *TINY, "-o", "adir"], lambda d: (d / "adir").mkdir(), ["adir"]),
    "threads zero": (["sweep", *TINY, "--threads", "0"], None, ["threads"]),
    "negative limit": (["sweep", *TINY, "--max-rf=-3"], None, ["rf"]),
    "huge grid without --yes": (["sweep", "--depth", "1-8"], None, ["--yes"]),
    "int64 overflow": (["sweep", "--channels", "1000000", "--input-size", "1000000", "--depth", "1-10"], None,
                       ["64", "channels"]),
    "show non-parquet": (["show", "junk.parquet", "0"], lambda d: (d / "junk.parquet").write_text("not parquet"),
                         ["junk.parquet"]),
    "show missing file": (["show", "absent.parquet", "0"], None, ["absent.parquet"]),
    "show without rfsweep metadata": (["show", "plain.parquet", "0"],
                                      lambda d: _make_parquet_without_metadata(d / "plain.parquet"), ["rfsweep"]),
    "show id out of range": (["show", "ok.parquet", "72"], "sweep", ["72"]),
    "show negative id": (["show", "ok.parquet", "--", "-1"], "sweep", ["-1"]),
    "show pool at a duplicate position": (["show", "pools.parquet", "3"], "pools", ["3"]),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Run every BAD case at once (they are independent processes; 2 cores, ~1 s each)."""
    root = tmp_path_factory.mktemp("bad")
    # shared inputs for the `show` cases
    good = root / "_inputs"
    good.mkdir()
    assert run("sweep", *TINY, "-q", "-o", "ok.parquet", cwd=good).returncode == 0
    # per layer: c1x8, c1d2x8, mp1, mp1 (duplicate dilation position, invalid) -> id 3 is a pool dup
    assert run("sweep", "--depth", "1", "--types", "conv,maxpool", "--kernel", "1", "--stride", "1",
               "--channels", "8", "-q", "-o", "pools.parquet", cwd=good).returncode == 0
    dirs = {}
    for name, (_, setup, _) in BAD.items():
        case = root / name.replace(" ", "_").replace("-", "")
        case.mkdir()
        if setup == "sweep":
            (case / "ok.parquet").write_bytes((good / "ok.parquet").read_bytes())
        elif setup == "pools":
            (case / "pools.parquet").write_bytes((good / "pools.parquet").read_bytes())
        elif setup is not None:
            setup(case)
        dirs[name] = case
    before = {name: sorted(p.name for p in d.iterdir()) for name, d in dirs.items()}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run, *BAD[name][0], cwd=dirs[name], timeout=60) for name in BAD}
        results = {name: future.result() for name, future in futures.items()}
    after = {name: sorted(p.name for p in d.iterdir()) for name, d in dirs.items()}
    return {name: (results[name], before[name], after[name]) for name in BAD}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_exits_2_with_one_clear_line(name, bad_runs):
    proc, before, after = bad_runs[name]
    words = BAD[name][2]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert_no_traceback(proc)
    lines = proc.stderr.strip().splitlines()
    assert lines, "no message on stderr"
    first = lines[0]
    assert first.startswith("error:"), first
    for word in words:
        assert word in first, (word, first)
    assert proc.stdout == ""
    assert after == before, "a failed run left files behind"


# ---------------------------------------------------------------- interruption

BIG = ["--depth", "1-5", "--kernel", "1,3,5,7", "--stride", "1,2", "--dilation", "1,2",
       "--channels", "16,32,64", "--yes"]  # 260M stacks, ~570 MB: tens of seconds
MID_RUN_BYTES = 1 << 20


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupt"),
                                                (signal.SIGTERM, 143, "terminat")], ids=["SIGINT", "SIGTERM"])
def test_signal_leaves_previous_output_byte_for_byte(tmp_path, signum, code, word):
    out = tmp_path / "grid.parquet"
    assert run("sweep", *TINY, "-q", "-o", out, cwd=tmp_path).returncode == 0
    previous = sha256(out)
    proc = subprocess.Popen([RFSWEEP, "sweep", *BIG, "-q", "-o", str(out)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tmp = tmp_path / temporary_name(out.name, proc.pid)
    try:
        # wait until row groups are streaming into the temporary file: the kernel is compiled
        # (a cold numba cache takes a while) and the run is half-written
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if tmp.exists() and tmp.stat().st_size > MID_RUN_BYTES:
                break
            time.sleep(0.05)
        assert tmp.exists(), f"no temporary file {tmp.name} (exit {proc.poll()}): {os.listdir(tmp_path)}"
        assert tmp.stat().st_size > MID_RUN_BYTES, "the temporary file never grew"
        assert proc.poll() is None, "the sweep finished before it could be interrupted"
        proc.send_signal(signum)
        sent = time.monotonic()
        stdout, stderr = proc.communicate(timeout=30)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, (proc.returncode, stderr)
    assert waited < 5, f"took {waited:.1f} s to stop"
    assert "Traceback" not in stderr
    assert word in stderr.lower(), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert not tmp.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.parquet"]
    assert sha256(out) == previous


# ---------------------------------------------------------------- a full disk

def _small_file_limit():
    """In the child: writes past 1 MB fail with EFBIG, as on a full disk (no SIGXFSZ kill)."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))


def test_write_failure_mid_run_keeps_previous_output(tmp_path):
    out = tmp_path / "grid.parquet"
    assert run("sweep", *TINY, "-q", "-o", out, cwd=tmp_path).returncode == 0
    previous = sha256(out)
    proc = subprocess.run([RFSWEEP, "sweep", "-q", "-o", str(out)], cwd=tmp_path, capture_output=True,
                          text=True, preexec_fn=_small_file_limit, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write") and "grid.parquet" in lines[0], lines
    assert "Traceback" not in proc.stderr
    assert sha256(out) == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.parquet"]
