"""Hypothesis fuzzing of every input path of the `rfsweep` command, in-process.

Every input goes through the console entry point `rfsweep.cli.main(argv)` and
must end in exit code 0 or 2 (contract section 5): never 1 (an unexpected
exception), never a Python traceback, and on exit 2 exactly one stderr line
starting with 'error:' of reasonable length. Inputs *constructed* to be
invalid (a zero stride, an unknown layer type, a truncated Parquet file, ...)
must exit 2 -- exit 0 on garbage is a failure. Random inputs whose validity is
unknown may exit 0 or 2.

Paths: (a) `explain` with random and grammar-shaped compact strings;
(b) `explain` with JSON stack files (random JSON, mutated layer dicts);
(c) `sweep --dry-run --spec` with TOML files; (d) `sweep --dry-run` flag
values; (e) `show FILE ID` and `pareto FILE` on random bytes, truncated and
byte-flipped sweep files, foreign Parquet and corrupted rfsweep metadata.

Budget: 1360 generated examples per run, the sum of the max_examples below
(a: 120+40+120+120, b: 100+120+40, c: 100+120+40, d: 100+100,
e: 40+40+30+30+30+30+40), plus 18 explicit regression cases at the end. Most
examples make 2-3 CLI calls (json and table output; show and pareto on one
file), so a run tries about 2000 distinct inputs (argv plus file bytes); the
exact number is printed in the terminal summary as "rfsweep fuzz: N distinct
inputs". About 30-35 s on 2 cores when every test passes (shrinking a new
failure takes longer; replaying a known one from .hypothesis/ is fast).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import rfsweep
from cli_helpers import run_cli
from rfsweep.grid import DEFAULTS, LIST_KEYS

MAX_LINE = 600          # a "reasonable" length for the one error line
MAX_FIELD = 1 << 20     # contract: larger sizes/channels/kernels are refused

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow])

# ------------------------------------------------------------------ bookkeeping

_SEEN: set[str] = set()
_CALLS = [0]


class _Summary:
    """Registered as a pytest plugin at first use: reports the distinct-input count."""

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_line(f"rfsweep fuzz: {len(_SEEN)} distinct inputs "
                                    f"({_CALLS[0]} CLI calls) in tests/test_fuzz.py")


@pytest.fixture(autouse=True, scope="module")
def _report_count(request):
    manager = request.config.pluginmanager
    if not manager.has_plugin("rfsweep-fuzz-summary"):
        manager.register(_Summary(), "rfsweep-fuzz-summary")
    yield


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


_FILE_NO = itertools.count()


def write_file(directory: Path, data, suffix: str) -> Path:
    """A fresh file per example (names never reused, so no stale state)."""
    path = directory / f"f{next(_FILE_NO)}{suffix}"
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(data)
    return path


def run(capsys, argv: list[str], files: tuple[Path, ...] = ()):
    """main(argv) in-process: (exit code, stdout, stderr)."""
    key = hashlib.sha256(repr(argv).encode("utf-8", "surrogatepass"))
    for path in files:
        key.update(path.read_bytes())
    _SEEN.add(key.hexdigest())
    _CALLS[0] += 1
    return run_cli(capsys, *argv)


def check(code, out, err, argv, expect=None, mention=None):
    """The contract's bad-input rules; expect=2 for inputs constructed to be invalid."""
    where = f"argv={argv!r}\nexit={code}\nstderr={err[-2000:]!r}"
    assert "Traceback" not in err and "Traceback" not in out, where
    assert code in (0, 2), where
    if expect is not None:
        assert code == expect, where
    if code == 2:
        lines = err.strip("\n").split("\n")
        assert lines[0].startswith("error:"), where
        assert len(lines) == 1, "error must be one line:\n" + where
        assert len(lines[0]) <= MAX_LINE, where
        if mention is not None:
            assert mention in lines[0], f"message should mention {mention!r}:\n" + where
    return code


