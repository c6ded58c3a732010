"""docs/architecture.md names modules that exist: the picture of the data flow stays true."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"


def test_every_module_the_architecture_names_exists():
    named = set(re.findall(r"\b((?:engine|api|store|connector|cli)/[\w/]*(?:\.py|\.yaml|\.json|/))", DOC.read_text()))
    assert len(named) >= 15
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert missing == []


def test_the_compile_stages_it_describes_are_the_named_stages():
    from engine.compiler import STAGES

    text = DOC.read_text()
    for _, stage in STAGES:
        module = stage.__module__.rsplit(".", 1)[-1]
        assert f"`{module}.py`" in text, module
