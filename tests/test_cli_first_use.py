"""What a first-time user meets: tables that fit without cutting numbers, help that reads, errors that help.

Every test here failed on the code before it was written (issue 21's list).
"""

import json
import re
import shlex
from pathlib import Path

import pytest
import typer

import cli_helpers
from rfsweep.analysis import compare as compare_stacks
from rfsweep.cli import app

COMMANDS = typer.main.get_command(app).commands
ROOT = Path(__file__).parents[1]


@pytest.fixture
def run_cli(capsys):
    return lambda *argv: cli_helpers.run_cli(capsys, *argv)


@pytest.fixture
def columns(monkeypatch):
    """Pretend the terminal is N columns wide (what a narrow terminal reports through COLUMNS)."""
    return lambda n: monkeypatch.setenv("COLUMNS", str(n))


def _table_lines(out):
    return [line for line in out.splitlines() if line[:1] in "┏┃┡│├└"]


# ------------------------------------------------------------------ tables: fitted, numbers whole

def test_stack_table_in_80_columns_keeps_every_number_whole(run_cli, columns):
    columns(80)
    code, out, _ = run_cli("explain", "c3x64,c3x64,c3x64", "--in-channels", "64")
    assert code == 0 and "…" not in out
    assert all(len(line) <= 80 for line in _table_lines(out)), max(map(len, _table_lines(out)))
    # 3*3*64*64 * 224*224 MACs per layer, written out in full with separators
    assert f"{3 * 3 * 64 * 64 * 224 * 224:,}" in out and f"{3 * 3 * 64 * 64 * 224 * 224 * 3:,}" in out
    assert "Left out to fit 80 columns" in out  # what was dropped is said


@pytest.mark.parametrize("width", [60, 80, 100])
def test_graph_table_never_cuts_numbers_or_names(run_cli, columns, width):
    columns(width)
    code, out, _ = run_cli("explain", "--arch", "resnet50")
    assert code == 0 and "…" not in out and "..." not in "".join(_table_lines(out))
    assert all(len(line) <= width for line in _table_lines(out))
    code, text, _ = run_cli("explain", "--arch", "resnet50", "--format", "json")  # the oracle
    result = json.loads(text)
    assert f"{result['total']['params']:,}" in out and f"{result['total']['macs']:,}" in out
    # every node name is there, whole or wrapped inside its cell: join each row's wrapped first cells
    cells = "".join(line.split("│")[1].strip() for line in _table_lines(out) if line.startswith("│"))
    for node in result["nodes"]:
        assert node["name"] in cells, node["name"]