def json_stdout(out):
    """`--format json` prints exactly one JSON object."""
    obj, end = json.JSONDecoder().raw_decode(out.lstrip())
    assert out.lstrip()[end:].strip() == "", out
    assert isinstance(obj, dict)
    return obj


# ================================================================== (a) explain, compact strings

GRAMMAR_BITS = ["c", "dw", "mp", "ap", "s", "p", "d", "x", "g", "_", "nb", "ceil", ",", "-",
                "0", "1", "2", "3", "7", "9", " ", "__", "e", "\u0663", "\uff13", "\u00b2"]
grammar_soup = st.lists(st.sampled_from(GRAMMAR_BITS), max_size=25).map("".join)
random_text = st.text(max_size=60)
ascii_soup = st.text(alphabet="cdwmpasxgnbeil_,0123456789 -.[]{}/", max_size=60)


@settings(FUZZ, max_examples=120)
@given(text=st.one_of(random_text, grammar_soup, ascii_soup))
@example(text="")
@example(text=",")
@example(text="c3,,c3")
@example(text="c3_")
@example(text="c3_3_3")
def test_explain_random_text(capsys, text):
    argv = ["explain", "--format", "json", "--", text]
    code, out, err = run(capsys, argv)
    if check(code, out, err, argv) == 0:
        assert json_stdout(out)["layers"]


@settings(FUZZ, max_examples=40)
@given(text=st.one_of(grammar_soup, ascii_soup),
       opts=st.lists(st.sampled_from([["--input-size", "0"], ["--input-size", "-3"], ["--input-size", "7"],
                                      ["--input-size", str(10**30)], ["--in-channels", "0"],
                                      ["--in-channels", "5"], ["--in-channels", "x"], ["--format", "yaml"],
                                      ["--format", "table"], ["--arch", "nope"]]), max_size=3))
def test_explain_random_text_with_options(capsys, text, opts):
    argv = ["explain", *sum(opts, []), "--", text]
    code, out, err = run(capsys, argv)
    check(code, out, err, argv)


GOOD_NUMBERS = st.sampled_from(["1", "2", "3", "5", "7", "64", "3_5", "1_7"])
BAD_NUMBERS = st.sampled_from(["0", "-1", "-3", str(10**30), str(MAX_FIELD + 1), "0_3", "3_0",
                               "3_-1", "1e3", "3.5", "", "_", "3__3", "0x10"])


@st.composite
def compact_layer(draw, broken: bool):
    """One compact token; with broken=True one number in it is made invalid."""
    prefix = draw(st.sampled_from(["c", "dw", "mp", "ap"]))
    fields = {"k": draw(GOOD_NUMBERS)}
    letters = "spdxg" if prefix == "c" else "spdx" if prefix == "dw" else "sp"
    for letter in draw(st.lists(st.sampled_from(letters), unique=True, max_size=3)):
        fields[letter] = draw(GOOD_NUMBERS if letter != "p" else st.sampled_from(["0", "1", "2"]))
    if broken:
        # a number that is invalid in that position: 0/negative/huge/malformed (padding 0 is fine)
        slot = draw(st.sampled_from(sorted(fields)))
        bad = draw(BAD_NUMBERS.filter(lambda b: not (slot == "p" and b in ("0", "0_3", "3_0", "0x10"))))
        fields[slot] = bad
    text = prefix + fields.pop("k") + "".join(f"{k}{v}" for k, v in fields.items())
    if prefix in ("mp", "ap") and draw(st.booleans()):
        text += "ceil"
    if prefix in ("c", "dw") and draw(st.booleans()):
        text += "nb"
    return text


