"""The documentation works as written.

Every command and Python snippet in README.md and docs/*.md runs, in a fresh
temporary directory per page (holding only what a clone has beside it: data/
and examples/), in page order, so a page's later commands read what its
earlier ones wrote. Shell commands come from ```bash/```sh blocks (one command
per line, backslash continuations joined), ```console blocks (lines after `$ `)
and the example column of the README's command table; ```python blocks run as
scripts. The torch and plot extras are installed in the test environment, so
commands that need them run. Only the commands in SKIP do not, each for the
reason given there.

Also: every command has help and is documented in the README, and the README
opens with what the tool answers and the two set-up commands.
"""

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from rfsweep.cli import app

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
COMMANDS = typer.main.get_command(app).commands
SHELL_FENCES = {"bash", "sh", "shell", "console"}

# What a clone has beside the docs that the commands may read.
CLONE_DIRS = ("data", "examples")

# Commands (or Python snippets) that do not run here, matched by substring, with the reason.
SKIP = {
    "python3 -m venv .venv": "the set-up lines create a virtual environment and install: CI runs them as written",
    "pip install": "installs packages; the test environment already has every extra",
    "source .venv/bin/activate": "the test puts the environment's bin/ first on PATH instead",
    "dask scheduler": "needs a multi-node Dask cluster",
    "dask worker": "needs a multi-node Dask cluster",
    "--scheduler tcp://head-node:8786": "needs a multi-node Dask cluster",
    "${SLURM_ARRAY_TASK_ID}": "runs inside a SLURM job array",
    "rfsweep sweep --spec data/resnet_like.toml --max-macs 1900000000":
        "a 268M-network space: about a minute and 400 MB of output on a 2-core machine",
    "rfsweep pareto resnet_like.parquet": "reads the 42M-row output of the 268M-network sweep above",
    "pd.read_parquet('resnet_like.parquet'": "reads the 42M-row output of the 268M-network sweep above",
    "rfsweep show resnet_like.parquet": "reads the 42M-row output of the 268M-network sweep above",
    "rfsweep bench --arch resnet18 --arch mobilenet_v2 --arch resnet50 --rounds 3":
        "times three ImageNet networks, three rounds each: 30 s to 2 minutes on a 2-core machine",
    "rfsweep.tiled_predict(model, x, plan)":
        "a float64 U-Net on a 768x768 image, tiled and whole: 1-2 minutes on 2 cores; tests/test_tile.py "
        "checks the same equality on smaller inputs",
    "class Block(nn.Module):": "an excerpt of examples/residual_model.py for reading; the tests import that file",
    "mypackage.models:build": "a placeholder package name for the reader's own model",
}

# Commands that need an optional package the test extra lists but a machine may lack: run when present.
NEEDS = {"timm.models:": "timm"}

# Per command; generous, for a loaded machine (the slowest documented commands take ~20 s).
TIMEOUT_S = 600


@dataclass
class Snippet:
    page: str
    line: int
    kind: str  # "shell" or "python"
    text: str

    @property
    def where(self):
        return f"{self.page}:{self.line}"


def _complete(command):
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # an open quote: the command goes on
        return False
    return True


def _shell_lines(lines, first, console):
    """Logical commands of a shell block: (line number, text)."""
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if console and not line.startswith("$ "):
            i += 1
            continue
        start, text = first + i, line[2:] if console else line
        while not _complete(text) and i + 1 < len(lines):
            i += 1
            text = text[:-1] + lines[i] if text.endswith("\\") else text + "\n" + lines[i]
        if text.strip() and not text.lstrip().startswith("#"):
            out.append((start, text))
        i += 1
    return out


