"""engine/ stays pure: no web framework, database, network or clock, and no domain words."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"
FORBIDDEN_MODULES = {"flask", "sqlalchemy", "socket", "requests", "http", "urllib", "time", "datetime",
                     "api", "store", "connector", "psycopg", "durable", "random", "threading", "subprocess"}
DOMAIN_WORDS = re.compile(
    r"sales ?order|salesorder|invoice|opportunit|customer|intercompany|sales.quote|erp\b|crm\b|d365|qad|autotask"
    r"|dynamics",
    re.IGNORECASE,
)


def _sources():
    return sorted(p for p in ENGINE.rglob("*") if p.suffix in (".py", ".json"))


def test_engine_imports_nothing_impure():
    for path in _sources():
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{path.name} imports {name}"


def test_engine_names_no_domain():
    for path in _sources():
        hits = DOMAIN_WORDS.findall(path.read_text())
        assert not hits, f"{path.relative_to(ENGINE)} mentions {sorted(set(hits))}"
