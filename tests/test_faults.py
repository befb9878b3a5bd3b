"""Issue 22: faults under hostile input and interruption (special files, long strings, stale
temporaries, signals at the rename, full disks, out of memory, checksums, metadata, `show`)."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli_helpers import run_cli
from rfsweep import signals
from rfsweep.output import host_tag, temporary_name

RFSWEEP = str(Path(sys.executable).with_name("rfsweep"))
TINY = ["--depth", "1-2", "--kernel", "1,3", "--channels", "8"]
SMALL = ["--depth", "1-3", "--kernel", "1,3,5", "--channels", "8,16"]


def run(*args, cwd, preexec_fn=None, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([RFSWEEP, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec_fn)


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "s.parquet"
    proc = run("sweep", *SMALL, "-q", "-o", out, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr
    return out


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert "Traceback" not in stderr
    return lines[0]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ---------------------------------------------------------------- 0: special files and symlinks

def _writers(sweep_file: Path, out: Path) -> dict[str, list]:
    return {"sweep": ["sweep", *TINY, "-q", "-o", out],
            "pareto": ["pareto", sweep_file, "-o", out],
            "report": ["report", sweep_file, "-o", out],
            "draw": ["draw", "c3x8,c3x8", "-o", out],
            "measure": ["measure", sweep_file, "--top", "1", "-o", out]}


@pytest.mark.parametrize("command", ["sweep", "pareto", "report", "draw", "measure"])
def test_a_fifo_at_out_is_refused_and_kept(capsys, tmp_path, sweep_file, command):
    out = tmp_path / ("out.png" if command == "draw" else "out.html" if command == "report" else "out.parquet")
    os.mkfifo(out)
    code, _, err = run_cli(capsys, *_writers(sweep_file, out)[command])
    assert code == 2, err
    assert "FIFO" in _one_error_line(err)
    assert stat.S_ISFIFO(os.lstat(out).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_a_character_device_at_out_is_never_replaced(capsys, tmp_path):
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # /dev/null's numbers
    except PermissionError:
        device = Path(os.devnull)  # not root: renaming over /dev/null would fail anyway
    code, _, err = run_cli(capsys, "sweep", *TINY, "-q", "-o", device)
    assert code == 2 and "character device" in _one_error_line(err)
    assert stat.S_ISCHR(os.lstat(device).st_mode)


def test_a_symlink_out_writes_through_to_its_target(capsys, tmp_path):
    target = tmp_path / "real.parquet"
    target.write_bytes(b"old")
    link = tmp_path / "link.parquet"
    link.symlink_to(target.name)
    code, _, err = run_cli(capsys, "sweep", *TINY, "-q", "-o", link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == target.name
    assert pq.read_metadata(target).num_rows > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.parquet", "real.parquet"]


def test_a_fifo_among_the_parts_is_refused_not_read(capsys, tmp_path):
    out = tmp_path / "parts"
    out.mkdir()
    os.mkfifo(out / "part-00000-of-00002.parquet")  # reading its footer would block for ever
    code, _, err = run_cli(capsys, "sweep", *TINY, "-q", "--partitions", "2", "-o", out)
    assert code == 2 and "not an rfsweep part" in _one_error_line(err)


# ---------------------------------------------------------------- 1: long stack strings

def test_a_long_stack_string_is_a_stack(capsys, tmp_path):
    long_stack = ",".join(["c3x8"] * 64)  # 319 characters: past NAME_MAX (255), cheap to draw
    code, _, err = run_cli(capsys, "draw", long_stack, "-o", tmp_path / "d.png")
    assert code == 0, err
    assert (tmp_path / "d.png").stat().st_size > 0


@pytest.mark.parametrize("argv", [["show", "NAME", "1"], ["sweep", "--depth", "1", "-o", "NAME"],
                                  ["sweep", "--spec", "NAME"], ["pareto", "NAME"]],
                         ids=["show", "sweep-o", "sweep-spec", "pareto"])
def test_a_path_too_long_is_bad_input_not_a_crash(capsys, argv):
    name = ",".join(["c3x8"] * 2000)
    code, _, err = run_cli(capsys, *[name if a == "NAME" else a for a in argv])
    assert code == 2, err
    line = _one_error_line(err)
    assert "OSError" not in line and len(line) < 600


# ---------------------------------------------------------------- 4: stale temporaries

def test_stale_temporary_of_a_dead_writer_is_removed_and_a_live_ones_kept(capsys, tmp_path):
    out = tmp_path / "grid.parquet"
    dead = tmp_path / temporary_name(out.name, _dead_pid())
    old_style = tmp_path / f".{out.name}.{_dead_pid()}.tmp"  # names without a host
    live = tmp_path / temporary_name(out.name, os.getppid())
    other_host = tmp_path / f".{out.name}.{_dead_pid()}.{host_tag()}x.tmp"
    for path in (dead, old_style, live, other_host):
        path.write_bytes(b"PAR1 half-written")
    code, _, err = run_cli(capsys, "sweep", *TINY, "-q", "-o", out)
    assert code == 0, err
    assert not dead.exists() and not old_style.exists()
    assert live.exists() and other_host.exists()
    assert dead.name in err and "removed" in err


def test_sigkilled_sweep_leaves_a_temporary_that_the_next_run_removes(tmp_path):
    out = tmp_path / "grid.parquet"
    big = ["--depth", "1-5", "--kernel", "1,3,5,7", "--stride", "1,2", "--dilation", "1,2",
           "--channels", "16,32,64", "--yes"]
    proc = subprocess.Popen([RFSWEEP, "sweep", *big, "-q", "-o", str(out)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp = tmp_path / temporary_name(out.name, proc.pid)
    try:
        for _ in range(1200):
            if tmp.exists() and tmp.stat().st_size > 0 or proc.poll() is not None:
                break
            subprocess.run(["sleep", "0.05"])
        assert tmp.exists() and proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert tmp.exists()  # nothing can catch SIGKILL
    again = run("sweep", *TINY, "-q", "-o", out, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.parquet"]
    assert f"removed {tmp}" in again.stderr


def test_partitioned_runs_remove_stale_part_temporaries(capsys, tmp_path):
    out = tmp_path / "parts"
    code, _, err = run_cli(capsys, "sweep", *TINY, "-q", "--partitions", "2", "-o", out)
    assert code == 0, err
    stale = out / temporary_name("part-00001-of-00002.parquet", _dead_pid())
    stale_manifest = out / temporary_name("_rfsweep.json", _dead_pid())
    stale.write_bytes(b"PAR1")
    stale_manifest.write_text("{")
    code, _, err = run_cli(capsys, "sweep", *TINY, "-q", "--partitions", "2", "-o", out)  # all parts kept
    assert code == 0, err
    assert not stale.exists() and not stale_manifest.exists()
    assert "removed" in err


# ---------------------------------------------------------------- 5: a signal after the rename

def test_a_signal_during_the_rename_reports_the_complete_output(capsys, tmp_path, monkeypatch):
    import rfsweep.output as output

    out = tmp_path / "grid.parquet"
    real_replace = os.replace

    def replace_then_signal(src, dst):
        real_replace(src, dst)
        os.kill(os.getpid(), signal.SIGTERM)  # lands right after the rename

    monkeypatch.setattr(output.os, "replace", replace_then_signal)
    monkeypatch.setattr(signals, "_received", None)
    monkeypatch.setattr(signals, "_committed", [])
    code, _, err = run_cli(capsys, "sweep", *TINY, "-q", "-o", out)
    assert code == 143
    line = err.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in err
    assert f"{out} is complete and in place" in line, line
    assert pq.read_metadata(out).num_rows > 0


# ---------------------------------------------------------------- 7: full disk, out of memory

def _no_writes():
    """In the child: every write to a regular file fails with EFBIG, as on a full disk."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


