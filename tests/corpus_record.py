"""The regression corpus of decisions: requests generated from a frozen fixture policy, decided once.

    .venv/bin/python tests/corpus_record.py      # (re)writes tests/fixtures/corpus/decisions.jsonl.gz

`tests/fixtures/corpus/policy/` is a frozen copy of the rule files of the day the corpus was recorded
(plus row tables under every hit policy); it never follows `rules/`. The generator below makes
valid, boundary, wrong-typed and missing facts, unknown actions and systems and malformed inputs,
for every action of every system of that policy, about one in eight with ``explain``. Each line of
the corpus is ``[action, input, explain, digest]``; the digest is the first 128 bits of the SHA-256
of the decision's ``to_dict()`` written as compact JSON in key order, trace included.
`tests/test_engine_corpus.py` replays every request and requires the same digest. Re-record only
when a decision is meant to change, and say so in the commit.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
POLICY = HERE / "fixtures" / "corpus" / "policy"
CORPUS = HERE / "fixtures" / "corpus" / "decisions.jsonl.gz"
COUNT = 100_000
SEED = 20261129

_BRACES = re.compile(r"\{([^{}]*)\}")
_TOKEN = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


def digest(decision_dict: dict) -> str:
    text = json.dumps(decision_dict, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def read_corpus(path: Path = CORPUS) -> Iterator[tuple[Any, Any, bool, str]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            action, body, explain, want = json.loads(line)
            yield action, body, explain, want


def _expand(pattern: str) -> list[str]:
    m = _BRACES.search(pattern)
    if not m:
        return [pattern]
    out: list[str] = []
    for choice in m.group(1).split(","):
        out.extend(_expand(pattern[: m.start()] + choice.strip() + pattern[m.end():]))
    return out


def _scalars(value: Any, strings: set[str], ints: set[int]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _scalars(k, strings, ints)
            _scalars(v, strings, ints)
    elif isinstance(value, list):
        for v in value:
            _scalars(v, strings, ints)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        ints.add(value)
    elif isinstance(value, str) and _TOKEN.match(value):
        strings.add(value)


class System:
    """What the generator needs to know of one system section, read from the YAML itself."""

    def __init__(self, doc: dict):
        self.name: str = doc["system"]
        self.facts: dict[str, dict] = doc["facts"]
        self.scales: dict[str, list] = doc.get("scales") or {}
        self.actions: dict[str, list[str]] = {}
        for group in doc["actions"]:
            reads = list(group["reads"])
            for pattern in group["names"]:
                for action in _expand(pattern):
                    self.actions[action] = reads
        strings: set[str] = set()
        ints: set[int] = set()
        _scalars(doc.get("rules"), strings, ints)
        _scalars(self.scales, strings, ints)
        self.strings = sorted(strings | {"x", "EUR", "USD", "CHF", "vip"})
        self.ints = sorted(ints | {0, 1, 5})

    def enum_values(self, spec: dict) -> list:
        if "values" in spec:
            return list(spec["values"])
        out: list = []
        for step in self.scales.get(spec.get("scale", ""), []):
            out.extend(step if isinstance(step, list) else [step])
        return out


class Generator:
    def __init__(self, systems: list[System], seed: int):
        self.systems = systems
        self.rnd = random.Random(seed)
        self.pairs = [(s, a) for s in systems for a in sorted(s.actions)]
        self.all_actions = sorted({a for s in systems for a in s.actions})

    # -- values of one declared type --------------------------------------------------------------
    def valid(self, system: System, spec: dict) -> Any:
        rnd = self.rnd
        kind = spec["type"]
        if kind == "boolean":
            return rnd.random() < 0.5
        if kind == "enum":
            return rnd.choice(system.enum_values(spec))
        if kind == "integer":
            lo, hi = spec.get("min", -10), spec.get("max", 2_000_000)
            r = rnd.random()
            if r < 0.5:
                candidates = [i for i in system.ints if lo <= i <= hi]
                base = rnd.choice(candidates) if candidates else lo
                return min(hi, max(lo, base + rnd.choice((-1, 0, 0, 1))))
            if r < 0.8:
                return rnd.randint(lo, min(hi, max(lo, 20_000)))
            return rnd.randint(lo, hi)
        if kind == "string":
            return rnd.choice(system.strings)
        if kind == "list":
            items = spec.get("items")
            return [self.valid(system, items) if items else rnd.choice(system.strings)
                    for _ in range(rnd.choice((0, 1, 1, 2, 3, 4)))]
        if kind == "map":
            inner = spec.get("values_type")
            return {rnd.choice(system.strings): self.valid(system, inner) if inner else rnd.choice(system.strings)
                    for _ in range(rnd.choice((0, 1, 2, 3, 5)))}
        return {}

    def boundary(self, system: System, spec: dict) -> Any:
        rnd = self.rnd
        kind = spec["type"]
        if kind == "integer":
            lo, hi = spec.get("min"), spec.get("max")
            options = [0, -1, 2**63, -(2**63)]
            for edge in (lo, hi):
                if edge is not None:
                    options += [edge - 1, edge, edge + 1]
            return rnd.choice(options)
        if kind == "enum":
            value = str(rnd.choice(system.enum_values(spec)))
            return rnd.choice((value.upper(), value[:-1], value + " ", ""))
        if kind == "string":
            return rnd.choice(("", " ", "x" * 300, "é"))
        if kind == "list":
            items = spec.get("items")
            good = self.valid(system, spec)
            return good + [self.wrong(items)] if items else []
        if kind == "map":
            return {rnd.choice(system.strings): rnd.choice(([], "x", None, [1]))}
        return {"a": 1}

    def wrong(self, spec: dict | None) -> Any:
        kind = spec["type"] if spec else "object"
        options: list[Any] = ["yes", 1, 0, 1.5, True, [], {}, [1, 2], "3"]
        if kind == "boolean":
            options.remove(True)
        elif kind == "integer":
            options.remove(1)
            options.remove(0)
        elif kind == "list":
            options.remove([])
            options.remove([1, 2])
        elif kind in ("map", "object"):
            options.remove({})
        return self.rnd.choice(options)

    # -- requests -----------------------------------------------------------------------------------
    @staticmethod
    def put(body: dict, path: str, value: Any) -> None:
        *parents, last = path.split(".")
        d = body
        for p in parents:
            nxt = d.get(p)
            if not isinstance(nxt, dict):
                if nxt is not None:
                    return
                nxt = d[p] = {}
            d = nxt
        d[last] = value

    def facts(self, system: System, action: str) -> dict:
        rnd = self.rnd
        body: dict = {"context": {"system": system.name}}
        all_valid = rnd.random() < 0.3
        for name in system.actions[action]:
            spec = system.facts[name]
            r = 0.0 if all_valid else rnd.random()
            if r < 0.72:
                value = self.valid(system, spec)
            elif r < 0.82:
                value = self.boundary(system, spec)
            elif r < 0.89:
                continue  # missing
            elif r < 0.93:
                value = None
            else:
                value = self.wrong(spec)
            self.put(body, spec["path"], value)
        if rnd.random() < 0.05:   # a fact of the system the action does not read
            spec = system.facts[rnd.choice(sorted(system.facts))]
            self.put(body, spec["path"], self.valid(system, spec))
        if rnd.random() < 0.02:   # a parent that is not an object
            name = rnd.choice(system.actions[action] or sorted(system.facts))
            parent = system.facts[name]["path"].split(".")[:-1]
            if parent:
                self.put(body, ".".join(parent), rnd.choice(("x", [], 3)))
        return body

    def request(self) -> tuple[Any, Any, bool]:
        rnd = self.rnd
        explain = rnd.random() < 0.125
        system, action = rnd.choice(self.pairs)
        r = rnd.random()
        if r < 0.94:
            return action, self.facts(system, action), explain
        if r < 0.965:
            other = rnd.choice(self.all_actions + ["order.nothing", "x", "", "SALESORDER.UPDATE"])
            return other, self.facts(system, action), explain
        if r < 0.98:
            body = self.facts(system, action)
            body["context"]["system"] = rnd.choice(("nowhere", "", system.name.upper(), 3, None, ["x"]))
            return action, body, explain
        body_choice: list[Any] = [None, [], "x", {}, {"context": None}, {"context": "x"}, {"context": {}},
                                  {"context": {"system": system.name}, "resource": 1}]
        odd_action: Any = rnd.choice((action, action, None, 5, ["x"]))
        return odd_action, rnd.choice(body_choice), explain


def systems(policy: Path = POLICY) -> list[System]:
    out = []
    for file in sorted(policy.glob("*.yaml")):
        for doc in yaml.safe_load_all(file.read_text(encoding="utf-8")):
            if doc:
                out.append(System(doc))
    return out


def main() -> None:
    import engine

    policy = engine.load_policy_set(POLICY)
    gen = Generator(systems(), SEED)
    lines = []
    for _ in range(COUNT):
        action, body, explain = gen.request()
        d = policy.decide(action, body, explain=explain).to_dict()
        lines.append(json.dumps([action, body, explain, digest(d)], ensure_ascii=False, separators=(",", ":")) + "\n")
    with open(CORPUS, "wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as f:   # same bytes every time
        f.write("".join(lines).encode())
    print(f"wrote {COUNT} requests to {CORPUS} ({CORPUS.stat().st_size:,} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
