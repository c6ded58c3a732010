"""The verifier behind ``ordergate check``: every stage's problems in one run, as findings.

``verify(files)`` compiles the rule files (load, schema and compile errors become error findings),
then reasons over each system section of every file that compiled cleanly: row tables (overlaps,
shadowed rows, gaps, values no row mentions), rules against rules (a rule that never fires, an
obligation always overridden, facts never read, obligations never asked for) and stage graphs
(unreachable stages, dead ends, cycles with no exit, moves a guard always denies). Pure: the files
come in as a mapping of text.
Exact: domains are finite or interval-shaped, and every analysis is a walk over them (see
:mod:`.tables`), never a sample.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import PolicyErrors
from ..evaluate import PolicySet
from .adapter import Section
from .findings import ERROR, WARNING, Finding
from .rule_checks import rule_findings
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
    """Check the rule files of a folder mapping (as :func:`engine.read_folder` returns).

    When some files do not compile, the others are compiled and verified on their own, so one
    broken file does not hide the findings of the rest.
    """
    from .. import compile_files, is_test_file

    findings: list[Finding] = []
    policy = None
    try:
        policy = compile_files(files, display_root=display_root)
        verified = policy
    except PolicyErrors as exc:
        findings.extend(Finding.from_error(e) for e in exc.errors)
        broken = {e.location.file for e in exc.errors if e.location}
        healthy = {p: t for p, t in files.items() if display_root + p not in broken}
        verified = None
        if broken and any(not is_test_file(p) for p in healthy):
            try:
                verified = compile_files(healthy, display_root=display_root)
            except PolicyErrors:
                verified = None           # these files depend on the broken ones
    if verified is not None:
        for system in verified.ir.systems.values():
            section = Section(system)
            findings.extend(table_findings(section))
            findings.extend(rule_findings(section))
    return Report(tuple(sorted(findings, key=Finding.sort_key)), policy)