@pytest.mark.parametrize("command", ["sweep", "pareto", "report", "draw"])
def test_a_disk_full_at_start_exits_1_and_leaves_nothing(tmp_path, sweep_file, command):
    out = tmp_path / ("out.png" if command == "draw" else "out.html" if command == "report" else "out.parquet")
    proc = run(*_writers(sweep_file, out)[command], cwd=tmp_path, preexec_fn=_no_writes)
    assert proc.returncode == 1, proc.stderr
    line = _one_error_line(proc.stderr)
    assert "cannot write" in line  # OUT, or (report: its reader spills to disk first) while reading
    assert list(tmp_path.iterdir()) == []


def test_out_of_memory_reading_is_exit_1(capsys, sweep_file, monkeypatch):
    import rfsweep.analysis as analysis

    def malloc_fails(*args, **kwargs):
        raise pa.ArrowMemoryError("malloc of size 4294967296 failed")

    monkeypatch.setattr(analysis, "_pareto_scan", malloc_fails)
    code, _, err = run_cli(capsys, "pareto", sweep_file)
    assert code == 1
    assert "out of memory" in _one_error_line(err)


# ---------------------------------------------------------------- 8: smaller ones

def test_error_lines_abbreviate_huge_integers(capsys):
    huge = "9" * 400
    code, _, err = run_cli(capsys, "sweep", "--channels", huge, "--dry-run")
    assert code == 2
    line = _one_error_line(err)
    assert not re.search(r"\d{25}", line), line
    assert "400 digits" in line


