"""The verifier behind ``ordergate check``: every stage's problems in one run, as findings.

``verify(files)`` compiles the rule files (load, schema and compile errors become error findings),
then reasons over each system section of every file that compiled cleanly: row tables (overlaps,
shadowed rows, gaps, values no row mentions). Pure: the files come in as a mapping of text.
Exact: domains are finite or interval-shaped, and every analysis is a walk over them (see
:mod:`.tables`), never a sample.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..errors import PolicyErrors
from ..evaluate import PolicySet
from .adapter import Section
from .findings import ERROR, WARNING, Finding
from .table_checks import table_findings

__all__ = ["ERROR", "WARNING", "Finding", "Report", "verify"]


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]      # sorted by location
    policy: PolicySet | None           # None when the files do not compile

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == WARNING)

    def passed(self, strict: bool = False) -> bool:
        return not self.errors and not (strict and self.warnings)


def verify(files: Mapping[str, str], *, display_root: str = "") -> Report:
    """Check the rule files of a folder mapping (as :func:`engine.read_folder` returns)."""
    from .. import compile_files, is_test_file
    from ..load import load_files
    from ..validate import check_document

    findings: list[Finding] = []
    policy = None
    try:
        policy = compile_files(files, display_root=display_root)
    except PolicyErrors as exc:
        findings.extend(Finding.from_error(e) for e in exc.errors)
    broken = {f.location.file for f in findings if f.location}
    rule_files = {display_root + p: t for p, t in files.items() if not is_test_file(p)}
    loaded, _ = load_files({p: t for p, t in rule_files.items() if p not in broken})
    for f in loaded:
        for i, doc in enumerate(f.documents):
            if doc is None or check_document("policy", doc, (i,), f.source):
                continue
            findings.extend(table_findings(Section(doc, (i,), f.source)))
    return Report(tuple(sorted(findings, key=Finding.sort_key)), policy)