@settings(FUZZ, max_examples=120)
@given(data=st.data(), n=st.integers(1, 5), broken_at=st.integers(0, 4))
@example(data=None, n=1, broken_at=0)
def test_explain_grammar_mutated_numbers(capsys, data, n, broken_at):
    if data is None:  # the explicit case: a zero stride
        layers, broken_at = ["c3s0"], 0
    else:
        broken_at = min(broken_at, n - 1)
        layers = [data.draw(compact_layer(broken=(i == broken_at))) for i in range(n)]
    text = ",".join(layers)
    argv = ["explain", "--format", "json", "--", text]
    code, out, err = run(capsys, argv)
    check(code, out, err, argv, expect=2)
    # the fault is in layer broken_at+1, unless an earlier (valid-looking) layer failed first
    assert "layer " in err.splitlines()[0]


@settings(FUZZ, max_examples=120)
@given(layers=st.lists(compact_layer(broken=False), min_size=1, max_size=6),
       size=st.sampled_from([None, "1", "7", "32", "224", "1048576"]),
       channels=st.sampled_from([None, "1", "3", "64"]))
def test_explain_grammar_valid_shape(capsys, layers, size, channels):
    """Well-formed tokens: validity depends on sizes/groups, so 0 or 2; on 0 the JSON is whole."""
    argv = ["explain", "--format", "json"]
    argv += ["--input-size", size] if size else []
    argv += ["--in-channels", channels] if channels else []
    argv += ["--", ",".join(layers)]
    code, out, err = run(capsys, argv)
    if check(code, out, err, argv) == 0:
        obj = json_stdout(out)
        assert len(obj["layers"]) == len(layers)
        assert obj["total"]["flops"] == 2 * obj["total"]["macs"]
        assert all(row["out_size"] >= 1 if isinstance(row["out_size"], int) else min(row["out_size"]) >= 1
                   for row in obj["layers"])


# ================================================================== (b) explain, JSON files

json_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=10))
LAYER_KEYS = ["type", "kernel", "stride", "padding", "dilation", "out_channels", "groups", "bias",
              "ceil_mode", "layers", "input_size", "in_channels", "name"]