def _with_metadata(source: Path, out: Path, change) -> Path:
    table = pq.read_table(source)
    raw = pq.read_metadata(source).metadata[b"rfsweep"]
    meta = json.loads(raw)
    change(meta)
    pq.write_table(table.replace_schema_metadata({b"rfsweep": json.dumps(meta).encode()}), out)
    return out


def test_show_refuses_a_spec_that_disagrees_with_the_row(capsys, tmp_path, sweep_file):
    # the file's kernels are 1,3,5; the metadata claims 1,3,7: a row with kernel 5 would read as 7
    altered = _with_metadata(sweep_file, tmp_path / "k7.parquet", lambda m: m["spec"].update(kernel=[1, 3, 7]))
    table = pq.read_table(sweep_file, columns=["config_id", "l1_kernel"]).to_pylist()
    row = next(r["config_id"] for r in table if r["l1_kernel"] == 5)
    code, _, err = run_cli(capsys, "show", altered, row)
    assert code == 2
    line = _one_error_line(err)
    assert "l1_kernel" in line and "5" in line and "7" in line


def test_show_of_a_pruned_id_says_why(capsys, tmp_path):
    out = tmp_path / "pruned.parquet"
    code, _, err = run_cli(capsys, "sweep", *TINY, "--max-params", "100", "-q", "-o", out)
    assert code == 0, err
    rows = set(pq.read_table(out, columns=["config_id"]).column(0).to_pylist())
    pruned = next(i for i in range(1000) if i not in rows)
    code, stdout, err = run_cli(capsys, "show", out, pruned)
    assert code == 0 and stdout
    assert "not a row" in err and "max_params 100" in err
    code, _, err = run_cli(capsys, "show", out, pruned, "--strict")
    assert code == 2 and "max_params" in _one_error_line(err)
    code, _, err = run_cli(capsys, "show", out, min(rows), "--strict")
    assert code == 0 and err == ""


def test_show_of_an_id_filtered_by_pareto_says_so(capsys, tmp_path, sweep_file):
    front = tmp_path / "front.parquet"
    code, _, err = run_cli(capsys, "pareto", sweep_file, "-o", front)
    assert code == 0, err
    kept = set(pq.read_table(front, columns=["config_id"]).column(0).to_pylist())
    dropped = next(i for i in pq.read_table(sweep_file, columns=["config_id"]).column(0).to_pylist()
                   if i not in kept)
    code, _, err = run_cli(capsys, "show", front, dropped, "--strict")
    assert code == 2 and "filtered" in _one_error_line(err)


# ---------------------------------------------------------------- 9: checksums

def _flip_inside(path: Path, out: Path, column: str) -> Path:
    """A copy of `path` with 8 bytes flipped near the end of `column`'s first chunk (page data)."""
    chunk = next(c for c in (pq.ParquetFile(path).metadata.row_group(0).column(i)
                             for i in range(pq.ParquetFile(path).metadata.num_columns))
                 if c.path_in_schema == column)
    data = bytearray(path.read_bytes())
    start = (chunk.dictionary_page_offset or chunk.data_page_offset) + chunk.total_compressed_size - 12
    for k in range(start, start + 8):
        data[k] ^= 0xFF
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("argv", [["pareto", "F"], ["report", "F", "-o", "r.html"], ["show", "F", "0"],
                                  ["measure", "F", "--top", "1", "-o", "m.parquet"]],
                         ids=["pareto", "report", "show", "measure"])
def test_a_flipped_byte_is_an_error_naming_the_file(capsys, tmp_path, sweep_file, argv):
    bad = _flip_inside(sweep_file, tmp_path / "bad.parquet", "rf")
    code, _, err = run_cli(capsys, *[bad if a == "F" else tmp_path / a if "." in a else a for a in argv])
    assert code == 2, err
    line = _one_error_line(err)
    assert "bad.parquet" in line and "checksum" in line