def _table_examples(page, text):
    """The example column of a table whose rows end in `rfsweep ...` (the README's command table)."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(r"`rfsweep [^`]+`", cells[-1]):
            out.append(Snippet(page, n, "shell", cells[-1].strip("`")))
    return out


def snippets(path, root=ROOT):
    text = path.read_text()
    page = str(path.relative_to(root))
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        lang, body_start = fence.group(1), i + 1
        j = body_start
        while not lines[j].startswith("```"):
            j += 1
        body = lines[body_start:j]
        if lang == "python":
            out.append(Snippet(page, body_start + 1, "python", "\n".join(body)))
        elif lang in SHELL_FENCES:
            for n, command in _shell_lines(body, body_start + 1, console=lang == "console"):
                out.append(Snippet(page, n, "shell", command))
        i = j + 1
    # table examples run after the page's blocks, which create the files they read
    return out + _table_examples(page, text)


def skip_reason(snippet):
    import importlib.util

    for key, reason in SKIP.items():
        if key in snippet.text:
            return reason
    for key, package in NEEDS.items():
        if key in snippet.text and importlib.util.find_spec(package) is None:
            return f"needs {package}, which the test extra installs and this environment lacks"
    return None


def _environment():
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["COLUMNS"] = "120"
    return env


def _run(snippet, cwd, env):
    if snippet.kind == "python":
        script = cwd / "snippet.py"
        script.write_text(snippet.text)
        argv = [sys.executable, str(script)]
    else:
        argv = ["bash", "-e", "-o", "pipefail", "-c", snippet.text]
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0 and "Traceback" not in done.stderr, (
        f"{snippet.where} failed (exit {done.returncode}):\n{snippet.text}\n"
        f"--- stdout\n{done.stdout[-2000:]}\n--- stderr\n{done.stderr[-3000:]}")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_documented_command_and_snippet_runs(page, tmp_path):
    for name in CLONE_DIRS:
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    env = _environment()
    ran = 0
    for snippet in snippets(page):
        if skip_reason(snippet):
            continue
        _run(snippet, tmp_path, env)
        ran += 1
    assert ran or not snippets(page), f"{page.name}: every snippet is skipped"


def test_every_skip_entry_still_matches_a_documented_command():
    everything = [s for page in PAGES for s in snippets(page)]
    stale = [key for key in SKIP if not any(key in s.text for s in everything)]
    assert not stale, f"SKIP entries that no documented command matches any more: {stale}"


def test_the_parser_finds_commands_where_a_reader_sees_them(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```console\n$ rfsweep explain c3 \\\n    --input-size 9\noutput line\n"
        "$ python -c \"\nprint(1)\"\n1\n```\n"
        "```bash\nrfsweep archs   # a comment\n# only a comment\n```\n"
        "```python\nx = 1\n```\n```json\n{}\n```\n"
        "| cmd | answers | example |\n|---|---|---|\n| `archs` | networks | `rfsweep archs` |\n")
    found = [(s.kind, s.text) for s in snippets(page, root=tmp_path)]
    assert found == [
        ("shell", "rfsweep explain c3     --input-size 9"),
        ("shell", 'python -c "\nprint(1)"'),
        ("shell", "rfsweep archs   # a comment"),
        ("python", "x = 1"),
        ("shell", "rfsweep archs"),
    ]


# ------------------------------------------------------------------ the README and the CLI agree

def _documented_shell_commands():
    return [s.text for page in PAGES for s in snippets(page) if s.kind == "shell"]


def test_the_cli_has_the_contract_commands():
    assert {"explain", "sweep", "show", "compare", "pareto", "archs"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_has_help_and_readme_mention(name):
    command = COMMANDS[name]
    assert (command.help or "").strip(), f"{name} has no help text"
    for param in command.params:
        if param.param_type_name == "option" and param.name != "help":
            assert (getattr(param, "help", None) or "").strip(), f"{name} {param.opts} has no help"
    assert f"rfsweep {name}" in README, f"README never shows `rfsweep {name}`"


def test_readme_command_table_has_every_command():
    table = {m.group(1) for m in re.finditer(r"(?m)^\| `(\w+)` \|.*\| `rfsweep (\w+)[^`]*` \|$", README)}
    assert table == set(COMMANDS), set(COMMANDS) ^ table


def test_documented_commands_name_real_commands():
    used = set()
    for text in _documented_shell_commands():
        words = shlex.split(text, comments=True)  # prose in a trailing comment is not a command
        used |= {after for word, after in zip(words, words[1:]) if word.split("/")[-1] == "rfsweep"}
    assert {"sweep", "explain", "pareto", "show", "draw"} <= used
    assert used <= set(COMMANDS), used - set(COMMANDS)


def test_readme_opens_with_one_sentence_then_the_two_setup_commands():
    before, rest = README.split("```bash", 1)
    paragraphs = [p for p in before.strip().split("\n\n") if p.strip()]
    assert len(paragraphs) == 2 and paragraphs[0].startswith("# "), paragraphs
    assert paragraphs[1].count(". ") == 0 and paragraphs[1].rstrip().endswith("."), "one sentence"
    block = rest.split("```", 1)[0].strip().splitlines()
    assert len(block) == 2
    assert block[0] == "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/rfsweep sweep"
    assert "pytest" in block[1] and '.[test]' in block[1]


def test_bare_commands_come_after_the_readme_says_to_activate():
    readme = snippets(ROOT / "README.md")
    activate = min(s.line for s in readme if "source .venv/bin/activate" in s.text)
    bare = [s.line for s in readme if s.kind == "shell" and s.text.startswith("rfsweep ")]
    assert bare and activate < min(bare)


def test_one_install_style_everywhere():
    sources = [*PAGES, *(ROOT / "rfsweep").rglob("*.py")]  # docs and every message the code prints
    for text in (p.read_text() for p in sources):
        assert not re.search(r"pip install ['\"]?rfsweep\[", text), "use pip install -e \".[extra]\""
        assert "rfsweep[plot]" not in text and "rfsweep[torch]" not in text and "rfsweep[dask]" not in text


def test_the_glossary_comes_before_first_use():
    glossary = README.index("## Words used below")
    terms = " ".join(re.findall(r"\*\*([^*]+)\*\*", README[glossary:README.index("\n## ", glossary + 1)]))
    for word in ("jump", "start", "effective padding", "ERF ratio", "rf_min", "critical", "unproductive",
                 "config_id"):
        assert word in terms, word
    grammar = README.index("c<K>[s<S>]")
    assert grammar < README.index("c3p1x64")
    assert glossary < README.index("## 1.")
