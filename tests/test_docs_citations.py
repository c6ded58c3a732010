"""The project cites only what it ships: no shipped file (code, docs, rules, OpenAPI, bench,
packaging) refers to the design notes it was written from, which are not part of it."""
from __future__ import annotations

import re
import subprocess

import pytest
from conftest import ROOT

# the notes the project was written from: a specification folder, its HTTP and domain
# documents, and the research folder beside it
UNSHIPPED = re.compile(r"\bspec/|domain-spec|\bhttp\.md\b|shared/research|\.\./shared")


def shipped_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split("\n")
    return [p for p in listed if p and not p.startswith("tests/") and (ROOT / p).is_file()]


@pytest.mark.shipped_policy  # the rule files' comments and sources are read too
def test_no_shipped_file_cites_a_file_the_project_does_not_ship():
    files = shipped_files()
    assert "api/openapi.yaml" in files and "docs/api.md" in files and "README.md" in files
    found = []
    for path in files:
        try:
            text = (ROOT / path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # images and other binary files
        for number, line in enumerate(text.splitlines(), 1):
            if UNSHIPPED.search(line):
                found.append(f"{path}:{number}: {line.strip()}")
    assert not found, "cites a file ordergate does not ship:\n" + "\n".join(found)
