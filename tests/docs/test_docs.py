"""The README and the manual name only commands that exist, and link only pages that exist."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from pipeline.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# `corridor <command> [<subcommand>]` where the text shows one being typed: a code span or a line of a
# code block that starts with it
MENTION = re.compile(r"(?:^|`|\$ )corridor ((?:[a-z][a-z0-9-]*)(?: [a-z][a-z0-9-]*)?)", re.M)


def commands() -> dict[str, set[str]]:
    """Each command of the CLI, with its subcommands (empty for a plain command)."""
    group = typer.main.get_command(app)
    return {name: set(getattr(cmd, "commands", {})) for name, cmd in getattr(group, "commands", {}).items()}


def test_every_corridor_command_the_pages_show_exists() -> None:
    known = commands()
    wrong = []
    for page in PAGES:
        for block in re.findall(r"`[^`\n]+`|```.*?```", page.read_text(), re.S):
            for words in MENTION.findall(block):
                name, *sub = words.split()
                if name not in known or (known[name] and sub and sub[0] not in known[name]):
                    wrong.append(f"{page.name}: corridor {words}")
    assert not wrong, wrong
    assert "bench" in known and {"up", "down"} <= known["stack"], "the check reads the real command tree"


def test_the_readme_is_a_front_door_whose_links_lead_somewhere() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert links and all((ROOT / link).is_file() for link in links), links
    setup = re.search(r"```sh\n(.*?)```", text, re.S)
    assert setup is not None
    assert [line.split()[:2] for line in setup.group(1).splitlines()] == [["make", "run"], ["make", "test"]]
