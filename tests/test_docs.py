"""Every command has help and is documented in the README; the README's commands exist."""

import re
from pathlib import Path

import pytest
import typer

from rfsweep.cli import app

README = (Path(__file__).parents[1] / "README.md").read_text()
COMMANDS = typer.main.get_command(app).commands


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


def test_readme_commands_name_real_commands():
    # in code: start of a line (after "$ " or a venv path) or inside backticks, not prose
    used = set(re.findall(r"(?m)(?:^\s*(?:\$ )?(?:\.venv/bin/)?|`|&& \.venv/bin/)rfsweep (\w+)", README))
    assert {"sweep", "explain"} <= used
    assert used <= set(COMMANDS), used - set(COMMANDS)


def test_readme_opens_with_the_two_setup_commands():
    block = README.split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(block) == 2
    assert block[0].endswith("rfsweep sweep") and "pip install -e ." in block[0]
    assert "pytest" in block[1] and '.[test]' in block[1]
