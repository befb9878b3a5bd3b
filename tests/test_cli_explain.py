"""`rfsweep explain`: output formats and the bad-input contract (exit 2, one 'error:' line, no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import run_cli

SCRIPT = Path(sys.executable).parent / "rfsweep"

LAYER_KEYS = {"index", "type", "kernel", "stride", "padding", "dilation", "groups", "out_channels",
              "out_size", "rf", "jump", "start", "params", "macs", "flops"}
TOTAL_KEYS = {"rf", "jump", "start", "out_size", "out_channels", "eff_padding", "params", "macs", "flops"}


def run_inprocess(capsys, *argv):
    """Call the console entry point in-process: (exit code, stdout, stderr)."""
    return run_cli(capsys, *argv)


def run_script(*argv, cwd=None):
    assert SCRIPT.exists(), f"console script {SCRIPT} is not installed next to {sys.executable}"
    env = {key: value for key, value in os.environ.items() if key != "RFSWEEP_DEBUG"}
    return subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)


def one_json_object(text):
    """Exactly one JSON object and nothing else (bar whitespace) on stdout."""
    decoder = json.JSONDecoder()
    obj, end = decoder.raw_decode(text.lstrip())
    assert text.lstrip()[end:].strip() == "", f"more than one JSON value on stdout: {text!r}"
    assert isinstance(obj, dict)
    return obj


def check_contract_keys(obj):
    assert set(obj) >= {"input", "layers", "total"}
    assert set(obj["input"]) >= {"size", "channels"}
    for row in obj["layers"]:
        assert set(row) >= LAYER_KEYS, LAYER_KEYS - set(row)
    assert set(obj["total"]) >= TOTAL_KEYS, TOTAL_KEYS - set(obj["total"])


# ------------------------------------------------------------------ success

def test_json_three_3x3(capsys):
    code, out, err = run_inprocess(capsys, "explain", "c3x64,c3x64,c3x64", "--in-channels", "64",
                                   "--format", "json")
    assert code == 0, err
    obj = one_json_object(out)
    check_contract_keys(obj)
    assert obj["input"] == {"size": 224, "channels": 64}
    assert obj["total"]["rf"] == 7
    assert obj["total"]["params"] == 110_784           # 3 * (9*64*64 + 64)
    assert [row["index"] for row in obj["layers"]] == [1, 2, 3]
    assert [row["rf"] for row in obj["layers"]] == [3, 5, 7]


def test_json_contract_example(capsys):
    code, out, err = run_inprocess(capsys, "explain", "c7s2p3x64", "--format", "json")
    assert code == 0, err
    obj = one_json_object(out)
    assert obj["input"] == {"size": 224, "channels": 3}
    expected = {"index": 1, "type": "conv", "kernel": 7, "stride": 2, "padding": 3, "dilation": 1,
                "groups": 1, "out_channels": 64, "out_size": 112, "rf": 7, "jump": 2, "start": 0.0,
                "params": 9472, "macs": 118013952, "flops": 236027904}
    assert {key: obj["layers"][0][key] for key in expected} == expected


def test_table_tells_the_rf_story(capsys):
    code, out, err = run_inprocess(capsys, "explain", "c3x64,c3x64,c3x64", "--in-channels", "64")
    assert code == 0, err
    assert err == ""
    story = [line for line in out.splitlines() if "sees" in line]
    assert story, out
    assert any("7" in line for line in story), story          # ... so it sees 5 + 2*1 = 7
    assert "110,784" in out or "110784" in out                  # the stack's params
    assert "200,768" in out or "200768" in out                  # one 7x7 conv's params


def test_input_size_flag_changes_out_size(capsys):
    code, out, _ = run_inprocess(capsys, "explain", "c3s2", "--input-size", "32", "--format", "json")
    assert code == 0
    assert one_json_object(out)["total"]["out_size"] == 16    # floor((32 + 2 - 3)/2) + 1


def test_json_file_and_flag_override(capsys, tmp_path):
    path = tmp_path / "stem.json"
    path.write_text(json.dumps({"input_size": 112, "in_channels": 3, "layers": [
        {"type": "conv", "kernel": 7, "stride": 2, "padding": 3, "out_channels": 64},
        {"type": "maxpool", "kernel": 3, "stride": 2, "padding": 1}]}))
    code, out, err = run_inprocess(capsys, "explain", str(path), "--format", "json")
    assert code == 0, err
    obj = one_json_object(out)
    assert obj["input"]["size"] == 112
    assert obj["total"]["out_size"] == 28            # 112 -> 56 -> 28
    assert obj["total"]["rf"] == 11                  # 7 + 2*2
    # explicit flags override the file's input_size
    code, out, err = run_inprocess(capsys, "explain", str(path), "--input-size", "224", "--format", "json")
    assert code == 0, err
    assert one_json_object(out)["total"]["out_size"] == 56


def test_json_list_file(capsys, tmp_path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([{"type": "conv", "kernel": 3, "out_channels": 8},
                                {"type": "avgpool", "kernel": 2}]))
    code, out, err = run_inprocess(capsys, "explain", str(path), "--input-size", "8", "--format", "json")
    assert code == 0, err
    obj = one_json_object(out)
    assert obj["total"]["out_size"] == 4 and obj["total"]["rf"] == 4 and obj["total"]["out_channels"] == 8


def test_subprocess_json(tmp_path):
    proc = run_script("explain", "c3x64,c3x64,c3x64", "--in-channels", "64", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    obj = one_json_object(proc.stdout)
    check_contract_keys(obj)
    assert obj["total"]["rf"] == 7 and obj["total"]["params"] == 110_784
    assert proc.stderr == ""


def test_subprocess_table(tmp_path):
    proc = run_script("explain", "c3x64,c3x64,c3x64", "--in-channels", "64", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "sees" in proc.stdout


def test_subprocess_bad_input(tmp_path):
    proc = run_script("explain", "c3x64,c7p0", "--input-size", "5", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines()[0].startswith("error:")
    assert "layer 2" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_subprocess_missing_file(tmp_path):
    proc = run_script("explain", "no/such/net.json", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "net.json" in proc.stderr.splitlines()[0]
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- bad input

# (id, argv after "explain", files to write into tmp_path, substrings the first stderr line must hold)
BAD_INPUTS = [
    ("empty-token", ["c3x64,,c3"], {}, ["layer 2"]),
    ("garbage-token", ["c3x64,q5"], {}, ["layer 2", "q5"]),
    ("empty-string", [""], {}, ["empty"]),
    ("negative-stride-compact", ["c3x64,c3s-2"], {}, ["layer 2"]),
    ("negative-stride-json", ["neg.json"], {"neg.json": [{"type": "conv", "kernel": 3},
                                                         {"type": "conv", "kernel": 3, "stride": -1}]},
     ["layer 2", "stride"]),
    ("repeated-option", ["c3s2s3"], {}, ["layer 1", "stride"]),
    ("unknown-type-json", ["lstm.json"], {"lstm.json": [{"type": "conv", "kernel": 3},
                                                        {"type": "lstm", "kernel": 3}]},
     ["layer 2", "lstm"]),
    ("kernel-zero-json", ["k0.json"], {"k0.json": [{"type": "conv", "kernel": 0}]}, ["layer 1", "kernel"]),
    ("shrinks-below-1", ["c3x64,c7p0", "--input-size", "5"], {}, ["layer 2", "size"]),
    ("pool-shrinks-below-1", ["c3,c3,mp9", "--input-size", "8"], {}, ["layer 3"]),
    ("missing-file", ["no/such/net.json"], {}, ["not found", "net.json"]),
    ("invalid-json", ["broken.json"], {"broken.json": '{"layers": [{"type": "conv", "kernel": 3'},
     ["broken.json", "JSON"]),
    ("json-not-a-stack", ["str.json"], {"str.json": json.dumps("c3x64")}, ["list"]),
    ("json-empty-layers", ["empty.json"], {"empty.json": {"layers": []}}, ["layers"]),
    ("json-unknown-key", ["extra.json"], {"extra.json": {"input_size": 32, "layers": [
        {"type": "conv", "kernel": 3}], "foo": 1}}, ["foo"]),
    ("json-unknown-layer-field", ["field.json"], {"field.json": [{"type": "conv", "kernel": 3},
                                                                 {"type": "conv", "kernel": 3, "size": 3}]},
     ["layer 2", "size"]),
    ("groups-not-dividing", ["c3x64,c3x30g4"], {}, ["layer 2", "groups"]),
    ("groups-not-dividing-input", ["c3x64g2", "--in-channels", "3"], {}, ["layer 1", "groups"]),
    ("depthwise-with-groups", ["dw3g2"], {}, ["layer 1"]),
    ("pool-padding-too-big", ["c3x8,mp2p2"], {}, ["layer 2", "padding"]),
    ("pool-dilation-json", ["pd.json"], {"pd.json": [{"type": "conv", "kernel": 3},
                                                     {"type": "maxpool", "kernel": 3, "dilation": 2}]},
     ["layer 2", "dilation"]),
    ("conv-ceil-mode-json", ["cc.json"], {"cc.json": [{"type": "conv", "kernel": 3, "ceil_mode": True}]},
     ["layer 1", "ceil_mode"]),
    ("input-size-zero", ["c3", "--input-size", "0"], {}, ["input"]),
    ("input-size-not-int", ["c3", "--input-size", "abc"], {}, ["input-size"]),
    ("in-channels-negative", ["c3", "--in-channels=-3"], {}, ["channels"]),
    ("format-xml", ["c3", "--format", "xml"], {}, ["format"]),
    ("unknown-option", ["c3", "--bogus"], {}, ["--bogus"]),
    ("no-stack", [], {}, ["STACK"]),
    ("extra-argument", ["c3", "c5"], {}, ["c5"]),
]


@pytest.mark.parametrize("argv, files, needles", [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS])
def test_bad_input_exits_2(capsys, tmp_path, monkeypatch, argv, files, needles):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RFSWEEP_DEBUG", raising=False)
    for name, content in files.items():
        (tmp_path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    code, out, err = run_inprocess(capsys, "explain", *argv)
    assert code == 2, (code, out, err)
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines, "nothing on stderr"
    assert lines[0].startswith("error:"), lines[0]
    assert len(lines) == 1, f"expected one line on stderr, got {err!r}"
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_unknown_command(capsys):
    code, out, err = run_inprocess(capsys, "explian", "c3")
    assert code == 2
    assert err.startswith("error:") and "Traceback" not in err
