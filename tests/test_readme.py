"""The README's `audioclf` commands name only subcommands and flags that exist, so they cannot drift."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from audioclf.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    """Every `audioclf SUBCOMMAND ...` line inside the README's code blocks, continuation lines joined."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README.read_text(), flags=re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [m.group(0) for line in lines if (m := re.search(r"audioclf \w+.*", line.split("#")[0]))]


def subcommand_flags() -> dict[str, set[str]]:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name: {flag for action in sub._actions for flag in action.option_strings}
            for name, sub in commands.choices.items()}


def test_readme_commands_use_existing_subcommands_and_flags() -> None:
    known = subcommand_flags()
    commands = readme_commands()
    assert len(commands) >= 10
    for command in commands:
        name = command.split()[1]
        assert name in known, f"README names unknown command: {command}"
        for flag in re.findall(r"(?<!\S)--[a-z][a-z0-9-]*", command):
            assert flag in known[name] | {"--help"}, f"README uses unknown flag {flag} in: {command}"