json_values = st.recursive(
    json_scalars | st.sampled_from(["conv", "maxpool", "avgpool"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(LAYER_KEYS) | st.text(max_size=8), children, max_size=5),
    max_leaves=20)


@settings(FUZZ, max_examples=100)
@given(value=json_values)
@example(value=[])
@example(value={})
@example(value={"layers": []})
@example(value=[{"type": "conv"}])
def test_explain_random_json(capsys, workdir, value):
    path = write_file(workdir, json.dumps(value), ".json")
    for fmt in ("json", "table"):
        argv = ["explain", "--format", fmt, str(path)]
        code, out, err = run(capsys, argv, (path,))
        check(code, out, err, argv)


def _valid_layers():
    """Structurally valid layer dicts (a valid stack on a 224 x 3 input)."""
    return st.lists(st.sampled_from([
        {"type": "conv", "kernel": 3, "out_channels": 8},
        {"type": "conv", "kernel": [3, 5], "stride": 2, "padding": [1, 2], "out_channels": 8, "bias": False},
        {"type": "conv", "kernel": 3, "dilation": 2},
        {"type": "maxpool", "kernel": 2},
        {"type": "avgpool", "kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True},
        {"type": "conv", "kernel": 1, "groups": 1, "out_channels": 6},
    ]), min_size=1, max_size=4)


# wrong values per field, every one of them invalid wherever it appears
WRONG_COMMON = [None, "3", "three", 3.0, 2.5, float("nan"), float("inf"), True, False, -1, -(10**30),
                10**30, MAX_FIELD + 1, {"h": 3}, {}]
WRONG_PAIR = WRONG_COMMON + [[], [3], [3, 3, 3], [3, "3"], [3, None], [[3], [3]], [3, -1], [True, 3]]
WRONG = {
    "kernel": WRONG_PAIR + [0, [0, 3]],
    "stride": WRONG_PAIR + [0, [1, 0]],
    "dilation": WRONG_PAIR + [0, [0, 1]],
    "padding": WRONG_PAIR,                 # 0 is a valid padding
    "out_channels": WRONG_COMMON + [0, [8], [8, 8]],
    "groups": WRONG_COMMON + [0, [1], [1, 1]],
    "bias": [None, 0, 1, "true", "false", [], {}, 1.0],
    "ceil_mode": [None, 0, 1, "true", [], {}],
    "type": [None, "Conv", "conv2d", "pool", "", 0, True, ["conv"], {"conv": 1}],
}
CONV_ONLY = {"out_channels", "groups", "bias"}


@settings(FUZZ, max_examples=120)
@given(data=st.data(), layers=_valid_layers(), wrapped=st.booleans())
def test_explain_json_mutated_layer(capsys, workdir, data, layers, wrapped):
    layers = [dict(layer) for layer in layers]
    index = data.draw(st.integers(0, len(layers) - 1), label="layer")
    field = data.draw(st.sampled_from(sorted(WRONG) + ["unknown"]), label="field")
    if field == "unknown":
        name = data.draw(st.text(min_size=1, max_size=10).filter(
            lambda s: s not in {"type", "kernel", "stride", "padding", "dilation", "out_channels",
                                "groups", "bias", "ceil_mode"}), label="unknown field")
        layers[index][name] = data.draw(json_scalars, label="value")
    else:
        layers[index][field] = data.draw(st.sampled_from(WRONG[field]), label="value")
    doc = {"input_size": 224, "in_channels": 3, "layers": layers} if wrapped else layers
    path = write_file(workdir, json.dumps(doc), ".json")
    argv = ["explain", "--format", "json", str(path)]
    code, out, err = run(capsys, argv, (path,))
    # layers before `index` are valid, so the message must name layer index+1
    check(code, out, err, argv, expect=2, mention=f"layer {index + 1}")


@settings(FUZZ, max_examples=40)
@given(key=st.sampled_from(["input_size", "in_channels", "layers", "unknown"]),
       value=st.sampled_from([None, "224", 2.5, True, -1, 0, 10**30, [], [224, 224, 224, 224], [224, 0],
                              [1, 2, 3, 4], [2, 0, 2], {}, {"layers": []}, "conv", [None]]))
def test_explain_json_mutated_stack_object(capsys, workdir, key, value):
    # (an input_size list of 1 to 3 positive lengths is valid: it sets the rank, contract section 9)
    doc = {"input_size": 224, "in_channels": 3, "layers": [{"type": "conv", "kernel": 3}]}
    if key == "unknown":
        doc["extra_key"] = value
    else:
        doc[key] = value
    if key == "input_size" and value is None:
        doc[key] = "x"  # None means "default" for input_size/in_channels
    if key == "in_channels" and value is None:
        doc[key] = [3]
    path = write_file(workdir, json.dumps(doc), ".json")
    argv = ["explain", "--format", "json", str(path)]
    code, out, err = run(capsys, argv, (path,))
    check(code, out, err, argv, expect=2)


# ================================================================== (c) sweep --spec TOML

def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_str(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def toml_str(text: str) -> str:
    """A TOML basic string: escape quote, backslash and control characters, keep the rest."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_doc(values: dict) -> str:
    return "".join(f"{toml_str(key)} = {toml_value(value)}\n" for key, value in values.items())


toml_scalars = (st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats() | st.text(max_size=12)
                | st.sampled_from(["1-4", "1,3", "same", "valid", "conv", "maxpool,conv", "3"]))
toml_values = st.recursive(toml_scalars, lambda c: st.lists(c, max_size=4)
                           | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=10)
spec_keys = st.sampled_from(sorted(DEFAULTS)) | st.text(min_size=1, max_size=10)


@settings(FUZZ, max_examples=100)
@given(values=st.dictionaries(spec_keys, toml_values, max_size=4))
@example(values={})
@example(values={"depth": "1-2", "kernel": [3], "stride": 1, "channels": "8"})
def test_sweep_spec_random_toml(capsys, workdir, values):
    path = write_file(workdir, toml_doc(values), ".toml")
    argv = ["sweep", "--dry-run", "--spec", str(path)]
    code, out, err = run(capsys, argv, (path,))
    check(code, out, err, argv)
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        assert code == 2 and repr(unknown[0]) in err, err


INT_WRONG = [2.5, 3.0, float("nan"), float("inf"), True, False, -1, 0, MAX_FIELD + 1, 2**63 - 1, -(2**63),
             {}, {"a": 1}, "", "x", "1.5", "-1", "\u00b2"]
WRONG_SPEC = {
    **{key: INT_WRONG + [[], [1, 2.5], [True], ["a"], [[]], "1-", "3-1", "1,,2", "0-3", [0], [-1], "1-99999",
                         [{}]] for key in LIST_KEYS if key not in ("types", "padding")},
    "depth": INT_WRONG + [[], "33", 33, [3, 1], "3,1", "1-40", [1, 1], "2,2"],
    "types": [2.5, True, 0, "", "conv,", "Conv", "conv,conv", "foo", [], [1], ["conv", 3], {}, ["conv", "conv"]],
    "padding": [2.5, True, -1, "", "x", "-1", "1.5", "same,same", [], [True], [-1], [1.5], {}, [{}], "\u00b2"],
    "input_size": INT_WRONG + [[], [224, 224, 224, 224], [224, 0], [0], "224px"],  # [224]: rank 1, valid
    "in_channels": INT_WRONG + [[], [3], "3ch"],
    "bias": [0, 1, "true", "false", "", [], {}, 1.5],
    **{key: [2.5, True, False, -1, "", "10", "x", [], [1], {}] for key in
       ("min_rf", "max_rf", "max_params", "max_macs", "min_out_size")},
}


@settings(FUZZ, max_examples=120)
@given(data=st.data())
def test_sweep_spec_wrong_typed_values(capsys, workdir, data):
    key = data.draw(st.sampled_from(sorted(WRONG_SPEC)), label="key")
    value = data.draw(st.sampled_from(WRONG_SPEC[key]), label="value")
    base = {"depth": "1-2", "kernel": [1, 3], "channels": [8]}
    base[key] = value
    path = write_file(workdir, toml_doc(base), ".toml")
    argv = ["sweep", "--dry-run", "--spec", str(path)]
    code, out, err = run(capsys, argv, (path,))
    check(code, out, err, argv, expect=2, mention=key)


MALFORMED_TOML = st.sampled_from([
    "depth = [1, 2", "depth = ", "= 3", "depth = 1\ndepth = 2", "depth = '1-2\n", "[depth\n",
    "depth = [1,,2]", "depth = 1 2", "kernel = {a = }", "\x00", "depth = \"\\q\"", "a.b = 1\na = 2",
    "depth = 01", "depth = 1_", "depth = [1, 2]]", "depth = tru", "[[kernel]]\n",
])


@settings(FUZZ, max_examples=40)
@given(text=MALFORMED_TOML, junk=st.text(alphabet="[]{}=\"'#.,\n ab1", max_size=15))
def test_sweep_spec_malformed_toml(capsys, workdir, text, junk):
    constructed = write_file(workdir, text, ".toml")
    argv = ["sweep", "--dry-run", "--spec", str(constructed)]
    code, out, err = run(capsys, argv, (constructed,))
    check(code, out, err, argv, expect=2)
    soup = write_file(workdir, junk, ".toml")  # random text: could even be valid TOML
    argv = ["sweep", "--dry-run", "--spec", str(soup)]
    code, out, err = run(capsys, argv, (soup,))
    check(code, out, err, argv)


# ================================================================== (d) sweep --dry-run flags

FLAGS = ["--depth", "--kernel", "--stride", "--dilation", "--channels", "--padding", "--types", "--input-size"]
flag_text = st.one_of(st.text(max_size=12), st.text(alphabet="0123456789-, samevldcoxp", max_size=12))


@settings(FUZZ, max_examples=100)
@given(flags=st.dictionaries(st.sampled_from(FLAGS), flag_text, min_size=1, max_size=4))
def test_sweep_flags_random(capsys, flags):
    argv = ["sweep", "--dry-run", "--depth=1-2", *(f"{flag}={value}" for flag, value in flags.items())]
    code, out, err = run(capsys, argv)
    check(code, out, err, argv)
    if code == 0:
        assert out.startswith("grid: ")


WRONG_FLAGS = {
    "--depth": ["0", "-1", "33", "3,1", "1-0", "2,2", "a", "", "1,,2", "1.5", "1-99999", str(10**30), "\u00b2"],
    "--kernel": ["0", "-1", "1-0", "3,3", "x", "", "1.5", str(MAX_FIELD + 1), "1,,3", "3 5", "\u00b2"],
    "--stride": ["0", "-2", "2-1", "1,1", "s", "", "0.5", str(10**30)],
    "--dilation": ["0", "-1", "2-1", "1,1", "", "d2", str(MAX_FIELD + 1)],
    "--channels": ["0", "-8", "8,8", "", "x64", str(MAX_FIELD + 1), "16-8"],
    "--padding": ["-1", "x", "", "1.5", "same,same", "same,", "full", "\u00b2", "\u00bd"],
    "--types": ["", "conv,", "Conv", "pool", "conv,conv", "maxpool,foo", "1"],
    "--input-size": ["0", "-1", "", "x", "1.5", str(MAX_FIELD + 1), str(10**30), "\u00b2"],
}


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_sweep_flags_wrong(capsys, data):
    flag = data.draw(st.sampled_from(sorted(WRONG_FLAGS)), label="flag")
    value = data.draw(st.sampled_from(WRONG_FLAGS[flag]), label="value")
    argv = ["sweep", "--dry-run", "--depth=1-2", f"{flag}={value}"]
    code, out, err = run(capsys, argv)
    key = flag[2:].replace("-", "_")
    # click's own messages name the option ('--input-size'); rfsweep's name the key
    check(code, out, err, argv, expect=2)
    assert key in err or flag in err, err


# ================================================================== (e) show / pareto files

class RealSweep(tuple):
    """(file bytes, Arrow table) of a tiny real sweep; short repr for Hypothesis reports."""

    def __repr__(self):
        return f"<real sweep: {len(self[0])} bytes, {self[1].num_rows} rows>"


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory):
    path = tmp_path_factory.mktemp("real") / "real.parquet"
    rfsweep.write_range(rfsweep.GridSpec.build({"depth": "1-2", "kernel": "1,3", "channels": "8"}), path)
    return RealSweep((path.read_bytes(), pq.read_table(path)))


def _show_and_pareto(capsys, path, config_id, expect_show=None, expect_pareto=None):
    argv = ["show", "--format", "json", "--", str(path), str(config_id)]
    code, out, err = run(capsys, argv, (path,))
    check(code, out, err, argv, expect=expect_show)
    for fmt in ("json", "table"):
        argv = ["pareto", "--format", fmt, str(path)]
        code, out, err = run(capsys, argv, (path,))
        check(code, out, err, argv, expect=expect_pareto)


@settings(FUZZ, max_examples=40)
@given(data=st.binary(max_size=300), magic=st.booleans(), config_id=st.integers(0, 100))
def test_files_random_bytes(capsys, workdir, data, magic, config_id):
    if magic:  # look like Parquet at both ends
        data = b"PAR1" + data + b"PAR1"
    path = write_file(workdir, data, ".parquet")
    _show_and_pareto(capsys, path, config_id, expect_show=2, expect_pareto=2)


@settings(FUZZ, max_examples=40)
@given(data=st.data(), config_id=st.integers(-3, 80))
def test_files_truncated_sweep(capsys, workdir, real_sweep, data, config_id):
    raw, _ = real_sweep
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    path = write_file(workdir, raw[:cut], ".parquet")
    _show_and_pareto(capsys, path, config_id, expect_show=2, expect_pareto=2)


@settings(FUZZ, max_examples=30)
@given(data=st.data(), config_id=st.integers(0, 71))
def test_files_byte_flipped_sweep(capsys, workdir, real_sweep, data, config_id):
    """Corrupted pages or footer: reading may fail (exit 2) or, rarely, succeed; never exit 1."""
    raw = bytearray(real_sweep[0])
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path = write_file(workdir, bytes(raw), ".parquet")
    _show_and_pareto(capsys, path, config_id)


@settings(FUZZ, max_examples=30)
@given(columns=st.lists(st.sampled_from(["config_id", "params", "macs", "rf", "depth", "other"]),
                        unique=True, max_size=6),
       rows=st.lists(st.integers(-2**63, 2**63 - 1), max_size=5), as_text=st.booleans())
def test_files_foreign_parquet(capsys, workdir, columns, rows, as_text):
    """A valid Parquet written by pandas, no rfsweep metadata: show must refuse it (2);
    pareto works on it when it has the columns, else refuses it."""
    import pandas as pd

    df = pd.DataFrame({name: ([str(v) for v in rows] if as_text and name == "macs" else rows)
                       for name in columns})
    path = workdir / f"f{next(_FILE_NO)}.parquet"
    df.to_parquet(path)
    needed = {"config_id", "params", "macs", "rf"}
    _show_and_pareto(capsys, path, 0, expect_show=2,
                     expect_pareto=None if needed <= set(columns) else 2)


CORRUPT_META = [b"{not json", b"", b"\xff\xfe", b"null", b"[]", b"[1, 2]", b"\"ab\"", b"5", b"true",
                b'{"spec": [1]}', b'{"spec": "x"}', b'{"spec": null}', b'{"spec": 3}', b'{"version": "0.1.0"}',
                b'{"spec": {"depth": "x"}}', b'{"spec": {"kernel": 0}}', b'{"spec": {"bogus": 1}}',
                b'{"spec": {"channels": [1048577]}}', b'{"spec": {"depth": [1, 2], "kernel": [1, 3], "types": 7}}']


@settings(FUZZ, max_examples=30)
@given(meta=st.sampled_from(CORRUPT_META), config_id=st.integers(0, 71))
def test_files_corrupted_metadata(capsys, workdir, real_sweep, meta, config_id):
    """Metadata without a usable spec: `show` must refuse (2). `pareto` may still compute
    the front from the columns (a Parquet file from elsewhere works), or refuse: 0 or 2."""
    _, table = real_sweep
    path = workdir / f"f{next(_FILE_NO)}.parquet"
    pq.write_table(table.replace_schema_metadata({b"rfsweep": meta}), path)
    _show_and_pareto(capsys, path, config_id, expect_show=2)


@settings(FUZZ, max_examples=30)
@given(meta=json_values, config_id=st.integers(0, 71))
def test_files_random_metadata_json(capsys, workdir, real_sweep, meta, config_id):
    _, table = real_sweep
    path = workdir / f"f{next(_FILE_NO)}.parquet"
    pq.write_table(table.replace_schema_metadata({b"rfsweep": json.dumps(meta).encode()}), path)
    _show_and_pareto(capsys, path, config_id)


@settings(FUZZ, max_examples=40)
@given(config_id=st.one_of(st.integers(-2**70, 2**70), st.sampled_from(["x", "1.5", "", "0x1", "1e3"])),
       where=st.one_of(st.none(), st.text(max_size=20),
                       st.sampled_from(["rf>=3", "rf>", "nope>1", "rf>=1e400", "rf>=99999999999999999999999",
                                        "rf>=3 and", "erf_std<1", "l1_kernel>=3", "rf>=-1"])),
       minimize=st.sampled_from(["params,macs", "", "nope", "erf_std", "l2_kernel", ",", "params,params"]))
def test_files_real_sweep_odd_arguments(capsys, real_sweep, workdir, config_id, where, minimize):
    """The real file with random ids, --where clauses and objectives: 0 or 2, never 1."""
    path = workdir / "real_args.parquet"
    if not path.exists():
        path.write_bytes(real_sweep[0])
    argv = ["show", "--format", "json", "--", str(path), str(config_id)]
    code, out, err = run(capsys, argv, (path,))
    check(code, out, err, argv)
    argv = ["pareto", "--format", "json", "--minimize", minimize, str(path)]
    argv += ["--where", where] if where is not None else []
    code, out, err = run(capsys, argv, (path,))
    check(code, out, err, argv)


# ================================================================== explicit regressions

def test_explain_long_valid_stack_string(capsys):
    """A valid 60-layer compact string (~300 chars) is not a file name."""
    text = ",".join(["c3x8"] * 60)
    argv = ["explain", "--format", "json", text]
    code, out, err = run(capsys, argv)
    check(code, out, err, argv, expect=0)
    assert len(json_stdout(out)["layers"]) == 60


@pytest.mark.parametrize("argv", [
    ["explain", "--", "c" + "9" * 5000],
    ["explain", "--", "q" * 300],
    ["sweep", "--dry-run", "--depth=" + "9" * 5000],
    ["sweep", "--dry-run", "--kernel=1-" + "9" * 5000],
    ["sweep", "--dry-run", "--padding=\u00b2"],
    ["sweep", "--dry-run", "--padding=" + "9" * 5000],
    ["show", "--", "/nonexistent/x.parquet", "1"],
    ["pareto", "/nonexistent/x.parquet"],
], ids=["explain-5000-digits", "explain-300-chars", "depth-5000-digits", "kernel-range-5000-digits",
        "padding-superscript-two", "padding-5000-digits", "show-missing", "pareto-missing"])
def test_constructed_invalid_argv(capsys, argv):
    code, out, err = run(capsys, argv)
    check(code, out, err, argv, expect=2)


@pytest.mark.parametrize("text,suffix", [
    ("[" * 100_000 + "]" * 100_000, ".json"),
    ("[" + "1" * 5000 + "]", ".json"),
    ("[{\"type\": \"conv\", \"kernel\": " + "3" * 5000 + "}]", ".json"),
    ("\udcff", ".json"),
    ("depth = " + "[" * 100_000 + "]" * 100_000, ".toml"),
    ("depth = " + "1" * 5000, ".toml"),
    ("input_size = \"\u00b2\"", ".toml"),
    ("padding = \"\u00b2\"", ".toml"),
], ids=["json-deep", "json-5000-digits", "json-kernel-5000-digits", "json-bad-utf8",
        "toml-deep", "toml-5000-digits", "toml-input-size-superscript", "toml-padding-superscript"])
def test_constructed_invalid_files(capsys, workdir, text, suffix):
    path = write_file(workdir, text, suffix)
    argv = (["explain", "--format", "json", str(path)] if suffix == ".json"
            else ["sweep", "--dry-run", "--spec", str(path)])
    code, out, err = run(capsys, argv, (path,))
    check(code, out, err, argv, expect=2)


def test_explain_json_name_with_markup(capsys, workdir):
    """A stack's name is data, not Rich markup: the table title must not crash on '[/x]'."""
    path = write_file(workdir, json.dumps({"name": "[/x] [bold", "layers": [{"type": "conv", "kernel": 3}]}),
                      ".json")
    argv = ["explain", str(path)]
    code, out, err = run(capsys, argv, (path,))
    check(code, out, err, argv, expect=0)
    assert "[/x]" in out
