"""Helpers for the verifier's tests: run the verifier on a fixture, and re-decide its witnesses."""
from __future__ import annotations

import functools
from pathlib import Path

import yaml

import engine
from engine.verify import verify

FIXTURES = Path(__file__).parent / "fixtures" / "verify"


def findings(folder: Path | str) -> list[tuple]:
    """(severity, code, line:column, rules) of every finding, in the verifier's order."""
    report = verify(engine.read_folder(folder))
    return [(f.severity, f.code, f"{f.location.line}:{f.location.column}", f.rules) for f in report.findings]


def report(folder: Path | str):
    return verify(engine.read_folder(folder))


def request(files: dict, witness: dict) -> dict:
    """The request input that gives each fact of ``witness`` its value (facts as declared in ``files``)."""
    system, paths = _facts(next(t for p, t in files.items() if not engine.is_test_file(p)))
    out: dict = {"context": {"system": system}}
    for name, value in witness.items():
        *parents, last = paths[name].split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


@functools.lru_cache(maxsize=64)
def _facts(text: str) -> tuple[str, dict]:
    doc = yaml.safe_load(text)
    return doc["system"], {name: spec["path"] for name, spec in doc["facts"].items()}


def fired(files: dict, action: str, witness: dict, table_hit: str = "collect") -> list[str]:
    """The rows that fire for the witness when every table of ``files`` takes hit policy ``table_hit``
    (with `collect` these are all the rows that match it)."""
    changed = {p: _hit(t, table_hit) for p, t in files.items()}
    decision = engine.compile_files(changed).decide(action, request(files, witness))
    assert decision.error is None, decision.error
    return sorted(decision.rules)


def _hit(text: str, hit: str) -> str:
    for old in ("hit: unique", "hit: first", "hit: collect"):
        text = text.replace(old, f"hit: {hit}")
    return text
