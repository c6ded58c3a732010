"""What a new user meets first: one name per job in README.md, docs/, `--help` and `./dev`."""
from __future__ import annotations

import re
import subprocess

from click.testing import CliRunner

from cli import main
from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
# `./dev X` or `ordergate X` at the start of a line of code
COMMAND = re.compile(r"^\s*(?:\$ )?(?:\./dev|ordergate) ([a-z][a-z-]*)(?P<args>[^\n#]*)", re.M)


def _code(text: str) -> str:
    """The fenced blocks and the inline `code` of a Markdown text, one snippet a line."""
    blocks = FENCE.findall(text)
    inline = re.findall(r"`([^`\n]+)`", FENCE.sub("", text))
    return "\n".join(blocks + inline)


def test_dev_test_on_a_rules_folder_names_the_rules_command():
    proc = subprocess.run(["./dev", "test", "rules/"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "./dev test-rules rules/" in proc.stderr and "collected 0 items" not in proc.stdout


def test_the_rules_tests_have_one_name():
    commands = set(main.commands)
    assert "test-rules" in commands and "test" not in commands  # `./dev test` is pytest, never the rules tests
    listed = CliRunner().invoke(main, ["--help"]).output
    assert "test-rules" in listed


def test_every_command_the_docs_name_exists_and_dev_test_gets_no_rules_folder():
    commands = set(main.commands) | {"test"}  # `./dev test` is the Python suite
    for doc in DOCS:
        for m in COMMAND.finditer(_code(doc.read_text())):
            name, args = m.group(1), m.group("args").split()
            assert name in commands, f"{doc.name} names `{m.group(0).strip()}`, which is no command"
            if name == "test" and args:
                assert not (ROOT / args[0]).is_dir() or args[0].startswith("tests"), (
                    f"{doc.name}: `{m.group(0).strip()}` runs pytest on a folder of rules")
