"""README's CLI reference and examples match the CLI: every flag the reference lists is one the
command accepts, and every example that needs no local files runs and says what its comment
says."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _block(after: str) -> str:
    start = README.index(after)
    return README[README.index("```", start):README.index("```\n", README.index("```", start) + 3)]


def _reference() -> dict[str, set[str]]:
    """Flags listed for each command in the CLI reference."""
    flags: dict[str, set[str]] = {}
    command = None
    for line in _block("## CLI reference").splitlines():
        for part in re.split(r"(?=\bftplan \w)", line.split("(")[0]):
            m = re.match(r"ftplan (\w+)", part)
            if m:
                command = m.group(1)
            if command:
                flags.setdefault(command, set()).update(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", part))
    return flags


def _help(command: str) -> str:
    return subprocess.run([sys.executable, "-m", "planner", command, "--help"], capture_output=True, text=True,
                          cwd=ROOT).stdout


@pytest.mark.parametrize("command", sorted(_reference()))
def test_every_flag_in_the_reference_exists(command):
    text = _help(command)
    assert text, command
    for flag in _reference()[command]:
        assert flag in text, f"ftplan {command} has no {flag}"


EXAMPLES = [line for line in _block("### Examples").splitlines() if line.startswith("ftplan ")
            and not re.search(r"\./|\.jsonl|runs/", line)]


@pytest.mark.parametrize("line", EXAMPLES)
def test_examples_run_and_match_their_comments(line):
    command, _, comment = line.partition("#")
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "planner", *command.split()[1:]], capture_output=True, text=True,
                         cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    said = comment.strip()
    if said.startswith("71B"):
        assert said in out.stdout
    if said.startswith("does not fit"):
        assert "does not fit" in out.stdout and "changes that fit" in out.stdout
