"""Helpers for testing the service (used by tests/test_api_*.py and the load benchmark).

``SHOP`` is a tiny, complete rules folder (one system, one action, a guard and an effect, tests
covering both) so the API tests do not depend on the shipped rules changing; ``SHOP_V2`` is a
second version of it (T-02 asks for another obligation, T-03 is added) for activation, diff and
replay tests.
"""
from __future__ import annotations

import typing as t
from pathlib import Path

SHOP_RULES = """\
system: shop
title: a tiny policy for the API tests
sources:
  t1: {kind: seed, title: the API test suite}
facts:
  blocked:
    path: resource.customer.blocked
    type: boolean
    says: the customer is blocked
  vip:
    path: resource.customer.vip
    type: boolean
    default: false
    says: the customer is a VIP
obligations:
  notify:
    says: tell the account manager
  audit_trail:
    says: keep an audit trail of the order
actions:
  - names: [order.create]
    reads: [blocked, vip]
rules:
  - id: T-01
    kind: guard
    says: a blocked customer may not order
    source: [t1]
    actions: [order.create]
    deny_when: {blocked: true}
  - id: T-02
    kind: effect
    says: an order of a customer in good standing is allowed
    source: [t1]
    actions: [order.create]
    obligations: [notify]
"""

SHOP_TESTS = """\
base:
  context: {system: shop}
tests:
  - name: T-01 a blocked customer is refused
    action: order.create
    input: {resource: {customer: {blocked: true}}}
    expect: {allow: false, rules: [T-01]}
  - name: T-02 a customer in good standing may order
    action: order.create
    input: {resource: {customer: {blocked: false}}}
    expect: {allow: true, rules: [T-02], obligations: [notify]}
"""

SHOP_RULES_V2 = SHOP_RULES.replace("    obligations: [notify]\n", "    obligations: [audit_trail]\n") + """\
  - id: T-03
    kind: effect
    says: a VIP's order is announced to the account manager
    source: [t1]
    actions: [order.create]
    when: {vip: true}
    obligations: [notify]
"""

SHOP_TESTS_V2 = SHOP_TESTS.replace("may order\n", "may order, with an audit trail\n").replace(
    "obligations: [notify]}\n", "obligations: [audit_trail]}\n") + """\
  - name: T-03 a VIP's order is announced
    action: order.create
    input: {resource: {customer: {blocked: false, vip: true}}}
    expect: {allow: true, rules: [T-02, T-03], obligations: [audit_trail, notify]}
"""

SHOP = {"shop.yaml": SHOP_RULES, "tests/shop.yaml": SHOP_TESTS}
SHOP_V2 = {"shop.yaml": SHOP_RULES_V2, "tests/shop.yaml": SHOP_TESTS_V2}

#: a request the shop policy allows, and one it denies
ALLOWED = {
    "action": "order.create",
    "input": {"context": {"system": "shop"}, "resource": {"customer": {"blocked": False}}},
}
DENIED = {
    "action": "order.create",
    "input": {"context": {"system": "shop"}, "resource": {"customer": {"blocked": True}}},
}


def write_rules(folder: Path, files: t.Mapping[str, str]) -> Path:
    """Write ``{relative path: text}`` under ``folder``; returns ``folder``."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def test_config(database_url: str, rules_dir: Path, **overrides: t.Any) -> dict[str, t.Any]:
    """A configuration for tests: no tokens, fast watcher and log flushes."""
    config: dict[str, t.Any] = {
        "database_url": database_url,
        "rules_dir": str(rules_dir),
        "tokens": {},
        "watch_interval": 0.1,
        "log_flush_interval": 0.01,
        "startup_retry_interval": 0.2,
    }
    config.update(overrides)
    return config


test_config.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
