"""Shared helpers of the store tests (imported by the test_store_* modules; holds no tests)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RULE_FILE = """\
system: shop
title: a minimal shop
sources:
  s1:
    kind: seed
    title: test source
facts:
  blocked:
    path: resource.customer.blocked
    type: boolean
    says: the customer is blocked
actions:
  - names: [order.create]
    reads: [blocked]
rules:
  - id: G-1
    kind: guard
    says: a blocked customer cannot order{tag}
    source: [s1]
    actions: [order.create]
    deny_when: {{blocked: true}}
  - id: E-1
    kind: effect
    says: an order is allowed
    source: [s1]
    actions: [order.create]
    obligations: []
"""

TEST_FILE = """\
base:
  context: {system: shop}
tests:
  - name: a blocked customer is denied
    action: order.create
    input: {resource: {customer: {blocked: true}}}
    expect: {allow: false, rules: [G-1]}
  - name: a customer in good standing may order
    action: order.create
    input: {resource: {customer: {blocked: false}}}
    expect: {allow: true, rules: [E-1]}
"""


def mini_rules(tag: str = "") -> dict[str, str]:
    """A minimal valid rules folder (one guard, one effect, one test file); ``tag`` changes the version."""
    return {"shop.yaml": RULE_FILE.format(tag=tag), "tests/shop.yaml": TEST_FILE}


def write_folder(path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return path


def record(i: int, *, version: str = "sha256:" + "a" * 64, allow: bool = True,
           action: str = "order.create", rules: tuple[str, ...] = ("E-1",), prefix: str = "d") -> dict:
    return {
        "decision_id": f"{prefix}-{i:06d}",
        "time": f"2026-11-23T10:{(i // 60) % 60:02d}:{i % 60:02d}.000123+00:00",
        "action": action,
        "input": {"context": {"system": "shop"}, "resource": {"customer": {"blocked": not allow, "n": i}}},
        "result": {"allow": allow, "obligations": [], "rules": list(rules), "error": None,
                   "policy_version": version},
        "policy_version": version,
    }


def python(script: str, *args: str, **kwargs) -> subprocess.Popen:
    """Start ``script`` in a fresh interpreter with the project importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def run_python(script: str, *args: str, timeout: float = 60) -> str:
    proc = python(script, *args)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"subprocess failed ({proc.returncode}):\n{out}\n{err}"
    return out


GUARDED = ("policy_versions", "policy_files", "activations", "decisions", "decision_rules")


def drop_guards(engine) -> None:
    """Remove every append-only trigger, as an intruder with DDL rights could."""
    import sqlalchemy as sa

    with engine.begin() as conn:
        for table in GUARDED:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text(f"DROP TRIGGER {table}_append_only ON {table}"))
                conn.execute(sa.text(f"DROP TRIGGER {table}_no_truncate ON {table}"))
            else:
                conn.execute(sa.text(f"DROP TRIGGER {table}_no_update"))
                conn.execute(sa.text(f"DROP TRIGGER {table}_no_delete"))
        names = ("no_delete", "no_truncate", "forward_only") if engine.dialect.name == "postgresql" else (
            "no_delete", "forward_only")
        for name in names:
            on = " ON store_heads" if engine.dialect.name == "postgresql" else ""
            conn.execute(sa.text(f"DROP TRIGGER store_heads_{name}{on}"))