def test_partitions_and_fronts_carry_page_checksums(capsys, tmp_path, sweep_file):
    out = tmp_path / "parts"
    code, _, err = run_cli(capsys, "sweep", *SMALL, "-q", "--partitions", "2", "-o", out)
    assert code == 0, err
    part = out / "part-00001-of-00002.parquet"
    _flip_inside(part, part, "rf")
    code, _, err = run_cli(capsys, "pareto", out)
    assert code == 2 and "checksum" in _one_error_line(err)
    front = tmp_path / "front.parquet"
    assert run_cli(capsys, "pareto", sweep_file, "-o", front)[0] == 0
    row = pq.read_table(front, columns=["config_id"]).column(0)[0].as_py()
    _flip_inside(front, front, "rf")
    code, _, err = run_cli(capsys, "show", front, row)
    assert code == 2 and "checksum" in _one_error_line(err)


# ---------------------------------------------------------------- 10: one metadata validation

@pytest.mark.parametrize("change, words", [
    (lambda m: m["spec"].update(bogus=1), "unknown spec key 'bogus'"),
    (lambda m: m["spec"].update(depth=[1, 2]), "does not match the rows"),
], ids=["unknown-key", "other-columns"])
def test_every_reader_validates_metadata_the_same_way(capsys, tmp_path, sweep_file, change, words):
    bad = _with_metadata(sweep_file, tmp_path / "bad.parquet", change)
    for argv in (["show", bad, "0"], ["pareto", bad], ["measure", bad, "--top", "1", "-o", tmp_path / "m.parquet"]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and words in _one_error_line(err), (argv, err)
    code, _, err = run_cli(capsys, "report", bad, "-o", tmp_path / "r.html")
    assert code == 0, err
    assert words in err
    assert "No valid rfsweep metadata" in (tmp_path / "r.html").read_text()


def test_a_report_of_metadata_that_is_not_json_says_so(capsys, tmp_path, sweep_file):
    table = pq.read_table(sweep_file)
    bad = tmp_path / "bad.parquet"
    pq.write_table(table.replace_schema_metadata({b"rfsweep": b"{not json"}), bad)
    code, _, err = run_cli(capsys, "report", bad, "-o", tmp_path / "r.html")
    assert code == 0, err
    assert "not valid JSON" in err
    assert "not valid JSON" in (tmp_path / "r.html").read_text()
    code, _, err = run_cli(capsys, "pareto", bad)
    assert code == 2 and "not valid JSON" in _one_error_line(err)


def test_per_side_padding_errors_name_the_node(capsys, tmp_path):
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps({"nodes": [{"name": "stem", "type": "conv", "inputs": ["input"], "kernel": 3,
                                            "padding": [[-1, 2], [3, 4]], "out_channels": 8}]}))
    code, _, err = run_cli(capsys, "explain", graph)
    assert code == 2
    line = _one_error_line(err)
    assert "'stem'" in line and "-1" in line


@pytest.mark.parametrize("body", ["raise SystemExit(7)", "raise KeyboardInterrupt"], ids=["SystemExit", "Ctrl-C"])
def test_a_torch_callable_that_exits_is_bad_input(capsys, tmp_path, body):
    pytest.importorskip("torch")
    model = tmp_path / "model.py"
    model.write_text(f"def build():\n    {body}\n")
    code, _, err = run_cli(capsys, "explain", "--torch", f"{model}:build")
    assert code == 2
    assert "build() failed" in _one_error_line(err)


@pytest.mark.parametrize("spec", [
    '[[stage]]\nblock = ["basic"]\nrepeats = [40000]\nkernel = [3]\nstride = [1]\nwidth = [8]\n',
    '[[stage]]\nblock = ["basic"]\nrepeats = [1,2,3,4,5,6,7,8,9,10]\nkernel = [3,5,7,9,11,13,15,17,19,21]\n'
    'stride = [1]\nwidth = [8,16,24,32,40,48,56,64,72,80]\n' * 1,
], ids=["65536-layers", "past-64-bit-ids"])
def test_dry_run_refuses_what_the_run_refuses(capsys, tmp_path, spec):
    toml = tmp_path / "space.toml"
    toml.write_text(spec if "40000" in spec else spec * 8)  # 1000 choices per stage, 8 stages: 10**24 ids
    code, _, err = run_cli(capsys, "sweep", "--spec", toml, "-q", "-o", tmp_path / "x.parquet", "--yes")
    assert code == 2
    real = _one_error_line(err)
    code, out, err = run_cli(capsys, "sweep", "--spec", toml, "--dry-run")
    assert code == 2 and out == ""
    assert _one_error_line(err) == real
    assert not re.search(r"\d{25}|(\d{1,3},){8}", real), real
