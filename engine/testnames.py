"""The names a policy test uses must exist in the policy it tests.

Its system (``context.system``), its action, every fact its input and its ``remove`` name, and
every obligation it expects: an unknown name is one error at the ``file:line:column`` where it is
written, with a "did you mean" hint. A name written once in a file's ``base`` or ``bases`` is
reported once, however many tests use it. A test that expects ``unknown_system`` or
``unknown_action`` may name an unknown system or action, and a test may send facts the system
does not declare when it lists them in ``undeclared`` (that they are ignored is what it tests).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .errors import PolicyError, did_you_mean

if TYPE_CHECKING:
    from .evaluate import PolicySet
    from .load import SourceMap

Path = tuple[Any, ...]
Trie = dict[str, Any]          # key -> sub-trie; a declared fact's node is LEAF
LEAF: Trie = {}
SYSTEM_PATH = ("context", "system")


def _trie(paths: list[tuple[str, ...]]) -> Trie:
    root: Trie = {}
    for path in [*paths, SYSTEM_PATH]:
        node = root
        for part in path[:-1]:
            child = node.get(part)
            if child is LEAF:  # a fact inside a declared fact: the outer one already covers it
                break
            node = node.setdefault(part, {})
        else:
            node[path[-1]] = LEAF
    return root


def _system_of(data: Any) -> Any:
    context = data.get("context") if isinstance(data, Mapping) else None
    return context.get("system") if isinstance(context, Mapping) else None


def _merge(base: Mapping[str, Any], over: Any) -> Any:
    if not isinstance(over, Mapping):
        return over
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(base[key], value) if isinstance(base.get(key), Mapping) else value
    return out


class Names:
    """The systems, actions, facts and obligations of one compiled policy."""

    def __init__(self, policy: PolicySet) -> None:
        self.actions = {name: set(actions) for name, actions in policy.catalogue.items()}
        self.facts = {name: _trie([f.path for f in s.facts if f.path != ("action",)])
                      for name, s in policy.ir.systems.items()}
        self.any_facts = _trie([f.path for s in policy.ir.systems.values() for f in s.facts if f.path != ("action",)])
        self.obligations = {name: {o.name for o in s.obligations} for name, s in policy.ir.systems.items()}

    def facts_of(self, system: Any) -> Trie:
        return self.facts.get(system, self.any_facts) if isinstance(system, str) else self.any_facts

    def check(self, doc: Mapping[str, Any], d: int, source: SourceMap) -> list[PolicyError]:
        """Every unknown name in one test document (already valid against its schema), once each."""
        found: dict[tuple[str, str, str], PolicyError] = {}
        base = doc.get("base") or {}
        bases = doc.get("bases") or {}
        for error in self._document(base, bases, doc["tests"], d, source):
            found.setdefault((error.code, str(error.location), error.message), error)
        return list(found.values())

    def _document(self, base: Mapping[str, Any], bases: Mapping[str, Any], tests: list[Any], d: int,
                  source: SourceMap) -> Iterator[PolicyError]:
        yield from self._facts(base, self.facts_of(_system_of(base)), (d, "base"), source, ())
        for name, named in bases.items():
            system = _system_of(_merge(base, named))
            yield from self._facts(named, self.facts_of(system), (d, "bases", name), source, ())
        for t, test in enumerate(tests):
            yield from self._test(test, base, bases, (d, "tests", t), source)

    def _test(self, test: Mapping[str, Any], base: Mapping[str, Any], bases: Mapping[str, Any], path: Path,
              source: SourceMap) -> Iterator[PolicyError]:
        named = bases.get(test["base"], {}) if isinstance(test.get("base"), str) else {}
        written = test.get("input") or {}
        system = _system_of(_merge(_merge(base, named), written))
        expect = test.get("expect") or {}
        expected = (expect.get("error") or {}).get("code")
        if not isinstance(system, str) or system not in self.actions:
            if isinstance(system, str) and expected != "unknown_system":
                # where the system is written: the test's input, else its named base, else the file's base
                candidates = ((path + ("input",), written), (path[:1] + ("bases", test.get("base")), named),
                              (path[:1] + ("base",), base))
                yield self._unknown_system(system, next(p for p, data in candidates if _system_of(data)), source)
            return
        if expected != "unknown_action":
            yield from self._action(test.get("action"), system, path + ("action",), source)
        facts = self.facts_of(system)
        extra = frozenset(p for p in test.get("undeclared") or [] if isinstance(p, str))
        yield from self._facts(written, facts, path + ("input",), source, (), extra)
        for i, dotted in enumerate(test.get("remove") or []):
            yield from self._dotted(dotted, facts, system, source.at(path + ("remove", i)))
        yield from self._obligations(expect.get("obligations") or [], system, path + ("expect", "obligations"), source)

    def _unknown_system(self, system: str, where: Path, source: SourceMap) -> PolicyError:
        return PolicyError("test_unknown_system", f"unknown system `{system}`", source.at(where + SYSTEM_PATH),
                           did_you_mean(system, self.actions))

    def _action(self, action: Any, system: str, path: Path, source: SourceMap) -> Iterator[PolicyError]:
        if isinstance(action, str) and action not in self.actions[system]:
            yield PolicyError("test_unknown_action", f"system `{system}` has no action `{action}`",
                              source.at(path), did_you_mean(action, self.actions[system]))

    def _obligations(self, expected: list[Any], system: str, path: Path, source: SourceMap) -> Iterator[PolicyError]:
        for i, obligation in enumerate(expected):
            name = obligation.get("name") if isinstance(obligation, Mapping) else obligation
            if isinstance(name, str) and name not in self.obligations[system]:
                yield PolicyError("test_unknown_obligation", f"system `{system}` declares no obligation `{name}`",
                                  source.at(path + (i,)), did_you_mean(name, self.obligations[system]))

    def _facts(self, data: Any, trie: Trie, path: Path, source: SourceMap, prefix: tuple[str, ...],
               extra: frozenset[str] = frozenset()) -> Iterator[PolicyError]:
        """Every key of ``data`` that is neither a declared fact, nor on the way to one, nor in ``extra``."""
        if not isinstance(data, Mapping):
            return
        for key, value in data.items():
            node = trie.get(key) if isinstance(key, str) else None
            dotted = ".".join((*prefix, str(key)))
            if node is None and dotted not in extra:
                yield PolicyError("test_unknown_fact", f"`{dotted}` is not a fact this system declares",
                                  source.at(path + (key,), key=True), did_you_mean(key, trie))
            elif node is not None and node is not LEAF:
                yield from self._facts(value, node, path + (key,), source, (*prefix, key), extra)

    @staticmethod
    def _dotted(dotted: Any, trie: Trie, system: str, location: Any) -> Iterator[PolicyError]:
        if not isinstance(dotted, str):
            return
        node, seen = trie, list[str]()
        for part in dotted.split("."):
            if node is LEAF:
                return
            if part not in node:
                yield PolicyError("test_unknown_fact", f"`{dotted}` is not a fact of system `{system}`", location,
                                  did_you_mean(".".join([*seen, part]), _dotted_names(trie)))
                return
            node, seen = node[part], [*seen, part]


def _dotted_names(trie: Trie, prefix: str = "") -> list[str]:
    names = []
    for key, node in trie.items():
        dotted = prefix + key
        names.append(dotted)
        if node is not LEAF:
            names.extend(_dotted_names(node, dotted + "."))
    return names
