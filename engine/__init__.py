"""ordergate's policy engine: rule files in, decisions out. Pure: no I/O beyond reading the
folder you hand to :func:`read_folder`, no web framework, no database, no clock.

Start with :func:`load_policy_set` (a folder) or :func:`compile_files` (a mapping of file
paths to text, e.g. a stored version), then call :meth:`PolicySet.decide`.
"""
from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from pathlib import Path

from .decision import Decision, DecisionError, Obligation
from .errors import Location, PolicyError, PolicyErrors
from .evaluate import PolicySet, RuleInfo
from .testing import TestReport, TestResult, run_tests

__all__ = [
    "Decision", "DecisionError", "Location", "Obligation", "PolicyError", "PolicyErrors", "PolicySet",
    "RuleInfo", "TestReport", "TestResult", "compile_files", "is_test_file", "load_policy_set",
    "read_folder", "run_tests",
]

RULE_SUFFIXES = (".yaml", ".yml")


def is_test_file(path: str) -> bool:
    return path.startswith("tests/") or "/tests/" in path


def read_folder(path: str | Path) -> dict[str, str]:
    """Every rule and test file under ``path``: relative POSIX path -> text.

    Hidden files and folders are skipped. A file over the size limit, a file that is not UTF-8
    text, and a link that leads out of the folder are errors (the link is never followed, so no
    file outside the folder is read or quoted).
    """
    from .load import MAX_FILE_BYTES, too_large

    root = Path(path)
    if not root.is_dir():
        raise PolicyErrors([PolicyError("load_no_folder", f"`{root}` is not a folder")])
    real_root = root.resolve()
    shown = root.as_posix().rstrip("/") + "/"
    files: dict[str, str] = {}
    errors: list[PolicyError] = []
    for folder, dirs, names in os.walk(root):  # links to folders are listed, never entered
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        linked_dirs = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        for name in sorted(names) + linked_dirs:
            file = Path(folder, name)
            if name.startswith(".") or not (file.suffix in RULE_SUFFIXES or name in linked_dirs):
                continue
            relative = file.relative_to(root).as_posix()
            if file.is_symlink() and not _inside(file, real_root):
                errors.append(PolicyError(
                    "load_outside_folder", f"`{relative}` is a link to something outside the rules folder; "
                    "it is not read", Location(shown + relative, 1, 1),
                    "copy the file into the rules folder instead of linking to it"))
                continue
            if not file.is_file():  # a link to a folder inside: its files are read where they are
                continue
            with file.open("rb") as stream:  # never more than the limit in memory, even if the file grows
                data = stream.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                errors.append(too_large(shown + relative, file.stat().st_size))
                continue
            try:
                files[relative] = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = data.count(b"\n", 0, exc.start) + 1
                column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
                errors.append(PolicyError("load_not_text", f"the file is not UTF-8 text (byte {exc.start + 1})",
                                          Location(shown + relative, line, column),
                                          "rule files are text saved as UTF-8; is this a binary file?"))
    if errors:
        raise PolicyErrors(errors)
    return files


def _inside(link: Path, root: Path) -> bool:
    try:
        return link.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a loop of links
        return False


def compile_files(files: Mapping[str, str], *, display_root: str = "") -> PolicySet:
    """Load, validate and compile the rule files (not the tests) of a folder mapping.

    :param files: relative path -> text, as :func:`read_folder` returns.
    :param display_root: prefix shown before each path in error locations (e.g. ``rules/``).
    :raises PolicyErrors: with every problem found, sorted by location.
    """
    was_collecting = gc.isenabled()
    gc.disable()   # compile allocates many small objects that all live on: cyclic collection finds nothing
    try:
        return _compile(files, display_root)
    finally:
        if was_collecting:
            gc.enable()


def _compile(files: Mapping[str, str], display_root: str) -> PolicySet:
    from .codegen import generate
    from .compiler import Document, lower, rules_at_fault
    from .load import load_files
    from .validate import schema_problems

    rule_files = {display_root + p: t for p, t in files.items() if not is_test_file(p)}
    if not rule_files:
        raise PolicyErrors([PolicyError(
            "load_no_rules", "no rule files (*.yaml) found",
            help="rule files live directly in the rules folder; tests in its tests/ folder")])
    loaded, errors = load_files(rule_files, share=True)           # YAML -> documents + source maps
    docs = []
    for f in loaded:
        for i, doc in enumerate(f.documents):
            if doc is None:
                continue
            problems = schema_problems("policy", doc, (i,), f.source)   # JSON Schema, in plain words
            errors.extend(p.error for p in problems)
            broken = rules_at_fault(problems)
            if broken is not None:     # the rest of the document still compiles, so every stage reports
                docs.append(Document(f, i, doc, broken))
    policy_ir, infos = lower(loaded, docs, errors, display_root)   # semantic checks, the typed IR
    if errors:
        raise PolicyErrors(errors)
    functions = {name: {action: generate(plan, policy_ir.version) for action, plan in system.plans.items()}
                 for name, system in policy_ir.systems.items()}           # one generated function per action
    return PolicySet(policy_ir, functions, infos)


def load_policy_set(path: str | Path) -> PolicySet:
    """Compile the rule folder at ``path``; errors name files relative to it."""
    root = Path(path)
    shown = root.as_posix().rstrip("/") + "/"
    return compile_files(read_folder(root), display_root=shown)