def test_wide_output_to_a_pipe_keeps_every_column(run_cli, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, _ = run_cli("explain", "--arch", "resnet50")
    assert code == 0 and "Left out" not in out
    assert "inputs" in out and "RF min" in out


def test_pareto_and_compare_fit_narrow_terminals(run_cli, columns, tmp_path):
    out_file = tmp_path / "s.parquet"
    assert run_cli("sweep", "--depth", "1-3", "--kernel", "3,5", "--dilation", "1", "--channels", "32",
                   "-q", "-o", out_file)[0] == 0
    columns(60)
    code, out, _ = run_cli("pareto", out_file, "--minimize", "params", "--maximize", "rf")
    assert code == 0 and "…" not in out
    assert all(len(line) <= 60 for line in _table_lines(out))
    code, front, _ = run_cli("pareto", out_file, "--minimize", "params", "--maximize", "rf", "--format", "json")
    for row in json.loads(front)["rows"]:
        assert f"{row['config_id']:,}" in out and f"{row['params']:,}" in out
    code, out, _ = run_cli("compare", "--rf", "9")
    assert code == 0 and "…" not in out and all(len(line) <= 60 for line in _table_lines(out))


def test_thousands_separators_on_every_count(run_cli):
    code, out, _ = run_cli("explain", "--arch", "resnet18")
    assert code == 0
    conv1 = next(line for line in out.splitlines() if line.startswith("│ 1 ") or "│ conv1 " in line)
    assert "9,408" in conv1 and "9408" not in out  # 7*7*3*64, next to 36,864 further down
    code, out, _ = run_cli("archs")
    assert "3,039" in out and "3039" not in out  # Inception-ResNet v2's RF
    code, out, _ = run_cli("explain", "--arch", "inception_resnet_v2")
    assert "sees rf 3,039" in out and "effective padding 1,482" in out and "3039" not in out


# ------------------------------------------------------------------ help

def test_top_level_summaries_are_whole_lines(run_cli, columns):
    columns(80)
    code, out, _ = run_cli("--help")
    listing = out.split("Commands:", 1)[1].strip().splitlines()
    assert len(listing) == len(COMMANDS), "one line per command"
    assert not any(line.rstrip().endswith("...") for line in listing)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_summary_consistent_usage_and_examples(run_cli, columns, name):
    columns(100)
    code, out, _ = run_cli(name, "--help")
    assert code == 0
    usage = out.splitlines()[0]
    assert re.fullmatch(rf"Usage: rfsweep {name} \[OPTIONS\]( [A-Z_]+| \[[A-Z_]+\](\.\.\.)?)*", usage), usage
    examples = out.split("Examples:", 1)[1].splitlines()
    commands = [line.strip() for line in examples if line.strip().startswith(f"rfsweep {name}")]
    assert commands, f"{name} --help shows no example"
    command = COMMANDS[name]
    for example in commands:  # every example parses: real options, valid values
        command.make_context(name, shlex.split(example)[2:])


@pytest.mark.parametrize("width", [50, 80, 140])
def test_explain_help_keeps_the_grammar_lines(run_cli, columns, width):
    columns(width)
    code, out, _ = run_cli("explain", "--help")
    assert code == 0
    lines = [line.strip() for line in out.splitlines()]
    assert "c<K>[s<S>][p<P>][d<D>][x<C>][g<G>][nb]   conv: kernel K, stride S, padding P," in lines
    assert "mp<K>[s<S>][p<P>][ceil]                  max pool (stride defaults to K)" in lines


def test_yes_and_dry_run_say_what_they_do(run_cli):
    code, out, _ = run_cli("sweep", "--help")
    yes_help = re.split(r"\n  -", out.split("--yes", 1)[1])[0]
    assert "asking" not in yes_help and "refused" in yes_help
    code, out, _ = run_cli("sweep", "--depth", "1", "--dry-run")
    assert code == 0 and "0.0 s" not in out and "0 MB" not in out
    assert "estimated time under 0.1 s" in out and "output under 1 MB" in out
    code, out, _ = run_cli("sweep", "--spec", ROOT / "data" / "vgg_style.toml", "--dry-run")
    assert re.search(r"estimated time about [\d.]+ s, output at most [\d,]+ MB", out), out


# ------------------------------------------------------------------ errors that help

def test_sweep_into_an_existing_directory_suggests_a_file_or_partitions(run_cli, tmp_path):
    code, _, err = run_cli("sweep", "--depth", "1", "-o", tmp_path)
    assert code == 2 and err.count("\n") == 1
    assert str(tmp_path / "sweep.parquet") in err and "--partitions" in err


def test_a_column_typo_suggests_the_closest(run_cli, tmp_path):
    out_file = tmp_path / "s.parquet"
    assert run_cli("sweep", "--depth", "1-2", "-q", "-o", out_file)[0] == 0
    code, _, err = run_cli("pareto", out_file, "--minimize", "parms")
    assert code == 2 and "did you mean 'params'?" in err and "l2_channels" not in err
    code, _, err = run_cli("pareto", out_file, "--where", "out_sise>=7")
    assert code == 2 and "did you mean 'out_size'?" in err


@pytest.mark.parametrize("command", [["explain", "c3"], ["archs"], ["compare", "--rf", "7"]])
def test_a_bad_choice_is_one_plain_line(run_cli, command):
    code, _, err = run_cli(*command, "--format", "yaml")
    assert code == 2 and err.count("\n") == 1
    assert "Value error" not in err and "'yaml' is not one of 'table', 'json'" in err


def _reachable(rf, kernels, dilations, depth):
    """Independent: is rf - 1 a sum of at most `depth` terms d*(k-1) (stride-1 convs)?"""
    steps = {d * (k - 1) for k in kernels for d in dilations if k > 1}
    sums = {0}
    for _ in range(depth):
        sums |= {s + t for s in sums for t in steps}
    return rf - 1 in sums


def test_compare_says_why_no_stack_reaches_the_rf(run_cli):
    code, out, _ = run_cli("compare", "--rf", "8")
    assert code == 0 and "raise --max-depth" not in out
    assert "at any depth" in out and "multiple of 2" in out
    assert not _reachable(8, [3, 5, 7], [1], 50)
    code, out, _ = run_cli("compare", "--rf", "31", "--kernels", "3,5,7", "--max-depth", "4")
    wanted = next(d for d in range(1, 30) if _reachable(31, [3, 5, 7], [1], d))
    assert f"raise --max-depth to {wanted}." in out
    assert len(compare_stacks(31, 64, wanted, [3, 5, 7], [1], 56)) > 1  # and that depth does reach it
    assert len(compare_stacks(31, 64, wanted - 1, [3, 5, 7], [1], 56)) == 1
    code, out, _ = run_cli("compare", "--rf", "22", "--kernels", "4,7", "--max-depth", "3")
    wanted = next(d for d in range(1, 30) if _reachable(22, [4, 7], [1], d))
    assert wanted == 4 and "raise --max-depth to 4." in out  # 21 = 6 + 6 + 6 + 3


def test_a_resume_with_nothing_to_do_says_so(run_cli, tmp_path):
    out_dir = tmp_path / "parts"
    code, _, err = run_cli("sweep", "--depth", "1-2", "--partitions", "2", "-o", out_dir)
    assert code == 0 and "stacks/s" in err
    code, _, err = run_cli("sweep", "--depth", "1-2", "--partitions", "2", "-o", out_dir)
    assert code == 0 and "already complete" in err and "stacks/s" not in err
    assert "2,352 rows" in err  # 48 + 48**2 stacks of the default choices, all valid
