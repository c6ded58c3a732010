"""Policy tests written by analysts (``tests/*.yaml`` beside the rules), and rule coverage.

A test names an action, an input (merged over a base) and what the decision must be; the
report lists failures readably and every rule that no test makes fire.
"""
from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .compare import obligation_keys
from .errors import Location, PolicyError, PolicyErrors, did_you_mean

if TYPE_CHECKING:
    from .evaluate import PolicySet
    from .load import LoadedFile


@dataclass(frozen=True)
class TestResult:
    name: str
    location: Location
    passed: bool
    problems: tuple[str, ...] = ()
    decision: dict[str, Any] | None = None
    action: str | None = None
    input: Any = None                  # the request input the test decided (base, input and remove applied)


@dataclass
class TestReport:
    results: list[TestResult] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)
    rule_count: int = 0

    @property
    def failures(self) -> list[TestResult]:
        return [r for r in self.results if not r.passed]

    @property
    def passed(self) -> bool:
        return not self.failures and not self.uncovered and bool(self.results)

    @property
    def coverage(self) -> float:
        return 1.0 if not self.rule_count else (self.rule_count - len(self.uncovered)) / self.rule_count

    def render(self) -> str:
        lines = []
        for r in self.failures:
            lines.append(f"FAIL {r.location}: {r.name}")
            lines.extend(f"    {p}" for p in r.problems)
        n, f = len(self.results), len(self.failures)
        lines.append(f"{n - f} passed, {f} failed")
        lines.append(f"rule coverage: {self.rule_count - len(self.uncovered)}/{self.rule_count} "
                     f"({self.coverage:.0%})")
        if self.uncovered:
            lines.append("rules no test makes fire: " + ", ".join(self.uncovered))
        return "\n".join(lines)


def merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def remove(data: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    d: Any = data
    for p in parents:
        d = d.get(p) if isinstance(d, dict) else None
        if d is None:
            return
    if isinstance(d, dict):
        d.pop(last, None)


def _show_obligations(items: list[Any]) -> str:
    parts = []
    for o in items:
        if isinstance(o, str):
            parts.append(o)
        else:
            p = o.get("params") or {}
            parts.append(o["name"] + (f" {p}" if p else ""))
    return "[" + ", ".join(parts) + "]"


Case = tuple[Location, dict[str, Any], Any]      # where, the test as written, the base it merges over


def _cases(policy: PolicySet, files: Mapping[str, str], display_root: str) -> list[Case]:
    """Every test of the ``tests/`` files; raises PolicyErrors when a test file is malformed."""
    from . import is_test_file
    from .testnames import Names

    names = Names(policy)
    errors: list[PolicyError] = []
    known_rules = {r.id for r in policy.rules}
    cases: list[Case] = []
    for path_shown in sorted(p for p in files if is_test_file(p)):
        f, load_errors, schema_errors = _read_test_file(display_root + path_shown, files[path_shown])
        errors.extend(load_errors)
        if f is None:
            continue
        for d, doc in enumerate(f.documents):
            problems = schema_errors[d]
            errors.extend(problems)
            if doc is None or problems:
                continue
            errors.extend(names.check(doc, d, f.source))
            bases = doc.get("bases") or {}
            for t, test in enumerate(doc["tests"]):
                path = (d, "tests", t)
                base = doc.get("base") or {}
                if "base" in test:
                    if test["base"] not in bases:
                        errors.append(PolicyError("test_unknown_base", f"unknown base `{test['base']}`",
                                                  f.source.at(path + ("base",)), did_you_mean(test["base"], bases)))
                        continue
                    base = merge(base, bases[test["base"]])
                for i, rid in enumerate(test["expect"].get("rules") or []):
                    if rid not in known_rules:
                        errors.append(PolicyError("test_unknown_rule", f"unknown rule `{rid}`",
                                                  f.source.at(path + ("expect", "rules", i)),
                                                  did_you_mean(rid, known_rules)))
                cases.append((f.source.at(path), test, base))
    if errors:
        raise PolicyErrors(errors)
    return cases


@functools.lru_cache(maxsize=64)
def _read_test_file(path: str, text: str) -> tuple[LoadedFile | None, tuple[PolicyError, ...],
                                                   tuple[tuple[PolicyError, ...], ...]]:
    """A test file loaded and checked against its schema: ``(file, load errors, schema errors per
    document)``. Kept for the same path and text, so that publishing again after a rule file
    changed (``serve --watch``) does not parse and validate unchanged test files again; callers
    only read what it returns (``run_tests`` merges copies)."""
    from .load import load_text
    from .validate import check_document

    loaded, errors = load_text(path, text)
    if loaded is None:
        return None, tuple(errors), ()
    problems = tuple(tuple(check_document("tests", doc, (d,), loaded.source)) if doc is not None else ()
                     for d, doc in enumerate(loaded.documents))
    return loaded, tuple(errors), problems


def _error_problems(expect: dict[str, Any], got: dict[str, Any] | None) -> list[str]:
    if "error" not in expect:
        return [] if got is None else [f"unexpected error {got['code']} ({got['field']}): {got['message']}"]
    want = expect["error"]
    if want is None:
        return [] if got is None else [f"error: expected none, got {got['code']} ({got['field']}): {got['message']}"]
    if got is None:
        return [f"error: expected {want['code']}, got none"]
    if got["code"] != want["code"] or ("field" in want and got["field"] != want["field"]):
        return [f"error: expected {want['code']} ({want.get('field')}), got {got['code']} ({got['field']})"]
    return []


def _problems(expect: dict[str, Any], decision: dict[str, Any]) -> list[str]:
    """How a decision differs from what a test expects, in words."""
    problems = []
    if "allow" in expect and expect["allow"] != decision["allow"]:
        problems.append(f"allow: expected {expect['allow']}, got {decision['allow']}")
    if "rules" in expect and sorted(expect["rules"]) != sorted(decision["rules"]):
        problems.append(f"rules: expected {sorted(expect['rules'])}, got {sorted(decision['rules'])}")
    if "obligations" in expect and obligation_keys(expect["obligations"]) != obligation_keys(decision["obligations"]):
        problems.append(f"obligations: expected {_show_obligations(expect['obligations'])}, "
                        f"got {_show_obligations(decision['obligations'])}")
    return problems + _error_problems(expect, decision["error"])


def run_tests(policy: PolicySet, files: Mapping[str, str], *, display_root: str = "") -> TestReport:
    """Run the ``tests/*.yaml`` files of a folder mapping against ``policy``.

    :raises PolicyErrors: when a test file is malformed (bad YAML, unknown keys, unknown rule ids).
    """
    known_rules = {r.id for r in policy.rules}
    report = TestReport(rule_count=len(known_rules))
    fired: set[str] = set()
    for location, test, base in _cases(policy, files, display_root):
        # a copy: `remove` must not reach into the base the next test merges over
        data = merge(copy.deepcopy(base), test.get("input") or {})
        for dotted in test.get("remove") or []:
            remove(data, dotted)
        decision = policy.decide(test["action"], data).to_dict()
        fired.update(decision["rules"])
        problems = _problems(test["expect"], decision)
        report.results.append(TestResult(test["name"], location, not problems, tuple(problems), decision,
                                         test["action"], data))
    report.uncovered = sorted(known_rules - fired)
    return report
